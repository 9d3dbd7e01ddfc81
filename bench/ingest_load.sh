#!/usr/bin/env bash
# Remote-sensor ingest load: three `sipmeter sensor`s and one `sipmeter serve` on loopback.
#
# Phase 1 spools: each sensor reads its generated capture with no server reachable, so every
# batch lands in its disk spool (the sensor is stopped once its progress record lists the file).
# Phase 2 is the measurement: the server starts and the three sensors drain their spools into
# it at once, so the figure is the ingest path alone (HTTP, decode, idempotent insert, commit,
# acknowledgement), not capture reading. Reported: legs stored per second (wall time of phase
# 2) and each sensor's batch latency percentiles (sent -> acknowledged after commit).
#
# Usage: bench/ingest_load.sh [CALLS_PER_SENSOR] [BATCH_LEGS]   (defaults 100000 and 10000)
# DB=postgres stores into PostgreSQL (a fresh database on 127.0.0.1:5432, trust auth, user
# PGUSER or root, dropped at the end) instead of SQLite. KEEP_MESSAGES=false ships
# legs without their SIP messages (no ladder), to see the ingest path without message blobs.
# SERVER_WRAP prefixes the server's command line, e.g. SERVER_WRAP="perf record -g -o srv.perf --"
# to profile the server during phase 2.
set -euo pipefail
CALLS=${1:-100000}
BATCH=${2:-10000}
DB=${DB:-sqlite}
KEEP_MESSAGES=${KEEP_MESSAGES:-true}
DBFLAG=()
PGDB=
case "$DB" in
    sqlite) ;;
    postgres)
        PGDB=sipmeter_ingest_bench_$$
        PG="postgres://${PGUSER:-root}@127.0.0.1:5432"
        psql "$PG/postgres" -qc "CREATE DATABASE $PGDB"
        DBFLAG=(--database "$PG/$PGDB")
        ;;
    *) echo "DB=$DB: use sqlite or postgres" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
# SKIP_BUILD=1 uses the release binaries as they are.
[ "${SKIP_BUILD:-}" = 1 ] || cargo build --release -q -p sipmeter -p sipmeter-gen
BIN=target/release/sipmeter
GEN=target/release/sipmeter-gen
WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
    [ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null || true
    [ -n "$PGDB" ] && psql "$PG/postgres" -qc "DROP DATABASE IF EXISTS $PGDB" || true
    rm -rf "$WORK"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
URL=http://127.0.0.1:$PORT

echo "generating 3 captures of $CALLS calls each"
for i in 1 2 3; do
    "$GEN" --out "$WORK/s$i.pcap" --calls "$CALLS" --concurrency 2000 --duration-s 60 \
        --seed "$i" --quiet &
done
wait
for i in 1 2 3; do
    "$BIN" sensors --data-dir "$WORK/server" "${DBFLAG[@]}" add --name "load-$i" | tail -n1 > "$WORK/token$i"
done

echo "phase 1: spooling (no server)"
for i in 1 2 3; do
    "$BIN" sensor --data-dir "$WORK/sensor$i" --server "$URL" --token "$(cat "$WORK/token$i")" \
        --batch-legs "$BATCH" --max-retry-time 3600 --keep-messages "$KEEP_MESSAGES" \
        "$WORK/s$i.pcap" 2> "$WORK/spool$i.log" &
    echo $! > "$WORK/spool$i.pid"
done
for i in 1 2 3; do
    until [ -s "$WORK/sensor$i/sensor-progress.txt" ]; do sleep 0.2; done
    kill "$(cat "$WORK/spool$i.pid")"; wait "$(cat "$WORK/spool$i.pid")" 2>/dev/null || true
done
du -sh "$WORK"/sensor*/spool | sed 's/^/  spool /'

echo "phase 2: three sensors drain into one server"
${SERVER_WRAP:-} "$BIN" serve --data-dir "$WORK/server" "${DBFLAG[@]}" --listen "127.0.0.1:$PORT" \
    --admin-password bench-password 2> "$WORK/server.log" &
SERVER_PID=$!
until curl -sf "$URL/healthz" > /dev/null; do sleep 0.1; done
START=$(date +%s.%N)
PIDS=()
for i in 1 2 3; do
    "$BIN" sensor --data-dir "$WORK/sensor$i" --server "$URL" --token "$(cat "$WORK/token$i")" \
        --batch-legs "$BATCH" "$WORK/s$i.pcap" 2> "$WORK/drain$i.log" &
    PIDS+=($!)
done
for p in "${PIDS[@]}"; do wait "$p"; done
END=$(date +%s.%N)
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=
if [ "$DB" = postgres ]; then
    LEGS=$(psql "$PG/$PGDB" -tAc "SELECT count(*) FROM legs")
else
    LEGS=$(python3 -c "import sqlite3; print(sqlite3.connect('$WORK/server/sipmeter.db').execute('select count(*) from legs').fetchone()[0])")
fi
python3 - "$START" "$END" "$LEGS" "$((3 * CALLS))" "$DB" <<'PY'
import sys
start, end, legs, want = float(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s = end - start
print(f"stored {legs} legs (expected {want}) in {s:.2f} s: {legs / s:,.0f} legs/s into {sys.argv[5]}")
PY
for i in 1 2 3; do
    grep -h "acknowledged" "$WORK/drain$i.log" | sed "s/^/  sensor $i: /"
done

#!/usr/bin/env bash
# GUI/API latency at license scale: fills a SQLite database with LEGS legs (default 10 M), starts
# `sipmeter serve` on it and measures p50/p99 of the CDR list (first page, number filters, a
# deep keyset page, the JSON API), the 14-day report (page and CSV), Concurrent Calls Stats and
# the dashboard. See bench/README.md.
#
#   bench/gui_10m.sh                      # 10 M legs (714 286 a day × 14 days)
#   BENCH_LEGS_PER_DAY=100000 bench/gui_10m.sh   # 1.4 M legs, minutes instead of half an hour
#   BENCH_REQUESTS=200 BENCH_DIR=/some/disk bench/gui_10m.sh
#
# Last run (2026-11-28, 11.5 M legs incl. 15 % second-sensor copies, 14 days, load average 3-9
# on 2 cores from other work; p50 / p99 ms over 100 requests): CDR first page 2.2 / 6.1, caller
# prefix (5 % of legs) 3.4 / 9.3, caller number 2.1 / 10.3, called prefix 3.5 / 6.5,
# answered=no 5.2 / 14.6, deep keyset page 2.4 / 7.4, sort by caller 2.7 / 6.3, API 100 rows
# 3.2 / 8.6, API caller prefix 3.0 / 13.2, Reports 14 days 37.2 / 127.7, daily.csv 33.1 / 70.1,
# Concurrent Calls Stats 0.7 / 1.5, Dashboard 0.5 / 0.8. Load: 1241 s (9.3 k legs/s, batches of
# 50 000 in random start order within each day).
# Since the number indexes are keyed by segment (migration 0009), at 4.0 M legs
# (BENCH_LEGS_PER_DAY=250000, idle machine, 2026-11-28): load 87 s (46 k legs/s), CDR first page
# 3.1 / 7.2, caller prefix 5.1 / 8.8, caller number 3.0 / 8.4, called prefix 5.5 / 8.1,
# answered=no 8.9 / 11.7, deep keyset page 3.6 / 6.5, sort by caller 14.4 / 28.8 (a merge of
# 62 segments' runs; grows with the segment count), API 100 rows 4.4 / 10.6, API caller prefix
# 5.3 / 7.1, Reports 60.5 / 184.0, daily.csv 58.0 / 111.6, Stats 1.2 / 1.5, Dashboard 0.8 / 0.9.
# 2026-11-29, 11.5 M legs (14 days), checkpoints on their own thread: load 218 s (52.7 k legs/s),
# CDR first page 3.0 / 8.6, caller prefix 4.6 / 6.9, caller number 3.5 / 6.9, called prefix
# 4.5 / 6.3, answered=no 7.4 / 15.7, deep keyset page 3.1 / 4.8, sort by caller 38.3 / 54.1
# (176 segments), API 100 rows 3.6 / 6.0, API caller prefix 4.8 / 5.5, Reports 18.4 / 20.1 and
# daily.csv 17.4 / 25.9 (channel minutes no longer read through sqlx: 107.9 / 204.0 before),
# Stats 1.8 / 2.1, Dashboard 1.5 / 1.9.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
per_day="${BENCH_LEGS_PER_DAY:-714286}"
days="${BENCH_DAYS:-14}"
requests="${BENCH_REQUESTS:-100}"
port="${BENCH_PORT:-18089}"
dir="${BENCH_DIR:-$here/out/gui-$per_day-x-$days}"
password="bench-password-1"

cd "$root"
cargo build --release -q -p sipmeter
cargo build --release -q -p store --example channels_bench

# The database is kept between runs (loading is the slow part): delete $dir to rebuild it.
if [ ! -f "$dir/sipmeter.db" ]; then
    mkdir -p "$dir"
    echo "loading $((per_day * days)) legs into $dir (the slow part; the load rate is printed)"
    CHANNELS_BENCH_DIR="$dir" target/release/examples/channels_bench "$per_day" "$days"
fi

log="$dir/serve.log"
target/release/sipmeter serve --listen "127.0.0.1:$port" --data-dir "$dir" \
    --admin-password "$password" >"$log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT

# The client: Python standard library only (no wrk needed). Logs in like a browser (CSRF field
# and cookie), warms each URL once, then times N sequential requests per URL.
python3 - "http://127.0.0.1:$port" admin "$password" "$requests" <<'PY'
import http.cookiejar, json, re, sys, time, urllib.parse, urllib.request

base, user, pw, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
jar = http.cookiejar.CookieJar()
op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

deadline = time.time() + 120
while True:
    try:
        op.open(base + "/healthz").read()
        break
    except Exception:
        if time.time() > deadline:
            sys.exit("server did not start: see serve.log")
        time.sleep(0.5)

page = op.open(base + "/login").read().decode()
csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
op.open(base + "/login", urllib.parse.urlencode(
    {"user": user, "password": pw, "csrf": csrf, "next": "/"}).encode()).read()

# A deep keyset page: the cursor of a row in the middle of the time range (default sort).
first = json.loads(op.open(base + "/api/v1/cdrs?limit=1").read())
last = json.loads(op.open(base + "/api/v1/cdrs?limit=1&dir=asc").read())
def us(t):
    from datetime import datetime
    return int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1_000_000)
mid = (us(first["legs"][0]["start"]) + us(last["legs"][0]["start"])) // 2
deep = urllib.parse.quote(f"{2**62}.{mid}")
number = first["legs"][0]["caller"]
caller = number[:8]
called = first["legs"][0]["called"][:5]

cases = [
    ("CDR list, first page", "/cdrs"),
    ("CDR list, caller prefix " + caller, "/cdrs?caller=" + urllib.parse.quote(caller)),
    ("CDR list, caller number " + number, "/cdrs?caller=" + urllib.parse.quote(number)),
    ("CDR list, called prefix " + called, "/cdrs?called=" + urllib.parse.quote(called)),
    ("CDR list, answered=no", "/cdrs?answered=no"),
    ("CDR list, deep keyset page", "/cdrs?after=" + deep),
    ("CDR list, sort by caller", "/cdrs?sort=caller&dir=asc"),
    ("API /api/v1/cdrs, 100 rows", "/api/v1/cdrs"),
    ("API /api/v1/cdrs, caller prefix", "/api/v1/cdrs?caller=" + urllib.parse.quote(caller)),
    ("Reports, 14 days", "/reports"),
    ("Reports, daily.csv 14 days", "/reports/daily.csv"),
    ("Concurrent Calls Stats", "/tools/concurrent-calls"),
    ("Dashboard", "/"),
]
print(f"{'page':<40} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
for name, path in cases:
    op.open(base + path).read()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        r = op.open(base + path)
        r.read()
        times.append((time.perf_counter() - t) * 1000)
        if r.status != 200:
            sys.exit(f"{path}: HTTP {r.status}")
    times.sort()
    p = lambda q: times[min(len(times) - 1, int(q * len(times)))]
    print(f"{name:<40} {n:>5} {p(0.5):>8.1f} {p(0.99):>8.1f} {times[-1]:>8.1f}")
PY

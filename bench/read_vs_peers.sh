#!/usr/bin/env bash
# End-to-end read benchmark: `sipmeter read` against tshark and sngrep on the same captures.
#
# Usage: bench/read_vs_peers.sh [--quick] [--help]
#   --quick            ~100 MB RTP capture and ~20 MB signalling capture instead of 1 GB / 200 MB
# Environment:
#   BENCH_SIZE=1G      size of the RTP-heavy capture (K/M/G = powers of 1024)
#   BENCH_SIG_SIZE=200M size of the signalling-only capture
#   BENCH_TOOLS="sipmeter tshark sngrep"   which readers to run (in this order)
#   BENCH_FILES="rtp sig"                  which captures to run them on
#   BENCH_SEED=1       generator seed
#
# Captures are generated once by sipmeter-gen and cached under bench/out/ (git-ignored), keyed
# by size, seed and the last commit touching crates/gen, so a generator change regenerates them.
# Every reader runs under /usr/bin/time -v on a warm page cache, one after the other, so the
# figures compare CPU work, not disk speed. A reader that is missing or fails gets a row saying
# so; the script only fails when it cannot build or generate.
set -euo pipefail

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; }

quick=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        -h | --help) usage; exit 0 ;;
        *) echo "read_vs_peers.sh: unknown argument: $arg" >&2; usage >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out="$root/bench/out"
mkdir -p "$out"
if ((quick)); then
    rtp_size=${BENCH_SIZE:-100M}
    sig_size=${BENCH_SIG_SIZE:-20M}
else
    rtp_size=${BENCH_SIZE:-1G}
    sig_size=${BENCH_SIG_SIZE:-200M}
fi
tools=${BENCH_TOOLS:-sipmeter tshark sngrep}
files=${BENCH_FILES:-rtp sig}
seed=${BENCH_SEED:-1}

need() { # need CMD HINT: stop with an install hint when a required command is missing
    command -v "$1" >/dev/null 2>&1 || {
        echo "read_vs_peers.sh: '$1' not found; $2" >&2
        exit 1
    }
}
need cargo "install Rust (rustup) first"
[[ -x /usr/bin/time ]] || {
    echo "read_vs_peers.sh: /usr/bin/time not found; install it: apt-get install -y time" >&2
    exit 1
}

echo "== building (release)" >&2
(cd "$root" && cargo build --release -q -p sipmeter-gen)
# sipmeter is built separately: while its CLI is in progress a broken build must not stop the
# peers' figures from being taken (its row then says why it was skipped).
sipmeter_build_error=""
if ! (cd "$root" && cargo build --release -q -p sipmeter) >"$out/sipmeter-build.log" 2>&1; then
    sipmeter_build_error="release build of sipmeter failed (bench/out/sipmeter-build.log)"
    echo "== $sipmeter_build_error" >&2
fi
gen="$root/target/release/sipmeter-gen"
sipmeter="$root/target/release/sipmeter"

gen_rev=$(git -C "$root" log -1 --format=%h -- crates/gen 2>/dev/null || true)
gen_rev=${gen_rev:-local}

# generate NAME SIZE ARGS...: writes $out/NAME-SIZE-sSEED-REV.pcap (+ .summary, .truth.jsonl)
# unless it is already there, and prints its path.
generate() {
    local name=$1 size=$2
    shift 2
    local base="$out/$name-$size-s$seed-$gen_rev"
    if [[ ! -s "$base.pcap" || ! -s "$base.summary" ]]; then
        echo "== generating $base.pcap" >&2
        rm -f "$base.pcap" "$base.summary" "$base.truth.jsonl"
        "$gen" --out "$base.pcap.tmp" --truth "$base.truth.jsonl" --size "$size" --seed "$seed" "$@" \
            2>"$base.summary.tmp"
        cat "$base.summary.tmp" >&2
        mv "$base.pcap.tmp" "$base.pcap"
        mv "$base.summary.tmp" "$base.summary"
    fi
    echo "$base.pcap"
}

# summary_value FILE.pcap KEY: a key=value field of the generator summary.
summary_value() {
    grep -o "[[:space:]]$2=[0-9.]*" "${1%.pcap}.summary" | head -1 | cut -d= -f2
}

# wall_seconds TIMEFILE: /usr/bin/time -v "h:mm:ss" or "m:ss.cc" elapsed time in seconds.
wall_seconds() {
    awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0
        for (i = 1; i <= n; i++) s = s * 60 + p[i]
        printf "%.3f", s }' "$1"
}

max_rss_mb() {
    awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$1"
}

tool_version() {
    case $1 in
        sipmeter) "$sipmeter" --version 2>/dev/null | head -1 || echo "sipmeter (dev)" ;;
        tshark) tshark --version 2>/dev/null | head -1 ;;
        sngrep) sngrep -V 2>/dev/null | head -1 ;;
    esac
}

# available TOOL: empty output when the tool can run, else the reason it cannot.
available() {
    case $1 in
        sipmeter)
            if [[ -n "$sipmeter_build_error" ]]; then
                echo "$sipmeter_build_error"
            elif [[ ! -x "$sipmeter" ]]; then
                echo "binary not built"
            elif ! "$sipmeter" read --help 2>&1 | grep -qi 'usage:.*sipmeter read'; then
                echo "'sipmeter read' not implemented in this build"
            fi
            ;;
        tshark) command -v tshark >/dev/null || echo "not installed (apt-get install -y tshark)" ;;
        sngrep) command -v sngrep >/dev/null || echo "not installed (apt-get install -y sngrep)" ;;
    esac
}

# run_tool TOOL FILE TIMEFILE ERRFILE: runs one reader over FILE, stdout discarded.
run_tool() {
    local tool=$1 file=$2 tf=$3 ef=$4
    case $tool in
        sipmeter)
            /usr/bin/time -v -o "$tf" "$sipmeter" read --format jsonl "$file" >/dev/null 2>"$ef"
            ;;
        tshark)
            /usr/bin/time -v -o "$tf" tshark -q -n -z sip,stat -r "$file" >/dev/null 2>"$ef"
            ;;
        sngrep)
            # -N: no curses interface, -q: do not print the dialog counter, -I: read a file and
            # exit. -l lifts the default 20000-dialog capture limit, which would otherwise make
            # sngrep drop (and skip the work for) every call after the 20000th.
            local limit=$(($(summary_value "$file" calls) + 1000))
            /usr/bin/time -v -o "$tf" sngrep -N -q -l "$limit" -I "$file" </dev/null >/dev/null 2>"$ef" && return 0
            # Some builds insist on a terminal even with -N: retry under a pseudo-terminal.
            command -v script >/dev/null || return 1
            TERM=dumb /usr/bin/time -v -o "$tf" \
                script -qec "sngrep -N -q -l $limit -I '$file'" /dev/null </dev/null >/dev/null 2>"$ef"
            ;;
    esac
}

rows=()
declare -A sip_seconds=()

echo "== machine: $(nproc) CPUs, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" >&2
for t in $tools; do echo "== $t: $(tool_version "$t")" >&2; done

for kind in $files; do
    case $kind in
        rtp)
            file=$(generate rtp "$rtp_size" --rtp --concurrency 200 --duration-s 60 \
                --failure-ratio 0.2)
            ;;
        sig)
            file=$(generate sig "$sig_size" --signalling-only --concurrency 2000 \
                --duration-s 30 --failure-ratio 0.25 --tcp-ratio 0.1)
            ;;
        *) echo "read_vs_peers.sh: unknown BENCH_FILES entry: $kind (use rtp, sig)" >&2; exit 2 ;;
    esac
    bytes=$(stat -c %s "$file")
    packets=$(summary_value "$file" packets)
    if [[ -z "$packets" ]] && command -v capinfos >/dev/null; then
        packets=$(capinfos -c -M "$file" | awk -F': *' '/Number of packets/ {print $2}')
    fi
    sip_msgs=$(summary_value "$file" sip_messages)
    calls=$(summary_value "$file" calls)
    echo "== $kind: $file ($bytes bytes, $packets packets, $sip_msgs SIP messages, $calls calls)" >&2
    cat "$file" >/dev/null # warm the page cache so the first reader is not penalised

    for tool in $tools; do
        why=$(available "$tool")
        if [[ -n "$why" ]]; then
            rows+=("$kind|$tool|skipped: $why")
            continue
        fi
        tf=$(mktemp) ef=$(mktemp)
        echo "== running $tool on $kind" >&2
        if run_tool "$tool" "$file" "$tf" "$ef"; then
            secs=$(wall_seconds "$tf")
            rss=$(max_rss_mb "$tf")
            [[ $tool == sipmeter ]] && sip_seconds[$kind]=$secs
            rows+=("$kind|$tool|ok|$secs|$bytes|$packets|$sip_msgs|$rss")
        else
            rows+=("$kind|$tool|failed: $(tail -c 200 "$ef" | tr '\n\r' '  ')")
        fi
        rm -f "$tf" "$ef"
    done
done

printf '\n%-4s %-9s %9s %9s %12s %12s %9s %14s\n' \
    file tool seconds "MB/s" "packets/s" "SIP msg/s" "RSS MB" "sipmeter speed"
for row in "${rows[@]}"; do
    IFS='|' read -r kind tool status secs bytes packets sip_msgs rss <<<"$row"
    if [[ $status != ok ]]; then
        printf '%-4s %-9s %s\n' "$kind" "$tool" "$status"
        continue
    fi
    awk -v k="$kind" -v t="$tool" -v s="$secs" -v b="$bytes" -v p="$packets" -v m="$sip_msgs" \
        -v r="$rss" -v ss="${sip_seconds[$kind]:-}" 'BEGIN {
        d = (s > 0) ? s : 0.001
        sipr = (k == "sig") ? sprintf("%12.0f", m / d) : sprintf("%12s", "-")
        ratio = (ss == "") ? "n/a" : sprintf("x%.1f", s / ((ss > 0) ? ss : 0.001))
        printf "%-4s %-9s %9.2f %9.1f %12.0f %s %9s %14s\n", k, t, s, b / 1e6 / d, p / d, sipr, r, ratio
    }'
done
echo
echo "sipmeter speed = tool seconds / sipmeter seconds on the same file (x2.0: sipmeter twice as fast)."
echo "MB = 10^6 bytes; RSS = peak resident set size; files in $out"

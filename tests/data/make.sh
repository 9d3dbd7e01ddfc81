#!/usr/bin/env bash
# tests/data/make.sh -- record the SIP test captures of sipmeter with real SIP tools.
#
# The captures (*.pcap) and their expected CDR legs (*.expected.json) are COMMITTED.  Nothing in
# the build or the tests runs this script; run it only to regenerate or to add a scenario:
#
#     tests/data/make.sh              # all captures, then truth.py for all of them
#     tests/data/make.sh failures     # only the named capture(s) (names below, without .pcap)
#
# Call-IDs are fixed (sipp -cid_str), but timestamps, talk times and most tags/branches change on
# every run, so the expected files are recomputed at the end by tests/data/truth.py (tshark +
# Python, independent of our Rust code).  Re-run this script only to regenerate; commit the
# captures, the scenarios and the expected files together.
#
# Requirements (Debian package in brackets): sipp [sip-tester], tcpdump [tcpdump],
# tshark [tshark], editcap [wireshark-common], python3 [python3], timeout [coreutils].
# tcpdump on "lo" needs root or CAP_NET_RAW.  Only loopback is used (127.0.0.1 and ::1).
#
# How a capture is made: tcpdump -i lo -s 0 -U --immediate-mode, with a BPF filter on the
# scenario's port pair, is started; the SIPp UAS (always on port 5060 or 5061, the product's
# default SIP ports) and the SIPp UAC (a port of its own, 5070-5079) run with -m call limits,
# SIPp -timeout and a coreutils `timeout` around them, so the script never hangs; when they
# have exited, a short sleep lets the last packets through and tcpdump is stopped.  No RTP is
# sent (SDP only), so every capture is a few KB.
# SIPp scenarios (XML) and number lists (CSV) are in scenarios/.
#
# Captures (one scenario per file):
#   basic_concurrent  10 basic calls INVITE/100/180/200/ACK/BYE/200, -l 5 -r 5, talk 2-3 s (UDP)
#   failures          486 Busy, 404 Not Found, 503 Unavailable (each ACKed), and a CANCELled
#                     call (INVITE/100/180/CANCEL/200/487/ACK)                             (UDP)
#   reinvite          answered call, re-INVITE hold (a=sendonly), re-INVITE unhold (a=sendrecv),
#                     BYE                                                                  (UDP)
#   transfer          blind transfer A->B, B REFERs A to C (202, NOTIFY x2), A INVITEs C with a
#                     new Call-ID and Referred-By; plus an attended-transfer INVITE D->C carrying
#                     Replaces (the A-C dialog) and Referred-By                           (UDP)
#   forking           one INVITE, 180s from two forks (To-tags fork-desk-1, fork-mobile-2),
#                     fork-mobile-2 answers 200, fork-desk-1 then sends 487               (UDP)
#   forking_fail_first  same two forks, but fork-desk-1 answers 486 BEFORE fork-mobile-2's 200
#   tcp               4 calls over one SIP/TCP connection (sipp -t t1, concurrent); each 100 and
#                     180 are written by one send, so two SIP messages share a TCP segment
#   ipv6              one basic call over [::1]                                            (UDP)
#   partial_window    editcap cut of basic_concurrent: only packets from start+0.25 s to
#                     start+2.5 s, so legs start without their INVITE (partial) and end without
#                     BYE (end of input)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SC=$HERE/scenarios
ALL=(basic_concurrent failures reinvite transfer forking forking_fail_first tcp ipv6 partial_window)

need() { # command debian-package
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "make.sh: '$1' not found; install it: apt-get install $2" >&2
    exit 1
  fi
}
need sipp sip-tester
need tcpdump tcpdump
need tshark tshark
need editcap wireshark-common
need python3 python3
need timeout coreutils

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sipmeter-testdata.XXXXXX")
TD_PID=
PIDS=()
KEEP_WORK=0
cleanup() {
  local e
  for e in "${PIDS[@]}" $TD_PID; do kill "${e%%:*}" 2>/dev/null || true; done
  if [ "$KEEP_WORK" = 1 ]; then echo "make.sh: logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# start_capture NAME BPF-FILTER
start_capture() {
  local name=$1 filter=$2 i
  tcpdump -i lo -s 0 -U --immediate-mode -n -w "$WORK/$name.pcap" "$filter" 2>"$WORK/$name.tcpdump.log" &
  TD_PID=$!
  for i in $(seq 50); do
    grep -q 'listening on' "$WORK/$name.tcpdump.log" 2>/dev/null && return 0
    kill -0 "$TD_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "make.sh: tcpdump did not start (needs root/CAP_NET_RAW):" >&2
  cat "$WORK/$name.tcpdump.log" >&2
  exit 1
}

# stop_capture NAME: flush, stop tcpdump, move the capture into tests/data
stop_capture() {
  local name=$1
  # --immediate-mode hands every packet to tcpdump at once (without it libpcap delivers them
  # in blocks and SIGINT can lose the last ones); the sleep covers the remaining latency
  sleep 1
  kill -INT "$TD_PID"
  wait "$TD_PID" || true
  TD_PID=
  mv "$WORK/$name.pcap" "$HERE/$name.pcap"
  echo "make.sh: wrote $name.pcap ($(wc -c <"$HERE/$name.pcap") bytes)"
}

# sipp_bg LOGNAME SIPP-ARGS...: run SIPp in the background (working directory $WORK)
sipp_bg() {
  local log=$1; shift
  (cd "$WORK" && exec timeout 60 sipp -nostdin -timeout 40s -timeout_error -trace_err "$@") \
    >"$WORK/$log.log" 2>&1 &
  PIDS+=("$!:$log")
}

# wait_sipp: wait for every SIPp started by sipp_bg; fail loudly if one failed
wait_sipp() {
  local entry pid log rc failed=0
  for entry in "${PIDS[@]}"; do
    pid=${entry%%:*}; log=${entry#*:}
    rc=0; wait "$pid" || rc=$?
    if [ "$rc" -ne 0 ]; then
      echo "make.sh: sipp '$log' failed (exit $rc); see $log.log and *_errors.log" >&2
      failed=1
    fi
  done
  PIDS=()
  if [ "$failed" -ne 0 ]; then KEEP_WORK=1; exit 1; fi
}

UAS_UP=0.5   # seconds to let a UAS bind its port before the UAC starts

make_basic_concurrent() {
  start_capture basic_concurrent 'udp and port 5060 and port 5070'
  sipp_bg uas -sf "$SC/basic_uas.xml" -i 127.0.0.1 -p 5060 -m 10
  sleep $UAS_UP
  sipp_bg uac -sf "$SC/basic_uac.xml" -inf "$SC/basic_numbers.csv" -i 127.0.0.1 -p 5070 \
    -m 10 -l 5 -r 5 -cid_str 'basic-%u@sipmeter.test' 127.0.0.1:5060
  wait_sipp
  stop_capture basic_concurrent
}

make_failures() {
  start_capture failures 'udp and port 5060 and port 5071'
  local spec code reason called
  for spec in '486:Busy Here:442030070486' '404:Not Found:442030070404' \
              '503:Service Unavailable:442030070503'; do
    IFS=: read -r code reason called <<<"$spec"
    sed -e "s/@CODE@/$code/" -e "s/@REASON@/$reason/" "$SC/reject_uas.xml.in" >"$WORK/reject_${code}_uas.xml"
    sipp_bg "uas-$code" -sf "$WORK/reject_${code}_uas.xml" -i 127.0.0.1 -p 5060 -m 1
    sleep $UAS_UP
    sipp_bg "uac-$code" -sf "$SC/reject_uac.xml" -i 127.0.0.1 -p 5071 -m 1 -s "$called" \
      -key caller 442070070001 -cid_str "fail-$code-%u@sipmeter.test" 127.0.0.1:5060
    wait_sipp
    sleep 0.3
  done
  sipp_bg uas-cancel -sf "$SC/cancel_uas.xml" -i 127.0.0.1 -p 5060 -m 1
  sleep $UAS_UP
  sipp_bg uac-cancel -sf "$SC/cancel_uac.xml" -i 127.0.0.1 -p 5071 -m 1 -s 442030070487 \
    -key caller 442070070001 -cid_str 'fail-cancel-%u@sipmeter.test' 127.0.0.1:5060
  wait_sipp
  stop_capture failures
}

make_reinvite() {
  start_capture reinvite 'udp and port 5060 and port 5072'
  sipp_bg uas -sf "$SC/reinvite_uas.xml" -i 127.0.0.1 -p 5060 -m 1
  sleep $UAS_UP
  sipp_bg uac -sf "$SC/reinvite_uac.xml" -i 127.0.0.1 -p 5072 -m 1 -s 442030080001 \
    -key caller 442070080001 -cid_str 'reinvite-%u@sipmeter.test' 127.0.0.1:5060
  wait_sipp
  stop_capture reinvite
}

# A=442071110001 (UAC 5073, then 5078 for the new call)  B=442071110002 (UAS 5060)
# C=442071110003 (UAS 5061)  D=442071110004 (UAC 5079, attended-transfer INVITE with Replaces)
make_transfer() {
  start_capture transfer 'udp and (port 5060 or port 5061) and (port 5073 or port 5078 or port 5079)'
  sipp_bg uas-b -sf "$SC/transfer_b_uas.xml" -i 127.0.0.1 -p 5060 -m 1 \
    -key self 442071110002 -key transfer_target 442071110003@127.0.0.1:5061
  sipp_bg uas-c -sf "$SC/transfer_c_uas.xml" -i 127.0.0.1 -p 5061 -m 2
  sleep $UAS_UP
  # leg 1: A calls B; B REFERs A to C about 0.8 s later
  sipp_bg uac-a -sf "$SC/transfer_a_uac.xml" -i 127.0.0.1 -p 5073 -m 1 -s 442071110002 \
    -key caller 442071110001 -cid_str 'xfer-a-b-%u@sipmeter.test' 127.0.0.1:5060
  sleep 1.5
  # leg 2: A's new INVITE to C (after the REFER and its first NOTIFY)
  sipp_bg uac-a2 -sf "$SC/transfer_a2_uac.xml" -i 127.0.0.1 -p 5078 -m 1 -s 442071110003 \
    -key caller 442071110001 -key referred_by sip:442071110002@sipmeter.test \
    -cid_str 'xfer-a-c-%u@sipmeter.test' 127.0.0.1:5061
  sleep 1.5
  # leg 3: attended transfer, D's INVITE to C replaces the A-C dialog of leg 2
  sipp_bg uac-d -sf "$SC/transfer_d_uac.xml" -i 127.0.0.1 -p 5079 -m 1 -s 442071110003 \
    -key caller 442071110004 -key referred_by sip:442071110001@sipmeter.test \
    -key replaces 'xfer-a-c-1@sipmeter.test;to-tag=xfer-c-tag-1;from-tag=xfer-a2-tag' \
    -cid_str 'xfer-d-c-%u@sipmeter.test' 127.0.0.1:5061
  wait_sipp
  stop_capture transfer
}

make_forking_variant() { # name uac-port called cid-prefix
  local name=$1 port=$2 called=$3
  start_capture "$name" "udp and port 5060 and port $port"
  sipp_bg uas -sf "$SC/${name}_uas.xml" -i 127.0.0.1 -p 5060 -m 1
  sleep $UAS_UP
  sipp_bg uac -sf "$SC/${name}_uac.xml" -i 127.0.0.1 -p "$port" -m 1 -s "$called" \
    -key caller 442070090001 -cid_str "$4-%u@sipmeter.test" 127.0.0.1:5060
  wait_sipp
  stop_capture "$name"
}
make_forking() { make_forking_variant forking 5074 442030090001 fork; }
make_forking_fail_first() { make_forking_variant forking_fail_first 5077 442030090002 forkfail; }

make_tcp() {
  # the UAC's TCP connection comes from an ephemeral port: filter on the UAS port only
  start_capture tcp 'tcp and port 5060'
  sipp_bg uas -sf "$SC/tcp_uas.xml" -t t1 -i 127.0.0.1 -p 5060 -m 4
  sleep $UAS_UP
  sipp_bg uac -sf "$SC/basic_uac.xml" -inf "$SC/tcp_numbers.csv" -t t1 -i 127.0.0.1 -p 5075 \
    -m 4 -l 4 -r 4 -cid_str 'tcp-%u@sipmeter.test' 127.0.0.1:5060
  wait_sipp
  stop_capture tcp
}

make_ipv6() {
  start_capture ipv6 'ip6 and udp and port 5060 and port 5076'
  sipp_bg uas -sf "$SC/basic_uas.xml" -i ::1 -p 5060 -m 1
  sleep $UAS_UP
  sipp_bg uac -sf "$SC/basic_uac.xml" -inf "$SC/ipv6_numbers.csv" -i ::1 -p 5076 -m 1 \
    -cid_str 'ipv6-%u@sipmeter.test' '[::1]:5060'
  wait_sipp
  stop_capture ipv6
}

make_partial_window() {
  [ -f "$HERE/basic_concurrent.pcap" ] || make_basic_concurrent
  local t0
  t0=$(tshark -r "$HERE/basic_concurrent.pcap" -c 1 -T fields -e frame.time_epoch 2>/dev/null)
  editcap -F pcap \
    -A "$(python3 -c "print('%.6f' % ($t0 + 0.25))")" \
    -B "$(python3 -c "print('%.6f' % ($t0 + 2.5))")" \
    "$HERE/basic_concurrent.pcap" "$HERE/partial_window.pcap"
  echo "make.sh: wrote partial_window.pcap ($(wc -c <"$HERE/partial_window.pcap") bytes)"
}

if [ "$#" -gt 0 ]; then NAMES=("$@"); else NAMES=("${ALL[@]}"); fi
for n in "${NAMES[@]}"; do
  case " ${ALL[*]} " in *" $n "*) ;; *) echo "make.sh: unknown capture '$n' (one of: ${ALL[*]})" >&2; exit 2;; esac
done
for n in "${NAMES[@]}"; do
  echo "make.sh: recording $n"
  "make_$n"
done

# the truth: expected CDR legs, computed from the captures by tshark + truth.py
for n in "${NAMES[@]}"; do
  python3 "$HERE/truth.py" "$HERE/$n.pcap"
done

# sanity check of the recordings: leg counts, and no leg left open (a lost packet would show as
# end_of_input) except in partial_window, which is cut on purpose
python3 - "$HERE" "${NAMES[@]}" <<'PY'
import json, sys
want = {"basic_concurrent": 10, "failures": 4, "reinvite": 1, "transfer": 3, "forking": 1,
        "forking_fail_first": 1, "tcp": 4, "ipv6": 1}
bad = 0
for name in sys.argv[2:]:
    legs = json.load(open("%s/%s.expected.json" % (sys.argv[1], name)))
    if name in want and len(legs) != want[name]:
        print("make.sh: %s: %d legs, expected %d" % (name, len(legs), want[name])); bad = 1
    if name != "partial_window" and any(l["end_reason"] == "end_of_input" for l in legs):
        print("make.sh: %s: a leg ends with end_of_input (packets lost?)" % name); bad = 1
sys.exit(bad)
PY
echo "make.sh: done"

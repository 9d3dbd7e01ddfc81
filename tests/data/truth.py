#!/usr/bin/env python3
"""truth.py -- the expected CDR legs of a test capture, computed independently of sipmeter.

Usage:  python3 tests/data/truth.py CAPTURE.pcap [CAPTURE.pcap ...]
Writes: CAPTURE.expected.json beside each capture (make.sh runs this after recording).

Python 3 standard library only.  The SIP parsing is tshark's, not ours: the script runs
    tshark -r CAPTURE -n -Y sip -T pdml
and reads the dissected fields.  PDML (not -T fields) because one frame can carry several SIP
messages (SIP over TCP); PDML keeps each message's fields apart, -T fields would merge them
into comma lists that cannot be re-aligned.  Ports: every capture has one side of each dialog
on 5060 or 5061, which tshark dissects as SIP by default (no -d option needed).

Rules (SPEC.md section 1), applied per Call-ID in capture order:
  * leg: one per Call-ID that contains an INVITE request.  A Call-ID without a captured INVITE
    but with an 18x or 2xx response whose CSeq method is INVITE also gives one leg, with
    partial = true (it is opened by the first such response).  Other Call-IDs give no leg.
  * initial INVITE: the first INVITE of the Call-ID; its CSeq number N identifies the responses
    to it (CSeq method INVITE and CSeq number N).  re-INVITEs (higher CSeq) never change
    answer, end or last_response.  For a partial leg N is the opening response's CSeq number.
  * start: time of the message that opens the leg (the initial INVITE; for a partial leg the
    opening response).  In every committed capture this is the Call-ID's first packet.
  * answer: time of the first 2xx response to the initial INVITE; null if none.
  * end and end_reason, first rule that applies:
      - a BYE was seen: if a 2xx with CSeq method BYE and the number of a seen BYE follows,
        end = that first 2xx, end_reason = "bye_confirmed"; else end = the first BYE,
        end_reason = "bye";
      - answered, no BYE: end = the leg's last packet, end_reason = "end_of_input";
      - a CANCEL was seen (not answered): end = the first CANCEL, end_reason = "cancel";
      - final (>= 300) responses to the initial INVITE: end = the first transmission of the
        last distinct (To-tag, code) final response -- with forking a failing fork does not end
        the leg while another fork may still answer -- end_reason = "not_answered";
      - otherwise: end = the leg's last packet, end_reason = "end_of_input".
    Linger timers (5 s after a final or a confirmed BYE, 10 s after CANCEL) do not move `end`
    and do not change the reason, even when the capture stops before they expire.
    "The leg's last packet" is the last packet of its Call-ID in the capture.
  * duration = end - start; connect_duration = end - answer (null if unanswered); seconds,
    rounded to 6 decimals, computed from integer microseconds.
  * last_response / last_response_text: if answered, the answering 2xx (code and reason
    phrase); else the final response that ended the leg (so 487 for a cancelled call when the
    487 was captured); else the last provisional response (a leg still ringing when the
    capture ends shows 180); else null.  A provisional never replaces a final or a 2xx.
  * to_tag: To-tag of the answering 2xx (the fork that answered), else of the final response
    that ended the leg, else null.
  * caller / called / caller_domain / called_domain: user and host parts of the From / To URI
    of the initial INVITE (of the opening response for a partial leg); caller_name: the From
    display name without quotes, or null.
  * caller_ip / caller_port / called_ip / called_port: the IP source / destination of the
    initial INVITE (for a partial leg: the destination / source of the opening response).
  * transport: "udp" or "tcp", of the opening message.
  * hangup_by: "caller" if the first BYE's From-tag is the initial INVITE's From-tag, else
    "callee"; "caller" for a CANCEL; else null.
  * referred_by / replaces: raw value of the Referred-By / Replaces header of the initial
    INVITE, or null.  refer_to: raw Refer-To value of the first REFER sent within the Call-ID
    (the transferor's leg), or null.
  * times: RFC 3339 UTC, exactly 6 fractional digits, "Z"; frame.time_epoch is truncated (not
    rounded) to microseconds.
Output: a JSON array of legs sorted by (start, call_id), keys in a fixed order.
"""
import datetime
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET

FIELDS = {
    "sip.Method": "method",
    "sip.Status-Code": "code",
    "sip.Status-Line": "status_line",
    "sip.Call-ID": "call_id",
    "sip.CSeq.seq": "cseq",
    "sip.CSeq.method": "cseq_method",
    "sip.from.user": "from_user",
    "sip.from.host": "from_host",
    "sip.from.tag": "from_tag",
    "sip.from.display.info": "from_display",
    "sip.to.user": "to_user",
    "sip.to.host": "to_host",
    "sip.to.tag": "to_tag",
    "sip.Refer-To": "refer_to",
    "sip.Referred-by": "referred_by",
    "sip.Replaces": "replaces",
}


def epoch_us(text):
    """'1795882785.492248123' -> 1795882785492248 (truncated to microseconds)."""
    sec, _, frac = text.partition(".")
    return int(sec) * 1_000_000 + int((frac + "000000")[:6])


def rfc3339(us):
    sec, frac = divmod(us, 1_000_000)
    t = datetime.datetime.fromtimestamp(sec, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S") + ".%06dZ" % frac


def seconds(us):
    return round(us / 1_000_000, 6)


def sip_messages(pcap):
    """Yield one dict per SIP message, in capture order."""
    cmd = ["tshark", "-r", pcap, "-n", "-Y", "sip", "-T", "pdml"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    for _, packet in ET.iterparse(proc.stdout):
        if packet.tag != "packet":
            continue
        frame = {}
        sips = []
        for proto in packet.findall("proto"):
            name = proto.get("name")
            for f in proto.iter("field"):
                n = f.get("name")
                if n in ("frame.time_epoch", "frame.number", "ip.src", "ip.dst", "ipv6.src",
                         "ipv6.dst", "udp.srcport", "udp.dstport", "tcp.srcport", "tcp.dstport"):
                    frame.setdefault(n, f.get("show"))
            if name in ("udp", "tcp"):
                frame["transport"] = name
            if name == "sip":
                sips.append(proto)
        for i, proto in enumerate(sips):
            m = {"ts": epoch_us(frame["frame.time_epoch"]), "frame": int(frame["frame.number"]),
                 "index": i, "transport": frame.get("transport"),
                 "src": frame.get("ip.src") or frame.get("ipv6.src"),
                 "dst": frame.get("ip.dst") or frame.get("ipv6.dst"),
                 "sport": int(frame.get("udp.srcport") or frame.get("tcp.srcport")),
                 "dport": int(frame.get("udp.dstport") or frame.get("tcp.dstport"))}
            for f in proto.iter("field"):  # nested <proto name="sdp"> is not a field: skipped
                key = FIELDS.get(f.get("name"))
                if key and key not in m:
                    m[key] = f.get("show")
            if "code" in m:
                m["code"] = int(m["code"])
            if "cseq" in m:
                m["cseq"] = int(m["cseq"])
            if "call_id" in m:
                yield m
        packet.clear()
    if proc.wait() != 0:
        sys.exit("truth.py: tshark failed on %s" % pcap)


def reason_phrase(m):
    parts = m.get("status_line", "").split(" ", 2)
    return parts[2] if len(parts) == 3 else None


def leg_of(call_id, msgs):
    invites = [m for m in msgs if m.get("method") == "INVITE"]
    if invites:
        opener, partial = invites[0], False
    else:
        openers = [m for m in msgs if "code" in m and m.get("cseq_method") == "INVITE"
                   and (180 <= m["code"] < 190 or 200 <= m["code"] < 300)]
        if not openers:
            return None
        opener, partial = openers[0], True
    n0 = opener.get("cseq")
    after = msgs[msgs.index(opener):]
    to_initial = [m for m in after if "code" in m and m.get("cseq_method") == "INVITE"
                  and m.get("cseq") == n0]
    answer = next((m for m in to_initial if 200 <= m["code"] < 300), None)
    finals = []
    seen = set()
    for m in to_initial:
        if m["code"] >= 300 and (m.get("to_tag"), m["code"]) not in seen:
            seen.add((m.get("to_tag"), m["code"]))
            finals.append(m)
    byes = [m for m in after if m.get("method") == "BYE"]
    bye_seqs = {m.get("cseq") for m in byes}
    bye_ok = next((m for m in after if "code" in m and 200 <= m["code"] < 300
                   and m.get("cseq_method") == "BYE" and m.get("cseq") in bye_seqs), None)
    cancel = next((m for m in after if m.get("method") == "CANCEL"), None)
    last = msgs[-1]
    ended_by_final = None
    hangup_by = None
    if byes:
        end, reason = (bye_ok, "bye_confirmed") if bye_ok else (byes[0], "bye")
        hangup_by = "caller" if byes[0].get("from_tag") == opener.get("from_tag") else "callee"
    elif answer:
        end, reason = last, "end_of_input"
    elif cancel:
        end, reason = cancel, "cancel"
        hangup_by = "caller"
        ended_by_final = finals[-1] if finals else None
    elif finals:
        end, reason = finals[-1], "not_answered"
        ended_by_final = finals[-1]
    else:
        end, reason = last, "end_of_input"
    result = answer or ended_by_final
    provisional = [m for m in to_initial if m["code"] < 200]
    shown = result or (provisional[-1] if provisional else None)
    refer = next((m for m in msgs if m.get("method") == "REFER"), None)
    if partial:  # the opener is a response: it travels callee -> caller
        caller_ip, caller_port = opener["dst"], opener["dport"]
        called_ip, called_port = opener["src"], opener["sport"]
    else:
        caller_ip, caller_port = opener["src"], opener["sport"]
        called_ip, called_port = opener["dst"], opener["dport"]
    name = opener.get("from_display")
    if name is not None:
        name = name.strip().strip('"') or None
    if msgs[0] is not opener:
        print("truth.py: note: %s: first packet of the Call-ID precedes the leg's opener"
              % call_id, file=sys.stderr)
    return {
        "call_id": call_id,
        "caller": opener.get("from_user"),
        "called": opener.get("to_user"),
        "caller_domain": opener.get("from_host"),
        "called_domain": opener.get("to_host"),
        "caller_name": name,
        "start": rfc3339(opener["ts"]),
        "answer": rfc3339(answer["ts"]) if answer else None,
        "end": rfc3339(end["ts"]),
        "duration": seconds(end["ts"] - opener["ts"]),
        "connect_duration": seconds(end["ts"] - answer["ts"]) if answer else None,
        "last_response": shown["code"] if shown else None,
        "last_response_text": reason_phrase(shown) if shown else None,
        "end_reason": reason,
        "hangup_by": hangup_by,
        "to_tag": result.get("to_tag") if result else None,
        "transport": opener["transport"],
        "caller_ip": caller_ip,
        "caller_port": caller_port,
        "called_ip": called_ip,
        "called_port": called_port,
        "partial": partial,
        "referred_by": None if partial else opener.get("referred_by"),
        "refer_to": refer.get("refer_to") if refer else None,
        "replaces": None if partial else opener.get("replaces"),
        "_sort": (opener["ts"], call_id),
    }


def truth(pcap):
    by_call = {}
    for m in sip_messages(pcap):
        by_call.setdefault(m["call_id"], []).append(m)
    legs = [leg for cid, msgs in by_call.items() if (leg := leg_of(cid, msgs))]
    legs.sort(key=lambda leg: leg["_sort"])
    for leg in legs:
        del leg["_sort"]
    return legs


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    for pcap in argv[1:]:
        legs = truth(pcap)
        out = os.path.splitext(pcap)[0] + ".expected.json"
        with open(out, "w") as f:
            json.dump(legs, f, indent=2)
            f.write("\n")
        reasons = {}
        for leg in legs:
            reasons[leg["end_reason"]] = reasons.get(leg["end_reason"], 0) + 1
        print("truth.py: %s: %d legs %s" % (os.path.basename(out), len(legs),
                                           " ".join("%s=%d" % kv for kv in sorted(reasons.items()))))


if __name__ == "__main__":
    main(sys.argv)

//! End-to-end checks of the generator binary: the bytes it writes are a valid classic pcap
//! whose SIP content agrees with the `--truth` file, output is a pure function of the seed,
//! and the requested concurrency and size are honoured.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_sipmeter-gen");
/// 2026-11-01T00:00:00Z, the `--start` used by these tests.
const BASE_S: u64 = 1_793_491_200;

/// A scratch directory per test, removed when the test ends (tests run in parallel).
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sipmeter-gen-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn gen_(args: &[&str]) -> Output {
    let out = Command::new(BIN)
        .args(args)
        .output()
        .expect("run sipmeter-gen");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    out
}

fn gen_ok(args: &[&str]) -> String {
    let out = gen_(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    stderr
}

/// `2026-11-DDTHH:MM:SS.ffffffZ` to microseconds since the epoch (November 2026 only).
fn micros(s: &str) -> u64 {
    assert!(
        s.starts_with("2026-11-") && s.ends_with('Z') && s.len() == 27,
        "{s}"
    );
    let n = |r: std::ops::Range<usize>| s[r].parse::<u64>().unwrap();
    let secs = BASE_S + (n(8..10) - 1) * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    secs * 1_000_000 + n(20..26)
}

fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b[..4].try_into().unwrap())
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes(b[..2].try_into().unwrap())
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes(b[..4].try_into().unwrap())
}

fn ones_complement_ok(data: &[u8]) -> bool {
    let mut acc: u32 = 0;
    for c in data.chunks(2) {
        acc += u32::from(c[0]) << 8 | u32::from(*c.get(1).unwrap_or(&0));
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc == 0xffff
}

/// (source ip, source port, destination ip, destination port) of a TCP direction.
type FourTuple = ([u8; 4], u16, [u8; 4], u16);

/// One SIP message seen in the capture.
#[derive(Debug)]
struct Sip {
    time: u64,
    first_line: String,
    call_id: String,
    cseq: String,
}

#[derive(Default, Debug)]
struct Capture {
    packets: u64,
    rtp_packets: u64,
    tcp_segments: u64,
    tcp_fins: u64,
    sip: Vec<Sip>,
}

fn header<'a>(msg: &'a str, name: &str) -> &'a str {
    msg.split("\r\n")
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
        .unwrap_or_else(|| panic!("no {name} in {msg}"))
}

/// Splits a byte stream into SIP messages framed by Content-Length, returning what is left.
fn frame_messages(buf: &mut Vec<u8>, time: u64, out: &mut Vec<Sip>) {
    loop {
        let Some(hdr_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            return;
        };
        let head = std::str::from_utf8(&buf[..hdr_end])
            .expect("utf-8 headers")
            .to_string();
        let len: usize = header(&head, "Content-Length").parse().unwrap();
        let total = hdr_end + 4 + len;
        if buf.len() < total {
            return;
        }
        out.push(sip_of(&head, time));
        buf.drain(..total);
    }
}

fn sip_of(head: &str, time: u64) -> Sip {
    Sip {
        time,
        first_line: head.lines().next().unwrap().to_string(),
        call_id: header(head, "Call-ID").to_string(),
        cseq: header(head, "CSeq").to_string(),
    }
}

/// Walks the capture by hand, checking every layer, and collects the SIP messages.
fn parse_pcap(path: &Path) -> Capture {
    let data = std::fs::read(path).unwrap();
    assert!(data.len() >= 24, "too short for a pcap header");
    assert_eq!(
        le32(&data[0..]),
        0xa1b2_c3d4,
        "microsecond little-endian magic"
    );
    assert_eq!(u16::from_le_bytes([data[4], data[5]]), 2);
    assert_eq!(u16::from_le_bytes([data[6], data[7]]), 4);
    let snaplen = le32(&data[16..]);
    assert_eq!(le32(&data[20..]), 1, "LINKTYPE_ETHERNET");

    let mut cap = Capture::default();
    let mut off = 24;
    let mut last_time = 0;
    // TCP reassembly keyed by (src ip, src port, dst ip, dst port): next expected seq + buffer.
    let mut streams: HashMap<FourTuple, (u32, Vec<u8>)> = HashMap::new();
    let mut fins = 0;
    while off < data.len() {
        assert!(off + 16 <= data.len(), "truncated record header at {off}");
        let (sec, usec) = (le32(&data[off..]), le32(&data[off + 4..]));
        let (incl, orig) = (
            le32(&data[off + 8..]) as usize,
            le32(&data[off + 12..]) as usize,
        );
        assert!(usec < 1_000_000);
        assert_eq!(incl, orig, "nothing is truncated");
        assert!(incl as u32 <= snaplen);
        let time = u64::from(sec) * 1_000_000 + u64::from(usec);
        assert!(time >= last_time, "records in time order at offset {off}");
        last_time = time;
        let f = &data[off + 16..off + 16 + incl];
        off += 16 + incl;
        cap.packets += 1;

        assert_eq!(be16(&f[12..]), 0x0800, "IPv4 ethertype");
        let ip = &f[14..];
        assert_eq!(ip[0], 0x45);
        assert_eq!(
            be16(&ip[2..]) as usize,
            ip.len(),
            "IP total length = frame - 14"
        );
        assert!(ones_complement_ok(&ip[..20]), "IP header checksum");
        let (src, dst): ([u8; 4], [u8; 4]) = (
            ip[12..16].try_into().unwrap(),
            ip[16..20].try_into().unwrap(),
        );
        let l4 = &ip[20..];
        match ip[9] {
            17 => {
                assert_eq!(be16(&l4[4..]) as usize, l4.len(), "UDP length");
                let (sport, dport) = (be16(l4), be16(&l4[2..]));
                let payload = &l4[8..];
                if sport == 5060 || dport == 5060 {
                    let head_end = payload.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
                    let head = std::str::from_utf8(&payload[..head_end]).unwrap();
                    let len: usize = header(head, "Content-Length").parse().unwrap();
                    assert_eq!(
                        head_end + 4 + len,
                        payload.len(),
                        "one whole message per datagram"
                    );
                    cap.sip.push(sip_of(head, time));
                } else {
                    assert_eq!(payload.len(), 172, "G.711 20 ms RTP payload");
                    assert_eq!(payload[0], 0x80, "RTP v2");
                    assert_eq!(payload[1] & 0x7f, 0, "PCMU");
                    for p in [sport, dport] {
                        assert!(p % 2 == 0 && (10_000..=60_000).contains(&p), "RTP port {p}");
                    }
                    cap.rtp_packets += 1;
                }
            }
            6 => {
                cap.tcp_segments += 1;
                let (sport, dport) = (be16(l4), be16(&l4[2..]));
                assert!(sport == 5060 || dport == 5060);
                let seq = be32(&l4[4..]);
                let flags = l4[13];
                let payload = &l4[usize::from(l4[12] >> 4) * 4..];
                let key = (src, sport, dst, dport);
                if flags & 0x02 != 0 {
                    assert!(payload.is_empty());
                    assert!(
                        streams
                            .insert(key, (seq.wrapping_add(1), Vec::new()))
                            .is_none()
                    );
                    continue;
                }
                if payload.is_empty() && flags & 0x01 == 0 {
                    continue; // a pure ACK (the last one arrives after this side's FIN)
                }
                let st = streams
                    .get_mut(&key)
                    .expect("data and FIN only after a SYN");
                if flags & 0x01 != 0 {
                    assert_eq!(seq, st.0, "FIN at the end of the sent data");
                    assert!(st.1.is_empty(), "no partial SIP message left at FIN");
                    streams.remove(&key);
                    fins += 1;
                    continue;
                }
                assert_eq!(seq, st.0, "TCP sequence continuity");
                st.0 = seq.wrapping_add(payload.len() as u32);
                st.1.extend_from_slice(payload);
                frame_messages(&mut st.1, time, &mut cap.sip);
            }
            p => panic!("unexpected IP protocol {p}"),
        }
    }
    assert_eq!(off, data.len());
    assert!(
        streams.is_empty(),
        "every TCP connection is closed: {streams:?}"
    );
    cap.tcp_fins = fins;
    cap
}

fn read_truth(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("valid JSON line"))
        .collect()
}

fn summary_value(stderr: &str, key: &str) -> f64 {
    let needle = format!("{key}=");
    let at = stderr
        .find(&needle)
        .unwrap_or_else(|| panic!("{key} in {stderr}"))
        + needle.len();
    stderr[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[test]
fn capture_is_valid_pcap_and_matches_the_truth() {
    let dir = Scratch::new("capture_is_v");
    let (pcap, truth) = (dir.path("mixed.pcap"), dir.path("mixed.jsonl"));
    let stderr = gen_ok(&[
        "--out",
        pcap.to_str().unwrap(),
        "--truth",
        truth.to_str().unwrap(),
        "--calls",
        "300",
        "--concurrency",
        "20",
        "--duration-s",
        "3",
        "--rtp",
        "--tcp-ratio",
        "0.3",
        "--failure-ratio",
        "0.3",
        "--seed",
        "11",
        "--start",
        "2026-11-01T00:00:00Z",
    ]);
    let cap = parse_pcap(&pcap);
    assert_eq!(summary_value(&stderr, "packets") as u64, cap.packets);
    assert_eq!(
        summary_value(&stderr, "sip_messages") as usize,
        cap.sip.len()
    );
    assert_eq!(
        summary_value(&stderr, "rtp_packets") as u64,
        cap.rtp_packets
    );
    assert!(cap.rtp_packets > 10_000);
    assert!(cap.tcp_segments > 0);

    let mut by_call: BTreeMap<&str, Vec<&Sip>> = BTreeMap::new();
    for m in &cap.sip {
        by_call.entry(&m.call_id).or_default().push(m);
    }
    let truth = read_truth(&truth);
    assert_eq!(truth.len(), 300);
    let tcp_calls = truth.iter().filter(|t| t["transport"] == "tcp").count() as u64;
    assert!(
        tcp_calls > 50,
        "30 % of 300 calls over TCP, got {tcp_calls}"
    );
    assert_eq!(
        cap.tcp_fins,
        2 * tcp_calls,
        "each call's connection is closed by both sides"
    );
    assert_eq!(by_call.len(), 300, "one Call-ID per call");
    let mut reasons: HashMap<String, usize> = HashMap::new();
    for t in &truth {
        let id = t["call_id"].as_str().unwrap();
        let msgs = &by_call[id];
        let at = |pred: &dyn Fn(&Sip) -> bool| msgs.iter().find(|m| pred(m)).map(|m| m.time);
        let start = micros(t["start"].as_str().unwrap());
        let end = micros(t["end"].as_str().unwrap());
        let invite = at(&|m| m.first_line.starts_with("INVITE ")).unwrap();
        assert_eq!(start, invite, "{id}: start is the INVITE");
        assert!(msgs.iter().all(|m| m.time >= start));
        for k in ["caller", "called"] {
            let n = t[k].as_str().unwrap();
            assert!(
                n.starts_with('+') && n.len() >= 11 && n[1..].bytes().all(|b| b.is_ascii_digit()),
                "{n}"
            );
        }
        let reason = t["end_reason"].as_str().unwrap();
        let code = t["last_response"].as_u64().unwrap();
        match reason {
            "bye_confirmed" => {
                assert_eq!(code, 200);
                let answer = micros(t["answer"].as_str().unwrap());
                let ok =
                    at(&|m| m.first_line.starts_with("SIP/2.0 200") && m.cseq.ends_with("INVITE"));
                assert_eq!(Some(answer), ok, "{id}: answer is the 200 to INVITE");
                let bye_ok =
                    at(&|m| m.first_line.starts_with("SIP/2.0 200") && m.cseq.ends_with("BYE"));
                assert_eq!(Some(end), bye_ok, "{id}: end is the 200 to BYE");
                assert!(start < answer && answer < end);
            }
            "not_answered" => {
                assert!(t["answer"].is_null());
                assert!([486, 404, 503].contains(&code), "{code}");
                let fin = at(&|m| m.first_line.starts_with(&format!("SIP/2.0 {code} ")));
                assert_eq!(Some(end), fin, "{id}: end is the final response");
                assert!(at(&|m| m.first_line.starts_with("ACK ")).unwrap() > end);
            }
            "cancel" => {
                assert!(t["answer"].is_null());
                assert_eq!(code, 487);
                assert_eq!(Some(end), at(&|m| m.first_line.starts_with("CANCEL ")));
                assert_eq!(t["hangup_by"], "caller");
                assert!(at(&|m| m.first_line.starts_with("SIP/2.0 487")).unwrap() >= end);
            }
            other => panic!("unexpected end_reason {other}"),
        }
        *reasons.entry(reason.to_string()).or_default() += 1;
    }
    // 30 % failures requested: allow sampling noise on 300 calls.
    let failed = reasons.get("not_answered").unwrap_or(&0) + reasons.get("cancel").unwrap_or(&0);
    assert!((50..=130).contains(&failed), "{reasons:?}");
    assert!(reasons.get("cancel").unwrap_or(&0) > &0);
}

#[test]
fn output_is_a_pure_function_of_the_seed() {
    let dir = Scratch::new("output_is_a_");
    let run = |seed: &str, name: &str| {
        let (p, t) = (
            dir.path(&format!("{name}.pcap")),
            dir.path(&format!("{name}.jsonl")),
        );
        gen_ok(&[
            "--out",
            p.to_str().unwrap(),
            "--truth",
            t.to_str().unwrap(),
            "--calls",
            "60",
            "--concurrency",
            "10",
            "--duration-s",
            "2",
            "--rtp",
            "--tcp-ratio",
            "0.2",
            "--seed",
            seed,
            "--quiet",
        ]);
        (std::fs::read(p).unwrap(), std::fs::read(t).unwrap())
    };
    let a = run("5", "seed-a");
    let b = run("5", "seed-b");
    let c = run("6", "seed-c");
    assert!(a == b, "same seed, same bytes");
    assert!(a.0 != c.0 && a.1 != c.1, "another seed, other calls");
}

#[test]
fn concurrency_is_roughly_as_requested() {
    let dir = Scratch::new("concurrency_");
    let (pcap, truth) = (dir.path("conc.pcap"), dir.path("conc.jsonl"));
    gen_ok(&[
        "--out",
        pcap.to_str().unwrap(),
        "--truth",
        truth.to_str().unwrap(),
        "--calls",
        "3000",
        "--concurrency",
        "40",
        "--duration-s",
        "10",
        "--signalling-only",
        "--seed",
        "3",
        "--start",
        "2026-11-01T00:00:00Z",
    ]);
    let truth = read_truth(&truth);
    assert_eq!(truth.len(), 3000);
    let spans: Vec<(u64, u64)> = truth
        .iter()
        .map(|t| {
            (
                micros(t["start"].as_str().unwrap()),
                micros(t["end"].as_str().unwrap()),
            )
        })
        .collect();
    let first = spans.iter().map(|s| s.0).min().unwrap();
    let last = spans.iter().map(|s| s.1).max().unwrap();
    // Time-weighted mean over the middle of the capture (the tail drains after the last call).
    let (lo, hi) = (first + (last - first) / 5, last - (last - first) / 5);
    let busy: u64 = spans
        .iter()
        .map(|&(s, e)| e.min(hi).saturating_sub(s.max(lo)))
        .sum();
    let mean = busy as f64 / (hi - lo) as f64;
    assert!((30.0..=50.0).contains(&mean), "mean concurrency {mean}");
}

#[test]
fn size_target_stops_the_capture_with_every_call_complete() {
    let dir = Scratch::new("size_target_");
    let (pcap, truth) = (dir.path("size.pcap"), dir.path("size.jsonl"));
    gen_ok(&[
        "--out",
        pcap.to_str().unwrap(),
        "--truth",
        truth.to_str().unwrap(),
        "--size",
        "3M",
        "--rtp",
        "--concurrency",
        "30",
        "--duration-s",
        "20",
    ]);
    let len = std::fs::metadata(&pcap).unwrap().len();
    assert!((3 << 20..=4 << 20).contains(&len), "file size {len}");
    let cap = parse_pcap(&pcap);
    let truth = read_truth(&truth);
    let invites = cap
        .sip
        .iter()
        .filter(|m| m.first_line.starts_with("INVITE "))
        .count();
    assert_eq!(
        invites,
        truth.len(),
        "every started call is in the truth, hence ended"
    );
    let byes = cap
        .sip
        .iter()
        .filter(|m| m.first_line.starts_with("BYE "))
        .count();
    let confirmed = truth
        .iter()
        .filter(|t| t["end_reason"] == "bye_confirmed")
        .count();
    assert_eq!(byes, confirmed);
}

#[test]
fn bad_arguments_fail_cleanly() {
    for (args, needle) in [
        (vec!["--calls", "10"], "--out"),
        (vec!["--out", "x.pcap", "--size", "12Q"], "size"),
        (
            vec!["--out", "x.pcap", "--concurrency", "0"],
            "--concurrency",
        ),
        (vec!["--out", "x.pcap", "--wat"], "unknown option"),
    ] {
        let out = gen_(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(needle),
            "{args:?}"
        );
    }
    let out = gen_(&["--out", "/nonexistent-dir/x.pcap", "--calls", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot create output file /nonexistent-dir/x.pcap"),
        "{err}"
    );
}

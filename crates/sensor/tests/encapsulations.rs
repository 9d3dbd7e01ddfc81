//! The SIPp captures of `tests/data`, rewritten: SIP moved off the SIP ports, wrapped in every
//! tunnel sipmeter opens, carried by SCTP, re-sent as HEPv3. Each rewritten capture must give
//! exactly the legs of the plain capture (whose legs `sipmeter`'s capture tests check against
//! tshark's truth), with the default options.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use calls::Leg;
use capture::{CaptureReader, Decoder, SipPayload, Transport};
use common::wrap::{self, ETH_IPV4, ETH_IPV6};
use sensor::{Pipeline, PipelineConfig, Totals};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

fn captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    v.sort();
    assert!(v.len() >= 9, "the SIPp captures are there");
    v
}

/// The frames of an Ethernet capture.
fn frames(path: &Path) -> Vec<(i64, Vec<u8>)> {
    let f = std::fs::File::open(path).unwrap();
    let mut rd = CaptureReader::new(path.display().to_string(), f).unwrap();
    let mut out = Vec::new();
    while let Some(p) = rd.next_packet().unwrap() {
        assert_eq!(p.linktype, 1, "{}", path.display());
        out.push((p.ts_us, p.data.to_vec()));
    }
    out
}

fn read_with(bytes: &[u8], config: PipelineConfig) -> (Vec<Leg>, Totals) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.pcap");
    std::fs::write(&path, bytes).unwrap();
    let mut p = Pipeline::new(config);
    let mut legs = Vec::new();
    let rep = p.read_file(&path, &mut |mut l| legs.append(&mut l), &mut |_| {});
    assert!(rep.error.is_none(), "{:?}", rep.error);
    legs.extend(p.finish());
    legs.sort_by(|a, b| (a.start, &a.call_id).cmp(&(b.start, &b.call_id)));
    (legs, p.totals().clone())
}

fn read(bytes: &[u8]) -> (Vec<Leg>, Totals) {
    read_with(bytes, PipelineConfig::default())
}

fn plain_legs(path: &Path) -> Vec<Leg> {
    let (legs, _) = read(&std::fs::read(path).unwrap());
    assert!(!legs.is_empty(), "{}", path.display());
    legs
}

fn name(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

type Wrapper = fn(&[u8], u32) -> Vec<u8>;

/// Every tunnel, each a function of (Ethernet frame, frame number).
fn wrappers() -> Vec<(&'static str, Wrapper)> {
    vec![
        ("gre", |f, n| wrap::gre_ip(f, n, false)),
        ("gre-csum-key-seq", |f, n| wrap::gre_ip(f, n, true)),
        ("gre-teb", wrap::gre_teb),
        ("erspan2", wrap::erspan2),
        ("erspan3", |f, n| wrap::erspan3(f, n, false)),
        ("erspan3-subheader", |f, n| wrap::erspan3(f, n, n % 2 == 0)),
        ("vxlan", wrap::vxlan),
        ("geneve", wrap::geneve),
        ("ipip-outer-v4", |f, _| wrap::ipip(f, false)),
        ("ipip-outer-v6", |f, _| wrap::ipip(f, true)),
        ("tzsp", |f, _| wrap::tzsp(f)),
        ("mpls", |f, _| wrap::mpls(f)),
        ("mpls-pw", |f, _| wrap::mpls_pw(f)),
        ("pppoe", |f, _| wrap::pppoe(f)),
        // MPLS → IPv4 → GRE → Ethernet → UDP 4789 → VXLAN → Ethernet → the frame.
        ("nested", |f, n| {
            wrap::mpls(&wrap::gre_teb(&wrap::vxlan(f, n), n))
        }),
    ]
}

#[test]
fn every_tunnel_gives_the_plain_captures_legs() {
    let mut failures = Vec::new();
    for cap in captures() {
        let plain = plain_legs(&cap);
        let fr = frames(&cap);
        for (kind, w) in wrappers() {
            let wrapped: Vec<(i64, Vec<u8>)> = fr
                .iter()
                .enumerate()
                .map(|(i, (ts, f))| (*ts, w(f, i as u32)))
                .collect();
            let (legs, totals) = read(&wrap::pcap(1, &wrapped));
            if legs != plain {
                failures.push(format!(
                    "{} in {kind}: {} legs, expected {}; totals {totals:?}",
                    name(&cap),
                    legs.len(),
                    plain.len()
                ));
            }
            let c = &totals.capture;
            if kind != "pppoe" && c.tunnels == 0 {
                failures.push(format!("{} in {kind}: no tunnel counted", name(&cap)));
            }
            if c.malformed_tunnels + c.unknown_tunnels + c.decode_errors != 0 {
                failures.push(format!("{} in {kind}: {c:?}", name(&cap)));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The SIP ports moved 20 up: 5060 → 5080, 5061 → 5081.
fn moved(port: u16) -> u16 {
    match port {
        5060 | 5061 => port + 20,
        p => p,
    }
}

/// Move the SIP ports of an untagged Ethernet frame (IPv4 or IPv6 without extension headers, as
/// in the SIPp captures) with [`moved`].
fn move_ports(frame: &[u8]) -> Vec<u8> {
    let mut f = frame.to_vec();
    let (proto, l4) = match wrap::ethertype(&f) {
        ETH_IPV4 => (f[14 + 9], 14 + usize::from(f[14] & 0x0f) * 4),
        ETH_IPV6 => (f[14 + 6], 14 + 40),
        _ => return f,
    };
    if proto == 6 || proto == 17 {
        for at in [l4, l4 + 2] {
            let to = moved(u16::from_be_bytes([f[at], f[at + 1]]));
            f[at..at + 2].copy_from_slice(&to.to_be_bytes());
        }
        if proto == 17 {
            f[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]); // no checksum
        }
    }
    f
}

#[test]
fn sip_on_other_ports_is_found_by_default() {
    for cap in captures() {
        let mut plain = plain_legs(&cap);
        for leg in &mut plain {
            leg.src_port = moved(leg.src_port);
            leg.dst_port = moved(leg.dst_port);
        }
        let moved: Vec<(i64, Vec<u8>)> = frames(&cap)
            .iter()
            .map(|(ts, f)| (*ts, move_ports(f)))
            .collect();
        let bytes = wrap::pcap(1, &moved);
        let (legs, _) = read(&bytes);
        assert_eq!(legs, plain, "{}", name(&cap));
        // --sip-ports-only (the old default) reads nothing there...
        let mut only = PipelineConfig::default();
        only.capture.detect_any_port = false;
        let (none, totals) = read_with(&bytes, only.clone());
        assert!(none.is_empty(), "{}", name(&cap));
        assert_eq!(totals.sip_messages, 0);
        // ...unless told the port.
        only.capture.ports = capture::PortSet::parse("5080,5081").unwrap();
        let (legs, _) = read_with(&bytes, only);
        assert_eq!(legs, plain, "{}", name(&cap));
    }
}

/// The SIP messages of a capture as the decoder delivers them.
fn payloads(path: &Path) -> Vec<(i64, SocketAddr, SocketAddr, Transport, Vec<u8>)> {
    struct Collect(Vec<(i64, SocketAddr, SocketAddr, Transport, Vec<u8>)>);
    impl capture::Sink for Collect {
        fn sip(&mut self, p: &SipPayload<'_>) {
            self.0
                .push((p.ts_us, p.src, p.dst, p.transport, p.data.to_vec()));
        }
    }
    let cfg = capture::CaptureConfig::default();
    let mut dec = Decoder::new(&cfg);
    let mut sink = Collect(Vec::new());
    capture::read_path(path, &cfg, &mut dec, &mut sink);
    sink.0
}

#[test]
fn hep_over_udp_and_tcp_gives_the_original_legs() {
    let agent: SocketAddr = "192.0.2.10:47000".parse().unwrap();
    let collector: SocketAddr = "192.0.2.20:9060".parse().unwrap();
    let ip = |a: SocketAddr| match a.ip() {
        std::net::IpAddr::V4(v) => v.octets(),
        _ => unreachable!(),
    };
    for cap in captures() {
        let plain = plain_legs(&cap);
        let heps: Vec<(i64, Vec<u8>)> = payloads(&cap)
            .into_iter()
            .map(|(ts, s, d, t, data)| {
                let proto = if t == Transport::Tcp { 6 } else { 17 };
                (ts, wrap::hep3(s, d, ts, proto, &data))
            })
            .collect();
        // UDP: one HEP packet per datagram, captured 2 ms after the original (the legs must
        // carry the original times from the HEP chunks).
        let udp: Vec<(i64, Vec<u8>)> = heps
            .iter()
            .map(|(ts, h)| {
                let u = wrap::udp(agent.port(), collector.port(), h);
                (
                    ts + 2000,
                    wrap::eth(ETH_IPV4, &wrap::ipv4(17, ip(agent), ip(collector), &u)),
                )
            })
            .collect();
        let (legs, totals) = read(&wrap::pcap(1, &udp));
        assert_eq!(legs, plain, "{} over HEP/UDP", name(&cap));
        assert_eq!(totals.capture.hep_packets, heps.len() as u64);
        // TCP: a SYN, then the HEP packets as one byte stream cut every 700 bytes.
        let stream: Vec<u8> = heps.iter().flat_map(|(_, h)| h.clone()).collect();
        let mut ends = Vec::new(); // (end offset in the stream, ts) of each HEP packet
        let mut at = 0;
        for (ts, h) in &heps {
            at += h.len();
            ends.push((at, *ts));
        }
        let isn = 1_000u32;
        let seg = |seq: u32, flags: u8, data: &[u8]| {
            let t = wrap::tcp(47001, 9061, seq, flags, data);
            wrap::eth(ETH_IPV4, &wrap::ipv4(6, ip(agent), ip(collector), &t))
        };
        let mut tcp = vec![(heps[0].0, seg(isn, 0x02, &[]))];
        for (i, chunk) in stream.chunks(700).enumerate() {
            let end = i * 700 + chunk.len();
            let ts = ends
                .iter()
                .take_while(|(e, _)| *e <= end)
                .last()
                .map_or(heps[0].0, |(_, t)| *t);
            tcp.push((ts + 1000, seg(isn + 1 + (i * 700) as u32, 0x18, chunk)));
        }
        let (legs, totals) = read(&wrap::pcap(1, &tcp));
        assert_eq!(legs, plain, "{} over HEP/TCP", name(&cap));
        assert_eq!(totals.capture.hep_packets, heps.len() as u64);
    }
}

/// SCTP packet: common header + chunks (each padded to 4 bytes).
fn sctp_packet(sport: u16, dport: u16, chunks: &[Vec<u8>]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&[1, 2, 3, 4, 0, 0, 0, 0]);
    for c in chunks {
        p.extend_from_slice(c);
        while p.len() % 4 != 0 {
            p.push(0);
        }
    }
    p
}

fn data_chunk(
    begin: bool,
    end: bool,
    tsn: u32,
    stream: u16,
    ssn: u16,
    ppid: u32,
    data: &[u8],
) -> Vec<u8> {
    let flags = (u8::from(begin) << 1) | u8::from(end);
    let mut c = vec![0, flags];
    c.extend_from_slice(&((16 + data.len()) as u16).to_be_bytes());
    c.extend_from_slice(&tsn.to_be_bytes());
    c.extend_from_slice(&stream.to_be_bytes());
    c.extend_from_slice(&ssn.to_be_bytes());
    c.extend_from_slice(&ppid.to_be_bytes());
    c.extend_from_slice(data);
    c
}

fn sack_chunk() -> Vec<u8> {
    let mut c = vec![3, 0, 0, 16];
    c.extend_from_slice(&[0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0]);
    c
}

/// Replace each UDP datagram of a frame by SCTP packets: SIP in DATA chunks, messages over
/// 300 bytes fragmented over three packets, a SACK bundled in front and a non-SIP DATA chunk of
/// another stream bundled behind.
fn to_sctp(frame: &[u8], tsns: &mut HashMap<Vec<u8>, u32>) -> Vec<Vec<u8>> {
    let (et, ip) = match wrap::ip_of(frame) {
        Some(x) => x,
        None => return vec![frame.to_vec()],
    };
    let (proto, hlen) = if et == ETH_IPV4 {
        (ip[9], usize::from(ip[0] & 0x0f) * 4)
    } else {
        (ip[6], 40)
    };
    if proto != 17 {
        return vec![frame.to_vec()];
    }
    let u = &ip[hlen..];
    let (sport, dport) = (
        u16::from_be_bytes([u[0], u[1]]),
        u16::from_be_bytes([u[2], u[3]]),
    );
    let sip = &u[8..];
    // One association per address and port pair, TSNs counted per direction.
    let mut key = if et == ETH_IPV4 {
        ip[12..20].to_vec()
    } else {
        ip[8..40].to_vec()
    };
    key.extend_from_slice(&u[..4]);
    let ssn = {
        let s = tsns
            .entry([key.clone(), b"ssn".to_vec()].concat())
            .or_insert(0);
        *s += 1;
        (*s - 1) as u16
    };
    let tsn = tsns.entry(key).or_insert(100);
    let mut packets: Vec<Vec<Vec<u8>>> = Vec::new();
    if sip.len() > 300 {
        let third = sip.len() / 3;
        let parts = [&sip[..third], &sip[third..2 * third], &sip[2 * third..]];
        for (i, part) in parts.iter().enumerate() {
            let mut chunks = Vec::new();
            if i == 0 {
                chunks.push(sack_chunk());
            }
            chunks.push(data_chunk(i == 0, i == 2, *tsn, 1, ssn, 0, part));
            *tsn += 1;
            packets.push(chunks);
        }
    } else {
        packets.push(vec![
            sack_chunk(),
            data_chunk(true, true, *tsn, 1, ssn, 0, sip),
        ]);
        *tsn += 1;
    }
    let last = packets.len() - 1;
    packets[last].push(data_chunk(
        true,
        true,
        *tsn,
        2,
        ssn,
        46,
        &[1, 0, 0, 20, 0x80, 0, 1, 2],
    ));
    *tsn += 1;
    packets
        .into_iter()
        .map(|chunks| {
            let s = sctp_packet(sport, dport, &chunks);
            let pkt = if et == ETH_IPV4 {
                let src: [u8; 4] = ip[12..16].try_into().unwrap();
                let dst: [u8; 4] = ip[16..20].try_into().unwrap();
                wrap::ipv4(132, src, dst, &s)
            } else {
                let src: [u8; 16] = ip[8..24].try_into().unwrap();
                let dst: [u8; 16] = ip[24..40].try_into().unwrap();
                wrap::ipv6(132, src, dst, &s)
            };
            wrap::eth(et, &pkt)
        })
        .collect()
}

#[test]
fn sip_over_sctp_gives_the_plain_legs() {
    for cap in captures() {
        let mut plain = plain_legs(&cap);
        for leg in &mut plain {
            if leg.transport == Transport::Udp {
                leg.transport = Transport::Sctp;
            }
        }
        let mut tsns = HashMap::new();
        let mut out = Vec::new();
        let mut udp_messages = 0;
        for (ts, f) in frames(&cap) {
            let pkts = to_sctp(&f, &mut tsns);
            if pkts.len() > 1 || pkts[0] != f {
                udp_messages += 1;
            }
            out.extend(pkts.into_iter().map(|p| (ts, p)));
        }
        let (legs, totals) = read(&wrap::pcap(1, &out));
        assert_eq!(legs, plain, "{}", name(&cap));
        let c = &totals.capture;
        if udp_messages > 0 {
            assert_eq!(c.sctp_non_sip, udp_messages, "{}", name(&cap));
            assert_eq!(c.sctp_dropped, 0);
        }
    }
}

#[test]
fn bad_tunnel_packets_are_counted_and_lose_no_leg() {
    let junk: Vec<Vec<u8>> = vec![
        wrap::outer4(47, &[0x00]), // truncated GRE
        wrap::outer4(47, &wrap::gre(0x880b, false, None, None, &[1, 2, 3])[..4]), // no payload, PPTP type
        {
            let mut g = wrap::gre(0x0800, false, None, None, &[0x45]);
            g[1] |= 1; // GRE version 1
            wrap::outer4(47, &g)
        },
        wrap::outer4(17, &wrap::udp(1, 4789, &[0, 0, 0, 0, 0, 0, 0, 0, 1, 2])), // VXLAN without I
        wrap::outer4(17, &wrap::udp(1, 37008, &[9, 0, 0, 1, 1])),               // TZSP version 9
        wrap::outer4(17, &wrap::udp(1, 37008, &[1, 0, 0, 1, 5, 200])),          // TZSP tag overrun
        wrap::outer4(17, &wrap::udp(1, 6081, &[0x3f, 0, 0x65, 0x58])), // Geneve options overrun
        wrap::eth(0x8847, &[0; 64]),                                   // MPLS, no bottom of stack
        wrap::outer4(47, &wrap::gre(0x22eb, false, None, Some(1), &[0x10; 12])), // ERSPAN III bad version
        wrap::outer4(17, &wrap::udp(1, 9060, b"HEP3\x00\x40garbage")), // HEP length beyond
        wrap::outer4(132, &[0, 1, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 200]), // SCTP chunk overrun
        wrap::outer4(4, &[0x45, 0, 0]), // truncated inner IPv4
    ];
    let mut deep = frames(&captures()[0])[0].1.clone();
    for n in 0..12 {
        deep = wrap::gre_teb(&deep, n);
    }
    for cap in captures() {
        let plain = plain_legs(&cap);
        let mut out = Vec::new();
        for (i, (ts, f)) in frames(&cap).into_iter().enumerate() {
            out.push((ts, wrap::vxlan(&f, i as u32)));
            out.push((ts, junk[i % junk.len()].clone()));
            if i == 0 {
                out.push((ts, deep.clone()));
            }
        }
        let (legs, totals) = read(&wrap::pcap(1, &out));
        assert_eq!(legs, plain, "{}", name(&cap));
        assert!(totals.capture.malformed_tunnels > 0, "{:?}", totals.capture);
    }
    // Each kind of junk alone: counted somewhere, nothing delivered.
    for (i, j) in junk.iter().enumerate() {
        let (legs, totals) = read(&wrap::pcap(1, &[(1, j.clone())]));
        let c = &totals.capture;
        assert!(legs.is_empty());
        assert_eq!(c.sip_payloads, 0);
        assert!(
            c.malformed_tunnels + c.unknown_tunnels + c.decode_errors > 0,
            "junk {i}: {c:?}"
        );
    }
    let (legs, totals) = read(&wrap::pcap(1, &[(1, deep)]));
    assert!(legs.is_empty());
    assert_eq!(totals.capture.malformed_tunnels, 1, "{:?}", totals.capture);
}

#[test]
fn eight_levels_deep_are_still_read() {
    let cap = data_dir().join("basic_concurrent.pcap");
    let plain = plain_legs(&cap);
    let out: Vec<(i64, Vec<u8>)> = frames(&cap)
        .into_iter()
        .map(|(ts, mut f)| {
            for n in 0..8 {
                f = wrap::gre_teb(&f, n);
            }
            (ts, f)
        })
        .collect();
    let (legs, _) = read(&wrap::pcap(1, &out));
    assert_eq!(legs, plain);
}

/// With `WRITE_FUZZ_SEEDS=1`, write one small capture per encapsulation into
/// `fuzz/seeds/capture_read/` (the first frames of a SIPp call, wrapped).
#[test]
fn write_fuzz_seeds() {
    if std::env::var_os("WRITE_FUZZ_SEEDS").is_none() {
        return;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/capture_read");
    let cap = data_dir().join("reinvite.pcap");
    let fr: Vec<(i64, Vec<u8>)> = frames(&cap).into_iter().take(6).collect();
    for (kind, w) in wrappers() {
        let wrapped: Vec<(i64, Vec<u8>)> = fr
            .iter()
            .enumerate()
            .map(|(i, (ts, f))| (*ts, w(f, i as u32)))
            .collect();
        // The fuzz target's first byte picks options: 0 = defaults.
        let mut seed = vec![0u8];
        seed.extend(wrap::pcap(1, &wrapped));
        std::fs::write(dir.join(format!("tunnel-{kind}.pcap")), seed).unwrap();
    }
    let mut tsns = HashMap::new();
    let sctp: Vec<(i64, Vec<u8>)> = fr
        .iter()
        .flat_map(|(ts, f)| to_sctp(f, &mut tsns).into_iter().map(move |p| (*ts, p)))
        .collect();
    let mut seed = vec![0u8];
    seed.extend(wrap::pcap(1, &sctp));
    std::fs::write(dir.join("sctp.pcap"), seed).unwrap();
    let agent = [192, 0, 2, 10];
    let heps: Vec<(i64, Vec<u8>)> = payloads(&cap)
        .into_iter()
        .take(6)
        .map(|(ts, s, d, _, data)| {
            let u = wrap::udp(47000, 9060, &wrap::hep3(s, d, ts, 17, &data));
            (
                ts,
                wrap::eth(ETH_IPV4, &wrap::ipv4(17, agent, [192, 0, 2, 20], &u)),
            )
        })
        .collect();
    let mut seed = vec![0u8];
    seed.extend(wrap::pcap(1, &heps));
    std::fs::write(dir.join("hep.pcap"), seed).unwrap();
    let moved: Vec<(i64, Vec<u8>)> = frames(&data_dir().join("tcp.pcap"))
        .into_iter()
        .take(12)
        .map(|(ts, f)| (ts, move_ports(&f)))
        .collect();
    let mut seed = vec![0u8];
    seed.extend(wrap::pcap(1, &moved));
    std::fs::write(dir.join("tcp-port-5080.pcap"), seed).unwrap();
}

/// tshark as an independent oracle: it must see, inside each wrapped capture, as many SIP
/// messages (by Call-ID) as in the plain one. Skipped when tshark is not installed.
#[test]
fn tshark_sees_the_same_sip_messages_inside_each_tunnel() {
    let Ok(v) = std::process::Command::new("tshark")
        .arg("--version")
        .output()
    else {
        eprintln!("tshark not installed: skipped");
        return;
    };
    assert!(v.status.success());
    let dir = tempfile::tempdir().unwrap();
    let call_ids = |path: &Path, extra: &[&str]| -> Vec<String> {
        let out = std::process::Command::new("tshark")
            .args(["-n", "-r"])
            .arg(path)
            .args(extra)
            .args(["-Y", "sip", "-T", "fields", "-e", "sip.Call-ID"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.to_string())
            .collect();
        ids.sort();
        ids
    };
    let cap = data_dir().join("reinvite.pcap");
    let want = call_ids(&cap, &[]);
    assert!(!want.is_empty());
    let fr = frames(&cap);
    type Case<'a> = (String, Vec<(i64, Vec<u8>)>, Vec<&'a str>);
    let mut cases: Vec<Case> = wrappers()
        .into_iter()
        .map(|(kind, w)| {
            let f = fr
                .iter()
                .enumerate()
                .map(|(i, (ts, f))| (*ts, w(f, i as u32)))
                .collect();
            // tshark takes MPLS payloads without a control word for Ethernet only when told.
            let extra = match kind {
                "mpls-pw" => vec!["-d", "mpls.label==2016,pwethcw"],
                _ => vec![],
            };
            (kind.to_string(), f, extra)
        })
        .collect();
    let mut tsns = HashMap::new();
    let sctp = fr
        .iter()
        .flat_map(|(ts, f)| to_sctp(f, &mut tsns).into_iter().map(move |p| (*ts, p)))
        .collect();
    cases.push(("sctp".into(), sctp, vec![]));
    let moved = fr.iter().map(|(ts, f)| (*ts, move_ports(f))).collect();
    cases.push(("port-5080".into(), moved, vec!["-d", "udp.port==5080,sip"]));
    let mut failures = Vec::new();
    for (kind, frames, extra) in cases {
        let path = dir.path().join(format!("{kind}.pcap"));
        std::fs::write(&path, wrap::pcap(1, &frames)).unwrap();
        let got = call_ids(&path, &extra);
        if let Some(keep) = std::env::var_os("KEEP_WRAPPED") {
            std::fs::copy(&path, Path::new(&keep).join(format!("{kind}.pcap"))).unwrap();
        }
        if got != want {
            failures.push(format!(
                "{kind}: tshark saw {} SIP messages, plain {}",
                got.len(),
                want.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! The reader and decoder never panic, whatever the bytes; errors are reported, and what came
//! before a corruption is delivered.

mod common;

use capture::CaptureConfig;
use common::*;
use proptest::prelude::*;

fn valid_pcap() -> Vec<u8> {
    let sip = eth4(&ip4_udp(
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        5060,
        5060,
        SIP_INVITE,
    ));
    let rtp = eth4(&ip4_udp(
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        20000,
        30000,
        &[0x80; 160],
    ));
    let pkts: Vec<(i64, Vec<u8>)> = (0..8)
        .map(|i| (i, if i % 2 == 0 { sip.clone() } else { rtp.clone() }))
        .collect();
    pcap(1, false, false, &pkts)
}

fn valid_pcapng() -> Vec<u8> {
    let mut ng = Pcapng::new(false);
    ng.idb(1, Some(9));
    ng.idb(101, Some(0x80 | 10));
    for i in 0..6u64 {
        ng.epb(
            (i % 2) as u32,
            i * 1000,
            &eth4(&ip4_udp([1, 1, 1, 1], [2, 2, 2, 2], 5060, 5060, SIP_INVITE)),
        );
    }
    ng.spb(&[0x45, 0, 0]);
    ng.out
}

fn small_buffer() -> CaptureConfig {
    // a tiny chunk size exercises the straddling logic on every record
    CaptureConfig {
        buffer_size: 64,
        detect_any_port: true,
        ..CaptureConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let (rep, _) = read_bytes("fuzz.pcap", &bytes, &small_buffer());
        if let Some(e) = rep.error {
            prop_assert!(e.to_string().starts_with("fuzz.pcap: "));
        }
    }

    #[test]
    fn arbitrary_records_after_valid_header_never_panic(
        pcapng in any::<bool>(),
        tail in prop::collection::vec(any::<u8>(), 0..3000),
    ) {
        let mut bytes = if pcapng { valid_pcapng() } else { valid_pcap()[..24].to_vec() };
        bytes.extend_from_slice(&tail);
        let _ = read_bytes("fuzz.pcap", &bytes, &small_buffer());
    }

    #[test]
    fn mutated_valid_files_never_panic(
        pcapng in any::<bool>(),
        muts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        cut in any::<prop::sample::Index>(),
        do_cut in any::<bool>(),
    ) {
        let mut bytes = if pcapng { valid_pcapng() } else { valid_pcap() };
        for (i, v) in &muts {
            let at = i.index(bytes.len());
            bytes[at] = *v;
        }
        if do_cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        let (rep, sink) = read_bytes("m.pcap", &bytes, &small_buffer());
        prop_assert!(rep.stats.sip_payloads as usize == sink.got.len());
        if rep.error.is_none() && !do_cut {
            prop_assert!(rep.stats.packets > 0);
        }
    }

    #[test]
    fn arbitrary_frames_never_panic(
        lt in prop::sample::select(vec![0u32, 1, 12, 14, 101, 108, 113, 228, 229, 276]),
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..20),
    ) {
        let cfg = CaptureConfig { detect_any_port: true, ports: capture::PortSet::parse("1-65535").unwrap(), ..config() };
        let frames: Vec<(i64, Vec<u8>)> = frames.into_iter().enumerate().map(|(i, f)| (i as i64, f)).collect();
        let _ = decode_frames(lt, &frames, &cfg);
    }
}

/// The fuzz seeds made by wrapping SIPp captures in every tunnel, SCTP and HEP
/// (`crates/sensor/tests/encapsulations.rs`, `WRITE_FUZZ_SEEDS=1`): `fuzz/seeds/capture_read/`
/// files whose first byte is the fuzz target's option byte.
fn encapsulated_seeds() -> Vec<Vec<u8>> {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/capture_read");
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("tunnel-")
                || n.starts_with("sctp")
                || n.starts_with("hep")
                || n.starts_with("tcp-port")
        })
        .map(|p| {
            (
                p.display().to_string(),
                std::fs::read(&p).unwrap()[1..].to_vec(),
            )
        })
        .collect();
    seeds.sort();
    assert!(seeds.len() >= 18, "{}", seeds.len());
    seeds.into_iter().map(|(_, b)| b).collect()
}

/// Outer headers that lead into each decoder: Ethernet + IPv4 + (GRE | IP-in-IP | SCTP | UDP to
/// a tunnel or HEP port), then whatever bytes follow.
fn tunnel_prefix(kind: usize) -> Vec<u8> {
    let udp_to = |port: u16| {
        let mut u = vec![0x30, 0x39];
        u.extend_from_slice(&port.to_be_bytes());
        u.extend_from_slice(&[0, 0, 0, 0]); // length 0: use what was captured
        (17u8, u)
    };
    let (proto, head): (u8, Vec<u8>) = match kind % 9 {
        0 => (47, vec![]),
        1 => (47, vec![0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1]),
        2 => (47, vec![0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1]),
        3 => (4, vec![]),
        4 => (132, vec![0x13, 0xc4, 0x13, 0xc4, 0, 0, 0, 0, 0, 0, 0, 0]),
        5 => udp_to(4789),
        6 => udp_to(6081),
        7 => udp_to(37008),
        _ => udp_to(9060),
    };
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    ip.extend_from_slice(&head);
    eth4(&ip)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn mutated_encapsulated_captures_never_panic(
        which in any::<prop::sample::Index>(),
        muts in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        ports_only in any::<bool>(),
    ) {
        let seeds = encapsulated_seeds();
        let mut bytes = seeds[which.index(seeds.len())].clone();
        for (i, v) in &muts {
            // past the 24-byte file header, so the records are what gets mangled
            let at = 24 + i.index(bytes.len() - 24);
            bytes[at] = *v;
        }
        let cfg = CaptureConfig { detect_any_port: !ports_only, ..CaptureConfig::default() };
        let (rep, sink) = read_bytes("m.pcap", &bytes, &cfg);
        prop_assert!(rep.stats.sip_payloads as usize == sink.got.len());
    }

    #[test]
    fn arbitrary_bytes_inside_tunnels_never_panic(
        kind in 0usize..9,
        frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..10),
    ) {
        let frames: Vec<(i64, Vec<u8>)> = frames
            .into_iter()
            .enumerate()
            .map(|(i, f)| {
                let mut b = tunnel_prefix(kind);
                b.extend_from_slice(&f);
                (i as i64, b)
            })
            .collect();
        let (dec, sink) = decode_frames(1, &frames, &CaptureConfig::default());
        prop_assert!(dec.stats().sip_payloads as usize == sink.got.len());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// What `fuzz/fuzz_targets/hep_parse.rs` checks, on stable: arbitrary bytes after the HEP3
    /// magic never panic, and a frame length stays within the input.
    #[test]
    fn hep_parse_never_panics(magic in any::<bool>(), bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let mut data = if magic { b"HEP3".to_vec() } else { Vec::new() };
        data.extend_from_slice(&bytes);
        if let Some(Ok(n)) = capture::hep::frame_len(&data) {
            prop_assert!((6..=data.len()).contains(&n));
            if let Ok(p) = capture::hep::parse(&data[..n])
                && let Some(payload) = p.payload
            {
                prop_assert!(payload.len() < n);
            }
        }
        let _ = capture::hep::parse(&data);
    }
}

#[test]
fn every_encapsulated_seed_reads_sip() {
    for seed in encapsulated_seeds() {
        let (rep, sink) = read_bytes("s.pcap", &seed, &CaptureConfig::default());
        assert!(rep.error.is_none());
        assert!(!sink.got.is_empty(), "{:?}", rep.stats);
    }
}

#[test]
fn truncation_at_every_offset_reports_and_keeps_earlier_packets() {
    let full = valid_pcap();
    let (rep, all) = read_bytes("t.pcap", &full, &config());
    assert!(rep.error.is_none());
    // record boundaries: 24-byte header, then records of 16 + frame bytes
    let mut boundaries = vec![24];
    let sip_len = 16 + 14 + 28 + SIP_INVITE.len();
    let rtp_len = 16 + 14 + 28 + 160;
    for i in 0..8 {
        let last = *boundaries.last().unwrap();
        boundaries.push(last + if i % 2 == 0 { sip_len } else { rtp_len });
    }
    assert_eq!(*boundaries.last().unwrap(), full.len());
    for cut in 0..full.len() {
        let (rep, sink) = read_bytes("t.pcap", &full[..cut], &config());
        assert_eq!(rep.error.is_none(), boundaries.contains(&cut), "cut {cut}");
        assert!(sink.got.len() <= all.got.len());
        assert_eq!(sink.got[..], all.got[..sink.got.len()]);
    }
}

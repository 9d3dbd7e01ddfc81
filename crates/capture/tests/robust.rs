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

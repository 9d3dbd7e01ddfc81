//! File formats: pcap in all byte orders and resolutions, pcapng, gzip, and bad files.

mod common;

use std::io::Write;

use capture::{CaptureError, FileFormat, read_path};
use common::*;

const TS: i64 = 1_700_000_000_123_456;

fn sip_frame(i: u8) -> Vec<u8> {
    eth4(&ip4_udp(
        [10, 0, 0, 1],
        [10, 0, 0, i],
        5060,
        5060,
        SIP_INVITE,
    ))
}

fn rtp_frame() -> Vec<u8> {
    eth4(&ip4_udp(
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        20000,
        30000,
        &[0x80; 172],
    ))
}

#[test]
fn pcap_all_byte_orders_and_resolutions() {
    for big in [false, true] {
        for nanos in [false, true] {
            let pkts = vec![
                (TS, sip_frame(2)),
                (TS + 20_000, rtp_frame()),
                (TS + 1, sip_frame(3)),
            ];
            let bytes = pcap(1, big, nanos, &pkts);
            let (rep, sink) = read_bytes("t.pcap", &bytes, &config());
            assert!(rep.error.is_none(), "{:?}", rep.error);
            assert_eq!(
                rep.format,
                Some(FileFormat::Pcap {
                    big_endian: big,
                    nanosecond: nanos
                })
            );
            assert_eq!(rep.stats.packets, 3);
            assert_eq!(rep.stats.sip_payloads, 2);
            assert_eq!(rep.stats.non_sip_packets, 1);
            assert_eq!(sink.got.len(), 2);
            assert_eq!(sink.got[0].ts_us, TS, "nanos {nanos} big {big}");
            assert_eq!(sink.got[1].ts_us, TS + 1);
            assert_eq!(sink.got[0].data, SIP_INVITE);
            assert_eq!(sink.got[0].src, "10.0.0.1:5060".parse().unwrap());
            assert_eq!(sink.got[1].dst, "10.0.0.3:5060".parse().unwrap());
            assert_eq!(sink.progress.last(), Some(&(bytes.len() as u64)));
        }
    }
}

#[test]
fn pcapng_sections_interfaces_resolutions_and_block_kinds() {
    for big in [false, true] {
        let mut ng = Pcapng::new(big);
        ng.idb(1, None); // µs
        ng.idb(101, Some(9)); // raw IP, ns
        ng.block(5, &[1, 2, 3, 4, 5, 6, 7, 8]); // interface statistics: skipped
        ng.block(0x0BAD, &[0; 12]); // unknown: skipped
        ng.epb(0, TS as u64, &sip_frame(2));
        ng.epb(
            1,
            (TS as u64 + 7) * 1000 + 999,
            &ip4_udp([1, 1, 1, 1], [2, 2, 2, 2], 1234, 5060, SIP_INVITE),
        );
        ng.spb(&sip_frame(4)); // takes the last timestamp
        ng.obsolete_pb(0, TS as u64 + 9, &sip_frame(5));
        // a second section in the other byte order, power-of-two resolution
        let mut other = Pcapng::new(!big);
        other.idb(1, Some(0x80 | 20));
        other.epb(0, 3 << 20, &sip_frame(6));
        let mut bytes = ng.out.clone();
        bytes.extend_from_slice(&other.out);

        let (rep, sink) = read_bytes("t.pcapng", &bytes, &config());
        assert!(rep.error.is_none(), "{:?}", rep.error);
        assert_eq!(rep.format, Some(FileFormat::Pcapng));
        let ts: Vec<i64> = sink.got.iter().map(|g| g.ts_us).collect();
        assert_eq!(ts, vec![TS, TS + 7, TS + 7, TS + 9, 3_000_000]);
        assert_eq!(sink.got[1].src, "1.1.1.1:1234".parse().unwrap());
        assert_eq!(sink.got[4].dst, "10.0.0.6:5060".parse().unwrap());
    }
}

#[test]
fn gzip_detected_by_magic() {
    let pkts = vec![(TS, sip_frame(2)), (TS + 5, rtp_frame())];
    let raw = pcap(1, false, false, &pkts);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    let dir = tempdir();
    let path = dir.join("no_gz_extension.pcap");
    std::fs::write(&path, &gz).unwrap();
    let cfg = config();
    let mut dec = capture::Decoder::new(&cfg);
    let mut sink = Collect::default();
    let rep = read_path(&path, &cfg, &mut dec, &mut sink);
    assert!(rep.error.is_none(), "{:?}", rep.error);
    assert!(rep.gzip);
    assert_eq!(sink.got.len(), 1);
    assert_eq!(rep.stats.packets, 2);
    // progress counts compressed file bytes
    assert_eq!(sink.progress.last(), Some(&(gz.len() as u64)));

    // truncated gzip: the first packet is still delivered, then an error
    let cut = &gz[..gz.len() - 12];
    let (rep, _) = read_bytes("cut.pcap.gz", cut, &cfg);
    let err = rep.error.expect("error").to_string();
    assert!(err.starts_with("cut.pcap.gz: "), "{err}");
}

fn tempdir() -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let d = std::env::temp_dir().join(format!(
        "capture-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn bad_files_give_clear_errors() {
    let cfg = config();
    let (rep, _) = read_bytes("empty.pcap", b"", &cfg);
    assert_eq!(rep.error.unwrap().to_string(), "empty.pcap: empty file");

    let (rep, _) = read_bytes("notes.txt", b"Hello world", &cfg);
    assert_eq!(
        rep.error.unwrap().to_string(),
        "notes.txt: not a pcap or pcapng file (first bytes 48 65 6c 6c)"
    );
    let (rep, _) = read_bytes("tiny", b"He", &cfg);
    assert!(matches!(rep.error, Some(CaptureError::NotCapture { .. })));

    let full = pcap(1, false, false, &[(TS, sip_frame(2))]);
    let (rep, _) = read_bytes("hdr.pcap", &full[..10], &cfg);
    assert_eq!(
        rep.error.unwrap().to_string(),
        "hdr.pcap: truncated file header (24 bytes needed, 10 present)"
    );

    // truncated last record: the earlier packets are delivered
    let pkts = vec![(TS, sip_frame(2)), (TS + 1, sip_frame(3))];
    let full = pcap(1, false, false, &pkts);
    let second = 24 + 16 + pkts[0].1.len();
    let cut = &full[..full.len() - 10];
    let (rep, sink) = read_bytes("capture.pcap", cut, &cfg);
    assert_eq!(sink.got.len(), 1);
    assert_eq!(rep.stats.packets, 1);
    let len = pkts[1].1.len();
    assert_eq!(
        rep.error.unwrap().to_string(),
        format!(
            "capture.pcap: truncated record at offset {second} (header says {len} bytes, {} left)",
            len - 10
        )
    );
    // cut inside a record header
    let (rep, _) = read_bytes("capture.pcap", &full[..second + 5], &cfg);
    let e = rep.error.unwrap();
    assert_eq!(e.offset(), Some(second as u64));
    assert!(e.to_string().contains("truncated record header"), "{e}");

    // absurd caplen in the middle
    let mut bad = full.clone();
    bad[second + 8..second + 12].copy_from_slice(&(10_000_000u32).to_le_bytes());
    let (rep, sink) = read_bytes("big.pcap", &bad, &cfg);
    assert_eq!(sink.got.len(), 1);
    let e = rep.error.unwrap();
    assert!(matches!(e, CaptureError::Corrupt { offset, .. } if offset == second as u64));
    assert!(
        e.to_string().contains("record length 10000000 exceeds"),
        "{e}"
    );

    // pcapng: bad block length and truncated block
    let mut ng = Pcapng::new(false);
    ng.idb(1, None);
    ng.epb(0, 1, &sip_frame(2));
    let at = ng.out.len();
    ng.epb(0, 2, &sip_frame(3));
    let mut bad = ng.out.clone();
    bad[at + 4..at + 8].copy_from_slice(&7u32.to_le_bytes());
    let (rep, sink) = read_bytes("x.pcapng", &bad, &cfg);
    assert_eq!(sink.got.len(), 1);
    assert_eq!(rep.error.unwrap().offset(), Some(at as u64));
    let (rep, sink) = read_bytes("x.pcapng", &ng.out[..ng.out.len() - 3], &cfg);
    assert_eq!(sink.got.len(), 1);
    assert!(
        matches!(rep.error, Some(CaptureError::TruncatedRecord { offset, .. }) if offset == at as u64)
    );
    // packet for an interface that was never described
    let mut ng2 = Pcapng::new(false);
    ng2.epb(3, 1, &sip_frame(2));
    let (rep, _) = read_bytes("x.pcapng", &ng2.out, &cfg);
    assert!(
        rep.error
            .unwrap()
            .to_string()
            .contains("undefined interface 3")
    );

    // missing file
    let mut dec = capture::Decoder::new(&cfg);
    let rep = read_path(
        std::path::Path::new("does/not/exist.pcap"),
        &cfg,
        &mut dec,
        &mut Collect::default(),
    );
    assert!(
        rep.error
            .unwrap()
            .to_string()
            .starts_with("does/not/exist.pcap: ")
    );
}

#[test]
fn records_straddling_chunk_boundaries() {
    // a small buffer forces many refills with records split across them
    let pkts: Vec<(i64, Vec<u8>)> = (0..500)
        .map(|i| {
            (
                TS + i,
                if i % 7 == 0 {
                    sip_frame(2)
                } else {
                    rtp_frame()
                },
            )
        })
        .collect();
    let bytes = pcap(1, false, false, &pkts);
    let cfg = capture::CaptureConfig {
        buffer_size: 1000,
        ..config()
    };
    let (rep, sink) = read_bytes("t.pcap", &bytes, &cfg);
    assert!(rep.error.is_none());
    assert_eq!(rep.stats.packets, 500);
    assert_eq!(sink.got.len(), (0..500).filter(|i| i % 7 == 0).count());
    let mut ng = Pcapng::new(true);
    ng.idb(1, None);
    for (ts, f) in &pkts {
        ng.epb(0, *ts as u64, f);
    }
    let (rep, sink2) = read_bytes("t.pcapng", &ng.out, &cfg);
    assert!(rep.error.is_none());
    assert_eq!(sink2.got, sink.got);
}

#[test]
fn list_captures_filters_and_sorts() {
    let d = tempdir();
    for n in [
        "b.pcap",
        "a.pcapng.gz",
        "c.cap",
        "notes.txt",
        "z.pcap.bak",
        "d.PCAP",
    ] {
        std::fs::write(d.join(n), b"x").unwrap();
    }
    std::fs::create_dir(d.join("sub.pcap")).unwrap();
    let got: Vec<String> = capture::list_captures(&d)
        .unwrap()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(got, vec!["a.pcapng.gz", "b.pcap", "c.cap", "d.PCAP"]);
    let one = d.join("notes.txt");
    assert_eq!(capture::list_captures(&one).unwrap(), vec![one.clone()]);
    assert!(capture::list_captures(&d.join("missing")).is_err());
}

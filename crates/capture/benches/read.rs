//! Reading + decoding throughput on an RTP-heavy capture built in memory: 200k packets, 95% RTP
//! (214-byte Ethernet/IPv4/UDP frames on random high ports), 5% SIP on 5060.
//!
//! Run with `cargo bench -p capture --bench read`; criterion prints MB/s (throughput in bytes)
//! and the time per iteration, from which packets/s follows (printed once at start too).

use std::hint::black_box;
use std::time::Instant;

use capture::{CaptureConfig, Decoder, Sink, SipPayload, read_capture};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

struct Count(u64);

impl Sink for Count {
    fn sip(&mut self, p: &SipPayload<'_>) {
        self.0 += p.data.len() as u64;
    }
}

/// Deterministic xorshift so the capture is the same on every run.
fn rng(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn udp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0x08, 0x00,
    ];
    let total = (20 + 8 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0xb8]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&sport.to_be_bytes());
    f.extend_from_slice(&dport.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

fn build_capture(packets: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(packets * 240);
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    let sip = b"INVITE sip:1000@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\nCall-ID: bench@10.0.0.1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    let mut s = 0x1234_5678_9abc_def0u64;
    let mut ts: u64 = 1_700_000_000_000_000;
    for i in 0..packets {
        let r = rng(&mut s);
        let frame = if i % 20 == 0 {
            udp_frame([10, 0, 0, 1], [10, 0, 0, 2], 5060, 5060, sip)
        } else {
            // 214-byte frame: 14 + 20 + 8 + 12 (RTP header) + 160 (G.711 20 ms)
            let mut rtp = vec![0x80, 0x08];
            rtp.extend_from_slice(&(i as u16).to_be_bytes());
            rtp.resize(172, 0xd5);
            let sport = 10000 + (r % 50000) as u16;
            let dport = 10000 + ((r >> 16) % 50000) as u16;
            udp_frame(
                [10, 0, 1, (r >> 32) as u8],
                [10, 0, 2, (r >> 40) as u8],
                sport,
                dport,
                &rtp,
            )
        };
        ts += 100;
        out.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        out.extend_from_slice(&frame);
    }
    out
}

fn run(bytes: &[u8], cfg: &CaptureConfig) -> u64 {
    let mut dec = Decoder::new(cfg);
    let mut sink = Count(0);
    let rep = read_capture("bench.pcap", bytes, cfg, &mut dec, &mut sink);
    assert!(rep.error.is_none());
    rep.stats.sip_payloads
}

fn bench(c: &mut Criterion) {
    const PACKETS: usize = 200_000;
    let bytes = build_capture(PACKETS);
    let cfg = CaptureConfig::default();
    assert_eq!(run(&bytes, &cfg), (PACKETS / 20) as u64);

    // One plain measurement for the packets/s figure criterion does not print.
    let t = Instant::now();
    let rounds = 20;
    for _ in 0..rounds {
        black_box(run(&bytes, &cfg));
    }
    let secs = t.elapsed().as_secs_f64() / f64::from(rounds);
    eprintln!(
        "read+decode: {} packets, {:.1} MB in {:.2} ms: {:.0} MB/s, {:.2} M packets/s",
        PACKETS,
        bytes.len() as f64 / 1e6,
        secs * 1e3,
        bytes.len() as f64 / 1e6 / secs,
        PACKETS as f64 / 1e6 / secs
    );

    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("rtp_heavy_200k", |b| {
        b.iter(|| black_box(run(&bytes, &cfg)))
    });
    let any = CaptureConfig {
        detect_any_port: true,
        ..CaptureConfig::default()
    };
    g.bench_function("rtp_heavy_200k_detect_any_port", |b| {
        b.iter(|| black_box(run(&bytes, &any)))
    });
    // The same through a real file (page cache) and `read_path`.
    let path = std::env::temp_dir().join(format!("capture-bench-{}.pcap", std::process::id()));
    std::fs::write(&path, &bytes).expect("write temp capture");
    g.bench_function("rtp_heavy_200k_file", |b| {
        b.iter(|| {
            let mut dec = Decoder::new(&cfg);
            let rep = capture::read_path(&path, &cfg, &mut dec, &mut Count(0));
            assert!(rep.error.is_none());
            black_box(rep.stats.sip_payloads)
        })
    });
    let _ = std::fs::remove_file(&path);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

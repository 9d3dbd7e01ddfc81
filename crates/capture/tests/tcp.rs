//! TCP stream reassembly of SIP messages.

mod common;

use capture::CaptureConfig;
use common::*;
use etherparse::PacketBuilder;
use proptest::prelude::*;

const C: [u8; 4] = [10, 1, 1, 1];
const S: [u8; 4] = [10, 1, 1, 2];

#[derive(Clone, Copy, Default)]
struct F {
    syn: bool,
    fin: bool,
    rst: bool,
}

fn seg(sport: u16, dport: u16, seq: u32, f: F, payload: &[u8]) -> Vec<u8> {
    let mut b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(C, S, 64)
        .tcp(sport, dport, seq, 65000)
        .ack(1);
    if f.syn {
        b = b.syn();
    }
    if f.fin {
        b = b.fin();
    }
    if f.rst {
        b = b.rst();
    }
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

const ISN: u32 = 1000;

/// SYN then the stream cut at `cuts`, one segment per piece, timestamps 1, 2, 3...
fn segmented(stream: &[u8], cuts: &[usize]) -> Vec<(i64, Vec<u8>)> {
    let mut frames = vec![(
        0,
        seg(
            40000,
            5060,
            ISN,
            F {
                syn: true,
                ..F::default()
            },
            &[],
        ),
    )];
    let mut bounds = vec![0];
    bounds.extend(cuts.iter().copied().filter(|&c| c > 0 && c < stream.len()));
    bounds.push(stream.len());
    bounds.sort();
    bounds.dedup();
    for (i, w) in bounds.windows(2).enumerate() {
        let seq = ISN + 1 + w[0] as u32;
        frames.push((
            (i + 1) as i64,
            seg(40000, 5060, seq, F::default(), &stream[w[0]..w[1]]),
        ));
    }
    frames
}

fn datas(sink: &Collect) -> Vec<Vec<u8>> {
    sink.got.iter().map(|g| g.data.clone()).collect()
}

#[test]
fn one_message_over_three_segments_timestamp_of_last() {
    let m = sip_msg(1, 300);
    let frames = segmented(&m, &[40, 200]);
    assert_eq!(frames.len(), 4);
    let (dec, sink) = decode_frames(1, &frames, &config());
    assert_eq!(datas(&sink), vec![m]);
    assert_eq!(sink.got[0].ts_us, 3, "timestamp of the completing segment");
    assert_eq!(sink.got[0].src, "10.1.1.1:40000".parse().unwrap());
    assert_eq!(sink.got[0].transport, capture::Transport::Tcp);
    assert_eq!(dec.stats().tcp_streams, 1);
}

#[test]
fn three_messages_in_one_segment_with_keepalives() {
    let msgs = [sip_msg(1, 10), sip_msg(2, 0), sip_msg(3, 50)];
    let mut stream = b"\r\n\r\n".to_vec();
    for m in &msgs {
        stream.extend_from_slice(m);
        stream.extend_from_slice(b"\r\n");
    }
    let (_, sink) = decode_frames(1, &segmented(&stream, &[]), &config());
    assert_eq!(datas(&sink), msgs.to_vec());
}

#[test]
fn out_of_order_and_retransmission() {
    let msgs = [sip_msg(1, 100), sip_msg(2, 100)];
    let stream = [msgs[0].clone(), msgs[1].clone()].concat();
    let mut frames = segmented(&stream, &[50, 150, 250]);
    // SYN, s1, s2, s3, s4 → SYN, s3, s1, s1 (retransmit), s4, s2, s2 (retransmit)
    let f = frames.clone();
    frames = vec![
        f[0].clone(),
        f[3].clone(),
        f[1].clone(),
        f[1].clone(),
        f[4].clone(),
        f[2].clone(),
        f[2].clone(),
    ];
    let (dec, sink) = decode_frames(1, &frames, &config());
    assert_eq!(datas(&sink), msgs.to_vec());
    assert!(dec.stats().tcp_out_of_order >= 2);
    assert_eq!(dec.stats().tcp_retransmissions, 2);
}

#[test]
fn overlapping_retransmission_with_new_tail() {
    let m = sip_msg(1, 200);
    let mut frames = segmented(&m, &[100]);
    // a segment covering bytes 50..150 (overlaps both)
    frames.insert(
        2,
        (9, seg(40000, 5060, ISN + 1 + 50, F::default(), &m[50..150])),
    );
    let (_, sink) = decode_frames(1, &frames, &config());
    assert_eq!(datas(&sink), vec![m]);
}

#[test]
fn stream_without_syn_resyncs_to_first_message() {
    let m1 = sip_msg(1, 20);
    let m2 = sip_msg(2, 20);
    // capture starts in the middle of m1
    let mut stream = m1[30..].to_vec();
    stream.extend_from_slice(&m2);
    let frames = vec![
        (1, seg(40000, 5060, 777_000, F::default(), &stream[..10])),
        (2, seg(40000, 5060, 777_010, F::default(), &stream[10..])),
    ];
    let (dec, sink) = decode_frames(1, &frames, &config());
    assert_eq!(datas(&sink), vec![m2]);
    assert!(dec.stats().tcp_garbage_bytes > 0);
}

#[test]
fn garbage_between_messages_is_skipped() {
    let m1 = sip_msg(1, 5);
    let m2 = sip_msg(2, 5);
    let stream = [
        m1.clone(),
        b"\x16\x03\x01 binary junk\nmore junk\n".to_vec(),
        m2.clone(),
    ]
    .concat();
    let (_, sink) = decode_frames(1, &segmented(&stream, &[3, 40, 60]), &config());
    assert_eq!(datas(&sink), vec![m1, m2]);
}

#[test]
fn retransmitted_syn_keeps_buffered_bytes() {
    let m = sip_msg(1, 100);
    let mut frames = segmented(&m, &[60]);
    frames.insert(
        2,
        (
            1,
            seg(
                40000,
                5060,
                ISN,
                F {
                    syn: true,
                    ..F::default()
                },
                &[],
            ),
        ),
    );
    let (_, sink) = decode_frames(1, &frames, &config());
    assert_eq!(datas(&sink), vec![m]);
}

#[test]
fn sequence_wraparound() {
    let m = sip_msg(1, 100);
    let isn = u32::MAX - 60;
    let frames = vec![
        (
            0,
            seg(
                40000,
                5060,
                isn,
                F {
                    syn: true,
                    ..F::default()
                },
                &[],
            ),
        ),
        (
            1,
            seg(40000, 5060, isn.wrapping_add(1), F::default(), &m[..80]),
        ),
        (
            2,
            seg(40000, 5060, isn.wrapping_add(81), F::default(), &m[80..]),
        ),
    ];
    let (_, sink) = decode_frames(1, &frames, &config());
    assert_eq!(datas(&sink), vec![m]);
}

#[test]
fn fin_and_rst_close_streams_and_idle_timeout() {
    let m = sip_msg(1, 10);
    let mut frames = segmented(&m, &[]);
    let end = ISN + 1 + m.len() as u32;
    frames.push((
        5,
        seg(
            40000,
            5060,
            end,
            F {
                fin: true,
                ..F::default()
            },
            &[],
        ),
    ));
    let (dec, sink) = decode_frames(1, &frames, &config());
    assert_eq!(sink.got.len(), 1);
    assert_eq!(dec.tcp_streams(), 0);

    let mut frames = segmented(&m[..20], &[]);
    frames.push((
        5,
        seg(
            40000,
            5060,
            ISN + 21,
            F {
                rst: true,
                ..F::default()
            },
            &[],
        ),
    ));
    let (dec, sink) = decode_frames(1, &frames, &config());
    assert!(sink.got.is_empty());
    assert_eq!(dec.tcp_streams(), 0);

    // idle: a half message, then traffic on another stream 301 s later
    let mut frames = segmented(&m[..20], &[]);
    frames.push((301_000_010, seg(40001, 5060, 5, F::default(), &m)));
    let (dec, _) = decode_frames(1, &frames, &config());
    assert_eq!(dec.tcp_streams(), 1);
}

#[test]
fn non_sip_ports_ignored_when_ports_only() {
    let m = sip_msg(1, 10);
    let frames = vec![
        (1, seg(40000, 6000, 1, F::default(), &m)),
        (2, seg(40000, 6000, 1 + m.len() as u32, F::default(), &m)),
    ];
    let ports_only = CaptureConfig {
        detect_any_port: false,
        ..config()
    };
    let (dec, sink) = decode_frames(1, &frames, &ports_only);
    assert!(sink.got.is_empty());
    assert_eq!(dec.tcp_streams(), 0);
    // the default: found by content
    let (_, sink) = decode_frames(1, &frames, &config());
    assert_eq!(datas(&sink), vec![m.clone(), m]);
}

#[test]
fn buffers_are_bounded() {
    let mut cfg = config();
    cfg.tcp.max_out_of_order_bytes = 1000;
    let m = sip_msg(1, 10);
    // a gap that never fills, then lots of out-of-order data
    let mut frames = segmented(&m[..10], &[]);
    for i in 0..20u32 {
        frames.push((
            2,
            seg(
                40000,
                5060,
                ISN + 1000 + i * 200,
                F::default(),
                &[b'x'; 200],
            ),
        ));
    }
    let (dec, _) = decode_frames(1, &frames, &cfg);
    assert!(dec.stats().tcp_gaps >= 1);
}

#[test]
fn with_real_sip_framing() {
    let cfg = CaptureConfig::default();
    let msgs = [sip_msg(1, 10), sip_msg(2, 0)];
    let stream = [msgs[0].clone(), msgs[1].clone()].concat();
    let (_, sink) = decode_frames(1, &segmented(&stream, &[7, 70]), &cfg);
    assert_eq!(datas(&sink), msgs.to_vec());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    /// Whatever the segmentation, reordering and duplication, the same messages come out.
    #[test]
    fn random_segmentation_and_reordering(
        bodies in prop::collection::vec(0usize..300, 1..6),
        cuts in prop::collection::vec(0usize..2000, 0..12),
        swaps in prop::collection::vec((0usize..16, 0usize..16), 0..8),
        dups in prop::collection::vec(0usize..16, 0..4),
        real in any::<bool>(),
    ) {
        let msgs: Vec<Vec<u8>> = bodies.iter().enumerate().map(|(i, &b)| sip_msg(i, b)).collect();
        let stream = msgs.concat();
        let frames = segmented(&stream, &cuts);
        let mut data: Vec<(i64, Vec<u8>)> = frames[1..].to_vec();
        let n = data.len();
        for &(a, b) in &swaps {
            data.swap(a % n, b % n);
        }
        for &d in &dups {
            let f = data[d % n].clone();
            data.insert((d * 7) % n, f);
        }
        let mut all = vec![frames[0].clone()];
        all.extend(data);
        let cfg = if real { CaptureConfig::default() } else { config() };
        let (dec, sink) = decode_frames(1, &all, &cfg);
        prop_assert_eq!(datas(&sink), msgs);
        prop_assert_eq!(dec.stats().tcp_garbage_bytes, 0);
    }
}

//! Link layers, VLAN, IPv6 extension headers and IP defragmentation.

mod common;

use capture::decode::linktype;
use capture::{CaptureConfig, PortSet};
use common::*;

const A4: [u8; 4] = [192, 168, 1, 10];
const B4: [u8; 4] = [192, 168, 1, 20];
const A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn one(linktype: u32, frame: Vec<u8>) -> Vec<Got> {
    let (dec, sink) = decode_frames(linktype, &[(1_000, frame)], &config());
    assert_eq!(dec.stats().decode_errors, 0, "linktype {linktype}");
    sink.got
}

fn v4() -> Vec<u8> {
    ip4_udp(A4, B4, 5060, 5062, SIP_INVITE)
}

fn v6() -> Vec<u8> {
    ip6_udp(A6, B6, 5062, 5060, SIP_INVITE)
}

fn check4(got: &[Got]) {
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].src, "192.168.1.10:5060".parse().unwrap());
    assert_eq!(got[0].dst, "192.168.1.20:5062".parse().unwrap());
    assert_eq!(got[0].data, SIP_INVITE);
    assert_eq!(got[0].ts_us, 1_000);
}

fn check6(got: &[Got]) {
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].src, "[2001:db8::1]:5062".parse().unwrap());
    assert_eq!(got[0].dst, "[2001:db8::2]:5060".parse().unwrap());
    assert_eq!(got[0].data, SIP_INVITE);
}

#[test]
fn every_link_type() {
    check4(&one(linktype::ETHERNET, eth4(&v4())));
    check6(&one(linktype::ETHERNET, eth(0x86dd, &v6())));
    // Ethernet padding after a short IP packet is ignored
    let mut padded = eth4(&v4());
    padded.extend_from_slice(&[0; 30]);
    check4(&one(linktype::ETHERNET, padded));

    // Linux cooked v1: 16 bytes, protocol at 14
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&v4());
    check4(&one(linktype::LINUX_SLL, sll));
    // Linux cooked v2: 20 bytes, protocol at 0
    let mut sll2 = vec![
        0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0,
    ];
    sll2.extend_from_slice(&v6());
    check6(&one(linktype::LINUX_SLL2, sll2));

    for lt in [linktype::RAW, linktype::RAW_12, linktype::RAW_14] {
        check4(&one(lt, v4()));
        check6(&one(lt, v6()));
    }
    check4(&one(linktype::IPV4, v4()));
    check6(&one(linktype::IPV6, v6()));

    // BSD NULL: host byte order family (either), LOOP: big-endian
    for fam6 in [24u32, 28, 30] {
        let mut f = fam6.to_le_bytes().to_vec();
        f.extend_from_slice(&v6());
        check6(&one(linktype::NULL, f));
        let mut f = fam6.to_be_bytes().to_vec();
        f.extend_from_slice(&v6());
        check6(&one(linktype::LOOP, f));
    }
    let mut f = 2u32.to_be_bytes().to_vec();
    f.extend_from_slice(&v4());
    check4(&one(linktype::NULL, f.clone()));
    check4(&one(linktype::LOOP, f));

    // unknown link type is counted, not an error
    let (dec, sink) = decode_frames(9999, &[(0, v4())], &config());
    assert!(sink.got.is_empty());
    assert_eq!(dec.stats().unsupported_linktype, 1);
}

#[test]
fn vlan_and_qinq() {
    // 802.1Q
    let mut f = vec![0; 12];
    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x64, 0x08, 0x00]);
    f.extend_from_slice(&v4());
    check4(&one(linktype::ETHERNET, f));
    // QinQ 802.1ad outer + 802.1Q inner, and the old 0x9100 outer, three tags stacked
    for outer in [[0x88, 0xa8], [0x91, 0x00]] {
        let mut f = vec![0; 12];
        f.extend_from_slice(&outer);
        f.extend_from_slice(&[
            0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x81, 0x00, 0x00, 0x1e, 0x86, 0xdd,
        ]);
        f.extend_from_slice(&v6());
        check6(&one(linktype::ETHERNET, f));
    }
    // also via etherparse's builder
    let mut out = Vec::new();
    etherparse::PacketBuilder::ethernet2([1; 6], [2; 6])
        .double_vlan(
            etherparse::VlanId::try_new(10).unwrap(),
            etherparse::VlanId::try_new(20).unwrap(),
        )
        .ipv4(A4, B4, 64)
        .udp(5060, 5062)
        .write(&mut out, SIP_INVITE)
        .unwrap();
    check4(&one(linktype::ETHERNET, out));
    // non-IP ethertype (ARP) is not SIP and not an error
    let (dec, _) = decode_frames(1, &[(0, eth(0x0806, &[0; 28]))], &config());
    assert_eq!(dec.stats().non_sip_packets, 1);
    assert_eq!(dec.stats().decode_errors, 0);
}

/// IPv6 header + extension headers + UDP, built by hand.
fn v6_with_ext(exts: &[(u8, Vec<u8>)], last_next: u8, transport: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (_, h)) in exts.iter().enumerate() {
        let mut h = h.clone();
        h[0] = exts.get(i + 1).map_or(last_next, |e| e.0);
        body.extend_from_slice(&h);
    }
    body.extend_from_slice(transport);
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(body.len() as u16).to_be_bytes());
    p.push(exts.first().map_or(last_next, |e| e.0));
    p.push(64);
    p.extend_from_slice(&A6);
    p.extend_from_slice(&B6);
    p.extend_from_slice(&body);
    p
}

fn udp_bytes(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

#[test]
fn ipv6_extension_headers() {
    let udp = udp_bytes(5062, 5060, SIP_INVITE);
    let hop = (0u8, vec![0, 0, 1, 4, 0, 0, 0, 0]); // 8 bytes, PadN
    let routing = (43u8, {
        let mut r = vec![0, 2, 0, 0, 0, 0, 0, 0];
        r.extend_from_slice(&[0; 16]);
        r
    }); // 24 bytes
    let dest = (60u8, vec![0, 0, 1, 4, 0, 0, 0, 0]);
    let ah = (51u8, {
        let mut a = vec![0, 4, 0, 0];
        a.extend_from_slice(&[0; 20]);
        a
    }); // (4+2)*4 = 24
    let p = v6_with_ext(&[hop.clone(), routing, dest.clone(), ah], 17, &udp);
    check6(&one(linktype::RAW, p));
    // ESP: stop, not SIP
    let p = v6_with_ext(&[hop, dest], 50, &[0; 40]);
    let (dec, sink) = decode_frames(linktype::RAW, &[(0, p)], &config());
    assert!(sink.got.is_empty());
    assert_eq!(dec.stats().non_sip_packets, 1);
    // a truncated extension header is a decode error
    let mut p = v6_with_ext(&[(60u8, vec![0, 5, 0, 0, 0, 0, 0, 0])], 17, &[]);
    p.truncate(48);
    let (dec, _) = decode_frames(linktype::RAW, &[(0, p)], &config());
    assert_eq!(dec.stats().decode_errors, 1);
}

/// Split a UDP datagram (header + payload) into IPv4 fragments of `chunk` bytes (multiple of 8).
fn v4_fragments(id: u16, udp: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < udp.len() {
        let end = (off + chunk).min(udp.len());
        let more = end < udp.len();
        let mut p = ipv4_header(A4, B4, 17, id, more, off, end - off);
        p.extend_from_slice(&udp[off..end]);
        out.push(eth4(&p));
        off = end;
    }
    out
}

fn v6_fragments(id: u32, udp: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off < udp.len() {
        let end = (off + chunk).min(udp.len());
        let more = end < udp.len();
        let mut fh = vec![17, 0];
        fh.extend_from_slice(&((off as u16) | more as u16).to_be_bytes());
        fh.extend_from_slice(&id.to_be_bytes());
        let p = v6_with_ext(&[(44, fh)], 17, &udp[off..end]);
        out.push(p);
        off = end;
    }
    out
}

#[test]
fn ipv4_fragments_in_order_out_of_order_duplicate() {
    let body = sip_msg(1, 2500);
    let udp = udp_bytes(5060, 5062, &body);
    let frags = v4_fragments(77, &udp, 1480);
    assert_eq!(frags.len(), 2);
    let orders: [&[usize]; 4] = [&[0, 1], &[1, 0], &[0, 0, 1], &[1, 1, 0, 0]];
    for order in orders {
        let frames: Vec<(i64, Vec<u8>)> = order.iter().map(|&i| (5, frags[i].clone())).collect();
        let (dec, sink) = decode_frames(1, &frames, &config());
        assert_eq!(sink.got.len(), 1, "order {order:?}");
        assert_eq!(sink.got[0].data, body);
        assert_eq!(sink.got[0].src, "192.168.1.10:5060".parse().unwrap());
        // a duplicate arriving after completion starts a new (never completed) datagram
        let dup_after = order.len() > 2 && order[order.len() - 1] == order[order.len() - 2];
        assert_eq!(
            dec.pending_fragments(),
            usize::from(dup_after),
            "order {order:?}"
        );
        assert_eq!(dec.stats().ip_reassembled, 1);
    }
    // smaller fragments, reversed
    let mut frames: Vec<(i64, Vec<u8>)> = v4_fragments(78, &udp, 512)
        .into_iter()
        .map(|f| (5, f))
        .collect();
    frames.reverse();
    let (_, sink) = decode_frames(1, &frames, &config());
    assert_eq!(sink.got.len(), 1);
    assert_eq!(sink.got[0].data, body);
}

#[test]
fn fragment_that_never_completes_times_out() {
    let udp = udp_bytes(5060, 5062, &sip_msg(1, 3000));
    let frags = v4_fragments(9, &udp, 1480);
    let cfg = config();
    let frames = vec![
        (0, frags[0].clone()),
        (1_000, frags[1].clone()),
        // 31 s later some unrelated packet fragment arrives: the first datagram is dropped
        (31_000_000, v4_fragments(10, &udp, 1480)[0].clone()),
        (31_000_001, frags[2].clone()),
    ];
    let (dec, sink) = decode_frames(1, &frames, &cfg);
    assert!(sink.got.is_empty());
    assert_eq!(dec.stats().ip_fragments_dropped, 1);
    assert_eq!(dec.pending_fragments(), 2); // id 10, and the late last fragment of id 9
}

#[test]
fn non_sip_fragments_are_not_buffered() {
    let udp = udp_bytes(30000, 40000, &[0x80; 3000]);
    let frames: Vec<(i64, Vec<u8>)> = v4_fragments(5, &udp, 1480)
        .into_iter()
        .map(|f| (1, f))
        .collect();
    let (dec, sink) = decode_frames(1, &frames, &config());
    assert!(sink.got.is_empty());
    assert_eq!(dec.stats().ip_reassembled, 0);
    assert_eq!(dec.stats().decode_errors, 0);
}

#[test]
fn ipv6_fragments() {
    let body = sip_msg(2, 2000);
    let udp = udp_bytes(5062, 5060, &body);
    let frags = v6_fragments(0xdead_beef, &udp, 1232);
    assert_eq!(frags.len(), 2);
    for order in [[0usize, 1], [1, 0]] {
        let frames: Vec<(i64, Vec<u8>)> = order.iter().map(|&i| (5, frags[i].clone())).collect();
        let (dec, sink) = decode_frames(linktype::RAW, &frames, &config());
        assert_eq!(sink.got.len(), 1);
        assert_eq!(sink.got[0].data, body);
        assert_eq!(sink.got[0].dst, "[2001:db8::2]:5060".parse().unwrap());
        assert_eq!(dec.stats().decode_errors, 0);
    }
    // atomic fragment (offset 0, no more) is delivered directly
    let atomic = v6_fragments(1, &udp, 4000);
    let (_, sink) = decode_frames(linktype::RAW, &[(1, atomic[0].clone())], &config());
    assert_eq!(sink.got.len(), 1);
}

#[test]
fn ports_and_detection_on_any_port() {
    let odd = eth4(&ip4_udp(A4, B4, 7777, 8888, SIP_INVITE));
    let rtp = eth4(&ip4_udp(
        A4,
        B4,
        7778,
        8890,
        &[0x80, 0x08, 0, 1, 0, 0, 0, 0],
    ));
    // --sip-ports-only: nothing off the SIP ports
    let ports_only = CaptureConfig {
        detect_any_port: false,
        ..config()
    };
    let (dec, sink) = decode_frames(1, &[(0, odd.clone()), (0, rtp.clone())], &ports_only);
    assert!(sink.got.is_empty());
    assert_eq!(dec.stats().non_sip_packets, 2);
    // the default: SIP found by content on any port, RTP rejected
    let (dec, sink) = decode_frames(1, &[(0, odd.clone()), (0, rtp.clone())], &config());
    assert_eq!(sink.got.len(), 1);
    assert_eq!(dec.stats().non_sip_packets, 1);
    let cfg = CaptureConfig {
        ports: PortSet::parse("7000-7777").unwrap(),
        ..ports_only
    };
    let (_, sink) = decode_frames(1, &[(0, odd), (0, rtp)], &cfg);
    assert_eq!(sink.got.len(), 1);
    // keep-alive on a SIP port is counted, not delivered
    let ka = eth4(&ip4_udp(A4, B4, 5060, 5060, b"\r\n\r\n"));
    let (dec, sink) = decode_frames(1, &[(0, ka)], &config());
    assert!(sink.got.is_empty());
    assert_eq!(dec.stats().keepalives, 1);
}

#[test]
fn malformed_headers_are_counted_not_fatal() {
    let mut bad_ihl = v4();
    bad_ihl[0] = 0x43;
    let mut short_udp = v4();
    short_udp.truncate(24);
    let frames = vec![
        (0, eth4(&bad_ihl)),
        (0, eth4(&[0x45, 0, 0])),
        (0, eth4(&short_udp)),
        (0, vec![1, 2, 3]),
        (0, eth(0x86dd, &[0x60; 10])),
        (0, eth4(&v4())),
    ];
    let (dec, sink) = decode_frames(1, &frames, &config());
    assert_eq!(dec.stats().decode_errors, 5);
    assert_eq!(sink.got.len(), 1);
}

#[test]
fn real_sip_hooks_frame_and_detect() {
    // the default config uses the sip crate's detection
    let cfg = CaptureConfig {
        detect_any_port: true,
        ..CaptureConfig::default()
    };
    let odd = eth4(&ip4_udp(A4, B4, 7777, 8888, SIP_INVITE));
    let (_, sink) = decode_frames(1, &[(0, odd)], &cfg);
    assert_eq!(sink.got.len(), 1);
}

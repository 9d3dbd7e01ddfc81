//! A writer of each encapsulation sipmeter opens, written from the protocol specifications (not
//! from the decoder), to wrap the frames of the SIPp captures: every function takes an Ethernet
//! frame and returns an Ethernet frame (or raw packet bytes) carrying it.
#![allow(dead_code)]

use std::net::SocketAddr;

pub const ETH_IPV4: u16 = 0x0800;
pub const ETH_IPV6: u16 = 0x86dd;

/// Outer (tunnel endpoint) addresses, distinct from every address of the captures.
pub const OUT4_A: [u8; 4] = [198, 51, 100, 1];
pub const OUT4_B: [u8; 4] = [198, 51, 100, 2];
pub const OUT6_A: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
];
pub const OUT6_B: [u8; 16] = [
    0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
];

pub fn ethertype(frame: &[u8]) -> u16 {
    u16::from_be_bytes([frame[12], frame[13]])
}

/// The IP packet of an untagged Ethernet frame, with its ethertype; `None` for ARP and such.
pub fn ip_of(frame: &[u8]) -> Option<(u16, &[u8])> {
    match ethertype(frame) {
        et @ (ETH_IPV4 | ETH_IPV6) => Some((et, &frame[14..])),
        _ => None,
    }
}

pub fn eth(et: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 0xaa, 0x02, 0, 0, 0, 0, 0xbb];
    f.extend_from_slice(&et.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

pub fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    let mut sum = 0u32;
    for c in h.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    h[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    h.extend_from_slice(payload);
    h
}

pub fn ipv6(next: u8, src: [u8; 16], dst: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(payload);
    h
}

/// UDP with a zero checksum (allowed for IPv4; our decoder and tshark do not insist on IPv6).
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

/// Outer IPv4 between the tunnel endpoints, in Ethernet.
pub fn outer4(proto: u8, payload: &[u8]) -> Vec<u8> {
    eth(ETH_IPV4, &ipv4(proto, OUT4_A, OUT4_B, payload))
}

pub fn outer6(next: u8, payload: &[u8]) -> Vec<u8> {
    eth(ETH_IPV6, &ipv6(next, OUT6_A, OUT6_B, payload))
}

/// GRE header (RFC 2784/2890) with optional checksum, key and sequence number.
pub fn gre(proto: u16, csum: bool, key: Option<u32>, seq: Option<u32>, payload: &[u8]) -> Vec<u8> {
    let mut flags = 0u16;
    if csum {
        flags |= 0x8000;
    }
    if key.is_some() {
        flags |= 0x2000;
    }
    if seq.is_some() {
        flags |= 0x1000;
    }
    let mut g = flags.to_be_bytes().to_vec();
    g.extend_from_slice(&proto.to_be_bytes());
    if csum {
        g.extend_from_slice(&[0, 0, 0, 0]);
    }
    if let Some(k) = key {
        g.extend_from_slice(&k.to_be_bytes());
    }
    if let Some(s) = seq {
        g.extend_from_slice(&s.to_be_bytes());
    }
    g.extend_from_slice(payload);
    g
}

/// IP in GRE in IPv4.
pub fn gre_ip(frame: &[u8], n: u32, options: bool) -> Vec<u8> {
    let Some((et, ip)) = ip_of(frame) else {
        return frame.to_vec();
    };
    let g = if options {
        gre(et, true, Some(0xdead_beef), Some(n), ip)
    } else {
        gre(et, false, None, None, ip)
    };
    outer4(47, &g)
}

/// Ethernet in GRE (transparent Ethernet bridging, 0x6558) in IPv4.
pub fn gre_teb(frame: &[u8], n: u32) -> Vec<u8> {
    outer4(47, &gre(0x6558, false, Some(7), Some(n), frame))
}

/// ERSPAN type II: GRE with sequence number, 0x88be, 8-byte header (version 1).
pub fn erspan2(frame: &[u8], n: u32) -> Vec<u8> {
    let mut h = vec![0x10, 0x0a, 0x00, 0x2a]; // ver 1, VLAN 10, session 42
    h.extend_from_slice(&[0, 0, 0, 3]); // index
    h.extend_from_slice(frame);
    outer4(47, &gre(0x88be, false, None, Some(n), &h))
}

/// ERSPAN type III: GRE with sequence number, 0x22eb, 12-byte header (version 2, frame type
/// Ethernet), plus the 8-byte platform-specific subheader when `subheader`.
pub fn erspan3(frame: &[u8], n: u32, subheader: bool) -> Vec<u8> {
    let mut h = vec![0x20, 0x0a, 0x00, 0x2a]; // ver 2, VLAN 10, session 42
    h.extend_from_slice(&n.wrapping_mul(1000).to_be_bytes()); // timestamp
    // SGT(16) P(1) FT(5)=0 HW ID(6) D(1) Gra(2) O(1)
    let w2: u32 = (0x1234 << 16) | (1 << 15) | (5 << 4) | (1 << 1) | u32::from(subheader);
    h.extend_from_slice(&w2.to_be_bytes());
    if subheader {
        h.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 0, 0x01]);
    }
    h.extend_from_slice(frame);
    outer4(47, &gre(0x22eb, false, None, Some(n), &h))
}

/// VXLAN (RFC 7348) on UDP 4789.
pub fn vxlan(frame: &[u8], n: u32) -> Vec<u8> {
    let mut v = vec![0x08, 0, 0, 0, 0x00, 0x12, 0x34, 0];
    v.extend_from_slice(frame);
    outer4(17, &udp(49152 + (n % 1000) as u16, 4789, &v))
}

/// Geneve (RFC 8926) on UDP 6081, with one 8-byte option.
pub fn geneve(frame: &[u8], n: u32) -> Vec<u8> {
    let mut g = vec![0x02, 0x00, 0x65, 0x58, 0x00, 0x56, 0x78, 0];
    // option: class 0x0103, type 0x80, length 1 (4-byte units) + 4 bytes of data
    g.extend_from_slice(&[0x01, 0x03, 0x80, 0x01, 0xca, 0xfe, 0xba, 0xbe]);
    g.extend_from_slice(frame);
    outer6(17, &udp(50000 + (n % 1000) as u16, 6081, &g))
}

/// IP in IP with an outer IPv4 (`v6_outer` false) or IPv6 header: 4in4, 6in4, 4in6, 6in6.
pub fn ipip(frame: &[u8], v6_outer: bool) -> Vec<u8> {
    let Some((et, ip)) = ip_of(frame) else {
        return frame.to_vec();
    };
    let proto = if et == ETH_IPV4 { 4 } else { 41 };
    if v6_outer {
        outer6(proto, ip)
    } else {
        outer4(proto, ip)
    }
}

/// TZSP on UDP 37008: version 1, type 0 (received), encapsulation 1 (Ethernet), a couple of
/// tagged fields, END.
pub fn tzsp(frame: &[u8]) -> Vec<u8> {
    let mut t = vec![1, 0, 0, 1];
    t.extend_from_slice(&[0, 10, 1, 0xd8]); // padding, signal tag (len 1)
    t.extend_from_slice(&[40, 4, 0, 0, 0, 9]); // packet count tag (len 4)
    t.push(1); // END
    t.extend_from_slice(frame);
    outer4(17, &udp(40000, 37008, &t))
}

/// An MPLS label stack of `labels` entries (the last with the bottom-of-stack bit).
fn labels(n: usize) -> Vec<u8> {
    let mut l = Vec::new();
    for i in 0..n {
        let label: u32 = 16 + i as u32 * 1000;
        let bos = u32::from(i + 1 == n);
        l.extend_from_slice(&((label << 12) | (bos << 8) | 64).to_be_bytes());
    }
    l
}

/// IP over an MPLS stack of two labels in Ethernet.
pub fn mpls(frame: &[u8]) -> Vec<u8> {
    let Some((_, ip)) = ip_of(frame) else {
        return frame.to_vec();
    };
    let mut m = labels(2);
    m.extend_from_slice(ip);
    eth(0x8847, &m)
}

/// An Ethernet pseudowire: three labels, a control word, the whole frame.
pub fn mpls_pw(frame: &[u8]) -> Vec<u8> {
    let mut m = labels(3);
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(frame);
    eth(0x8847, &m)
}

/// A PPPoE session frame (RFC 2516) carrying the IP packet as PPP.
pub fn pppoe(frame: &[u8]) -> Vec<u8> {
    let Some((et, ip)) = ip_of(frame) else {
        return frame.to_vec();
    };
    let ppp: u16 = if et == ETH_IPV4 { 0x0021 } else { 0x0057 };
    let mut p = vec![0x11, 0x00, 0x12, 0x34];
    p.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
    p.extend_from_slice(&ppp.to_be_bytes());
    p.extend_from_slice(ip);
    eth(0x8864, &p)
}

/// HEPv3 chunk.
fn hep_chunk(out: &mut Vec<u8>, ctype: u16, v: &[u8]) {
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&ctype.to_be_bytes());
    out.extend_from_slice(&((6 + v.len()) as u16).to_be_bytes());
    out.extend_from_slice(v);
}

/// A HEPv3 packet as Kamailio's siptrace sends it (written here from the HEP specification,
/// independently of `capture::hep::encode`).
pub fn hep3(src: SocketAddr, dst: SocketAddr, ts_us: i64, proto: u8, sip: &[u8]) -> Vec<u8> {
    hep3_with_key(src, dst, ts_us, proto, sip, b"myhep")
}

/// [`hep3`] with the given auth key chunk.
pub fn hep3_with_key(
    src: SocketAddr,
    dst: SocketAddr,
    ts_us: i64,
    proto: u8,
    sip: &[u8],
    key: &[u8],
) -> Vec<u8> {
    let mut h = b"HEP3\0\0".to_vec();
    let v4 = src.is_ipv4();
    hep_chunk(&mut h, 1, &[if v4 { 2 } else { 10 }]);
    hep_chunk(&mut h, 2, &[proto]);
    let octets = |a: SocketAddr| match a.ip() {
        std::net::IpAddr::V4(a) => a.octets().to_vec(),
        std::net::IpAddr::V6(a) => a.octets().to_vec(),
    };
    hep_chunk(&mut h, if v4 { 3 } else { 5 }, &octets(src));
    hep_chunk(&mut h, if v4 { 4 } else { 6 }, &octets(dst));
    hep_chunk(&mut h, 7, &src.port().to_be_bytes());
    hep_chunk(&mut h, 8, &dst.port().to_be_bytes());
    hep_chunk(&mut h, 9, &((ts_us / 1_000_000) as u32).to_be_bytes());
    hep_chunk(&mut h, 10, &((ts_us % 1_000_000) as u32).to_be_bytes());
    hep_chunk(&mut h, 11, &[1]);
    hep_chunk(&mut h, 12, &2001u32.to_be_bytes());
    // a vendor chunk the reader must skip
    h.extend_from_slice(&[0x00, 0x21, 0x00, 0x01, 0x00, 0x08, 0xab, 0xcd]);
    hep_chunk(&mut h, 14, key);
    hep_chunk(&mut h, 15, sip);
    let n = h.len() as u16;
    h[4..6].copy_from_slice(&n.to_be_bytes());
    h
}

/// A TCP segment (no options) with the given flags (0x18 = PSH|ACK, 0x02 = SYN).
pub fn tcp(sport: u16, dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    t
}

/// pcap file bytes (µs, little-endian).
pub fn pcap(linktype: u32, frames: &[(i64, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&linktype.to_le_bytes());
    for (ts, data) in frames {
        out.extend_from_slice(&((ts / 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&((ts % 1_000_000) as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
    }
    out
}

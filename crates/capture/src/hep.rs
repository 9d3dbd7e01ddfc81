//! HEPv3 (Homer Encapsulation Protocol): what Kamailio's `siptrace`, OpenSIPS' `proto_hep`,
//! FreeSWITCH, Asterisk and heplify send to a collector. One HEP packet carries one captured
//! message (a SIP message for protocol type 1) with the addresses, ports and capture time of the
//! original packet, as chunks:
//!
//! ```text
//! "HEP3" | total length (u16, whole packet) | chunk*      chunk = vendor (u16) | type (u16) |
//!                                                                 length (u16, with these 6) | value
//! ```
//!
//! Only vendor 0 (generic) chunks are interpreted; the others are skipped. Parsing is total:
//! bad lengths give an error, never a panic, and nothing is allocated.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::Transport;

/// The magic every HEPv3 packet starts with.
pub const MAGIC: &[u8; 4] = b"HEP3";

/// HEP protocol type of SIP (chunk 0x000b).
pub const PROTO_SIP: u8 = 1;

/// A parsed HEPv3 packet, borrowing from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HepPacket<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// Capture time of the original packet (µs since the epoch), when the chunks give it.
    pub ts_us: Option<i64>,
    /// From the IP protocol chunk: UDP (17, also the default), TCP (6), SCTP (132).
    pub transport: Transport,
    /// Protocol type chunk (1 = SIP), when present.
    pub proto_type: Option<u8>,
    /// Capture agent id chunk.
    pub capture_id: Option<u32>,
    /// Authentication key chunk (a password in clear, as HEP defines it).
    pub auth_key: Option<&'a [u8]>,
    /// The captured message (chunk 0x000f); `None` when absent or only compressed (0x0010).
    pub payload: Option<&'a [u8]>,
}

/// Why bytes are not a usable HEPv3 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HepError {
    #[error("not a HEPv3 packet (no HEP3 magic)")]
    NoMagic,
    #[error("HEPv3 length field smaller than its header or larger than the data")]
    BadLength,
    #[error("HEPv3 chunk with a bad length")]
    BadChunk,
    #[error("HEPv3 packet without source/destination address and port")]
    NoAddress,
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

#[inline]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Does `b` start with the HEPv3 magic?
#[inline]
pub fn is_hep(b: &[u8]) -> bool {
    b.starts_with(MAGIC)
}

/// Stream framing: `Some(Ok(n))` when `buf` starts with a whole HEP packet of `n` bytes, `None`
/// when more bytes are needed, `Some(Err)` when the header is impossible.
pub fn frame_len(buf: &[u8]) -> Option<Result<usize, HepError>> {
    if buf.len() < 4 {
        return if MAGIC.starts_with(buf) {
            None
        } else {
            Some(Err(HepError::NoMagic))
        };
    }
    if !is_hep(buf) {
        return Some(Err(HepError::NoMagic));
    }
    let len = usize::from(be16(buf, 4)?);
    if len < 6 {
        return Some(Err(HepError::BadLength));
    }
    (buf.len() >= len).then_some(Ok(len))
}

/// Parse one HEPv3 packet at the start of `buf` (bytes after its length field are ignored).
pub fn parse(buf: &[u8]) -> Result<HepPacket<'_>, HepError> {
    if !is_hep(buf) {
        return Err(HepError::NoMagic);
    }
    let len = usize::from(be16(buf, 4).ok_or(HepError::BadLength)?);
    if len < 6 || len > buf.len() {
        return Err(HepError::BadLength);
    }
    let b = &buf[..len];
    let mut pos = 6;
    let (mut src4, mut dst4, mut src6, mut dst6) = (None, None, None, None);
    let (mut sport, mut dport) = (None, None);
    let (mut sec, mut usec) = (None, None);
    let mut pkt = HepPacket {
        src: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        dst: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        ts_us: None,
        transport: Transport::Udp,
        proto_type: None,
        capture_id: None,
        auth_key: None,
        payload: None,
    };
    while pos < b.len() {
        let (Some(vendor), Some(ctype), Some(clen)) =
            (be16(b, pos), be16(b, pos + 2), be16(b, pos + 4))
        else {
            return Err(HepError::BadChunk);
        };
        let clen = usize::from(clen);
        if clen < 6 || pos + clen > b.len() {
            return Err(HepError::BadChunk);
        }
        let v = &b[pos + 6..pos + clen];
        pos += clen;
        if vendor != 0 {
            continue;
        }
        match ctype {
            0x02 => {
                if let Some(&p) = v.first() {
                    pkt.transport = match p {
                        6 => Transport::Tcp,
                        132 => Transport::Sctp,
                        _ => Transport::Udp,
                    };
                }
            }
            0x03 if v.len() == 4 => src4 = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
            0x04 if v.len() == 4 => dst4 = Some(Ipv4Addr::new(v[0], v[1], v[2], v[3])),
            0x05 if v.len() == 16 => src6 = <[u8; 16]>::try_from(v).ok().map(Ipv6Addr::from),
            0x06 if v.len() == 16 => dst6 = <[u8; 16]>::try_from(v).ok().map(Ipv6Addr::from),
            0x07 => sport = be16(v, 0),
            0x08 => dport = be16(v, 0),
            0x09 => sec = be32(v, 0),
            0x0a => usec = be32(v, 0),
            0x0b => pkt.proto_type = v.first().copied(),
            0x0c => pkt.capture_id = be32(v, 0),
            0x0e => pkt.auth_key = Some(v),
            0x0f => pkt.payload = Some(v),
            _ => {}
        }
    }
    let (Some(sport), Some(dport)) = (sport, dport) else {
        return Err(HepError::NoAddress);
    };
    (pkt.src, pkt.dst) = match (src4, dst4, src6, dst6) {
        (Some(s), Some(d), _, _) => (
            SocketAddr::new(IpAddr::V4(s), sport),
            SocketAddr::new(IpAddr::V4(d), dport),
        ),
        (_, _, Some(s), Some(d)) => (
            SocketAddr::new(IpAddr::V6(s), sport),
            SocketAddr::new(IpAddr::V6(d), dport),
        ),
        _ => return Err(HepError::NoAddress),
    };
    if let Some(sec) = sec {
        // Microseconds beyond a second are tolerated (some agents send them unnormalised).
        pkt.ts_us = Some(i64::from(sec) * 1_000_000 + i64::from(usec.unwrap_or(0)));
    }
    Ok(pkt)
}

/// Build a HEPv3 packet (tests, fuzz seeds and tools that re-send captures as HEP).
pub fn encode(
    src: SocketAddr,
    dst: SocketAddr,
    ts_us: i64,
    transport: Transport,
    payload: &[u8],
) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, ctype: u16, v: &[u8]) {
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&ctype.to_be_bytes());
        out.extend_from_slice(&((6 + v.len()) as u16).to_be_bytes());
        out.extend_from_slice(v);
    }
    let mut out = Vec::with_capacity(payload.len() + 96);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[0, 0]);
    let fam = if src.is_ipv4() { 2u8 } else { 10 };
    chunk(&mut out, 0x01, &[fam]);
    let proto = match transport {
        Transport::Tcp | Transport::Tls | Transport::Ws => 6u8,
        Transport::Sctp => 132,
        Transport::Udp => 17,
    };
    chunk(&mut out, 0x02, &[proto]);
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            chunk(&mut out, 0x03, &s.octets());
            chunk(&mut out, 0x04, &d.octets());
        }
        (s, d) => {
            let v6 = |a: IpAddr| match a {
                IpAddr::V4(a) => a.to_ipv6_mapped(),
                IpAddr::V6(a) => a,
            };
            chunk(&mut out, 0x05, &v6(s).octets());
            chunk(&mut out, 0x06, &v6(d).octets());
        }
    }
    chunk(&mut out, 0x07, &src.port().to_be_bytes());
    chunk(&mut out, 0x08, &dst.port().to_be_bytes());
    let sec = ts_us.div_euclid(1_000_000) as u32;
    let usec = ts_us.rem_euclid(1_000_000) as u32;
    chunk(&mut out, 0x09, &sec.to_be_bytes());
    chunk(&mut out, 0x0a, &usec.to_be_bytes());
    chunk(&mut out, 0x0b, &[PROTO_SIP]);
    chunk(&mut out, 0x0c, &2001u32.to_be_bytes());
    chunk(&mut out, 0x0f, payload);
    let len = out.len().min(usize::from(u16::MAX)) as u16;
    out[4..6].copy_from_slice(&len.to_be_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_v4_and_v6() {
        let s: SocketAddr = "10.0.0.1:5060".parse().unwrap();
        let d: SocketAddr = "10.0.0.2:5070".parse().unwrap();
        let b = encode(s, d, 1_700_000_000_123_456, Transport::Tcp, b"INVITE x");
        let p = parse(&b).unwrap();
        assert_eq!((p.src, p.dst), (s, d));
        assert_eq!(p.ts_us, Some(1_700_000_000_123_456));
        assert_eq!(p.transport, Transport::Tcp);
        assert_eq!(p.proto_type, Some(PROTO_SIP));
        assert_eq!(p.payload, Some(&b"INVITE x"[..]));
        assert_eq!(frame_len(&b), Some(Ok(b.len())));
        assert_eq!(frame_len(&b[..b.len() - 1]), None);
        assert_eq!(frame_len(b"HE"), None);
        assert_eq!(frame_len(b"XY"), Some(Err(HepError::NoMagic)));
        let s6: SocketAddr = "[2001:db8::1]:5060".parse().unwrap();
        let d6: SocketAddr = "[2001:db8::2]:5060".parse().unwrap();
        let p6b = encode(s6, d6, 5, Transport::Udp, b"x");
        let p6 = parse(&p6b).unwrap();
        assert_eq!((p6.src, p6.dst, p6.ts_us), (s6, d6, Some(5)));
    }

    #[test]
    fn bad_input_is_an_error() {
        let s: SocketAddr = "10.0.0.1:5060".parse().unwrap();
        let b = encode(s, s, 0, Transport::Udp, b"SIP/2.0 200 OK");
        for n in 0..b.len() {
            let _ = parse(&b[..n]);
            let _ = frame_len(&b[..n]);
        }
        let mut bad = b.clone();
        bad[4..6].copy_from_slice(&3u16.to_be_bytes());
        assert_eq!(parse(&bad), Err(HepError::BadLength));
        let mut bad = b.clone();
        bad[10..12].copy_from_slice(&2u16.to_be_bytes()); // first chunk length 2
        assert_eq!(parse(&bad), Err(HepError::BadChunk));
        let mut only_payload = b"HEP3\0\0".to_vec();
        only_payload.extend_from_slice(&[0, 0, 0, 0x0f, 0, 7, b'x']);
        let n = only_payload.len() as u16;
        only_payload[4..6].copy_from_slice(&n.to_be_bytes());
        assert_eq!(parse(&only_payload), Err(HepError::NoAddress));
    }
}

//! A minimal classic-pcap writer for Ethernet/IPv4/UDP|TCP frames.
//!
//! Hand-written because we only ever emit one shape (microsecond, little-endian, link type 1)
//! and the hot path — RTP — copies a pre-built record and patches a few bytes, which no generic
//! packet-building crate would let us do without per-packet work.

use std::io::{self, Write};

use crate::time::{Micros, SECOND};

pub const PCAP_GLOBAL_HEADER_LEN: usize = 24;
pub const RECORD_HEADER_LEN: usize = 16;
pub const ETH_LEN: usize = 14;
pub const IPV4_LEN: usize = 20;
pub const UDP_LEN: usize = 8;
pub const TCP_LEN: usize = 20;
/// The snap length we announce; every frame we write is far smaller, so nothing is truncated.
pub const SNAPLEN: u32 = 262_144;

pub const IPPROTO_TCP: u8 = 6;
pub const IPPROTO_UDP: u8 = 17;

pub const TCP_FIN: u8 = 0x01;
pub const TCP_SYN: u8 = 0x02;
pub const TCP_PSH: u8 = 0x08;
pub const TCP_ACK: u8 = 0x10;

/// DSCP values as real phones mark them: CS3 for signalling, EF for voice.
pub const TOS_SIGNALLING: u8 = 0x60;
pub const TOS_VOICE: u8 = 0xb8;

/// One side of a transport conversation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub ip: [u8; 4],
    pub port: u16,
}

impl Endpoint {
    pub const fn new(ip: [u8; 4], port: u16) -> Self {
        Self { ip, port }
    }
}

/// A locally administered MAC derived from the IP, so each host keeps one MAC throughout the
/// capture (as a switch port mirror would show) without a host table.
fn mac_for(ip: [u8; 4]) -> [u8; 6] {
    [0x02, 0x00, ip[0], ip[1], ip[2], ip[3]]
}

/// One's-complement sum of 16-bit big-endian words, not yet folded.
fn sum16(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Appends the Ethernet and IPv4 headers of a frame whose IP payload is `l4_len` bytes long.
pub fn push_eth_ipv4(
    buf: &mut Vec<u8>,
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    tos: u8,
    ip_id: u16,
    l4_len: usize,
) {
    buf.extend_from_slice(&mac_for(dst));
    buf.extend_from_slice(&mac_for(src));
    buf.extend_from_slice(&0x0800u16.to_be_bytes());
    let start = buf.len();
    let total = (IPV4_LEN + l4_len) as u16;
    buf.extend_from_slice(&[0x45, tos]);
    buf.extend_from_slice(&total.to_be_bytes());
    buf.extend_from_slice(&ip_id.to_be_bytes());
    buf.extend_from_slice(&0x4000u16.to_be_bytes()); // DF, no fragmentation
    buf.extend_from_slice(&[64, proto, 0, 0]);
    buf.extend_from_slice(&src);
    buf.extend_from_slice(&dst);
    let csum = fold(sum16(0, &buf[start..start + IPV4_LEN]));
    buf[start + 10..start + 12].copy_from_slice(&csum.to_be_bytes());
}

/// Pseudo-header sum for the UDP/TCP checksum.
fn pseudo_sum(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: usize) -> u32 {
    let mut acc = sum16(0, &src);
    acc = sum16(acc, &dst);
    acc + u32::from(proto) + l4_len as u32
}

/// Appends a pcap record header.
pub fn push_record_header(buf: &mut Vec<u8>, ts: Micros, frame_len: usize) {
    buf.extend_from_slice(&((ts / SECOND) as u32).to_le_bytes());
    buf.extend_from_slice(&((ts % SECOND) as u32).to_le_bytes());
    buf.extend_from_slice(&(frame_len as u32).to_le_bytes());
    buf.extend_from_slice(&(frame_len as u32).to_le_bytes());
}

/// Patches the timestamp of a record that starts at `rec[0]`.
#[inline]
pub fn patch_record_time(rec: &mut [u8], ts: Micros) {
    rec[0..4].copy_from_slice(&((ts / SECOND) as u32).to_le_bytes());
    rec[4..8].copy_from_slice(&((ts % SECOND) as u32).to_le_bytes());
}

/// Builds a complete record (record header + Ethernet + IPv4 + UDP + payload) into `buf`,
/// replacing its contents. `udp_checksum` false leaves it 0, which IPv4 allows and which lets
/// RTP templates be patched without recomputing anything.
#[allow(clippy::too_many_arguments)]
pub fn build_udp_record(
    buf: &mut Vec<u8>,
    ts: Micros,
    src: Endpoint,
    dst: Endpoint,
    tos: u8,
    ip_id: u16,
    payload: &[u8],
    udp_checksum: bool,
) {
    buf.clear();
    let l4_len = UDP_LEN + payload.len();
    push_record_header(buf, ts, ETH_LEN + IPV4_LEN + l4_len);
    push_eth_ipv4(buf, src.ip, dst.ip, IPPROTO_UDP, tos, ip_id, l4_len);
    let udp = buf.len();
    buf.extend_from_slice(&src.port.to_be_bytes());
    buf.extend_from_slice(&dst.port.to_be_bytes());
    buf.extend_from_slice(&(l4_len as u16).to_be_bytes());
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(payload);
    if udp_checksum {
        let acc = sum16(pseudo_sum(src.ip, dst.ip, IPPROTO_UDP, l4_len), &buf[udp..]);
        let mut c = fold(acc);
        if c == 0 {
            c = 0xffff; // 0 means "no checksum" in UDP
        }
        buf[udp + 6..udp + 8].copy_from_slice(&c.to_be_bytes());
    }
}

/// Builds a complete TCP record (no options) into `buf`, replacing its contents.
#[allow(clippy::too_many_arguments)]
pub fn build_tcp_record(
    buf: &mut Vec<u8>,
    ts: Micros,
    src: Endpoint,
    dst: Endpoint,
    ip_id: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) {
    buf.clear();
    let l4_len = TCP_LEN + payload.len();
    push_record_header(buf, ts, ETH_LEN + IPV4_LEN + l4_len);
    push_eth_ipv4(
        buf,
        src.ip,
        dst.ip,
        IPPROTO_TCP,
        TOS_SIGNALLING,
        ip_id,
        l4_len,
    );
    let tcp = buf.len();
    buf.extend_from_slice(&src.port.to_be_bytes());
    buf.extend_from_slice(&dst.port.to_be_bytes());
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&ack.to_be_bytes());
    buf.extend_from_slice(&[(TCP_LEN as u8 / 4) << 4, flags]);
    buf.extend_from_slice(&64_240u16.to_be_bytes()); // window
    buf.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    buf.extend_from_slice(payload);
    let acc = sum16(pseudo_sum(src.ip, dst.ip, IPPROTO_TCP, l4_len), &buf[tcp..]);
    let c = fold(acc);
    buf[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());
}

/// Streams records to `W`, counting what it wrote so the generator can stop at a target size.
pub struct PcapWriter<W: Write> {
    out: W,
    bytes: u64,
    packets: u64,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the global header: magic for microsecond resolution, version 2.4, Ethernet.
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut h = Vec::with_capacity(PCAP_GLOBAL_HEADER_LEN);
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        h.extend_from_slice(&SNAPLEN.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        out.write_all(&h)?;
        Ok(Self {
            out,
            bytes: PCAP_GLOBAL_HEADER_LEN as u64,
            packets: 0,
        })
    }

    /// Writes one complete record (header included), as built by the `build_*` functions or a
    /// patched template.
    #[inline]
    pub fn write_record(&mut self, rec: &[u8]) -> io::Result<()> {
        self.out.write_all(rec)?;
        self.bytes += rec.len() as u64;
        self.packets += 1;
        Ok(())
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn packets(&self) -> u64 {
        self.packets
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071's worked example: the folded sum of these words is 0xddf2, so the checksum
    /// (its complement) is 0x220d.
    #[test]
    fn checksum_matches_rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum16(0, &data)), !0xddf2);
    }

    #[test]
    fn ipv4_header_checksum_verifies_to_zero() {
        let mut buf = Vec::new();
        push_eth_ipv4(
            &mut buf,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            IPPROTO_UDP,
            0,
            7,
            100,
        );
        assert_eq!(fold(sum16(0, &buf[ETH_LEN..ETH_LEN + IPV4_LEN])), 0);
    }

    #[test]
    fn udp_and_tcp_checksums_verify_to_zero() {
        let (a, b) = (
            Endpoint::new([10, 0, 0, 1], 5060),
            Endpoint::new([10, 0, 0, 2], 5060),
        );
        let mut buf = Vec::new();
        build_udp_record(&mut buf, 0, a, b, 0, 1, b"odd length payload!", true);
        let l4 = &buf[RECORD_HEADER_LEN + ETH_LEN + IPV4_LEN..];
        assert_eq!(
            fold(sum16(pseudo_sum(a.ip, b.ip, IPPROTO_UDP, l4.len()), l4)),
            0
        );

        build_tcp_record(
            &mut buf,
            0,
            a,
            b,
            1,
            1000,
            2000,
            TCP_ACK | TCP_PSH,
            b"hello",
        );
        let l4 = &buf[RECORD_HEADER_LEN + ETH_LEN + IPV4_LEN..];
        assert_eq!(
            fold(sum16(pseudo_sum(a.ip, b.ip, IPPROTO_TCP, l4.len()), l4)),
            0
        );
    }

    #[test]
    fn record_lengths_and_time_are_written() {
        let mut buf = Vec::new();
        let ts = 1_793_520_000 * SECOND + 123_456;
        build_udp_record(
            &mut buf,
            ts,
            Endpoint::new([1, 2, 3, 4], 1),
            Endpoint::new([5, 6, 7, 8], 2),
            0,
            0,
            &[0; 10],
            false,
        );
        let frame = (ETH_LEN + IPV4_LEN + UDP_LEN + 10) as u32;
        assert_eq!(buf.len(), RECORD_HEADER_LEN + frame as usize);
        assert_eq!(
            u32::from_le_bytes(buf[0..4].try_into().unwrap()),
            1_793_520_000
        );
        assert_eq!(u32::from_le_bytes(buf[4..8].try_into().unwrap()), 123_456);
        assert_eq!(u32::from_le_bytes(buf[8..12].try_into().unwrap()), frame);
        assert_eq!(u32::from_le_bytes(buf[12..16].try_into().unwrap()), frame);
    }
}

//! Test fixtures: capture file writers, packet builders, a collecting sink and a tiny SIP
//! framing stand-in (so TCP tests exercise our reassembly, not the sip crate's parser).
#![allow(dead_code)]

use std::net::SocketAddr;

use capture::{CaptureConfig, Decoder, FileReport, Sink, SipHooks, SipPayload, Transport};
use etherparse::PacketBuilder;

pub const SIP_INVITE: &[u8] =
    b"INVITE sip:bob@example.com SIP/2.0\r\nCall-ID: abc\r\nContent-Length: 4\r\n\r\nv=0\n";

/// A SIP-ish message with a body of `body` bytes.
pub fn sip_msg(n: usize, body: usize) -> Vec<u8> {
    let mut m = format!(
        "OPTIONS sip:{n}@example.com SIP/2.0\r\nCall-ID: call-{n}\r\nContent-Length: {body}\r\n\r\n"
    )
    .into_bytes();
    m.extend((0..body).map(|i| b'a' + (i % 26) as u8));
    m
}

#[derive(Debug, Clone, PartialEq)]
pub struct Got {
    pub ts_us: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    pub data: Vec<u8>,
}

#[derive(Default)]
pub struct Collect {
    pub got: Vec<Got>,
    pub progress: Vec<u64>,
}

impl Sink for Collect {
    fn sip(&mut self, p: &SipPayload<'_>) {
        self.got.push(Got {
            ts_us: p.ts_us,
            src: p.src,
            dst: p.dst,
            transport: p.transport,
            data: p.data.to_vec(),
        });
    }
    fn progress(&mut self, b: u64) {
        self.progress.push(b);
    }
}

pub fn test_looks_like_sip(b: &[u8]) -> bool {
    const STARTS: [&[u8]; 8] = [
        b"SIP/2.0 ",
        b"INVITE ",
        b"ACK ",
        b"BYE ",
        b"CANCEL ",
        b"OPTIONS ",
        b"REGISTER ",
        b"NOTIFY ",
    ];
    STARTS.iter().any(|s| b.starts_with(s))
}

/// Headers up to the blank line plus Content-Length body.
pub fn test_message_len(b: &[u8]) -> Option<Result<usize, sip::ParseError>> {
    if !test_looks_like_sip(b) {
        let partial = STARTS_PARTIAL
            .iter()
            .any(|s| s.starts_with(b) && b.len() < s.len());
        if partial {
            return None;
        }
        return Some(Err(sip::ParseError::NotSip));
    }
    let end = b.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&b[..end]).ok()?;
    let mut cl = 0usize;
    for line in head.split("\r\n") {
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower
            .strip_prefix("content-length:")
            .or_else(|| lower.strip_prefix("l:"))
        {
            cl = v.trim().parse().ok()?;
        }
    }
    if b.len() < end + cl {
        return None;
    }
    Some(Ok(end + cl))
}

const STARTS_PARTIAL: [&[u8]; 4] = [b"SIP/2.0 ", b"INVITE ", b"OPTIONS ", b"BYE "];

pub fn test_hooks() -> SipHooks {
    SipHooks {
        message_len: test_message_len,
        looks_like_sip: test_looks_like_sip,
    }
}

pub fn config() -> CaptureConfig {
    CaptureConfig {
        hooks: test_hooks(),
        ..CaptureConfig::default()
    }
}

/// A raw IPv4/UDP packet.
pub fn ip4_udp(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src, dst, 64)
        .udp(sport, dport)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// A raw IPv6/UDP packet.
pub fn ip6_udp(src: [u8; 16], dst: [u8; 16], sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv6(src, dst, 64)
        .udp(sport, dport)
        .write(&mut out, payload)
        .unwrap();
    out
}

/// Ethernet II around an IP packet.
pub fn eth(ethertype: u16, ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

pub fn eth4(ip: &[u8]) -> Vec<u8> {
    eth(0x0800, ip)
}

/// A hand-built IPv4 header (checksum left zero: the decoder does not verify it).
pub fn ipv4_header(
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    id: u16,
    more: bool,
    offset: usize,
    payload_len: usize,
) -> Vec<u8> {
    let total = (20 + payload_len) as u16;
    let frag = ((offset / 8) as u16) | if more { 0x2000 } else { 0 };
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&id.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h
}

/// pcap file bytes: `big` byte order, `nanos` timestamp resolution.
pub fn pcap(linktype: u32, big: bool, nanos: bool, pkts: &[(i64, Vec<u8>)]) -> Vec<u8> {
    let w32 = |v: u32| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let w16 = |v: u16| {
        if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(&w32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    out.extend_from_slice(&w16(2));
    out.extend_from_slice(&w16(4));
    out.extend_from_slice(&w32(0));
    out.extend_from_slice(&w32(0));
    out.extend_from_slice(&w32(262144));
    out.extend_from_slice(&w32(linktype));
    for (ts, data) in pkts {
        let sec = (ts / 1_000_000) as u32;
        let frac = if nanos {
            (ts % 1_000_000) as u32 * 1000 + 999
        } else {
            (ts % 1_000_000) as u32
        };
        out.extend_from_slice(&w32(sec));
        out.extend_from_slice(&w32(frac));
        out.extend_from_slice(&w32(data.len() as u32));
        out.extend_from_slice(&w32(data.len() as u32));
        out.extend_from_slice(data);
    }
    out
}

/// Builder for pcapng files.
pub struct Pcapng {
    pub big: bool,
    pub out: Vec<u8>,
}

impl Pcapng {
    pub fn new(big: bool) -> Pcapng {
        let mut p = Pcapng {
            big,
            out: Vec::new(),
        };
        p.section();
        p
    }
    fn w32(&self, v: u32) -> [u8; 4] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn w16(&self, v: u16) -> [u8; 2] {
        if self.big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    pub fn block(&mut self, btype: u32, body: &[u8]) {
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let total = (12 + body.len()) as u32;
        let (t, l) = (self.w32(btype), self.w32(total));
        self.out.extend_from_slice(&t);
        self.out.extend_from_slice(&l);
        self.out.extend_from_slice(&body);
        self.out.extend_from_slice(&l);
    }
    /// Start a new section (the first one is started by `new`).
    pub fn section(&mut self) {
        let mut b = Vec::new();
        b.extend_from_slice(&self.w32(0x1A2B_3C4D));
        b.extend_from_slice(&self.w16(1));
        b.extend_from_slice(&self.w16(0));
        b.extend_from_slice(&[0xff; 8]);
        self.block(0x0A0D_0D0A, &b);
    }
    /// Interface with optional if_tsresol.
    pub fn idb(&mut self, linktype: u16, tsresol: Option<u8>) {
        let mut b = Vec::new();
        b.extend_from_slice(&self.w16(linktype));
        b.extend_from_slice(&self.w16(0));
        b.extend_from_slice(&self.w32(0));
        // an unrelated option first (if_name), to exercise option walking
        b.extend_from_slice(&self.w16(2));
        b.extend_from_slice(&self.w16(5));
        b.extend_from_slice(b"eth0\0\0\0\0");
        if let Some(r) = tsresol {
            b.extend_from_slice(&self.w16(9));
            b.extend_from_slice(&self.w16(1));
            b.extend_from_slice(&[r, 0, 0, 0]);
        }
        b.extend_from_slice(&self.w16(0));
        b.extend_from_slice(&self.w16(0));
        self.block(1, &b);
    }
    pub fn epb(&mut self, iface: u32, units: u64, data: &[u8]) {
        let mut b = Vec::new();
        b.extend_from_slice(&self.w32(iface));
        b.extend_from_slice(&self.w32((units >> 32) as u32));
        b.extend_from_slice(&self.w32(units as u32));
        b.extend_from_slice(&self.w32(data.len() as u32));
        b.extend_from_slice(&self.w32(data.len() as u32));
        b.extend_from_slice(data);
        self.block(6, &b);
    }
    pub fn spb(&mut self, data: &[u8]) {
        let mut b = Vec::new();
        b.extend_from_slice(&self.w32(data.len() as u32));
        b.extend_from_slice(data);
        self.block(3, &b);
    }
    pub fn obsolete_pb(&mut self, iface: u16, units: u64, data: &[u8]) {
        let mut b = Vec::new();
        b.extend_from_slice(&self.w16(iface));
        b.extend_from_slice(&self.w16(0));
        b.extend_from_slice(&self.w32((units >> 32) as u32));
        b.extend_from_slice(&self.w32(units as u32));
        b.extend_from_slice(&self.w32(data.len() as u32));
        b.extend_from_slice(&self.w32(data.len() as u32));
        b.extend_from_slice(data);
        self.block(2, &b);
    }
}

/// Read capture bytes with a fresh decoder.
pub fn read_bytes(name: &str, bytes: &[u8], cfg: &CaptureConfig) -> (FileReport, Collect) {
    let mut dec = Decoder::new(cfg);
    let mut sink = Collect::default();
    let rep = capture::read_capture(name, bytes, cfg, &mut dec, &mut sink);
    (rep, sink)
}

/// Feed frames to a fresh decoder.
pub fn decode_frames(
    linktype: u32,
    frames: &[(i64, Vec<u8>)],
    cfg: &CaptureConfig,
) -> (Decoder, Collect) {
    let mut dec = Decoder::new(cfg);
    let mut sink = Collect::default();
    for (ts, f) in frames {
        dec.frame(linktype, *ts, f, &mut sink);
    }
    (dec, sink)
}

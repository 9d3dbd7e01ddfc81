//! Frames to SIP payloads: link layer → IP (with defragmentation) → UDP / TCP.
//!
//! The hot path is a non-SIP UDP packet (RTP): it costs a link-type match, an ethertype read,
//! a few IPv4 header checks and two bitset lookups, with no allocation and no hashing. Anything
//! expensive (socket addresses, fragment tables, stream maps) happens only after the ports (or
//! SIP detection) said the packet matters.
//!
//! Malformed headers are counted in [`Stats::decode_errors`] and skipped; they never stop the
//! capture and never panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::defrag::{Defrag, FragKey};
use crate::tcp::{Flags, Segment, TcpReassembler};
use crate::{CaptureConfig, PortSet, Sink, SipHooks, SipPayload, Stats, Transport};

/// LINKTYPE_* values we decode.
pub mod linktype {
    pub const NULL: u32 = 0;
    pub const ETHERNET: u32 = 1;
    /// DLT_RAW on some BSDs / OpenBSD values that mean raw IP.
    pub const RAW_12: u32 = 12;
    pub const RAW_14: u32 = 14;
    pub const RAW: u32 = 101;
    pub const LOOP: u32 = 108;
    pub const LINUX_SLL: u32 = 113;
    pub const IPV4: u32 = 228;
    pub const IPV6: u32 = 229;
    pub const LINUX_SLL2: u32 = 276;
}

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88a8;
const ETH_QINQ_OLD: u16 = 0x9100;
const ETH_QINQ_OLD2: u16 = 0x9200;
const ETH_PPPOE: u16 = 0x8864;

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

#[inline(always)]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at + 2)?;
    Some(u16::from_be_bytes([s[0], s[1]]))
}

#[inline(always)]
fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

/// Network-layer addresses of a packet, kept as raw bytes until a payload is delivered.
#[derive(Debug, Clone, Copy)]
enum Addrs {
    V4([u8; 4], [u8; 4]),
    V6([u8; 16], [u8; 16]),
}

impl Addrs {
    fn sockets(&self, sport: u16, dport: u16) -> (SocketAddr, SocketAddr) {
        match *self {
            Addrs::V4(s, d) => (
                SocketAddr::new(IpAddr::V4(Ipv4Addr::from(s)), sport),
                SocketAddr::new(IpAddr::V4(Ipv4Addr::from(d)), dport),
            ),
            Addrs::V6(s, d) => (
                SocketAddr::new(IpAddr::V6(Ipv6Addr::from(s)), sport),
                SocketAddr::new(IpAddr::V6(Ipv6Addr::from(d)), dport),
            ),
        }
    }
}

/// What the link layer carries.
enum L3<'a> {
    V4(&'a [u8]),
    V6(&'a [u8]),
    /// Well-formed, but not IP (ARP, LLDP, ...).
    Other,
}

/// Frame decoder with the state that spans packets (fragments, TCP streams).
///
/// Feed it frames in capture order with [`Decoder::frame`]; the same decoder can be used across
/// several files (a directory of rotated captures) so streams and fragments continue.
pub struct Decoder {
    ports: PortSet,
    detect_any: bool,
    hooks: SipHooks,
    defrag: Defrag,
    tcp: TcpReassembler,
    stats: Stats,
}

impl Decoder {
    pub fn new(config: &CaptureConfig) -> Decoder {
        Decoder {
            ports: config.ports.clone(),
            detect_any: config.detect_any_port,
            hooks: config.hooks,
            defrag: Defrag::new(config.defrag.clone()),
            tcp: TcpReassembler::new(config.tcp.clone()),
            stats: Stats::default(),
        }
    }

    /// Cumulative counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Incomplete IP datagrams held.
    pub fn pending_fragments(&self) -> usize {
        self.defrag.pending()
    }

    /// TCP stream directions tracked.
    pub fn tcp_streams(&self) -> usize {
        self.tcp.stream_count()
    }

    /// Decode one link-layer frame of type `linktype` captured at `ts_us` (µs since epoch),
    /// delivering any SIP payload it completes to `sink`.
    #[inline]
    pub fn frame(&mut self, linktype: u32, ts_us: i64, frame: &[u8], sink: &mut dyn Sink) {
        self.stats.packets += 1;
        self.stats.bytes += frame.len() as u64;
        match link(linktype, frame) {
            Ok(L3::V4(p)) => self.ipv4(ts_us, p, sink),
            Ok(L3::V6(p)) => self.ipv6(ts_us, p, sink),
            Ok(L3::Other) => self.stats.non_sip_packets += 1,
            Err(LinkError::Malformed) => self.stats.decode_errors += 1,
            Err(LinkError::Unsupported) => self.stats.unsupported_linktype += 1,
        }
    }

    #[inline]
    fn ipv4(&mut self, ts: i64, p: &[u8], sink: &mut dyn Sink) {
        let (Some(&vihl), Some(total), Some(frag)) = (p.first(), be16(p, 2), be16(p, 6)) else {
            self.stats.decode_errors += 1;
            return;
        };
        let ihl = usize::from(vihl & 0x0f) * 4;
        let total = usize::from(total);
        if vihl >> 4 != 4 || ihl < 20 || p.len() < ihl || (total != 0 && total < ihl) {
            self.stats.decode_errors += 1;
            return;
        }
        // total == 0 happens with TSO on the capturing host: trust the captured length.
        let end = if total == 0 {
            p.len()
        } else {
            total.min(p.len())
        };
        let proto = p[9];
        let addrs = Addrs::V4([p[12], p[13], p[14], p[15]], [p[16], p[17], p[18], p[19]]);
        let payload = &p[ihl..end];
        let more = frag & 0x2000 != 0;
        let offset = usize::from(frag & 0x1fff) * 8;
        if !more && offset == 0 {
            return self.transport(ts, addrs, proto, payload, sink);
        }
        self.stats.ip_fragments += 1;
        if proto != IPPROTO_UDP && proto != IPPROTO_TCP {
            self.stats.non_sip_packets += 1;
            return;
        }
        let Addrs::V4(src, dst) = addrs else { return };
        let key = FragKey::V4 {
            src,
            dst,
            id: be16(p, 4).unwrap_or(0),
            proto,
        };
        self.fragment(ts, key, addrs, proto, offset, more, payload, sink);
    }

    #[allow(clippy::too_many_arguments)]
    fn fragment(
        &mut self,
        ts: i64,
        key: FragKey,
        addrs: Addrs,
        proto: u8,
        offset: usize,
        more: bool,
        data: &[u8],
        sink: &mut dyn Sink,
    ) {
        // A first fragment of a UDP datagram on non-SIP ports: the rest is not worth buffering.
        if offset == 0
            && proto == IPPROTO_UDP
            && !self.detect_any
            && let (Some(sp), Some(dp)) = (be16(data, 0), be16(data, 2))
            && !self.ports.contains(sp)
            && !self.ports.contains(dp)
        {
            self.defrag.discard(key, ts, &mut self.stats);
            self.stats.non_sip_packets += 1;
            return;
        }
        let Some(whole) = self
            .defrag
            .add(key, ts, offset, more, data, &mut self.stats)
        else {
            return;
        };
        match addrs {
            Addrs::V4(..) => self.transport(ts, addrs, proto, &whole, sink),
            Addrs::V6(..) => self.ipv6_chain(ts, addrs, proto, &whole, false, sink),
        }
    }

    fn ipv6(&mut self, ts: i64, p: &[u8], sink: &mut dyn Sink) {
        if p.len() < 40 || p[0] >> 4 != 6 {
            self.stats.decode_errors += 1;
            return;
        }
        let plen = usize::from(be16(p, 4).unwrap_or(0));
        // Payload length 0 means a jumbogram (or TSO): trust the captured length.
        let end = if plen == 0 {
            p.len()
        } else {
            (40 + plen).min(p.len())
        };
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&p[8..24]);
        dst.copy_from_slice(&p[24..40]);
        self.ipv6_chain(ts, Addrs::V6(src, dst), p[6], &p[40..end], true, sink);
    }

    /// Walk IPv6 extension headers from `next` until UDP or TCP. Stops (as non-SIP) on ESP,
    /// "no next header" and anything unknown.
    fn ipv6_chain(
        &mut self,
        ts: i64,
        addrs: Addrs,
        mut next: u8,
        mut rest: &[u8],
        allow_frag: bool,
        sink: &mut dyn Sink,
    ) {
        for _ in 0..16 {
            match next {
                IPPROTO_UDP | IPPROTO_TCP => return self.transport(ts, addrs, next, rest, sink),
                // hop-by-hop, routing, destination options
                0 | 43 | 60 => {
                    let Some(&l) = rest.get(1) else { break };
                    let len = (usize::from(l) + 1) * 8;
                    let Some(after) = rest.get(len..) else { break };
                    next = rest[0];
                    rest = after;
                }
                // authentication header: length in 4-byte units, minus 2
                51 => {
                    let Some(&l) = rest.get(1) else { break };
                    let len = (usize::from(l) + 2) * 4;
                    let Some(after) = rest.get(len..) else { break };
                    next = rest[0];
                    rest = after;
                }
                44 => {
                    let (Some(offmf), Some(id)) = (be16(rest, 2), be32(rest, 4)) else {
                        break;
                    };
                    if !allow_frag {
                        break; // a fragment header inside a reassembled payload
                    }
                    let nh = rest[0];
                    let data = &rest[8..];
                    let offset = usize::from(offmf & 0xfff8);
                    let more = offmf & 1 != 0;
                    if offset == 0 && !more {
                        // atomic fragment (RFC 6946): not really fragmented
                        next = nh;
                        rest = data;
                        continue;
                    }
                    self.stats.ip_fragments += 1;
                    let Addrs::V6(src, dst) = addrs else { break };
                    let key = FragKey::V6 { src, dst, id };
                    return self.fragment(ts, key, addrs, nh, offset, more, data, sink);
                }
                _ => {
                    self.stats.non_sip_packets += 1;
                    return;
                }
            }
        }
        self.stats.decode_errors += 1;
    }

    #[inline]
    fn transport(&mut self, ts: i64, addrs: Addrs, proto: u8, p: &[u8], sink: &mut dyn Sink) {
        match proto {
            IPPROTO_UDP => self.udp(ts, addrs, p, sink),
            IPPROTO_TCP => self.tcp(ts, addrs, p, sink),
            _ => self.stats.non_sip_packets += 1,
        }
    }

    #[inline]
    fn udp(&mut self, ts: i64, addrs: Addrs, p: &[u8], sink: &mut dyn Sink) {
        let (Some(sport), Some(dport), Some(ulen)) = (be16(p, 0), be16(p, 2), be16(p, 4)) else {
            self.stats.decode_errors += 1;
            return;
        };
        let ulen = usize::from(ulen);
        // ulen 0 is a UDP jumbogram / TSO artefact: use what was captured.
        let end = if ulen == 0 {
            p.len()
        } else {
            ulen.min(p.len())
        };
        if end < 8 {
            self.stats.decode_errors += 1;
            return;
        }
        let payload = &p[8..end];
        let wanted = self.ports.contains(sport)
            || self.ports.contains(dport)
            || (self.detect_any && (self.hooks.looks_like_sip)(payload));
        if !wanted {
            self.stats.non_sip_packets += 1;
            return;
        }
        // CR/LF (and NUL) only: a NAT keep-alive, not a message.
        if payload.len() <= 4 && payload.iter().all(|&c| matches!(c, b'\r' | b'\n' | 0)) {
            self.stats.keepalives += 1;
            return;
        }
        let (src, dst) = addrs.sockets(sport, dport);
        self.stats.sip_payloads += 1;
        sink.sip(&SipPayload {
            ts_us: ts,
            src,
            dst,
            transport: Transport::Udp,
            data: payload,
        });
    }

    fn tcp(&mut self, ts: i64, addrs: Addrs, p: &[u8], sink: &mut dyn Sink) {
        let (Some(sport), Some(dport), Some(seq), Some(&off), Some(&fl)) =
            (be16(p, 0), be16(p, 2), be32(p, 4), p.get(12), p.get(13))
        else {
            self.stats.decode_errors += 1;
            return;
        };
        let on_port = self.ports.contains(sport) || self.ports.contains(dport);
        if !on_port && !self.detect_any {
            self.stats.non_sip_packets += 1;
            return;
        }
        let hlen = usize::from(off >> 4) * 4;
        let Some(payload) = p.get(hlen..).filter(|_| hlen >= 20) else {
            self.stats.decode_errors += 1;
            return;
        };
        let (src, dst) = addrs.sockets(sport, dport);
        let flags = Flags::from_byte(fl);
        let wanted =
            on_port || (self.detect_any && !flags.syn && (self.hooks.looks_like_sip)(payload));
        if !wanted && !self.tcp.is_tracked(src, dst) {
            self.stats.non_sip_packets += 1;
            return;
        }
        let seg = Segment {
            ts_us: ts,
            src,
            dst,
            seq,
            flags,
            payload,
        };
        self.tcp
            .segment(&seg, wanted, &self.hooks, &mut self.stats, sink);
    }
}

enum LinkError {
    Malformed,
    Unsupported,
}

/// Strip the link layer.
#[inline(always)]
fn link(linktype: u32, f: &[u8]) -> Result<L3<'_>, LinkError> {
    use linktype::*;
    match linktype {
        ETHERNET => {
            let mut et = be16(f, 12).ok_or(LinkError::Malformed)?;
            let mut off = 14;
            // 802.1Q, 802.1ad and the pre-standard QinQ tags, stacked any number of times.
            while matches!(et, ETH_VLAN | ETH_QINQ | ETH_QINQ_OLD | ETH_QINQ_OLD2) {
                et = be16(f, off + 2).ok_or(LinkError::Malformed)?;
                off += 4;
            }
            if et == ETH_PPPOE {
                // PPPoE session: 6-byte header, then the 2-byte PPP protocol.
                let ppp = be16(f, off + 6).ok_or(LinkError::Malformed)?;
                off += 8;
                et = match ppp {
                    0x0021 => ETH_IPV4,
                    0x0057 => ETH_IPV6,
                    _ => return Ok(L3::Other),
                };
            }
            ethertype(et, f.get(off..).unwrap_or(&[]))
        }
        LINUX_SLL => {
            let et = be16(f, 14).ok_or(LinkError::Malformed)?;
            ethertype(et, f.get(16..).unwrap_or(&[]))
        }
        LINUX_SLL2 => {
            let et = be16(f, 0).ok_or(LinkError::Malformed)?;
            ethertype(et, f.get(20..).ok_or(LinkError::Malformed)?)
        }
        RAW | RAW_12 | RAW_14 => match f.first().map(|b| b >> 4) {
            Some(4) => Ok(L3::V4(f)),
            Some(6) => Ok(L3::V6(f)),
            _ => Err(LinkError::Malformed),
        },
        IPV4 => Ok(L3::V4(f)),
        IPV6 => Ok(L3::V6(f)),
        NULL | LOOP => {
            let h = f.get(..4).ok_or(LinkError::Malformed)?;
            let h = [h[0], h[1], h[2], h[3]];
            // NULL uses the capturing host's byte order; LOOP is always big-endian.
            let fam = if linktype == LOOP {
                u32::from_be_bytes(h)
            } else {
                let le = u32::from_le_bytes(h);
                if le <= 0xffff {
                    le
                } else {
                    u32::from_be_bytes(h)
                }
            };
            let rest = &f[4..];
            match fam {
                2 => Ok(L3::V4(rest)),
                24 | 28 | 30 => Ok(L3::V6(rest)),
                _ => Ok(L3::Other),
            }
        }
        _ => Err(LinkError::Unsupported),
    }
}

#[inline(always)]
fn ethertype(et: u16, rest: &[u8]) -> Result<L3<'_>, LinkError> {
    match et {
        ETH_IPV4 => Ok(L3::V4(rest)),
        ETH_IPV6 => Ok(L3::V6(rest)),
        _ => Ok(L3::Other),
    }
}

//! Frames to SIP payloads: link layer → IP (with defragmentation) → tunnels → UDP / TCP / SCTP
//! → SIP (or HEPv3 carrying SIP).
//!
//! The hot path is a non-SIP UDP packet (RTP): it costs a link-type match, an ethertype read,
//! a few IPv4 header checks, two bitset lookups (the SIP ports, tried first) and one look at the
//! payload's first byte (RTP's version bits make it 0x80-0xbf, which no SIP start line, HEP
//! packet or UDP tunnel header has), with no allocation and no hashing. Anything expensive
//! (socket addresses, fragment tables, stream maps) happens only after the ports or the content
//! said the packet matters.
//!
//! SIP is found on any port by its start line ([`sip::looks_like_sip`]) unless
//! [`CaptureConfig::detect_any_port`] is off (`--sip-ports-only`). Tunnels are opened whatever
//! the ports: GRE (checksum/key/sequence; IPv4, IPv6, transparent Ethernet bridging, MPLS),
//! ERSPAN I/II/III (over GRE), VXLAN (UDP 4789), VXLAN-GPE (4790), Geneve (6081), TZSP (37008),
//! IP-in-IP (4in4, 6in4, 4in6, 6in6), MPLS label stacks (with or without a pseudowire control
//! word), PPPoE sessions; at most [`MAX_TUNNEL_DEPTH`] deep. A malformed tunnel header is
//! counted in [`Stats::malformed_tunnels`], an encapsulation we do not open in
//! [`Stats::unknown_tunnels`].
//!
//! Malformed headers are counted in [`Stats::decode_errors`] and skipped; they never stop the
//! capture and never panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::defrag::{Defrag, FragKey};
use crate::hep;
use crate::sctp::{self, Outcome, SctpReassembler};
use crate::tcp::{Flags, Segment, TcpReassembler};
use crate::{CaptureConfig, PortSet, Sink, SipHooks, SipPayload, Stats, Transport};

/// Encapsulations opened inside one frame at most (a GRE in a VXLAN in an MPLS stack is 3).
pub const MAX_TUNNEL_DEPTH: u8 = 8;

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
const ETH_MPLS: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
/// GRE protocol types beyond the ethertypes above.
const GRE_TEB: u16 = 0x6558;
const GRE_ERSPAN2: u16 = 0x88be;
const GRE_ERSPAN3: u16 = 0x22eb;

const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;
const IPPROTO_SCTP: u8 = 132;

/// UDP destination ports of the tunnels we open.
const UDP_VXLAN: u16 = 4789;
const UDP_VXLAN_GPE: u16 = 4790;
const UDP_GENEVE: u16 = 6081;
const UDP_TZSP: u16 = 37008;

/// The TLS port SIP uses by default: TLS records there are counted even when it is not listed.
const SIP_TLS_PORT: u16 = 5061;

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

/// A TLS record header: content type 20-23, version 3.x. What SIP over TLS looks like.
#[inline]
fn looks_like_tls(p: &[u8]) -> bool {
    matches!(p, [20..=23, 3, 0..=4, ..])
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
    /// An MPLS label stack.
    Mpls(&'a [u8]),
    /// Well-formed, but not IP (ARP, LLDP, ...).
    Other,
}

/// What an encapsulation header says comes next.
#[derive(Debug, Clone, Copy)]
enum Inner {
    Ether,
    V4,
    V6,
    Mpls,
    /// IPv4 or IPv6, by the version nibble.
    Ip,
}

/// Frame decoder with the state that spans packets (fragments, TCP streams, SCTP messages).
///
/// Feed it frames in capture order with [`Decoder::frame`]; the same decoder can be used across
/// several files (a directory of rotated captures) so streams and fragments continue.
pub struct Decoder {
    ports: PortSet,
    detect_any: bool,
    hooks: SipHooks,
    defrag: Defrag,
    tcp: TcpReassembler,
    sctp: SctpReassembler,
    /// Ports of TCP streams tracked off the SIP ports (found by content): a segment on neither
    /// port cannot belong to one, so it is rejected without building addresses or hashing.
    /// Bits are only set while streams are tracked; cleared when none is left.
    offport: PortSet,
    offport_used: bool,
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
            sctp: SctpReassembler::new(config.sctp.clone()),
            offport: PortSet::empty(),
            offport_used: false,
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

    /// Fragmented SCTP messages being reassembled.
    pub fn sctp_partials(&self) -> usize {
        self.sctp.partials()
    }

    /// One HEPv3 packet received by a collector socket (not from a capture) at `ts_us`: its SIP
    /// payload goes to `sink` with the addresses and time of its chunks (`ts_us` when it has
    /// none). Counted like HEP found in a capture.
    pub fn hep_packet(&mut self, ts_us: i64, packet: &[u8], sink: &mut dyn Sink) {
        self.stats.packets += 1;
        self.stats.bytes += packet.len() as u64;
        self.hep_datagram(ts_us, packet, sink);
    }

    /// Decode one link-layer frame of type `linktype` captured at `ts_us` (µs since epoch),
    /// delivering any SIP payload it completes to `sink`.
    #[inline]
    pub fn frame(&mut self, linktype: u32, ts_us: i64, frame: &[u8], sink: &mut dyn Sink) {
        self.stats.packets += 1;
        self.stats.bytes += frame.len() as u64;
        match link(linktype, frame) {
            Ok(l3) => self.l3(ts_us, l3, 0, sink),
            Err(LinkError::Malformed) => self.stats.decode_errors += 1,
            Err(LinkError::Unsupported) => self.stats.unsupported_linktype += 1,
        }
    }

    #[inline]
    fn l3(&mut self, ts: i64, l3: L3<'_>, depth: u8, sink: &mut dyn Sink) {
        match l3 {
            L3::V4(p) => self.ipv4(ts, p, depth, sink),
            L3::V6(p) => self.ipv6(ts, p, depth, sink),
            L3::Mpls(p) => self.mpls(ts, p, depth, sink),
            L3::Other => self.stats.non_sip_packets += 1,
        }
    }

    /// One more encapsulation level: counted, and refused past [`MAX_TUNNEL_DEPTH`].
    #[inline]
    fn enter(&mut self, depth: u8) -> Option<u8> {
        if depth >= MAX_TUNNEL_DEPTH {
            self.stats.malformed_tunnels += 1;
            return None;
        }
        self.stats.tunnels += 1;
        Some(depth + 1)
    }

    /// Decode what an encapsulation header (already counted by [`Decoder::enter`]) carries.
    fn inner(&mut self, ts: i64, kind: Inner, p: &[u8], depth: u8, sink: &mut dyn Sink) {
        match kind {
            Inner::Ether => match link(linktype::ETHERNET, p) {
                Ok(l3) => self.l3(ts, l3, depth, sink),
                Err(_) => self.stats.malformed_tunnels += 1,
            },
            Inner::V4 => self.ipv4(ts, p, depth, sink),
            Inner::V6 => self.ipv6(ts, p, depth, sink),
            Inner::Mpls => self.mpls(ts, p, depth, sink),
            Inner::Ip => match p.first().map(|b| b >> 4) {
                Some(4) => self.ipv4(ts, p, depth, sink),
                Some(6) => self.ipv6(ts, p, depth, sink),
                _ => self.stats.malformed_tunnels += 1,
            },
        }
    }

    #[inline]
    fn ipv4(&mut self, ts: i64, p: &[u8], depth: u8, sink: &mut dyn Sink) {
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
            return self.transport(ts, addrs, proto, payload, depth, sink);
        }
        self.stats.ip_fragments += 1;
        if !carries_sip(proto) {
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
        self.fragment(ts, key, addrs, proto, offset, more, payload, depth, sink);
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
        depth: u8,
        sink: &mut dyn Sink,
    ) {
        // A first fragment of a UDP datagram that cannot be SIP, HEP or a tunnel: the rest is
        // not worth buffering.
        if offset == 0
            && proto == IPPROTO_UDP
            && let (Some(sp), Some(dp)) = (be16(data, 0), be16(data, 2))
            && !self.udp_candidate(sp, dp, data.get(8..).unwrap_or(&[]))
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
            Addrs::V4(..) => self.transport(ts, addrs, proto, &whole, depth, sink),
            Addrs::V6(..) => self.ipv6_chain(ts, addrs, proto, &whole, false, depth, sink),
        }
    }

    fn ipv6(&mut self, ts: i64, p: &[u8], depth: u8, sink: &mut dyn Sink) {
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
        let addrs = Addrs::V6(src, dst);
        self.ipv6_chain(ts, addrs, p[6], &p[40..end], true, depth, sink);
    }

    /// Walk IPv6 extension headers from `next` until a transport or tunnel protocol. Stops (as
    /// non-SIP) on ESP, "no next header" and anything unknown.
    #[allow(clippy::too_many_arguments)]
    fn ipv6_chain(
        &mut self,
        ts: i64,
        addrs: Addrs,
        mut next: u8,
        mut rest: &[u8],
        allow_frag: bool,
        depth: u8,
        sink: &mut dyn Sink,
    ) {
        for _ in 0..16 {
            match next {
                n if carries_sip(n) => return self.transport(ts, addrs, n, rest, depth, sink),
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
                    return self.fragment(ts, key, addrs, nh, offset, more, data, depth, sink);
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
    fn transport(
        &mut self,
        ts: i64,
        addrs: Addrs,
        proto: u8,
        p: &[u8],
        depth: u8,
        sink: &mut dyn Sink,
    ) {
        match proto {
            IPPROTO_UDP => self.udp(ts, addrs, p, depth, sink),
            IPPROTO_TCP => self.tcp(ts, addrs, p, sink),
            IPPROTO_SCTP => self.sctp(ts, addrs, p, sink),
            IPPROTO_IPIP | IPPROTO_IPV6 | IPPROTO_GRE => self.ip_tunnel(ts, proto, p, depth, sink),
            _ => self.stats.non_sip_packets += 1,
        }
    }

    #[cold]
    fn ip_tunnel(&mut self, ts: i64, proto: u8, p: &[u8], depth: u8, sink: &mut dyn Sink) {
        let Some(depth) = self.enter(depth) else {
            return;
        };
        match proto {
            IPPROTO_IPIP => self.inner(ts, Inner::V4, p, depth, sink),
            IPPROTO_IPV6 => self.inner(ts, Inner::V6, p, depth, sink),
            _ => self.gre(ts, p, depth, sink),
        }
    }

    /// GRE (RFC 2784/2890): optional checksum, key and sequence number, then by protocol type
    /// IPv4, IPv6, Ethernet (transparent bridging), MPLS or ERSPAN.
    fn gre(&mut self, ts: i64, p: &[u8], depth: u8, sink: &mut dyn Sink) {
        let (Some(flags), Some(proto)) = (be16(p, 0), be16(p, 2)) else {
            self.stats.malformed_tunnels += 1;
            return;
        };
        let version = flags & 0x7;
        // Routing present (RFC 1701 source routes) or version 1 (PPTP): not opened.
        if version != 0 || flags & 0x4000 != 0 {
            self.stats.unknown_tunnels += 1;
            return;
        }
        let seq = flags & 0x1000 != 0;
        let off = 4
            + if flags & 0x8000 != 0 { 4 } else { 0 }
            + if flags & 0x2000 != 0 { 4 } else { 0 }
            + if seq { 4 } else { 0 };
        let Some(rest) = p.get(off..) else {
            self.stats.malformed_tunnels += 1;
            return;
        };
        match proto {
            ETH_IPV4 => self.inner(ts, Inner::V4, rest, depth, sink),
            ETH_IPV6 => self.inner(ts, Inner::V6, rest, depth, sink),
            GRE_TEB => self.inner(ts, Inner::Ether, rest, depth, sink),
            ETH_MPLS | ETH_MPLS_MC => self.inner(ts, Inner::Mpls, rest, depth, sink),
            // ERSPAN type I has no header of its own (and GRE without sequence number).
            GRE_ERSPAN2 if !seq => self.inner(ts, Inner::Ether, rest, depth, sink),
            GRE_ERSPAN2 => match rest.first().map(|b| b >> 4) {
                Some(1) if rest.len() >= 8 => {
                    self.erspan(ts, Inner::Ether, &rest[8..], depth, sink)
                }
                _ => self.stats.malformed_tunnels += 1,
            },
            GRE_ERSPAN3 => {
                let (Some(w0), Some(w2)) = (rest.first(), be32(rest, 8)) else {
                    self.stats.malformed_tunnels += 1;
                    return;
                };
                if w0 >> 4 != 2 {
                    self.stats.malformed_tunnels += 1;
                    return;
                }
                // Word 2: SGT(16) P(1) FT(5) HW ID(6) D(1) Gra(2) O(1); O = an 8-byte
                // platform-specific subheader follows. Frame type 0 Ethernet, 2 IP.
                let hlen = if w2 & 1 != 0 { 20 } else { 12 };
                let kind = match (w2 >> 10) & 0x1f {
                    0 => Inner::Ether,
                    2 => Inner::Ip,
                    _ => {
                        self.stats.unknown_tunnels += 1;
                        return;
                    }
                };
                match rest.get(hlen..) {
                    Some(f) => self.erspan(ts, kind, f, depth, sink),
                    None => self.stats.malformed_tunnels += 1,
                }
            }
            _ => self.stats.unknown_tunnels += 1,
        }
    }

    /// ERSPAN's own header is one more level inside GRE.
    fn erspan(&mut self, ts: i64, kind: Inner, p: &[u8], depth: u8, sink: &mut dyn Sink) {
        if let Some(depth) = self.enter(depth) {
            self.inner(ts, kind, p, depth, sink);
        }
    }

    /// An MPLS label stack, then IPv4/IPv6 by the version nibble or, after a pseudowire
    /// control word (first nibble 0), Ethernet.
    #[cold]
    fn mpls(&mut self, ts: i64, p: &[u8], depth: u8, sink: &mut dyn Sink) {
        let Some(depth) = self.enter(depth) else {
            return;
        };
        let mut off = 0;
        loop {
            let Some(label) = be32(p, off) else {
                self.stats.malformed_tunnels += 1;
                return;
            };
            off += 4;
            if label & 0x100 != 0 {
                break; // bottom of stack
            }
            if off >= 64 {
                self.stats.malformed_tunnels += 1;
                return;
            }
        }
        let rest = &p[off..];
        match rest.first().map(|b| b >> 4) {
            Some(4 | 6) => self.inner(ts, Inner::Ip, rest, depth, sink),
            Some(0) if rest.len() > 4 => self.inner(ts, Inner::Ether, &rest[4..], depth, sink),
            _ => self.stats.unknown_tunnels += 1,
        }
    }

    /// Is a UDP datagram worth looking at (SIP port, SIP or HEP content, tunnel port)? Reads only
    /// the first payload byte in the common non-SIP case.
    #[inline(always)]
    fn udp_candidate(&self, sport: u16, dport: u16, payload: &[u8]) -> bool {
        if self.ports.contains(sport) || self.ports.contains(dport) {
            return true;
        }
        match payload.first() {
            Some(b'A'..=b'Z') => {
                self.detect_any && ((self.hooks.looks_like_sip)(payload) || hep::is_hep(payload))
            }
            Some(0..=0x7f) => is_udp_tunnel_port(dport),
            _ => false,
        }
    }

    #[inline]
    fn udp(&mut self, ts: i64, addrs: Addrs, p: &[u8], depth: u8, sink: &mut dyn Sink) {
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
        if self.ports.contains(sport) || self.ports.contains(dport) {
            if hep::is_hep(payload) {
                return self.hep_datagram(ts, payload, sink);
            }
            if looks_like_tls(payload) && (sport == SIP_TLS_PORT || dport == SIP_TLS_PORT) {
                // DTLS on 5061 has the same record header.
                self.stats.tls_records += 1;
                return;
            }
            // CR/LF (and NUL) only: a NAT keep-alive, not a message.
            if payload.len() <= 4 && payload.iter().all(|&c| matches!(c, b'\r' | b'\n' | 0)) {
                self.stats.keepalives += 1;
                return;
            }
            return self.deliver_udp(ts, addrs, sport, dport, payload, sink);
        }
        match payload.first() {
            Some(b'A'..=b'Z') if self.detect_any => {
                if (self.hooks.looks_like_sip)(payload) {
                    return self.deliver_udp(ts, addrs, sport, dport, payload, sink);
                }
                if hep::is_hep(payload) {
                    return self.hep_datagram(ts, payload, sink);
                }
            }
            Some(0..=0x7f) if is_udp_tunnel_port(dport) => {
                return self.udp_tunnel(ts, dport, payload, depth, sink);
            }
            _ => {}
        }
        self.stats.non_sip_packets += 1;
    }

    #[inline]
    fn deliver_udp(
        &mut self,
        ts: i64,
        addrs: Addrs,
        sport: u16,
        dport: u16,
        payload: &[u8],
        sink: &mut dyn Sink,
    ) {
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

    /// One or more HEPv3 packets in a datagram.
    #[cold]
    fn hep_datagram(&mut self, ts: i64, mut payload: &[u8], sink: &mut dyn Sink) {
        // A datagram holds whole packets; a bound on the loop keeps a crafted one cheap.
        for _ in 0..64 {
            match hep::frame_len(payload) {
                Some(Ok(n)) => {
                    deliver_hep(&payload[..n], ts, &self.hooks, &mut self.stats, sink);
                    payload = &payload[n..];
                    if payload.is_empty() {
                        return;
                    }
                }
                _ => {
                    self.stats.malformed_tunnels += 1;
                    return;
                }
            }
        }
    }

    #[cold]
    fn udp_tunnel(&mut self, ts: i64, dport: u16, p: &[u8], depth: u8, sink: &mut dyn Sink) {
        let Some(depth) = self.enter(depth) else {
            return;
        };
        match dport {
            UDP_VXLAN => {
                // flags (I bit 0x08 = VNI valid), 3 reserved, VNI (24), 1 reserved.
                match (p.first(), p.get(8..)) {
                    (Some(f), Some(inner)) if f & 0x08 != 0 => {
                        self.inner(ts, Inner::Ether, inner, depth, sink)
                    }
                    _ => self.stats.malformed_tunnels += 1,
                }
            }
            UDP_VXLAN_GPE => {
                // flags (P bit 0x04 = next protocol present), 2 reserved, next protocol, VNI.
                let (Some(&f), Some(&np), Some(inner)) = (p.first(), p.get(3), p.get(8..)) else {
                    self.stats.malformed_tunnels += 1;
                    return;
                };
                let kind = match (f & 0x04 != 0, np) {
                    (false, _) | (true, 3) => Inner::Ether,
                    (true, 1) => Inner::V4,
                    (true, 2) => Inner::V6,
                    (true, 5) => Inner::Mpls,
                    _ => {
                        self.stats.unknown_tunnels += 1;
                        return;
                    }
                };
                self.inner(ts, kind, inner, depth, sink);
            }
            UDP_GENEVE => {
                // ver(2) optlen(6, 4-byte units) | flags | protocol type | VNI(24) | reserved
                let (Some(&b0), Some(proto)) = (p.first(), be16(p, 2)) else {
                    self.stats.malformed_tunnels += 1;
                    return;
                };
                let hlen = 8 + usize::from(b0 & 0x3f) * 4;
                let Some(inner) = p.get(hlen..).filter(|_| b0 >> 6 == 0) else {
                    self.stats.malformed_tunnels += 1;
                    return;
                };
                let kind = match proto {
                    GRE_TEB => Inner::Ether,
                    ETH_IPV4 => Inner::V4,
                    ETH_IPV6 => Inner::V6,
                    ETH_MPLS | ETH_MPLS_MC => Inner::Mpls,
                    _ => {
                        self.stats.unknown_tunnels += 1;
                        return;
                    }
                };
                self.inner(ts, kind, inner, depth, sink);
            }
            _ => self.tzsp(ts, p, depth, sink),
        }
    }

    /// TZSP (MikroTik and others): version 1, type, encapsulated protocol, tagged fields up to
    /// the END tag, then the frame. Only Ethernet frames are opened.
    fn tzsp(&mut self, ts: i64, p: &[u8], depth: u8, sink: &mut dyn Sink) {
        let (Some(&version), Some(encap)) = (p.first(), be16(p, 2)) else {
            self.stats.malformed_tunnels += 1;
            return;
        };
        if version != 1 {
            self.stats.malformed_tunnels += 1;
            return;
        }
        let mut i = 4;
        loop {
            match p.get(i) {
                Some(0) => i += 1, // padding
                Some(1) => {
                    i += 1; // end
                    break;
                }
                Some(_) => match p.get(i + 1) {
                    Some(&len) => i += 2 + usize::from(len),
                    None => {
                        self.stats.malformed_tunnels += 1;
                        return;
                    }
                },
                None => {
                    self.stats.malformed_tunnels += 1;
                    return;
                }
            }
        }
        match (encap, p.get(i..)) {
            (1, Some(frame)) => self.inner(ts, Inner::Ether, frame, depth, sink),
            (_, Some(_)) => self.stats.unknown_tunnels += 1,
            (_, None) => self.stats.malformed_tunnels += 1,
        }
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
        let flags = Flags::from_byte(fl);
        let starts_sip = !on_port
            && !flags.syn
            && matches!(payload.first(), Some(b'A'..=b'Z'))
            && ((self.hooks.looks_like_sip)(payload) || hep::is_hep(payload));
        if !on_port && !starts_sip {
            // Off the SIP ports and not the start of a message: only a stream found earlier
            // by its content can want it.
            if self.offport_used && self.tcp.stream_count() == 0 {
                self.offport = PortSet::empty();
                self.offport_used = false;
            }
            if !(self.offport_used && self.offport.contains(sport) && self.offport.contains(dport))
            {
                self.stats.non_sip_packets += 1;
                return;
            }
        }
        let (src, dst) = addrs.sockets(sport, dport);
        if on_port && looks_like_tls(payload) {
            // SIP over TLS: unreadable without keys. Counted, and a stream that was started
            // for it (by its SYN) is forgotten.
            self.stats.tls_records += 1;
            self.tcp.forget(src, dst);
            return;
        }
        let wanted = on_port || starts_sip;
        if !wanted && !self.tcp.is_tracked(src, dst) {
            self.stats.non_sip_packets += 1;
            return;
        }
        if starts_sip && !self.tcp.is_tracked(src, dst) {
            self.offport.insert(sport);
            self.offport.insert(dport);
            self.offport_used = true;
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

    /// SCTP common header, then every chunk; DATA and I-DATA chunks carrying SIP (or HEP) are
    /// delivered as whole user messages.
    #[cold]
    fn sctp(&mut self, ts: i64, addrs: Addrs, p: &[u8], sink: &mut dyn Sink) {
        let (Some(sport), Some(dport)) = (be16(p, 0), be16(p, 2)) else {
            self.stats.decode_errors += 1;
            return;
        };
        if p.len() < 12 {
            self.stats.decode_errors += 1;
            return;
        }
        let on_port = self.ports.contains(sport) || self.ports.contains(dport);
        if !on_port && !self.detect_any {
            self.stats.non_sip_packets += 1;
            return;
        }
        let (src, dst) = addrs.sockets(sport, dport);
        let looks = self.hooks.looks_like_sip;
        let is_sip = |b: &[u8]| looks(&b[sip::skip_keepalive(b)..]) || hep::is_hep(b);
        let mut off = 12;
        let mut any = false;
        while let (Some(&ctype), Some(clen)) = (p.get(off), be16(p, off + 2)) {
            let clen = usize::from(clen);
            let Some(chunk) = p.get(off..off + clen).filter(|_| clen >= 4) else {
                self.stats.decode_errors += 1;
                break;
            };
            off += (clen + 3) & !3;
            if ctype != sctp::CHUNK_DATA && ctype != sctp::CHUNK_IDATA {
                continue;
            }
            self.stats.sctp_chunks += 1;
            let Some(c) = sctp::data_chunk(ctype, chunk) else {
                self.stats.decode_errors += 1;
                continue;
            };
            match self.sctp.chunk(src, dst, &c, is_sip, &mut self.stats) {
                Outcome::Message(m) => {
                    any = true;
                    if hep::is_hep(&m) {
                        self.hep_datagram(ts, &m, sink);
                    } else {
                        self.stats.sip_payloads += 1;
                        sink.sip(&SipPayload {
                            ts_us: ts,
                            src,
                            dst,
                            transport: Transport::Sctp,
                            data: &m,
                        });
                    }
                }
                Outcome::Pending => any = true,
                Outcome::NotSip => self.stats.sctp_non_sip += 1,
            }
        }
        if !any {
            self.stats.non_sip_packets += 1;
        }
    }
}

/// IP protocols that may lead to SIP: transports and tunnels.
#[inline(always)]
fn carries_sip(proto: u8) -> bool {
    matches!(
        proto,
        IPPROTO_UDP | IPPROTO_TCP | IPPROTO_SCTP | IPPROTO_IPIP | IPPROTO_IPV6 | IPPROTO_GRE
    )
}

#[inline(always)]
fn is_udp_tunnel_port(dport: u16) -> bool {
    matches!(dport, UDP_VXLAN | UDP_VXLAN_GPE | UDP_GENEVE | UDP_TZSP)
}

/// Deliver the SIP message one HEPv3 packet carries, with its original addresses and time
/// (`ts` of the capture when the packet has none). Shared by UDP, TCP and SCTP.
pub(crate) fn deliver_hep(
    packet: &[u8],
    ts: i64,
    hooks: &SipHooks,
    stats: &mut Stats,
    sink: &mut dyn Sink,
) {
    let h = match hep::parse(packet) {
        Ok(h) => h,
        Err(_) => {
            stats.malformed_tunnels += 1;
            return;
        }
    };
    stats.hep_packets += 1;
    let sip = match (h.proto_type, h.payload) {
        (Some(hep::PROTO_SIP), Some(p)) => Some(p),
        (None, Some(p)) if (hooks.looks_like_sip)(&p[sip::skip_keepalive(p)..]) => Some(p),
        _ => None,
    };
    let Some(data) = sip else {
        stats.non_sip_packets += 1;
        return;
    };
    stats.sip_payloads += 1;
    sink.sip(&SipPayload {
        ts_us: h.ts_us.unwrap_or(ts),
        src: h.src,
        dst: h.dst,
        transport: h.transport,
        data,
    });
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
        ETH_MPLS | ETH_MPLS_MC => Ok(L3::Mpls(rest)),
        _ => Ok(L3::Other),
    }
}

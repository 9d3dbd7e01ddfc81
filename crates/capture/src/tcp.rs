//! TCP stream reassembly for SIP.
//!
//! One [`Stream`] per direction, keyed by (source, destination). Bytes are put back in sequence
//! order (out-of-order segments buffered, bounded; retransmitted and overlapping bytes dropped),
//! then cut into SIP messages with the framing hook ([`sip::message_len`]: headers plus
//! Content-Length body). CR/LF keep-alives between messages are skipped; bytes that cannot start
//! a message are skipped up to the next place that looks like a SIP start line (resync).
//!
//! A stream may carry HEPv3 instead (a collector's TCP input): a frame starting with `HEP3` at
//! a message boundary is cut by its length field and its SIP payload delivered with the
//! addresses and time from its chunks.
//!
//! Timestamps: a message reassembled from several segments carries the timestamp of the segment
//! that completed it, because that is when a receiver could have acted on it.
//!
//! Streams whose SYN was not captured start at the first segment seen, in resync mode (the
//! capture may begin in the middle of a message). Streams close on FIN (once all bytes up to it
//! arrived) or RST, and are dropped after `idle_timeout_us` of packet time without traffic.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use crate::{Sink, SipHooks, SipPayload, Stats, Transport, hep};

/// Limits of the reassembler.
#[derive(Debug, Clone)]
pub struct TcpConfig {
    /// Streams (directions) tracked at once (default 65536); the least recently active one
    /// is dropped to make room.
    pub max_streams: usize,
    /// Bytes buffered over all streams, in order and out of order (default 64 MiB).
    pub max_buffered_bytes: usize,
    /// Out-of-order bytes buffered per stream before the gap is given up (default 1 MiB).
    pub max_out_of_order_bytes: usize,
    /// An incomplete message larger than this is garbage (default 256 KiB).
    pub max_message_len: usize,
    /// A stream without traffic for this long (packet time) is dropped (default 300 s).
    pub idle_timeout_us: i64,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            max_streams: 65536,
            max_buffered_bytes: 64 << 20,
            max_out_of_order_bytes: 1 << 20,
            max_message_len: 256 << 10,
            idle_timeout_us: 300_000_000,
        }
    }
}

/// TCP flags we act on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    pub syn: bool,
    pub fin: bool,
    pub rst: bool,
}

impl Flags {
    /// From the TCP header's flag byte.
    pub fn from_byte(b: u8) -> Flags {
        Flags {
            fin: b & 0x01 != 0,
            syn: b & 0x02 != 0,
            rst: b & 0x04 != 0,
        }
    }
}

type Key = (SocketAddr, SocketAddr);

#[derive(Debug)]
struct Stream {
    /// Sequence number of stream position 0.
    isn: u32,
    /// Stream position of the next expected byte (= end of `buf`'s data in stream terms).
    next_pos: u64,
    /// In-order bytes not yet framed into messages.
    buf: Vec<u8>,
    /// Segments ahead of `next_pos`, by stream position.
    ooo: BTreeMap<u64, Vec<u8>>,
    ooo_bytes: usize,
    last_ts: i64,
    fin_pos: Option<u64>,
    /// Skip to the next line that looks like a SIP start line before framing.
    resync: bool,
}

impl Stream {
    fn new(isn: u32, ts: i64, resync: bool) -> Stream {
        Stream {
            isn,
            next_pos: 0,
            buf: Vec::new(),
            ooo: BTreeMap::new(),
            ooo_bytes: 0,
            last_ts: ts,
            fin_pos: None,
            resync,
        }
    }

    fn buffered(&self) -> usize {
        self.buf.len() + self.ooo_bytes
    }

    /// Stream position of sequence number `seq` (relative to what we expect next, so sequence
    /// wrap-around is handled). Negative means before the stream start.
    fn pos_of(&self, seq: u32) -> i64 {
        let expected = self.isn.wrapping_add(self.next_pos as u32);
        self.next_pos as i64 + i64::from(seq.wrapping_sub(expected) as i32)
    }

    fn append(&mut self, pos: u64, data: &[u8]) {
        let end = pos + data.len() as u64;
        if end > self.next_pos && pos <= self.next_pos {
            let skip = (self.next_pos - pos) as usize;
            self.buf.extend_from_slice(&data[skip..]);
            self.next_pos = end;
        }
    }

    /// Move buffered out-of-order segments that are now contiguous into `buf`.
    fn drain_ooo(&mut self) {
        while let Some(entry) = self.ooo.first_entry() {
            if *entry.key() > self.next_pos {
                break;
            }
            let (pos, data) = entry.remove_entry();
            self.ooo_bytes -= data.len();
            self.append(pos, &data);
        }
    }

    /// Give up on the gap before the first out-of-order segment.
    fn skip_gap(&mut self) {
        if let Some((&pos, _)) = self.ooo.first_key_value() {
            self.buf.clear();
            self.next_pos = pos;
            self.resync = true;
            self.drain_ooo();
        }
    }
}

/// All tracked streams.
#[derive(Debug, Default)]
pub struct TcpReassembler {
    cfg: TcpConfig,
    streams: HashMap<Key, Stream>,
    buffered: usize,
    last_sweep: i64,
}

/// One TCP segment as the decoder sees it.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub ts_us: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub flags: Flags,
    pub payload: &'a [u8],
}

impl TcpReassembler {
    pub fn new(cfg: TcpConfig) -> TcpReassembler {
        TcpReassembler {
            cfg,
            ..TcpReassembler::default()
        }
    }

    /// Streams currently tracked.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// Bytes currently buffered over all streams.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// Is this direction already tracked? (Cheap pre-check for SIP detection on any port.)
    pub fn is_tracked(&self, src: SocketAddr, dst: SocketAddr) -> bool {
        !self.streams.is_empty() && self.streams.contains_key(&(src, dst))
    }

    /// Stop tracking this direction (e.g. it turned out to be TLS).
    pub fn forget(&mut self, src: SocketAddr, dst: SocketAddr) {
        if let Some(s) = self.streams.remove(&(src, dst)) {
            self.buffered -= s.buffered();
        }
    }

    fn sweep(&mut self, now: i64) {
        let timeout = self.cfg.idle_timeout_us;
        let mut freed = 0;
        self.streams.retain(|_, s| {
            let keep = s.last_ts.saturating_add(timeout) >= now;
            if !keep {
                freed += s.buffered();
            }
            keep
        });
        self.buffered -= freed;
        self.last_sweep = now;
    }

    fn make_room(&mut self, now: i64) {
        if self.streams.len() < self.cfg.max_streams.max(1) {
            return;
        }
        self.sweep(now);
        while self.streams.len() >= self.cfg.max_streams.max(1) {
            let Some(oldest) = self
                .streams
                .iter()
                .min_by_key(|(_, s)| s.last_ts)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some(s) = self.streams.remove(&oldest) {
                self.buffered -= s.buffered();
            }
        }
    }

    /// Process one segment. `wanted` says whether a new stream may be started for it (SIP port,
    /// or SIP detection on any port); the caller has already decided that.
    pub fn segment(
        &mut self,
        seg: &Segment<'_>,
        wanted: bool,
        hooks: &SipHooks,
        stats: &mut Stats,
        sink: &mut dyn Sink,
    ) {
        let now = seg.ts_us;
        if now.saturating_sub(self.last_sweep) > 1_000_000 || now < self.last_sweep {
            self.sweep(now);
        }
        let key = (seg.src, seg.dst);
        if seg.flags.rst {
            if let Some(s) = self.streams.remove(&key) {
                self.buffered -= s.buffered();
                stats.tcp_segments += 1;
            }
            return;
        }
        let mut seq = seg.seq;
        if seg.flags.syn {
            if !wanted {
                return;
            }
            // A SYN starts (or restarts, on port reuse) the stream; data on a SYN (TCP Fast
            // Open) starts one after the SYN's own sequence number. A retransmitted SYN (same
            // sequence number) must not wipe what the stream already holds.
            let isn = seq.wrapping_add(1);
            if self.streams.get(&key).is_some_and(|s| s.isn == isn) {
                stats.tcp_retransmissions += 1;
                return;
            }
            self.make_room(now);
            if let Some(old) = self.streams.insert(key, Stream::new(isn, now, false)) {
                self.buffered -= old.buffered();
            }
            stats.tcp_streams += 1;
            seq = seq.wrapping_add(1);
        } else if !self.streams.contains_key(&key) {
            if seg.payload.is_empty() || !wanted {
                return;
            }
            self.make_room(now);
            self.streams.insert(key, Stream::new(seq, now, true));
            stats.tcp_streams += 1;
        }
        let cfg = &self.cfg;
        let Some(s) = self.streams.get_mut(&key) else {
            return;
        };
        stats.tcp_segments += 1;
        let before = s.buffered();
        s.last_ts = now;
        let pos = s.pos_of(seq);
        let len = seg.payload.len() as u64;
        if seg.flags.fin {
            s.fin_pos = Some(pos.max(0) as u64 + len);
        }
        if len > 0 {
            let (pos, data) = if pos < 0 {
                // Bytes from before the stream start (e.g. retransmitted SYN data): skip them.
                let skip = usize::try_from(-pos).unwrap_or(usize::MAX);
                (0u64, seg.payload.get(skip..).unwrap_or(&[]))
            } else {
                (pos as u64, seg.payload)
            };
            let end = pos + data.len() as u64;
            if end <= s.next_pos {
                stats.tcp_retransmissions += 1;
            } else if pos <= s.next_pos {
                s.append(pos, data);
                s.drain_ooo();
            } else {
                stats.tcp_out_of_order += 1;
                let keep_longer = s.ooo.get(&pos).is_none_or(|old| old.len() < data.len());
                if keep_longer {
                    if let Some(old) = s.ooo.insert(pos, data.to_vec()) {
                        s.ooo_bytes -= old.len();
                    }
                    s.ooo_bytes += data.len();
                }
                if s.ooo_bytes > cfg.max_out_of_order_bytes {
                    stats.tcp_gaps += 1;
                    s.skip_gap();
                }
            }
        }
        frame(s, seg, cfg, hooks, stats, sink);
        let after = s.buffered();
        let done = s.fin_pos.is_some_and(|f| s.next_pos >= f);
        self.buffered = self.buffered + after - before;
        if done {
            if let Some(s) = self.streams.remove(&key) {
                self.buffered -= s.buffered();
            }
        } else if self.buffered > self.cfg.max_buffered_bytes {
            // Over the global budget: this stream gives up what it holds and resyncs.
            if let Some(s) = self.streams.get_mut(&key) {
                self.buffered -= s.buffered();
                if !s.ooo.is_empty() {
                    stats.tcp_gaps += 1;
                }
                let last = s.ooo.last_key_value().map(|(p, d)| p + d.len() as u64);
                s.ooo.clear();
                s.ooo_bytes = 0;
                s.buf.clear();
                if let Some(end) = last {
                    s.next_pos = s.next_pos.max(end);
                }
                s.resync = true;
            }
        }
    }
}

/// Offset of the first place in `b` that looks like a SIP start line. Every offset is tried,
/// not only line starts, because a message often follows a body that has no trailing CRLF.
/// Only runs while resynchronising, and the first-byte test makes most offsets one comparison.
fn find_sip_start(b: &[u8], looks: fn(&[u8]) -> bool) -> Option<usize> {
    (0..b.len()).find(|&i| b[i].is_ascii_uppercase() && (looks(&b[i..]) || hep::is_hep(&b[i..])))
}

/// While resynchronising, this many trailing bytes are kept when no start line was found: they
/// may be the beginning of one (`REGISTER sips:` is 14 bytes).
const RESYNC_KEEP: usize = 32;

/// Cut complete messages off the front of the stream buffer and deliver them.
fn frame(
    s: &mut Stream,
    seg: &Segment<'_>,
    cfg: &TcpConfig,
    hooks: &SipHooks,
    stats: &mut Stats,
    sink: &mut dyn Sink,
) {
    let buf = &s.buf;
    let mut start = 0usize;
    loop {
        while buf.get(start).is_some_and(|&c| c == b'\r' || c == b'\n') {
            start += 1;
        }
        let rest = buf.get(start..).unwrap_or(&[]);
        if rest.is_empty() {
            break;
        }
        if s.resync {
            match find_sip_start(rest, hooks.looks_like_sip) {
                Some(off) => {
                    stats.tcp_garbage_bytes += off as u64;
                    start += off;
                    s.resync = false;
                }
                None => {
                    // Keep the tail: it may be the beginning of a start line.
                    let keep = rest.len().saturating_sub(RESYNC_KEEP);
                    stats.tcp_garbage_bytes += keep as u64;
                    start += keep;
                    break;
                }
            }
            continue;
        }
        if rest.first() == Some(&b'H') && hep::MAGIC.starts_with(&rest[..rest.len().min(4)]) {
            match hep::frame_len(rest) {
                Some(Ok(n)) => {
                    crate::decode::deliver_hep(&rest[..n], seg.ts_us, hooks, stats, sink);
                    start += n;
                    continue;
                }
                None => break,
                Some(Err(_)) => {} // not HEP after all: SIP framing decides
            }
        }
        match (hooks.message_len)(rest) {
            Some(Ok(n)) if n > 0 && n <= rest.len() => {
                stats.sip_payloads += 1;
                sink.sip(&SipPayload {
                    ts_us: seg.ts_us,
                    src: seg.src,
                    dst: seg.dst,
                    transport: Transport::Tcp,
                    data: &rest[..n],
                });
                start += n;
            }
            None if rest.len() <= cfg.max_message_len => break,
            _ => {
                // Not a message start, or a "message" that never ends: skip this line.
                s.resync = true;
                stats.tcp_garbage_bytes += 1;
                start += 1;
            }
        }
    }
    s.buf.drain(..start.min(s.buf.len()));
}

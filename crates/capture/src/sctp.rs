//! SIP over SCTP (RFC 4168): each SIP message is one SCTP user message, carried in DATA (or
//! I-DATA, RFC 8260) chunks, several chunks to a packet, a large message fragmented over several
//! chunks of one stream (B = first, E = last fragment, consecutive TSNs; FSNs for I-DATA).
//!
//! The first fragment decides: a user message that does not start like SIP (or HEP) is counted
//! and its later fragments are not buffered. Memory is bounded: a message longer than
//! `max_message_len` or a new partial message beyond `max_partials` / `max_buffered_bytes`
//! gives up (counted in [`Stats::sctp_dropped`]), oldest partial first.

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::Stats;

/// Limits of the SCTP reassembler.
#[derive(Debug, Clone)]
pub struct SctpConfig {
    /// Partial (fragmented) messages held at once (default 1024).
    pub max_partials: usize,
    /// Bytes held over all partial messages (default 8 MiB).
    pub max_buffered_bytes: usize,
    /// Longest user message reassembled (default 256 KiB).
    pub max_message_len: usize,
}

impl Default for SctpConfig {
    fn default() -> Self {
        SctpConfig {
            max_partials: 1024,
            max_buffered_bytes: 8 << 20,
            max_message_len: 256 << 10,
        }
    }
}

/// (source, destination, stream id, message id: 0 for DATA, the MID for I-DATA).
type Key = (SocketAddr, SocketAddr, u16, u32);

#[derive(Debug)]
struct Partial {
    /// TSN (DATA) or FSN (I-DATA) the next fragment must have.
    next: u32,
    data: Vec<u8>,
    /// Arrival counter, for evicting the oldest.
    age: u64,
}

/// One DATA or I-DATA chunk, decoded.
#[derive(Debug, Clone, Copy)]
pub struct DataChunk<'a> {
    pub begin: bool,
    pub end: bool,
    pub stream: u16,
    /// I-DATA message id (0 for DATA).
    pub mid: u32,
    /// TSN (DATA) or fragment sequence number (I-DATA; 0 on the first fragment).
    pub seq: u32,
    pub data: &'a [u8],
}

/// What [`SctpReassembler::chunk`] made of a chunk.
#[derive(Debug)]
pub enum Outcome<'a> {
    /// A whole user message that starts like SIP (or HEP): borrowed when unfragmented.
    Message(std::borrow::Cow<'a, [u8]>),
    /// Buffered (or dropped and counted): nothing to deliver yet.
    Pending,
    /// A user message that is not SIP.
    NotSip,
}

/// Reassembly state over all associations.
#[derive(Debug, Default)]
pub struct SctpReassembler {
    cfg: SctpConfig,
    partial: HashMap<Key, Partial>,
    buffered: usize,
    clock: u64,
}

impl SctpReassembler {
    pub fn new(cfg: SctpConfig) -> SctpReassembler {
        SctpReassembler {
            cfg,
            ..SctpReassembler::default()
        }
    }

    /// Partial messages held.
    pub fn partials(&self) -> usize {
        self.partial.len()
    }

    /// Bytes held in partial messages.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    fn remove(&mut self, key: &Key) -> Option<Partial> {
        let p = self.partial.remove(key)?;
        self.buffered -= p.data.len();
        Some(p)
    }

    fn evict_oldest(&mut self, stats: &mut Stats) -> bool {
        let Some(key) = self
            .partial
            .iter()
            .min_by_key(|(_, p)| p.age)
            .map(|(k, _)| *k)
        else {
            return false;
        };
        self.remove(&key);
        stats.sctp_dropped += 1;
        true
    }

    /// Account one DATA/I-DATA chunk of the packet `src` → `dst`. `is_sip` judges the start of
    /// a user message.
    pub fn chunk<'a>(
        &mut self,
        src: SocketAddr,
        dst: SocketAddr,
        c: &DataChunk<'a>,
        is_sip: impl Fn(&[u8]) -> bool,
        stats: &mut Stats,
    ) -> Outcome<'a> {
        let key = (src, dst, c.stream, c.mid);
        if c.begin {
            // A new message on this stream ends any partial one left behind.
            if self.remove(&key).is_some() {
                stats.sctp_dropped += 1;
            }
            if !is_sip(c.data) {
                return Outcome::NotSip;
            }
            if c.end {
                return Outcome::Message(std::borrow::Cow::Borrowed(c.data));
            }
            if c.data.len() > self.cfg.max_message_len {
                stats.sctp_dropped += 1;
                return Outcome::Pending;
            }
            while self.partial.len() >= self.cfg.max_partials.max(1)
                || self.buffered + c.data.len() > self.cfg.max_buffered_bytes
            {
                if !self.evict_oldest(stats) {
                    break;
                }
            }
            if self.buffered + c.data.len() > self.cfg.max_buffered_bytes {
                stats.sctp_dropped += 1;
                return Outcome::Pending;
            }
            self.clock += 1;
            self.buffered += c.data.len();
            self.partial.insert(
                key,
                Partial {
                    next: c.seq.wrapping_add(1),
                    data: c.data.to_vec(),
                    age: self.clock,
                },
            );
            return Outcome::Pending;
        }
        let Some(p) = self.partial.get_mut(&key) else {
            // A middle or last fragment of a message whose start we did not keep (not SIP, or
            // not captured): nothing to do.
            return Outcome::Pending;
        };
        let too_long = p.data.len() + c.data.len() > self.cfg.max_message_len;
        if p.next != c.seq || too_long {
            // A lost or reordered fragment (or an oversized message): give the message up.
            self.remove(&key);
            stats.sctp_dropped += 1;
            return Outcome::Pending;
        }
        if self.buffered + c.data.len() > self.cfg.max_buffered_bytes {
            self.remove(&key);
            stats.sctp_dropped += 1;
            return Outcome::Pending;
        }
        p.data.extend_from_slice(c.data);
        p.next = p.next.wrapping_add(1);
        self.buffered += c.data.len();
        if c.end {
            let p = self.remove(&key).map(|p| p.data).unwrap_or_default();
            return Outcome::Message(std::borrow::Cow::Owned(p));
        }
        Outcome::Pending
    }
}

/// SCTP chunk types we read.
pub const CHUNK_DATA: u8 = 0;
pub const CHUNK_IDATA: u8 = 64;

/// Decode a DATA (`ctype` 0) or I-DATA (64) chunk's value (`chunk` = whole chunk with its
/// 4-byte header, cut to its length field). `None` when too short.
pub fn data_chunk(ctype: u8, chunk: &[u8]) -> Option<DataChunk<'_>> {
    let flags = *chunk.get(1)?;
    let be16 = |at: usize| {
        chunk
            .get(at..at + 2)
            .map(|s| u16::from_be_bytes([s[0], s[1]]))
    };
    let be32 = |at: usize| {
        chunk
            .get(at..at + 4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    };
    let begin = flags & 0x02 != 0;
    let end = flags & 0x01 != 0;
    match ctype {
        CHUNK_DATA => Some(DataChunk {
            begin,
            end,
            stream: be16(8)?,
            mid: 0,
            seq: be32(4)?,
            data: chunk.get(16..)?,
        }),
        CHUNK_IDATA => Some(DataChunk {
            begin,
            end,
            stream: be16(8)?,
            mid: be32(12)?,
            // The first fragment carries the PPID where the others carry the FSN (FSN 0).
            seq: if begin { 0 } else { be32(16)? },
            data: chunk.get(20..)?,
        }),
        _ => None,
    }
}

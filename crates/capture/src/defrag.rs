//! IP fragment reassembly (IPv4 and IPv6) with bounded memory.
//!
//! A passive sensor cannot trust fragments: they may never complete, overlap, repeat, or come
//! from a flood. So the reassembler keeps at most `max_datagrams` datagrams and `max_bytes` of
//! buffered data (evicting the oldest first), drops datagrams older than `timeout_us` of
//! *packet* time (never wall-clock, so a file gives the same result however fast it is read),
//! and resolves overlaps by letting the later fragment overwrite (no panic, no special case).

use std::collections::{HashMap, VecDeque};

use crate::Stats;

/// Limits of the reassembler.
#[derive(Debug, Clone)]
pub struct DefragConfig {
    /// Datagrams being reassembled at once (default 1024).
    pub max_datagrams: usize,
    /// Bytes buffered over all datagrams (default 16 MiB).
    pub max_bytes: usize,
    /// A datagram not complete this long after its first fragment is dropped (default 30 s).
    pub timeout_us: i64,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            max_datagrams: 1024,
            max_bytes: 16 << 20,
            timeout_us: 30_000_000,
        }
    }
}

/// Identifies the datagram a fragment belongs to (RFC 791 / RFC 8200).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FragKey {
    V4 {
        src: [u8; 4],
        dst: [u8; 4],
        id: u16,
        proto: u8,
    },
    V6 {
        src: [u8; 16],
        dst: [u8; 16],
        id: u32,
    },
}

/// Largest reassembled payload: the IP length fields are 16 bits.
const MAX_DATAGRAM: usize = 65535;

#[derive(Debug)]
struct Pending {
    data: Vec<u8>,
    /// Received byte ranges, sorted, disjoint, non-adjacent.
    have: Vec<(usize, usize)>,
    /// Known once the last fragment (more-fragments flag clear) arrived.
    total: Option<usize>,
    seq: u64,
    /// The first fragment showed this is not SIP: swallow the rest without buffering.
    discard: bool,
}

/// The reassembler. Feed fragments with [`Defrag::add`].
#[derive(Debug, Default)]
pub struct Defrag {
    cfg: DefragConfig,
    map: HashMap<FragKey, Pending>,
    /// Arrival order, for timeout and eviction; entries whose `seq` no longer matches are stale.
    order: VecDeque<(i64, u64, FragKey)>,
    bytes: usize,
    next_seq: u64,
}

impl Defrag {
    pub fn new(cfg: DefragConfig) -> Defrag {
        Defrag {
            cfg,
            ..Defrag::default()
        }
    }

    /// Datagrams currently incomplete.
    pub fn pending(&self) -> usize {
        self.map.len()
    }

    /// Bytes currently buffered.
    pub fn buffered_bytes(&self) -> usize {
        self.bytes
    }

    fn remove(&mut self, key: &FragKey) -> Option<Pending> {
        let p = self.map.remove(key)?;
        self.bytes -= p.data.len();
        Some(p)
    }

    /// Drop datagrams whose first fragment is older than the timeout.
    pub fn expire(&mut self, now_us: i64, stats: &mut Stats) {
        while let Some(&(ts, seq, key)) = self.order.front() {
            let live = self.map.get(&key).is_some_and(|p| p.seq == seq);
            if live && ts.saturating_add(self.cfg.timeout_us) >= now_us {
                break;
            }
            self.order.pop_front();
            if live {
                self.remove(&key);
                stats.ip_fragments_dropped += 1;
            }
        }
    }

    /// Evict the oldest live datagram other than `keep`. Returns false when there is none.
    fn evict_oldest(&mut self, keep: Option<&FragKey>, stats: &mut Stats) -> bool {
        let mut i = 0;
        while i < self.order.len() {
            let (_, seq, key) = self.order[i];
            let live = self.map.get(&key).is_some_and(|p| p.seq == seq);
            if !live {
                self.order.remove(i);
                continue;
            }
            if Some(&key) == keep {
                i += 1;
                continue;
            }
            self.order.remove(i);
            self.remove(&key);
            stats.ip_fragments_dropped += 1;
            return true;
        }
        false
    }

    fn entry(&mut self, key: FragKey, ts: i64, stats: &mut Stats) -> &mut Pending {
        if !self.map.contains_key(&key) {
            while self.map.len() >= self.cfg.max_datagrams.max(1) {
                if !self.evict_oldest(None, stats) {
                    break;
                }
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            self.order.push_back((ts, seq, key));
            if self.order.len() > 4 * self.cfg.max_datagrams.max(16) {
                let map = &self.map;
                self.order
                    .retain(|(_, s, k)| map.get(k).is_some_and(|p| p.seq == *s) || *s == seq);
            }
            self.map.insert(
                key,
                Pending {
                    data: Vec::new(),
                    have: Vec::new(),
                    total: None,
                    seq,
                    discard: false,
                },
            );
        }
        self.map.get_mut(&key).expect("inserted above")
    }

    /// The first fragment told us the datagram is of no interest: drop what was buffered and
    /// ignore its later fragments (until timeout) without copying them.
    pub fn discard(&mut self, key: FragKey, ts: i64, stats: &mut Stats) {
        self.expire(ts, stats);
        let p = self.entry(key, ts, stats);
        let freed = p.data.len();
        p.discard = true;
        p.data = Vec::new();
        p.have = Vec::new();
        self.bytes -= freed;
    }

    /// Add one fragment: `offset` in bytes into the payload, `more` the more-fragments flag.
    /// Returns the whole payload when this fragment completes the datagram.
    pub fn add(
        &mut self,
        key: FragKey,
        ts: i64,
        offset: usize,
        more: bool,
        data: &[u8],
        stats: &mut Stats,
    ) -> Option<Vec<u8>> {
        self.expire(ts, stats);
        let end = offset + data.len();
        if end > MAX_DATAGRAM {
            if self.remove(&key).is_some() {
                stats.ip_fragments_dropped += 1;
            }
            stats.decode_errors += 1;
            return None;
        }
        let max_bytes = self.cfg.max_bytes;
        let p = self.entry(key, ts, stats);
        if p.discard {
            return None;
        }
        let inconsistent = match p.total {
            Some(t) => end > t || (!more && end != t),
            None => !more && p.have.last().is_some_and(|&(_, e)| e > end),
        };
        if inconsistent {
            self.remove(&key);
            stats.ip_fragments_dropped += 1;
            stats.decode_errors += 1;
            return None;
        }
        if !more {
            p.total = Some(end);
        }
        let growth = end.saturating_sub(p.data.len());
        if growth > 0 {
            while self.bytes + growth > max_bytes {
                if !self.evict_oldest(Some(&key), stats) {
                    self.remove(&key);
                    stats.ip_fragments_dropped += 1;
                    return None;
                }
            }
            self.bytes += growth;
        }
        let p = self.map.get_mut(&key)?;
        if p.data.len() < end {
            p.data.resize(end, 0);
        }
        p.data[offset..end].copy_from_slice(data);
        insert_range(&mut p.have, offset, end);
        let complete = p.total.is_some_and(|t| p.have.as_slice() == [(0, t)])
            || (p.total == Some(0) && data.is_empty());
        if !complete {
            return None;
        }
        let mut p = self.remove(&key)?;
        p.data.truncate(p.total.unwrap_or(0));
        stats.ip_reassembled += 1;
        Some(p.data)
    }
}

/// Merge `[s, e)` into a sorted list of disjoint ranges.
fn insert_range(have: &mut Vec<(usize, usize)>, s: usize, e: usize) {
    if s >= e {
        return;
    }
    let mut ns = s;
    let mut ne = e;
    let mut out = Vec::with_capacity(have.len() + 1);
    let mut placed = false;
    for &(a, b) in have.iter() {
        if b < ns {
            out.push((a, b));
        } else if a > ne {
            if !placed {
                out.push((ns, ne));
                placed = true;
            }
            out.push((a, b));
        } else {
            ns = ns.min(a);
            ne = ne.max(b);
        }
    }
    if !placed {
        out.push((ns, ne));
    }
    *have = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: u16) -> FragKey {
        FragKey::V4 {
            src: [10, 0, 0, 1],
            dst: [10, 0, 0, 2],
            id,
            proto: 17,
        }
    }

    #[test]
    fn ranges_merge() {
        let mut h = Vec::new();
        insert_range(&mut h, 10, 20);
        insert_range(&mut h, 30, 40);
        assert_eq!(h, vec![(10, 20), (30, 40)]);
        insert_range(&mut h, 20, 30);
        assert_eq!(h, vec![(10, 40)]);
        insert_range(&mut h, 0, 5);
        insert_range(&mut h, 3, 12);
        assert_eq!(h, vec![(0, 40)]);
    }

    #[test]
    fn in_order_out_of_order_duplicate_overlap() {
        let payload: Vec<u8> = (0..100u8).collect();
        let mut st = Stats::default();
        let mut d = Defrag::new(DefragConfig::default());
        assert!(d.add(key(1), 0, 0, true, &payload[..48], &mut st).is_none());
        assert!(d.add(key(1), 0, 0, true, &payload[..48], &mut st).is_none()); // duplicate
        assert!(
            d.add(key(1), 0, 40, true, &payload[40..64], &mut st)
                .is_none()
        ); // overlap
        assert_eq!(
            d.add(key(1), 0, 64, false, &payload[64..], &mut st),
            Some(payload.clone())
        );
        assert_eq!(d.pending(), 0);
        assert_eq!(d.buffered_bytes(), 0);
        // reverse order
        assert!(
            d.add(key(2), 0, 64, false, &payload[64..], &mut st)
                .is_none()
        );
        assert!(
            d.add(key(2), 0, 32, true, &payload[32..64], &mut st)
                .is_none()
        );
        assert_eq!(
            d.add(key(2), 0, 0, true, &payload[..32], &mut st),
            Some(payload)
        );
        assert_eq!(st.ip_reassembled, 2);
    }

    #[test]
    fn timeout_and_bounds() {
        let mut st = Stats::default();
        let mut d = Defrag::new(DefragConfig {
            max_datagrams: 2,
            max_bytes: 1000,
            timeout_us: 30_000_000,
        });
        d.add(key(1), 0, 0, true, &[0; 8], &mut st);
        assert_eq!(d.pending(), 1);
        // 31 s later another fragment: the first one times out
        d.add(key(2), 31_000_000, 0, true, &[0; 8], &mut st);
        assert_eq!(d.pending(), 1);
        assert_eq!(st.ip_fragments_dropped, 1);
        // a late fragment of the timed-out datagram does not complete it
        assert!(
            d.add(key(1), 31_000_001, 8, false, &[0; 8], &mut st)
                .is_none()
        );
        // count bound: key 3 evicts the oldest
        d.add(key(3), 31_000_002, 0, true, &[0; 8], &mut st);
        assert_eq!(d.pending(), 2);
        // byte bound: a big fragment evicts others, then fits alone
        d.add(key(4), 31_000_003, 0, true, &[0; 992], &mut st);
        assert!(d.buffered_bytes() <= 1000);
        // inconsistent: end beyond a known total
        d.add(key(5), 31_000_004, 16, false, &[0; 8], &mut st);
        d.add(key(5), 31_000_004, 24, true, &[0; 8], &mut st);
        assert!(!d.map.contains_key(&key(5)));
        // too large
        assert!(
            d.add(key(6), 31_000_005, 65530, false, &[0; 8], &mut st)
                .is_none()
        );
    }
}

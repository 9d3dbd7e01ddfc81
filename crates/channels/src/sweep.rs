//! Active intervals and the sweep line: `channels(t)` as a step function.
//!
//! A leg is active over a half-open interval `[from, to)`: a leg ending at `t` and another
//! starting at `t` do not overlap at `t` (at `t` only the second is active). A zero-length
//! interval `[t, t)` (or one with `to < from`) is active at no instant and is ignored, so a
//! call rejected in the same microsecond it arrived never counts.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

use calls::{Leg, Micros};

use crate::key::{DedupKey, FastHash, Keyer};

/// Which part of a leg occupies a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ActiveMode {
    /// `[start, end)`: ringing and unanswered attempts count (SPEC §2 default). This is what a
    /// monitor must keep up with, so it is what the license counts.
    #[default]
    Signalling,
    /// `[answer, end)`, answered legs only; unanswered legs never count. An answer before the
    /// leg's start (inconsistent data) is taken as the start.
    Answered,
}

/// The active interval of a leg given its times, or `None` when it is active at no instant
/// (zero-length, end before start, or unanswered in [`ActiveMode::Answered`]).
pub fn active_interval(
    start: Micros,
    answer: Option<Micros>,
    end: Micros,
    mode: ActiveMode,
) -> Option<(Micros, Micros)> {
    let from = match mode {
        ActiveMode::Signalling => start,
        ActiveMode::Answered => answer?.max(start),
    };
    (from < end).then_some((from, end))
}

/// What the sweep needs of a leg: its key and its active interval `[from, to)`. 24 bytes, so 14
/// M of them fit in about 340 MB; the store builds these from its rows (caller, called, start,
/// answer, end) without materialising full [`Leg`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub key: DedupKey,
    pub from: Micros,
    pub to: Micros,
}

impl Span {
    /// The span of a leg, or `None` when the leg is active at no instant.
    pub fn of_leg(leg: &Leg, keyer: &mut Keyer, mode: ActiveMode) -> Option<Span> {
        let (from, to) = active_interval(leg.start, leg.answer, leg.end, mode)?;
        Some(Span {
            key: keyer.key(&leg.caller, &leg.called),
            from,
            to,
        })
    }
}

/// One change point of `channels(t)`: the value is `value` from `at` (inclusive) until the next
/// step's `at` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub at: Micros,
    pub value: u32,
}

/// `channels(t)` as a step function. Invariants: `at` strictly increasing, consecutive values
/// different, the value before the first step is 0, and (when made by [`sweep`]) the last step
/// has value 0 because every span ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Steps(pub Vec<Step>);

impl Steps {
    /// `channels(t)`.
    pub fn value_at(&self, t: Micros) -> u32 {
        let i = self.0.partition_point(|s| s.at <= t);
        if i == 0 { 0 } else { self.0[i - 1].value }
    }

    /// The highest value and the first instant it is reached, `None` if it is never above 0.
    pub fn peak(&self) -> Option<(u32, Micros)> {
        let mut best: Option<(u32, Micros)> = None;
        for s in &self.0 {
            if s.value > best.map_or(0, |b| b.0) {
                best = Some((s.value, s.at));
            }
        }
        best
    }
}

/// Spans this many or more are sorted on two threads.
const PARALLEL_SORT_MIN: usize = 1 << 16;

/// The sweep line: calls `emit(at, value)` at every instant where the number of distinct keys
/// active changes, in increasing `at`. Exact at microsecond resolution: all ends at an instant
/// are applied before the starts at that instant (half-open intervals), and one value is
/// emitted per instant, after all its events, so no transient value is ever seen.
///
/// Per key a reference count is kept (the same key active on two sensors, or twice on one, is
/// one channel); the count of keys with a non-zero reference count is `channels(t)`.
pub fn sweep_with(spans: &[Span], emit: impl FnMut(Micros, u32)) {
    sweep_filtered(spans, |_| true, emit)
}

/// [`sweep_with`] over the spans that pass `keep`, without copying the spans.
pub(crate) fn sweep_filtered(
    spans: &[Span],
    keep: impl Fn(&Span) -> bool + Clone,
    mut emit: impl FnMut(Micros, u32),
) {
    let live = spans.iter().filter(move |s| s.from < s.to && keep(s));
    let mut starts: Vec<(Micros, u64)> = live.clone().map(|s| (s.from, s.key.as_u64())).collect();
    let mut ends: Vec<(Micros, u64)> = live.map(|s| (s.to, s.key.as_u64())).collect();

    if starts.len() >= PARALLEL_SORT_MIN {
        std::thread::scope(|sc| {
            sc.spawn(|| ends.sort_unstable_by_key(|e| e.0));
            starts.sort_unstable_by_key(|e| e.0);
        });
    } else {
        starts.sort_unstable_by_key(|e| e.0);
        ends.sort_unstable_by_key(|e| e.0);
    }

    // Reference counts of the keys active now; an entry is removed when it drops to 0, so the
    // table holds only the keys active at one instant and stays in cache.
    let mut refs: HashMap<u64, u32, FastHash> = HashMap::with_hasher(FastHash);
    let (mut i, mut j) = (0usize, 0usize);
    let mut distinct = 0u32;
    let mut last = 0u32;
    while i < starts.len() || j < ends.len() {
        let t = match (starts.get(i), ends.get(j)) {
            (Some(s), Some(e)) => s.0.min(e.0),
            (Some(s), None) => s.0,
            (None, Some(e)) => e.0,
            (None, None) => break,
        };
        while let Some(&(at, k)) = ends.get(j) {
            if at != t {
                break;
            }
            // Every span ending at t started before t, so its start was applied already and the
            // key is in the table with a count of at least 1.
            if let Entry::Occupied(mut e) = refs.entry(k) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                    distinct -= 1;
                }
            }
            j += 1;
        }
        while let Some(&(at, k)) = starts.get(i) {
            if at != t {
                break;
            }
            let r = refs.entry(k).or_insert(0);
            if *r == 0 {
                distinct += 1;
            }
            *r += 1;
            i += 1;
        }
        if distinct != last {
            emit(t, distinct);
            last = distinct;
        }
    }
}

/// [`sweep_with`] collected into [`Steps`].
pub fn sweep(spans: &[Span]) -> Steps {
    let mut out = Vec::new();
    sweep_with(spans, |at, value| out.push(Step { at, value }));
    Steps(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(key: u64, from: Micros, to: Micros) -> Span {
        Span {
            key: DedupKey::from_u64(key),
            from,
            to,
        }
    }

    fn steps(v: &[(Micros, u32)]) -> Steps {
        Steps(v.iter().map(|&(at, value)| Step { at, value }).collect())
    }

    #[test]
    fn half_open_boundaries_do_not_overlap() {
        // Two different calls, one ends at 10, the next starts at 10: never 2 at once.
        let s = sweep(&[span(0, 0, 10), span(1, 10, 20)]);
        assert_eq!(s, steps(&[(0, 1), (20, 0)]));
        assert_eq!(s.value_at(9), 1);
        assert_eq!(s.value_at(10), 1);
        assert_eq!(s.value_at(20), 0);
        assert_eq!(s.peak(), Some((1, 0)));
    }

    #[test]
    fn zero_length_legs_are_never_active() {
        let s = sweep(&[span(0, 5, 5), span(1, 7, 3), span(2, 0, 10)]);
        assert_eq!(s, steps(&[(0, 1), (10, 0)]));
        assert_eq!(sweep(&[span(0, 5, 5)]), Steps::default());
    }

    #[test]
    fn same_key_counts_once_with_reference_counting() {
        // Key 0 on two sensors with overlapping copies: one channel from 0 to 12.
        let s = sweep(&[span(0, 0, 10), span(0, 2, 12), span(1, 5, 6)]);
        assert_eq!(s, steps(&[(0, 1), (5, 2), (6, 1), (12, 0)]));
        // Same key back to back: ending and restarting at the same instant is no change.
        let s = sweep(&[span(0, 0, 10), span(0, 10, 20)]);
        assert_eq!(s, steps(&[(0, 1), (20, 0)]));
    }

    #[test]
    fn identical_timestamps() {
        let s = sweep(&[span(0, 3, 9), span(1, 3, 9), span(2, 3, 9), span(2, 3, 9)]);
        assert_eq!(s, steps(&[(3, 3), (9, 0)]));
    }

    #[test]
    fn any_key_value_works() {
        let s = sweep(&[span(u64::MAX, 0, 10), span(7, 5, 15), span(u64::MAX, 1, 2)]);
        assert_eq!(s, steps(&[(0, 1), (5, 2), (10, 1), (15, 0)]));
    }

    #[test]
    fn active_interval_modes() {
        use ActiveMode::*;
        assert_eq!(
            active_interval(10, Some(15), 20, Signalling),
            Some((10, 20))
        );
        assert_eq!(active_interval(10, Some(15), 20, Answered), Some((15, 20)));
        assert_eq!(active_interval(10, None, 20, Answered), None);
        assert_eq!(active_interval(10, None, 10, Signalling), None);
        assert_eq!(active_interval(10, Some(20), 20, Answered), None);
        assert_eq!(active_interval(10, Some(5), 20, Answered), Some((10, 20)));
    }
}

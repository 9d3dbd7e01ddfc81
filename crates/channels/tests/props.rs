//! Property tests of the engine against a brute-force reference.
//!
//! The reference knows nothing of sweeps or accumulators: it takes every instant where anything
//! can change (each leg's start and end, each minute, hour and day boundary, the window edges),
//! counts the distinct keys active at each by looking at every leg, and reads peaks, peak
//! instants and integrals off that table. Between two consecutive such instants the count is
//! constant, so checking them (and the instant just before each) checks every microsecond.

use std::collections::{BTreeSet, HashSet};

use calls::Micros;
use channels::{
    ActiveMode, Keyer, MINUTE, Span, Window, day_bounds, day_of, dedup_part, minute_rows, report,
    sweep,
};
use jiff::tz::TimeZone;
use proptest::prelude::*;

/// User parts that exercise the key rules: the same last 6 digits in several formats, fewer
/// digits, text in two cases, the empty user part.
const USERS: &[&str] = &[
    "123456001",
    "+1 (23) 456-001",
    "00123456001",
    "123456002",
    "0123",
    "123",
    "Alice",
    "alice",
    "bob",
    "",
];

#[derive(Debug, Clone)]
struct TLeg {
    caller: &'static str,
    called: &'static str,
    start: Micros,
    answer: Option<Micros>,
    end: Micros,
}

/// Legs on a grid of `unit` µs so that equal timestamps are frequent, with a chance of +1 µs
/// offsets (neighbouring instants), zero-length legs and copies of a leg with the same numbers
/// in another format (another sensor) and slightly shifted times.
fn legs(unit: i64, span_units: i64, max_len_units: i64) -> impl Strategy<Value = Vec<TLeg>> {
    let one = (
        0..USERS.len(),
        0..USERS.len(),
        0..span_units,
        0..=max_len_units,
        prop_oneof![Just(None), (0..=max_len_units).prop_map(Some)],
        0..3i64,
        0..3usize,
        -1..=1i64,
    );
    prop::collection::vec(one, 0..40).prop_map(move |v| {
        let mut out = Vec::new();
        for (c, d, s, len, ans, nudge, copies, shift) in v {
            let start = s * unit + nudge;
            // Now and then a leg whose end is before its start (bad data): never active.
            let end = if len == max_len_units && nudge == 2 {
                start - unit
            } else {
                start + len * unit
            };
            let answer = ans.map(|a| start + a.min(len) * unit);
            let leg = TLeg {
                caller: USERS[c],
                called: USERS[d],
                start,
                answer,
                end,
            };
            for k in 0..copies {
                // A copy from another sensor: the same key (first three users share theirs).
                let mut copy = leg.clone();
                if c < 3 {
                    copy.caller = USERS[(c + k + 1) % 3];
                }
                copy.start += shift * k as i64;
                copy.end += shift * k as i64;
                copy.answer = copy.answer.map(|a| a + shift * k as i64);
                out.push(copy);
            }
            out.push(leg);
        }
        out
    })
}

fn interval(l: &TLeg, mode: ActiveMode) -> Option<(Micros, Micros)> {
    let from = match mode {
        ActiveMode::Signalling => l.start,
        ActiveMode::Answered => l.answer?.max(l.start),
    };
    (from < l.end).then_some((from, l.end))
}

/// channels(t) by definition: distinct (caller part, called part) texts among active legs.
fn brute_at(legs: &[TLeg], mode: ActiveMode, t: Micros) -> u32 {
    let mut keys = HashSet::new();
    for l in legs {
        if let Some((a, b)) = interval(l, mode)
            && a <= t
            && t < b
        {
            keys.insert((dedup_part(l.caller), dedup_part(l.called)));
        }
    }
    keys.len() as u32
}

/// The instants where channels(t) may change, with the value from each until the next.
struct Table {
    at: Vec<Micros>,
    value: Vec<u32>,
}

impl Table {
    fn new(legs: &[TLeg], mode: ActiveMode, extra: impl IntoIterator<Item = Micros>) -> Table {
        let mut set: BTreeSet<Micros> = extra.into_iter().collect();
        for l in legs {
            if let Some((a, b)) = interval(l, mode) {
                set.insert(a);
                set.insert(b);
            }
        }
        let at: Vec<Micros> = set.into_iter().collect();
        let value = at.iter().map(|&t| brute_at(legs, mode, t)).collect();
        Table { at, value }
    }

    /// (peak, first instant of it, integral) over [a, b), which must be bounded by table
    /// instants.
    fn over(&self, a: Micros, b: Micros) -> (u32, Micros, u128) {
        let lo = self.at.partition_point(|&t| t < a);
        let hi = self.at.partition_point(|&t| t < b);
        let mut best = (0, a, 0u128);
        let mut first = true;
        for i in lo..hi {
            let seg_end = self.at.get(i + 1).copied().unwrap_or(b).min(b);
            best.2 += self.value[i] as u128 * (seg_end - self.at[i]) as u128;
            if first || self.value[i] > best.0 {
                best.0 = self.value[i];
                best.1 = self.at[i];
                first = false;
            }
        }
        best
    }
}

/// Spans as a caller would build them. In signalling mode the raw `[start, end)` goes in
/// unfiltered, zero-length and reversed legs included, so the sweep's own rule is tested.
fn spans_of(legs: &[TLeg], mode: ActiveMode) -> Vec<Span> {
    let mut keyer = Keyer::new();
    legs.iter()
        .filter_map(|l| {
            let (from, to) = match mode {
                ActiveMode::Signalling => (l.start, l.end),
                ActiveMode::Answered => channels::active_interval(l.start, l.answer, l.end, mode)?,
            };
            Some(Span {
                key: keyer.key(l.caller, l.called),
                from,
                to,
            })
        })
        .collect()
}

fn to_leg(i: usize, l: &TLeg) -> calls::Leg {
    calls::Leg::builder()
        .call_id(format!("c{i}"))
        .sensor_id((i % 4) as u32 + 1)
        .caller(l.caller)
        .called(l.called)
        .domains("", "")
        .start(l.start)
        .answer(l.answer)
        .end(l.end)
        .build()
}

fn mode() -> impl Strategy<Value = ActiveMode> {
    prop_oneof![Just(ActiveMode::Signalling), Just(ActiveMode::Answered)]
}

fn minutes_of(w: Window) -> Vec<Micros> {
    let mut m = w.start.div_euclid(MINUTE) * MINUTE;
    let mut out = vec![w.start, w.end];
    while m <= w.end {
        out.push(m);
        m += MINUTE;
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// channels(t) at every instant, on µs, s and 10 s grids.
    #[test]
    fn channels_at_every_instant(
        legs in prop_oneof![Just(1i64), Just(1_000_000), Just(10_000_000)]
            .prop_flat_map(|unit| legs(unit, 60, 20)),
        mode in mode(),
    ) {
        let steps = sweep(&spans_of(&legs, mode));
        let table = Table::new(&legs, mode, []);
        for (i, &t) in table.at.iter().enumerate() {
            prop_assert_eq!(steps.value_at(t), table.value[i], "at {}", t);
            prop_assert_eq!(steps.value_at(t - 1), brute_at(&legs, mode, t - 1), "at {}", t - 1);
        }
        // Step function invariants.
        for w in steps.0.windows(2) {
            prop_assert!(w[0].at < w[1].at);
            prop_assert!(w[0].value != w[1].value);
        }
        prop_assert_eq!(steps.0.last().map_or(0, |s| s.value), 0);
        // Explain lists exactly channels(t) groups, each leg in the group of its key.
        let full: Vec<calls::Leg> = legs.iter().enumerate().map(|(i, l)| to_leg(i, l)).collect();
        for &t in table.at.iter().take(12) {
            let e = channels::explain::explain(&full, t, mode);
            prop_assert_eq!(e.channels as u32, steps.value_at(t));
            for g in &e.groups {
                for l in &g.legs {
                    prop_assert_eq!((dedup_part(&l.caller), dedup_part(&l.called)), (g.caller_part.clone(), g.called_part.clone()));
                    prop_assert!(l.active_from <= t && t < l.active_to);
                }
            }
        }
    }

    /// Minute rows and hour windows (max, first instant, integral, mean) against the table,
    /// over a window that starts and ends off the minute.
    #[test]
    fn minutes_and_hours(
        legs in legs(10_000_000, 1_200, 400),
        mode in mode(),
        cut in (0..MINUTE, 0..MINUTE),
    ) {
        let window = Window { start: -cut.0, end: 13_000_000_000 - cut.1 };
        let rows = minute_rows(&spans_of(&legs, mode), window).unwrap();
        let table = Table::new(&legs, mode, minutes_of(window));
        prop_assert_eq!(rows.len() as i64, (window.end.div_euclid(MINUTE) - window.start.div_euclid(MINUTE)) + 1);
        for r in &rows {
            let a = r.start.max(window.start);
            let b = (r.start + MINUTE).min(window.end);
            let (peak, at, integral) = table.over(a, b);
            prop_assert_eq!((r.peak, r.peak_at, r.integral as u128, r.covered), (peak, at, integral, (b - a) as u64), "minute {}", r.start);
        }
        // Hours of the UTC day 1970-01-01 rebuilt from the rows = computed directly.
        let tz = TimeZone::UTC;
        let day = jiff::civil::date(1970, 1, 1);
        let rep = report(&rows, &tz, day, day).unwrap();
        prop_assert_eq!(rep.hours.len(), 24);
        for h in &rep.hours {
            let a = h.start.max(window.start);
            let b = h.end.min(window.end);
            if a >= b {
                prop_assert_eq!(h.peak, None);
                continue;
            }
            let (peak, at, integral) = table.over(a, b);
            let p = h.peak.unwrap();
            prop_assert_eq!((p.value, p.at, h.integral, h.covered), (peak, at, integral, (b - a) as u64));
            prop_assert_eq!(h.mean(), Some(integral as f64 / (b - a) as f64));
        }
        // The report covers the day 1970-01-01 only; the window starts up to a minute before.
        let (peak, at, _) = table.over(window.start.max(0), window.end);
        prop_assert_eq!(rep.peak.map(|p| (p.value, p.at)), Some((peak, at)));
    }

    /// Days in a DST zone (a 23-hour and a 25-hour day), with their hour windows, from minute
    /// rows = computed directly; and the rows of a sub-window computed from only the legs
    /// overlapping it equal the rows of the whole computation (the incremental contract).
    #[test]
    fn dst_days_and_incremental(
        legs in legs(60_000_000, 3_000, 180),
        mode in mode(),
        zone in 0..3usize,
        sub in (0..3_000i64, 0..600i64),
    ) {
        let (tz, first) = match zone {
            0 => (TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap(), jiff::civil::date(2024, 3, 30)),
            1 => (TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap(), jiff::civil::date(2024, 10, 26)),
            _ => (TimeZone::fixed(jiff::tz::Offset::from_seconds(19_800).unwrap()), jiff::civil::date(2024, 3, 30)),
        };
        let last = first.tomorrow().unwrap().tomorrow().unwrap();
        let start = day_bounds(first, &tz).unwrap().start;
        let end = day_bounds(last, &tz).unwrap().end;
        // Legs laid from 3 h before the first day to 2 h after the last.
        let legs: Vec<TLeg> = legs.into_iter().map(|mut l| {
            let d = start - 3 * 60 * MINUTE;
            l.start += d; l.end += d; l.answer = l.answer.map(|a| a + d); l
        }).collect();
        let window = Window { start, end };
        let spans = spans_of(&legs, mode);
        let rows = minute_rows(&spans, window).unwrap();
        let rep = report(&rows, &tz, first, last).unwrap();
        let table = Table::new(&legs, mode, minutes_of(window));
        prop_assert_eq!(rep.days.len(), 3);
        let mut hours = 0;
        for d in &rep.days {
            let b = day_bounds(d.day, &tz).unwrap();
            prop_assert_eq!((d.stats.start, d.stats.end), (b.start, b.end));
            prop_assert_eq!(day_of(b.start, &tz).unwrap(), d.day);
            let (peak, at, integral) = table.over(b.start, b.end);
            let p = d.stats.peak.unwrap();
            prop_assert_eq!((p.value, p.at, d.stats.integral), (peak, at, integral));
            hours += ((b.end - b.start) / (60 * MINUTE)) as usize;
        }
        prop_assert_eq!(rep.hours.len(), hours);
        for h in &rep.hours {
            let (peak, at, integral) = table.over(h.start, h.end);
            let p = h.peak.unwrap();
            prop_assert_eq!((p.value, p.at, h.integral), (peak, at, integral));
        }

        // Incremental: a whole-minute sub-window from the legs overlapping it only.
        let t0 = start + sub.0 * MINUTE;
        let t1 = (t0 + sub.1 * MINUTE).min(end);
        let t0 = t0.min(t1);
        let overlapping: Vec<TLeg> = legs.iter().filter(|l| l.start < t1 && l.end > t0).cloned().collect();
        let part = minute_rows(&spans_of(&overlapping, mode), Window { start: t0, end: t1 }).unwrap();
        let i = ((t0 - start) / MINUTE) as usize;
        prop_assert_eq!(&part[..], &rows[i..i + part.len()]);
        prop_assert_eq!(part.len() as i64, (t1 - t0) / MINUTE);
    }
}

//! Statistics of `channels(t)`: minute rows (what is persisted), and hours, days and the overall
//! peak rebuilt from them.
//!
//! The minute row is the unit of persistence and of recompute because every coarser figure is
//! an exact function of minute rows: a peak is the max of the minute peaks, and a time-weighted
//! mean is (sum of integrals) / (sum of covered time). Computing a day "directly" from the step
//! function and computing it from its minute rows give identical results (property-tested),
//! which is what lets the store recompute only the days touched by late legs.

use calls::Micros;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::error::ChannelsError;
use crate::sweep::{Span, Step, sweep_filtered};

/// One minute in microseconds.
pub const MINUTE: Micros = 60_000_000;

/// The longest window [`minute_rows`] accepts in one call: 10 years of minutes (about 5.3 M
/// rows). A guard against a mistaken window allocating without bound; split longer ones.
pub const MAX_WINDOW_MINUTES: i64 = 10 * 366 * 24 * 60;

/// The figures of one UTC minute `[start, start + 60 s)`, restricted to the part of it inside
/// the computed window (`covered`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteRow {
    /// Minute start, a multiple of [`MINUTE`] (UTC minutes; every zone in use today has a
    /// whole-minute offset, so local hours and days are whole sets of these).
    pub start: Micros,
    /// The highest `channels(t)` for t in the covered part of the minute (including the value
    /// carried in at its first covered instant).
    pub peak: u32,
    /// The first instant in the minute at which `peak` holds.
    pub peak_at: Micros,
    /// ∫ channels(t) dt over the covered part, in channel·µs (at most 2^32 × 6·10^7 < 2^63).
    pub integral: u64,
    /// How many µs of the minute were computed: 60 000 000 except at a window edge that is not
    /// on a minute (e.g. "now").
    pub covered: u64,
}

impl MinuteRow {
    /// Time-weighted mean over the covered part.
    pub fn mean(&self) -> Option<f64> {
        (self.covered > 0).then(|| self.integral as f64 / self.covered as f64)
    }
}

/// A half-open time window `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Micros,
    pub end: Micros,
}

/// Turns steps of `channels(t)` (in increasing time, as [`crate::sweep_with`] emits them) into minute
/// rows over a window, without storing the steps. Memory: the rows only.
#[derive(Debug)]
pub struct MinuteAccumulator {
    window: Window,
    rows: Vec<MinuteRow>,
    cur: Micros,
    value: u32,
    last_at: Option<Micros>,
}

impl MinuteAccumulator {
    pub fn new(window: Window) -> Result<MinuteAccumulator, ChannelsError> {
        let Window { start, end } = window;
        if end < start {
            return Err(ChannelsError::BadWindow { start, end });
        }
        let first = start.div_euclid(MINUTE);
        let last = end.div_euclid(MINUTE);
        let minutes = (last as i128 - first as i128) + 1;
        if minutes > MAX_WINDOW_MINUTES as i128 {
            return Err(ChannelsError::WindowTooLong { start, end });
        }
        Ok(MinuteAccumulator {
            window,
            rows: Vec::with_capacity(minutes as usize),
            cur: start,
            value: 0,
            last_at: None,
        })
    }

    /// `channels(t) = value` from `at` on. Steps before the window set the value carried into
    /// it; steps at or after its end are ignored. Steps must not go back in time.
    pub fn push(&mut self, at: Micros, value: u32) -> Result<(), ChannelsError> {
        if let Some(previous) = self.last_at
            && at < previous
        {
            return Err(ChannelsError::StepsOutOfOrder { at, previous });
        }
        self.last_at = Some(at);
        if at >= self.window.end {
            return Ok(());
        }
        if at > self.cur {
            self.advance(at);
        }
        self.value = value;
        Ok(())
    }

    /// Accounts the current value over `[cur, to)`, minute by minute.
    fn advance(&mut self, to: Micros) {
        let v = self.value;
        while self.cur < to {
            let m = self.cur.div_euclid(MINUTE) * MINUTE;
            let seg_end = m.saturating_add(MINUTE).min(to);
            let len = (seg_end - self.cur) as u64;
            match self.rows.last_mut() {
                Some(r) if r.start == m => {
                    if v > r.peak {
                        r.peak = v;
                        r.peak_at = self.cur;
                    }
                    r.integral += v as u64 * len;
                    r.covered += len;
                }
                _ => self.rows.push(MinuteRow {
                    start: m,
                    peak: v,
                    peak_at: self.cur,
                    integral: v as u64 * len,
                    covered: len,
                }),
            }
            self.cur = seg_end;
        }
    }

    /// The rows of every minute that overlaps the window (none for an empty window), in order.
    pub fn finish(mut self) -> Vec<MinuteRow> {
        self.advance(self.window.end);
        self.rows
    }
}

/// Minute rows of a step function over a window.
pub fn minute_rows_from_steps(
    steps: &[Step],
    window: Window,
) -> Result<Vec<MinuteRow>, ChannelsError> {
    let mut acc = MinuteAccumulator::new(window)?;
    for s in steps {
        acc.push(s.at, s.value)?;
    }
    Ok(acc.finish())
}

/// The minute rows of `window` from the spans: keys + sweep + minute figures in one pass.
///
/// # Contract (what makes the answer exact)
/// `spans` must hold the span of **every leg of every sensor whose active interval intersects
/// the window**: `from < window.end && to > window.start`. In store terms (default mode):
/// `WHERE start < :window_end AND end > :window_start`; in answered mode the same query is a
/// superset, which is fine. Legs that began before the window and are still active in it are
/// required (they give the value carried in at the window's start); legs that end after it are
/// required too (they are active inside it). Anything else may be passed and changes nothing:
/// spans outside the window are skipped, and a span given twice has the same key as itself, so
/// it is counted once. A missing required span can only lower the figures. All spans must be
/// keyed by one [`crate::Keyer`].
///
/// One row is returned for each UTC minute overlapping the window, in order; a minute cut by a
/// window edge has `covered` < 60 s. Rows of a whole-minute window are identical to the rows
/// of the same minutes in any larger computation (property-tested), so the store can replace
/// them one for one. The store recomputes whole local days ([`day_bounds`]), which are whole
/// UTC minutes; because rows are UTC minutes, changing the license time zone needs no
/// recompute, only a new [`report`].
pub fn minute_rows(spans: &[Span], window: Window) -> Result<Vec<MinuteRow>, ChannelsError> {
    let mut acc = MinuteAccumulator::new(window)?;
    // Only the spans touching the window matter; leaving the others out keeps the sort small.
    let touches = |s: &Span| s.from < window.end && s.to > window.start;
    let mut err = None;
    sweep_filtered(spans, touches, |at, value| {
        if err.is_none() {
            err = acc.push(at, value).err();
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok(acc.finish()),
    }
}

/// A peak: the value and the first instant it was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peak {
    pub value: u32,
    pub at: Micros,
}

/// Figures of a period (an hour window or a day) rebuilt from minute rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Period {
    pub start: Micros,
    pub end: Micros,
    /// `None` when no minute of the period has a row (no data computed).
    pub peak: Option<Peak>,
    /// ∑ of the minute integrals (channel·µs).
    pub integral: u128,
    /// ∑ of the minute coverage (µs).
    pub covered: u64,
}

impl Period {
    fn empty(start: Micros, end: Micros) -> Period {
        Period {
            start,
            end,
            peak: None,
            integral: 0,
            covered: 0,
        }
    }

    fn add(&mut self, r: &MinuteRow) {
        // Strictly greater keeps the earliest instant of the maximum (rows are in time order).
        if self.peak.is_none_or(|p| r.peak > p.value) {
            self.peak = Some(Peak {
                value: r.peak,
                at: r.peak_at,
            });
        }
        self.integral += r.integral as u128;
        self.covered += r.covered;
    }

    /// Time-weighted mean of `channels(t)` over the covered part.
    pub fn mean(&self) -> Option<f64> {
        (self.covered > 0).then(|| self.integral as f64 / self.covered as f64)
    }
}

/// One local day of the license time zone.
#[derive(Debug, Clone, PartialEq)]
pub struct DayStats {
    pub day: Date,
    pub stats: Period,
}

/// The "Concurrent Calls Stats" report.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The highest value over all days, at its first instant.
    pub peak: Option<Peak>,
    pub days: Vec<DayStats>,
    /// 60-minute windows tiling each day from its local midnight, in order. A 23-hour DST day
    /// has 23, a 25-hour day 25; a day whose length is not a whole number of hours (a zone with
    /// a 30-minute DST shift) ends with one shorter window.
    pub hours: Vec<Period>,
}

/// The instant a local day starts: its first instant (midnight, or the end of a DST gap that
/// swallowed midnight).
pub fn day_start(day: Date, tz: &TimeZone) -> Result<Micros, ChannelsError> {
    Ok(day.to_zoned(tz.clone())?.timestamp().as_microsecond())
}

/// `[start, end)` of a local day in `tz`: 24 h, or 23/25 h on DST change days.
pub fn day_bounds(day: Date, tz: &TimeZone) -> Result<Window, ChannelsError> {
    Ok(Window {
        start: day_start(day, tz)?,
        end: day_start(day.tomorrow()?, tz)?,
    })
}

/// The local date of an instant in `tz`.
pub fn day_of(t: Micros, tz: &TimeZone) -> Result<Date, ChannelsError> {
    let ts = jiff::Timestamp::from_microsecond(t)?;
    Ok(tz.to_datetime(ts).date())
}

/// The local days a span `[from, to)` touches (what the store marks dirty when a leg arrives).
/// Empty for an empty span.
pub fn days_touched(from: Micros, to: Micros, tz: &TimeZone) -> Result<Vec<Date>, ChannelsError> {
    if from >= to {
        return Ok(Vec::new());
    }
    let last = day_of(to - 1, tz)?;
    let mut d = day_of(from, tz)?;
    let mut out = vec![d];
    while d < last {
        d = d.tomorrow()?;
        out.push(d);
    }
    Ok(out)
}

/// The report for the local days `first_day..=last_day` in `tz` from minute rows (any order).
/// Rows outside the days are ignored; minutes without a row count as not computed (they add
/// nothing to peaks, means or coverage).
pub fn report(
    rows: &[MinuteRow],
    tz: &TimeZone,
    first_day: Date,
    last_day: Date,
) -> Result<Report, ChannelsError> {
    if first_day > last_day {
        return Err(ChannelsError::BadDayRange {
            first: first_day,
            last: last_day,
        });
    }
    let mut sorted: Vec<MinuteRow>;
    let rows: &[MinuteRow] = if rows.is_sorted_by_key(|r| r.start) {
        rows
    } else {
        sorted = rows.to_vec();
        sorted.sort_by_key(|r| r.start);
        &sorted
    };
    for w in rows.windows(2) {
        if w[0].start == w[1].start {
            return Err(ChannelsError::DuplicateMinute { minute: w[0].start });
        }
    }
    if let Some(r) = rows.iter().find(|r| r.start.rem_euclid(MINUTE) != 0) {
        return Err(ChannelsError::MinuteNotAligned { minute: r.start });
    }

    let mut out = Report {
        peak: None,
        days: Vec::new(),
        hours: Vec::new(),
    };
    let mut day = first_day;
    let mut start = day_start(day, tz)?;
    loop {
        let next = day.tomorrow()?;
        let end = day_start(next, tz)?;
        if start.rem_euclid(MINUTE) != 0 {
            return Err(ChannelsError::DayNotMinuteAligned { day, at: start });
        }
        let lo = rows.partition_point(|r| r.start < start);
        let hi = rows.partition_point(|r| r.start < end);
        let mut d = Period::empty(start, end);
        let mut h = Period::empty(start, (start + 60 * MINUTE).min(end));
        for r in &rows[lo..hi] {
            while r.start >= h.end {
                out.hours.push(h);
                h = Period::empty(h.end, (h.end + 60 * MINUTE).min(end));
            }
            h.add(r);
            d.add(r);
        }
        loop {
            out.hours.push(h);
            if h.end >= end {
                break;
            }
            h = Period::empty(h.end, (h.end + 60 * MINUTE).min(end));
        }
        if let Some(p) = d.peak
            && out.peak.is_none_or(|b| p.value > b.value)
        {
            out.peak = Some(p);
        }
        out.days.push(DayStats { day, stats: d });
        if day >= last_day {
            break;
        }
        day = next;
        start = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::DedupKey;

    fn w(start: Micros, end: Micros) -> Window {
        Window { start, end }
    }

    #[test]
    fn minute_peak_includes_the_value_carried_in() {
        // One channel from 30 s before the minute to 10 s into the next one.
        let spans = [Span {
            key: DedupKey::from_u64(0),
            from: 30_000_000,
            to: 70_000_000,
        }];
        let rows = minute_rows(&spans, w(60_000_000, 180_000_000)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0],
            MinuteRow {
                start: 60_000_000,
                peak: 1,
                peak_at: 60_000_000,
                integral: 10_000_000,
                covered: 60_000_000
            }
        );
        assert_eq!(rows[1].peak, 0);
        assert_eq!(rows[1].peak_at, 120_000_000);
        assert_eq!(rows[1].integral, 0);
    }

    #[test]
    fn partial_minutes_at_window_edges() {
        let spans = [Span {
            key: DedupKey::from_u64(0),
            from: 0,
            to: 200_000_000,
        }];
        let rows = minute_rows(&spans, w(90_000_000, 130_000_000)).unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].start, rows[0].covered, rows[0].peak_at),
            (60_000_000, 30_000_000, 90_000_000)
        );
        assert_eq!((rows[1].start, rows[1].covered), (120_000_000, 10_000_000));
        assert_eq!(rows[1].mean(), Some(1.0));
        assert!(minute_rows(&spans, w(5, 5)).unwrap().is_empty());
        assert_eq!(
            minute_rows(&spans, w(5, 4)),
            Err(ChannelsError::BadWindow { start: 5, end: 4 })
        );
        assert!(matches!(
            minute_rows(&spans, w(0, i64::MAX)),
            Err(ChannelsError::WindowTooLong { .. })
        ));
    }

    #[test]
    fn accumulator_rejects_steps_back_in_time() {
        let mut acc = MinuteAccumulator::new(w(0, MINUTE)).unwrap();
        acc.push(10, 1).unwrap();
        assert_eq!(
            acc.push(5, 0),
            Err(ChannelsError::StepsOutOfOrder {
                at: 5,
                previous: 10
            })
        );
    }

    #[test]
    fn dst_days_have_23_and_25_hours() {
        let tz = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let short = day_bounds(jiff::civil::date(2024, 3, 31), &tz).unwrap();
        assert_eq!(short.end - short.start, 23 * 60 * MINUTE);
        let long = day_bounds(jiff::civil::date(2024, 10, 27), &tz).unwrap();
        assert_eq!(long.end - long.start, 25 * 60 * MINUTE);
        let rows = minute_rows(&[], w(short.start, long.end)).unwrap();
        let rep = report(
            &rows,
            &tz,
            jiff::civil::date(2024, 3, 31),
            jiff::civil::date(2024, 10, 27),
        )
        .unwrap();
        let hours_of = |d: Date| {
            let b = day_bounds(d, &tz).unwrap();
            rep.hours
                .iter()
                .filter(|h| h.start >= b.start && h.end <= b.end)
                .count()
        };
        assert_eq!(hours_of(jiff::civil::date(2024, 3, 31)), 23);
        assert_eq!(hours_of(jiff::civil::date(2024, 10, 27)), 25);
        assert_eq!(hours_of(jiff::civil::date(2024, 6, 1)), 24);
        assert!(rep.hours.iter().all(|h| h.end - h.start == 60 * MINUTE));
        assert_eq!(
            rep.peak,
            Some(Peak {
                value: 0,
                at: short.start
            })
        );
    }

    #[test]
    fn half_hour_dst_shift_gives_a_short_last_window() {
        // Lord Howe style: +10:30 standard, +11 summer (30-minute shift).
        let tz = TimeZone::posix("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0").unwrap();
        let d = jiff::civil::date(2024, 10, 6);
        let b = day_bounds(d, &tz).unwrap();
        assert_eq!(b.end - b.start, 23 * 60 * MINUTE + 30 * MINUTE);
        let rows = minute_rows(&[], b).unwrap();
        let rep = report(&rows, &tz, d, d).unwrap();
        assert_eq!(rep.hours.len(), 24);
        assert_eq!(rep.hours[23].end - rep.hours[23].start, 30 * MINUTE);
    }

    #[test]
    fn days_touched_by_a_span() {
        let tz = TimeZone::UTC;
        let day = 86_400_000_000i64;
        let d = |n| jiff::civil::date(1970, 1, n);
        assert_eq!(
            days_touched(day - 1, day + 1, &tz).unwrap(),
            vec![d(1), d(2)]
        );
        assert_eq!(days_touched(0, day, &tz).unwrap(), vec![d(1)]);
        assert_eq!(days_touched(5, 5, &tz).unwrap(), vec![]);
    }

    #[test]
    fn report_rejects_bad_rows() {
        let tz = TimeZone::UTC;
        let d = jiff::civil::date(1970, 1, 1);
        let r = MinuteRow {
            start: 0,
            peak: 1,
            peak_at: 0,
            integral: 0,
            covered: 1,
        };
        assert_eq!(
            report(&[r, r], &tz, d, d),
            Err(ChannelsError::DuplicateMinute { minute: 0 })
        );
        let odd = MinuteRow { start: 5, ..r };
        assert_eq!(
            report(&[odd], &tz, d, d),
            Err(ChannelsError::MinuteNotAligned { minute: 5 })
        );
        assert!(matches!(
            report(&[], &tz, d.tomorrow().unwrap(), d),
            Err(ChannelsError::BadDayRange { .. })
        ));
        // No rows: the day and its hours exist, with no peak and no coverage.
        let rep = report(&[], &tz, d, d).unwrap();
        assert_eq!(rep.days.len(), 1);
        assert_eq!(rep.hours.len(), 24);
        assert_eq!(rep.peak, None);
        assert_eq!(rep.days[0].stats.mean(), None);
    }
}

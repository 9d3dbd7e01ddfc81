//! The over-limit timeline (SPEC §3): how many consecutive days the channel peak exceeded
//! the limit, and what follows from it.
//!
//! It is a pure function of the daily peaks and the limit in force *now*. Nothing about past
//! evaluations is remembered, so a bigger key or a temporary increase unlocks at once, and
//! deleted or recomputed CDRs (which change the stored peaks) are re-evaluated at the next
//! call.

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::add_days;
use crate::dates::plural;

/// The first day of the streak that is lockdown (days 1–3 are grace).
pub const LOCKDOWN_DAY: u32 = 4;
/// The first day of the streak that is locked.
pub const LOCK_DAY: u32 = 15;

/// The highest channel count of one calendar day (license time zone).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyPeak {
    pub date: Date,
    pub peak: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverLimit {
    /// N = 0.
    Ok,
    /// N = 1–3: warning only.
    Grace,
    /// N = 4–14: countdown to the lock on every page, daily admin alerts.
    Lockdown,
    /// N >= 15.
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Timeline {
    pub state: OverLimit,
    /// N: consecutive days over the limit ending yesterday, plus today if already over.
    pub days_over: u32,
    /// The days counted in N, oldest first, with their peaks.
    pub offending_days: Vec<DailyPeak>,
    /// The limit the peaks were compared with.
    pub limit: u32,
    /// The day the lock starts if every day from now on is over the limit too (or the day it
    /// started, once locked); `None` when nothing is over.
    pub lock_date: Option<Date>,
    /// Whole days from today to `lock_date` (0 = locks today if today goes over; negative
    /// once locked).
    pub days_until_lock: Option<i64>,
    /// The facts and the rule in one sentence (what to do is up to the GUI or CLI).
    pub reason: String,
}

/// The timeline for `peaks` (any order; duplicates of a day count with their maximum; days
/// after `today` are ignored; a day without a peak had no channels) against `limit` on
/// `today`. "Over" means a peak strictly above the limit.
pub fn over_limit_timeline(peaks: &[DailyPeak], limit: u32, today: Date) -> Timeline {
    let mut by_day: BTreeMap<Date, u32> = BTreeMap::new();
    for p in peaks.iter().filter(|p| p.date <= today) {
        let e = by_day.entry(p.date).or_insert(0);
        *e = (*e).max(p.peak);
    }
    let over = |d: Date| by_day.get(&d).is_some_and(|&p| p > limit);

    let mut offending: Vec<DailyPeak> = Vec::new();
    let mut day = today.yesterday().ok();
    while let Some(d) = day.filter(|&d| over(d)) {
        offending.push(DailyPeak {
            date: d,
            peak: by_day[&d],
        });
        day = d.yesterday().ok();
    }
    offending.reverse();
    let today_over = over(today);
    if today_over {
        offending.push(DailyPeak {
            date: today,
            peak: by_day[&today],
        });
    }
    let n = u32::try_from(offending.len()).unwrap_or(u32::MAX);
    let state = match n {
        0 => OverLimit::Ok,
        1..=3 => OverLimit::Grace,
        4..=14 => OverLimit::Lockdown,
        _ => OverLimit::Locked,
    };
    let lock_date = match state {
        OverLimit::Ok => None,
        OverLimit::Locked => Some(offending[LOCK_DAY as usize - 1].date),
        _ => {
            // Today is day N if it is already over, else it would be day N + 1.
            let today_is_day = if today_over { n } else { n + 1 };
            Some(add_days(
                today,
                i64::from(LOCK_DAY) - i64::from(today_is_day),
            ))
        }
    };
    let days_until_lock = lock_date.map(|d| crate::days_between(today, d));
    let reason = reason(state, n, limit, &offending, lock_date, today_over);
    Timeline {
        state,
        days_over: n,
        offending_days: offending,
        limit,
        lock_date,
        days_until_lock,
        reason,
    }
}

fn reason(
    state: OverLimit,
    n: u32,
    limit: u32,
    offending: &[DailyPeak],
    lock_date: Option<Date>,
    today_over: bool,
) -> String {
    let (Some(first), Some(last), Some(lock)) = (offending.first(), offending.last(), lock_date)
    else {
        return format!("channel peaks are within the limit of {limit}");
    };
    let highest = offending.iter().map(|p| p.peak).max().unwrap_or(0);
    let span = if first.date == last.date {
        format!("on {}", first.date)
    } else {
        format!("from {} to {}", first.date, last.date)
    };
    let head = format!(
        "the channel peak exceeded the limit of {limit} on {n} consecutive day{} ({span}, highest {highest}{})",
        plural(i64::from(n)),
        if today_over { ", today included" } else { "" }
    );
    // What to do about it is the surface's business (the GUI links its pages, the CLI names
    // its commands): the reason states the facts and the rule only.
    match state {
        OverLimit::Ok => head,
        OverLimit::Grace => format!(
            "{head}; grace period (days 1-3): nothing is blocked yet, lockdown starts on day {LOCKDOWN_DAY}; the GUI locks on {lock} if this continues"
        ),
        OverLimit::Lockdown => {
            format!("{head}; lockdown: the GUI locks on {lock} unless a day stays within the limit")
        }
        OverLimit::Locked => format!(
            "{head}; locked since {lock}: it unlocks as soon as a full day stays within the limit or the limit is raised"
        ),
    }
}

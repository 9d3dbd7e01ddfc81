//! The errors of this crate. Everything else is total: bad legs (end before start, no answer in
//! answered mode) are simply not active, never an error.

use calls::Micros;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ChannelsError {
    /// A time window whose end is before its start.
    #[error("window end {end} is before its start {start}")]
    BadWindow { start: Micros, end: Micros },
    /// A window of more minutes than [`crate::MAX_WINDOW_MINUTES`]: the caller should split it
    /// (the store recomputes day by day anyway).
    #[error("window [{start}, {end}) is longer than {max} minutes; split it", max = crate::MAX_WINDOW_MINUTES)]
    WindowTooLong { start: Micros, end: Micros },
    /// Steps given to the minute accumulator went back in time.
    #[error("step at {at} comes before the previous step at {previous}")]
    StepsOutOfOrder { at: Micros, previous: Micros },
    /// Two minute rows for the same minute were given to a report.
    #[error("two minute rows for the minute starting at {minute}")]
    DuplicateMinute { minute: Micros },
    /// A minute row whose start is not on a whole UTC minute.
    #[error("minute row start {minute} is not on a whole minute")]
    MinuteNotAligned { minute: Micros },
    /// A local day boundary that is not on a whole UTC minute (only historical zones with
    /// second-level offsets, e.g. before 1972): such a day cannot be rebuilt from minute rows.
    #[error("day {day} starts at {at}, which is not on a whole minute in UTC")]
    DayNotMinuteAligned { day: jiff::civil::Date, at: Micros },
    /// A date or instant that the time zone library cannot represent (its message; kept as
    /// text so that this error stays comparable in tests).
    #[error("time zone computation failed: {0}")]
    Zone(String),
    /// `first_day` after `last_day`.
    #[error("day range {first}..={last} is empty")]
    BadDayRange {
        first: jiff::civil::Date,
        last: jiff::civil::Date,
    },
}

impl From<jiff::Error> for ChannelsError {
    fn from(e: jiff::Error) -> ChannelsError {
        ChannelsError::Zone(e.to_string())
    }
}

//! Channel counting (SPEC §2): dedup keys, `channels(t)` by a sweep line, per-minute figures
//! that hours, days and the overall peak are rebuilt from, and "explain" for an instant.
//!
//! Pure: no I/O, no clock; instants are [`calls::Micros`] (µs since the epoch, UTC) and the
//! license time zone is a [`jiff::tz::TimeZone`] the caller loads.
//!
//! Incremental recompute (late legs): for a new leg, mark dirty the local days its span touches
//! ([`days_touched`]); for each dirty day, load the spans overlapping [`day_bounds`] of it (see
//! the contract of [`minute_rows`]) and replace that day's minute rows. Reports then read only
//! minute rows ([`report`]): 14 days are 20 160 rows and take well under a millisecond.
//!
//! Typical use (the store and the CLI):
//! ```
//! use channels::{ActiveMode, Keyer, Span, Window, minute_rows, report};
//! # let legs: Vec<calls::Leg> = Vec::new();
//! let mut keyer = Keyer::new();
//! let spans: Vec<Span> = legs
//!     .iter()
//!     .filter_map(|l| Span::of_leg(l, &mut keyer, ActiveMode::Signalling))
//!     .collect();
//! let tz = jiff::tz::TimeZone::UTC;
//! let day = jiff::civil::date(2024, 5, 1);
//! let window = channels::day_bounds(day, &tz)?;
//! let rows = minute_rows(&spans, window)?; // persist these
//! let rep = report(&rows, &tz, day, day)?; // days, hours, overall peak
//! assert_eq!(rep.hours.len(), 24);
//! # Ok::<(), channels::ChannelsError>(())
//! ```

mod error;
pub mod explain;
mod key;
mod stats;
mod sweep;

pub use error::ChannelsError;
pub use key::{DedupKey, Keyer, PartCode, dedup_part};
pub use stats::{
    DayStats, MAX_WINDOW_MINUTES, MINUTE, MinuteAccumulator, MinuteRow, Peak, Period, Report,
    Window, day_bounds, day_of, day_start, days_touched, minute_rows, minute_rows_from_steps,
    report,
};
pub use sweep::{ActiveMode, Span, Step, Steps, active_interval, sweep, sweep_with};

//! Channel licensing for sipmeter (SPEC §3): signed license files, hardware and domain
//! binding, subscription dates, time-boxed grants, the over-limit timeline, and the one
//! [`status`] function the rest of the product asks.
//!
//! The crate is pure: it never reads a file, the clock, the network or the machine. The time,
//! the machine's identity, the license file's text and name, the daily channel peaks and the
//! persisted clock high-water mark are all parameters. That keeps every rule a function of
//! its inputs, so the tests can pin every boundary and the GUI, the CLI and the portal all
//! get the same answer for the same facts.
//!
//! Instants are `i64` microseconds since the epoch (UTC), as everywhere in the workspace;
//! calendar days are [`jiff::civil::Date`]s in the license time zone chosen by the caller.

mod armor;
mod certificate;
mod dates;
mod error;
mod file;
mod hwid;
mod keys;
mod status;
mod subscription;
mod terms;
mod timeline;

pub use certificate::{CERTIFICATE_LABEL, Certificate, CertificateTerms};
pub use dates::{
    DatePhase, DateStatus, EXPIRY_WARNING_DAYS, GRACE_PERIOD_DAYS, TRIAL_DAYS, date_status,
    grace_end_for,
};
pub use error::{IssueError, KeyError, VerifyError};
pub use file::{
    CLOCK_SET_BACK_TOLERANCE_US, DOMAIN_SEPARATOR, FORMAT_VERSION, ISSUE_DRIFT_US, LICENSE_LABEL,
    SignedLicense, UNCERTIFIED_VERSION, Verified, VerifyContext, issue, license_text, verify,
};
pub use hwid::{
    Hwid, HwidSource, LicenseToken, MachineIdentity, ResolvedHwid, new_fallback_id, resolve_hwid,
};
#[cfg(feature = "dev-keys")]
pub use keys::dev_root_signing_key;
pub use keys::{CHECKIN_CONTEXT, DEVELOPMENT_BUILD, KeyId, Keyring, PublicKey, SigningKey};
pub use status::{
    EVALUATION_CHANNELS, Features, LicenseFile, LimitBreakdown, LockReason, MOVED_LICENSE_DAYS,
    Mode, PendingLock, REFRESH_OVERDUE_DAYS, State, Status, StatusError, StatusInput, Superseded,
    effective_limit, status,
};
pub use subscription::{
    BootSeen, CHECKIN_INTERVAL_US, ConcurrentUse, LIVE_WINDOW_US, Upgrade, allowed_systems,
    concurrent_use, grants_to_carry, limit_at, renewed_formal_end, trial_formal_end,
};
pub use terms::{Binding, Grant, LicenseTerms, normalize_domain};
pub use timeline::{DailyPeak, LOCK_DAY, LOCKDOWN_DAY, OverLimit, Timeline, over_limit_timeline};

/// Re-exported so callers name exactly the date and time-zone types this crate speaks.
pub use jiff;
/// `rand_core` and the operating system's random source, re-exported for callers that generate keys or a
/// fallback id; this crate itself never draws randomness on its own.
pub use rand_core::{self, OsRng};

/// Microseconds since the Unix epoch, UTC: the workspace's instant type.
pub type Micros = i64;

/// Converts a workspace instant to a jiff timestamp; `None` only for instants outside
/// jiff's range (years before -9999 or after 9999), which no real clock produces.
pub fn timestamp(us: Micros) -> Option<jiff::Timestamp> {
    jiff::Timestamp::from_microsecond(us).ok()
}

/// The calendar day of `us` in `tz`; days outside jiff's range clamp to its ends so that
/// this total function never fails.
pub fn day_of(us: Micros, tz: &jiff::tz::TimeZone) -> jiff::civil::Date {
    let ts = timestamp(us).unwrap_or(if us < 0 {
        jiff::Timestamp::MIN
    } else {
        jiff::Timestamp::MAX
    });
    tz.to_datetime(ts).date()
}

/// Whole days from `a` to `b` (negative when `b` is earlier).
pub(crate) fn days_between(a: jiff::civil::Date, b: jiff::civil::Date) -> i64 {
    a.until(b).map(|s| i64::from(s.get_days())).unwrap_or(0)
}

/// `d` moved by `n` days, clamped to jiff's date range.
pub(crate) fn add_days(d: jiff::civil::Date, n: i64) -> jiff::civil::Date {
    d.checked_add(jiff::Span::new().days(n))
        .unwrap_or(if n < 0 {
            jiff::civil::Date::MIN
        } else {
            jiff::civil::Date::MAX
        })
}

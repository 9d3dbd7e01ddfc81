//! Subscription dates: where today stands against the formal end and the grace end.
//!
//! All dates are inclusive last days in the license time zone: a formal end of 2026-03-31
//! means the paid period covers all of March 31.

use jiff::civil::Date;
use serde::Serialize;

use crate::terms::LicenseTerms;
use crate::{add_days, days_between};

/// The expiry warning starts this many days before the formal end.
pub const EXPIRY_WARNING_DAYS: i64 = 30;
/// The renewal grace period after the formal end (not for cancelled subscriptions/trials).
pub const GRACE_PERIOD_DAYS: i64 = 20;
/// Length of a trial or emergency trial.
pub const TRIAL_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DatePhase {
    /// More than 30 days before the formal end.
    Active,
    /// The formal end (= end of access when cancelled or a trial) is within 30 days.
    ExpiringSoon,
    /// Past the formal end, up to the grace end: everything works, renewal is pending.
    RenewalPending,
    /// Past the end of access: locks like an over-limit lock.
    Expired,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DateStatus {
    pub phase: DatePhase,
    pub formal_end: Date,
    pub grace_end: Date,
    /// The last day anything works: grace end, or formal end if cancelled or a trial.
    pub access_end: Date,
    /// Days from today to the formal end (negative once past it).
    pub days_to_formal_end: i64,
    /// Days from today to the end of access (negative once expired).
    pub days_to_access_end: i64,
    /// What to tell the user, if anything.
    pub warning: Option<String>,
}

/// Grace end for a formal end: +20 days, or none for cancelled subscriptions and trials.
pub fn grace_end_for(formal_end: Date, no_grace: bool) -> Date {
    if no_grace {
        formal_end
    } else {
        add_days(formal_end, GRACE_PERIOD_DAYS)
    }
}

/// Where `today` stands for `terms`.
pub fn date_status(terms: &LicenseTerms, today: Date) -> DateStatus {
    let access_end = terms.access_end();
    let to_formal = days_between(today, terms.formal_end);
    let to_access = days_between(today, access_end);
    let what = if terms.emergency {
        "emergency trial"
    } else if terms.trial {
        "trial"
    } else {
        "license"
    };
    let phase = if today > access_end {
        DatePhase::Expired
    } else if today > terms.formal_end {
        DatePhase::RenewalPending
    } else if to_formal <= EXPIRY_WARNING_DAYS {
        DatePhase::ExpiringSoon
    } else {
        DatePhase::Active
    };
    let warning = match phase {
        DatePhase::Active => None,
        DatePhase::ExpiringSoon if access_end == terms.formal_end => Some(format!(
            "{what} ends after {} ({} day{} left){}",
            terms.formal_end,
            to_formal,
            plural(to_formal),
            if terms.cancelled {
                "; the subscription is cancelled, so there is no grace period"
            } else {
                ""
            }
        )),
        DatePhase::ExpiringSoon => Some(format!(
            "{what} formal end is {} ({} day{} left); renew before then",
            terms.formal_end,
            to_formal,
            plural(to_formal)
        )),
        DatePhase::RenewalPending => Some(format!(
            "renewal pending: the paid period ended after {}; everything works until the grace end {} ({} day{} left), then the GUI locks",
            terms.formal_end,
            access_end,
            to_access,
            plural(to_access)
        )),
        DatePhase::Expired => Some(format!("{what} expired after {access_end}")),
    };
    DateStatus {
        phase,
        formal_end: terms.formal_end,
        grace_end: terms.grace_end,
        access_end,
        days_to_formal_end: to_formal,
        days_to_access_end: to_access,
        warning,
    }
}

pub(crate) fn plural(n: i64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

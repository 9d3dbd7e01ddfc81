//! The one question the rest of the product asks: given the license file, this machine, the
//! clock and the channel peaks, what state are we in and what may run?

use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::dates::{DatePhase, DateStatus, date_status};
use crate::error::VerifyError;
use crate::file::{VerifyContext, check};
use crate::hwid::ResolvedHwid;
use crate::keys::Keyring;
use crate::terms::{Binding, Grant, LicenseTerms};
use crate::timeline::{DailyPeak, OverLimit, Timeline, over_limit_timeline};
use crate::{Micros, day_of};

/// Channels allowed with no license installed (evaluation mode): enough to try the product
/// on a lab PBX, not to run a production one.
pub const EVALUATION_CHANNELS: u32 = 10;

/// Days between the portal's word that the license moved to another system and the lock here.
pub const MOVED_LICENSE_DAYS: i64 = 7;
/// Days past `refresh_by` without a fresh file before the lock.
pub const REFRESH_OVERDUE_DAYS: i64 = 7;
const DAY_US: Micros = 86_400_000_000;

/// The portal's answer `superseded` about an installed license: it was re-bound to another
/// hardware id or domain, so this copy stops after [`MOVED_LICENSE_DAYS`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Superseded {
    pub license_id: String,
    /// When this server first heard it.
    pub since: Micros,
}

/// A lock that comes on a known instant unless something changes (a moved license, a missed
/// refresh): every page shows the countdown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingLock {
    pub reason: LockReason,
    pub lock_at: Micros,
    /// Whole days left (rounded up), 0 once locked.
    pub days_left: i64,
    /// The sentence for people: what happened and what to do.
    pub text: String,
}

/// The installed license file, if any.
#[derive(Debug, Clone, Copy)]
pub struct LicenseFile<'a> {
    /// Base name shown in messages, e.g. `license.key`.
    pub name: &'a str,
    pub text: &'a str,
}

/// Everything [`status`] depends on. Nothing else is read.
#[derive(Debug, Clone)]
pub struct StatusInput<'a> {
    pub license: Option<LicenseFile<'a>>,
    pub keyring: &'a Keyring,
    pub hwid: ResolvedHwid,
    /// The domain this server is reached by, for domain-bound licenses.
    pub domain: Option<&'a str>,
    pub now: Micros,
    pub time_zone: &'a TimeZone,
    /// The persisted high-water mark of time seen, `None` on first use.
    pub high_water: Option<Micros>,
    /// Operator-configured lower limit (`channel_limit`), if set.
    pub operator_limit: Option<u32>,
    /// Daily channel peaks from the channel engine.
    pub daily_peaks: &'a [DailyPeak],
    /// The portal said the installed license moved elsewhere (applies when the license id
    /// matches the installed file's).
    pub superseded: Option<&'a Superseded>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A valid license is installed (it may still be expired or over its limit).
    Licensed,
    /// No license installed: small evaluation allowance.
    Evaluation,
    /// A license file is installed but not accepted (wrong hwid, bad signature, ...).
    Invalid,
}

/// The enforcement state, the worst of the over-limit timeline and the license validity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Ok,
    Grace,
    Lockdown,
    Locked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LockReason {
    OverLimit,
    Expired,
    /// The installed file is not accepted; `code` is the [`VerifyError::code`].
    Invalid {
        code: String,
    },
    /// The license was re-bound to another system [`MOVED_LICENSE_DAYS`] days ago or more.
    Moved,
    /// No fresh file from the portal for [`REFRESH_OVERDUE_DAYS`] days past `refresh_by`.
    RefreshOverdue,
}

/// What may run. Ingest (sensors, CDR storage) always runs: a lock never loses data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Features {
    /// The full GUI. When false only login, About/License and Settings > License work.
    pub gui: bool,
    /// Alerts are sent (when false they are logged as suppressed by the lock).
    pub alerts: bool,
    pub reports: bool,
    pub csv_export: bool,
    pub data_api: bool,
    pub ingest: bool,
}

impl Features {
    fn for_state(state: State) -> Features {
        let open = state != State::Locked;
        Features {
            gui: open,
            alerts: open,
            reports: open,
            csv_export: open,
            data_api: open,
            ingest: true,
        }
    }
}

/// How the effective limit was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LimitBreakdown {
    /// The license's limit (or the evaluation allowance).
    pub licensed: u32,
    /// A temporary increase in force today, if any.
    pub temporary_increase: Option<u32>,
    /// The operator-configured lower limit, if set.
    pub operator_limit: Option<u32>,
    pub effective: u32,
}

/// Key limit, raised by an increase grant in force today, lowered by the operator setting.
pub fn effective_limit(
    terms: Option<&LicenseTerms>,
    today: Date,
    operator: Option<u32>,
) -> LimitBreakdown {
    let licensed = terms.map_or(EVALUATION_CHANNELS, |t| t.channels);
    let temporary_increase = terms.and_then(|t| {
        t.grants
            .iter()
            .filter(|g| g.active_on(today))
            .filter_map(|g| match *g {
                Grant::Increase { channels, .. } => Some(channels),
                Grant::Concurrent { .. } => None,
            })
            .max()
    });
    let raised = temporary_increase.map_or(licensed, |t| t.max(licensed));
    let effective = operator.map_or(raised, |o| o.min(raised));
    LimitBreakdown {
        licensed,
        temporary_increase,
        operator_limit: operator,
        effective,
    }
}

/// A verification failure as the status reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusError {
    pub code: &'static str,
    pub message: String,
}

impl From<&VerifyError> for StatusError {
    fn from(e: &VerifyError) -> StatusError {
        StatusError {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// The license status: everything a page footer, the About/License page, the lock
/// middleware, the alerter and `sipmeter license status` need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub state: State,
    pub mode: Mode,
    pub lock_reason: Option<LockReason>,
    pub features: Features,
    pub today: Date,
    pub limit: LimitBreakdown,
    pub timeline: Timeline,
    pub hwid: ResolvedHwid,
    /// Accepted license terms (also when expired); `None` in evaluation or invalid mode.
    pub license: Option<LicenseTerms>,
    pub key_id: Option<String>,
    pub dates: Option<DateStatus>,
    /// Grants in force today.
    pub active_grants: Vec<Grant>,
    /// Systems allowed to run this license at once today (1 without a concurrent grant).
    pub concurrent_systems: u32,
    pub warnings: Vec<String>,
    pub errors: Vec<StatusError>,
    /// A moved license or a missed refresh: when the lock comes (or came) and why.
    pub pending_lock: Option<PendingLock>,
    /// The high-water mark to persist: the latest time seen, including now.
    pub high_water: Micros,
}

/// Combines verification, dates and the over-limit timeline.
pub fn status(input: &StatusInput<'_>) -> Status {
    let today = day_of(input.now, input.time_zone);
    let high_water = input.high_water.map_or(input.now, |h| h.max(input.now));
    let mut warnings = Vec::new();
    let mut errors = Vec::new();

    let ctx = VerifyContext {
        keyring: input.keyring,
        hwid: input.hwid.hwid,
        domain: input.domain,
        now: input.now,
        high_water: input.high_water,
        time_zone: input.time_zone,
    };
    let (mode, verified) = match input.license {
        None => {
            warnings.push(format!(
                "no license installed: evaluation mode, up to {EVALUATION_CHANNELS} channels"
            ));
            (Mode::Evaluation, None)
        }
        Some(f) => match check(f.text, f.name, &ctx) {
            Ok(v) => (Mode::Licensed, Some(v)),
            Err(e) => {
                errors.push(StatusError::from(&e));
                (Mode::Invalid, None)
            }
        },
    };
    let terms = verified.as_ref().map(|v| &v.terms);

    let dates = terms.map(|t| date_status(t, today));
    let expired = dates
        .as_ref()
        .is_some_and(|d| d.phase == DatePhase::Expired);
    if let (Some(d), Some(f), Some(t)) = (&dates, input.license, terms) {
        if expired {
            errors.push(StatusError::from(&VerifyError::Expired {
                file: f.name.to_string(),
                access_end: t.access_end().to_string(),
            }));
        } else if let Some(w) = &d.warning {
            warnings.push(w.clone());
        }
    }
    let pending_lock = terms.and_then(|t| pending_lock(t, input));
    if let Some(p) = pending_lock.as_ref().filter(|p| input.now < p.lock_at) {
        warnings.push(p.text.clone());
    }
    if let Some(t) = terms
        && input.hwid.source == crate::hwid::HwidSource::Override
        && matches!(t.binding, Binding::Hwid(_))
    {
        warnings.push(format!(
            "the hardware id {} is an operator override, not this machine's own",
            input.hwid.hwid
        ));
    }

    let limit = effective_limit(terms, today, input.operator_limit);
    let entitlement = limit
        .temporary_increase
        .map_or(limit.licensed, |t| t.max(limit.licensed));
    if let Some(op) = input.operator_limit
        && op < entitlement
    {
        warnings.push(format!(
            "the configured channel_limit {op} is below the entitlement of {entitlement}; raising it (up to {entitlement}) raises the limit"
        ));
    }
    let timeline = over_limit_timeline(input.daily_peaks, limit.effective, today);
    if timeline.state != OverLimit::Ok {
        warnings.push(timeline.reason.clone());
    }

    let mut state = match timeline.state {
        OverLimit::Ok => State::Ok,
        OverLimit::Grace => State::Grace,
        OverLimit::Lockdown => State::Lockdown,
        OverLimit::Locked => State::Locked,
    };
    let lock_reason = if mode == Mode::Invalid {
        state = State::Locked;
        Some(LockReason::Invalid {
            code: errors.first().map_or("malformed", |e| e.code).to_string(),
        })
    } else if expired {
        state = State::Locked;
        Some(LockReason::Expired)
    } else if state == State::Locked {
        Some(LockReason::OverLimit)
    } else if let Some(p) = pending_lock.as_ref().filter(|p| input.now >= p.lock_at) {
        state = State::Locked;
        Some(p.reason.clone())
    } else {
        None
    };

    let active_grants: Vec<Grant> = terms
        .map(|t| {
            t.grants
                .iter()
                .filter(|g| g.active_on(today))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let concurrent_systems = active_grants
        .iter()
        .filter_map(|g| match *g {
            Grant::Concurrent { systems, .. } => Some(systems),
            Grant::Increase { .. } => None,
        })
        .max()
        .unwrap_or(1);

    Status {
        state,
        mode,
        lock_reason,
        features: Features::for_state(state),
        today,
        limit,
        timeline,
        hwid: input.hwid,
        key_id: verified.as_ref().map(|v| v.key_id.to_string()),
        license: verified.map(|v| v.terms),
        dates,
        active_grants,
        concurrent_systems,
        warnings,
        errors,
        pending_lock,
        high_water,
    }
}

/// The earliest of a moved-license lock and a missed-refresh lock, if either applies.
fn pending_lock(t: &LicenseTerms, input: &StatusInput<'_>) -> Option<PendingLock> {
    let stamp = |us: Micros| crate::timestamp(us).map_or_else(|| us.to_string(), |t| t.to_string());
    let moved = input
        .superseded
        .filter(|s| s.license_id == t.license_id)
        .map(|s| {
            let lock_at = s.since.saturating_add(MOVED_LICENSE_DAYS * DAY_US);
            (LockReason::Moved, lock_at, format!(
                "license {} was moved to another system (the portal said so at {}): this server locks at {} unless the license is moved back here (Get/Update License) or another license is installed",
                t.license_id,
                stamp(s.since),
                stamp(lock_at)
            ))
        });
    let overdue = t
        .refresh_by
        .filter(|r| r.as_microsecond() < input.now)
        .map(|r| {
            let lock_at = r
                .as_microsecond()
                .saturating_add(REFRESH_OVERDUE_DAYS * DAY_US);
            (LockReason::RefreshOverdue, lock_at, format!(
                "the license should have been refreshed from the portal by {r}: this server locks at {} unless Get/Update License succeeds (check the portal URL and that the portal is reachable) or a license file is installed",
                stamp(lock_at)
            ))
        });
    let (reason, lock_at, text) = match (moved, overdue) {
        (Some(m), Some(o)) => {
            if o.1 < m.1 {
                o
            } else {
                m
            }
        }
        (m, o) => m.or(o)?,
    };
    let left = lock_at.saturating_sub(input.now).max(0);
    Some(PendingLock {
        reason,
        lock_at,
        days_left: (left + DAY_US - 1) / DAY_US,
        text,
    })
}

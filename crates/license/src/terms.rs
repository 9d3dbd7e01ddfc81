//! The signed content of a license: who, how many channels, until when, bound to what, with
//! which time-boxed grants.

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::hwid::Hwid;

/// Longest license id / customer name accepted; real ones are far shorter, and a bound keeps
/// status pages and logs sane.
const MAX_TEXT: usize = 256;
/// At most this many grants in one file.
const MAX_GRANTS: usize = 64;

/// The license payload. Field order is the canonical JSON order: the signed bytes must be
/// exactly `serde_json::to_vec` of the parsed value, so there is one spelling per content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LicenseTerms {
    pub license_id: String,
    pub customer: String,
    /// The licensed channel limit.
    pub channels: u32,
    pub issued_at: Timestamp,
    /// Last day of the paid period, in the license time zone.
    pub formal_end: Date,
    /// Last day of the renewal grace period: `formal_end` + 20 days, or `formal_end` itself
    /// for cancelled subscriptions, trials and emergency trials.
    pub grace_end: Date,
    /// Cancelled: access ends at `formal_end`, the grace period does not extend it.
    pub cancelled: bool,
    pub trial: bool,
    pub emergency: bool,
    pub binding: Binding,
    pub grants: Vec<Grant>,
    /// The server should fetch a fresh file from the portal by then (renewals, revocations,
    /// a move to another system); a server that has not by [`crate::REFRESH_OVERDUE_DAYS`]
    /// days later locks. Files issued for offline installation have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_by: Option<Timestamp>,
}

/// What the license is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Binding {
    Hwid(Hwid),
    /// A domain name (lowercase, no trailing dot), for cloud instances whose hardware id
    /// changes with every re-creation.
    Domain(String),
}

impl std::fmt::Display for Binding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Binding::Hwid(h) => write!(f, "hwid {h}"),
            Binding::Domain(d) => write!(f, "domain {d}"),
        }
    }
}

/// A signed, time-boxed support grant. Days are inclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Grant {
    /// The channel limit is `channels` (not `+channels`) from `start` to `end`: support says
    /// "you have 200 until Friday", and overlapping grants then simply take the highest.
    Increase {
        channels: u32,
        start: Date,
        end: Date,
    },
    /// Up to `systems` servers may use this license at once until `until` (migrations); the
    /// portal's concurrent-use flag reads it.
    Concurrent { systems: u32, until: Date },
}

impl Grant {
    /// Is the grant in force on `today`?
    pub fn active_on(&self, today: Date) -> bool {
        match *self {
            Grant::Increase { start, end, .. } => start <= today && today <= end,
            Grant::Concurrent { until, .. } => today <= until,
        }
    }
}

/// Lowercases a domain and drops one trailing dot; `None` if it is not a plausible host
/// name (letters, digits, `-`, dots between non-empty labels, at most 253 characters).
pub fn normalize_domain(raw: &str) -> Option<String> {
    let d = raw.trim().to_ascii_lowercase();
    let d = d.strip_suffix('.').unwrap_or(&d).to_string();
    let ok = !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    ok.then_some(d)
}

impl LicenseTerms {
    /// Every rule a signed payload must obey beyond its JSON shape; the issuer refuses to
    /// sign terms that break one, and the verifier treats such a file as malformed.
    pub fn check(&self) -> Result<(), String> {
        if self.license_id.trim().is_empty() || self.license_id.len() > MAX_TEXT {
            return Err("license_id must be 1 to 256 characters".into());
        }
        if self.customer.len() > MAX_TEXT {
            return Err("customer is longer than 256 characters".into());
        }
        if self
            .license_id
            .chars()
            .chain(self.customer.chars())
            .any(char::is_control)
        {
            return Err("license_id and customer must not contain control characters".into());
        }
        if self.channels == 0 {
            return Err("channels must be at least 1".into());
        }
        if self.grace_end < self.formal_end {
            return Err("grace_end is before formal_end".into());
        }
        if (self.cancelled || self.trial || self.emergency) && self.grace_end != self.formal_end {
            return Err(
                "a cancelled subscription or a trial has no grace period: grace_end must equal formal_end"
                    .into(),
            );
        }
        if self.refresh_by.is_some_and(|r| r < self.issued_at) {
            return Err("refresh_by is before issued_at".into());
        }
        if let Binding::Domain(d) = &self.binding
            && normalize_domain(d).as_deref() != Some(d.as_str())
        {
            return Err(format!(
                "binding domain {d:?} is not a normalized domain name"
            ));
        }
        if self.grants.len() > MAX_GRANTS {
            return Err(format!("more than {MAX_GRANTS} grants"));
        }
        for g in &self.grants {
            match *g {
                Grant::Increase {
                    channels,
                    start,
                    end,
                } => {
                    if channels == 0 || start > end {
                        return Err("an increase grant needs channels >= 1 and start <= end".into());
                    }
                }
                Grant::Concurrent { systems, .. } => {
                    if systems < 2 {
                        return Err("a concurrent-use grant needs systems >= 2".into());
                    }
                }
            }
        }
        Ok(())
    }

    /// The canonical payload bytes (what is signed).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        // Serializing plain structs, strings, numbers and jiff values cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// The last day of access: the grace end, except that cancelled subscriptions and trials
    /// end at the formal end whatever the file says about grace.
    pub fn access_end(&self) -> Date {
        if self.cancelled || self.trial || self.emergency {
            self.formal_end
        } else {
            self.grace_end
        }
    }
}

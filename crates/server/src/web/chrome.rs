//! What every page shows around its content: navigation, the user, the license banners and
//! the footer (Active channels N / License limit M, license state).

use license::{DatePhase, LockReason, Mode, State, Status};

pub use crate::license::state_name;

use crate::auth::AuthUser;
use crate::state::AppState;

/// An instant as operators read it (the license zone, milliseconds) with the exact RFC 3339
/// value kept for the `title`/`datetime` attributes: tables stay readable, nothing is lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    pub local: String,
    pub rfc3339: String,
}

impl When {
    pub fn new(t: i64, tz: &jiff::tz::TimeZone) -> When {
        When {
            local: local_time(t, tz, "%Y-%m-%d %H:%M:%S%.3f"),
            rfc3339: calls::time::format_rfc3339(t),
        }
    }

    /// To the minute, for window starts (the seconds are always zero there).
    pub fn minute(t: i64, tz: &jiff::tz::TimeZone) -> When {
        When {
            local: local_time(t, tz, "%Y-%m-%d %H:%M"),
            rfc3339: calls::time::format_rfc3339(t),
        }
    }
}

impl std::fmt::Display for When {
    /// The `<time>` element; both strings are digits and punctuation, nothing to escape.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "<time datetime=\"{r}\" title=\"{r}\">{l}</time>",
            r = self.rfc3339,
            l = self.local
        )
    }
}

fn local_time(t: i64, tz: &jiff::tz::TimeZone, fmt: &str) -> String {
    jiff::Timestamp::from_microsecond(t)
        .map(|ts| ts.to_zoned(tz.clone()).strftime(fmt).to_string())
        .unwrap_or_else(|_| calls::time::format_rfc3339(t))
}

#[derive(Debug, Clone)]
pub struct Banner {
    pub class: &'static str,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Chrome {
    pub user: Option<String>,
    pub role: &'static str,
    pub csrf: String,
    pub nav: &'static str,
    pub active_channels: u32,
    pub limit: u32,
    pub state: &'static str,
    pub state_text: String,
    pub banners: Vec<Banner>,
    /// [`crate::DEVELOPMENT_BUILD_NOTICE`] in a `dev-keys` build.
    pub development_build: Option<&'static str>,
}

/// One line for the footer and the About page.
pub fn state_text(st: &Status) -> String {
    let mode = match st.mode {
        Mode::Licensed => "",
        Mode::Evaluation => " (evaluation mode, no license installed)",
        Mode::Invalid => " (license file not accepted)",
    };
    let s = match st.state {
        State::Ok => "OK".to_string(),
        State::Grace => format!(
            "grace: over the limit {}",
            days(i64::from(st.timeline.days_over))
        ),
        State::Lockdown => format!(
            "lockdown: locks in {}",
            days(st.timeline.days_until_lock.unwrap_or(0).max(0))
        ),
        State::Locked => format!("LOCKED: {}", lock_reason_text(st)),
    };
    format!("{s}{mode}")
}

fn days(n: i64) -> String {
    if n == 1 {
        "1 day".to_string()
    } else {
        format!("{n} days")
    }
}

/// The footer's license state: as [`state_text`], but a lock is named by its kind only; the
/// reason itself is said once, by the banner or the lock page.
pub fn footer_state_text(st: &Status) -> String {
    if st.state != State::Locked {
        return state_text(st);
    }
    let kind = match &st.lock_reason {
        Some(LockReason::OverLimit) => "channel peaks over the limit",
        Some(LockReason::Expired) => "the license has expired",
        Some(LockReason::Moved) => "the license was moved to another system",
        Some(LockReason::RefreshOverdue) => "the license was not refreshed from the portal",
        Some(LockReason::Invalid { .. }) | None => "the license is not valid",
    };
    format!("LOCKED ({kind})")
}

/// Why the GUI is locked, in words, or the empty string.
pub fn lock_reason_text(st: &Status) -> String {
    match &st.lock_reason {
        None => String::new(),
        Some(LockReason::OverLimit) => st.timeline.reason.clone(),
        Some(LockReason::Moved) | Some(LockReason::RefreshOverdue) => st
            .pending_lock
            .as_ref()
            .map(|p| p.text.clone())
            .unwrap_or_default(),
        Some(LockReason::Expired) | Some(LockReason::Invalid { .. }) => st
            .errors
            .first()
            .map(|e| e.message.clone())
            .unwrap_or_else(|| "the license is not valid".into()),
    }
}

/// The license banners of SPEC §3: grace, lockdown countdown, renewal pending, expiry
/// warning, concurrent use, evaluation mode, errors.
pub fn banners(st: &Status) -> Vec<Banner> {
    let mut out = Vec::new();
    match st.state {
        State::Lockdown => {
            let left = days(st.timeline.days_until_lock.unwrap_or(0).max(0));
            let when = st
                .timeline
                .lock_date
                .map(|d| format!(", on {d},"))
                .unwrap_or_default();
            let offending = &st.timeline.offending_days;
            let since = offending
                .first()
                .map(|d| format!(" since {}", d.date))
                .unwrap_or_default();
            let highest = offending.iter().map(|d| d.peak).max().unwrap_or(0);
            out.push(Banner {
                class: "error",
                text: format!(
                    "License lockdown: the GUI locks in {left}{when} unless a day stays within the limit of {}. Over the limit {}{since}, highest peak {highest}; About/License lists the days.",
                    st.timeline.limit,
                    days(offending.len() as i64),
                ),
            });
        }
        State::Grace => out.push(Banner {
            class: "warn",
            text: format!("License grace period: {}", st.timeline.reason),
        }),
        State::Locked => out.push(Banner {
            class: "error",
            text: format!("The GUI is locked: {}", lock_reason_text(st)),
        }),
        State::Ok => {}
    }
    if let Some(p) = st
        .pending_lock
        .as_ref()
        .filter(|_| st.state != State::Locked)
    {
        out.push(Banner {
            class: "error",
            text: format!("License lock in {}: {}", days(p.days_left), p.text),
        });
    }
    if let Some(d) = &st.dates {
        match d.phase {
            DatePhase::RenewalPending | DatePhase::ExpiringSoon => {
                if let Some(w) = &d.warning {
                    out.push(Banner {
                        class: "warn",
                        text: w.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    if st.concurrent_systems > 1 {
        out.push(Banner {
            class: "info",
            text: format!(
                "This license may run on {} systems at once for now (concurrent use granted).",
                st.concurrent_systems
            ),
        });
    }
    if st.mode == Mode::Evaluation {
        out.push(Banner {
            class: "info",
            text: format!(
                "Evaluation mode: no license is installed; up to {} channels.",
                st.limit.effective
            ),
        });
    }
    if st.state != State::Locked {
        for e in &st.errors {
            out.push(Banner {
                class: "error",
                text: e.message.clone(),
            });
        }
    }
    out
}

impl Chrome {
    pub fn new(app: &AppState, st: &Status, user: Option<&AuthUser>, nav: &'static str) -> Chrome {
        let live = app.live();
        Chrome {
            user: user.map(|u| u.name.clone()),
            role: user.map_or("", |u| u.role.as_str()),
            csrf: user.and_then(|u| u.csrf.clone()).unwrap_or_default(),
            nav,
            active_channels: live.channels,
            limit: st.limit.effective,
            state: state_name(st.state),
            state_text: footer_state_text(st),
            banners: if user.is_some() {
                let mut b = banners(st);
                // The portal's last check-in verdict (concurrent use), not part of `Status`.
                b.extend(app.portal.banner(app.now()).map(|text| Banner {
                    class: "error",
                    text,
                }));
                b
            } else {
                Vec::new()
            },
            development_build: license::DEVELOPMENT_BUILD
                .then_some(crate::DEVELOPMENT_BUILD_NOTICE),
        }
    }
}

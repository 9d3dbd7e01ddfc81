//! The alert engine: every enabled rule evaluated on the server's clock, edge-triggered, and
//! what is due handed to [`super::delivery`] (or logged as suppressed while locked).

use calls::Micros;
use calls::time::format_rfc3339;
use license::{DatePhase, State as LicenseState, Status};
use store::{AlertKind, AlertOutcome, AlertRule, AlertRuleState};

use super::delivery::{post_webhook, send_email};
use crate::error::{ServerError, chain};
use crate::license::state_name;
use crate::state::AppState;

const MINUTE: Micros = 60_000_000;
const DAY: Micros = 86_400_000_000;

/// The background task: evaluates every `interval` until aborted.
pub async fn run(app: AppState) {
    let mut tick = tokio::time::interval(app.alerts.config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = evaluate_once(&app).await {
            tracing::error!("alerts: {}", chain(&e));
        }
    }
}

/// What one rule sees now.
struct Observation {
    /// The condition holds (channels/failed ratio above the threshold; license not plainly
    /// ok).
    firing: bool,
    /// Kind-specific memory to keep (the license situation).
    value: Option<String>,
    message: String,
    details: serde_json::Value,
}

/// Why a rule speaks now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Event {
    Fired,
    StillFiring,
    Changed,
    /// The condition stopped holding (sensor rules say so: a sensor back to health is news).
    Recovered,
}

impl Event {
    fn as_str(self) -> &'static str {
        match self {
            Event::Fired => "fired",
            Event::StillFiring => "still_firing",
            Event::Changed => "changed",
            Event::Recovered => "recovered",
        }
    }
}

/// Evaluates every enabled rule once, on the server's clock, and delivers (or logs as
/// suppressed) what is due. Returns the number of log entries written. Callable from tests.
pub async fn evaluate_once(app: &AppState) -> Result<usize, ServerError> {
    let _one = app.alerts.running.lock().await;
    let now = app.now();
    let status = app.status().await?;
    let rules = app.store.alert_rules().await?;
    let mut written = 0;
    for rule in rules.iter().filter(|r| r.spec.enabled) {
        match evaluate_rule(app, rule, &status, now).await {
            Ok(n) => written += n,
            Err(e) => tracing::error!("alert rule {:?}: {}", rule.spec.name, chain(&e)),
        }
    }
    Ok(written)
}

fn window_of(rule: &AlertRule) -> Micros {
    i64::from(rule.spec.window_minutes.max(1)) * MINUTE
}

async fn observe(
    app: &AppState,
    rule: &AlertRule,
    status: &Status,
    now: Micros,
) -> Result<Observation, ServerError> {
    let pct = rule.spec.threshold_percent;
    Ok(match rule.spec.kind {
        AlertKind::Channels => {
            let w = window_of(rule);
            let from = (now - w).div_euclid(MINUTE) * MINUTE;
            let rows = app.store.channel_minutes(from, now + 1).await?;
            let mut peak = rows.iter().map(|r| r.peak).max().unwrap_or(0);
            let live = app.live();
            if live.at.is_some_and(|t| t >= now - w && t <= now) {
                peak = peak.max(live.channels);
            }
            let limit = status.limit.effective;
            let threshold = f64::from(limit) * pct / 100.0;
            Observation {
                firing: limit > 0 && f64::from(peak) > threshold,
                value: None,
                message: format!(
                    "Channels: peak {peak} in the last {} min is above {pct} % of the license limit {limit}",
                    rule.spec.window_minutes.max(1)
                ),
                details: serde_json::json!({
                    "peak_channels": peak,
                    "limit": limit,
                    "threshold_percent": pct,
                    "window_minutes": rule.spec.window_minutes.max(1),
                }),
            }
        }
        AlertKind::FailedRatio => {
            let w = window_of(rule);
            let out = app
                .store
                .leg_outcomes(&[channels::Window {
                    start: now - w,
                    end: now,
                }])
                .await?;
            let (mut calls, mut answered, mut cancelled) = (0u64, 0u64, 0u64);
            for g in out.iter().flat_map(|d| d.groups.iter()) {
                calls += g.legs;
                if g.answered {
                    answered += g.legs;
                } else if g.end_reason == calls::EndReason::Cancel {
                    cancelled += g.legs;
                }
            }
            // A call the caller cancelled did not fail: counting it would page the operator
            // for callers who hang up while it rings.
            let failed = calls - answered - cancelled;
            let ratio = if calls == 0 {
                0.0
            } else {
                failed as f64 * 100.0 / calls as f64
            };
            Observation {
                firing: calls > 0 && calls >= u64::from(rule.spec.min_calls) && ratio > pct,
                value: None,
                message: format!(
                    "Failed calls: {failed} of {calls} ({ratio:.1} %) in the last {} min, above {pct} %",
                    rule.spec.window_minutes.max(1)
                ),
                details: serde_json::json!({
                    "calls": calls,
                    "failed": failed,
                    "cancelled": cancelled,
                    "answered": answered,
                    "failed_percent": ratio,
                    "threshold_percent": pct,
                    "window_minutes": rule.spec.window_minutes.max(1),
                    "min_calls": rule.spec.min_calls,
                }),
            }
        }
        AlertKind::License => {
            let situation = license_situation(status);
            let was = rule.last_value.as_deref().unwrap_or("unknown");
            Observation {
                firing: situation != "ok",
                message: format!(
                    "License: {situation} (was {was}); {}",
                    crate::web::chrome::state_text(status)
                ),
                details: serde_json::json!({
                    "situation": situation,
                    "previous": rule.last_value,
                    "days_over": status.timeline.days_over,
                    "days_until_lock": status.timeline.days_until_lock,
                    "warnings": status.warnings,
                }),
                value: Some(situation),
            }
        }
        AlertKind::Sensor => sensor_observation(app, rule, now).await?,
    })
}

/// The remote sensors in trouble now: spool full, more than `min_calls` batches waiting
/// (when above 0), or not heard from for `window_minutes`. A sensor never heard from is not
/// silent but not yet deployed, and a revoked one is gone on purpose; neither alerts.
/// `value` is the sorted list of names with their problem, so a change in who is in trouble
/// is news and a recovery is seen.
async fn sensor_observation(
    app: &AppState,
    rule: &AlertRule,
    now: Micros,
) -> Result<Observation, ServerError> {
    let silent_after = window_of(rule);
    let backlog = u64::from(rule.spec.min_calls);
    let mut problems = Vec::new();
    let mut details = Vec::new();
    for s in app.store.list_sensors().await? {
        let (None, Some(seen)) = (s.revoked, s.last_seen) else {
            continue;
        };
        let mut why = Vec::new();
        if s.spool_full {
            why.push("spool full".to_string());
        } else if backlog > 0 && s.spool_batches > backlog {
            why.push(format!("{} batches waiting", s.spool_batches));
        }
        let silent_min = (now - seen) / MINUTE;
        if now - seen >= silent_after {
            why.push(format!("silent for {silent_min} min"));
        }
        if why.is_empty() {
            continue;
        }
        problems.push(format!("{} ({})", s.name, why.join(", ")));
        details.push(serde_json::json!({
            "sensor": s.name,
            "problems": why,
            "spool_full": s.spool_full,
            "spool_batches": s.spool_batches,
            "spool_bytes": s.spool_bytes,
            "last_seen": format_rfc3339(seen),
        }));
    }
    problems.sort();
    let firing = !problems.is_empty();
    let message = if firing {
        format!("Sensors: {}", problems.join("; "))
    } else {
        match rule.last_value.as_deref().filter(|v| !v.is_empty()) {
            Some(was) => format!("Sensors: all recovered (was {was})"),
            None => "Sensors: all healthy".into(),
        }
    };
    Ok(Observation {
        firing,
        value: Some(problems.join("; ")),
        message,
        details: serde_json::json!({
            "sensors": details,
            "silent_after_minutes": rule.spec.window_minutes.max(1),
            "backlog_batches": backlog,
        }),
    })
}

/// The license state with its date phase, as one comparable word: `ok`, `grace`,
/// `lockdown`, `locked`, each followed by `, expiring soon` / `, renewal pending` /
/// `, expired` when the dates say so.
fn license_situation(st: &Status) -> String {
    let phase = match st.dates.as_ref().map(|d| d.phase) {
        Some(DatePhase::ExpiringSoon) => ", expiring soon",
        Some(DatePhase::RenewalPending) => ", renewal pending",
        Some(DatePhase::Expired) => ", expired",
        _ => "",
    };
    format!("{}{phase}", state_name(st.state))
}

async fn evaluate_rule(
    app: &AppState,
    rule: &AlertRule,
    status: &Status,
    now: Micros,
) -> Result<usize, ServerError> {
    let obs = observe(app, rule, status, now).await?;
    let renotify = i64::from(rule.spec.renotify_minutes) * MINUTE;
    let due_again = |every: Micros| every > 0 && rule.last_sent.is_none_or(|t| now - t >= every);
    let event = match rule.spec.kind {
        AlertKind::License => match (&rule.last_value, &obs.value) {
            (Some(old), Some(new)) if old != new => Some(Event::Changed),
            // Lockdown is alerted at least daily (SPEC §3), from the first look on.
            _ if status.state == LicenseState::Lockdown => {
                let every = if renotify > 0 { renotify.min(DAY) } else { DAY };
                due_again(every).then_some(Event::StillFiring)
            }
            // First look: remember the situation; a change is measured from here.
            (None, _) => None,
            _ if obs.firing => due_again(renotify).then_some(Event::StillFiring),
            _ => None,
        },
        AlertKind::Sensor => match (obs.firing, rule.firing) {
            (true, false) => Some(Event::Fired),
            (true, true) if rule.last_value != obs.value => Some(Event::Changed),
            (true, true) => due_again(renotify).then_some(Event::StillFiring),
            (false, true) => Some(Event::Recovered),
            (false, false) => None,
        },
        _ => match (obs.firing, rule.firing) {
            (true, false) => Some(Event::Fired),
            (true, true) => due_again(renotify).then_some(Event::StillFiring),
            (false, _) => None,
        },
    };
    let mut written = 0;
    let mut last_sent = rule.last_sent;
    if let Some(event) = event {
        written = deliver(app, rule, status, now, event, &obs).await;
        last_sent = Some(now);
    }
    app.store
        .set_alert_rule_state(
            rule.id,
            &AlertRuleState {
                firing: obs.firing,
                last_sent,
                last_value: obs.value.clone().or_else(|| rule.last_value.clone()),
            },
        )
        .await?;
    Ok(written)
}

/// Sends to every channel of the rule (or logs why not); log entries written.
async fn deliver(
    app: &AppState,
    rule: &AlertRule,
    status: &Status,
    now: Micros,
    event: Event,
    obs: &Observation,
) -> usize {
    let doc = serde_json::json!({
        "source": "sipmeter",
        "rule": { "id": rule.id, "name": rule.spec.name, "kind": rule.spec.kind.as_str() },
        "event": event.as_str(),
        "at": format_rfc3339(now),
        "message": obs.message,
        "details": obs.details,
        "license": {
            "state": state_name(status.state),
            "limit": status.limit.effective,
            "text": crate::web::chrome::state_text(status),
        },
    });
    let mut channels: Vec<(&str, &str)> = Vec::new();
    if let Some(u) = rule.spec.webhook_url.as_deref().filter(|u| !u.is_empty()) {
        channels.push(("webhook", u));
    }
    if let Some(a) = rule.spec.email.as_deref().filter(|a| !a.is_empty()) {
        channels.push(("email", a));
    }
    let mut written = 0;
    let log = |channel: &str, outcome: AlertOutcome, detail: Option<String>| {
        let (name, what) = (rule.spec.name.clone(), obs.message.clone());
        let channel = channel.to_string();
        async move {
            if let Err(e) = app
                .store
                .log_alert(
                    now,
                    Some(rule.id),
                    &name,
                    &channel,
                    &what,
                    outcome,
                    detail.as_deref(),
                )
                .await
            {
                tracing::error!("alert log: {}", chain(&e));
                return 0;
            }
            1
        }
    };
    if channels.is_empty() {
        return log(
            "-",
            AlertOutcome::Failed,
            Some("the rule has no webhook or e-mail address".into()),
        )
        .await;
    }
    for (channel, target) in channels {
        let result = if !status.features.alerts {
            written += log(
                channel,
                AlertOutcome::Suppressed,
                Some("license locked".into()),
            )
            .await;
            continue;
        } else if channel == "webhook" {
            post_webhook(&app.alerts, target, &doc).await
        } else {
            let subject = format!("[sipmeter] {}: {}", rule.spec.name, obs.message);
            let body = format!(
                "{}\r\n\r\nRule: {} ({})\r\nEvent: {}\r\nAt: {}\r\nLicense: {}\r\n\r\n{}\r\n",
                obs.message,
                rule.spec.name,
                rule.spec.kind.as_str(),
                event.as_str(),
                format_rfc3339(now),
                crate::web::chrome::state_text(status),
                serde_json::to_string_pretty(&doc).unwrap_or_default(),
            );
            send_email(&app.alerts, target, &subject, &body, now).await
        };
        written += match result {
            Ok(()) => log(channel, AlertOutcome::Delivered, None).await,
            Err(e) => log(channel, AlertOutcome::Failed, Some(e)).await,
        };
    }
    written
}

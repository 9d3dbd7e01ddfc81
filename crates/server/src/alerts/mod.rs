//! Alerts: the engine that evaluates the rules of the store on the server's clock and
//! delivers them (webhook = HTTP POST of JSON over http or https, e-mail = SMTP to a relay,
//! upgraded with STARTTLS when the relay offers it), and the Alerts page (rules with their forms, the log of what was sent and what was suppressed).
//!
//! Rules are edge-triggered: a rule alerts when its condition starts to hold, again after its
//! re-notify interval while it keeps holding, and not at all while it stays quiet, so a busy
//! afternoon is one message instead of one a minute. A license rule alerts when the license
//! situation (state and date phase) changes, and at least daily during lockdown (SPEC §3:
//! admins are alerted daily). When the license is locked nothing is sent, and every would-be
//! delivery is logged as "suppressed: license locked" (SPEC §3). A delivery that fails is
//! logged with its error; nothing here may end the task, so every error becomes a log line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use calls::Micros;
use calls::time::format_rfc3339;
use license::{DatePhase, State as LicenseState, Status};
use serde::Deserialize;
use store::{AlertKind, AlertOutcome, AlertRule, AlertRuleSpec, AlertRuleState, Role};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;

use crate::chrome::{Chrome, state_name};
use crate::error::ServerError;
use crate::gate::{Ctx, error};
use crate::pages::render;
use crate::state::AppState;

const MINUTE: Micros = 60_000_000;
const DAY: Micros = 86_400_000_000;

/// How alerts are delivered and how often rules are evaluated.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// The SMTP relay `HOST:PORT` e-mail alerts go to; without one they fail with a clear
    /// error in the log rather than vanish.
    pub smtp_relay: Option<String>,
    /// The envelope and header sender of e-mail alerts.
    pub smtp_from: String,
    /// How often the background task evaluates the rules (real time; the rules themselves
    /// look at the server's clock).
    pub interval: Duration,
    /// Bound on one delivery (connect + send), so a dead receiver cannot stall the others.
    pub timeout: Duration,
    /// PEM file of CAs trusted for https webhooks and SMTP STARTTLS besides the system's CA
    /// bundle (a company CA that signs internal receivers).
    pub ca_file: Option<PathBuf>,
}

impl Default for AlertsConfig {
    fn default() -> AlertsConfig {
        AlertsConfig {
            smtp_relay: None,
            smtp_from: "sipmeter@localhost".into(),
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            ca_file: None,
        }
    }
}

/// The engine's part of the server state.
pub struct Engine {
    pub config: AlertsConfig,
    http: reqwest::Client,
    /// The TLS client settings for https webhooks (already in `http`) and SMTP STARTTLS; the
    /// error (an unreadable CA file, no CA at all) is what every TLS delivery then reports.
    tls: Result<Arc<rustls::ClientConfig>, String>,
    /// One evaluation at a time: the background task and a direct call must not both see a
    /// rule as newly firing and send it twice.
    running: tokio::sync::Mutex<()>,
}

impl Engine {
    /// The engine; a CA problem does not stop the server (plain http webhooks and plain SMTP
    /// still work) but fails every TLS delivery with the reason, in the alert log.
    /// `sipmeter serve` checks [`trust_anchors`] first, so a bad CA file is refused at start.
    pub fn new(config: AlertsConfig) -> Engine {
        let roots = trust_anchors(config.ca_file.as_deref());
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sipmeter/", env!("CARGO_PKG_VERSION")));
        for der in roots.iter().flatten() {
            if let Ok(c) = reqwest::Certificate::from_der(der) {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder.build().unwrap_or_default();
        let tls = roots.and_then(|roots| {
            let mut store = rustls::RootCertStore::empty();
            store.add_parsable_certificates(roots);
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(store).with_no_client_auth()))
                .map_err(|e| format!("TLS setup: {e}"))
        });
        Engine {
            config,
            http,
            tls,
            running: tokio::sync::Mutex::new(()),
        }
    }
}

/// The CAs alert deliveries trust: the system's CA bundle (`SSL_CERT_FILE`, else the usual
/// locations) plus the certificates of `ca_file`. A `ca_file` that cannot be read or holds no
/// certificate is an error naming it; no CA at all is an error saying what to configure.
pub fn trust_anchors(ca_file: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = Vec::new();
    if let Some(bundle) = crate::portal_client::system_ca_bundle()
        && let Ok(pem) = std::fs::read(&bundle)
    {
        roots.extend(CertificateDer::pem_slice_iter(&pem).filter_map(Result::ok));
    }
    if let Some(file) = ca_file {
        let pem = std::fs::read(file)
            .map_err(|e| format!("cannot read the alerts CA file {}: {e}", file.display()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                format!(
                    "the alerts CA file {} is not PEM certificates: {e}",
                    file.display()
                )
            })?;
        if certs.is_empty() {
            return Err(format!(
                "the alerts CA file {} holds no certificate",
                file.display()
            ));
        }
        roots.extend(certs);
    }
    if roots.is_empty() {
        return Err(
            "no CA certificates for TLS: no system CA bundle found; set alerts_ca_file (--alerts-ca)"
                .into(),
        );
    }
    Ok(roots)
}

/// The background task: evaluates every `interval` until aborted.
pub async fn run(app: AppState) {
    let mut tick = tokio::time::interval(app.alerts.config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = evaluate_once(&app).await {
            eprintln!("sipmeter serve: alerts: {}", crate::sensor::chain(&e));
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
            Err(e) => eprintln!(
                "sipmeter serve: alert rule {:?}: {}",
                rule.spec.name,
                crate::sensor::chain(&e)
            ),
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
                    crate::chrome::state_text(status)
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
            "text": crate::chrome::state_text(status),
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
                eprintln!("sipmeter serve: alert log: {}", crate::sensor::chain(&e));
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
                crate::chrome::state_text(status),
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

async fn post_webhook(engine: &Engine, url: &str, doc: &serde_json::Value) -> Result<(), String> {
    if url.starts_with("https://")
        && let Err(e) = &engine.tls
    {
        return Err(e.clone());
    }
    let r = engine
        .http
        .post(url)
        .json(doc)
        .send()
        .await
        .map_err(|e| crate::sensor::chain(&e))?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!("the webhook answered HTTP {}", r.status()))
    }
}

/// Longest SMTP reply line read; a relay sending more is broken or hostile.
const MAX_SMTP_LINE: u64 = 4096;

/// Reads one SMTP reply (continuation lines `250-...` up to the last `250 ...`); its code
/// and text, lines joined by spaces.
async fn smtp_reply<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> Result<(u16, String), String> {
    let (code, lines) = smtp_reply_lines(r).await?;
    Ok((code, lines.join(" ")))
}

/// One SMTP reply: its code and the text of each line.
async fn smtp_reply_lines<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
) -> Result<(u16, Vec<String>), String> {
    let mut lines = Vec::new();
    for _ in 0..100 {
        let mut line = String::new();
        let n = (&mut *r)
            .take(MAX_SMTP_LINE)
            .read_line(&mut line)
            .await
            .map_err(|e| format!("SMTP: {e}"))?;
        if n == 0 {
            return Err("SMTP: the relay closed the connection".into());
        }
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("SMTP: not a reply: {:?}", line.trim_end()))?;
        lines.push(line.get(4..).unwrap_or("").trim_end().to_string());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, lines));
        }
    }
    Err("SMTP: reply too long".into())
}

async fn smtp_step<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    command: &str,
    ok: &[u16],
) -> Result<(), String> {
    s.get_mut()
        .write_all(command.as_bytes())
        .await
        .map_err(|e| format!("SMTP: {e}"))?;
    let (code, text) = smtp_reply(s).await?;
    if ok.contains(&code) {
        Ok(())
    } else {
        Err(format!(
            "SMTP relay refused {}: {code} {text}",
            command.split_whitespace().next().unwrap_or("")
        ))
    }
}

/// SMTP (RFC 5321) to the configured relay, which delivers onwards. When the relay offers
/// STARTTLS (RFC 3207) the session is upgraded before the sender is named, with the same trust
/// as webhooks, and a failed upgrade fails the delivery instead of falling back to plain text;
/// a relay that does not offer it (a local one) is spoken to in plain text.
async fn send_email(
    engine: &Engine,
    to: &str,
    subject: &str,
    body: &str,
    now: Micros,
) -> Result<(), String> {
    let config = &engine.config;
    let relay = config
        .smtp_relay
        .as_deref()
        .ok_or("no SMTP relay configured (--smtp HOST:PORT)")?;
    let from = &config.smtp_from;
    let date = jiff::Timestamp::from_microsecond(now)
        .map(|t| t.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string())
        .unwrap_or_default();
    let subject: String = subject.chars().filter(|c| !c.is_control()).collect();
    let mut message = format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: {date}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    );
    for line in body.lines() {
        // Dot-stuffing: a line starting with "." would otherwise end the message early.
        if line.starts_with('.') {
            message.push('.');
        }
        message.push_str(line);
        message.push_str("\r\n");
    }
    message.push_str(".\r\n");
    let talk = async {
        let tcp = tokio::net::TcpStream::connect(relay)
            .await
            .map_err(|e| format!("cannot connect to the SMTP relay {relay}: {e}"))?;
        let mut s = BufReader::new(tcp);
        let (code, text) = smtp_reply(&mut s).await?;
        if code != 220 {
            return Err(format!("SMTP relay greeting: {code} {text}"));
        }
        let offers_tls = match ehlo(&mut s).await? {
            Some(extensions) => extensions
                .iter()
                .any(|l| l.split_whitespace().next() == Some("STARTTLS")),
            None => {
                smtp_step(&mut s, "HELO sipmeter\r\n", &[250]).await?;
                false
            }
        };
        if !offers_tls {
            return smtp_transaction(&mut s, from, to, &message).await;
        }
        let tls = engine.tls.clone()?;
        smtp_step(&mut s, "STARTTLS\r\n", &[220]).await?;
        // Anything the relay sent after its 220 would be read as if it came over TLS.
        if !s.buffer().is_empty() {
            return Err("SMTP: the relay sent data after agreeing to STARTTLS".into());
        }
        let host = relay_host(relay);
        let name = rustls::pki_types::ServerName::try_from(host.to_string())
            .map_err(|_| format!("SMTP relay {relay}: {host:?} is not a host name for TLS"))?;
        let tcp = s.into_inner();
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("SMTP STARTTLS with {relay}: {e}"))?;
        let mut s = BufReader::new(stream);
        // RFC 3207: everything learnt before TLS is forgotten; greet again.
        if ehlo(&mut s).await?.is_none() {
            return Err("SMTP relay refused EHLO after STARTTLS".into());
        }
        smtp_transaction(&mut s, from, to, &message).await
    };
    tokio::time::timeout(config.timeout, talk)
        .await
        .map_err(|_| format!("the SMTP relay {relay} did not answer in time"))?
}

/// The relay's host of `HOST:PORT` (`[v6]:PORT` too), for the TLS server name.
fn relay_host(relay: &str) -> &str {
    let host = relay.rsplit_once(':').map_or(relay, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// `EHLO`; the relay's extension lines (first word: the keyword), or `None` when it refuses
/// EHLO (an old relay: HELO then).
async fn ehlo<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
) -> Result<Option<Vec<String>>, String> {
    s.get_mut()
        .write_all(b"EHLO sipmeter\r\n")
        .await
        .map_err(|e| format!("SMTP: {e}"))?;
    let (code, lines) = smtp_reply_lines(s).await?;
    Ok((code == 250).then(|| lines.into_iter().skip(1).collect()))
}

/// Sender, recipient, message, goodbye.
async fn smtp_transaction<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    from: &str,
    to: &str,
    message: &str,
) -> Result<(), String> {
    smtp_step(s, &format!("MAIL FROM:<{from}>\r\n"), &[250]).await?;
    smtp_step(s, &format!("RCPT TO:<{to}>\r\n"), &[250, 251]).await?;
    smtp_step(s, "DATA\r\n", &[354]).await?;
    smtp_step(s, message, &[250]).await?;
    let _ = smtp_step(s, "QUIT\r\n", &[221]).await;
    Ok(())
}

/// An e-mail address that can go in an SMTP command and a header as is: no spaces, angle
/// brackets or line breaks (which would let a form inject commands or headers).
pub fn valid_email(a: &str) -> bool {
    let mut parts = a.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    a.len() <= 254
        && !local.is_empty()
        && !domain.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '<' | '>' | ',' | ';' | '"' | '\\'))
}

fn valid_webhook(u: &str) -> bool {
    u.len() <= 2048
        && (u.starts_with("http://") || u.starts_with("https://"))
        && reqwest::Url::parse(u).is_ok_and(|p| p.host_str().is_some())
}

// ---------------------------------------------------------------------------------------
// The Alerts page.

/// Log entries per page.
const LOG_PAGE: u32 = 50;

struct RuleRow {
    id: i64,
    name: String,
    kind: &'static str,
    condition: String,
    enabled: bool,
    channels: String,
    renotify: String,
    firing: bool,
    last_sent: String,
}

struct LogRow {
    at: String,
    rule: String,
    channel: String,
    what: String,
    outcome: String,
    outcome_class: &'static str,
}

/// The values of the rule form (new, being edited, or sent back with an error).
#[derive(Default)]
struct FormValues {
    id: String,
    name: String,
    kind: String,
    enabled: bool,
    threshold: String,
    window: String,
    min_calls: String,
    webhook: String,
    email: String,
    renotify: String,
}

impl FormValues {
    fn new_rule() -> FormValues {
        FormValues {
            kind: "channels".into(),
            enabled: true,
            threshold: "80".into(),
            window: "5".into(),
            min_calls: "10".into(),
            renotify: "60".into(),
            ..Default::default()
        }
    }

    fn of(r: &AlertRule) -> FormValues {
        FormValues {
            id: r.id.to_string(),
            name: r.spec.name.clone(),
            kind: r.spec.kind.as_str().into(),
            enabled: r.spec.enabled,
            threshold: r.spec.threshold_percent.to_string(),
            window: r.spec.window_minutes.to_string(),
            min_calls: r.spec.min_calls.to_string(),
            webhook: r.spec.webhook_url.clone().unwrap_or_default(),
            email: r.spec.email.clone().unwrap_or_default(),
            renotify: r.spec.renotify_minutes.to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    chrome: Chrome,
    admin: bool,
    rules: Vec<RuleRow>,
    form: FormValues,
    message: Option<String>,
    message_class: &'static str,
    log: Vec<LogRow>,
    page: u64,
    pages: u64,
    smtp: String,
}

fn kind_text(k: AlertKind) -> &'static str {
    match k {
        AlertKind::Channels => "Channels above a share of the limit",
        AlertKind::License => "License state changed",
        AlertKind::FailedRatio => "Failed-call ratio",
        AlertKind::Sensor => "Remote sensor spool full or silent",
    }
}

fn rule_row(r: &AlertRule, tz: &jiff::tz::TimeZone) -> RuleRow {
    let s = &r.spec;
    let condition = match s.kind {
        AlertKind::Channels => format!(
            "peak above {} % of the limit in the last {} min",
            s.threshold_percent, s.window_minutes
        ),
        AlertKind::License => "state or date phase changes; daily in lockdown".into(),
        AlertKind::FailedRatio => format!(
            "failed above {} % in the last {} min (at least {} calls)",
            s.threshold_percent, s.window_minutes, s.min_calls
        ),
        AlertKind::Sensor if s.min_calls > 0 => format!(
            "spool full, more than {} batches waiting, or silent for {} min",
            s.min_calls, s.window_minutes
        ),
        AlertKind::Sensor => format!("spool full or silent for {} min", s.window_minutes),
    };
    let channels = [
        s.webhook_url.as_ref().map(|u| format!("webhook {u}")),
        s.email.as_ref().map(|a| format!("e-mail {a}")),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(", ");
    RuleRow {
        id: r.id,
        name: s.name.clone(),
        kind: kind_text(s.kind),
        condition,
        enabled: s.enabled,
        channels,
        renotify: if s.renotify_minutes == 0 {
            "never".into()
        } else {
            format!("{} min", s.renotify_minutes)
        },
        firing: r.firing,
        last_sent: r
            .last_sent
            .map(|t| crate::chrome::When::new(t, tz).to_string())
            .unwrap_or_default(),
    }
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    page: Option<u64>,
    edit: Option<i64>,
}

async fn alerts_page(
    app: &AppState,
    ctx: &Ctx,
    q: &PageQuery,
    code: StatusCode,
    form: Option<FormValues>,
    message: Option<(String, bool)>,
) -> Response {
    let built = async {
        let rules = app.store.alert_rules().await?;
        let total = app.store.count_alert_log().await?;
        let pages = total.div_ceil(u64::from(LOG_PAGE)).max(1);
        let page = q.page.unwrap_or(1).clamp(1, pages);
        let log = app
            .store
            .alert_log(LOG_PAGE, (page - 1) * u64::from(LOG_PAGE))
            .await?;
        Ok::<_, store::StoreError>((rules, log, page, pages))
    };
    let (rules, log, page, pages) = match built.await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("sipmeter serve: alerts page: {}", crate::sensor::chain(&e));
            return error(
                ctx.route,
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the alerts",
            );
        }
    };
    let form = form.unwrap_or_else(|| {
        q.edit
            .and_then(|id| rules.iter().find(|r| r.id == id))
            .map(FormValues::of)
            .unwrap_or_else(FormValues::new_rule)
    });
    let page = AlertsPage {
        chrome: Chrome::new(app, &ctx.status, ctx.user.as_ref(), "alerts"),
        admin: ctx.user.as_ref().is_some_and(|u| u.role == Role::Admin),
        rules: rules.iter().map(|r| rule_row(r, &app.license.tz)).collect(),
        form,
        message_class: if message.as_ref().is_some_and(|m| m.1) {
            "ok-text"
        } else {
            "error-text"
        },
        message: message.map(|m| m.0),
        log: log
            .into_iter()
            .map(|e| LogRow {
                at: crate::chrome::When::new(e.at, &app.license.tz).to_string(),
                rule: e.rule_name,
                channel: e.channel,
                what: e.what,
                outcome: match &e.detail {
                    Some(d) => format!("{}: {d}", e.outcome.as_str()),
                    None => e.outcome.as_str().to_string(),
                },
                outcome_class: match e.outcome {
                    AlertOutcome::Delivered => "ok-text",
                    AlertOutcome::Failed => "error-text",
                    AlertOutcome::Suppressed => "",
                },
            })
            .collect(),
        page,
        pages,
        smtp: app
            .alerts
            .config
            .smtp_relay
            .clone()
            .unwrap_or_else(|| "not configured (--smtp HOST:PORT)".into()),
    };
    (code, render(&page)).into_response()
}

/// `GET /alerts?page=N&edit=ID`.
pub async fn page(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<PageQuery>,
) -> Response {
    alerts_page(&app, &ctx, &q, StatusCode::OK, None, None).await
}

#[derive(Deserialize)]
pub struct RuleForm {
    #[serde(default)]
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    enabled: Option<String>,
    #[serde(default)]
    threshold: String,
    #[serde(default)]
    window: String,
    #[serde(default)]
    min_calls: String,
    #[serde(default)]
    webhook: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    renotify: String,
}

impl RuleForm {
    fn values(&self) -> FormValues {
        FormValues {
            id: self.id.clone(),
            name: self.name.clone(),
            kind: self.kind.clone(),
            enabled: self.enabled.is_some(),
            threshold: self.threshold.clone(),
            window: self.window.clone(),
            min_calls: self.min_calls.clone(),
            webhook: self.webhook.clone(),
            email: self.email.clone(),
            renotify: self.renotify.clone(),
        }
    }

    /// The rule, or what is wrong with the form.
    fn spec(&self) -> Result<AlertRuleSpec, String> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err("A rule needs a name of 1 to 100 characters.".into());
        }
        let kind = AlertKind::parse(&self.kind).ok_or("Unknown kind of rule.")?;
        let number = |s: &str, what: &str, max: u32| -> Result<u32, String> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(0);
            }
            s.parse::<u32>()
                .ok()
                .filter(|v| *v <= max)
                .ok_or(format!("{what} must be a whole number from 0 to {max}."))
        };
        let threshold = if self.threshold.trim().is_empty() {
            0.0
        } else {
            self.threshold
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && (0.0..=1000.0).contains(v))
                .ok_or("The threshold is a percentage from 0 to 1000.")?
        };
        let window = number(&self.window, "The window (minutes)", 7 * 24 * 60)?;
        let webhook = Some(self.webhook.trim().to_string()).filter(|s| !s.is_empty());
        let email = Some(self.email.trim().to_string()).filter(|s| !s.is_empty());
        if webhook.as_deref().is_some_and(|u| !valid_webhook(u)) {
            return Err("The webhook must be an http:// or https:// URL.".into());
        }
        if email.as_deref().is_some_and(|a| !valid_email(a)) {
            return Err("The e-mail address is not valid.".into());
        }
        if webhook.is_none() && email.is_none() {
            return Err("Give a webhook URL, an e-mail address, or both.".into());
        }
        if kind != AlertKind::License && window == 0 {
            return Err("The window must be at least 1 minute.".into());
        }
        Ok(AlertRuleSpec {
            name: name.to_string(),
            kind,
            enabled: self.enabled.is_some(),
            threshold_percent: threshold,
            window_minutes: window,
            min_calls: number(&self.min_calls, "The minimum number of calls", 1_000_000)?,
            webhook_url: webhook,
            email,
            renotify_minutes: number(&self.renotify, "The re-notify interval", 366 * 24 * 60)?,
        })
    }
}

/// `POST /alerts/rules`: creates a rule, or replaces rule `id`.
pub async fn save_rule(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<RuleForm>,
) -> Response {
    let q = PageQuery::default();
    let spec = match f.spec() {
        Ok(s) => s,
        Err(m) => {
            return alerts_page(
                &app,
                &ctx,
                &q,
                StatusCode::BAD_REQUEST,
                Some(f.values()),
                Some((m, false)),
            )
            .await;
        }
    };
    let result = match f.id.trim() {
        "" => app
            .store
            .create_alert_rule(&spec, app.now())
            .await
            .map(|_| true),
        id => match id.parse::<i64>() {
            Ok(id) => app.store.update_alert_rule(id, &spec).await,
            Err(_) => Ok(false),
        },
    };
    match result {
        Ok(true) => Redirect::to("/alerts").into_response(),
        Ok(false) => {
            alerts_page(
                &app,
                &ctx,
                &q,
                StatusCode::NOT_FOUND,
                None,
                Some(("There is no such rule.".into(), false)),
            )
            .await
        }
        Err(e) => {
            eprintln!("sipmeter serve: alert rule: {}", crate::sensor::chain(&e));
            error(
                ctx.route,
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot store the rule",
            )
        }
    }
}

#[derive(Deserialize)]
pub struct RuleAction {
    id: i64,
    #[serde(default)]
    enabled: Option<String>,
}

/// `POST /alerts/rules/enable`: `enabled=1` enables, no `enabled` disables.
pub async fn enable_rule(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<RuleAction>,
) -> Response {
    let on = f.enabled.as_deref().is_some_and(|v| v == "1");
    finish(&app, &ctx, app.store.set_alert_rule_enabled(f.id, on).await).await
}

/// `POST /alerts/rules/delete`: the rule goes, its log stays.
pub async fn delete_rule(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<RuleAction>,
) -> Response {
    finish(&app, &ctx, app.store.delete_alert_rule(f.id).await).await
}

async fn finish(app: &AppState, ctx: &Ctx, r: Result<bool, store::StoreError>) -> Response {
    match r {
        Ok(true) => Redirect::to("/alerts").into_response(),
        Ok(false) => {
            alerts_page(
                app,
                ctx,
                &PageQuery::default(),
                StatusCode::NOT_FOUND,
                None,
                Some(("There is no such rule.".into(), false)),
            )
            .await
        }
        Err(e) => {
            eprintln!("sipmeter serve: alert rule: {}", crate::sensor::chain(&e));
            error(
                ctx.route,
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot change the rule",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses_that_could_inject_smtp_commands_are_refused() {
        assert!(valid_email("ops@example.test"));
        assert!(!valid_email("ops@example.test\r\nRCPT TO:<x@y>"));
        assert!(!valid_email("a b@example.test"));
        assert!(!valid_email("<ops@example.test>"));
        assert!(!valid_email("ops@"));
        assert!(!valid_email("a@b@c"));
    }

    #[test]
    fn webhooks_are_http_urls_with_a_host() {
        assert!(valid_webhook("http://127.0.0.1:9000/hook"));
        assert!(valid_webhook("https://hooks.example.test/x"));
        assert!(!valid_webhook("ftp://example.test/"));
        assert!(!valid_webhook("http://"));
        assert!(!valid_webhook("javascript:alert(1)"));
    }
}

//! The Alerts page: rules with their forms, and the log of what was sent and what was
//! suppressed.

use askama::Template;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use serde::Deserialize;
use store::{AlertKind, AlertOutcome, AlertRule, AlertRuleSpec, Role};

use super::delivery::{valid_email, valid_webhook};
use crate::error::{AppError, Context};
use crate::http::Ctx;
use crate::state::AppState;
use crate::web::{Chrome, When, render};

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
            .map(|t| When::new(t, tz).to_string())
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
) -> Result<Response, AppError> {
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
    let (rules, log, page, pages) = built
        .await
        .log_as("alerts page", "cannot read the alerts")?;
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
                at: When::new(e.at, &app.license.tz).to_string(),
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
    Ok((code, render(&page)).into_response())
}

/// `GET /alerts?page=N&edit=ID`.
pub async fn page(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<PageQuery>,
) -> Result<Response, AppError> {
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
) -> Result<Response, AppError> {
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
        Ok(true) => Ok(Redirect::to("/alerts").into_response()),
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
        Err(e) => Err(AppError::internal(
            "alert rule",
            "cannot store the rule",
            &e,
        )),
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
) -> Result<Response, AppError> {
    let on = f.enabled.as_deref().is_some_and(|v| v == "1");
    finish(&app, &ctx, app.store.set_alert_rule_enabled(f.id, on).await).await
}

/// `POST /alerts/rules/delete`: the rule goes, its log stays.
pub async fn delete_rule(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<RuleAction>,
) -> Result<Response, AppError> {
    finish(&app, &ctx, app.store.delete_alert_rule(f.id).await).await
}

async fn finish(
    app: &AppState,
    ctx: &Ctx,
    r: Result<bool, store::StoreError>,
) -> Result<Response, AppError> {
    match r {
        Ok(true) => Ok(Redirect::to("/alerts").into_response()),
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
        Err(e) => Err(AppError::internal(
            "alert rule",
            "cannot change the rule",
            &e,
        )),
    }
}

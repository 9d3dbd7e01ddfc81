//! The JSON API under `/api/v1`, `/healthz` and `/metrics`.

use axum::Extension;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use calls::Micros;
use calls::time::format_rfc3339;
use channels::Report;
use serde::{Deserialize, Serialize};

pub mod cdrs;
pub mod report;

use self::report::ReportOut;
use crate::error::AppError;
use crate::http::Ctx;
use crate::license::state_name;
use crate::metrics::Gauges;
use crate::state::AppState;

pub const DAY_US: Micros = 86_400_000_000;
/// Days of the Concurrent Calls Stats by default.
pub const REPORT_DAYS: u32 = 14;
/// Most days one stats request may ask for (a year and a bit): bounds the work per request.
pub const MAX_REPORT_DAYS: u32 = 400;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The report of the `days` days ending today (license time zone; days without calls are
/// zeros), from the stored minute rows; both the page and the API use it. Unlike `sipmeter
/// channels`, which reads archives, the server is about the present.
pub async fn stats_report(app: &AppState, days: u32) -> Result<(Report, ReportOut), BoxError> {
    let tz = &app.license.tz;
    // The window ends today even when the last call is older: a quiet week must show as
    // zeros, not as an older fortnight that looks current.
    let to = license::day_of(app.now(), tz);
    let from = to.checked_sub(jiff::Span::new().days(i64::from(days.max(1)) - 1))?;
    let start = channels::day_start(from, tz)?;
    let end = channels::day_start(to.tomorrow()?, tz)?;
    let rows = app.store.channel_minutes(start, end).await?;
    let rep = channels::report(&rows, tz, from, to)?;
    let out = ReportOut::new(&rep, tz, app.channel_mode, from, to);
    Ok((rep, out))
}

#[derive(Deserialize)]
pub struct StatsQuery {
    days: Option<String>,
}

pub async fn channels_stats(
    State(app): State<AppState>,
    Query(q): Query<StatsQuery>,
) -> Result<Response, AppError> {
    let days = match q.days.as_deref().map(str::parse::<u32>) {
        None => REPORT_DAYS,
        Some(Ok(d)) if (1..=MAX_REPORT_DAYS).contains(&d) => d,
        _ => {
            return Err(AppError::bad_request(format!(
                "days must be a whole number from 1 to {MAX_REPORT_DAYS}"
            )));
        }
    };
    let (_, out) = stats_report(&app, days)
        .await
        .map_err(|e| AppError::internal("stats", "cannot compute the report", e.as_ref()))?;
    Ok(Json(out).into_response())
}

#[derive(Serialize)]
struct ChannelsNow {
    /// Live legs deduplicated as the channel engine counts them.
    active_channels: u32,
    /// Live legs.
    active_calls: u32,
    /// The capture time the figures are of (end of the last capture read), if any.
    at: Option<String>,
    limit: u32,
    state: &'static str,
}

pub async fn channels_now(State(app): State<AppState>, Extension(ctx): Extension<Ctx>) -> Response {
    let live = app.live();
    Json(ChannelsNow {
        active_channels: live.channels,
        active_calls: live.calls,
        at: live.at.map(format_rfc3339),
        limit: ctx.status.limit.effective,
        state: state_name(ctx.status.state),
    })
    .into_response()
}

/// `GET /api/v1/license`: the license status as `sipmeter license status --json` shows it.
pub async fn license_status(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Response {
    let mut v = serde_json::to_value(&*ctx.status).unwrap_or_default();
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "license_file".into(),
            app.license.license_path.display().to_string().into(),
        );
        obj.insert(
            "time_zone".into(),
            app.license.tz.iana_name().unwrap_or("UTC").into(),
        );
        // The token is a credential (it re-binds the license at the portal): admins only.
        if ctx
            .user
            .as_ref()
            .is_some_and(|u| u.role == store::Role::Admin)
        {
            let token = crate::license::env::stored_token(&app.data_dir, None)
                .ok()
                .flatten()
                .map(|t| t.to_string());
            obj.insert("license_token".into(), token.into());
        }
        obj.insert("active_channels".into(), app.live().channels.into());
    }
    Json(v).into_response()
}

pub async fn healthz(State(app): State<AppState>) -> Response {
    // A query that touches the database but not the legs table (which may hold millions).
    match app.store.schema_version().await {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable\n").into_response(),
    }
}

pub async fn metrics(State(app): State<AppState>, Extension(ctx): Extension<Ctx>) -> Response {
    let live = app.live();
    let st = &ctx.status;
    let gauges = Gauges {
        legs_stored: app
            .metrics
            .legs_stored
            .load(std::sync::atomic::Ordering::Relaxed),
        active_channels: live.channels,
        active_calls: live.calls,
        limit: st.limit.effective,
        state: state_name(st.state),
        days_over: st.timeline.days_over,
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(&gauges),
    )
        .into_response()
}

/// The API description, written by hand next to the code it describes (`openapi.json`).
pub async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("openapi.json"),
    )
        .into_response()
}

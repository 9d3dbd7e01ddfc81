//! The Reports page and its CSV downloads: the daily report of `daily` over a range of local
//! days of the license time zone, from the database's outcome aggregates and channel figures.

use askama::Template;
use axum::Extension;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use calls::Micros;
use jiff::civil::Date;
use serde::Deserialize;

use super::daily::{self, DailyReport};
use crate::error::AppError;
use crate::http::Ctx;
use crate::state::AppState;
use crate::web::{Chrome, render};

/// Days in the default report.
const DEFAULT_DAYS: i64 = 14;

#[derive(Deserialize, Default)]
pub struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

/// The day range asked for, or the 14 days ending today (or at the last day with calls, if
/// earlier, like Concurrent Calls Stats). `Err` is a message for a 400.
async fn range(app: &AppState, q: &RangeQuery) -> Result<(Date, Date), String> {
    let parse = |s: &str, what: &str| {
        s.parse::<Date>()
            .map_err(|_| format!("{what} must be a day like 2026-11-28, not {s:?}"))
    };
    let tz = &app.license.tz;
    let to = match q.to.as_deref() {
        Some(s) => parse(s, "to")?,
        None => {
            let today = license::day_of(app.now(), tz);
            match app.store.channel_extent().await {
                Ok(Some((_, last))) => channels::day_of(last, tz)
                    .map(|d| d.min(today))
                    .unwrap_or(today),
                _ => today,
            }
        }
    };
    let from = match q.from.as_deref() {
        Some(s) => parse(s, "from")?,
        None => to
            .checked_sub(jiff::Span::new().days(DEFAULT_DAYS - 1))
            .map_err(|_| "to is too early".to_string())?,
    };
    Ok((from, to))
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

enum Failed {
    BadRequest(String),
    Internal(BoxError),
}

async fn build(app: &AppState, q: &RangeQuery) -> Result<(Date, Date, DailyReport), Failed> {
    let (from, to) = range(app, q).await.map_err(Failed::BadRequest)?;
    let tz = &app.license.tz;
    let days = daily::report_days(from, to, tz).map_err(|e| Failed::BadRequest(e.to_string()))?;
    let windows = daily::windows(&days);
    let outcomes = app
        .store
        .leg_outcomes(&windows)
        .await
        .map_err(|e| Failed::Internal(e.into()))?;
    let (start, end) = match (days.first(), days.last()) {
        (Some(f), Some(l)) => (f.window.start, l.window.end),
        _ => return Err(Failed::BadRequest("no days in the range".into())),
    };
    let rows = app
        .store
        .channel_minutes(start, end)
        .await
        .map_err(|e| Failed::Internal(e.into()))?;
    let peaks = channels::report(&rows, tz, from, to).map_err(|e| Failed::Internal(e.into()))?;
    Ok((
        from,
        to,
        daily::daily_report(&days, &outcomes, Some(&peaks)),
    ))
}

impl From<Failed> for AppError {
    fn from(f: Failed) -> AppError {
        match f {
            Failed::BadRequest(m) => AppError::bad_request(m),
            Failed::Internal(e) => {
                AppError::internal("daily report", "cannot build the report", e.as_ref())
            }
        }
    }
}

struct Row {
    day: String,
    calls: u64,
    answered: u64,
    failed: u64,
    cancelled: u64,
    asr: String,
    acd: String,
    peak: String,
    peak_at: String,
    failures: String,
}

fn row(day: String, f: &daily::Figures, tz: &jiff::tz::TimeZone) -> Row {
    let local = |t: Micros| {
        jiff::Timestamp::from_microsecond(t)
            .map(|ts| ts.to_zoned(tz.clone()).strftime("%H:%M:%S").to_string())
            .unwrap_or_default()
    };
    Row {
        day,
        calls: f.calls,
        answered: f.answered,
        failed: f.failed,
        cancelled: f.cancelled,
        asr: f.asr_percent().map_or("–".into(), |v| format!("{v:.1} %")),
        acd: f.acd_seconds().map_or("–".into(), |v| format!("{v:.1} s")),
        peak: f.peak_channels.map_or("–".into(), |v| v.to_string()),
        peak_at: f.peak_at.map_or(String::new(), local),
        failures: f
            .failures
            .iter()
            .map(|x| match x.code {
                Some(c) => format!("{c} {} ×{}", x.reason, x.count),
                None => format!("{} ×{}", x.reason, x.count),
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[derive(Template)]
#[template(path = "reports.html")]
struct ReportsPage {
    chrome: Chrome,
    from: String,
    to: String,
    time_zone: String,
    rows: Vec<Row>,
    total: Row,
}

pub async fn page(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<RangeQuery>,
) -> Result<Response, AppError> {
    let (from, to, rep) = build(&app, &q).await?;
    let tz = &app.license.tz;
    Ok(render(&ReportsPage {
        chrome: Chrome::new(&app, &ctx.status, ctx.user.as_ref(), "reports"),
        from: from.to_string(),
        to: to.to_string(),
        time_zone: tz.iana_name().unwrap_or("UTC").to_string(),
        rows: rep
            .days
            .iter()
            .map(|d| row(d.day.to_string(), &d.figures, tz))
            .collect(),
        total: row("Total".into(), &rep.total, tz),
    }))
}

fn csv(name: String, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// `GET /reports/daily.csv?from=&to=`: one row per day.
pub async fn daily_csv(
    State(app): State<AppState>,
    Query(q): Query<RangeQuery>,
) -> Result<Response, AppError> {
    let (from, to, rep) = build(&app, &q).await?;
    Ok(csv(
        format!("sipmeter-daily-{from}-{to}.csv"),
        daily::daily_csv(&rep, &app.license.tz),
    ))
}

/// `GET /reports/failures.csv?from=&to=`: one row per day and final code.
pub async fn failures_csv(
    State(app): State<AppState>,
    Query(q): Query<RangeQuery>,
) -> Result<Response, AppError> {
    let (from, to, rep) = build(&app, &q).await?;
    Ok(csv(
        format!("sipmeter-failures-{from}-{to}.csv"),
        daily::failures_csv(&rep),
    ))
}

//! The server-rendered pages (askama templates in `crates/server/templates`).

use askama::Template;
use axum::extract::{Multipart, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Form};
use license::Status;
use serde::Deserialize;

use super::chrome::{Chrome, When};
use super::{chart, render};
use crate::api::report::ReportOut;
use crate::auth::{self, LOGIN_CSRF_COOKIE, LoginError, SESSION_COOKIE, check_login};
use crate::error::{AppError, Context, chain};
use crate::http::Ctx;
use crate::license::env as license_env;
use crate::license::portal_client;
use crate::state::AppState;

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Chrome,
    csrf: String,
    next: String,
    user: String,
    error: Option<String>,
}

#[derive(Deserialize, Default)]
pub struct LoginQuery {
    next: Option<String>,
}

/// Only a same-site path may follow a login: one `/` and then a path character, with no
/// control character or backslash anywhere, checked on the text as given and as
/// percent-decoded (twice: `%2509` is a tab after two decodings). Browsers drop tabs and
/// newlines and read `\\` as `/`, so `/\t/evil.example/` or `/%5C/evil.example` would leave the
/// site. Anything else goes to `/`.
fn safe_next(next: Option<&str>) -> String {
    fn same_site_path(p: &[u8]) -> bool {
        p.first() == Some(&b'/')
            && p.get(1).is_none_or(|c| !matches!(c, b'/' | b'\\' | b' '))
            && p.iter().all(|&c| c >= b' ' && c != 0x7f && c != b'\\')
    }
    let Some(n) = next else {
        return "/".to_string();
    };
    let once = percent_decode(n.as_bytes());
    let twice = percent_decode(&once);
    if [n.as_bytes(), &once, &twice]
        .iter()
        .all(|p| same_site_path(p))
    {
        n.to_string()
    } else {
        "/".to_string()
    }
}

/// `%XX` sequences decoded; anything else (including a `%` without two hex digits) kept.
fn percent_decode(s: &[u8]) -> Vec<u8> {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%'
            && let (Some(h), Some(l)) = (
                s.get(i + 1).copied().and_then(hex),
                s.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(h << 4 | l);
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    out
}

fn login_page(
    ctx: &Ctx,
    app: &AppState,
    csrf: String,
    next: String,
    user: String,
    error: Option<String>,
) -> LoginPage {
    LoginPage {
        chrome: Chrome::new(app, &ctx.status, None, "login"),
        csrf,
        next,
        user,
        error,
    }
}

pub async fn login_form(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    if ctx.user.as_ref().is_some_and(|u| u.csrf.is_some()) {
        return Redirect::to(&safe_next(q.next.as_deref())).into_response();
    }
    let csrf = auth::cookie(&headers, LOGIN_CSRF_COOKIE)
        .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(str::to_owned)
        .unwrap_or_else(auth::random_token);
    let page = login_page(
        &ctx,
        &app,
        csrf.clone(),
        safe_next(q.next.as_deref()),
        String::new(),
        None,
    );
    let mut resp = render(&page);
    set_cookie(
        &mut resp,
        &auth::set_cookie(LOGIN_CSRF_COOKIE, &csrf, None, app.browser_https),
    );
    resp
}

fn set_cookie(resp: &mut Response, value: &str) {
    if let Ok(v) = value.parse() {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    user: String,
    password: String,
    next: Option<String>,
}

pub async fn login_submit(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    match check_login(&app, &f.user, &f.password, ctx.peer.ip()).await {
        Ok(u) => {
            let id = app.sessions.create(&u.name, u.role);
            let mut resp = Redirect::to(&next).into_response();
            set_cookie(
                &mut resp,
                &auth::set_cookie(SESSION_COOKIE, &id, None, app.browser_https),
            );
            // The login token has done its job; a fresh one comes with the next login page.
            set_cookie(
                &mut resp,
                &auth::set_cookie(LOGIN_CSRF_COOKIE, "", Some(0), app.browser_https),
            );
            resp
        }
        Err(e) => {
            let (code, msg) = match e {
                LoginError::Throttled(t) => (StatusCode::TOO_MANY_REQUESTS, t.message()),
                LoginError::Wrong => (
                    StatusCode::UNAUTHORIZED,
                    "Wrong user name or password.".to_string(),
                ),
                LoginError::Internal => (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Login is not possible right now (database error); see the server log."
                        .to_string(),
                ),
            };
            let csrf = auth::cookie(&headers, LOGIN_CSRF_COOKIE)
                .unwrap_or_default()
                .to_string();
            let page = login_page(&ctx, &app, csrf, next, f.user, Some(msg));
            (code, render(&page)).into_response()
        }
    }
}

pub async fn logout(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(id) = auth::cookie(&headers, SESSION_COOKIE) {
        app.sessions.remove(id);
    }
    let mut resp = Redirect::to("/login").into_response();
    set_cookie(
        &mut resp,
        &auth::set_cookie(SESSION_COOKIE, "", Some(0), app.browser_https),
    );
    resp
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    chrome: Chrome,
    calls_now: u32,
    today_peak: u32,
    today_peak_at: Option<When>,
    live_note: String,
    chart_24h: String,
    /// No channel at all in the last 24 hours: the page says where calls come from.
    quiet_day: bool,
}

fn chrome(app: &AppState, ctx: &Ctx, nav: &'static str) -> Chrome {
    Chrome::new(app, &ctx.status, ctx.user.as_ref(), nav)
}

pub async fn dashboard(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Result<Response, AppError> {
    let now = app.now();
    let tz = app.license.tz.clone();
    let today = license::day_of(now, &tz);
    let Ok(channels::Window {
        start: from,
        end: to,
    }) = channels::day_bounds(today, &tz)
    else {
        return Err(AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "date out of range",
        ));
    };
    let day_start = now - crate::api::DAY_US;
    let rows = app
        .store
        .channel_minutes(from.min(day_start), to.max(now))
        .await
        .context("cannot read the channel figures")?;
    let today_rows: Vec<_> = rows
        .iter()
        .filter(|r| r.start >= from && r.start < to)
        .copied()
        .collect();
    let peak = channels::report(&today_rows, &tz, today, today)
        .ok()
        .and_then(|r| r.peak);
    let live = app.live();
    let live_note = match live.at {
        Some(at) => format!(
            "Calls and channels now: live legs at the end of the last capture read ({}).",
            When::new(at, &tz).local
        ),
        None => "Calls and channels now: no live legs (no capture with calls still in progress has been read).".to_string(),
    };
    let window = channels::Window {
        start: (now - crate::api::DAY_US).div_euclid(60_000_000) * 60_000_000,
        end: now,
    };
    let chart_24h = chart::calls_24h_chart(
        &chart::buckets_from_minutes(&rows, window, 5 * 60_000_000),
        window,
        Some(ctx.status.limit.effective),
        &tz,
        tz.iana_name().unwrap_or("UTC"),
    );
    Ok(render(&DashboardPage {
        chrome: chrome(&app, &ctx, "dashboard"),
        calls_now: live.calls,
        today_peak: peak.map_or(0, |p| p.value),
        today_peak_at: peak.map(|p| When::new(p.at, &tz)),
        live_note,
        chart_24h,
        quiet_day: !rows.iter().any(|r| r.peak > 0 && r.start >= window.start),
    }))
}

#[derive(Template)]
#[template(path = "concurrent_calls.html")]
struct ConcurrentCallsPage {
    chrome: Chrome,
    report: ReportOut,
    /// The report's figures with times for people; `report` keeps the API's RFC 3339 text.
    peak_at: Option<When>,
    days: Vec<DayRow>,
    hours: Vec<HourRow>,
    today: String,
    chart: String,
    explain: Option<ExplainView>,
}

struct DayRow {
    day: String,
    peak: u32,
    peak_at: Option<When>,
    mean: Option<f64>,
}

struct HourRow {
    start: When,
    max: u32,
    mean: f64,
}

/// "Why is my count this high": the legs active at an instant, grouped by dedup key, and why
/// the groups did not merge.
struct ExplainView {
    title: String,
    channels: usize,
    groups: Vec<GroupView>,
}

struct GroupView {
    caller_part: String,
    called_part: String,
    legs: Vec<LegView>,
    reasons: Vec<String>,
}

struct LegView {
    sensor_id: u32,
    call_id: String,
    caller: String,
    called: String,
    start: When,
    end: When,
}

#[derive(Deserialize, Default)]
pub struct CcsQuery {
    /// A day (YYYY-MM-DD): explain its peak.
    explain: Option<String>,
    /// An instant (RFC 3339): explain it.
    at: Option<String>,
}

/// The instant to explain: `at`, or the peak of day `explain` (`None` when that day had no
/// channel). A malformed parameter is the client's error.
async fn explain_instant(app: &AppState, q: &CcsQuery) -> Result<Option<(i64, String)>, String> {
    if let Some(at) = q.at.as_deref() {
        let t = calls::time::parse_rfc3339(at)
            .ok_or_else(|| format!("at must be an RFC 3339 instant, not {at:?}"))?;
        let when = When::new(t, &app.license.tz).local;
        return Ok(Some((t, format!("Channels at {when}"))));
    }
    let Some(day) = q.explain.as_deref() else {
        return Ok(None);
    };
    let d: jiff::civil::Date = day
        .parse()
        .map_err(|_| format!("explain must be a day like 2026-11-28, not {day:?}"))?;
    let tz = &app.license.tz;
    let w = channels::day_bounds(d, tz).map_err(|e| e.to_string())?;
    let rows = app
        .store
        .channel_minutes(w.start, w.end)
        .await
        .map_err(|e| chain(&e))?;
    let peak = channels::report(&rows, tz, d, d)
        .map_err(|e| e.to_string())?
        .peak;
    Ok(peak.map(|p| {
        (
            p.at,
            format!(
                "Peak of {d}: {} channels at {}",
                p.value,
                When::new(p.at, tz).local
            ),
        )
    }))
}

async fn explain_view(
    app: &AppState,
    at: i64,
    title: String,
) -> Result<ExplainView, store::StoreError> {
    let stored = app.store.legs_active_at(at).await?;
    let legs: Vec<calls::Leg> = stored.into_iter().map(|s| s.leg).collect();
    let e = channels::explain::explain(&legs, at, app.channel_mode);
    let groups = e
        .groups
        .iter()
        .map(|g| GroupView {
            caller_part: g.caller_part.clone(),
            called_part: g.called_part.clone(),
            legs: g
                .legs
                .iter()
                .map(|l| LegView {
                    sensor_id: l.sensor_id,
                    call_id: l.call_id.clone(),
                    caller: l.caller.clone(),
                    called: l.called.clone(),
                    start: When::new(l.start, &app.license.tz),
                    end: When::new(l.end, &app.license.tz),
                })
                .collect(),
            reasons: g
                .not_merged
                .iter()
                .map(|n| match n {
                    channels::explain::NotMerged::DifferentNumbers => {
                        "different numbers: an independent call".to_string()
                    }
                    channels::explain::NotMerged::Linked { link, other, .. } => {
                        let o = &e.groups[*other];
                        format!(
                            "{} ({} → {}), counted separately",
                            link.as_str(),
                            o.caller_part,
                            o.called_part
                        )
                    }
                })
                .collect(),
        })
        .collect();
    Ok(ExplainView {
        title,
        channels: e.channels,
        groups,
    })
}

pub async fn concurrent_calls(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Query(q): Query<CcsQuery>,
) -> Result<Response, AppError> {
    let explain = match explain_instant(&app, &q)
        .await
        .map_err(AppError::bad_request)?
    {
        None => None,
        Some((at, title)) => Some(
            explain_view(&app, at, title)
                .await
                .context("cannot read the legs to explain")?,
        ),
    };
    let what = "cannot compute the report";
    let (rep, report) = crate::api::stats_report(&app, crate::api::REPORT_DAYS)
        .await
        .map_err(|e| AppError::internal(what, what, e.as_ref()))?;
    let tz = &app.license.tz;
    let hours: Vec<_> = rep.hours.iter().map(chart::Bucket::from_period).collect();
    let days: Vec<_> = rep
        .days
        .iter()
        .map(chart::DayMark::from_day_stats)
        .collect();
    let chart = chart::concurrent_calls_chart(
        &hours,
        &days,
        Some(ctx.status.limit.effective),
        tz,
        tz.iana_name().unwrap_or("UTC"),
        &|d| format!("/tools/concurrent-calls?explain={d}#explain"),
    );
    let days = rep
        .days
        .iter()
        .zip(&report.days)
        .map(|(d, out)| DayRow {
            day: out.day.clone(),
            peak: out.peak,
            peak_at: d.stats.peak.map(|p| When::new(p.at, tz)),
            mean: out.mean,
        })
        .collect();
    let hours = rep
        .hours
        .iter()
        .zip(&report.hours)
        .filter(|(_, out)| out.max > 0)
        .map(|(h, out)| HourRow {
            start: When::minute(h.start, tz),
            max: out.max,
            mean: out.mean,
        })
        .collect();
    Ok(render(&ConcurrentCallsPage {
        chrome: chrome(&app, &ctx, "ccs"),
        peak_at: rep.peak.map(|p| When::new(p.at, tz)),
        days,
        hours,
        today: license::day_of(app.now(), tz).to_string(),
        report,
        chart,
        explain,
    }))
}

#[derive(Template)]
#[template(path = "locked.html")]
pub struct LockedPage {
    pub chrome: Chrome,
    pub reason: String,
}

impl LockedPage {
    /// The reason as a sentence (it is written to follow "locked: " elsewhere).
    fn sentence(&self) -> String {
        let mut c = self.reason.chars();
        match c.next() {
            Some(first) => {
                let mut s: String = first.to_uppercase().collect();
                s.push_str(c.as_str());
                if !s.ends_with('.') {
                    s.push('.');
                }
                s
            }
            None => "The license does not allow the GUI now.".to_string(),
        }
    }
}

#[derive(Template)]
#[template(path = "about.html")]
struct AboutPage {
    chrome: Chrome,
    mode: &'static str,
    license_id: String,
    customer: String,
    licensed: u32,
    increase: String,
    operator_limit: String,
    /// Where the configured limit comes from (Settings › License or the configuration).
    operator_limit_source: String,
    issued: String,
    formal_end: String,
    grace_end: String,
    access_end: String,
    flags: String,
    binding: String,
    hwid: String,
    concurrent: u32,
    days_over: u32,
    timeline_reason: String,
    offending: Vec<(String, u32)>,
    errors: Vec<String>,
    warnings: Vec<String>,
    version: &'static str,
    install_id: String,
    boot_id: String,
}

fn dash() -> String {
    "–".to_string()
}

pub async fn about(State(app): State<AppState>, Extension(ctx): Extension<Ctx>) -> Response {
    let st: &Status = &ctx.status;
    let t = st.license.as_ref();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    render(&AboutPage {
        chrome: chrome(&app, &ctx, "about"),
        mode: match st.mode {
            license::Mode::Licensed => "licensed",
            license::Mode::Evaluation => "evaluation (no license installed)",
            license::Mode::Invalid => "invalid license file",
        },
        license_id: t.map_or_else(dash, |t| t.license_id.clone()),
        customer: t.map_or_else(dash, |t| t.customer.clone()),
        licensed: st.limit.licensed,
        increase: st
            .limit
            .temporary_increase
            .map_or_else(dash, |n| n.to_string()),
        operator_limit: st.limit.operator_limit.map_or_else(dash, |n| n.to_string()),
        operator_limit_source: app
            .license
            .operator_limit()
            .ok()
            .and_then(|o| o.source)
            .map_or_else(String::new, |s| s.describe().to_string()),
        issued: t.map_or_else(dash, |t| t.issued_at.to_string()),
        formal_end: t.map_or_else(dash, |t| t.formal_end.to_string()),
        grace_end: t.map_or_else(dash, |t| t.grace_end.to_string()),
        access_end: t.map_or_else(dash, |t| t.access_end().to_string()),
        flags: t.map_or_else(dash, |t| {
            format!(
                "{} / {} / {}",
                yes_no(t.trial),
                yes_no(t.emergency),
                yes_no(t.cancelled)
            )
        }),
        binding: t.map_or_else(dash, |t| t.binding.to_string()),
        hwid: format!("{} ({})", st.hwid.hwid, st.hwid.source.describe()),
        concurrent: st.concurrent_systems,
        days_over: st.timeline.days_over,
        timeline_reason: st.timeline.reason.clone(),
        offending: st
            .timeline
            .offending_days
            .iter()
            .map(|d| (d.date.to_string(), d.peak))
            .collect(),
        errors: st.errors.iter().map(|e| e.message.clone()).collect(),
        warnings: st.warnings.clone(),
        version: env!("CARGO_PKG_VERSION"),
        install_id: app.portal.install_id.clone(),
        boot_id: app.portal.boot_id.clone(),
    })
}

#[derive(Template)]
#[template(path = "settings_license.html")]
struct SettingsLicensePage {
    chrome: Chrome,
    message: Option<String>,
    message_class: &'static str,
    hwid: String,
    token: Option<String>,
    errors: Vec<String>,
    is_admin: bool,
    /// The limit set on this page (the form's value), empty when none.
    stored_limit: String,
    /// The limit from the configuration, which a value set here overrides.
    config_limit: Option<u32>,
    /// The key's entitlement (licensed plus any active temporary increase).
    entitlement: u32,
    /// The license portal: URL, this installation's ids, last refresh and check-in.
    portal: portal_client::PortalInfo,
}

fn settings_page(
    app: &AppState,
    ctx: &Ctx,
    status: &Status,
    message: Option<(String, bool)>,
) -> SettingsLicensePage {
    let is_admin = ctx
        .user
        .as_ref()
        .is_some_and(|u| u.role == store::Role::Admin);
    // The token is a credential (it re-binds the license at the portal): admins only.
    let token = license_env::stored_token(&app.data_dir, None)
        .ok()
        .flatten()
        .filter(|_| is_admin)
        .map(|t| t.to_string());
    SettingsLicensePage {
        chrome: Chrome::new(app, status, ctx.user.as_ref(), "settings-license"),
        message_class: if message.as_ref().is_some_and(|m| m.1) {
            "ok-text"
        } else {
            "error-text"
        },
        message: message.map(|m| m.0),
        hwid: status.hwid.hwid.to_string(),
        token,
        errors: status.errors.iter().map(|e| e.message.clone()).collect(),
        is_admin,
        stored_limit: license_env::read_stored_limit(&app.data_dir)
            .ok()
            .and_then(Result::ok)
            .flatten()
            .map_or_else(String::new, |n| n.to_string()),
        config_limit: app.license.operator_limit,
        entitlement: entitlement(status),
        portal: portal_client::PortalInfo::of(app),
    }
}

pub async fn settings_license(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Response {
    let page = settings_page(&app, &ctx, &ctx.status, None);
    render(&page)
}

/// Renders Settings > License after a change, with the status recomputed so the page (and
/// the footer) already show the effect.
async fn after_change(
    app: &AppState,
    ctx: &Ctx,
    code: StatusCode,
    message: String,
    ok: bool,
) -> Response {
    let status = app.status().await.unwrap_or_else(|_| ctx.status.clone());
    let page = settings_page(app, ctx, &status, Some((message, ok)));
    (code, render(&page)).into_response()
}

#[derive(Deserialize)]
pub struct TokenForm {
    token: String,
}

pub async fn settings_token(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<TokenForm>,
) -> Result<Response, AppError> {
    Ok(match f.token.trim().parse::<license::LicenseToken>() {
        Ok(t) => {
            license_env::store_token(&app.data_dir, &t).context("cannot save the token")?;
            after_change(&app, &ctx, StatusCode::OK, format!(
                "License token {t} saved. Use Get/Update License to fetch the license file for it (or upload the key file)."
            ), true).await
        }
        Err(e) => {
            after_change(
                &app,
                &ctx,
                StatusCode::BAD_REQUEST,
                format!("Not a license token: {e}"),
                false,
            )
            .await
        }
    })
}

pub async fn settings_upload(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    mut mp: Multipart,
) -> Result<Response, AppError> {
    let mut file: Option<Vec<u8>> = None;
    loop {
        match mp.next_field().await {
            Ok(Some(field)) => {
                if field.name() == Some("file") {
                    match field.bytes().await {
                        Ok(b) => file = Some(b.to_vec()),
                        Err(_) => break,
                    }
                }
            }
            Ok(None) => break,
            Err(_) => {
                return Ok(after_change(
                    &app,
                    &ctx,
                    StatusCode::BAD_REQUEST,
                    "The upload could not be read; try again.".into(),
                    false,
                )
                .await);
            }
        }
    }
    let Some(bytes) = file.filter(|b| !b.is_empty()) else {
        return Ok(after_change(
            &app,
            &ctx,
            StatusCode::BAD_REQUEST,
            "Choose a license key file to upload.".into(),
            false,
        )
        .await);
    };
    let name = license_env::display_name(&app.license.license_path);
    let checked = license::license_text(&bytes, &name).and_then(|text| {
        let verified = app.license.verify(text, app.now())?;
        Ok((text.to_string(), verified))
    });
    let (text, verified) = match checked {
        Ok(v) => v,
        Err(e) => {
            return Ok(after_change(
                &app,
                &ctx,
                StatusCode::BAD_REQUEST,
                format!("Not installed: {e}"),
                false,
            )
            .await);
        }
    };
    app.license
        .install(&text, &verified)
        .context("cannot install the license file")?;
    app.invalidate_status();
    let t = &verified.terms;
    Ok(after_change(
        &app,
        &ctx,
        StatusCode::OK,
        format!(
            "License {} installed: {} channels, {}, access until {}. It is in force now.",
            t.license_id,
            t.channels,
            t.binding,
            t.access_end()
        ),
        true,
    )
    .await)
}

pub async fn settings_fetch(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
) -> Response {
    let (code, message, ok) = portal_client::get_license_message(&app).await;
    after_change(&app, &ctx, code, message, ok).await
}

/// What the key allows now: the licensed channels, or the active temporary increase when it
/// is higher. An operator limit above it has no effect.
fn entitlement(status: &Status) -> u32 {
    status
        .limit
        .temporary_increase
        .map_or(status.limit.licensed, |t| t.max(status.limit.licensed))
}

#[derive(Deserialize)]
pub struct LimitForm {
    /// Missing counts as an error, not as "clear": only an empty field clears the limit.
    channel_limit: Option<String>,
}

/// Sets or clears the configured channel limit (Settings › License). It only ever lowers the
/// licensed limit; raising it back to the entitlement is how an operator unlocks after
/// lowering it, so it takes effect at once (the status cache is invalidated) with no restart.
pub async fn settings_limit(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Form(f): Form<LimitForm>,
) -> Result<Response, AppError> {
    let Some(text) = f.channel_limit else {
        return Ok(after_change(
            &app,
            &ctx,
            StatusCode::BAD_REQUEST,
            "Configured channel limit: the field is missing from the form.".into(),
            false,
        )
        .await);
    };
    let limit = match license_env::parse_limit(&text) {
        Ok(l) => l,
        Err(msg) => {
            return Ok(after_change(&app, &ctx, StatusCode::BAD_REQUEST, msg, false).await);
        }
    };
    license_env::store_limit(&app.data_dir, limit)
        .context("cannot save the configured channel limit")?;
    app.invalidate_status();
    let message = match limit {
        None => match app.license.operator_limit {
            Some(c) => format!(
                "Configured channel limit cleared; the configuration's channel_limit {c} applies again. It is in force now."
            ),
            None => {
                "Configured channel limit cleared: the license limit applies. It is in force now."
                    .to_string()
            }
        },
        Some(n) => {
            let ent = entitlement(&ctx.status);
            if n > ent {
                format!(
                    "Configured channel limit set to {n}. That is above the {ent} channels of the license, so the license limit applies. It is in force now."
                )
            } else {
                format!("Configured channel limit set to {n}. It is in force now.")
            }
        }
    };
    Ok(after_change(&app, &ctx, StatusCode::OK, message, true).await)
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_same_site_paths_follow_a_login() {
        for ok in [
            "/",
            "/cdrs",
            "/cdrs?from=2026-01-01&sort=start",
            "/a%20b",
            "/reports/daily",
        ] {
            assert_eq!(safe_next(Some(ok)), ok, "{ok}");
        }
        for bad in [
            "//evil.example/",
            "/\\evil.example/",
            "/\t/evil.example/",
            "/%09/evil.example/",
            "/%2509/evil.example/",
            "/%2F/evil.example/",
            "/%5C/evil.example/",
            "/%5c%5cevil.example",
            "https://evil.example/",
            "evil.example",
            "/\n/x",
            "/ /x",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}

//! The CDR browser: `/cdrs` (filters, sortable columns, keyset paging, all plain GET links so
//! it works without JavaScript), `/cdrs/{id}` (every field, related legs with the reason, the
//! SIP message ladder), and the same list as JSON (`/api/v1/cdrs`) and CSV
//! (`/api/v1/cdrs.csv`).
//!
//! The printed shape of a leg ([`LegRecord`], [`CSV_COLUMNS`]) lives here and is shared with
//! `sipmeter read`, so a CSV exported from the GUI and one printed by the CLI have the same
//! columns.

use std::collections::HashMap;
use std::net::SocketAddr;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use calls::time::format_rfc3339;
use calls::{Leg, Micros};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use store::{CdrFilter, CdrPage, CdrQuery, CdrSort, Cursor, Match, MatchCount, PageAt, StoredLeg};

use crate::chrome::Chrome;
use crate::gate::{Ctx, error};
use crate::pages::render;
use crate::state::AppState;

/// Rows per page of the GUI list.
const PAGE_ROWS: u32 = 50;

/// The printed shape of a leg. Field names are a contract: scripts and the CSV header read them.
#[derive(Serialize)]
pub struct LegRecord<'a> {
    pub call_id: &'a str,
    pub sensor_id: u32,
    pub caller: &'a str,
    pub called: &'a str,
    pub caller_domain: &'a str,
    pub called_domain: &'a str,
    pub caller_name: Option<&'a str>,
    pub called_name: Option<&'a str>,
    pub start: String,
    pub answer: Option<String>,
    pub end: String,
    pub duration: f64,
    pub connect_duration: f64,
    pub last_response: Option<u16>,
    pub last_response_text: Option<&'a str>,
    pub end_reason: &'static str,
    pub hangup_by: Option<&'static str>,
    pub transport: &'static str,
    pub src_ip: String,
    pub src_port: u16,
    pub dst_ip: String,
    pub dst_port: u16,
    pub partial: bool,
    pub referred_by: Option<&'a str>,
    pub refer_to: Option<&'a str>,
    pub replaces: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub from_tag: Option<&'a str>,
    pub to_tag: Option<&'a str>,
    pub sip_messages: u32,
}

impl<'a> LegRecord<'a> {
    pub fn new(l: &'a Leg) -> LegRecord<'a> {
        LegRecord {
            call_id: &l.call_id,
            sensor_id: l.sensor_id,
            caller: &l.caller,
            called: &l.called,
            caller_domain: &l.caller_domain,
            called_domain: &l.called_domain,
            caller_name: l.caller_name.as_deref(),
            called_name: l.called_name.as_deref(),
            start: format_rfc3339(l.start),
            answer: l.answer.map(format_rfc3339),
            end: format_rfc3339(l.end),
            duration: l.duration(),
            connect_duration: l.connect_duration(),
            last_response: l.last_response,
            last_response_text: l.last_response_text.as_deref(),
            end_reason: l.end_reason.as_str(),
            hangup_by: l.hangup_by.map(|s| s.as_str()),
            transport: l.transport.as_str(),
            src_ip: l.src_ip.to_string(),
            src_port: l.src_port,
            dst_ip: l.dst_ip.to_string(),
            dst_port: l.dst_port,
            partial: l.partial,
            referred_by: l.referred_by.as_deref(),
            refer_to: l.refer_to.as_deref(),
            replaces: l.replaces.as_deref(),
            user_agent: l.user_agent.as_deref(),
            from_tag: l.from_tag.as_deref(),
            to_tag: l.to_tag.as_deref(),
            sip_messages: l.sip_message_count,
        }
    }
}

/// CSV columns, in order (`sipmeter read --format csv` and the GUI export).
pub const CSV_COLUMNS: &[&str] = &[
    "call_id",
    "sensor_id",
    "caller",
    "called",
    "caller_domain",
    "called_domain",
    "caller_name",
    "called_name",
    "start",
    "answer",
    "end",
    "duration",
    "connect_duration",
    "last_response",
    "last_response_text",
    "end_reason",
    "hangup_by",
    "transport",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "partial",
    "referred_by",
    "refer_to",
    "replaces",
    "user_agent",
    "from_tag",
    "to_tag",
    "sip_messages",
];

/// One CSV line (without the line end) of a leg in [`CSV_COLUMNS`] order. With
/// `guard_formulas`, a text cell a spreadsheet would run as a formula gets a leading `'`:
/// numbers and names come from the network, and a downloaded export must not carry a formula
/// into the operator's spreadsheet (numeric cells such as a negative duration are left alone).
pub fn csv_line(leg: &Leg, guard_formulas: bool) -> String {
    let value = serde_json::to_value(LegRecord::new(leg)).unwrap_or_default();
    CSV_COLUMNS
        .iter()
        .map(|c| csv_cell(&value[*c], guard_formulas))
        .collect::<Vec<_>>()
        .join(",")
}

/// RFC 4180 cell: quoted when it holds a comma, quote or line break; null is empty.
pub fn csv_cell(v: &serde_json::Value, guard_formulas: bool) -> String {
    let s = match v {
        serde_json::Value::Null => return String::new(),
        serde_json::Value::String(s)
            if guard_formulas && s.starts_with(['=', '+', '-', '@', '\t', '\r']) =>
        {
            format!("'{s}")
        }
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Query parameters of the list, the API and the CSV. All strings, so a bad value gets a
/// message naming it instead of a generic rejection.
#[derive(Deserialize, Default, Clone)]
pub struct ListParams {
    from: Option<String>,
    to: Option<String>,
    caller: Option<String>,
    called: Option<String>,
    /// `prefix` (default) or `contains`.
    #[serde(rename = "match")]
    number_match: Option<String>,
    sensor: Option<String>,
    code: Option<String>,
    /// `yes`, `no` or empty.
    answered: Option<String>,
    sort: Option<String>,
    /// `asc` or `desc` (default).
    dir: Option<String>,
    after: Option<String>,
    before: Option<String>,
    limit: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// An instant from a form: RFC 3339, or a local date-time (`2026-11-01T10:00`, as a
/// `datetime-local` input sends) or date in the license time zone.
fn parse_time(s: &str, tz: &jiff::tz::TimeZone, what: &str) -> Result<Micros, String> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts.as_microsecond());
    }
    let dt = s
        .parse::<jiff::civil::DateTime>()
        .or_else(|_| {
            s.parse::<jiff::civil::Date>()
                .map(|d| d.to_datetime(jiff::civil::Time::midnight()))
        })
        .map_err(|_| format!("{what} must be a time like 2026-11-01T10:00, not {s:?}"))?;
    dt.to_zoned(tz.clone())
        .map(|z| z.timestamp().as_microsecond())
        .map_err(|_| format!("{what} {s:?} does not exist in the license time zone"))
}

/// The store query the parameters ask for; `Err` is a message for a 400.
fn query_of(
    p: &ListParams,
    tz: &jiff::tz::TimeZone,
    default_limit: u32,
) -> Result<CdrQuery, String> {
    let sort = match given(&p.sort) {
        None => CdrSort::Start,
        Some(s) => CdrSort::parse(s).ok_or_else(|| {
            format!("sort must be start, duration, caller, called or code, not {s:?}")
        })?,
    };
    let descending = match given(&p.dir) {
        None | Some("desc") => true,
        Some("asc") => false,
        Some(s) => return Err(format!("dir must be asc or desc, not {s:?}")),
    };
    let number_match = match given(&p.number_match) {
        None | Some("prefix") => Match::Prefix,
        Some("contains") => Match::Contains,
        Some(s) => return Err(format!("match must be prefix or contains, not {s:?}")),
    };
    let answered = match given(&p.answered) {
        None => None,
        Some("yes") => Some(true),
        Some("no") => Some(false),
        Some(s) => return Err(format!("answered must be yes or no, not {s:?}")),
    };
    let num = |v: &Option<String>, what: &str| -> Result<Option<u32>, String> {
        given(v)
            .map(|s| {
                s.parse::<u32>()
                    .map_err(|_| format!("{what} must be a number, not {s:?}"))
            })
            .transpose()
    };
    let code = match num(&p.code, "code")? {
        None => None,
        Some(c) => Some(u16::try_from(c).map_err(|_| format!("code {c} is not a SIP code"))?),
    };
    let page = match (given(&p.after), given(&p.before)) {
        (Some(a), _) => PageAt::After(Cursor::parse(a, sort).ok_or("after is not a page cursor")?),
        (None, Some(b)) => {
            PageAt::Before(Cursor::parse(b, sort).ok_or("before is not a page cursor")?)
        }
        (None, None) => PageAt::First,
    };
    Ok(CdrQuery {
        filter: CdrFilter {
            start_from: given(&p.from)
                .map(|s| parse_time(s, tz, "from"))
                .transpose()?,
            start_before: given(&p.to).map(|s| parse_time(s, tz, "to")).transpose()?,
            caller: given(&p.caller).map(str::to_string),
            called: given(&p.called).map(str::to_string),
            number_match,
            sensor_id: num(&p.sensor, "sensor")?,
            code,
            answered,
        },
        sort,
        descending,
        page,
        limit: num(&p.limit, "limit")?
            .unwrap_or(default_limit)
            .clamp(1, store::MAX_PAGE),
        count: false,
    })
}

/// The filter parameters as a query string (no sort, no paging), for links that keep them.
fn filter_qs(p: &ListParams) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (k, v) in [
        ("from", &p.from),
        ("to", &p.to),
        ("caller", &p.caller),
        ("called", &p.called),
        ("match", &p.number_match),
        ("sensor", &p.sensor),
        ("code", &p.code),
        ("answered", &p.answered),
    ] {
        if let Some(v) = given(v) {
            out.push((k, v.to_string()));
        }
    }
    out
}

fn href(path: &str, pairs: &[(&'static str, String)]) -> String {
    let qs = serde_urlencoded::to_string(pairs).unwrap_or_default();
    if qs.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{qs}")
    }
}

fn local(t: Micros, tz: &jiff::tz::TimeZone) -> String {
    jiff::Timestamp::from_microsecond(t)
        .map(|ts| {
            ts.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S%.3f")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_string())
}

fn internal(ctx: &Ctx, what: &str, e: &dyn std::error::Error) -> Response {
    eprintln!("sipmeter serve: {what}: {}", crate::sensor::chain(e));
    error(ctx.route, StatusCode::INTERNAL_SERVER_ERROR, what)
}

struct Row {
    href: String,
    start: String,
    duration: String,
    caller: String,
    called: String,
    code: String,
    answered: &'static str,
    sensor: u32,
    end_reason: &'static str,
}

struct Header {
    label: &'static str,
    href: String,
    /// ` ▲` / ` ▼` on the current sort column.
    mark: &'static str,
}

#[derive(Template)]
#[template(path = "cdrs.html")]
struct ListPage {
    chrome: Chrome,
    from: String,
    to: String,
    caller: String,
    called: String,
    contains: bool,
    sensor: String,
    code: String,
    answered: String,
    sort: &'static str,
    dir: &'static str,
    time_zone: String,
    headers: Vec<Header>,
    rows: Vec<Row>,
    count: String,
    prev: Option<String>,
    next: Option<String>,
    csv: String,
}

/// `GET /cdrs`: the CDR browser.
pub async fn list(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Query(p): Query<ListParams>,
) -> Response {
    let tz = app.license.tz.clone();
    let mut q = match query_of(&p, &tz, PAGE_ROWS) {
        Ok(q) => q,
        Err(m) => return error(ctx.route, StatusCode::BAD_REQUEST, &m),
    };
    q.count = true;
    let page = match app.store.cdr_page(&q).await {
        Ok(p) => p,
        Err(e) => return internal(&ctx, "cannot read the CDRs", &e),
    };
    let filters = filter_qs(&p);
    let sort_pairs = |mut pairs: Vec<(&'static str, String)>| {
        if q.sort != CdrSort::Start {
            pairs.push(("sort", q.sort.as_str().to_string()));
        }
        if !q.descending {
            pairs.push(("dir", "asc".into()));
        }
        if q.limit != PAGE_ROWS {
            pairs.push(("limit", q.limit.to_string()));
        }
        pairs
    };
    let headers = [
        ("Start", CdrSort::Start),
        ("Duration", CdrSort::Duration),
        ("Caller", CdrSort::Caller),
        ("Called", CdrSort::Called),
        ("Code", CdrSort::Code),
    ]
    .into_iter()
    .map(|(label, sort)| {
        // Clicking the current column flips the direction; another column starts descending
        // for numbers (newest, longest, highest first) and ascending for names.
        let desc = if sort == q.sort {
            !q.descending
        } else {
            !matches!(sort, CdrSort::Caller | CdrSort::Called)
        };
        let mut pairs = filters.clone();
        pairs.push(("sort", sort.as_str().to_string()));
        pairs.push(("dir", if desc { "desc" } else { "asc" }.into()));
        Header {
            label,
            href: href("/cdrs", &pairs),
            mark: match (sort == q.sort, q.descending) {
                (false, _) => "",
                (true, true) => " ▼",
                (true, false) => " ▲",
            },
        }
    })
    .collect();
    let page_link = |key: &'static str, c: &Option<Cursor>| {
        c.as_ref().map(|c| {
            let mut pairs = sort_pairs(filters.clone());
            pairs.push((key, c.to_token()));
            href("/cdrs", &pairs)
        })
    };
    let rows = page
        .legs
        .iter()
        .map(|s| {
            let l = &s.leg;
            Row {
                href: format!("/cdrs/{}", s.id),
                start: crate::chrome::When::new(l.start, &tz).to_string(),
                duration: format!("{:.1} s", l.duration()),
                caller: l.caller.clone(),
                called: l.called.clone(),
                code: l.last_response.map_or("–".into(), |c| c.to_string()),
                answered: if l.answer.is_some() { "yes" } else { "no" },
                sensor: l.sensor_id,
                end_reason: l.end_reason.as_str(),
            }
        })
        .collect();
    let count = match page.count {
        Some(MatchCount::Exact(n)) => format!("{n} legs"),
        Some(MatchCount::AtLeast(n)) => format!("more than {n} legs"),
        None => String::new(),
    };
    let v = |o: &Option<String>| given(o).unwrap_or("").to_string();
    render(&ListPage {
        chrome: Chrome::new(&app, &ctx.status, ctx.user.as_ref(), "cdrs"),
        from: v(&p.from),
        to: v(&p.to),
        caller: v(&p.caller),
        called: v(&p.called),
        contains: q.filter.number_match == Match::Contains,
        sensor: v(&p.sensor),
        code: v(&p.code),
        answered: v(&p.answered),
        sort: q.sort.as_str(),
        dir: if q.descending { "desc" } else { "asc" },
        time_zone: tz.iana_name().unwrap_or("UTC").to_string(),
        headers,
        rows,
        count,
        prev: page_link("before", &page.prev),
        next: page_link("after", &page.next),
        csv: href("/api/v1/cdrs.csv", &sort_pairs(filters.clone())),
    })
}

/// A leg in the JSON list: its id and the printed record.
#[derive(Serialize)]
struct ApiLeg<'a> {
    id: i64,
    #[serde(flatten)]
    record: LegRecord<'a>,
}

#[derive(Serialize)]
struct ApiPage<'a> {
    legs: Vec<ApiLeg<'a>>,
    /// Cursor for the next page (`after=`), `null` at the end.
    next: Option<String>,
    /// Cursor for the previous page (`before=`).
    prev: Option<String>,
}

/// `GET /api/v1/cdrs`: one page of the filtered list as JSON.
pub async fn api_list(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Query(p): Query<ListParams>,
) -> Response {
    let q = match query_of(&p, &app.license.tz, 100) {
        Ok(q) => q,
        Err(m) => return error(ctx.route, StatusCode::BAD_REQUEST, &m),
    };
    let page: CdrPage = match app.store.cdr_page(&q).await {
        Ok(p) => p,
        Err(e) => return internal(&ctx, "cannot read the CDRs", &e),
    };
    Json(ApiPage {
        legs: page
            .legs
            .iter()
            .map(|s| ApiLeg {
                id: s.id,
                record: LegRecord::new(&s.leg),
            })
            .collect(),
        next: page.next.map(|c| c.to_token()),
        prev: page.prev.map(|c| c.to_token()),
    })
    .into_response()
}

/// `GET /api/v1/cdrs.csv`: the whole filtered list (in the asked order) as CSV, streamed page
/// by page with the keyset cursor. Memory stays at a few pages whatever the size of the list:
/// pages are read at most `CSV_AHEAD` chunks ahead of the client, so a slow download costs
/// no more than a fast one. The license lock was checked by the gate before the first
/// byte; a store error halfway aborts the body (the client sees a broken transfer, not a
/// short file that looks complete).
pub async fn api_csv(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Query(p): Query<ListParams>,
) -> Response {
    let mut q = match query_of(&p, &app.license.tz, CSV_PAGE_ROWS) {
        Ok(q) => q,
        Err(m) => return error(ctx.route, StatusCode::BAD_REQUEST, &m),
    };
    q.limit = CSV_PAGE_ROWS;
    q.page = PageAt::First;
    q.count = false;
    // The first page is read before answering, so a database that cannot be read gets a 500
    // rather than a 200 with a broken body.
    let first = match app.store.cdr_page(&q).await {
        Ok(p) => p,
        Err(e) => return internal(&ctx, "cannot read the CDRs", &e),
    };
    let mut head = CSV_COLUMNS.join(",");
    head.push_str("\r\n");
    let chunk = csv_chunk(head, &first.legs);
    // The next pages are read by a task one chunk ahead of the client (a channel of
    // CSV_AHEAD chunks), so reading the store overlaps sending; memory stays at a few pages.
    // The task ends when the list does, or at the first failed send (the client went away).
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<axum::body::Bytes>>(CSV_AHEAD);
    if let Some(c) = first.next {
        q.page = PageAt::After(c);
        tokio::spawn(async move {
            loop {
                let item = match app.store.cdr_page(&q).await {
                    Ok(page) => {
                        let chunk = csv_chunk(String::new(), &page.legs);
                        match page.next {
                            Some(c) => q.page = PageAt::After(c),
                            None => {
                                let _ = tx.send(Ok(chunk.into())).await;
                                return;
                            }
                        }
                        Ok(chunk.into())
                    }
                    Err(e) => {
                        eprintln!(
                            "sipmeter serve: CSV export stopped: {}",
                            crate::sensor::chain(&e)
                        );
                        let _ = tx
                            .send(Err(std::io::Error::other("cannot read the CDRs")))
                            .await;
                        return;
                    }
                };
                if tx.send(item).await.is_err() {
                    return;
                }
            }
        });
    }
    let pages = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    let body = futures_util::stream::once(async move {
        Ok::<_, std::io::Error>(axum::body::Bytes::from(chunk))
    })
    .chain(pages);
    csv_response(axum::body::Body::from_stream(body))
}

/// Rows read from the store per CSV chunk (the store's largest page).
const CSV_PAGE_ROWS: u32 = store::MAX_PAGE;
/// CSV chunks read ahead of the client.
const CSV_AHEAD: usize = 2;

/// `legs` as CSV lines after `prefix`.
fn csv_chunk(mut prefix: String, legs: &[StoredLeg]) -> String {
    for s in legs {
        prefix.push_str(&csv_line(&s.leg, true));
        prefix.push_str("\r\n");
    }
    prefix
}

fn csv_response(body: axum::body::Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"sipmeter-cdrs.csv\"",
            ),
        ],
        body,
    )
        .into_response()
}

/// One SIP message of the ladder.
struct Step {
    offset: String,
    /// Empty cells before the arrow, the arrow's span, empty cells after.
    before: usize,
    span: usize,
    after: usize,
    /// Left to right.
    rightwards: bool,
    first_line: String,
    from_to: String,
    text: String,
}

/// The ladder of a leg's messages: columns are the endpoints in order of first appearance.
fn ladder(messages: &[calls::LegMessage]) -> (Vec<String>, Vec<Step>) {
    let mut columns: Vec<SocketAddr> = Vec::new();
    let mut index: HashMap<SocketAddr, usize> = HashMap::new();
    let mut col = |a: SocketAddr| {
        *index.entry(a).or_insert_with(|| {
            columns.push(a);
            columns.len() - 1
        })
    };
    let placed: Vec<(usize, usize)> = messages.iter().map(|m| (col(m.src), col(m.dst))).collect();
    let n = columns.len();
    let t0 = messages.first().map_or(0, |m| m.ts);
    let steps = messages
        .iter()
        .zip(placed)
        .map(|(m, (s, d))| {
            let text = String::from_utf8_lossy(&m.raw).into_owned();
            let first_line = text.lines().next().unwrap_or("").trim_end().to_string();
            let (lo, hi) = (s.min(d), s.max(d));
            Step {
                offset: format!("+{:.3} s", (m.ts - t0) as f64 / 1e6),
                before: lo,
                span: hi - lo + 1,
                after: n - hi - 1,
                rightwards: d >= s,
                first_line,
                from_to: format!("{} → {} ({})", m.src, m.dst, m.transport.as_str()),
                text,
            }
        })
        .collect();
    (columns.iter().map(|a| a.to_string()).collect(), steps)
}

struct Field {
    name: &'static str,
    value: String,
}

struct RelatedRow {
    href: String,
    start: String,
    caller: String,
    called: String,
    sensor: u32,
    call_id: String,
    reasons: Vec<String>,
}

#[derive(Template)]
#[template(path = "cdr.html")]
struct DetailPage {
    chrome: Chrome,
    id: i64,
    call_id: String,
    fields: Vec<Field>,
    related: Vec<RelatedRow>,
    columns: Vec<String>,
    steps: Vec<Step>,
    messages_note: String,
}

fn fields(s: &StoredLeg, tz: &jiff::tz::TimeZone) -> Vec<Field> {
    let value = serde_json::to_value(LegRecord::new(&s.leg)).unwrap_or_default();
    let mut out = vec![Field {
        name: "id",
        value: s.id.to_string(),
    }];
    for c in CSV_COLUMNS {
        let mut v = match &value[*c] {
            serde_json::Value::Null => "–".to_string(),
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let local_of = match *c {
            "start" => Some(s.leg.start),
            "end" => Some(s.leg.end),
            "answer" => s.leg.answer,
            _ => None,
        };
        if let Some(t) = local_of {
            v = format!("{} ({v})", local(t, tz));
        }
        out.push(Field { name: c, value: v });
    }
    out
}

/// `GET /cdrs/{id}`: one leg in full.
pub async fn detail(
    State(app): State<AppState>,
    Extension(ctx): Extension<Ctx>,
    Path(id): Path<String>,
) -> Response {
    let not_found = || error(ctx.route, StatusCode::NOT_FOUND, "no such CDR leg");
    let Ok(id) = id.parse::<i64>() else {
        return not_found();
    };
    let leg = match app.store.leg(id).await {
        Ok(Some(l)) => l,
        Ok(None) => return not_found(),
        Err(e) => return internal(&ctx, "cannot read the CDR", &e),
    };
    let tz = app.license.tz.clone();
    let related = match app.store.related_legs(&leg).await {
        Ok(r) => r,
        Err(e) => return internal(&ctx, "cannot read the related legs", &e),
    };
    // A damaged message blob must not hide the rest of the leg: say so instead.
    let (messages, messages_note) = match app.store.leg_messages(id).await {
        Ok(m) if m.is_empty() => (m, "No SIP messages were kept for this leg.".to_string()),
        Ok(m) => (m, String::new()),
        Err(e) => {
            eprintln!("sipmeter serve: messages of leg {id}: {e}");
            (
                Vec::new(),
                format!("The stored SIP messages cannot be read: {e}"),
            )
        }
    };
    let (columns, steps) = ladder(&messages);
    render(&DetailPage {
        chrome: Chrome::new(&app, &ctx.status, ctx.user.as_ref(), "cdrs"),
        id,
        call_id: leg.leg.call_id.clone(),
        fields: fields(&leg, &tz),
        related: related
            .iter()
            .map(|r| RelatedRow {
                href: format!("/cdrs/{}", r.leg.id),
                start: crate::chrome::When::new(r.leg.leg.start, &tz).to_string(),
                caller: r.leg.leg.caller.clone(),
                called: r.leg.leg.called.clone(),
                sensor: r.leg.leg.sensor_id,
                call_id: r.leg.leg.call_id.clone(),
                reasons: r.relations.iter().map(|x| x.text()).collect(),
            })
            .collect(),
        columns,
        steps,
        messages_note,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_quote_and_guard() {
        assert_eq!(csv_cell(&serde_json::json!("plain"), true), "plain");
        assert_eq!(csv_cell(&serde_json::json!("a,b"), true), "\"a,b\"");
        assert_eq!(csv_cell(&serde_json::json!("=1+2"), true), "'=1+2");
        assert_eq!(csv_cell(&serde_json::json!("=1+2"), false), "=1+2");
        assert_eq!(csv_cell(&serde_json::json!(-1.5), true), "-1.5");
        assert_eq!(csv_cell(&serde_json::Value::Null, true), "");
    }

    #[test]
    fn times_parse_in_the_license_zone() {
        let tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        let a = parse_time("2026-11-01T10:00", &tz, "from").unwrap();
        let b = parse_time("2026-11-01T09:00:00Z", &tz, "from").unwrap();
        assert_eq!(a, b);
        assert!(parse_time("yesterday", &tz, "from").is_err());
    }
}

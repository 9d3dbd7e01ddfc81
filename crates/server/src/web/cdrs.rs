//! The CDR browser: `/cdrs` (filters, sortable columns, keyset paging, all plain GET links so
//! it works without JavaScript) and `/cdrs/{id}` (every field, related legs with the reason,
//! the SIP message ladder). The same list as JSON and CSV, and the printed shape of a leg, are
//! in [`crate::api::cdrs`].

use std::collections::HashMap;
use std::net::SocketAddr;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use calls::Micros;
use store::{CdrSort, Cursor, Match, MatchCount, StoredLeg};

use super::{Chrome, When, render};
use crate::api::cdrs::{CSV_COLUMNS, LegRecord, ListParams, given, query_of};
use crate::error::{AppError, Context};
use crate::http::Ctx;
use crate::state::AppState;

/// Rows per page of the GUI list.
const PAGE_ROWS: u32 = 50;

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
) -> Result<Response, AppError> {
    let tz = app.license.tz.clone();
    let mut q = query_of(&p, &tz, PAGE_ROWS).map_err(AppError::bad_request)?;
    q.count = true;
    let page = app
        .store
        .cdr_page(&q)
        .await
        .context("cannot read the CDRs")?;
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
                start: When::new(l.start, &tz).to_string(),
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
    Ok(render(&ListPage {
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
    }))
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
) -> Result<Response, AppError> {
    let not_found = || AppError::not_found("no such CDR leg");
    let id = id.parse::<i64>().map_err(|_| not_found())?;
    let leg = app
        .store
        .leg(id)
        .await
        .context("cannot read the CDR")?
        .ok_or_else(not_found)?;
    let tz = app.license.tz.clone();
    let related = app
        .store
        .related_legs(&leg)
        .await
        .context("cannot read the related legs")?;
    // A damaged message blob must not hide the rest of the leg: say so instead.
    let (messages, messages_note) = match app.store.leg_messages(id).await {
        Ok(m) if m.is_empty() => (m, "No SIP messages were kept for this leg.".to_string()),
        Ok(m) => (m, String::new()),
        Err(e) => {
            tracing::error!("messages of leg {id}: {e}");
            (
                Vec::new(),
                format!("The stored SIP messages cannot be read: {e}"),
            )
        }
    };
    let (columns, steps) = ladder(&messages);
    Ok(render(&DetailPage {
        chrome: Chrome::new(&app, &ctx.status, ctx.user.as_ref(), "cdrs"),
        id,
        call_id: leg.leg.call_id.clone(),
        fields: fields(&leg, &tz),
        related: related
            .iter()
            .map(|r| RelatedRow {
                href: format!("/cdrs/{}", r.leg.id),
                start: When::new(r.leg.leg.start, &tz).to_string(),
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
    }))
}

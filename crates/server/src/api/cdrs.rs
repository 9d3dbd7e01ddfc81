//! The CDR list as data: `/api/v1/cdrs` (one page as JSON) and `/api/v1/cdrs.csv` (the whole
//! filtered list, streamed), the query parameters they share with the CDR browser
//! ([`crate::web::cdrs`]), and the printed shape of a leg ([`LegRecord`], [`CSV_COLUMNS`]),
//! shared with `sipmeter read`, so a CSV exported from the GUI and one printed by the CLI have
//! the same columns.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use calls::time::format_rfc3339;
use calls::{Leg, Micros};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use store::{CdrFilter, CdrPage, CdrQuery, CdrSort, Cursor, Match, PageAt, StoredLeg};

use crate::error::{AppError, Context, chain};
use crate::state::AppState;

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
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    pub(crate) caller: Option<String>,
    pub(crate) called: Option<String>,
    /// `prefix` (default) or `contains`.
    #[serde(rename = "match")]
    pub(crate) number_match: Option<String>,
    pub(crate) sensor: Option<String>,
    pub(crate) code: Option<String>,
    /// `yes`, `no` or empty.
    pub(crate) answered: Option<String>,
    pub(crate) sort: Option<String>,
    /// `asc` or `desc` (default).
    pub(crate) dir: Option<String>,
    pub(crate) after: Option<String>,
    pub(crate) before: Option<String>,
    pub(crate) limit: Option<String>,
}

pub(crate) fn given(v: &Option<String>) -> Option<&str> {
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
pub(crate) fn query_of(
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
    Query(p): Query<ListParams>,
) -> Result<Response, AppError> {
    let q = query_of(&p, &app.license.tz, 100).map_err(AppError::bad_request)?;
    let page: CdrPage = app
        .store
        .cdr_page(&q)
        .await
        .context("cannot read the CDRs")?;
    Ok(Json(ApiPage {
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
    .into_response())
}

/// `GET /api/v1/cdrs.csv`: the whole filtered list (in the asked order) as CSV, streamed page
/// by page with the keyset cursor. Memory stays at a few pages whatever the size of the list:
/// pages are read at most `CSV_AHEAD` chunks ahead of the client, so a slow download costs
/// no more than a fast one. The license lock was checked by the gate before the first
/// byte; a store error halfway aborts the body (the client sees a broken transfer, not a
/// short file that looks complete).
pub async fn api_csv(
    State(app): State<AppState>,
    Query(p): Query<ListParams>,
) -> Result<Response, AppError> {
    let mut q = query_of(&p, &app.license.tz, CSV_PAGE_ROWS).map_err(AppError::bad_request)?;
    q.limit = CSV_PAGE_ROWS;
    q.page = PageAt::First;
    q.count = false;
    // The first page is read before answering, so a database that cannot be read gets a 500
    // rather than a 200 with a broken body.
    let first = app
        .store
        .cdr_page(&q)
        .await
        .context("cannot read the CDRs")?;
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
                        tracing::error!("CSV export stopped: {}", chain(&e));
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
    Ok(csv_response(axum::body::Body::from_stream(body)))
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

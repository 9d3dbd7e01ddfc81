//! The Reports page's daily report: per local day of the license time zone, calls (legs),
//! answered, ASR, ACD, failures by final SIP code, cancelled, and the channel peak; as figures
//! for the page and as CSV.
//!
//! Pure: the leg figures come in as outcome aggregates ([`store::DayOutcomes`], summed by the
//! database with `Store::leg_outcomes`, or by [`outcomes_from_legs`] from legs in memory), the
//! peaks as a `channels::Report` built from the stored minute rows. Both sources are keyed by
//! the same `[start, end)` windows of [`report_days`], so a day means the same thing in every
//! column, including the 23- and 25-hour days of a DST change.
//!
//! Definitions (stated once, here, because users compare them with other tools):
//! - a call is a CDR leg, counted on the day its `start` falls in;
//! - answered = the leg had a 2xx to the INVITE; ASR = answered / calls × 100;
//! - ACD = mean connect duration (`end − answer`) of the answered legs, in seconds;
//! - failures by code = the unanswered legs per final response code (cancelled calls show up
//!   as their 487; legs with no final response at all under "no final response"), so the
//!   failure counts of a day add up to calls − answered;
//! - cancelled = legs that ended by CANCEL.

use std::collections::BTreeMap;
use std::fmt::Write;

use calls::{EndReason, Leg, Micros};
use channels::{Report, Window};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use store::{DayOutcomes, OutcomeGroup};

/// The longest report [`report_days`] builds: a year, one database query per day.
pub const MAX_DAYS: usize = 366;

/// Why a daily report cannot be built.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum DailyError {
    #[error("the first day {first} is after the last day {last}")]
    BadDayRange { first: Date, last: Date },
    #[error("a daily report covers at most {max} days ({first} to {last} is longer)")]
    TooManyDays { first: Date, last: Date, max: usize },
    #[error("cannot place the days in the license time zone: {0}")]
    TimeZone(#[from] channels::ChannelsError),
}

/// A local day of the report and the instants it covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportDay {
    pub day: Date,
    pub window: Window,
}

/// The days `first..=last` in `tz` with their `[start, end)` instants: what to pass to
/// `Store::leg_outcomes` (as windows) and to [`daily_report`].
pub fn report_days(first: Date, last: Date, tz: &TimeZone) -> Result<Vec<ReportDay>, DailyError> {
    if first > last {
        return Err(DailyError::BadDayRange { first, last });
    }
    let mut out = Vec::new();
    let mut day = first;
    loop {
        if out.len() == MAX_DAYS {
            return Err(DailyError::TooManyDays {
                first,
                last,
                max: MAX_DAYS,
            });
        }
        out.push(ReportDay {
            day,
            window: channels::day_bounds(day, tz)?,
        });
        if day >= last {
            return Ok(out);
        }
        day = day.tomorrow().map_err(channels::ChannelsError::from)?;
    }
}

/// The windows of the days, in order (the argument of `Store::leg_outcomes`).
pub fn windows(days: &[ReportDay]) -> Vec<Window> {
    days.iter().map(|d| d.window).collect()
}

/// The outcome aggregates of legs held in memory, with exactly the meaning of
/// `Store::leg_outcomes` (same grouping, same order, same smallest reason text): for reports
/// straight from captures, and to check one against the other.
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "only the tests read reports from legs in memory so far"
    )
)]
pub fn outcomes_from_legs(legs: &[Leg], days: &[Window]) -> Vec<DayOutcomes> {
    type Key = (Option<u16>, bool, &'static str);
    days.iter()
        .map(|&window| {
            let mut groups: BTreeMap<Key, OutcomeGroup> = BTreeMap::new();
            for leg in legs
                .iter()
                .filter(|l| l.start >= window.start && l.start < window.end)
            {
                let answered = leg.answer.is_some();
                let key = (leg.last_response, answered, leg.end_reason.as_str());
                let g = groups.entry(key).or_insert_with(|| OutcomeGroup {
                    last_response: leg.last_response,
                    reason_text: None,
                    answered,
                    end_reason: leg.end_reason,
                    legs: 0,
                    connect_us: 0,
                });
                g.legs += 1;
                if let Some(a) = leg.answer {
                    g.connect_us += u64::try_from(leg.end.saturating_sub(a)).unwrap_or(0);
                }
                if let Some(t) = &leg.last_response_text
                    && g.reason_text.as_ref().is_none_or(|cur| t < cur)
                {
                    g.reason_text = Some(t.clone());
                }
            }
            DayOutcomes {
                window,
                groups: groups.into_values().collect(),
            }
        })
        .collect()
}

/// Unanswered legs that ended with one final code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `None`: no final response was seen (timeouts, end of capture).
    pub code: Option<u16>,
    /// The reason phrase stored with the code, or the standard phrase when none was stored.
    pub reason: String,
    pub count: u64,
}

/// The figures of a day (or of the whole report).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub calls: u64,
    pub answered: u64,
    /// calls − answered (= Σ failures).
    pub failed: u64,
    pub cancelled: u64,
    /// Σ connect duration of the answered legs, µs.
    pub connect_us: u64,
    /// Most frequent first; ties by code, "no final response" last.
    pub failures: Vec<Failure>,
    /// The highest `channels(t)`; `None` when the channel figures do not cover the day.
    pub peak_channels: Option<u32>,
    /// The first instant of that peak (none for a day without any channel).
    pub peak_at: Option<Micros>,
}

impl Figures {
    /// Answer-seizure ratio in percent; `None` for a day without calls.
    pub fn asr_percent(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.answered as f64 * 100.0 / self.calls as f64)
    }

    /// Average call duration (connect time) of the answered calls in seconds; `None` when
    /// nothing was answered.
    pub fn acd_seconds(&self) -> Option<f64> {
        (self.answered > 0).then(|| self.connect_us as f64 / self.answered as f64 / 1e6)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct DayReport {
    pub day: Date,
    pub figures: Figures,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DailyReport {
    pub days: Vec<DayReport>,
    /// All days together (peak = the highest day peak).
    pub total: Figures,
}

/// The daily report of `days` from the outcome aggregates (matched to the days by window; a
/// day without aggregates had no calls) and the channel report (matched by date; a day it does
/// not cover has no peak figure).
pub fn daily_report(
    days: &[ReportDay],
    outcomes: &[DayOutcomes],
    channels: Option<&Report>,
) -> DailyReport {
    let mut total_groups: Vec<&OutcomeGroup> = Vec::new();
    let mut out = Vec::with_capacity(days.len());
    let mut total_peak: Option<(u32, Option<Micros>)> = None;
    for d in days {
        let groups: Vec<&OutcomeGroup> = outcomes
            .iter()
            .filter(|o| o.window == d.window)
            .take(1)
            .flat_map(|o| &o.groups)
            .collect();
        let mut figures = figures_of(&groups);
        if let Some(stats) = channels.and_then(|r| r.days.iter().find(|s| s.day == d.day)) {
            figures.peak_channels = Some(stats.stats.peak.map_or(0, |p| p.value));
            figures.peak_at = stats.stats.peak.filter(|p| p.value > 0).map(|p| p.at);
            let p = (figures.peak_channels.unwrap_or(0), figures.peak_at);
            if total_peak.is_none_or(|(best, _)| p.0 > best) {
                total_peak = Some(p);
            }
        }
        total_groups.extend(groups);
        out.push(DayReport {
            day: d.day,
            figures,
        });
    }
    let mut total = figures_of(&total_groups);
    if let Some((peak, at)) = total_peak {
        total.peak_channels = Some(peak);
        total.peak_at = at;
    }
    DailyReport { days: out, total }
}

fn figures_of(groups: &[&OutcomeGroup]) -> Figures {
    let mut f = Figures::default();
    // code -> (count, smallest stored reason text)
    let mut by_code: BTreeMap<Option<u16>, (u64, Option<&str>)> = BTreeMap::new();
    for g in groups {
        f.calls += g.legs;
        if g.answered {
            f.answered += g.legs;
            f.connect_us = f.connect_us.saturating_add(g.connect_us);
        } else {
            let e = by_code.entry(g.last_response).or_insert((0, None));
            e.0 += g.legs;
            if let Some(t) = g.reason_text.as_deref()
                && e.1.is_none_or(|cur| t < cur)
            {
                e.1 = Some(t);
            }
        }
        if g.end_reason == EndReason::Cancel {
            f.cancelled += g.legs;
        }
    }
    f.failed = f.calls - f.answered;
    f.failures = by_code
        .into_iter()
        .map(|(code, (count, text))| Failure {
            code,
            reason: match text {
                Some(t) if !t.trim().is_empty() => t.to_string(),
                _ => standard_reason(code).to_string(),
            },
            count,
        })
        .collect();
    f.failures.sort_by_key(|x| {
        (
            std::cmp::Reverse(x.count),
            x.code.map_or(u32::MAX, u32::from),
        )
    });
    f
}

/// The usual phrase of a final code (RFC 3261 and common extensions), for legs that stored
/// none.
fn standard_reason(code: Option<u16>) -> &'static str {
    match code {
        None => "no final response",
        Some(c) => match c {
            400 => "Bad Request",
            401 => "Unauthorized",
            402 => "Payment Required",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            407 => "Proxy Authentication Required",
            408 => "Request Timeout",
            410 => "Gone",
            480 => "Temporarily Unavailable",
            481 => "Call/Transaction Does Not Exist",
            483 => "Too Many Hops",
            484 => "Address Incomplete",
            486 => "Busy Here",
            487 => "Request Terminated",
            488 => "Not Acceptable Here",
            500 => "Server Internal Error",
            501 => "Not Implemented",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Server Time-out",
            600 => "Busy Everywhere",
            603 => "Decline",
            604 => "Does Not Exist Anywhere",
            606 => "Not Acceptable",
            100..=199 => "provisional response only",
            200..=299 => "answered elsewhere",
            _ => "",
        },
    }
}

/// The daily figures as CSV (RFC 4180: CRLF line ends, a header row, quoted where needed), one
/// row per day. Empty cells where a figure does not exist (ASR of a day without calls). Peak
/// times are local times of `tz` with their offset, as the page shows them.
pub fn daily_csv(report: &DailyReport, tz: &TimeZone) -> String {
    let mut out = String::from(
        "day,calls,answered,failed,cancelled,asr_percent,acd_seconds,peak_channels,peak_at\r\n",
    );
    for d in &report.days {
        let f = &d.figures;
        let _ = write!(
            out,
            "{},{},{},{},{},{},{},{},{}\r\n",
            d.day,
            f.calls,
            f.answered,
            f.failed,
            f.cancelled,
            f.asr_percent().map_or(String::new(), |v| format!("{v:.2}")),
            f.acd_seconds().map_or(String::new(), |v| format!("{v:.1}")),
            f.peak_channels.map_or(String::new(), |v| v.to_string()),
            f.peak_at.map_or(String::new(), |t| local_time(t, tz)),
        );
    }
    out
}

/// Failures by code as CSV (RFC 4180), one row per (day, code): `code` is empty for legs
/// without a final response.
pub fn failures_csv(report: &DailyReport) -> String {
    let mut out = String::from("day,code,reason,count\r\n");
    for d in &report.days {
        for x in &d.figures.failures {
            let _ = write!(
                out,
                "{},{},{},{}\r\n",
                d.day,
                x.code.map_or(String::new(), |c| c.to_string()),
                csv_text(&x.reason),
                x.count
            );
        }
    }
    out
}

/// A text cell. Quoted when it holds a comma, quote or line break (quotes doubled). Text that a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) gets a leading `'`:
/// reason phrases come from the network, and a CSV export must not carry a formula into the
/// operator's spreadsheet.
fn csv_text(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

fn local_time(t: Micros, tz: &TimeZone) -> String {
    jiff::Timestamp::from_microsecond(t)
        .map(|ts| {
            ts.to_zoned(tz.clone())
                .strftime("%Y-%m-%dT%H:%M:%S%:z")
                .to_string()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    const S: Micros = 1_000_000;
    const HOUR: Micros = 3600 * S;
    /// 2026-11-01T00:00:00Z
    const D0: Micros = 1_793_491_200 * S;

    /// A leg starting at `start`; answered legs are answered 2 s in and connected `connect_s`.
    fn leg(
        id: &str,
        start: Micros,
        answered_for: Option<i64>,
        code: Option<u16>,
        text: Option<&str>,
        reason: EndReason,
    ) -> Leg {
        Leg::builder()
            .call_id(id)
            .start(start)
            .answer(answered_for.map(|_| start + 2 * S))
            .end(start + 2 * S + answered_for.unwrap_or(5) * S)
            .last_response(code)
            .last_response_text(text)
            .end_reason(reason)
            .sip_message_count(5)
            .build()
    }

    fn sample_legs() -> Vec<Leg> {
        use EndReason::*;
        let d1 = D0 + 24 * HOUR;
        vec![
            // 2026-11-01: 3 answered (60 + 90 + 30 s), busy, 2 cancelled, not found without a
            // stored phrase, one without any final response.
            leg(
                "a1",
                D0 + 10 * HOUR,
                Some(60),
                Some(200),
                Some("OK"),
                ByeConfirmed,
            ),
            leg("a2", D0 + 11 * HOUR, Some(90), Some(200), Some("OK"), Bye),
            leg(
                "a3",
                D0 + 12 * HOUR,
                Some(30),
                Some(200),
                Some("OK"),
                ByeConfirmed,
            ),
            leg(
                "b1",
                D0 + 13 * HOUR,
                None,
                Some(486),
                Some("Busy Here"),
                NotAnswered,
            ),
            leg(
                "c1",
                D0 + 14 * HOUR,
                None,
                Some(487),
                Some("Request Terminated"),
                Cancel,
            ),
            leg(
                "c2",
                D0 + 15 * HOUR,
                None,
                Some(487),
                Some("Request Terminated"),
                Cancel,
            ),
            leg("n1", D0 + 16 * HOUR, None, Some(404), None, NotAnswered),
            leg("z1", d1 - 1, None, None, None, TimeoutZombie),
            // 2026-11-02: one answered (45 s), one 503 with a formula for a reason phrase.
            leg("a4", d1, Some(45), Some(200), Some("OK"), ByeConfirmed),
            leg(
                "f1",
                d1 + HOUR,
                None,
                Some(503),
                Some("=HYPERLINK(\"x\")"),
                NotAnswered,
            ),
            // 2026-11-03: not in the report.
            leg(
                "late",
                d1 + 24 * HOUR,
                Some(10),
                Some(200),
                Some("OK"),
                ByeConfirmed,
            ),
        ]
    }

    fn sample() -> (Vec<ReportDay>, DailyReport) {
        let tz = TimeZone::UTC;
        let days = report_days(date(2026, 11, 1), date(2026, 11, 2), &tz).unwrap();
        let outcomes = outcomes_from_legs(&sample_legs(), &windows(&days));
        // Channel figures: 3 channels at 10:00:30 on the first day, nothing on the second.
        let rows = [channels::MinuteRow {
            start: D0 + 10 * HOUR,
            peak: 3,
            peak_at: D0 + 10 * HOUR + 30 * S,
            integral: 120 * S as u64,
            covered: 60 * S as u64,
        }];
        let rep = channels::report(&rows, &tz, date(2026, 11, 1), date(2026, 11, 2)).unwrap();
        let report = daily_report(&days, &outcomes, Some(&rep));
        (days, report)
    }

    fn failure(code: Option<u16>, reason: &str, count: u64) -> Failure {
        Failure {
            code,
            reason: reason.into(),
            count,
        }
    }

    #[test]
    fn figures_per_day_by_hand() {
        let (_, r) = sample();
        assert_eq!(r.days.len(), 2);
        let f = &r.days[0].figures;
        assert_eq!(r.days[0].day, date(2026, 11, 1));
        assert_eq!((f.calls, f.answered, f.failed, f.cancelled), (8, 3, 5, 2));
        assert_eq!(f.asr_percent(), Some(37.5));
        assert_eq!(f.acd_seconds(), Some(60.0));
        assert_eq!(
            f.failures,
            vec![
                failure(Some(487), "Request Terminated", 2),
                failure(Some(404), "Not Found", 1),
                failure(Some(486), "Busy Here", 1),
                failure(None, "no final response", 1),
            ]
        );
        assert_eq!(f.failures.iter().map(|x| x.count).sum::<u64>(), f.failed);
        assert_eq!(
            (f.peak_channels, f.peak_at),
            (Some(3), Some(D0 + 10 * HOUR + 30 * S))
        );

        let g = &r.days[1].figures;
        assert_eq!((g.calls, g.answered, g.failed, g.cancelled), (2, 1, 1, 0));
        assert_eq!((g.asr_percent(), g.acd_seconds()), (Some(50.0), Some(45.0)));
        assert_eq!((g.peak_channels, g.peak_at), (Some(0), None));

        let t = &r.total;
        assert_eq!((t.calls, t.answered, t.failed, t.cancelled), (10, 4, 6, 2));
        assert_eq!(t.asr_percent(), Some(40.0));
        // (60 + 90 + 30 + 45) / 4
        assert_eq!(t.acd_seconds(), Some(56.25));
        assert_eq!(t.peak_channels, Some(3));
        assert_eq!(t.failures[0], failure(Some(487), "Request Terminated", 2));
    }

    #[test]
    fn csv_by_hand() {
        let (_, r) = sample();
        assert_eq!(
            daily_csv(&r, &TimeZone::UTC),
            "day,calls,answered,failed,cancelled,asr_percent,acd_seconds,peak_channels,peak_at\r\n\
             2026-11-01,8,3,5,2,37.50,60.0,3,2026-11-01T10:00:30+00:00\r\n\
             2026-11-02,2,1,1,0,50.00,45.0,0,\r\n"
        );
        assert_eq!(
            failures_csv(&r),
            "day,code,reason,count\r\n\
             2026-11-01,487,Request Terminated,2\r\n\
             2026-11-01,404,Not Found,1\r\n\
             2026-11-01,486,Busy Here,1\r\n\
             2026-11-01,,no final response,1\r\n\
             2026-11-02,503,\"'=HYPERLINK(\"\"x\"\")\",1\r\n"
        );
        assert_eq!(csv_text("a,b"), "\"a,b\"");
        assert_eq!(csv_text("line\nbreak"), "\"line\nbreak\"");
        assert_eq!(csv_text("-1"), "'-1");
        assert_eq!(csv_text("plain"), "plain");
    }

    #[test]
    fn days_without_anything_have_no_ratios() {
        let days = report_days(date(2026, 11, 1), date(2026, 11, 1), &TimeZone::UTC).unwrap();
        let r = daily_report(&days, &[], None);
        let f = &r.days[0].figures;
        assert_eq!((f.calls, f.asr_percent(), f.acd_seconds()), (0, None, None));
        assert_eq!((f.peak_channels, f.peak_at), (None, None));
        assert!(f.failures.is_empty());
        assert_eq!(
            daily_csv(&r, &TimeZone::UTC),
            "day,calls,answered,failed,cancelled,asr_percent,acd_seconds,peak_channels,peak_at\r\n\
             2026-11-01,0,0,0,0,,,,\r\n"
        );
        assert_eq!(failures_csv(&r), "day,code,reason,count\r\n");
        assert_eq!(daily_report(&[], &[], None).days, vec![]);
    }

    #[test]
    fn local_days_follow_the_license_zone_across_dst() {
        let tz = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let days = report_days(date(2024, 10, 27), date(2024, 10, 28), &tz).unwrap();
        assert_eq!(days[0].window.end - days[0].window.start, 25 * HOUR);
        assert_eq!(days[1].window.end - days[1].window.start, 24 * HOUR);
        // 2024-10-27T01:30Z is 02:30 CET (the second 02:30 that day); 23:30Z is 00:30 on the
        // 28th; 2024-10-26T22:30Z is 00:30 CEST on the 27th.
        let t = |s: &str| calls::time::parse_rfc3339(s).unwrap();
        let legs = [
            leg(
                "x",
                t("2024-10-26T22:30:00Z"),
                Some(10),
                Some(200),
                None,
                EndReason::Bye,
            ),
            leg(
                "y",
                t("2024-10-27T01:30:00Z"),
                None,
                Some(486),
                None,
                EndReason::NotAnswered,
            ),
            leg(
                "z",
                t("2024-10-27T23:30:00Z"),
                Some(20),
                Some(200),
                None,
                EndReason::Bye,
            ),
        ];
        let r = daily_report(&days, &outcomes_from_legs(&legs, &windows(&days)), None);
        assert_eq!(
            (r.days[0].figures.calls, r.days[0].figures.answered),
            (2, 1)
        );
        assert_eq!(
            (r.days[1].figures.calls, r.days[1].figures.answered),
            (1, 1)
        );
        assert_eq!(r.days[1].figures.acd_seconds(), Some(20.0));
    }

    #[test]
    fn bad_day_ranges_are_errors() {
        let tz = TimeZone::UTC;
        assert!(matches!(
            report_days(date(2026, 11, 2), date(2026, 11, 1), &tz),
            Err(DailyError::BadDayRange { .. })
        ));
        assert!(matches!(
            report_days(date(2025, 1, 1), date(2026, 1, 2), &tz),
            Err(DailyError::TooManyDays { max: 366, .. })
        ));
        assert_eq!(
            report_days(date(2024, 1, 1), date(2024, 12, 31), &tz)
                .unwrap()
                .len(),
            366
        );
        assert!(report_days(date(9999, 12, 31), date(9999, 12, 31), &tz).is_err());
    }

    /// The database sums exactly what the in-memory aggregation sums.
    #[tokio::test]
    async fn store_aggregates_equal_the_in_memory_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = store::Store::open_sqlite(dir.path()).await.unwrap();
        let legs = sample_legs();
        store.insert_legs(&legs).await.unwrap();
        let days = report_days(date(2026, 11, 1), date(2026, 11, 3), &TimeZone::UTC).unwrap();
        let from_db = store.leg_outcomes(&windows(&days)).await.unwrap();
        assert_eq!(from_db, outcomes_from_legs(&legs, &windows(&days)));
        assert_eq!(from_db[2].groups.len(), 1);
        store.close().await;
    }
}

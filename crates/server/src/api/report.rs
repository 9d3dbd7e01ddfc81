//! The JSON shape of the Concurrent Calls Stats report, shared by `sipmeter channels --format
//! json` and `GET /api/v1/channels/stats` so that scripts written against one work with the
//! other.

use calls::Micros;
use calls::time::format_rfc3339;
use channels::{ActiveMode, Report};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::{Deserialize, Serialize};

/// One day of the report: its peak, when, and the time-weighted mean over the whole day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayOut {
    pub day: String,
    pub peak: u32,
    pub peak_at: Option<String>,
    pub mean: Option<f64>,
}

/// One 60-minute window: its maximum and time-weighted mean.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HourOut {
    pub start: String,
    pub max: u32,
    pub mean: f64,
}

/// The whole report: overall peak, days, hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportOut {
    pub peak: u32,
    pub peak_at: Option<String>,
    pub time_zone: String,
    pub mode: String,
    pub from: String,
    pub to: String,
    pub days: Vec<DayOut>,
    pub hours: Vec<HourOut>,
}

/// Name of a channel mode as the report and the config spell it.
pub fn mode_name(mode: ActiveMode) -> &'static str {
    match mode {
        ActiveMode::Signalling => "signalling",
        ActiveMode::Answered => "answered",
    }
}

impl ReportOut {
    pub fn new(rep: &Report, tz: &TimeZone, mode: ActiveMode, from: Date, to: Date) -> ReportOut {
        ReportOut {
            peak: rep.peak.map_or(0, |p| p.value),
            peak_at: rep.peak.map(|p| format_rfc3339(p.at)),
            time_zone: tz.iana_name().unwrap_or("UTC").to_string(),
            mode: mode_name(mode).to_string(),
            from: from.to_string(),
            to: to.to_string(),
            days: rep
                .days
                .iter()
                .map(|d| DayOut {
                    day: d.day.to_string(),
                    peak: d.stats.peak.map_or(0, |p| p.value),
                    peak_at: d.stats.peak.map(|p| format_rfc3339(p.at)),
                    mean: mean_over(d.stats.integral, d.stats.start, d.stats.end),
                })
                .collect(),
            hours: rep
                .hours
                .iter()
                .map(|h| HourOut {
                    start: format_rfc3339(h.start),
                    max: h.peak.map_or(0, |p| p.value),
                    mean: mean_over(h.integral, h.start, h.end).unwrap_or(0.0),
                })
                .collect(),
        }
    }
}

/// Time-weighted mean over the whole period: minutes without a row had no channel, so they
/// count as zero rather than being left out.
pub fn mean_over(integral: u128, start: Micros, end: Micros) -> Option<f64> {
    (end > start).then(|| integral as f64 / (end - start) as f64)
}

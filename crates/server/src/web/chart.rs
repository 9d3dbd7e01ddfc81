//! Server-side SVG charts: pure functions from figures to SVG text.
//!
//! Rendered on the server so the pages need no JavaScript and no CDN (the GUI must work in a
//! plain browser, on an air-gapped network, and on paper). Each chart is one `<svg>` element to
//! inline in the page: inlined, its links work and its text is searchable and read by screen
//! readers (`<title>`/`<desc>`, text labels, an `aria-label` on every link). Colours are plain
//! attributes, not CSS, so printing keeps them, and the limit line is dashed so it still reads
//! in grey.
//!
//! The functions are total: empty data, a zero limit, a peak far above the limit, 23- and
//! 25-hour days or NaN means give a sensible picture, never a panic. Output is deterministic
//! (fixed number formatting, input order), so pages can be compared and cached. Every text that
//! comes from outside (time zone label, URLs) is XML-escaped.

use std::fmt::Write;

use calls::Micros;
use channels::{DayStats, MinuteRow, Peak, Period, Window};
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// One bar of a chart: a time window with its maximum and time-weighted mean of `channels(t)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub start: Micros,
    pub end: Micros,
    /// The highest channel count in the window; `None` when nothing is known (not drawn).
    pub max: Option<u32>,
    /// Time-weighted mean over the window; `None` breaks the mean line.
    pub mean: Option<f64>,
}

impl Bucket {
    /// The figures of a report period, as the `channels` CLI and the JSON API print them:
    /// minutes without a stored row had no channel, so they count as 0 in the mean, and a
    /// period with no row at all is 0, not unknown. Callers drop the hours after "now" if they
    /// do not want the rest of today drawn as zero.
    pub fn from_period(p: &Period) -> Bucket {
        let len = p.end.saturating_sub(p.start);
        Bucket {
            start: p.start,
            end: p.end,
            max: Some(p.peak.map_or(0, |pk| pk.value)),
            mean: (len > 0).then(|| p.integral as f64 / len as f64),
        }
    }
}

/// One local day of the Concurrent Calls Stats chart: where it lies, and its peak (linked to
/// its explanation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DayMark {
    pub day: Date,
    pub start: Micros,
    pub end: Micros,
    pub peak: Option<Peak>,
}

impl DayMark {
    pub fn from_day_stats(d: &DayStats) -> DayMark {
        DayMark {
            day: d.day,
            start: d.stats.start,
            end: d.stats.end,
            peak: d.stats.peak,
        }
    }
}

/// The most buckets [`buckets_from_minutes`] makes: a guard against a mistaken width turning
/// into an unbounded allocation (a 24-hour chart needs 288 at 5 minutes).
pub const MAX_BUCKETS: usize = 10_000;

/// Buckets of `width` µs tiling `window` from its start (the last one cut at the window's end),
/// from stored minute rows: max = highest minute peak, mean = Σ integrals / bucket length
/// (minutes without a row had no channel). Rows outside the window are ignored. A width that
/// is not positive gives no buckets; at most [`MAX_BUCKETS`] are made.
pub fn buckets_from_minutes(rows: &[MinuteRow], window: Window, width: Micros) -> Vec<Bucket> {
    if width <= 0 || window.end <= window.start {
        return Vec::new();
    }
    let span = i128::from(window.end) - i128::from(window.start);
    let width_wide = i128::from(width);
    let n = span.div_euclid(width_wide) + i128::from(span % width_wide != 0);
    let n = n.min(MAX_BUCKETS as i128) as usize;
    let mut peaks = vec![0u32; n];
    let mut integrals = vec![0u128; n];
    for r in rows {
        if r.start < window.start || r.start >= window.end {
            continue;
        }
        let i = ((i128::from(r.start) - i128::from(window.start)) / width_wide) as usize;
        if i < n {
            peaks[i] = peaks[i].max(r.peak);
            integrals[i] += u128::from(r.integral);
        }
    }
    (0..n)
        .map(|i| {
            let start = window
                .start
                .saturating_add((i as i64).saturating_mul(width));
            let end = start.saturating_add(width).min(window.end);
            Bucket {
                start,
                end,
                max: Some(peaks[i]),
                mean: Some(integrals[i] as f64 / (end as f64 - start as f64).max(1.0)),
            }
        })
        .collect()
}

/// The Tools > Concurrent Calls Stats chart: per 60-minute window the maximum (bars) and the
/// time-weighted mean (line), the license limit (dashed, labelled), day separators with date
/// labels, and each day's peak marked and linked to `explain_url(day)`.
///
/// `hours` and `days` are usually `Report::hours` / `Report::days` through
/// [`Bucket::from_period`] and [`DayMark::from_day_stats`]. The time axis spans the days (or
/// the hours when no day is given), so 23- and 25-hour days take their true width. `tz` gives
/// the local times in labels; `tz_label` is how the zone is named on the page.
pub fn concurrent_calls_chart(
    hours: &[Bucket],
    days: &[DayMark],
    limit: Option<u32>,
    tz: &TimeZone,
    tz_label: &str,
    explain_url: &dyn Fn(Date) -> String,
) -> String {
    let hours = clean(hours);
    let days: Vec<DayMark> = days.iter().copied().filter(|d| d.end > d.start).collect();
    let (x0, x1) = match (days.first(), days.last()) {
        (Some(f), Some(l)) => (f.start, l.end.max(f.start.saturating_add(1))),
        _ => extent(&hours),
    };
    let data_max = hours
        .iter()
        .filter_map(|b| b.max)
        .chain(days.iter().filter_map(|d| d.peak.map(|p| p.value)))
        .max()
        .unwrap_or(0);
    let plot = Plot::new(x0, x1, data_max, limit);

    let range = match (days.first(), days.last()) {
        (Some(f), Some(l)) => format!("{} to {}", f.day, l.day),
        _ => "no days".to_string(),
    };
    let title = format!(
        "Concurrent calls per 60-minute window, {range} ({})",
        tz_label
    );
    let mut desc = String::from(
        "Bars: the maximum number of concurrent channels in each 60-minute window. \
         Line: the time-weighted mean. ",
    );
    let best = days.iter().filter_map(|d| d.peak.map(|p| (d.day, p))).fold(
        None::<(Date, Peak)>,
        |best, (day, p)| match best {
            Some((_, b)) if b.value >= p.value => best,
            _ => Some((day, p)),
        },
    );
    match best {
        Some((day, p)) => {
            let _ = write!(
                desc,
                "Highest: {} channels on {day} at {}. ",
                p.value,
                local_hm(p.at, tz)
            );
        }
        None if hours.is_empty() => desc.push_str("No data. "),
        None => {}
    }
    if let Some(l) = limit {
        let over = hours
            .iter()
            .filter(|b| b.max.is_some_and(|m| m > l))
            .count();
        let _ = write!(
            desc,
            "License limit: {l} channels; {over} windows above it. "
        );
    }
    desc.push_str("Each day's peak links to the calls that made it.");

    let mut svg = Svg::open("ccs", &title, &desc, false);
    plot.grid(&mut svg);
    plot.bars(&mut svg, &hours, limit);
    plot.mean_line(&mut svg, &hours);

    // Day separators and labels; labels thinned out when days get too narrow to hold one.
    let step = label_step(days.len(), PW, 60.0);
    svg.push("<g class=\"days\" font-size=\"11\" fill=\"#222\" text-anchor=\"middle\">");
    for (i, d) in days.iter().enumerate() {
        let xs = plot.x(d.start);
        if i > 0 {
            let _ = write!(
                svg.out,
                "<line x1=\"{xs:.1}\" y1=\"{:.1}\" x2=\"{xs:.1}\" y2=\"{:.1}\" stroke=\"#c3cad3\" \
                 stroke-width=\"1\"/>",
                TOP,
                TOP + PH + 4.0
            );
        }
        if i % step == 0 {
            let xm = (xs + plot.x(d.end)) / 2.0;
            let _ = write!(
                svg.out,
                "<text x=\"{xm:.1}\" y=\"{:.1}\">{}</text><text x=\"{xm:.1}\" y=\"{:.1}\">{}</text>",
                TOP + PH + 16.0,
                d.day.strftime("%m-%d"),
                TOP + PH + 29.0,
                d.day.strftime("%a"),
            );
        }
    }
    svg.push("</g>");

    // Day peaks: a marker and its value, one link per day.
    svg.push("<g class=\"peaks\" font-size=\"11\" text-anchor=\"middle\">");
    for d in &days {
        let Some(p) = d.peak else { continue };
        if p.value == 0 {
            continue;
        }
        let (x, y) = (plot.x(p.at), plot.y(f64::from(p.value)));
        let label = format!(
            "Peak of {}: {} channels at {}. Explain this peak",
            d.day,
            p.value,
            local_hm(p.at, tz)
        );
        let _ = write!(
            svg.out,
            "<a href=\"{}\" aria-label=\"{}\"><title>{}</title>\
             <circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"4.5\" fill=\"#b00020\" stroke=\"#fff\" \
             stroke-width=\"1\"/><text x=\"{x:.1}\" y=\"{:.1}\" fill=\"#b00020\" \
             font-weight=\"bold\" text-decoration=\"underline\" {HALO}>{}</text></a>",
            esc(&explain_url(d.day)),
            esc(&label),
            esc(&label),
            (y - 7.0).max(10.0),
            p.value
        );
    }
    svg.push("</g>");
    // Last, so its label stays readable over bars and peak markers.
    plot.limit_line(&mut svg, limit);
    legend(
        &mut svg,
        "Maximum per 60 minutes",
        limit,
        Some("Day peak (link)"),
    );
    axis_note(&mut svg, &format!("Time zone: {tz_label}"));
    svg.close()
}

/// The Dashboard's last-24-hours chart: channels per bucket (5 or 15 minutes, see
/// [`buckets_from_minutes`]) as maximum bars and mean line, with the license limit, over
/// `window` (usually `[now − 24 h, now)`). Hour ticks every 3 local hours, the date at midnight.
pub fn calls_24h_chart(
    buckets: &[Bucket],
    window: Window,
    limit: Option<u32>,
    tz: &TimeZone,
    tz_label: &str,
) -> String {
    let buckets = clean(buckets);
    let (x0, x1) = if window.end > window.start {
        (window.start, window.end)
    } else {
        extent(&buckets)
    };
    let data_max = buckets.iter().filter_map(|b| b.max).max().unwrap_or(0);
    let plot = Plot::new(x0, x1, data_max, limit);
    let minutes = buckets
        .first()
        .map_or(0, |b| b.end.saturating_sub(b.start) / channels::MINUTE);
    let per = if minutes > 0 {
        format!("{minutes} minutes")
    } else {
        "interval".to_string()
    };
    let title = format!("Concurrent calls, last 24 hours, maximum and mean per {per} ({tz_label})");
    let mut desc = format!(
        "From {} to {} ({tz_label}). Bars: the maximum number of concurrent channels per {per}; \
         line: the time-weighted mean. ",
        local_dt(x0, tz),
        local_dt(x1, tz)
    );
    let best = buckets
        .iter()
        .filter_map(|b| b.max.map(|m| (m, b.start)))
        .fold(None::<(u32, Micros)>, |best, (m, at)| match best {
            Some((bm, _)) if bm >= m => best,
            _ => Some((m, at)),
        });
    match best {
        Some((m, at)) => {
            let _ = write!(desc, "Highest: {m} channels at {}. ", local_hm(at, tz));
        }
        None => desc.push_str("No data. "),
    }
    if let Some(l) = limit {
        let _ = write!(desc, "License limit: {l} channels.");
    }

    let mut svg = Svg::open("c24", &title, &desc, true);
    plot.grid(&mut svg);
    plot.bars(&mut svg, &buckets, limit);
    plot.mean_line(&mut svg, &buckets);

    svg.push("<g class=\"hours\" font-size=\"11\" fill=\"#222\" text-anchor=\"middle\">");
    for (at, hour, day) in local_hours(x0, x1, tz) {
        let x = plot.x(at);
        let midnight = hour == 0;
        if hour % 3 != 0 {
            continue;
        }
        let _ = write!(
            svg.out,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{x:.1}\" y2=\"{:.1}\" stroke=\"{}\" \
             stroke-width=\"1\"/><text x=\"{x:.1}\" y=\"{:.1}\">{hour:02}:00</text>",
            if midnight { TOP } else { TOP + PH },
            TOP + PH + 4.0,
            if midnight { "#c3cad3" } else { "#222" },
            TOP + PH + 16.0,
        );
        if midnight {
            let _ = write!(
                svg.out,
                "<text x=\"{x:.1}\" y=\"{:.1}\">{}</text>",
                TOP + PH + 29.0,
                day.strftime("%a %m-%d")
            );
        }
    }
    svg.push("</g>");
    plot.limit_line(&mut svg, limit);
    legend(&mut svg, &format!("Maximum per {per}"), limit, None);
    axis_note(&mut svg, &format!("Time zone: {tz_label}"));
    svg.close()
}

// ---------------------------------------------------------------------------------------------
// Layout. One fixed coordinate system (the viewBox); the browser scales it to the page width.

const W: f64 = 960.0;
const H: f64 = 340.0;
const LEFT: f64 = 52.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 70.0;
const PW: f64 = W - LEFT - RIGHT;
const PH: f64 = H - TOP - BOTTOM;

const BAR: &str = "#9ec3e6";
const BAR_OVER: &str = "#f2a29b";
const MEAN: &str = "#1f4e8c";
const LIMIT: &str = "#c0392b";
/// A white outline under labels drawn over bars, so they stay readable where they overlap.
const HALO: &str = "stroke=\"#fff\" stroke-width=\"3\" paint-order=\"stroke\"";

/// Maps time and channel counts to the plot area.
struct Plot {
    x0: Micros,
    x1: Micros,
    /// The value at the top of the plot: a round number at or above the data and the limit.
    top: u64,
    /// Distance between horizontal grid lines, in channels.
    step: u64,
}

impl Plot {
    fn new(x0: Micros, x1: Micros, data_max: u32, limit: Option<u32>) -> Plot {
        let want = u64::from(data_max.max(limit.unwrap_or(0))).max(1);
        let step = nice_step(want);
        Plot {
            x0,
            x1: x1.max(x0.saturating_add(1)),
            top: want.div_ceil(step) * step,
            step,
        }
    }

    fn x(&self, t: Micros) -> f64 {
        let span = (self.x1 as f64) - (self.x0 as f64);
        let f = ((t as f64) - (self.x0 as f64)) / span;
        LEFT + f.clamp(0.0, 1.0) * PW
    }

    /// The y of a channel count; values above the top are drawn at the top.
    fn y(&self, v: f64) -> f64 {
        let f = if v.is_finite() {
            (v / self.top as f64).clamp(0.0, 1.0)
        } else {
            0.0
        };
        TOP + PH - f * PH
    }

    fn grid(&self, svg: &mut Svg) {
        svg.push("<g class=\"grid\" font-size=\"11\" fill=\"#222\" text-anchor=\"end\">");
        let mut v = 0;
        while v <= self.top {
            let y = self.y(v as f64);
            let _ = write!(
                svg.out,
                "<line x1=\"{LEFT:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\" \
                 stroke-width=\"1\"/><text x=\"{:.1}\" y=\"{:.1}\">{v}</text>",
                LEFT + PW,
                if v == 0 { "#444" } else { "#ddd" },
                LEFT - 6.0,
                y + 4.0
            );
            v += self.step;
        }
        let _ = write!(
            svg.out,
            "<text x=\"14\" y=\"{:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {:.1})\">\
             Channels</text>",
            TOP + PH / 2.0,
            TOP + PH / 2.0
        );
        svg.push("</g>");
    }

    fn bars(&self, svg: &mut Svg, buckets: &[Bucket], limit: Option<u32>) {
        svg.push("<g class=\"max\">");
        let base = self.y(0.0);
        for b in buckets {
            let Some(m) = b.max else { continue };
            if m == 0 {
                continue;
            }
            let (xa, xb) = (self.x(b.start), self.x(b.end));
            // A hairline gap between bars when they are wide enough to afford one.
            let w = if xb - xa > 3.0 {
                xb - xa - 1.0
            } else {
                xb - xa
            };
            let y = self.y(f64::from(m));
            let fill = if limit.is_some_and(|l| m > l) {
                BAR_OVER
            } else {
                BAR
            };
            let _ = write!(
                svg.out,
                "<rect x=\"{xa:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\"/>",
                w.max(0.1),
                base - y
            );
        }
        svg.push("</g>");
    }

    /// The mean as a line through the bucket midpoints, broken where the mean is unknown.
    fn mean_line(&self, svg: &mut Svg, buckets: &[Bucket]) {
        svg.push("<g class=\"mean\">");
        let mut points = String::new();
        let flush = |points: &mut String, svg: &mut Svg| {
            if !points.is_empty() {
                let _ = write!(
                    svg.out,
                    "<polyline fill=\"none\" stroke=\"{MEAN}\" stroke-width=\"1.5\" \
                     points=\"{}\"/>",
                    points.trim_end()
                );
                points.clear();
            }
        };
        for b in buckets {
            match b.mean {
                Some(m) => {
                    let mid = ((i128::from(b.start) + i128::from(b.end)) / 2) as Micros;
                    let _ = write!(points, "{:.1},{:.1} ", self.x(mid), self.y(m));
                }
                None => flush(&mut points, svg),
            }
        }
        flush(&mut points, svg);
        svg.push("</g>");
    }

    fn limit_line(&self, svg: &mut Svg, limit: Option<u32>) {
        let Some(l) = limit else { return };
        let y = self.y(f64::from(l));
        let _ = write!(
            svg.out,
            "<g class=\"limit\"><line x1=\"{LEFT:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" \
             stroke=\"{LIMIT}\" stroke-width=\"2\" stroke-dasharray=\"8 4\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"{LIMIT}\" text-anchor=\"end\" \
             font-weight=\"bold\" {HALO}>License limit {l}</text></g>",
            LEFT + PW,
            LEFT + PW - 4.0,
            (y - 4.0).max(10.0)
        );
    }
}

/// A round grid step (1, 2 or 5 × 10^k) giving at most about five lines up to `max`.
fn nice_step(max: u64) -> u64 {
    let raw = max.div_ceil(5).max(1);
    let mut mag = 1u64;
    while mag.saturating_mul(10) <= raw {
        mag *= 10;
    }
    [1, 2, 5, 10]
        .into_iter()
        .map(|m| mag.saturating_mul(m))
        .find(|&s| s >= raw)
        .unwrap_or(raw)
}

/// Every `label_step`-th label is drawn so that labels of `min_px` fit in `width`.
fn label_step(count: usize, width: f64, min_px: f64) -> usize {
    if count == 0 {
        return 1;
    }
    let per = width / count as f64;
    ((min_px / per).ceil() as usize).max(1)
}

/// Drops buckets the chart cannot place (empty or inverted windows) and unusable means.
fn clean(buckets: &[Bucket]) -> Vec<Bucket> {
    buckets
        .iter()
        .filter(|b| b.end > b.start)
        .map(|b| Bucket {
            mean: b.mean.filter(|m| m.is_finite()).map(|m| m.max(0.0)),
            ..*b
        })
        .collect()
}

fn extent(buckets: &[Bucket]) -> (Micros, Micros) {
    let x0 = buckets.iter().map(|b| b.start).min().unwrap_or(0);
    let x1 = buckets.iter().map(|b| b.end).max().unwrap_or(x0);
    (x0, x1.max(x0.saturating_add(1)))
}

/// Local full hours in `[x0, x1)`: (instant, hour of day, local date). At most 1000.
fn local_hours(x0: Micros, x1: Micros, tz: &TimeZone) -> Vec<(Micros, i8, Date)> {
    let mut out = Vec::new();
    let Ok(ts) = jiff::Timestamp::from_microsecond(x0) else {
        return out;
    };
    // Hours are whole hours of UTC in every zone with a whole-hour offset; for the others
    // (e.g. +05:30) the local hour starts are found from the local time of x0.
    let z = ts.to_zoned(tz.clone());
    let into_hour = i64::from(z.minute()) * 60_000_000
        + i64::from(z.second()) * 1_000_000
        + i64::from(z.subsec_nanosecond() / 1000);
    let mut t = if into_hour == 0 {
        x0
    } else {
        x0.saturating_add(channels::MINUTE * 60 - into_hour)
    };
    while t < x1 && out.len() < 1000 {
        if let Ok(ts) = jiff::Timestamp::from_microsecond(t) {
            let z = ts.to_zoned(tz.clone());
            if z.minute() == 0 {
                out.push((t, z.hour(), z.date()));
            }
        }
        t = t.saturating_add(channels::MINUTE * 60);
    }
    out
}

fn local_hm(t: Micros, tz: &TimeZone) -> String {
    jiff::Timestamp::from_microsecond(t)
        .map(|ts| ts.to_zoned(tz.clone()).strftime("%H:%M").to_string())
        .unwrap_or_else(|_| "?".to_string())
}

fn local_dt(t: Micros, tz: &TimeZone) -> String {
    jiff::Timestamp::from_microsecond(t)
        .map(|ts| {
            ts.to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|_| "?".to_string())
}

fn legend(svg: &mut Svg, bars: &str, limit: Option<u32>, peak: Option<&str>) {
    let y = H - 14.0;
    let mut x = LEFT;
    svg.push("<g class=\"legend\" font-size=\"11\" fill=\"#222\">");
    let _ = write!(
        svg.out,
        "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"14\" height=\"10\" fill=\"{BAR}\"/>\
         <text x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
        y - 9.0,
        x + 18.0,
        esc(bars)
    );
    x += 30.0 + 6.5 * bars.chars().count() as f64;
    let _ = write!(
        svg.out,
        "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{MEAN}\" \
         stroke-width=\"1.5\"/><text x=\"{:.1}\" y=\"{y:.1}\">Time-weighted mean</text>",
        y - 4.0,
        x + 16.0,
        y - 4.0,
        x + 20.0
    );
    x += 150.0;
    if limit.is_some() {
        let _ = write!(
            svg.out,
            "<line x1=\"{x:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{LIMIT}\" \
             stroke-width=\"2\" stroke-dasharray=\"8 4\"/><text x=\"{:.1}\" y=\"{y:.1}\">\
             License limit</text><rect x=\"{:.1}\" y=\"{:.1}\" width=\"14\" height=\"10\" \
             fill=\"{BAR_OVER}\"/><text x=\"{:.1}\" y=\"{y:.1}\">Above the limit</text>",
            y - 4.0,
            x + 20.0,
            y - 4.0,
            x + 24.0,
            x + 105.0,
            y - 9.0,
            x + 123.0
        );
        x += 230.0;
    }
    if let Some(p) = peak {
        let _ = write!(
            svg.out,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4.5\" fill=\"#b00020\"/>\
             <text x=\"{:.1}\" y=\"{y:.1}\">{}</text>",
            x + 5.0,
            y - 4.0,
            x + 14.0,
            esc(p)
        );
    }
    svg.push("</g>");
}

fn axis_note(svg: &mut Svg, text: &str) {
    let _ = write!(
        svg.out,
        "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#444\" text-anchor=\"end\">{}</text>",
        W - RIGHT,
        H - 14.0,
        esc(text)
    );
}

/// The SVG being written. `id` prefixes the title/desc ids so two charts can share a page.
struct Svg {
    out: String,
}

impl Svg {
    fn open(id: &str, title: &str, desc: &str, image: bool) -> Svg {
        let mut out = String::with_capacity(32 * 1024);
        // A chart with links is not role="img": that role hides its children (the links) from
        // assistive technology.
        let role = if image { " role=\"img\"" } else { "" };
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" \
             height=\"{H}\" style=\"max-width:100%;height:auto\" font-family=\"sans-serif\"{role} \
             aria-labelledby=\"{id}-title {id}-desc\"><title id=\"{id}-title\">{}</title>\
             <desc id=\"{id}-desc\">{}</desc>\
             <rect x=\"0\" y=\"0\" width=\"{W}\" height=\"{H}\" fill=\"#fff\"/>",
            esc(title),
            esc(desc)
        );
        Svg { out }
    }

    fn push(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn close(mut self) -> String {
        self.out.push_str("</svg>");
        self.out
    }
}

/// XML escaping for text and attribute values. Characters XML 1.0 forbids (most C0 controls)
/// are replaced, so odd input cannot make the document unparseable.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    const S: Micros = 1_000_000;
    const HOUR: Micros = 3600 * S;
    /// 2026-11-01T00:00:00Z, a Sunday.
    const D0: Micros = 1_793_491_200 * S;

    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).expect("chart is well-formed XML")
    }

    fn url(d: Date) -> String {
        format!("/tools/concurrent-calls/explain?day={d}&from=chart")
    }

    /// UTC days starting at D0 with 24 hourly buckets each; `max_of(day, hour)` gives the max
    /// and the mean is half of it.
    fn days_utc(n: i64, max_of: impl Fn(i64, i64) -> u32) -> (Vec<Bucket>, Vec<DayMark>) {
        let mut hours = Vec::new();
        let mut days = Vec::new();
        for d in 0..n {
            let start = D0 + d * 24 * HOUR;
            let mut peak: Option<Peak> = None;
            for h in 0..24 {
                let m = max_of(d, h);
                let at = start + h * HOUR + 60 * S;
                hours.push(Bucket {
                    start: start + h * HOUR,
                    end: start + (h + 1) * HOUR,
                    max: Some(m),
                    mean: Some(f64::from(m) / 2.0),
                });
                if peak.is_none_or(|p| m > p.value) {
                    peak = Some(Peak { value: m, at });
                }
            }
            days.push(DayMark {
                day: date(2026, 11, 1 + d as i8),
                start,
                end: start + 24 * HOUR,
                peak,
            });
        }
        (hours, days)
    }

    fn limit_line_y(doc: &roxmltree::Document) -> f64 {
        let g = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("limit"))
            .expect("limit group");
        let line = g.children().find(|n| n.has_tag_name("line")).unwrap();
        assert_eq!(line.attribute("y1"), line.attribute("y2"), "horizontal");
        line.attribute("y1").unwrap().parse().unwrap()
    }

    #[test]
    fn fourteen_days_are_well_formed_with_title_desc_and_day_labels() {
        let (hours, days) = days_utc(14, |d, h| ((d * 3 + h) % 17) as u32);
        let svg = concurrent_calls_chart(&hours, &days, Some(12), &TimeZone::UTC, "UTC", &url);
        let doc = parse(&svg);
        let root = doc.root_element();
        assert!(root.has_tag_name("svg"));
        let title = root.children().find(|n| n.has_tag_name("title")).unwrap();
        assert_eq!(
            title.text(),
            Some("Concurrent calls per 60-minute window, 2026-11-01 to 2026-11-14 (UTC)")
        );
        assert!(root.children().any(|n| n.has_tag_name("desc")));
        let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
        assert!(texts.contains(&"11-01") && texts.contains(&"Sun"));
        assert!(texts.contains(&"11-14") && texts.contains(&"Sat"));
        // 336 hourly windows, none with a zero maximum here except where (3d + h) % 17 == 0.
        let zero = (0..14)
            .flat_map(|d| (0..24).map(move |h| (d * 3 + h) % 17))
            .filter(|m| *m == 0)
            .count();
        let bars = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("max"))
            .unwrap()
            .children()
            .filter(|n| n.has_tag_name("rect"))
            .count();
        assert_eq!(bars, 336 - zero);
        // Deterministic.
        assert_eq!(
            svg,
            concurrent_calls_chart(&hours, &days, Some(12), &TimeZone::UTC, "UTC", &url)
        );
    }

    #[test]
    fn limit_line_and_bars_follow_the_scale() {
        // Data up to 95, limit 40: grid step 20, top 100. Plot area y: 24 (top) .. 270 (zero).
        let (hours, days) = days_utc(1, |_, h| if h == 10 { 95 } else { 10 });
        let svg = concurrent_calls_chart(&hours, &days, Some(40), &TimeZone::UTC, "UTC", &url);
        let doc = parse(&svg);
        // 270 - 246 * 40 / 100 = 171.6
        assert_eq!(limit_line_y(&doc), 171.6);
        let ys: Vec<f64> = doc
            .descendants()
            .filter(|n| {
                n.has_tag_name("rect") && n.parent().unwrap().attribute("class") == Some("max")
            })
            .map(|n| n.attribute("y").unwrap().parse().unwrap())
            .collect();
        // 270 - 246 * 0.95 = 36.3 for the 95 bar; 270 - 24.6 = 245.4 for the others.
        assert_eq!(ys.iter().filter(|y| **y == 36.3).count(), 1);
        assert_eq!(ys.iter().filter(|y| **y == 245.4).count(), 23);
        let grid: Vec<&str> = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("grid"))
            .unwrap()
            .children()
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(grid, ["0", "20", "40", "60", "80", "100", "Channels"]);
        // The 95 bar is above the limit and coloured so.
        assert!(svg.contains(&format!(
            "y=\"36.3\" width=\"36.2\" height=\"233.7\" fill=\"{BAR_OVER}\""
        )));
    }

    #[test]
    fn zero_limit_and_a_peak_far_above_the_limit() {
        let (hours, days) = days_utc(1, |_, h| if h == 3 { 1000 } else { 0 });
        // Limit 0 is drawn on the zero line.
        let doc_svg = concurrent_calls_chart(&hours, &days, Some(0), &TimeZone::UTC, "UTC", &url);
        assert_eq!(limit_line_y(&parse(&doc_svg)), 270.0);
        // Limit 1 under a peak of 1000 (top 1000): 270 - 0.246 = 269.754, printed 269.8.
        let svg = concurrent_calls_chart(&hours, &days, Some(1), &TimeZone::UTC, "UTC", &url);
        assert_eq!(limit_line_y(&parse(&svg)), 269.8);
        // No limit: no line, no legend entry.
        let svg = concurrent_calls_chart(&hours, &days, None, &TimeZone::UTC, "UTC", &url);
        let doc = parse(&svg);
        assert!(
            !doc.descendants()
                .any(|n| n.attribute("class") == Some("limit"))
        );
        // Huge values do not overflow the scale.
        let (hours, days) = days_utc(1, |_, _| u32::MAX);
        parse(&concurrent_calls_chart(
            &hours,
            &days,
            Some(u32::MAX),
            &TimeZone::UTC,
            "UTC",
            &url,
        ));
    }

    #[test]
    fn one_link_per_day_peak_to_its_explanation() {
        // Day 2 has no channel at all: nothing to explain, no link.
        let (hours, days) = days_utc(3, |d, h| if d == 1 { 0 } else { (h % 5) as u32 + d as u32 });
        let svg = concurrent_calls_chart(&hours, &days, Some(3), &TimeZone::UTC, "UTC", &url);
        let doc = parse(&svg);
        let links: Vec<roxmltree::Node> =
            doc.descendants().filter(|n| n.has_tag_name("a")).collect();
        let hrefs: Vec<&str> = links.iter().map(|a| a.attribute("href").unwrap()).collect();
        assert_eq!(
            hrefs,
            [
                "/tools/concurrent-calls/explain?day=2026-11-01&from=chart",
                "/tools/concurrent-calls/explain?day=2026-11-03&from=chart"
            ]
        );
        // Escaped in the text, whole again once parsed.
        assert!(svg.contains("day=2026-11-01&amp;from=chart"));
        // Each link shows the peak value and says what it is; day 3 peaks at 4+2 = 6 at 04:01.
        let last = links[1];
        assert_eq!(
            last.attribute("aria-label"),
            Some("Peak of 2026-11-03: 6 channels at 04:01. Explain this peak")
        );
        assert!(last.descendants().any(|n| n.text() == Some("6")));
    }

    #[test]
    fn text_is_escaped() {
        let (hours, days) = days_utc(1, |_, _| 1);
        let label = "<script>alert('x')</script> & \"zone\"\u{1}";
        let evil = |_: Date| "javascript:\"><script>".to_string();
        let svg = concurrent_calls_chart(&hours, &days, Some(2), &TimeZone::UTC, label, &evil);
        assert!(!svg.contains("<script>"));
        let doc = parse(&svg);
        let title = doc.descendants().find(|n| n.has_tag_name("title")).unwrap();
        assert_eq!(
            title.text(),
            Some(
                "Concurrent calls per 60-minute window, 2026-11-01 to 2026-11-01 (<script>alert('x')</script> & \"zone\"\u{FFFD})"
            )
        );
        let a = doc.descendants().find(|n| n.has_tag_name("a")).unwrap();
        assert_eq!(a.attribute("href"), Some("javascript:\"><script>"));
        let svg = calls_24h_chart(
            &[],
            Window {
                start: D0,
                end: D0 + 24 * HOUR,
            },
            None,
            &TimeZone::UTC,
            label,
        );
        assert!(!svg.contains("<script>"));
        parse(&svg);
        assert_eq!(esc("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
    }

    #[test]
    fn empty_and_odd_input_give_a_valid_chart() {
        let tz = TimeZone::UTC;
        for svg in [
            concurrent_calls_chart(&[], &[], None, &tz, "UTC", &url),
            concurrent_calls_chart(&[], &[], Some(0), &tz, "UTC", &url),
            calls_24h_chart(&[], Window { start: 0, end: 0 }, Some(5), &tz, "UTC"),
        ] {
            let doc = parse(&svg);
            let desc = doc.descendants().find(|n| n.has_tag_name("desc")).unwrap();
            assert!(desc.text().unwrap().contains("No data."), "{svg}");
        }
        let odd = [
            Bucket {
                start: 10,
                end: 5,
                max: Some(3),
                mean: Some(1.0),
            },
            Bucket {
                start: D0,
                end: D0 + HOUR,
                max: None,
                mean: Some(f64::NAN),
            },
            Bucket {
                start: D0 + HOUR,
                end: D0 + 2 * HOUR,
                max: Some(2),
                mean: Some(f64::INFINITY),
            },
            Bucket {
                start: i64::MIN,
                end: i64::MAX,
                max: Some(1),
                mean: Some(-4.0),
            },
        ];
        let day = DayMark {
            day: date(2026, 11, 1),
            start: D0,
            end: D0,
            peak: Some(Peak {
                value: 2,
                at: i64::MAX,
            }),
        };
        parse(&concurrent_calls_chart(
            &odd,
            &[day],
            Some(1),
            &tz,
            "UTC",
            &url,
        ));
        parse(&calls_24h_chart(
            &odd,
            Window {
                start: i64::MIN,
                end: i64::MAX,
            },
            Some(1),
            &tz,
            "UTC",
        ));
    }

    #[test]
    fn dst_days_take_their_true_width() {
        // 2024-10-27 has 25 hours in Central Europe, 2024-10-28 has 24.
        let tz = TimeZone::posix("CET-1CEST,M3.5.0,M10.5.0/3").unwrap();
        let d1 = date(2024, 10, 27);
        let d2 = date(2024, 10, 28);
        let rows: Vec<MinuteRow> = Vec::new();
        let rep = channels::report(&rows, &tz, d1, d2).unwrap();
        assert_eq!(rep.hours.len(), 49);
        let hours: Vec<Bucket> = rep.hours.iter().map(Bucket::from_period).collect();
        let days: Vec<DayMark> = rep.days.iter().map(DayMark::from_day_stats).collect();
        let svg = concurrent_calls_chart(&hours, &days, Some(5), &tz, "Europe/Prague", &url);
        let doc = parse(&svg);
        let sep: Vec<f64> = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("days"))
            .unwrap()
            .children()
            .filter(|n| n.has_tag_name("line"))
            .map(|n| n.attribute("x1").unwrap().parse().unwrap())
            .collect();
        // 52 + 892 * 25 / 49 = 507.10
        assert_eq!(sep, [507.1]);
    }

    #[test]
    fn buckets_from_minute_rows() {
        let m = channels::MINUTE;
        let row = |i: i64, peak: u32, integral: u64| MinuteRow {
            start: D0 + i * m,
            peak,
            peak_at: D0 + i * m,
            integral,
            covered: m as u64,
        };
        // Minutes 0 and 1 in the first 5-minute bucket, 7 in the second, 12 in the third
        // (cut at 13 minutes), 20 outside the window.
        let rows = [
            row(0, 2, 60 * S as u64),
            row(1, 4, 180 * S as u64),
            row(7, 1, 30 * S as u64),
            row(12, 3, 60 * S as u64),
            row(20, 9, 0),
        ];
        let w = Window {
            start: D0,
            end: D0 + 13 * m,
        };
        let b = buckets_from_minutes(&rows, w, 5 * m);
        assert_eq!(b.len(), 3);
        // (60 + 180) channel·s over 300 s = 0.8; 30 / 300 = 0.1; 60 / 180 (a 3-minute bucket).
        assert_eq!((b[0].max, b[0].mean), (Some(4), Some(0.8)));
        assert_eq!((b[1].max, b[1].mean), (Some(1), Some(0.1)));
        assert_eq!((b[2].start, b[2].end), (D0 + 10 * m, D0 + 13 * m));
        assert_eq!((b[2].max, b[2].mean), (Some(3), Some(60.0 / 180.0)));
        assert!(buckets_from_minutes(&rows, w, 0).is_empty());
        assert!(buckets_from_minutes(&rows, Window { start: 5, end: 5 }, m).is_empty());
        assert_eq!(
            buckets_from_minutes(
                &[],
                Window {
                    start: 0,
                    end: i64::MAX
                },
                1
            )
            .len(),
            MAX_BUCKETS
        );
    }

    #[test]
    fn last_24_hours_have_local_hour_ticks_and_the_date_at_midnight() {
        let w = Window {
            start: D0 + 12 * HOUR,
            end: D0 + 36 * HOUR,
        };
        let rows = [MinuteRow {
            start: D0 + 20 * HOUR,
            peak: 7,
            peak_at: D0 + 20 * HOUR,
            integral: 0,
            covered: 60_000_000,
        }];
        let b = buckets_from_minutes(&rows, w, 15 * channels::MINUTE);
        assert_eq!(b.len(), 96);
        let svg = calls_24h_chart(&b, w, Some(10), &TimeZone::UTC, "UTC");
        let doc = parse(&svg);
        let labels: Vec<&str> = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("hours"))
            .unwrap()
            .children()
            .filter_map(|n| n.text())
            .collect();
        assert_eq!(
            labels,
            [
                "12:00",
                "15:00",
                "18:00",
                "21:00",
                "00:00",
                "Mon 11-02",
                "03:00",
                "06:00",
                "09:00"
            ]
        );
        let title = doc.descendants().find(|n| n.has_tag_name("title")).unwrap();
        assert_eq!(
            title.text(),
            Some("Concurrent calls, last 24 hours, maximum and mean per 15 minutes (UTC)")
        );
        let desc = doc
            .descendants()
            .find(|n| n.has_tag_name("desc"))
            .unwrap()
            .text()
            .unwrap();
        assert!(desc.contains("Highest: 7 channels at 20:00."), "{desc}");
        // Limit 10 on a 0..10 scale (step 2) is the top of the plot.
        assert_eq!(limit_line_y(&doc), 24.0);
        // A +05:30 zone: ticks on local hours, i.e. at :30 UTC.
        let ist = TimeZone::posix("IST-5:30").unwrap();
        let svg = calls_24h_chart(&b, w, None, &ist, "Asia/Kolkata");
        let doc = parse(&svg);
        let first = doc
            .descendants()
            .find(|n| n.attribute("class") == Some("hours"))
            .unwrap()
            .children()
            .find(|n| n.has_tag_name("text"))
            .unwrap();
        // 12:00Z is 17:30 local; the first local hour divisible by 3 is 18:00 = 12:30Z.
        assert_eq!(first.text(), Some("18:00"));
        // 52 + 892 * 0.5 / 24 = 70.58
        assert_eq!(first.attribute("x"), Some("70.6"));
    }
}

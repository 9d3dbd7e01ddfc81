//! Prometheus text metrics: what an operator graphs and alerts on without logging in.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Upper bounds of the request latency buckets, seconds. The 100 ms target of the GUI sits in
/// the middle so both sides of it are visible.
const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Default)]
pub struct Metrics {
    pub legs_ingested: AtomicU64,
    /// Legs in the database: counted at start and after changes the writer sees, added to on
    /// every insert, because `COUNT(*)` over millions of legs is too slow for every scrape.
    pub legs_stored: AtomicU64,
    pub legs_duplicate: AtomicU64,
    pub captures_processed: AtomicU64,
    pub captures_failed: AtomicU64,
    pub logins_failed: AtomicU64,
    /// Keyed by route pattern (from the route table, so the label set is bounded) and method.
    latency: Mutex<BTreeMap<(&'static str, &'static str), Histogram>>,
}

impl Metrics {
    pub fn observe(&self, route: &'static str, method: &'static str, seconds: f64) {
        let Ok(mut map) = self.latency.lock() else {
            return;
        };
        let h = map.entry((route, method)).or_default();
        for (i, b) in BUCKETS.iter().enumerate() {
            if seconds <= *b {
                h.counts[i] += 1;
            }
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// The text exposition. `gauges` are the values read at scrape time (active channels,
    /// license state) that live elsewhere.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let c = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        };
        counter(
            "sipmeter_legs_ingested_total",
            "CDR legs stored by this server since it started.",
            c(&self.legs_ingested),
        );
        counter(
            "sipmeter_legs_duplicate_total",
            "CDR legs received again and skipped (already stored).",
            c(&self.legs_duplicate),
        );
        counter(
            "sipmeter_captures_processed_total",
            "Capture files read by the embedded sensor.",
            c(&self.captures_processed),
        );
        counter(
            "sipmeter_captures_failed_total",
            "Capture files that stopped early or could not be stored.",
            c(&self.captures_failed),
        );
        counter(
            "sipmeter_logins_failed_total",
            "Failed or throttled login attempts.",
            c(&self.logins_failed),
        );
        let _ = writeln!(
            out,
            "# HELP sipmeter_legs_stored Legs in the database.\n# TYPE sipmeter_legs_stored gauge\nsipmeter_legs_stored {}",
            gauges.legs_stored
        );
        let _ = writeln!(
            out,
            "# HELP sipmeter_active_channels Channels active now (live legs, deduplicated).\n# TYPE sipmeter_active_channels gauge\nsipmeter_active_channels {}",
            gauges.active_channels
        );
        let _ = writeln!(
            out,
            "# HELP sipmeter_active_calls Live legs now.\n# TYPE sipmeter_active_calls gauge\nsipmeter_active_calls {}",
            gauges.active_calls
        );
        let _ = writeln!(
            out,
            "# HELP sipmeter_license_limit Effective channel limit.\n# TYPE sipmeter_license_limit gauge\nsipmeter_license_limit {}",
            gauges.limit
        );
        let _ = writeln!(
            out,
            "# HELP sipmeter_license_state License state (1 for the current one).\n# TYPE sipmeter_license_state gauge"
        );
        for s in ["ok", "grace", "lockdown", "locked"] {
            let v = u8::from(s == gauges.state);
            let _ = writeln!(out, "sipmeter_license_state{{state=\"{s}\"}} {v}");
        }
        let _ = writeln!(
            out,
            "# HELP sipmeter_license_days_over Consecutive days over the channel limit.\n# TYPE sipmeter_license_days_over gauge\nsipmeter_license_days_over {}",
            gauges.days_over
        );
        let name = "sipmeter_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to answer HTTP requests, by route.\n# TYPE {name} histogram"
        );
        if let Ok(map) = self.latency.lock() {
            for ((route, method), h) in map.iter() {
                let labels = format!("route=\"{route}\",method=\"{method}\"");
                for (b, n) in BUCKETS.iter().zip(h.counts) {
                    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {n}");
                }
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
                let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
                let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
            }
        }
        out
    }
}

/// Values read at scrape time.
pub struct Gauges {
    pub legs_stored: u64,
    pub active_channels: u32,
    pub active_calls: u32,
    pub limit: u32,
    pub state: &'static str,
    pub days_over: u32,
}

//! Shared by the store's benchmark examples: the same deterministic PRNG and the same plain
//! leg, so the examples differ only in what they measure.
#![allow(dead_code)] // each example compiles this module on its own and uses part of it

use calls::{EndReason, Leg};

pub const S: i64 = 1_000_000;
pub const DAY: i64 = 86_400 * S;
/// 2026-11-01T00:00:00Z
pub const D0: i64 = 1_793_491_200 * S;

/// xorshift64: fast, deterministic, good enough to make numbers and times look random to the
/// B-tree indexes.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A leg with what a benchmark does not vary filled in plainly (unanswered, zero length);
/// examples override the outcome fields with struct update syntax.
pub fn plain_leg(call_id: String, sensor: u32, caller: String, called: String, start: i64) -> Leg {
    Leg::builder()
        .call_id(call_id)
        .sensor_id(sensor)
        .caller(caller)
        .called(called)
        .domains("a.example", "b.example")
        .start(start)
        .end(start)
        .end_reason(EndReason::EndOfInput)
        .sip_message_count(7)
        .build()
}

/// Peak resident memory of this process so far, MB (VmHWM).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// User + system CPU seconds of this process so far (all threads), read from /proc so a
/// figure stays meaningful on a machine busy with other work, where wall time mostly measures
/// the neighbours.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

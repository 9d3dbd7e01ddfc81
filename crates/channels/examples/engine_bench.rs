//! The performance bar of issue 3 for the pure engine: 14 days × 1 M legs a day keyed, swept
//! and turned into minute rows, then the 14-day report from the 20 160 minute rows.
//!
//! ```text
//! cargo run --release -p channels --example engine_bench [-- DAYS LEGS_PER_DAY]
//! ```
//!
//! Data: subscriber numbers from a pool (so different calls share keys), each call seen by
//! sensor 1 and by sensors 2 and 3 with some probability, with a few ms of clock skew and a
//! different number format per sensor (so dedup has real work); durations exponential with a
//! mean of 3 minutes; 70 % answered. Generation is not timed. Prints the figures and the peak
//! resident memory (VmHWM).

use std::time::Instant;

use calls::Micros;
use channels::{ActiveMode, Keyer, MINUTE, Span, Window, active_interval, minute_rows, report};

/// splitmix64: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A generated leg before keying. Its numbers are text in one arena per day, in leg order, as
/// rows stream out of a database; that keeps the keying cost honest (string scans, not cache
/// misses on a scattered pool).
struct GenLeg {
    text: u32,
    caller_len: u8,
    called_len: u8,
    start: Micros,
    answer: Option<Micros>,
    end: Micros,
}

const POOL: usize = 200_000;
const DAY: Micros = 86_400_000_000;

fn vm_hwm_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let days: i64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(14);
    let per_day: usize = args
        .get(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let base: Micros = 1_714_521_600_000_000; // 2024-05-01T00:00:00Z

    // Number pool in three formats (one per sensor): the same last 6 digits.
    let mut rng = Rng(42);
    let national: Vec<u64> = (0..POOL)
        .map(|_| 2_000_000_000 + rng.below(8_000_000_000))
        .collect();
    let formats: [Vec<String>; 3] = [
        national.iter().map(|n| format!("+44{n}")).collect(),
        national.iter().map(|n| format!("0{n}")).collect(),
        national
            .iter()
            .map(|n| format!("0044 {} {}", n / 1_000_000, n % 1_000_000))
            .collect(),
    ];

    let mut keyer = Keyer::new();
    let mut spans: Vec<Span> = Vec::with_capacity(days as usize * per_day);
    let mut gen_time = std::time::Duration::ZERO;
    let mut keys_time = std::time::Duration::ZERO;
    let mut legs: Vec<GenLeg> = Vec::with_capacity(per_day + 3);
    let mut arena = String::new();
    for day in 0..days {
        // One day's rows, as the store would stream them (not timed).
        let t = Instant::now();
        legs.clear();
        arena.clear();
        let day_start = base + day * DAY;
        while legs.len() < per_day {
            let caller = rng.below(POOL as u64) as usize;
            let called = rng.below(POOL as u64) as usize;
            let start = day_start + rng.below(DAY as u64) as i64;
            let dur = (-(1.0 - rng.unit()).ln() * 180e6) as i64;
            let answer =
                (rng.unit() < 0.7).then(|| start + 1_000_000 + rng.below(9_000_000) as i64);
            let end = start + dur.max(1);
            for (sensor, p) in [(0usize, 1.0), (1, 0.75), (2, 0.35)] {
                if legs.len() == per_day || (sensor > 0 && rng.unit() >= p) {
                    continue;
                }
                let skew = if sensor == 0 {
                    0
                } else {
                    rng.below(40_000) as i64 - 20_000
                };
                let text = arena.len() as u32;
                arena.push_str(&formats[sensor][caller]);
                arena.push_str(&formats[sensor][called]);
                legs.push(GenLeg {
                    text,
                    caller_len: formats[sensor][caller].len() as u8,
                    called_len: formats[sensor][called].len() as u8,
                    start: start + skew,
                    answer: answer.map(|a| a + skew),
                    end: end + skew,
                });
            }
        }
        gen_time += t.elapsed();

        let t = Instant::now();
        for l in &legs {
            let (a, b) = (l.text as usize, l.caller_len as usize);
            let caller = &arena[a..a + b];
            let called = &arena[a + b..a + b + l.called_len as usize];
            if let Some((from, to)) =
                active_interval(l.start, l.answer, l.end, ActiveMode::Signalling)
            {
                spans.push(Span {
                    key: keyer.key(caller, called),
                    from,
                    to,
                });
            }
        }
        keys_time += t.elapsed();
    }
    drop(legs);
    drop(arena);
    eprintln!(
        "generated {} legs in {gen_time:.2?} (not timed)",
        spans.len()
    );

    let t = Instant::now();
    let window = Window {
        start: base,
        end: base + days * DAY,
    };
    let rows = minute_rows(&spans, window).expect("window is valid");
    let sweep_time = t.elapsed();
    let engine_time = keys_time + sweep_time;

    // Incremental recompute of one day (the store's path for late legs): the caller selects the
    // spans overlapping the day, the engine computes that day's 1 440 rows.
    let day = Window {
        start: base + (days / 2) * DAY,
        end: base + (days / 2 + 1) * DAY,
    };
    let overlapping: Vec<Span> = spans
        .iter()
        .filter(|s| s.from < day.end && s.to > day.start)
        .copied()
        .collect();
    let t = Instant::now();
    let day_rows = minute_rows(&overlapping, day).expect("window is valid");
    let day_time = t.elapsed();
    assert_eq!(&day_rows[..], &rows[(days / 2 * 1440) as usize..][..1440]);
    drop(overlapping);

    let tz = jiff::tz::TimeZone::UTC;
    let first = channels::day_of(base, &tz).expect("valid day");
    let last = channels::day_of(base + days * DAY - 1, &tz).expect("valid day");
    let t = Instant::now();
    let mut rep = None;
    let runs = 20;
    for _ in 0..runs {
        rep = Some(report(&rows, &tz, first, last).expect("report"));
    }
    let report_time = t.elapsed() / runs;
    let rep = rep.expect("ran");

    let max_minute = rows.iter().map(|r| r.peak).max().unwrap_or(0);
    println!("legs                 {}", spans.len());
    println!("interned texts       {}", keyer.texts());
    println!("keys                 {keys_time:.2?}");
    println!("sweep + minute rows  {sweep_time:.2?}");
    println!("engine total         {engine_time:.2?}");
    println!(
        "minute rows          {} (max peak {max_minute})",
        rows.len()
    );
    println!(
        "report ({} days, {} hours) from rows: {report_time:.2?}",
        rep.days.len(),
        rep.hours.len()
    );
    if let Some(p) = rep.peak {
        println!(
            "overall peak         {} at {}",
            p.value,
            calls::time::format_rfc3339(p.at)
        );
    }
    println!("one day recomputed   {day_time:.2?} (from the spans overlapping it; same rows)");
    println!(
        "mean of first hour   {:.1}",
        rep.hours[0].mean().unwrap_or(0.0)
    );
    println!(
        "minute span          {} min",
        (window.end - window.start) / MINUTE
    );
    match vm_hwm_kib() {
        Some(k) => println!("peak RSS (VmHWM)     {:.0} MiB", k as f64 / 1024.0),
        None => println!("peak RSS (VmHWM)     unavailable"),
    }
}

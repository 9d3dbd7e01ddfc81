//! Channel statistics at license scale, through the real store:
//! `cargo run --release -p store --example channels_bench [LEGS_PER_DAY [DAYS]]`
//! (default 1,000,000 × 14 = 14 M legs, as issue 3 asks).
//!
//! Builds a SQLite database in a temporary directory with DAYS days of calls (arrivals spread
//! over each day with a daytime bulge, durations exponential with a 3-minute mean, numbers from
//! a pool so that dedup matters, 15 % of calls also seen by a second sensor), then measures:
//! the full recompute of the per-minute figures, an incremental update after one late batch,
//! the 14-day report (days + 60-minute windows) from the minute rows, and the peak memory.
//! Loading the legs is the slow part and is not what is measured. Set CHANNELS_BENCH_DIR to
//! keep the database afterwards.

use std::time::Instant;

use calls::{EndReason, Leg};
use store::{ActiveMode, Store};

mod common;

use common::{D0, DAY, Rng, S, peak_rss_mb, plain_leg};

fn leg(rng: &mut Rng, n: u64, day: i64, sensor: u32) -> Leg {
    // Daytime bulge: two uniform draws averaged put most calls mid-day.
    let at = ((rng.unit() + rng.unit()) / 2.0 * DAY as f64) as i64;
    let start = D0 + day * DAY + at;
    let duration = (-(1.0 - rng.unit()).ln() * 180.0 * S as f64) as i64;
    let answered = !rng.next().is_multiple_of(5);
    let caller = format!("+4930{:07}", rng.next() % 200_000);
    let called = format!("0{:09}", rng.next() % 2_000_000);
    Leg {
        answer: answered.then_some(start + 3 * S),
        end: start + duration + 3 * S,
        last_response: Some(200),
        end_reason: EndReason::ByeConfirmed,
        ..plain_leg(
            format!("{n:x}-{sensor}@bench"),
            sensor,
            caller,
            called,
            start,
        )
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let per_day = args.first().copied().unwrap_or(1_000_000);
    let days = args.get(1).copied().unwrap_or(14) as i64;
    // CHANNELS_BENCH_DIR keeps the database (e.g. to time `sipmeter license status` on it).
    let tmp = tempfile::tempdir()?;
    let dir = std::env::var_os("CHANNELS_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let mut store = Store::open_sqlite(&dir).await?;
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);

    let t = Instant::now();
    let mut n = 0u64;
    let mut batch = Vec::with_capacity(50_000);
    for day in 0..days {
        for _ in 0..per_day {
            n += 1;
            let l = leg(&mut rng, n, day, 1);
            if rng.next() % 100 < 15 {
                let mut copy = l.clone();
                copy.sensor_id = 2;
                copy.call_id.push_str("-b");
                copy.start += 30_000;
                batch.push(copy);
            }
            batch.push(l);
            if batch.len() >= 50_000 {
                store.insert_legs(&batch).await?;
                batch.clear();
            }
        }
    }
    store.insert_legs(&batch).await?;
    let legs = store.count_legs().await?;
    println!(
        "loaded {legs} legs over {days} days in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let up = store
        .recompute_channel_stats(ActiveMode::Signalling)
        .await?;
    let full = t.elapsed().as_secs_f64();
    println!(
        "full recompute: {full:.2} s for {} legs read, {} days, {} minute rows ({:.0} legs/s)",
        up.legs,
        up.days,
        up.minutes,
        up.legs as f64 / full
    );

    // A late sensor delivers one batch for day 3.
    let late: Vec<Leg> = (0..1000)
        .map(|i| leg(&mut rng, 10_000_000_000 + i, 3, 3))
        .collect();
    store.insert_legs(&late).await?;
    let t = Instant::now();
    let up = store.update_channel_stats(ActiveMode::Signalling).await?;
    println!(
        "incremental update after a late batch: {:.3} s ({} days recomputed)",
        t.elapsed().as_secs_f64(),
        up.days
    );

    let tz = jiff::tz::TimeZone::UTC;
    let first = jiff::civil::date(2026, 11, 1);
    let last = first.checked_add(jiff::Span::new().days(days - 1))?;
    let mut best = f64::MAX;
    let mut peak = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let rows = store.channel_minutes(D0, D0 + days * DAY).await?;
        let rep = channels::report(&rows, &tz, first, last)?;
        best = best.min(t.elapsed().as_secs_f64());
        peak = rep.peak.map_or(0, |p| p.value);
    }
    println!(
        "{days}-day report (days + 60-minute windows) from minute rows: {:.1} ms, peak {peak}",
        best * 1e3
    );
    println!("peak RSS {:.0} MB", peak_rss_mb());
    Ok(())
}

//! The daily report's outcome aggregates at license scale, through the real store:
//! `cargo run --release -p store --example summary_bench [LEGS_PER_DAY [DAYS]]`
//! (default 1,000,000 legs in 1 day).
//!
//! Builds a SQLite database in a temporary directory with a realistic outcome mix (answered
//! calls, busy, not found, cancelled, timeouts), then times `Store::leg_outcomes` for one day
//! (first run and best of 5), which reads the 15-minute outcome buckets, and for comparison the
//! plain GROUP BY over the day's legs that the buckets replaced.
//!
//! Notes: on a 2-core machine the GROUP BY took ~1.07 s for one 1 M-leg day; the same groups
//! from the buckets (96 buckets of a few groups) take about a millisecond.

use std::time::Instant;

use calls::{EndReason, Leg};
use store::{Store, Window};

mod common;

use common::{D0, DAY, Rng, S, plain_leg};

/// Start offsets of a day's calls in increasing order, with a daytime bulge (two uniform
/// draws averaged): legs reach the store in roughly start order, which keeps the rows of a day
/// close together in the table, as in a real installation.
fn starts(rng: &mut Rng, n: u64) -> Vec<i64> {
    let mut v: Vec<i64> = (0..n)
        .map(|_| ((rng.unit() + rng.unit()) / 2.0 * DAY as f64) as i64)
        .collect();
    v.sort_unstable();
    v
}

fn leg(rng: &mut Rng, n: u64, day: i64, at: i64) -> Leg {
    let start = D0 + day * DAY + at;
    let duration = (-(1.0 - rng.unit()).ln() * 180.0 * S as f64) as i64;
    let (answer, end, code, text, reason) = match rng.next() % 100 {
        0..=59 => (
            Some(start + 3 * S),
            start + 3 * S + duration,
            Some(200),
            "OK",
            EndReason::ByeConfirmed,
        ),
        60..=74 => (
            None,
            start + 5 * S,
            Some(486),
            "Busy Here",
            EndReason::NotAnswered,
        ),
        75..=84 => (
            None,
            start + S,
            Some(404),
            "Not Found",
            EndReason::NotAnswered,
        ),
        85..=94 => (
            None,
            start + 12 * S,
            Some(487),
            "Request Terminated",
            EndReason::Cancel,
        ),
        95..=97 => (
            None,
            start + 30 * S,
            Some(503),
            "Service Unavailable",
            EndReason::NotAnswered,
        ),
        _ => (None, start + 300 * S, None, "", EndReason::TimeoutZombie),
    };
    let caller = format!("+4930{:07}", rng.next() % 200_000);
    let called = format!("0{:09}", rng.next() % 2_000_000);
    Leg {
        answer,
        end,
        last_response: code,
        last_response_text: code.map(|_| text.to_string()),
        end_reason: reason,
        ..plain_leg(format!("{n:x}@bench"), 1, caller, called, start)
    }
}

/// Times one day's aggregates: (first run, best of 5) in ms, and the legs counted.
async fn time_day(store: &Store, window: Window) -> Result<(f64, f64, u64), store::StoreError> {
    let mut first = None;
    let mut best = f64::MAX;
    let mut legs = 0;
    for _ in 0..5 {
        let t = Instant::now();
        let out = store.leg_outcomes(&[window]).await?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        first.get_or_insert(ms);
        best = best.min(ms);
        legs = out
            .iter()
            .flat_map(|d| &d.groups)
            .map(|g| g.legs)
            .sum::<u64>();
    }
    Ok((first.unwrap_or(best), best, legs))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let per_day = args.first().copied().unwrap_or(1_000_000);
    let days = args.get(1).copied().unwrap_or(1).max(1) as i64;
    // SUMMARY_BENCH_DIR keeps the database between runs (loading is the slow part).
    let tmp = tempfile::tempdir()?;
    let dir = std::env::var_os("SUMMARY_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let mut store = Store::open_sqlite(&dir).await?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    let t = Instant::now();
    if store.count_legs().await? == 0 {
        let mut n = 0u64;
        let mut batch = Vec::with_capacity(50_000);
        for day in 0..days {
            for at in starts(&mut rng, per_day) {
                n += 1;
                batch.push(leg(&mut rng, n, day, at));
                if batch.len() >= 50_000 {
                    store.insert_legs(&batch).await?;
                    batch.clear();
                }
            }
        }
        store.insert_legs(&batch).await?;
    }
    println!(
        "loaded {} legs over {days} day(s) in {:.1} s",
        store.count_legs().await?,
        t.elapsed().as_secs_f64()
    );

    let window = Window {
        start: D0,
        end: D0 + DAY,
    };
    let (first, best, legs) = time_day(&store, window).await?;
    println!("leg_outcomes, one day of {legs} legs: first {first:.1} ms, best of 5 {best:.1} ms");

    let groups = store.leg_outcomes(&[window]).await?;
    for g in groups.iter().flat_map(|d| &d.groups) {
        println!(
            "  {:>4} {:<20} answered={:<5} {:<15} {:>8} legs",
            g.last_response.map_or("-".to_string(), |c| c.to_string()),
            g.reason_text.as_deref().unwrap_or("-"),
            g.answered,
            g.end_reason.as_str(),
            g.legs
        );
    }

    // The query the buckets replaced, on the same legs.
    let path = dir.join(store::SQLITE_FILE_NAME);
    let conn = rusqlite::Connection::open(&path)?;
    let mut stmt = conn.prepare(
        "SELECT last_response, answer_us IS NOT NULL AS answered, end_reason, COUNT(*), \
         SUM(CASE WHEN answer_us IS NULL THEN 0 ELSE MAX(end_us - answer_us, 0) END), \
         MIN(last_response_text) FROM legs WHERE start_us >= ?1 AND start_us < ?2 \
         GROUP BY last_response, answered, end_reason",
    )?;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let groups = stmt
            .query_map((window.start, window.end), |r| r.get::<_, i64>(3))?
            .collect::<Result<Vec<_>, _>>()?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(groups.iter().sum::<i64>() as u64, legs);
    }
    println!("plain GROUP BY over the day's legs (before the buckets): best of 3 {best:.1} ms");
    drop(stmt);
    drop(conn);
    store.close().await;
    Ok(())
}

//! Per-day outcome aggregates of the legs, for the daily report (calls, answered, ASR, ACD,
//! failures by final code, cancelled).
//!
//! The report is over a million legs a day at license scale, and SQLite's GROUP BY over a
//! day's legs took about a second (it always sorts; a covering index did not help). So the
//! groups of (final code, answered?, end reason) are materialised per 15-minute bucket of start
//! time in `leg_outcome_buckets`: the insert transaction aggregates its new legs in Rust
//! ([`OutcomeBatch`]) and upserts a few rows, and a day is then ~100 buckets of a few groups.
//! Buckets are UTC; every zone offset in use is a multiple of 15 minutes, so the local days of
//! the license time zone (the caller's `[start, end)` windows, from `channels::day_bounds`) are
//! whole sets of buckets. A window that does not fall on bucket edges (the alert engine's last
//! N minutes) takes its ragged ends from the legs, which is a short range scan.
//!
//! Deleting or editing legs marks their buckets stale (a trigger, `leg_outcome_stale`);
//! readers take a stale bucket from the legs until the next insert transaction rebuilds it.
//! A leg belongs to the window its `start` falls in, as calls are counted where they began.

use std::collections::HashMap;

use calls::{EndReason, Leg, Micros};
use channels::Window;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::SqliteConnection;

use crate::sqlite::SqliteStore;
use crate::{Result, StoreError};

/// Width of an outcome bucket: 15 minutes, the finest step of the world's UTC offsets.
pub(crate) const BUCKET: Micros = 15 * 60 * 1_000_000;

/// Stale buckets rebuilt per insert transaction at most, so that deleting a month of legs
/// cannot make one batch slow; the rest wait for the next batches (readers are right meanwhile).
const REFRESH_PER_BATCH: i64 = 8;

/// `code` of a bucket row for "no final response": key columns must not be NULL.
const NO_CODE: i64 = -1;

fn bucket_of(t: Micros) -> Micros {
    t.div_euclid(BUCKET) * BUCKET
}

/// Legs of one day that ended the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeGroup {
    /// The last SIP response code to the INVITE; `None` when no final response came
    /// (timeouts, end of input before a reply).
    pub last_response: Option<u16>,
    /// One reason phrase seen with that code (the smallest, so the answer is deterministic
    /// when devices word the same code differently); `None` if no leg carried one.
    pub reason_text: Option<String>,
    /// Whether the legs were answered (had a 2xx to the INVITE).
    pub answered: bool,
    pub end_reason: EndReason,
    /// How many legs.
    pub legs: u64,
    /// Σ connect duration (`end − answer`, negative values counted as 0) of the answered legs
    /// of the group, in µs; 0 for unanswered groups.
    pub connect_us: u64,
}

/// The outcome groups of the legs that started in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayOutcomes {
    pub window: Window,
    /// Ordered by (last_response, answered, end_reason), `None` codes first.
    pub groups: Vec<OutcomeGroup>,
}

/// The groups of the legs that started in `[?1, ?2)`, from the legs themselves (ragged window
/// ends and stale buckets). Same shape as [`BUCKETS_SQL`].
const LEGS_SQL: &str = "SELECT COALESCE(last_response, -1), answer_us IS NOT NULL, end_reason, \
     COUNT(*), \
     SUM(CASE WHEN answer_us IS NULL THEN 0 ELSE MAX(end_us - answer_us, 0) END), \
     MIN(last_response_text) \
     FROM legs WHERE start_us >= ?1 AND start_us < ?2 \
     GROUP BY 1, 2, 3";

/// The groups of the fresh buckets in `[?1, ?2)`.
const BUCKETS_SQL: &str = "SELECT code, answered, end_reason, SUM(legs), SUM(connect_us), \
     MIN(reason_text) FROM leg_outcome_buckets \
     WHERE bucket_us >= ?1 AND bucket_us < ?2 \
     AND bucket_us NOT IN (SELECT bucket_us FROM leg_outcome_stale) \
     GROUP BY 1, 2, 3";

type OutcomeRow = (i64, bool, String, i64, Option<i64>, Option<String>);

/// Group key: (code or -1, answered, end reason).
type GroupKey = (i64, bool, &'static str);

/// The outcome groups of a batch's new legs per bucket, summed in Rust so that the insert
/// transaction writes one row per (bucket, group) instead of touching a row per leg.
#[derive(Default)]
pub(crate) struct OutcomeBatch<'a> {
    groups: HashMap<(Micros, GroupKey), Sums<'a>>,
}

struct Sums<'a> {
    legs: i64,
    connect_us: i64,
    reason_text: Option<&'a str>,
}

impl<'a> OutcomeBatch<'a> {
    /// Counts a leg that was just inserted.
    pub(crate) fn add(&mut self, leg: &'a Leg) {
        let key = (
            leg.last_response.map_or(NO_CODE, i64::from),
            leg.answer.is_some(),
            leg.end_reason.as_str(),
        );
        let sums = self
            .groups
            .entry((bucket_of(leg.start), key))
            .or_insert(Sums {
                legs: 0,
                connect_us: 0,
                reason_text: None,
            });
        sums.legs += 1;
        if let Some(answer) = leg.answer {
            sums.connect_us += (leg.end - answer).max(0);
        }
        sums.reason_text = min_text(sums.reason_text, leg.last_response_text.as_deref());
    }

    /// Adds the batch's sums to the bucket rows. Runs in the insert transaction.
    pub(crate) fn write(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO leg_outcome_buckets \
             (bucket_us, code, answered, end_reason, legs, connect_us, reason_text) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
             ON CONFLICT (bucket_us, code, answered, end_reason) DO UPDATE SET \
             legs = legs + excluded.legs, \
             connect_us = connect_us + excluded.connect_us, \
             reason_text = COALESCE(MIN(reason_text, excluded.reason_text), reason_text, \
             excluded.reason_text)",
        )?;
        for ((bucket, (code, answered, reason)), sums) in &self.groups {
            upsert.execute((
                bucket,
                code,
                answered,
                reason,
                sums.legs,
                sums.connect_us,
                sums.reason_text,
            ))?;
        }
        Ok(())
    }
}

/// The smaller of two optional texts, `None` only if both are (SQL's `MIN` aggregate ignores
/// NULL). Rust compares `str` bytewise, as SQLite's BINARY collation does.
fn min_text<'a>(a: Option<&'a str>, b: Option<&'a str>) -> Option<&'a str> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Rebuilds a few stale buckets from the legs. Runs at the start of the insert transaction,
/// before the batch's own legs are counted.
pub(crate) fn refresh_stale_buckets(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
    let stale: Vec<Micros> = tx
        .prepare_cached("SELECT bucket_us FROM leg_outcome_stale ORDER BY bucket_us LIMIT ?1")?
        .query_map([REFRESH_PER_BATCH], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for bucket in stale {
        tx.prepare_cached("DELETE FROM leg_outcome_buckets WHERE bucket_us = ?1")?
            .execute([bucket])?;
        tx.prepare_cached(&format!(
            "INSERT INTO leg_outcome_buckets \
             (code, answered, end_reason, legs, connect_us, reason_text, bucket_us) \
             SELECT *, ?1 FROM ({LEGS_SQL})"
        ))?
        .execute((bucket, bucket + BUCKET))?;
        tx.prepare_cached("DELETE FROM leg_outcome_stale WHERE bucket_us = ?1")?
            .execute([bucket])?;
    }
    Ok(())
}

/// `[from, to)` in µs.
type Range = (Micros, Micros);

/// Where each part of a window is read from: the bucket rows for the whole buckets inside it,
/// the legs for the ragged ends.
fn window_parts(w: Window) -> (Option<Range>, Vec<Range>) {
    if w.start >= w.end {
        return (None, Vec::new());
    }
    let first = bucket_of(w.start.saturating_sub(1)).saturating_add(BUCKET); // first edge >= start
    let last = bucket_of(w.end); // the last bucket edge at or before end
    if first >= last {
        return (None, vec![(w.start, w.end)]);
    }
    let edges = [(w.start, first), (last, w.end)]
        .into_iter()
        .filter(|(a, b)| a < b)
        .collect();
    (Some((first, last)), edges)
}

/// One window's groups, read in one transaction so that the stale set and the rows agree.
async fn window_outcomes(conn: &mut SqliteConnection, window: Window) -> Result<DayOutcomes> {
    let (whole, mut from_legs) = window_parts(window);
    let mut rows: Vec<OutcomeRow> = Vec::new();
    if let Some((first, last)) = whole {
        let stale: Vec<i64> = sqlx::query_scalar(
            "SELECT bucket_us FROM leg_outcome_stale WHERE bucket_us >= ?1 AND bucket_us < ?2",
        )
        .bind(first)
        .bind(last)
        .fetch_all(&mut *conn)
        .await?;
        from_legs.extend(stale.into_iter().map(|b| (b, b + BUCKET)));
        rows.extend(
            sqlx::query_as::<_, OutcomeRow>(BUCKETS_SQL)
                .bind(first)
                .bind(last)
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    for (from, to) in from_legs {
        rows.extend(
            sqlx::query_as::<_, OutcomeRow>(LEGS_SQL)
                .bind(from)
                .bind(to)
                .fetch_all(&mut *conn)
                .await?,
        );
    }
    Ok(DayOutcomes {
        window,
        groups: merge(rows)?,
    })
}

/// Sums rows of the same group (from buckets and from legs) and orders the groups like the
/// report expects: by code (none first), answered, end reason.
fn merge(rows: Vec<OutcomeRow>) -> Result<Vec<OutcomeGroup>> {
    let mut by_key: HashMap<(i64, bool, String), OutcomeRow> = HashMap::new();
    for row in rows {
        match by_key.entry((row.0, row.1, row.2.clone())) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(row);
            }
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let acc = o.get_mut();
                acc.3 += row.3;
                acc.4 = Some(acc.4.unwrap_or(0) + row.4.unwrap_or(0));
                acc.5 = min_text(acc.5.as_deref(), row.5.as_deref()).map(str::to_string);
            }
        }
    }
    let mut groups = by_key
        .into_values()
        .map(group_from_row)
        .collect::<Result<Vec<_>>>()?;
    groups.sort_by(|a, b| {
        (a.last_response, a.answered, a.end_reason.as_str()).cmp(&(
            b.last_response,
            b.answered,
            b.end_reason.as_str(),
        ))
    });
    Ok(groups)
}

impl SqliteStore {
    pub(crate) async fn leg_outcomes(&self, days: &[Window]) -> Result<Vec<DayOutcomes>> {
        // Two days in flight, each on its own pooled connection and SQLite worker thread.
        futures_util::stream::iter(days.iter().copied())
            .map(|window| async move {
                let mut tx = self.pool.begin().await?;
                let out = window_outcomes(&mut tx, window).await?;
                tx.commit().await?;
                Ok::<_, StoreError>(out)
            })
            .buffered(2)
            .try_collect()
            .await
    }
}

fn group_from_row(row: OutcomeRow) -> Result<OutcomeGroup> {
    let (code, answered, reason, legs, connect, text) = row;
    // A value the leg model cannot hold means the file was edited or damaged; say which column
    // rather than guessing. There is no single leg to name, hence leg_id 0.
    let corrupt = |column: &'static str| StoreError::CorruptLeg { leg_id: 0, column };
    let last_response = match code {
        NO_CODE => None,
        c => Some(u16::try_from(c).map_err(|_| corrupt("last_response"))?),
    };
    Ok(OutcomeGroup {
        last_response,
        reason_text: text,
        answered,
        end_reason: EndReason::parse(&reason).ok_or_else(|| corrupt("end_reason"))?,
        legs: u64::try_from(legs).unwrap_or(0),
        connect_us: connect.map_or(0, |c| u64::try_from(c).unwrap_or(0)),
    })
}

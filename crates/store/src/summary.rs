//! Per-day outcome aggregates of the legs, for the daily report (calls, answered, ASR, ACD,
//! failures by final code, cancelled).
//!
//! The report is over a million legs a day at license scale, so it is summed by SQLite with
//! `GROUP BY`, never by reading legs into Rust: a day collapses to a few dozen groups of
//! (final code, answered?, end reason). Days are the caller's `[start, end)` windows (local
//! days of the license time zone, from `channels::day_bounds`), because the store knows no
//! time zone; each window is one range scan of the `legs_channels` index, which starts with
//! `start_us`. A leg belongs to the window its `start` falls in, as calls are counted where
//! they began.
//!
//! Cost (examples/summary_bench.rs, 1 M legs in one day, 2 cores): about 1 s per day. The
//! index range scan is ~50 ms and the row lookups ~180 ms; the rest is SQLite's GROUP BY,
//! which always sorts (it has no hash aggregation), and a covering index does not change that.
//! Pages that must answer in 100 ms need these groups materialised per 15-minute bucket
//! (every zone offset is a multiple of 15 minutes), kept up to date by insert/delete triggers:
//! a day is then ~100 rows and sums in under a millisecond (prototyped in the bench's notes).

use calls::EndReason;
use channels::Window;
use futures_util::{StreamExt, TryStreamExt};

use crate::sqlite::SqliteStore;
use crate::{Result, StoreError};

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

/// One statement for every window: the range on `start_us` lets SQLite walk the index, and
/// the grouping keys are few, so the result is small whatever the day's volume.
const OUTCOMES_SQL: &str = "SELECT last_response, answer_us IS NOT NULL AS answered, end_reason, \
     COUNT(*), \
     SUM(CASE WHEN answer_us IS NULL THEN 0 ELSE MAX(end_us - answer_us, 0) END), \
     MIN(last_response_text) \
     FROM legs WHERE start_us >= ? AND start_us < ? \
     GROUP BY last_response, answered, end_reason \
     ORDER BY last_response, answered, end_reason";

type OutcomeRow = (Option<i64>, bool, String, i64, Option<i64>, Option<String>);

impl SqliteStore {
    pub(crate) async fn leg_outcomes(&self, days: &[Window]) -> Result<Vec<DayOutcomes>> {
        // Two days in flight: each query runs on its own pooled connection and SQLite worker
        // thread, so a multi-day report uses both cores.
        futures_util::stream::iter(days.iter().copied())
            .map(|window| async move {
                // An empty or inverted window matches no leg: the range is simply empty.
                let rows: Vec<OutcomeRow> = sqlx::query_as(OUTCOMES_SQL)
                    .bind(window.start)
                    .bind(window.end)
                    .fetch_all(&self.pool)
                    .await?;
                let groups = rows
                    .into_iter()
                    .map(group_from_row)
                    .collect::<Result<Vec<_>>>()?;
                Ok::<_, StoreError>(DayOutcomes { window, groups })
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
        None => None,
        Some(c) => Some(u16::try_from(c).map_err(|_| corrupt("last_response"))?),
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

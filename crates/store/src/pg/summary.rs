//! Outcome aggregates for the daily report on PostgreSQL (see `crate::summary`): the same
//! 15-minute buckets, maintained by the insert statement, with stale buckets and the ragged
//! ends of a window taken from the legs. The merge of bucket rows and leg rows happens in the
//! one query of a window, so a window is one round trip.

use calls::{EndReason, Micros};
use channels::Window;
use sqlx::Row;

use super::PgStore;
use crate::{DayOutcomes, OutcomeGroup, Result, StoreError};

const BUCKET: Micros = 15 * 60 * 1_000_000;

/// The group key and sums of a set of legs, in bucket column order (code, answered,
/// end_reason, legs, connect_us, reason_text). Reason phrases compare bytewise like SQLite's.
pub(crate) const GROUP_COLUMNS: &str = "COALESCE(last_response, -1), answer_us IS NOT NULL, \
     end_reason, COUNT(*), \
     SUM(CASE WHEN answer_us IS NULL THEN 0 ELSE GREATEST(end_us - answer_us, 0) END), \
     MIN(last_response_text COLLATE \"C\")";

/// One window: fresh whole buckets in `[$3, $4)` from the bucket rows; the legs of the window
/// outside them, or in a stale bucket, from the legs.
const WINDOW_SQL: &str = "SELECT code, answered, end_reason, SUM(legs)::BIGINT, \
     SUM(connect_us)::BIGINT, MIN(reason_text COLLATE \"C\") FROM ( \
       SELECT code, answered, end_reason, legs, connect_us, reason_text \
       FROM leg_outcome_buckets WHERE bucket_us >= $3 AND bucket_us < $4 \
       AND bucket_us NOT IN (SELECT bucket_us FROM leg_outcome_stale) \
     UNION ALL \
       SELECT COALESCE(last_response, -1), answer_us IS NOT NULL, end_reason, 1::BIGINT, \
       CASE WHEN answer_us IS NULL THEN 0 ELSE GREATEST(end_us - answer_us, 0) END, \
       last_response_text \
       FROM legs WHERE start_us >= $1 AND start_us < $2 AND (start_us < $3 OR start_us >= $4 \
       OR start_us - ((start_us % 900000000) + 900000000) % 900000000 \
          IN (SELECT bucket_us FROM leg_outcome_stale)) \
     ) parts GROUP BY 1, 2, 3";

/// The whole buckets inside a window: `[first, last)`, empty when there are none.
fn whole_buckets(w: Window) -> (Micros, Micros) {
    let first = w.start.div_euclid(BUCKET) * BUCKET;
    let first = if first < w.start {
        first + BUCKET
    } else {
        first
    };
    let last = w.end.div_euclid(BUCKET) * BUCKET;
    if first >= last {
        (w.end, w.end)
    } else {
        (first, last)
    }
}

impl PgStore {
    pub(crate) async fn leg_outcomes(&self, days: &[Window]) -> Result<Vec<DayOutcomes>> {
        let mut out = Vec::with_capacity(days.len());
        for &window in days {
            let (first, last) = if window.start < window.end {
                whole_buckets(window)
            } else {
                (window.end, window.end)
            };
            let rows = sqlx::query(WINDOW_SQL)
                .bind(window.start)
                .bind(window.end)
                .bind(first)
                .bind(last)
                .fetch_all(&self.pool)
                .await?;
            let mut groups = rows.iter().map(group_of).collect::<Result<Vec<_>>>()?;
            // The order the report expects: no code first, then by code, answered, reason.
            groups.sort_by(|a, b| {
                (a.last_response, a.answered, a.end_reason.as_str()).cmp(&(
                    b.last_response,
                    b.answered,
                    b.end_reason.as_str(),
                ))
            });
            out.push(DayOutcomes { window, groups });
        }
        Ok(out)
    }
}

fn group_of(row: &sqlx::postgres::PgRow) -> Result<OutcomeGroup> {
    let corrupt = |column: &'static str| StoreError::CorruptLeg { leg_id: 0, column };
    let code: i32 = row.try_get(0)?;
    let reason: String = row.try_get(2)?;
    let legs: i64 = row.try_get(3)?;
    let connect: Option<i64> = row.try_get(4)?;
    Ok(OutcomeGroup {
        last_response: match code {
            -1 => None,
            c => Some(u16::try_from(c).map_err(|_| corrupt("last_response"))?),
        },
        reason_text: row.try_get(5)?,
        answered: row.try_get(1)?,
        end_reason: EndReason::parse(&reason).ok_or_else(|| corrupt("end_reason"))?,
        legs: u64::try_from(legs).unwrap_or(0),
        connect_us: connect.map_or(0, |c| u64::try_from(c).unwrap_or(0)),
    })
}

//! Channel statistics on PostgreSQL: the same dirty ranges and minute rows as SQLite (see
//! `crate::channel_stats`), computed by the same pure `channels` engine. Only the scan of a
//! day differs: a streamed query over the covering index `legs_channels` of the day's
//! partitions, two days in flight on two connections so that the database reads one day while
//! Rust sweeps the other.

use calls::Micros;
use channels::{ActiveMode, MinuteRow, Window};
use futures_util::{StreamExt, TryStreamExt};
use sqlx::Row;

use super::{LEG_SELECT, PgStore, leg_from_row};
use crate::channel_stats::{DaySweep, MAX_LEG, MODE, day_windows, minute_from_columns, mode_code};
use crate::{ChannelUpdate, Result, StoreError, StoredLeg};

impl PgStore {
    async fn meta(&self, name: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM store_meta WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    pub(crate) async fn update_channel_stats(&mut self, mode: ActiveMode) -> Result<ChannelUpdate> {
        if self.meta(MODE).await? != Some(mode_code(mode)) {
            return self.recompute_channel_stats(mode).await;
        }
        let dirty: Vec<(i64, i64, i64)> =
            sqlx::query_as("SELECT id, from_us, to_us FROM channel_dirty ORDER BY id")
                .fetch_all(&self.pool)
                .await?;
        let Some(last_id) = dirty.last().map(|d| d.0) else {
            return Ok(ChannelUpdate::default());
        };
        let ranges: Vec<(Micros, Micros)> = dirty.iter().map(|d| (d.1, d.2)).collect();
        let max_leg = self.meta(MAX_LEG).await?.unwrap_or(0);
        let mut update = ChannelUpdate::default();
        let this = &*self;
        let mut days = futures_util::stream::iter(day_windows(&ranges))
            .map(|window| async move {
                let (legs, rows) = this.compute_window(window, mode, max_leg).await?;
                Ok::<_, StoreError>((window, legs, rows))
            })
            .buffered(2);
        while let Some((window, legs, rows)) = days.try_next().await? {
            this.replace_minutes(window, &rows).await?;
            update.days += 1;
            update.legs += legs;
            update.minutes += rows.len() as u64;
        }
        drop(days);
        sqlx::query("DELETE FROM channel_dirty WHERE id <= $1")
            .bind(last_id)
            .execute(&self.pool)
            .await?;
        Ok(update)
    }

    pub(crate) async fn recompute_channel_stats(
        &mut self,
        mode: ActiveMode,
    ) -> Result<ChannelUpdate> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM channel_minutes")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO channel_dirty (from_us, to_us) \
             SELECT MIN(start_us), MAX(end_us) FROM legs HAVING COUNT(*) > 0",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO store_meta (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(MODE)
        .bind(mode_code(mode))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Box::pin(self.update_channel_stats(mode)).await
    }

    /// Minute rows of one day from every leg overlapping it, streamed: a day at license
    /// scale is a million legs, which are keyed as they arrive and never held as rows.
    async fn compute_window(
        &self,
        window: Window,
        mode: ActiveMode,
        max_leg: Micros,
    ) -> Result<(u64, Vec<MinuteRow>)> {
        let mut rows = sqlx::query(
            "SELECT caller, called, start_us, answer_us, end_us FROM legs \
             WHERE start_us < $1 AND start_us >= $2 AND end_us > $3",
        )
        .bind(window.end)
        .bind(window.start.saturating_sub(max_leg))
        .bind(window.start)
        .fetch(&self.pool);
        let mut sweep = DaySweep::new(mode);
        while let Some(row) = rows.try_next().await? {
            let start: i64 = row.try_get(2)?;
            let answer: Option<i64> = row.try_get(3)?;
            let end: i64 = row.try_get(4)?;
            sweep.leg(start, answer, end, || {
                Ok((row.try_get(0)?, row.try_get(1)?))
            })?;
        }
        sweep.finish(window)
    }

    async fn replace_minutes(&self, window: Window, rows: &[MinuteRow]) -> Result<()> {
        let busy: Vec<&MinuteRow> = rows.iter().filter(|r| r.peak > 0).collect();
        let col = |f: fn(&MinuteRow) -> i64| busy.iter().map(|r| f(r)).collect::<Vec<i64>>();
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM channel_minutes WHERE minute_us >= $1 AND minute_us < $2")
            .bind(window.start)
            .bind(window.end)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO channel_minutes (minute_us, peak, peak_at_us, integral, covered_us) \
             SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[], \
             $5::BIGINT[])",
        )
        .bind(col(|r| r.start))
        .bind(col(|r| i64::from(r.peak)))
        .bind(col(|r| r.peak_at))
        .bind(col(|r| r.integral as i64))
        .bind(col(|r| r.covered as i64))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn channel_minutes(&self, from: Micros, to: Micros) -> Result<Vec<MinuteRow>> {
        let rows: Vec<(i64, i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT minute_us, peak, peak_at_us, integral, covered_us FROM channel_minutes \
             WHERE minute_us >= $1 AND minute_us < $2 ORDER BY minute_us",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(minute_from_columns).collect())
    }

    pub(crate) async fn channel_extent(&self) -> Result<Option<(Micros, Micros)>> {
        let row: (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT MIN(minute_us), MAX(minute_us) FROM channel_minutes")
                .fetch_one(&self.pool)
                .await?;
        Ok(row.0.zip(row.1))
    }

    pub(crate) async fn legs_active_at(&self, t: Micros) -> Result<Vec<StoredLeg>> {
        let max_leg = self.meta(MAX_LEG).await?.unwrap_or(0);
        let rows = sqlx::query(&format!(
            "SELECT {LEG_SELECT} FROM legs WHERE start_us <= $1 AND start_us >= $2 \
             AND end_us > $1 ORDER BY start_us, id"
        ))
        .bind(t)
        .bind(t.saturating_sub(max_leg))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(leg_from_row).collect()
    }
}

//! Channel statistics kept by the store: per-minute rows of `channels(t)` (SPEC §2), brought
//! up to date incrementally.
//!
//! Every batch of new legs records the time ranges it covers in `channel_dirty`, in the same
//! transaction, so no leg can be missed. An update recomputes only the UTC days those ranges
//! touch, from all legs of all sensors overlapping them (a late sensor's legs thus update the
//! days they fall in), and replaces those days' minute rows. Reports and license checks read
//! the minute rows, never the legs.

use calls::{Leg, Micros};
use channels::{ActiveMode, Keyer, MinuteRow, Span, Window};
use futures_util::{StreamExt, TryStreamExt};

use crate::sqlite::SqliteStore;
use crate::{Result, StoredLeg};

pub(crate) const DAY: Micros = 86_400_000_000;
/// `store_meta` names, the same on both backends.
pub(crate) const MAX_LEG: &str = "max_leg_us";
pub(crate) const MODE: &str = "channel_mode";

/// What an update did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChannelUpdate {
    /// UTC days recomputed.
    pub days: u64,
    /// Legs read to recompute them.
    pub legs: u64,
    /// Minute rows written.
    pub minutes: u64,
}

pub(crate) fn mode_code(mode: ActiveMode) -> i64 {
    match mode {
        ActiveMode::Signalling => 0,
        ActiveMode::Answered => 1,
    }
}

/// Time ranges `[from, to)` covering the legs, merged where they overlap or touch, so a
/// batch of a busy hour records one range rather than thousands.
pub(crate) fn covered_ranges(legs: &[Leg]) -> Vec<(Micros, Micros)> {
    let mut spans: Vec<(Micros, Micros)> =
        legs.iter().map(|l| (l.start, l.end.max(l.start))).collect();
    spans.sort_unstable();
    let mut out: Vec<(Micros, Micros)> = Vec::new();
    for (from, to) in spans {
        match out.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => out.push((from, to)),
        }
    }
    out
}

/// Record that the legs' time ranges are stale, and the longest leg. Runs inside the insert
/// transaction, once per batch: a batch of a busy hour is one or a few merged ranges.
pub(crate) fn mark_dirty(tx: &rusqlite::Transaction<'_>, legs: &[Leg]) -> rusqlite::Result<()> {
    let mut insert =
        tx.prepare_cached("INSERT INTO channel_dirty (from_us, to_us) VALUES (?1, ?2)")?;
    for (from, to) in covered_ranges(legs) {
        insert.execute((from, to))?;
    }
    let longest = legs.iter().map(|l| l.end - l.start).max().unwrap_or(0);
    tx.prepare_cached(
        "INSERT INTO store_meta (name, value) VALUES (?1, ?2) \
         ON CONFLICT (name) DO UPDATE SET value = MAX(value, excluded.value)",
    )?
    .execute((MAX_LEG, longest))?;
    Ok(())
}

/// Whole UTC days covering the ranges, each once, in order.
pub(crate) fn day_windows(ranges: &[(Micros, Micros)]) -> Vec<Window> {
    let mut days: Vec<(Micros, Micros)> = ranges
        .iter()
        .map(|&(from, to)| {
            let start = from.div_euclid(DAY) * DAY;
            // A zero-length range still marks its day.
            let end = (to.max(from + 1) - 1).div_euclid(DAY) * DAY + DAY;
            (start, end)
        })
        .collect();
    days.sort_unstable();
    let mut merged: Vec<Window> = Vec::new();
    for (start, end) in days {
        match merged.last_mut() {
            Some(w) if start <= w.end => w.end = w.end.max(end),
            _ => merged.push(Window { start, end }),
        }
    }
    // One day at a time: bounded memory whatever the range, and each day commits on its own.
    merged
        .into_iter()
        .flat_map(|w| {
            (0..(w.end - w.start) / DAY).map(move |i| Window {
                start: w.start + i * DAY,
                end: w.start + (i + 1) * DAY,
            })
        })
        .collect()
}

impl SqliteStore {
    async fn meta(&self, name: &str) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT value FROM store_meta WHERE name = ?")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// The longest leg stored: legs active at `t` started at or after `t - max_leg`.
    async fn max_leg(&self) -> Result<Micros> {
        Ok(self.meta(MAX_LEG).await?.unwrap_or(0))
    }

    pub(crate) async fn update_channel_stats(&mut self, mode: ActiveMode) -> Result<ChannelUpdate> {
        if self.meta(MODE).await? != Some(mode_code(mode)) {
            // Rows computed in another mode are all wrong: start over.
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
        let mut update = ChannelUpdate::default();
        let max_leg = self.max_leg().await?;
        // Two days in flight: each query runs on its own connection (and SQLite worker
        // thread), so reading one day overlaps with keying and sweeping the other.
        let this = &*self;
        let mut days = futures_util::stream::iter(day_windows(&ranges))
            .map(|window| async move {
                let (legs, rows) = this.compute_window(window, mode, max_leg).await?;
                Ok::<_, crate::StoreError>((window, legs, rows))
            })
            .buffered(2);
        while let Some((window, legs, rows)) = days.try_next().await? {
            this.replace_minutes(window, &rows).await?;
            update.days += 1;
            update.legs += legs;
            update.minutes += rows.len() as u64;
        }
        drop(days);
        // Ranges added meanwhile (ids above last_id) stay for the next update.
        sqlx::query("DELETE FROM channel_dirty WHERE id <= ?")
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
            "INSERT INTO store_meta (name, value) VALUES (?, ?) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(MODE)
        .bind(mode_code(mode))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Box::pin(self.update_channel_stats(mode)).await
    }

    /// Minute rows of one window from every leg overlapping it.
    ///
    /// The scan of a day (a million legs at license scale) runs on a blocking thread with its
    /// own plain SQLite connection: sqlx hands each row over as an owned, channel-sent value,
    /// which measured 3x slower than stepping the statement directly, and a thread per day
    /// lets two days use both cores. WAL gives that reader the last committed snapshot.
    async fn compute_window(
        &self,
        window: Window,
        mode: ActiveMode,
        max_leg: Micros,
    ) -> Result<(u64, Vec<MinuteRow>)> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || scan_window(&path, window, mode, max_leg))
            .await
            .map_err(|e| crate::StoreError::Channels(format!("channel scan stopped: {e}")))?
    }

    async fn replace_minutes(&self, window: Window, rows: &[MinuteRow]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM channel_minutes WHERE minute_us >= ? AND minute_us < ?")
            .bind(window.start)
            .bind(window.end)
            .execute(&mut *tx)
            .await?;
        // Minutes with no channel at all are not stored: an idle night costs nothing, and a
        // missing row inside a computed day reads as zero.
        let busy: Vec<&MinuteRow> = rows.iter().filter(|r| r.peak > 0).collect();
        for chunk in busy.chunks(5000) {
            let mut qb = sqlx::QueryBuilder::new(
                "INSERT INTO channel_minutes (minute_us, peak, peak_at_us, integral, covered_us) ",
            );
            qb.push_values(chunk, |mut b, r| {
                b.push_bind(r.start)
                    .push_bind(i64::from(r.peak))
                    .push_bind(r.peak_at)
                    .push_bind(r.integral as i64)
                    .push_bind(r.covered as i64);
            });
            qb.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Read with rusqlite on a blocking thread: a fortnight is ~20 000 rows, and sqlx's
    /// per-row hand-over between threads made that ~100 ms of every Reports page.
    pub(crate) async fn channel_minutes(&self, from: Micros, to: Micros) -> Result<Vec<MinuteRow>> {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || read_minutes(&path, from, to))
            .await
            .map_err(|e| crate::StoreError::Channels(format!("minute read stopped: {e}")))?
    }

    /// The first and last instants covered by channel rows, if any.
    pub(crate) async fn channel_extent(&self) -> Result<Option<(Micros, Micros)>> {
        let row: (Option<i64>, Option<i64>) =
            sqlx::query_as("SELECT MIN(minute_us), MAX(minute_us) FROM channel_minutes")
                .fetch_one(&self.pool)
                .await?;
        Ok(row.0.zip(row.1))
    }

    pub(crate) async fn legs_active_at(&self, t: Micros) -> Result<Vec<StoredLeg>> {
        let max_leg = self.max_leg().await?;
        let sql = format!(
            "SELECT id, {} FROM legs WHERE start_us <= ? AND start_us >= ? AND end_us > ? \
             ORDER BY start_us, id",
            crate::sqlite::LEG_COLUMNS.join(", ")
        );
        let rows = sqlx::query(&sql)
            .bind(t)
            .bind(t.saturating_sub(max_leg))
            .bind(t)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(crate::sqlite::leg_from_row).collect()
    }
}

/// The blocking half of [`SqliteStore::channel_minutes`].
fn read_minutes(path: &std::path::Path, from: Micros, to: Micros) -> Result<Vec<MinuteRow>> {
    let read_err = |e: rusqlite::Error| {
        crate::StoreError::Channels(format!("cannot read channel minutes: {e}"))
    };
    let conn = crate::sqlite::open_reader(path).map_err(read_err)?;
    let mut stmt = conn
        .prepare(
            "SELECT minute_us, peak, peak_at_us, integral, covered_us FROM channel_minutes \
             WHERE minute_us >= ?1 AND minute_us < ?2 ORDER BY minute_us",
        )
        .map_err(read_err)?;
    let rows = stmt
        .query_map((from, to), |r| {
            Ok(minute_from_columns((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
            )))
        })
        .map_err(read_err)?;
    rows.collect::<rusqlite::Result<Vec<_>>>().map_err(read_err)
}

/// The blocking half of [`SqliteStore::compute_window`].
fn scan_window(
    path: &std::path::Path,
    window: Window,
    mode: ActiveMode,
    max_leg: Micros,
) -> Result<(u64, Vec<MinuteRow>)> {
    let scan_err = |e: rusqlite::Error| crate::StoreError::Scan(e.to_string());
    let conn = crate::sqlite::open_reader(path).map_err(scan_err)?;
    let mut stmt = conn
        .prepare_cached(
            "SELECT caller, called, start_us, answer_us, end_us FROM legs \
             WHERE start_us < ?1 AND start_us >= ?2 AND end_us > ?3",
        )
        .map_err(scan_err)?;
    let mut rows = stmt
        .query((
            window.end,
            window.start.saturating_sub(max_leg),
            window.start,
        ))
        .map_err(scan_err)?;
    let mut sweep = DaySweep::new(mode);
    while let Some(row) = rows.next().map_err(scan_err)? {
        let start: i64 = row.get(2).map_err(scan_err)?;
        let answer: Option<i64> = row.get(3).map_err(scan_err)?;
        let end: i64 = row.get(4).map_err(scan_err)?;
        sweep.leg(start, answer, end, || {
            let caller = row.get_ref(0).map_err(scan_err)?.as_str().unwrap_or("");
            let called = row.get_ref(1).map_err(scan_err)?.as_str().unwrap_or("");
            Ok((caller, called))
        })?;
    }
    sweep.finish(window)
}

/// A day's scan as both backends feed it: legs in, in any order, minute rows out. Only
/// legs active in the mode cost a key, so the caller reads the caller/called text lazily.
pub(crate) struct DaySweep {
    mode: ActiveMode,
    keyer: Keyer,
    spans: Vec<Span>,
    legs: u64,
}

impl DaySweep {
    pub(crate) fn new(mode: ActiveMode) -> Self {
        DaySweep {
            mode,
            keyer: Keyer::new(),
            spans: Vec::new(),
            legs: 0,
        }
    }

    pub(crate) fn leg<'r>(
        &mut self,
        start: Micros,
        answer: Option<Micros>,
        end: Micros,
        parties: impl FnOnce() -> Result<(&'r str, &'r str)>,
    ) -> Result<()> {
        self.legs += 1;
        if let Some((from, to)) = channels::active_interval(start, answer, end, self.mode) {
            let (caller, called) = parties()?;
            self.spans.push(Span {
                key: self.keyer.key(caller, called),
                from,
                to,
            });
        }
        Ok(())
    }

    /// Legs seen and the window's minute rows.
    pub(crate) fn finish(self, window: Window) -> Result<(u64, Vec<MinuteRow>)> {
        let minutes = channels::minute_rows(&self.spans, window)
            .map_err(|e| crate::StoreError::Channels(e.to_string()))?;
        Ok((self.legs, minutes))
    }
}

/// A `channel_minutes` row as selected by both backends; out-of-range values are clamped
/// rather than trusted.
pub(crate) fn minute_from_columns(
    (start, peak, peak_at, integral, covered): (i64, i64, i64, i64, i64),
) -> MinuteRow {
    MinuteRow {
        start,
        peak: peak.clamp(0, u32::MAX as i64) as u32,
        peak_at,
        integral: integral.max(0) as u64,
        covered: covered.max(0) as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_windows_cover_every_touched_day_once() {
        let w = day_windows(&[
            (DAY + 5, DAY + 10),
            (DAY + 20, 3 * DAY),
            (10 * DAY, 10 * DAY),
        ]);
        let starts: Vec<Micros> = w.iter().map(|w| w.start / DAY).collect();
        assert_eq!(starts, vec![1, 2, 10]);
        assert!(w.iter().all(|w| w.end - w.start == DAY));
    }
}

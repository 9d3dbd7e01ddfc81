//! Writing leg batches to PostgreSQL.
//!
//! A batch is sent with COPY (binary format, one round trip for all its rows) into a temporary
//! staging table, then moved into `legs` by one `INSERT … SELECT … ON CONFLICT DO NOTHING`:
//! the identity key (sensor, start, Call-ID) skips legs already stored, so a re-sent batch is
//! stored once and the rest of a partly known batch is kept. The same statement adds the new
//! legs to the outcome buckets; the channel dirty ranges, the sensors and the messages are
//! written in the same transaction, so a batch is all there or not at all.
//!
//! `legs` is partitioned by UTC day. The partitions a batch needs are created before its
//! transaction (each in its own short one, serialised by an advisory lock so that two writers
//! never race on the same day), because creating a partition locks the whole `legs` table and
//! holding that lock for a batch would stall every reader.

use std::collections::HashSet;

use calls::{Leg, Micros};
use sqlx::postgres::PgConnection;
use sqlx::{Acquire, Row};

use super::PgStore;
use crate::codec::Encoder;
use crate::{InsertReport, Messages, Result, StoreError};

const DAY: Micros = 86_400_000_000;

/// Outcome bucket width (15 minutes): the SQL twin of `summary::BUCKET`.
const BUCKET: Micros = 15 * 60 * 1_000_000;

/// Key of the advisory lock taken while creating partitions (any constant unique to this use).
const PARTITION_LOCK: i64 = 0x5349_504d_5041_5254; // "SIPMPART"

/// Stale outcome buckets rebuilt per batch at most (as on SQLite).
const REFRESH_PER_BATCH: i64 = 8;

/// Columns copied into the staging table, `seq` (the leg's position in the batch) first.
const STAGE_COLUMNS: &str = "seq, sensor_id, call_id, caller, caller_domain, caller_name, called, \
     called_domain, called_name, from_tag, to_tag, start_us, answer_us, end_us, last_response, \
     last_response_text, end_reason, hangup_by, transport, src_ip, src_port, dst_ip, dst_port, \
     partial, referred_by, refer_to, replaces, user_agent, sip_message_count";

const LEG_COLUMNS: &str = "sensor_id, call_id, caller, caller_domain, caller_name, called, \
     called_domain, called_name, from_tag, to_tag, start_us, answer_us, end_us, last_response, \
     last_response_text, end_reason, hangup_by, transport, src_ip, src_port, dst_ip, dst_port, \
     partial, referred_by, refer_to, replaces, user_agent, sip_message_count";

/// The staging table lives as long as the connection; its rows only until the commit.
const CREATE_STAGE: &str = "CREATE TEMPORARY TABLE IF NOT EXISTS legs_stage ( \
     seq INTEGER NOT NULL, id BIGINT NOT NULL DEFAULT nextval('legs_id_seq'), \
     sensor_id BIGINT, call_id TEXT, caller TEXT, caller_domain TEXT, caller_name TEXT, \
     called TEXT, called_domain TEXT, called_name TEXT, from_tag TEXT, to_tag TEXT, \
     start_us BIGINT, answer_us BIGINT, end_us BIGINT, last_response INTEGER, \
     last_response_text TEXT, end_reason TEXT, hangup_by TEXT, transport TEXT, src_ip TEXT, \
     src_port INTEGER, dst_ip TEXT, dst_port INTEGER, partial BOOLEAN, referred_by TEXT, \
     refer_to TEXT, replaces TEXT, user_agent TEXT, sip_message_count BIGINT \
     ) ON COMMIT DELETE ROWS";

/// The move from staging into `legs` (which holds no leg twice: `first_of_each`), with the
/// outcome buckets of the legs really inserted.
fn move_sql(with_ids: bool) -> String {
    let tail = if with_ids {
        "SELECT s.seq, s.id FROM legs_stage s JOIN ins USING (id)"
    } else {
        "SELECT 0, COUNT(*) FROM ins"
    };
    format!(
        "WITH ins AS ( \
           INSERT INTO legs (id, {LEG_COLUMNS}) SELECT id, {LEG_COLUMNS} FROM legs_stage \
           ON CONFLICT (sensor_id, start_us, call_id) DO NOTHING \
           RETURNING id, start_us, answer_us, end_us, last_response, last_response_text, end_reason \
         ), buckets AS ( \
           INSERT INTO leg_outcome_buckets \
             (bucket_us, code, answered, end_reason, legs, connect_us, reason_text) \
           SELECT start_us - ((start_us % {BUCKET}) + {BUCKET}) % {BUCKET}, \
             COALESCE(last_response, -1), answer_us IS NOT NULL, end_reason, COUNT(*), \
             SUM(CASE WHEN answer_us IS NULL THEN 0 ELSE GREATEST(end_us - answer_us, 0) END), \
             MIN(last_response_text COLLATE \"C\") \
           FROM ins GROUP BY 1, 2, 3, 4 \
           ON CONFLICT (bucket_us, code, answered, end_reason) DO UPDATE SET \
             legs = leg_outcome_buckets.legs + excluded.legs, \
             connect_us = leg_outcome_buckets.connect_us + excluded.connect_us, \
             reason_text = LEAST(leg_outcome_buckets.reason_text COLLATE \"C\", \
                                 excluded.reason_text COLLATE \"C\") \
         ) {tail}"
    )
}

impl PgStore {
    pub(crate) async fn insert_legs(
        &mut self,
        legs: &[Leg],
        messages: Messages<'_>,
    ) -> Result<InsertReport> {
        if legs.is_empty() {
            return Ok(InsertReport::default());
        }
        self.ensure_partitions(legs).await?;
        let mut conn = self.pool.acquire().await?;
        let report = write_batch(&mut conn, legs, messages).await;
        if report.is_err() {
            // A failed COPY or statement may leave the connection mid-protocol; do not give
            // it back to the pool.
            conn.detach();
        }
        report
    }

    /// Creates the day partitions the batch needs that this handle has not seen yet.
    async fn ensure_partitions(&mut self, legs: &[Leg]) -> Result<()> {
        let mut days: Vec<Micros> = legs
            .iter()
            .map(|l| l.start.div_euclid(DAY) * DAY)
            .filter(|d| !self.partitions.contains(d))
            .collect();
        days.sort_unstable();
        days.dedup();
        for day in days {
            let mut tx = self.pool.begin().await?;
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(PARTITION_LOCK)
                .execute(&mut *tx)
                .await?;
            // DDL takes no bind parameters; the values are integers formatted here.
            sqlx::query(&format!(
                "CREATE TABLE IF NOT EXISTS {} PARTITION OF legs FOR VALUES FROM ({day}) TO ({})",
                partition_name(day),
                day + DAY
            ))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            self.partitions.insert(day);
        }
        Ok(())
    }
}

/// `legs_YYYYMMDD` of the UTC day starting at `day` (µs), for people reading `\d+ legs`.
pub(crate) fn partition_name(day: Micros) -> String {
    let (y, m, d) = civil_from_days(day.div_euclid(DAY));
    if y < 0 {
        format!("legs_m{:04}{m:02}{d:02}", -y)
    } else {
        format!("legs_{y:04}{m:02}{d:02}")
    }
}

/// Proleptic Gregorian date of a day number (days since 1970-01-01).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

async fn write_batch(
    conn: &mut PgConnection,
    legs: &[Leg],
    messages: Messages<'_>,
) -> Result<InsertReport> {
    sqlx::query(CREATE_STAGE).execute(&mut *conn).await?;
    let mut tx = conn.begin().await?;
    register_sensors(&mut tx, legs).await?;
    refresh_stale_buckets(&mut tx).await?;

    let mut copy = tx
        .copy_in_raw(&format!(
            "COPY legs_stage ({STAGE_COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let mut buf = Vec::with_capacity(64 * 1024);
    buf.extend_from_slice(COPY_BINARY_HEADER);
    let kept = first_of_each(legs);
    for &(seq, leg) in &kept {
        copy_row(&mut buf, seq, leg);
        if buf.len() >= 60 * 1024 {
            copy.send(buf.as_slice()).await?;
            buf.clear();
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    copy.send(buf.as_slice()).await?;
    copy.finish().await?;

    let with_messages = match messages {
        Messages::InLegs => legs.iter().any(|l| !l.messages.is_empty()),
        Messages::Encoded(e) => e.iter().any(Option::is_some),
    };
    let rows = sqlx::query(&move_sql(with_messages))
        .fetch_all(&mut *tx)
        .await?;
    let mut report = InsertReport::default();
    if with_messages {
        report.inserted = rows.len() as u64;
        let new: Vec<(usize, i64)> = rows
            .iter()
            .map(|r| Ok((r.try_get::<i32, _>(0)? as usize, r.try_get::<i64, _>(1)?)))
            .collect::<Result<_>>()?;
        report.legs_with_messages = write_messages(&mut tx, legs, messages, &new).await?;
    } else if let Some(r) = rows.first() {
        report.inserted = r.try_get::<i64, _>(1)? as u64;
    }
    if report.inserted > 0 {
        mark_dirty(&mut tx, legs).await?;
    }
    tx.commit().await?;
    report.duplicates = legs.len() as u64 - report.inserted;
    Ok(report)
}

/// Signature, flags and header extension length of a binary COPY stream.
const COPY_BINARY_HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// Fields of a staging row (`STAGE_COLUMNS`).
const STAGE_FIELDS: i16 = 29;

/// The batch without the later copies of a leg it holds twice (same sensor, start and
/// Call-ID), with each leg's position: the first copy is the one kept, as on SQLite, without
/// asking the database to sort the batch.
fn first_of_each(legs: &[Leg]) -> Vec<(usize, &Leg)> {
    let mut seen = HashSet::with_capacity(legs.len());
    legs.iter()
        .enumerate()
        .filter(|(_, l)| seen.insert((l.sensor_id, l.start, l.call_id.as_str())))
        .collect()
}

/// One staging row in binary COPY format: no escaping to write and no text for the server to
/// parse (its parsing was a tenth of its work per leg in text format).
fn copy_row(buf: &mut Vec<u8>, seq: usize, leg: &Leg) {
    buf.extend_from_slice(&STAGE_FIELDS.to_be_bytes());
    int4(buf, seq as i32);
    int8(buf, i64::from(leg.sensor_id));
    text(buf, &leg.call_id);
    text(buf, &leg.caller);
    text(buf, &leg.caller_domain);
    opt_text(buf, leg.caller_name.as_deref());
    text(buf, &leg.called);
    text(buf, &leg.called_domain);
    opt_text(buf, leg.called_name.as_deref());
    opt_text(buf, leg.from_tag.as_deref());
    opt_text(buf, leg.to_tag.as_deref());
    int8(buf, leg.start);
    match leg.answer {
        Some(v) => int8(buf, v),
        None => null(buf),
    }
    int8(buf, leg.end);
    match leg.last_response {
        Some(v) => int4(buf, i32::from(v)),
        None => null(buf),
    }
    opt_text(buf, leg.last_response_text.as_deref());
    text(buf, leg.end_reason.as_str());
    opt_text(buf, leg.hangup_by.map(|h| h.as_str()));
    text(buf, leg.transport.as_str());
    text(buf, &leg.src_ip.to_string());
    int4(buf, i32::from(leg.src_port));
    text(buf, &leg.dst_ip.to_string());
    int4(buf, i32::from(leg.dst_port));
    buf.extend_from_slice(&1i32.to_be_bytes());
    buf.push(u8::from(leg.partial));
    opt_text(buf, leg.referred_by.as_deref());
    opt_text(buf, leg.refer_to.as_deref());
    opt_text(buf, leg.replaces.as_deref());
    opt_text(buf, leg.user_agent.as_deref());
    int8(buf, i64::from(leg.sip_message_count));
}

fn int4(buf: &mut Vec<u8>, v: i32) {
    buf.extend_from_slice(&4i32.to_be_bytes());
    buf.extend_from_slice(&v.to_be_bytes());
}

fn int8(buf: &mut Vec<u8>, v: i64) {
    buf.extend_from_slice(&8i32.to_be_bytes());
    buf.extend_from_slice(&v.to_be_bytes());
}

fn null(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&(-1i32).to_be_bytes());
}

/// A text field: its length, then its UTF-8 bytes as they are.
fn text(buf: &mut Vec<u8>, s: &str) {
    // A field over 2 GiB cannot come from a SIP header; it would fail the COPY, not corrupt it.
    buf.extend_from_slice(&i32::try_from(s.len()).unwrap_or(i32::MAX).to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

fn opt_text(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => text(buf, s),
        None => null(buf),
    }
}

/// Makes sure every sensor id of the batch has a row, for the foreign key.
async fn register_sensors(conn: &mut PgConnection, legs: &[Leg]) -> Result<()> {
    let mut ids: Vec<i64> = legs.iter().map(|l| i64::from(l.sensor_id)).collect();
    ids.sort_unstable();
    ids.dedup();
    sqlx::query(
        "INSERT INTO sensors (id, name, created_us) \
         SELECT id, 'sensor ' || id, (EXTRACT(EPOCH FROM now()) * 1000000)::BIGINT \
         FROM UNNEST($1::BIGINT[]) AS t (id) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// Rebuilds a few stale outcome buckets from the legs (as the SQLite path does).
async fn refresh_stale_buckets(conn: &mut PgConnection) -> Result<()> {
    let stale: Vec<i64> =
        sqlx::query_scalar("SELECT bucket_us FROM leg_outcome_stale ORDER BY bucket_us LIMIT $1")
            .bind(REFRESH_PER_BATCH)
            .fetch_all(&mut *conn)
            .await?;
    for bucket in stale {
        sqlx::query("DELETE FROM leg_outcome_buckets WHERE bucket_us = $1")
            .bind(bucket)
            .execute(&mut *conn)
            .await?;
        sqlx::query(&format!(
            "INSERT INTO leg_outcome_buckets \
             (bucket_us, code, answered, end_reason, legs, connect_us, reason_text) \
             SELECT $1, {} FROM legs WHERE start_us >= $1 AND start_us < $2 GROUP BY 2, 3, 4",
            super::summary::GROUP_COLUMNS
        ))
        .bind(bucket)
        .bind(bucket + BUCKET)
        .execute(&mut *conn)
        .await?;
        sqlx::query("DELETE FROM leg_outcome_stale WHERE bucket_us = $1")
            .bind(bucket)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Records the batch's time ranges as stale for the channel figures, and the longest leg.
async fn mark_dirty(conn: &mut PgConnection, legs: &[Leg]) -> Result<()> {
    let ranges = crate::channel_stats::covered_ranges(legs);
    let (from, to): (Vec<i64>, Vec<i64>) = ranges.into_iter().unzip();
    sqlx::query("INSERT INTO channel_dirty (from_us, to_us) SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[])")
        .bind(&from)
        .bind(&to)
        .execute(&mut *conn)
        .await?;
    let longest = legs.iter().map(|l| l.end - l.start).max().unwrap_or(0);
    sqlx::query(
        "INSERT INTO store_meta (name, value) VALUES ('max_leg_us', $1) \
         ON CONFLICT (name) DO UPDATE SET value = GREATEST(store_meta.value, excluded.value)",
    )
    .bind(longest)
    .execute(conn)
    .await?;
    Ok(())
}

/// COPYs in the messages of the new legs (compressing them first unless they came
/// compressed); the number of legs written.
async fn write_messages(
    conn: &mut PgConnection,
    legs: &[Leg],
    messages: Messages<'_>,
    new: &[(usize, i64)],
) -> Result<u64> {
    let mut encoder = None;
    let mut copy = conn
        .copy_in_raw("COPY leg_messages (leg_id, message_count, data) FROM STDIN (FORMAT binary)")
        .await?;
    let mut buf = Vec::with_capacity(256 * 1024);
    buf.extend_from_slice(COPY_BINARY_HEADER);
    let mut written = 0;
    for &(seq, id) in new {
        let made;
        let (count, blob) = match messages {
            Messages::Encoded(e) => match e.get(seq).and_then(Option::as_ref) {
                Some(e) => (i64::from(e.count), e.blob.as_slice()),
                None => continue,
            },
            Messages::InLegs => {
                let Some(leg) = legs.get(seq).filter(|l| !l.messages.is_empty()) else {
                    continue;
                };
                let encoder = match &mut encoder {
                    Some(e) => e,
                    None => encoder.insert(Encoder::new().map_err(StoreError::Encode)?),
                };
                made = encoder.encode(&leg.messages).map_err(StoreError::Encode)?;
                (leg.messages.len() as i64, made.as_slice())
            }
        };
        buf.extend_from_slice(&3i16.to_be_bytes());
        int8(&mut buf, id);
        int8(&mut buf, count);
        // A blob over 2 GiB cannot be made from one leg's messages (the codec caps them).
        buf.extend_from_slice(&i32::try_from(blob.len()).unwrap_or(i32::MAX).to_be_bytes());
        buf.extend_from_slice(blob);
        written += 1;
        if buf.len() >= 256 * 1024 {
            copy.send(buf.as_slice()).await?;
            buf.clear();
        }
    }
    buf.extend_from_slice(&(-1i16).to_be_bytes());
    copy.send(buf.as_slice()).await?;
    copy.finish().await?;
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_are_utc_dates() {
        // 2026-11-01T00:00:00Z
        assert_eq!(partition_name(1_793_491_200_000_000), "legs_20261101");
        assert_eq!(partition_name(0), "legs_19700101");
        assert_eq!(partition_name(-DAY), "legs_19691231");
    }

    #[test]
    fn copy_binary_fields_are_length_prefixed_and_null_is_minus_one() {
        let mut buf = Vec::new();
        text(&mut buf, "a\tb");
        opt_text(&mut buf, None);
        int4(&mut buf, 7);
        assert_eq!(buf, b"\0\0\0\x03a\tb\xff\xff\xff\xff\0\0\0\x04\0\0\0\x07");
    }
}

//! The PostgreSQL backend: one central database for many sensors (issue 7).
//!
//! Mirrors the SQLite backend concern by concern (one module each) and keeps the same
//! migrations, numbered alike, so `schema_version` means the same on both. What differs is
//! how legs get in and out: `legs` is partitioned by day and written with COPY (see
//! [`insert`]), and the channel recompute streams a day's legs through the same pure
//! `channels` engine as SQLite.

mod alerts;
mod cdr_query;
mod channel_stats;
mod insert;
mod sensors;
mod summary;
mod users;

use std::collections::HashSet;
use std::net::IpAddr;
use std::str::FromStr;

use calls::{EndReason, LegMessage};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Postgres, Row};

use crate::codec;
use crate::{LegId, LegQuery, Result, StoreError, StoredLeg};

pub(crate) use alerts::*;
pub(crate) use sensors::*;
pub(crate) use users::*;

/// Connections of one handle: the writer's COPY, a channel scan or two, GUI readers.
const MAX_CONNECTIONS: u32 = 6;

/// `legs` columns as read back, `id` first, in the order `leg_from_row` reads them. INTEGER
/// columns are widened to BIGINT because sqlx decodes PostgreSQL integers by exact width.
pub(crate) const LEG_SELECT: &str = "id, sensor_id, call_id, caller, caller_domain, caller_name, \
     called, called_domain, called_name, from_tag, to_tag, start_us, answer_us, end_us, \
     last_response::BIGINT, last_response_text, end_reason, hangup_by, transport, src_ip, \
     src_port::BIGINT, dst_ip, dst_port::BIGINT, partial, referred_by, refer_to, replaces, \
     user_agent, sip_message_count";

pub(crate) struct PgStore {
    pub(crate) pool: PgPool,
    /// First instants (UTC midnight, µs) of the day partitions known to exist, so a batch
    /// only asks the database about days it has not written to before.
    partitions: HashSet<i64>,
}

impl PgStore {
    pub(crate) async fn open(url: &str) -> Result<Self> {
        let open_err = |source| StoreError::Open {
            path: redacted(url).into(),
            source,
        };
        let options = PgConnectOptions::from_str(url)
            .map_err(open_err)?
            // PostgreSQL logs statements when asked to; sqlx's per-statement log would flood
            // an ingest server's output.
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(open_err)?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(PgStore {
            pool,
            partitions: HashSet::new(),
        })
    }

    pub(crate) async fn close(self) {
        self.pool.close().await;
    }

    pub(crate) async fn legs(&self, q: &LegQuery) -> Result<Vec<StoredLeg>> {
        let mut sql = format!("SELECT {LEG_SELECT} FROM legs WHERE TRUE");
        let mut n = 0;
        let mut next = || {
            n += 1;
            n
        };
        if q.start_from.is_some() {
            sql.push_str(&format!(" AND start_us >= ${}", next()));
        }
        if q.start_before.is_some() {
            sql.push_str(&format!(" AND start_us < ${}", next()));
        }
        if q.sensor_id.is_some() {
            sql.push_str(&format!(" AND sensor_id = ${}", next()));
        }
        sql.push_str(&format!(
            " ORDER BY start_us, id LIMIT ${} OFFSET ${}",
            next(),
            next()
        ));
        let query = q.bind_filters(sqlx::query(&sql));
        // PostgreSQL spells "no limit" as LIMIT NULL.
        let limit = q.limit.map(i64::from);
        let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
        let rows = query.bind(limit).bind(offset).fetch_all(&self.pool).await?;
        rows.iter().map(leg_from_row).collect()
    }

    pub(crate) async fn leg_messages(&self, leg_id: LegId) -> Result<Vec<LegMessage>> {
        let row: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT message_count, data FROM leg_messages WHERE leg_id = $1")
                .bind(leg_id)
                .fetch_optional(&self.pool)
                .await?;
        codec::decode_stored(leg_id, row)
    }

    pub(crate) async fn count_legs(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM legs")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    pub(crate) async fn schema_version(&self) -> Result<i64> {
        let v: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await?;
        Ok(v.unwrap_or(0))
    }
}

/// The URL without its password, for error messages and logs.
pub(crate) fn redacted(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(o) => format!(
            "postgres://{}@{}:{}/{}",
            o.get_username(),
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or("")
        ),
        Err(_) => "a postgres:// URL that does not parse".into(),
    }
}

/// Reads a row of `SELECT LEG_SELECT`. Values the schema allows but the model cannot hold
/// (an unknown end reason, a port over 65535) are reported as a corrupt leg.
pub(crate) fn leg_from_row(row: &PgRow) -> Result<StoredLeg> {
    let id: LegId = row.try_get(0)?;
    let corrupt = |column: &'static str| StoreError::CorruptLeg { leg_id: id, column };
    let int = |c: &'static str| -> Result<i64> { Ok(row.try_get(c)?) };
    let text = |c: &'static str| -> Result<String> { Ok(row.try_get(c)?) };
    let opt_text = |c: &'static str| -> Result<Option<String>> { Ok(row.try_get(c)?) };
    let narrow =
        |c: &'static str| -> Result<u32> { u32::try_from(int(c)?).map_err(|_| corrupt(c)) };
    let port = |i: usize, c: &'static str| -> Result<u16> {
        let v: i64 = row.try_get(i)?;
        u16::try_from(v).map_err(|_| corrupt(c))
    };
    let ip =
        |c: &'static str| -> Result<IpAddr> { IpAddr::from_str(&text(c)?).map_err(|_| corrupt(c)) };
    let last_response = match row.try_get::<Option<i64>, _>(14)? {
        None => None,
        Some(v) => Some(u16::try_from(v).map_err(|_| corrupt("last_response"))?),
    };
    let hangup_by = match opt_text("hangup_by")? {
        None => None,
        Some(s) => Some(crate::side_from_str(&s).ok_or_else(|| corrupt("hangup_by"))?),
    };
    let leg = calls::Leg {
        sensor_id: narrow("sensor_id")?,
        call_id: text("call_id")?,
        caller: text("caller")?,
        caller_domain: text("caller_domain")?,
        caller_name: opt_text("caller_name")?,
        called: text("called")?,
        called_domain: text("called_domain")?,
        called_name: opt_text("called_name")?,
        from_tag: opt_text("from_tag")?,
        to_tag: opt_text("to_tag")?,
        start: int("start_us")?,
        answer: row.try_get("answer_us")?,
        end: int("end_us")?,
        last_response,
        last_response_text: opt_text("last_response_text")?,
        end_reason: EndReason::parse(&text("end_reason")?).ok_or_else(|| corrupt("end_reason"))?,
        hangup_by,
        transport: crate::transport_from_str(&text("transport")?)
            .ok_or_else(|| corrupt("transport"))?,
        src_ip: ip("src_ip")?,
        src_port: port(20, "src_port")?,
        dst_ip: ip("dst_ip")?,
        dst_port: port(22, "dst_port")?,
        partial: row.try_get("partial")?,
        referred_by: opt_text("referred_by")?,
        refer_to: opt_text("refer_to")?,
        replaces: opt_text("replaces")?,
        user_agent: opt_text("user_agent")?,
        sip_message_count: narrow("sip_message_count")?,
        messages: Vec::new(),
    };
    Ok(StoredLeg { id, leg })
}

/// A query with PostgreSQL arguments, for helpers that bind a variable list.
pub(crate) type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

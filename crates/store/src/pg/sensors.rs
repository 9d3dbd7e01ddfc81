//! Remote sensors on PostgreSQL (see `crate::sensors`).

use sqlx::postgres::PgPool;

use crate::sensors::{COLUMNS, SensorRow, Which};
use crate::{Micros, Result, Sensor, SensorReport};

/// Registers a sensor; `None` (nothing changed) when the name is taken. Sensor ids are also
/// written by imports (legs of a sensor id not registered yet), so the id is the next one
/// after the highest, as SQLite's rowid does, under a lock that makes concurrent
/// registrations (and the name check) wait for each other.
pub(crate) async fn create_sensor(
    pool: &PgPool,
    name: &str,
    token_hash: &str,
    now: Micros,
) -> Result<Option<i64>> {
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE sensors IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *tx)
        .await?;
    let id: Option<i64> = sqlx::query_scalar(
        "INSERT INTO sensors (id, name, token_hash, created_us) \
         SELECT COALESCE(MAX(id), 0) + 1, $1, $2, $3 FROM sensors \
         HAVING NOT bool_or(name = $1) OR COUNT(*) = 0 RETURNING id",
    )
    .bind(name)
    .bind(token_hash)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(id)
}

pub(crate) async fn sensor_by_token(pool: &PgPool, token_hash: &str) -> Result<Option<Sensor>> {
    let sql = format!("SELECT {COLUMNS} FROM sensors WHERE token_hash = $1 AND revoked_us IS NULL");
    let row: Option<SensorRow> = sqlx::query_as(&sql)
        .bind(token_hash)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Sensor::from))
}

pub(crate) async fn list_sensors(pool: &PgPool) -> Result<Vec<Sensor>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM sensors WHERE token_hash IS NOT NULL ORDER BY name COLLATE \"C\""
    );
    let rows: Vec<SensorRow> = sqlx::query_as(&sql).fetch_all(pool).await?;
    Ok(rows.into_iter().map(Sensor::from).collect())
}

pub(crate) async fn revoke_sensor(pool: &PgPool, which: Which<'_>, now: Micros) -> Result<bool> {
    let sql = which.revoke_sql(["$1", "$2"]);
    let q = sqlx::query(&sql).bind(now);
    let q = match which {
        Which::Id(id) => q.bind(id),
        Which::Name(name) => q.bind(name),
    };
    let r = q.execute(pool).await?;
    Ok(r.rows_affected() == 1)
}

pub(crate) async fn sensor_seen(
    pool: &PgPool,
    id: i64,
    now: Micros,
    report: Option<&SensorReport>,
    legs: u64,
) -> Result<()> {
    let legs = i64::try_from(legs).unwrap_or(i64::MAX);
    let big = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    match report {
        Some(r) => {
            sqlx::query(
                "UPDATE sensors SET last_seen_us = $1, legs_received = legs_received + $2, \
                 version = $3, spool_bytes = $4, spool_batches = $5, spool_full = $6 \
                 WHERE id = $7",
            )
            .bind(now)
            .bind(legs)
            .bind(&r.version)
            .bind(big(r.spool_bytes))
            .bind(big(r.spool_batches))
            .bind(r.spool_full)
            .bind(id)
            .execute(pool)
            .await?
        }
        None => {
            sqlx::query(
                "UPDATE sensors SET last_seen_us = $1, legs_received = legs_received + $2 \
                 WHERE id = $3",
            )
            .bind(now)
            .bind(legs)
            .bind(id)
            .execute(pool)
            .await?
        }
    };
    Ok(())
}

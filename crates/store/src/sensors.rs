//! Remote sensors and their tokens. The store keeps a token's SHA-256 only: the clear token
//! is shown once when the sensor is created and never again, so a copy of the database does
//! not let anyone pose as a sensor.

use sha2::{Digest, Sha256};

use crate::{Micros, Result};

/// A registered remote sensor, with what it last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sensor {
    pub id: i64,
    pub name: String,
    pub created: Micros,
    pub revoked: Option<Micros>,
    pub last_seen: Option<Micros>,
    pub version: Option<String>,
    pub legs_received: u64,
    /// Bytes and batches waiting in the sensor's spool at its last heartbeat.
    pub spool_bytes: u64,
    pub spool_batches: u64,
    /// The sensor's spool was full at its last heartbeat: it is refusing new legs.
    pub spool_full: bool,
}

/// What a heartbeat tells about a sensor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SensorReport {
    pub version: String,
    pub spool_bytes: u64,
    pub spool_batches: u64,
    pub spool_full: bool,
}

/// The stored form of a token: lowercase hex SHA-256.
pub fn token_hash(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub(crate) const COLUMNS: &str = "id, name, created_us, revoked_us, last_seen_us, version, \
                                  legs_received, spool_bytes, spool_batches, spool_full";

/// A `sensors` row as both backends select it (`COLUMNS`).
#[derive(sqlx::FromRow)]
pub(crate) struct SensorRow {
    id: i64,
    name: String,
    created_us: i64,
    revoked_us: Option<i64>,
    last_seen_us: Option<i64>,
    version: Option<String>,
    legs_received: i64,
    spool_bytes: i64,
    spool_batches: i64,
    spool_full: bool,
}

impl From<SensorRow> for Sensor {
    fn from(r: SensorRow) -> Sensor {
        // Counters are never negative as written; a negative one reads as nothing counted.
        let n = |v: i64| u64::try_from(v).unwrap_or(0);
        Sensor {
            id: r.id,
            name: r.name,
            created: r.created_us,
            revoked: r.revoked_us,
            last_seen: r.last_seen_us,
            version: r.version,
            legs_received: n(r.legs_received),
            spool_bytes: n(r.spool_bytes),
            spool_batches: n(r.spool_batches),
            spool_full: r.spool_full,
        }
    }
}

pub(crate) async fn create(
    pool: &sqlx::SqlitePool,
    name: &str,
    token_hash: &str,
    now: Micros,
) -> Result<Option<i64>> {
    // Names are unique among sensors with a token only: rows registered on the fly by an
    // import are called "sensor N" and must never make an insert of legs fail.
    let r = sqlx::query(
        "INSERT INTO sensors (name, token_hash, created_us) SELECT ?1, ?2, ?3 \
         WHERE NOT EXISTS (SELECT 1 FROM sensors WHERE name = ?1)",
    )
    .bind(name)
    .bind(token_hash)
    .bind(now)
    .execute(pool)
    .await?;
    Ok((r.rows_affected() == 1).then(|| r.last_insert_rowid()))
}

/// The sensor holding this token, unless it is revoked.
pub(crate) async fn by_token(pool: &sqlx::SqlitePool, token_hash: &str) -> Result<Option<Sensor>> {
    let sql = format!("SELECT {COLUMNS} FROM sensors WHERE token_hash = ? AND revoked_us IS NULL");
    let row: Option<SensorRow> = sqlx::query_as(&sql)
        .bind(token_hash)
        .fetch_optional(pool)
        .await?;
    Ok(row.map(Sensor::from))
}

/// Every sensor with a token, revoked ones too, by name.
pub(crate) async fn list(pool: &sqlx::SqlitePool) -> Result<Vec<Sensor>> {
    let sql = format!("SELECT {COLUMNS} FROM sensors WHERE token_hash IS NOT NULL ORDER BY name");
    let rows: Vec<SensorRow> = sqlx::query_as(&sql).fetch_all(pool).await?;
    Ok(rows.into_iter().map(Sensor::from).collect())
}

/// A sensor named by the user: the GUI knows its id, the command line its name.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Which<'a> {
    Id(i64),
    Name(&'a str),
}

impl Which<'_> {
    /// `UPDATE sensors SET revoked_us = <first placeholder> WHERE <column> = <second>` for the
    /// revoking statement; `placeholders` are the dialect's two (`?`/`$n`).
    pub(crate) fn revoke_sql(self, placeholders: [&str; 2]) -> String {
        let column = match self {
            Which::Id(_) => "id",
            Which::Name(_) => "name",
        };
        let [now, key] = placeholders;
        format!(
            "UPDATE sensors SET revoked_us = {now} WHERE {column} = {key} \
             AND token_hash IS NOT NULL AND revoked_us IS NULL"
        )
    }
}

/// Revokes a sensor's token; `false` when there is no such sensor or it was revoked already.
pub(crate) async fn revoke(pool: &sqlx::SqlitePool, which: Which<'_>, now: Micros) -> Result<bool> {
    let sql = which.revoke_sql(["?", "?"]);
    let q = sqlx::query(&sql).bind(now);
    let q = match which {
        Which::Id(id) => q.bind(id),
        Which::Name(name) => q.bind(name),
    };
    let r = q.execute(pool).await?;
    Ok(r.rows_affected() == 1)
}

/// Records a sign of life: the time, and a heartbeat's report or the legs of a batch.
pub(crate) async fn seen(
    pool: &sqlx::SqlitePool,
    id: i64,
    now: Micros,
    report: Option<&SensorReport>,
    legs: u64,
) -> Result<()> {
    let legs = i64::try_from(legs).unwrap_or(i64::MAX);
    match report {
        Some(r) => {
            sqlx::query(
                "UPDATE sensors SET last_seen_us = ?, legs_received = legs_received + ?, \
                 version = ?, spool_bytes = ?, spool_batches = ?, spool_full = ? WHERE id = ?",
            )
            .bind(now)
            .bind(legs)
            .bind(&r.version)
            .bind(i64::try_from(r.spool_bytes).unwrap_or(i64::MAX))
            .bind(i64::try_from(r.spool_batches).unwrap_or(i64::MAX))
            .bind(r.spool_full)
            .bind(id)
            .execute(pool)
            .await?
        }
        None => {
            sqlx::query(
                "UPDATE sensors SET last_seen_us = ?, legs_received = legs_received + ? \
                 WHERE id = ?",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;

    #[tokio::test]
    async fn tokens_are_found_by_hash_until_revoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite(dir.path()).await.unwrap();
        let id = store
            .create_sensor("site-a", &token_hash("secret"), 5)
            .await
            .unwrap()
            .unwrap();
        assert!(id > 1, "the embedded sensor keeps id 1");
        assert_eq!(
            store
                .create_sensor("site-a", &token_hash("other"), 6)
                .await
                .unwrap(),
            None
        );
        assert_eq!(
            store.sensor_by_token(&token_hash("wrong")).await.unwrap(),
            None
        );
        let s = store
            .sensor_by_token(&token_hash("secret"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (s.id, s.name.as_str(), s.created, s.last_seen),
            (id, "site-a", 5, None)
        );
        let report = SensorReport {
            version: "1.2.3".into(),
            spool_bytes: 10,
            spool_batches: 2,
            spool_full: true,
        };
        store.sensor_seen(id, 7, Some(&report), 0).await.unwrap();
        store.sensor_seen(id, 8, None, 40).await.unwrap();
        store.sensor_seen(id, 9, None, 2).await.unwrap();
        let listed = store.list_sensors().await.unwrap();
        assert_eq!(
            listed.len(),
            1,
            "rows without a token (the embedded sensor) are not listed"
        );
        let s = &listed[0];
        assert_eq!(s.last_seen, Some(9));
        assert_eq!(s.legs_received, 42);
        assert_eq!(s.version.as_deref(), Some("1.2.3"));
        assert!(s.spool_full && s.spool_bytes == 10 && s.spool_batches == 2);
        assert!(store.revoke_sensor_by_name("site-a", 10).await.unwrap());
        assert!(
            !store.revoke_sensor(id, 11).await.unwrap(),
            "already revoked"
        );
        assert_eq!(
            store.sensor_by_token(&token_hash("secret")).await.unwrap(),
            None
        );
        assert_eq!(store.list_sensors().await.unwrap()[0].revoked, Some(10));
        assert!(
            !store.revoke_sensor(1, 12).await.unwrap(),
            "the embedded sensor has no token"
        );
        store.close().await;
    }
}

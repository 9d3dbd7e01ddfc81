//! The portal's database: SQLite (a file in the data directory) or PostgreSQL, through sqlx's
//! `Any` driver so one set of queries serves both. Queries use `$n` placeholders (SQLite reads
//! them too), integers are BIGINT, flags 0/1, days `YYYY-MM-DD` text and instants
//! microseconds: the few types both engines agree on.

use std::sync::Once;

use jiff::civil::Date;
use license::{Grant, Hwid, Micros};
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::error::{PortalError, Result};
use crate::secret::{SecretKey, is_sealed};

/// One schema change, applied once, in order, in a transaction of its own together with its
/// row in `portal_schema` (version, name, applied_at). Never edit an applied migration:
/// append a new one (its file in `migrations/` and one line in [`MIGRATIONS`]).
struct Migration {
    version: i64,
    name: &'static str,
    step: Step,
}

enum Step {
    /// `;`-separated statements valid on both engines (`--` comment lines are skipped);
    /// `{SERIAL}` is the one spelling they differ in.
    Sql(&'static str),
    /// Signing-key secrets stored in clear (portals before version 2) are sealed under the
    /// portal secret key: data, not schema, so it is done in code.
    SealSecrets,
}

const fn sql(version: i64, name: &'static str, text: &'static str) -> Migration {
    Migration {
        version,
        name,
        step: Step::Sql(text),
    }
}

/// The schema's history. Version 1 is the schema of the portals before versions were
/// recorded, idempotent, so their databases (tables, no `portal_schema`) upgrade in place.
const MIGRATIONS: &[Migration] = &[
    sql(1, "initial", include_str!("../migrations/0001_initial.sql")),
    Migration {
        version: 2,
        name: "seal_signing_key_secrets",
        step: Step::SealSecrets,
    },
    sql(
        3,
        "trust_chain",
        include_str!("../migrations/0003_trust_chain.sql"),
    ),
];

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS portal_schema (
    version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// An open portal database.
#[derive(Debug, Clone)]
pub struct Db {
    pub(crate) pool: AnyPool,
    pub backend: Backend,
}

static DRIVERS: Once = Once::new();

impl Db {
    /// Opens (creating if needed) the database at `url` (`sqlite://PATH` or
    /// `postgres://…`) and migrates its schema to [`SCHEMA_VERSION`]; clear signing-key
    /// secrets are sealed under `key`. A database newer than this build is refused unchanged.
    pub async fn open(url: &str, key: &SecretKey, now: Micros) -> Result<Db> {
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(PortalError::bad(format!(
                "--database must be a sqlite:// or postgres:// URL, not {url:?}"
            )));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_string(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 4 } else { 8 })
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite {
            // WAL lets pages read while an action writes; it is a property of the file.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await?;
        }
        let db = Db { pool, backend };
        db.migrate(key, now).await?;
        Ok(db)
    }

    /// The schema version recorded in the database (0: none yet).
    pub async fn schema_version(&self) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COALESCE(MAX(version), 0) AS v FROM portal_schema")
                .fetch_one(&self.pool)
                .await?
                .try_get("v")?,
        )
    }

    async fn migrate(&self, key: &SecretKey, now: Micros) -> Result<()> {
        sqlx::query(VERSION_TABLE).execute(&self.pool).await?;
        let current = self.schema_version().await?;
        if current > SCHEMA_VERSION {
            return Err(PortalError::SchemaTooNew {
                found: current,
                known: SCHEMA_VERSION,
            });
        }
        let mut sealed = 0;
        for m in MIGRATIONS.iter().filter(|m| m.version > current) {
            let mut tx = self.pool.begin().await?;
            // The version row first: a second process migrating at the same moment waits on
            // it, then fails to insert it and finds the version applied by the first.
            let claimed = sqlx::query(
                "INSERT INTO portal_schema (version, name, applied_at) VALUES ($1, $2, $3)",
            )
            .bind(m.version)
            .bind(m.name)
            .bind(now)
            .execute(&mut *tx)
            .await;
            if let Err(e) = claimed {
                drop(tx);
                if self.schema_version().await? >= m.version {
                    continue;
                }
                return Err(e.into());
            }
            match m.step {
                Step::Sql(text) => {
                    for stmt in statements(text, self.backend) {
                        sqlx::query(&stmt).execute(&mut *tx).await?;
                    }
                }
                Step::SealSecrets => sealed += seal_clear_secrets(&mut tx, key).await?,
            }
            tx.commit().await?;
        }
        // A portal from before version 2 run on this database after its upgrade writes its new
        // keys in clear: seal those too.
        let mut tx = self.pool.begin().await?;
        sealed += seal_clear_secrets(&mut tx, key).await?;
        tx.commit().await?;
        if sealed > 0 && self.backend == Backend::Sqlite {
            // The clear values survive in free pages and in the write-ahead log until the file
            // is rewritten: rewrite it, and empty the log.
            sqlx::query("VACUUM").execute(&self.pool).await?;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// The statements of a migration's text for `backend`.
fn statements(text: &str, backend: Backend) -> Vec<String> {
    let serial = match backend {
        Backend::Sqlite => "INTEGER PRIMARY KEY AUTOINCREMENT",
        Backend::Postgres => "BIGSERIAL PRIMARY KEY",
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        .replace("{SERIAL}", serial)
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Seals every signing-key secret still stored in clear; returns how many there were.
async fn seal_clear_secrets(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    key: &SecretKey,
) -> Result<usize> {
    let rows = sqlx::query("SELECT key_id, secret FROM signing_keys")
        .fetch_all(&mut **tx)
        .await?;
    let mut sealed = 0;
    for r in rows {
        let key_id: String = r.try_get("key_id")?;
        let secret: String = r.try_get("secret")?;
        if is_sealed(&secret) {
            continue;
        }
        sqlx::query("UPDATE signing_keys SET secret = $1 WHERE key_id = $2")
            .bind(key.seal(&key_id, &secret))
            .bind(&key_id)
            .execute(&mut **tx)
            .await?;
        sealed += 1;
    }
    Ok(sealed)
}

pub(crate) fn flag(b: bool) -> i64 {
    i64::from(b)
}

fn day(row: &AnyRow, col: &str) -> Result<Date> {
    let s: String = row.try_get(col)?;
    s.parse()
        .map_err(|_| PortalError::Corrupt(format!("{col} {s:?} is not a date")))
}

fn u32_of(row: &AnyRow, col: &str) -> Result<u32> {
    let v: i64 = row.try_get(col)?;
    u32::try_from(v).map_err(|_| PortalError::Corrupt(format!("{col} {v} out of range")))
}

fn opt_u32(row: &AnyRow, col: &str) -> Result<Option<u32>> {
    let v: Option<i64> = row.try_get(col)?;
    v.map(|v| u32::try_from(v).map_err(|_| PortalError::Corrupt(format!("{col} {v} out of range"))))
        .transpose()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Customer,
    Support,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Customer => "customer",
            Role::Support => "support",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "customer" => Some(Role::Customer),
            "support" => Some(Role::Support),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub created_at: Micros,
}

impl Customer {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Customer> {
        Ok(Customer {
            id: r.try_get("id")?,
            name: r.try_get("name")?,
            created_at: r.try_get("created_at")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    pub role: Role,
    pub customer_id: Option<String>,
}

impl User {
    pub(crate) fn from_row(r: &AnyRow) -> Result<User> {
        let role: String = r.try_get("role")?;
        Ok(User {
            id: r.try_get("id")?,
            username: r.try_get("username")?,
            password_hash: r.try_get("password_hash")?,
            role: Role::parse(&role)
                .ok_or_else(|| PortalError::Corrupt(format!("role {role:?}")))?,
            customer_id: r.try_get("customer_id")?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Tier {
    pub id: String,
    pub channels: u32,
    pub price: String,
}

impl Tier {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Tier> {
        Ok(Tier {
            id: r.try_get("id")?,
            channels: u32_of(r, "channels")?,
            price: r.try_get("price")?,
        })
    }
}

/// What a license is bound to in the portal. A hardware-bound license has no hardware id
/// until the first Get License names one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingState {
    Hwid(Option<Hwid>),
    Domain(String),
}

impl BindingState {
    pub(crate) fn columns(&self) -> (&'static str, Option<String>) {
        match self {
            BindingState::Hwid(h) => ("hwid", h.as_ref().map(ToString::to_string)),
            BindingState::Domain(d) => ("domain", Some(d.clone())),
        }
    }
}

impl std::fmt::Display for BindingState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BindingState::Hwid(Some(h)) => write!(f, "hwid {h}"),
            BindingState::Hwid(None) => f.write_str("hwid (not bound yet)"),
            BindingState::Domain(d) => write!(f, "domain {d}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct LicenseRow {
    pub id: String,
    pub customer_id: String,
    pub token: String,
    /// The limit the license was issued with; completed upgrades override it.
    pub channels: u32,
    pub formal_end: Date,
    pub cancelled: bool,
    pub trial: bool,
    pub emergency: bool,
    pub binding: BindingState,
    pub created_at: Micros,
}

impl LicenseRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<LicenseRow> {
        let kind: String = r.try_get("binding_kind")?;
        let value: Option<String> = r.try_get("binding_value")?;
        let binding = match (kind.as_str(), value) {
            ("hwid", None) => BindingState::Hwid(None),
            ("hwid", Some(h)) => BindingState::Hwid(Some(
                h.parse()
                    .map_err(|_| PortalError::Corrupt(format!("hwid {h:?}")))?,
            )),
            ("domain", Some(d)) => BindingState::Domain(d),
            (k, _) => return Err(PortalError::Corrupt(format!("binding kind {k:?}"))),
        };
        let b = |c: &str| -> Result<bool> { Ok(r.try_get::<i64, _>(c)? != 0) };
        Ok(LicenseRow {
            id: r.try_get("id")?,
            customer_id: r.try_get("customer_id")?,
            token: r.try_get("token")?,
            channels: u32_of(r, "channels")?,
            formal_end: day(r, "formal_end")?,
            cancelled: b("cancelled")?,
            trial: b("trial")?,
            emergency: b("emergency")?,
            binding,
            created_at: r.try_get("created_at")?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderKind {
    New,
    Renewal,
    Upgrade,
}

impl OrderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderKind::New => "new",
            OrderKind::Renewal => "renewal",
            OrderKind::Upgrade => "upgrade",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Pending,
    Processing,
    Completed,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Processing => "processing",
            OrderStatus::Completed => "completed",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Order {
    pub id: String,
    pub license_id: String,
    pub kind: OrderKind,
    pub tier_id: Option<String>,
    /// Upgrade: the limit bought.
    pub channels: Option<u32>,
    /// Renewal: the period paid, in months.
    pub months: Option<u32>,
    pub status: OrderStatus,
    pub created_at: Micros,
    pub completed_at: Option<Micros>,
}

impl Order {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Order> {
        let kind: String = r.try_get("kind")?;
        let status: String = r.try_get("status")?;
        Ok(Order {
            id: r.try_get("id")?,
            license_id: r.try_get("license_id")?,
            kind: match kind.as_str() {
                "new" => OrderKind::New,
                "renewal" => OrderKind::Renewal,
                "upgrade" => OrderKind::Upgrade,
                k => return Err(PortalError::Corrupt(format!("order kind {k:?}"))),
            },
            tier_id: r.try_get("tier_id")?,
            channels: opt_u32(r, "channels")?,
            months: opt_u32(r, "months")?,
            status: match status.as_str() {
                "pending" => OrderStatus::Pending,
                "processing" => OrderStatus::Processing,
                "completed" => OrderStatus::Completed,
                s => return Err(PortalError::Corrupt(format!("order status {s:?}"))),
            },
            created_at: r.try_get("created_at")?,
            completed_at: r.try_get("completed_at")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct GrantRow {
    pub id: String,
    pub license_id: String,
    pub grant: Grant,
    pub created_at: Micros,
}

impl GrantRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<GrantRow> {
        let kind: String = r.try_get("kind")?;
        let amount = u32_of(r, "amount")?;
        let grant = match kind.as_str() {
            "increase" => Grant::Increase {
                channels: amount,
                start: day(r, "start_day")?,
                end: day(r, "end_day")?,
            },
            "concurrent" => Grant::Concurrent {
                systems: amount,
                until: day(r, "end_day")?,
            },
            k => return Err(PortalError::Corrupt(format!("grant kind {k:?}"))),
        };
        Ok(GrantRow {
            id: r.try_get("id")?,
            license_id: r.try_get("license_id")?,
            grant,
            created_at: r.try_get("created_at")?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Checkin {
    pub boot_id: String,
    pub hwid: String,
    pub install_id: String,
    pub version: String,
    pub first_seen: Micros,
    pub last_seen: Micros,
}

impl Checkin {
    pub(crate) fn from_row(r: &AnyRow) -> Result<Checkin> {
        Ok(Checkin {
            boot_id: r.try_get("boot_id")?,
            hwid: r.try_get("hwid")?,
            install_id: r.try_get("install_id")?,
            version: r.try_get("version")?,
            first_seen: r.try_get("first_seen")?,
            last_seen: r.try_get("last_seen")?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct AuditEntry {
    pub seq: i64,
    pub at: Micros,
    pub who: String,
    pub action: String,
    pub license_id: Option<String>,
    pub customer_id: Option<String>,
    pub details: String,
}

impl AuditEntry {
    pub(crate) fn from_row(r: &AnyRow) -> Result<AuditEntry> {
        Ok(AuditEntry {
            seq: r.try_get("seq")?,
            at: r.try_get("at")?,
            who: r.try_get("who")?,
            action: r.try_get("action")?,
            license_id: r.try_get("license_id")?,
            customer_id: r.try_get("customer_id")?,
            details: r.try_get("details")?,
        })
    }
}

#[derive(Debug, Clone)]
pub struct KeyRow {
    pub key_id: String,
    /// The armored secret sealed under the portal secret key (`enc1:…`), never in clear.
    pub secret: String,
    pub public: String,
    pub created_at: Micros,
    pub active: bool,
}

impl KeyRow {
    pub(crate) fn from_row(r: &AnyRow) -> Result<KeyRow> {
        Ok(KeyRow {
            key_id: r.try_get("key_id")?,
            secret: r.try_get("secret")?,
            public: r.try_get("public")?,
            created_at: r.try_get("created_at")?,
            active: r.try_get::<i64, _>("active")? != 0,
        })
    }
}

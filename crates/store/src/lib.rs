//! CDR leg storage.
//!
//! The rest of sipmeter talks to one [`Store`] type so that the embedded default (SQLite in the
//! data directory) and the scale-out option (PostgreSQL, for many sensors) stay
//! interchangeable: callers never see which backend they hold. Everything written here is keyed
//! so that a retry or a re-import cannot duplicate a leg (spec: nothing ingested is ever lost or
//! duplicated).

mod alerts;
mod cdr_query;
mod channel_stats;
mod checkpoint;
mod codec;
mod pg;
mod sensors;
mod sqlite;
mod summary;
mod users;

use std::path::{Path, PathBuf};

pub use alerts::{
    AlertKind, AlertLogEntry, AlertOutcome, AlertRule, AlertRuleSpec, AlertRuleState,
};
pub use calls::{Leg, LegMessage, Micros};
pub use cdr_query::{
    COUNT_CAP, CdrFilter, CdrPage, CdrQuery, CdrSort, Cursor, MAX_PAGE, Match, MatchCount,
    NUMBER_INDEX_MAX, PageAt, RelatedLeg, Relation, SortValue, relations,
};
pub use channel_stats::ChannelUpdate;
pub use channels::{ActiveMode, MinuteRow, Window};
use sensors::Which;
pub use sensors::{Sensor, SensorReport, token_hash};
pub use summary::{DayOutcomes, OutcomeGroup};
pub use users::{Role, User};

/// Where an installation keeps its database when nothing else is configured.
pub const DEFAULT_DATA_DIR: &str = "./sipmeter-data";

/// File name of the SQLite database inside the data directory.
pub const SQLITE_FILE_NAME: &str = "sipmeter.db";

/// Database id of a stored leg; the handle for fetching its messages.
pub type LegId = i64;

/// Errors of the store. Variants separate "cannot start" (open, migrate) from "this request
/// failed" (query) from "the data on disk is damaged" (corrupt), because callers react
/// differently: exit with a message, retry, or show the rest and flag one leg.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: sqlx::Error,
    },
    #[error("cannot bring the database schema up to date")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database query failed")]
    Query(#[from] sqlx::Error),
    #[error("cannot write legs to the database")]
    Write(#[source] rusqlite::Error),
    #[error("cannot start the thread that checkpoints {path}")]
    Checkpointer {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot compress the SIP messages of a leg")]
    Encode(#[source] std::io::Error),
    #[error("stored SIP messages of leg {leg_id} are corrupt: {reason}")]
    CorruptMessages { leg_id: LegId, reason: &'static str },
    #[error("a batch of {legs} legs came with {messages} message blobs")]
    MessagesMismatch { legs: usize, messages: usize },
    #[error("channel statistics: {0}")]
    Channels(String),
    #[error("cannot scan the legs for channel statistics: {0}")]
    Scan(String),
    #[error("stored leg {leg_id} has an invalid value in column {column}")]
    CorruptLeg { leg_id: LegId, column: &'static str },
    #[error("stored user {user_id} has an unknown role")]
    CorruptUser { user_id: i64 },
    #[error("stored alert rule {rule_id} has an invalid value")]
    CorruptAlertRule { rule_id: i64 },
    #[error("stored alert log entry {entry_id} has an unknown outcome")]
    CorruptAlertLog { entry_id: i64 },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What a batch insert really did. Callers need `inserted` to tell a fresh import from a
/// repeated one (and to keep statistics honest), since duplicates are skipped silently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InsertReport {
    /// Legs that were new and are now stored.
    pub inserted: u64,
    /// Legs already present (same sensor, Call-ID and start), left untouched.
    pub duplicates: u64,
    /// Legs whose messages were stored (new legs with at least one message).
    pub legs_with_messages: u64,
}

/// Where the messages of a batch's legs are: in the legs (to be compressed by the store), or
/// already compressed beside them, one per leg.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Messages<'a> {
    InLegs,
    Encoded(&'a [Option<msgblob::Encoded>]),
}

/// Filter for [`Store::legs`]. Filters on `start_us` only, because that column is indexed and
/// pages of a CDR list are ordered by start; the time bounds are half-open so consecutive
/// windows neither overlap nor leave gaps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegQuery {
    /// Only legs that started at or after this instant.
    pub start_from: Option<Micros>,
    /// Only legs that started strictly before this instant.
    pub start_before: Option<Micros>,
    /// Only legs of this sensor.
    pub sensor_id: Option<u32>,
    /// At most this many legs; `None` means all.
    pub limit: Option<u32>,
    /// Skip this many legs first (for paging).
    pub offset: u64,
}

impl LegQuery {
    /// Binds the set filters in the order both backends append their conditions: start from,
    /// start before, sensor.
    pub(crate) fn bind_filters<'q, DB>(
        &self,
        mut query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
    where
        DB: sqlx::Database,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        if let Some(t) = self.start_from {
            query = query.bind(t);
        }
        if let Some(t) = self.start_before {
            query = query.bind(t);
        }
        if let Some(s) = self.sensor_id {
            query = query.bind(i64::from(s));
        }
        query
    }
}

/// A leg read back together with its database id, which [`Leg`] itself does not carry.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredLeg {
    pub id: LegId,
    pub leg: Leg,
}

/// The CDR database. An enum rather than a trait object: the set of backends is closed and
/// small, and an enum keeps the async methods plain (no boxing, no `async_trait`).
pub struct Store {
    backend: Backend,
}

enum Backend {
    Sqlite(sqlite::SqliteStore),
    Postgres(pg::PgStore),
}

/// Where the store lives: a `postgres://` (or `postgresql://`) URL, or else the SQLite data
/// directory. Parsed from the one `--database` setting so that every command opens alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Database {
    /// `database` if given (a URL, or a data directory), else SQLite in `data_dir`.
    pub fn from_setting(database: Option<&str>, data_dir: &Path) -> Database {
        match database {
            Some(d) if is_postgres_url(d) => Database::Postgres(d.to_string()),
            Some(d) => Database::Sqlite(PathBuf::from(d)),
            None => Database::Sqlite(data_dir.to_path_buf()),
        }
    }

    /// For logs and messages: the path, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Database::Sqlite(dir) => dir.join(SQLITE_FILE_NAME).display().to_string(),
            Database::Postgres(url) => pg::redacted(url),
        }
    }
}

impl From<&str> for Database {
    fn from(s: &str) -> Database {
        Database::from_setting(Some(s), Path::new(DEFAULT_DATA_DIR))
    }
}

fn is_postgres_url(s: &str) -> bool {
    s.starts_with("postgres://") || s.starts_with("postgresql://")
}

impl Store {
    /// Opens the store `database` names: a `postgres://` URL opens PostgreSQL (migrated to the
    /// current schema, like SQLite), anything else is the SQLite data directory.
    pub async fn open(database: impl Into<Database>) -> Result<Store> {
        match database.into() {
            Database::Sqlite(dir) => Store::open_sqlite(dir).await,
            Database::Postgres(url) => Store::open_postgres(&url).await,
        }
    }

    /// Opens the PostgreSQL database at `url` and migrates it to the current schema.
    pub async fn open_postgres(url: &str) -> Result<Store> {
        let backend = Backend::Postgres(pg::PgStore::open(url).await?);
        Ok(Store { backend })
    }

    /// Which backend this store is, for diagnostics ("sqlite" or "postgres").
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Opens (creating if missing) the SQLite database in `data_dir` and migrates it to the
    /// current schema, so a database written by an older sipmeter is usable at once.
    pub async fn open_sqlite(data_dir: impl AsRef<Path>) -> Result<Store> {
        let backend = Backend::Sqlite(sqlite::SqliteStore::open(data_dir.as_ref()).await?);
        Ok(Store { backend })
    }

    /// Stores a batch of legs in one transaction: either all new legs of the batch are stored
    /// with their messages, or none. Legs already present are skipped, and their messages are
    /// not written again, so re-sending a batch after a failure is always safe. A sensor id
    /// the database does not know yet is registered on the fly rather than refused, because
    /// refusing would lose the legs of a sensor set up before its registration arrived.
    pub async fn insert_legs(&mut self, legs: &[Leg]) -> Result<InsertReport> {
        self.insert(legs, Messages::InLegs).await
    }

    /// [`Store::insert_legs`] for legs whose messages are already in stored form, as a remote
    /// sensor sends them: `messages[i]` belongs to `legs[i]` (the legs' own `messages` are not
    /// looked at) and is stored as it is, so the server spends no time compressing.
    pub async fn insert_encoded(
        &mut self,
        legs: &[Leg],
        messages: &[Option<msgblob::Encoded>],
    ) -> Result<InsertReport> {
        if messages.len() != legs.len() {
            return Err(StoreError::MessagesMismatch {
                legs: legs.len(),
                messages: messages.len(),
            });
        }
        self.insert(legs, Messages::Encoded(messages)).await
    }

    async fn insert(&mut self, legs: &[Leg], messages: Messages<'_>) -> Result<InsertReport> {
        match &mut self.backend {
            Backend::Sqlite(s) => s.insert_legs(legs, messages).await,
            Backend::Postgres(p) => p.insert_legs(legs, messages).await,
        }
    }

    /// Legs matching `query`, ordered by start (then id, for a stable order among equal
    /// starts). `messages` of each returned leg is left empty: the ladder is loaded on demand
    /// with [`Store::leg_messages`], as lists would otherwise decompress megabytes per page.
    pub async fn legs(&self, query: &LegQuery) -> Result<Vec<Leg>> {
        Ok(self
            .legs_with_ids(query)
            .await?
            .into_iter()
            .map(|s| s.leg)
            .collect())
    }

    /// Like [`Store::legs`], keeping the ids needed to fetch messages.
    pub async fn legs_with_ids(&self, query: &LegQuery) -> Result<Vec<StoredLeg>> {
        match &self.backend {
            Backend::Sqlite(s) => s.legs(query).await,
            Backend::Postgres(p) => p.legs(query).await,
        }
    }

    /// The stored SIP messages of a leg, in the order they were given; empty if the leg kept
    /// none or does not exist. A damaged blob is reported as [`StoreError::CorruptMessages`].
    pub async fn leg_messages(&self, leg_id: LegId) -> Result<Vec<LegMessage>> {
        match &self.backend {
            Backend::Sqlite(s) => s.leg_messages(leg_id).await,
            Backend::Postgres(p) => p.leg_messages(leg_id).await,
        }
    }

    /// One page of the CDR browser: filtered, sorted, keyset-paged (see `cdr_query`).
    pub async fn cdr_page(&self, query: &CdrQuery) -> Result<CdrPage> {
        match &self.backend {
            Backend::Sqlite(s) => s.cdr_page(query).await,
            Backend::Postgres(p) => p.cdr_page(query).await,
        }
    }

    /// The leg with this id, if any (`messages` left empty).
    pub async fn leg(&self, id: LegId) -> Result<Option<StoredLeg>> {
        match &self.backend {
            Backend::Sqlite(s) => s.leg(id).await,
            Backend::Postgres(p) => p.leg(id).await,
        }
    }

    /// Legs related to `leg`: the same dedup key, or a transfer/fork link, with the reasons;
    /// ordered by start. Only legs within minutes of `leg` that share a number with it are
    /// considered (see `cdr_query`).
    pub async fn related_legs(&self, leg: &StoredLeg) -> Result<Vec<RelatedLeg>> {
        match &self.backend {
            Backend::Sqlite(s) => s.related_legs(leg).await,
            Backend::Postgres(p) => p.related_legs(leg).await,
        }
    }

    /// Number of stored legs, all sensors.
    pub async fn count_legs(&self) -> Result<u64> {
        match &self.backend {
            Backend::Sqlite(s) => s.count_legs().await,
            Backend::Postgres(p) => p.count_legs().await,
        }
    }

    /// Bring the per-minute channel figures up to date with every leg stored so far: only
    /// the UTC days touched by legs stored since the last update are recomputed (from all
    /// sensors' legs). A change of `mode` recomputes everything.
    pub async fn update_channel_stats(&mut self, mode: ActiveMode) -> Result<ChannelUpdate> {
        match &mut self.backend {
            Backend::Sqlite(s) => s.update_channel_stats(mode).await,
            Backend::Postgres(p) => p.update_channel_stats(mode).await,
        }
    }

    /// Recompute every minute figure from all legs (after deleting CDRs, or to be sure).
    pub async fn recompute_channel_stats(&mut self, mode: ActiveMode) -> Result<ChannelUpdate> {
        match &mut self.backend {
            Backend::Sqlite(s) => s.recompute_channel_stats(mode).await,
            Backend::Postgres(p) => p.recompute_channel_stats(mode).await,
        }
    }

    /// Stored minute rows with `from <= minute < to`, in time order. Minutes without a row
    /// had no channel (or were never computed: call [`Store::update_channel_stats`] first).
    pub async fn channel_minutes(&self, from: Micros, to: Micros) -> Result<Vec<MinuteRow>> {
        match &self.backend {
            Backend::Sqlite(s) => s.channel_minutes(from, to).await,
            Backend::Postgres(p) => p.channel_minutes(from, to).await,
        }
    }

    /// First and last minute with channels, if any.
    pub async fn channel_extent(&self) -> Result<Option<(Micros, Micros)>> {
        match &self.backend {
            Backend::Sqlite(s) => s.channel_extent().await,
            Backend::Postgres(p) => p.channel_extent().await,
        }
    }

    /// Every stored leg with `start <= t < end` (all sensors), for "explain".
    pub async fn legs_active_at(&self, t: Micros) -> Result<Vec<StoredLeg>> {
        match &self.backend {
            Backend::Sqlite(s) => s.legs_active_at(t).await,
            Backend::Postgres(p) => p.legs_active_at(t).await,
        }
    }

    /// Outcome aggregates of the legs that started in each window (`start <= leg.start <
    /// end`), one [`DayOutcomes`] per window in the order given, summed by the database. The
    /// windows are the local days of the report (`channels::day_bounds`); overlapping windows
    /// count a leg in each, an empty window has no groups.
    pub async fn leg_outcomes(&self, days: &[Window]) -> Result<Vec<DayOutcomes>> {
        match &self.backend {
            Backend::Sqlite(s) => s.leg_outcomes(days).await,
            Backend::Postgres(p) => p.leg_outcomes(days).await,
        }
    }

    /// The user called `name`, if any (names are case-sensitive).
    ///
    /// User methods take `&self` although some write: a user row is tiny and independent of
    /// the leg batches, so the server can keep them on its read handle instead of queueing
    /// a login behind a long import on the writer.
    pub async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        match &self.backend {
            Backend::Sqlite(s) => users::user_by_name(&s.pool, name).await,
            Backend::Postgres(p) => pg::user_by_name(&p.pool, name).await,
        }
    }

    /// Creates a user; `false` (and nothing changed) when the name is taken, so creating the
    /// first admin on every start is safe.
    pub async fn create_user(
        &self,
        name: &str,
        role: Role,
        password_hash: &str,
        now: Micros,
    ) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite(s) => users::create_user(&s.pool, name, role, password_hash, now).await,
            Backend::Postgres(p) => pg::create_user(&p.pool, name, role, password_hash, now).await,
        }
    }

    /// Replaces a user's password hash; `false` when there is no such user.
    pub async fn set_password(&self, name: &str, password_hash: &str) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite(s) => users::set_password(&s.pool, name, password_hash).await,
            Backend::Postgres(p) => pg::set_password(&p.pool, name, password_hash).await,
        }
    }

    /// Every user, by name.
    pub async fn list_users(&self) -> Result<Vec<User>> {
        match &self.backend {
            Backend::Sqlite(s) => users::list_users(&s.pool).await,
            Backend::Postgres(p) => pg::list_users(&p.pool).await,
        }
    }

    /// Number of users.
    pub async fn count_users(&self) -> Result<u64> {
        match &self.backend {
            Backend::Sqlite(s) => users::count_users(&s.pool).await,
            Backend::Postgres(p) => pg::count_users(&p.pool).await,
        }
    }

    /// Every alert rule, oldest first.
    ///
    /// Alert methods take `&self` like the user methods: the rows are tiny and independent
    /// of the leg batches, so the alert engine and the Alerts page use the read handle.
    pub async fn alert_rules(&self) -> Result<Vec<AlertRule>> {
        match &self.backend {
            Backend::Sqlite(s) => alerts::list_rules(&s.pool).await,
            Backend::Postgres(p) => pg::list_rules(&p.pool).await,
        }
    }

    /// One alert rule.
    pub async fn alert_rule(&self, id: i64) -> Result<Option<AlertRule>> {
        match &self.backend {
            Backend::Sqlite(s) => alerts::rule(&s.pool, id).await,
            Backend::Postgres(p) => pg::rule(&p.pool, id).await,
        }
    }

    /// Stores a new rule (not firing, never sent); its id.
    pub async fn create_alert_rule(&self, spec: &AlertRuleSpec, now: Micros) -> Result<i64> {
        match &self.backend {
            Backend::Sqlite(s) => alerts::create_rule(&s.pool, spec, now).await,
            Backend::Postgres(p) => pg::create_rule(&p.pool, spec, now).await,
        }
    }

    /// Replaces a rule's settings and forgets its engine state; `false` if there is no such
    /// rule.
    pub async fn update_alert_rule(&self, id: i64, spec: &AlertRuleSpec) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite(s) => alerts::update_rule(&s.pool, id, spec).await,
            Backend::Postgres(p) => pg::update_rule(&p.pool, id, spec).await,
        }
    }

    /// Enables or disables a rule; `false` if there is no such rule.
    pub async fn set_alert_rule_enabled(&self, id: i64, enabled: bool) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite(s) => alerts::set_rule_enabled(&s.pool, id, enabled).await,
            Backend::Postgres(p) => pg::set_rule_enabled(&p.pool, id, enabled).await,
        }
    }

    /// Deletes a rule (its log stays); `false` if there was no such rule.
    pub async fn delete_alert_rule(&self, id: i64) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite(s) => alerts::delete_rule(&s.pool, id).await,
            Backend::Postgres(p) => pg::delete_rule(&p.pool, id).await,
        }
    }

    /// Records the engine's memory of a rule after an evaluation.
    pub async fn set_alert_rule_state(&self, id: i64, state: &AlertRuleState) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(s) => alerts::set_rule_state(&s.pool, id, state).await,
            Backend::Postgres(p) => pg::set_rule_state(&p.pool, id, state).await,
        }
    }

    /// Appends to the alert log; the entry's id.
    #[allow(clippy::too_many_arguments)]
    pub async fn log_alert(
        &self,
        at: Micros,
        rule_id: Option<i64>,
        rule_name: &str,
        channel: &str,
        what: &str,
        outcome: AlertOutcome,
        detail: Option<&str>,
    ) -> Result<i64> {
        match &self.backend {
            Backend::Sqlite(s) => {
                alerts::log_alert(
                    &s.pool, at, rule_id, rule_name, channel, what, outcome, detail,
                )
                .await
            }
            Backend::Postgres(p) => {
                pg::log_alert(
                    &p.pool, at, rule_id, rule_name, channel, what, outcome, detail,
                )
                .await
            }
        }
    }

    /// A page of the alert log, newest first.
    pub async fn alert_log(&self, limit: u32, offset: u64) -> Result<Vec<AlertLogEntry>> {
        match &self.backend {
            Backend::Sqlite(s) => alerts::alert_log(&s.pool, limit, offset).await,
            Backend::Postgres(p) => pg::alert_log(&p.pool, limit, offset).await,
        }
    }

    /// Entries in the alert log.
    pub async fn count_alert_log(&self) -> Result<u64> {
        match &self.backend {
            Backend::Sqlite(s) => alerts::count_alert_log(&s.pool).await,
            Backend::Postgres(p) => pg::count_alert_log(&p.pool).await,
        }
    }

    /// Registers a remote sensor with the hash of its token ([`token_hash`]); its id, or
    /// `None` (nothing changed) when the name is taken. Sensor methods take `&self` like the
    /// user methods: tiny rows, kept off the writer's queue of leg batches.
    pub async fn create_sensor(
        &self,
        name: &str,
        token_hash: &str,
        now: Micros,
    ) -> Result<Option<i64>> {
        match &self.backend {
            Backend::Sqlite(s) => sensors::create(&s.pool, name, token_hash, now).await,
            Backend::Postgres(p) => pg::create_sensor(&p.pool, name, token_hash, now).await,
        }
    }

    /// The sensor holding this token hash, unless revoked.
    pub async fn sensor_by_token(&self, token_hash: &str) -> Result<Option<Sensor>> {
        match &self.backend {
            Backend::Sqlite(s) => sensors::by_token(&s.pool, token_hash).await,
            Backend::Postgres(p) => pg::sensor_by_token(&p.pool, token_hash).await,
        }
    }

    /// Every sensor (revoked ones too), by name.
    pub async fn list_sensors(&self) -> Result<Vec<Sensor>> {
        match &self.backend {
            Backend::Sqlite(s) => sensors::list(&s.pool).await,
            Backend::Postgres(p) => pg::list_sensors(&p.pool).await,
        }
    }

    /// Revokes a sensor's token by id; `false` if unknown or already revoked.
    pub async fn revoke_sensor(&self, id: i64, now: Micros) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite(s) => sensors::revoke(&s.pool, Which::Id(id), now).await,
            Backend::Postgres(p) => pg::revoke_sensor(&p.pool, Which::Id(id), now).await,
        }
    }

    /// Revokes a sensor's token by name; `false` if unknown or already revoked.
    pub async fn revoke_sensor_by_name(&self, name: &str, now: Micros) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite(s) => sensors::revoke(&s.pool, Which::Name(name), now).await,
            Backend::Postgres(p) => pg::revoke_sensor(&p.pool, Which::Name(name), now).await,
        }
    }

    /// Records that a sensor was heard from: `legs` more received, and a heartbeat's report.
    pub async fn sensor_seen(
        &self,
        id: i64,
        now: Micros,
        report: Option<&SensorReport>,
        legs: u64,
    ) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(s) => sensors::seen(&s.pool, id, now, report, legs).await,
            Backend::Postgres(p) => pg::sensor_seen(&p.pool, id, now, report, legs).await,
        }
    }

    /// Highest applied migration version, for diagnostics (About page, support bundles).
    pub async fn schema_version(&self) -> Result<i64> {
        match &self.backend {
            Backend::Sqlite(s) => s.schema_version().await,
            Backend::Postgres(p) => p.schema_version().await,
        }
    }

    /// Closes all connections, so that the WAL is checkpointed and the file can be copied or
    /// reopened right away. Dropping a `Store` also closes it, but without waiting.
    pub async fn close(self) {
        match self.backend {
            Backend::Sqlite(s) => s.close().await,
            Backend::Postgres(p) => p.close().await,
        }
    }
}

/// Text forms stored in the database. Transport and Side have no parser of their own in their
/// crates; these live here because only storage needs to read them back.
fn transport_from_str(s: &str) -> Option<sip::Transport> {
    use sip::Transport::*;
    [Udp, Tcp, Tls, Sctp, Ws]
        .into_iter()
        .find(|t| t.as_str() == s)
}

fn side_from_str(s: &str) -> Option<calls::Side> {
    use calls::Side::*;
    [Caller, Callee].into_iter().find(|t| t.as_str() == s)
}

//! The SQLite backend: one database file in the data directory.

use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError, mpsc};
use std::time::Duration;

use calls::{EndReason, Leg, LegMessage};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite};

use crate::checkpoint::Checkpointer;
use crate::codec::{self, Encoder};
use crate::{InsertReport, LegId, LegQuery, Messages, Result, StoreError, StoredLeg};

/// Columns of `legs` as read back, in the order of `INSERT_LEG_SQL` (`id` is assigned by the
/// database).
pub(crate) const LEG_COLUMNS: [&str; 28] = [
    "sensor_id",
    "call_id",
    "caller",
    "caller_domain",
    "caller_name",
    "called",
    "called_domain",
    "called_name",
    "from_tag",
    "to_tag",
    "start_us",
    "answer_us",
    "end_us",
    "last_response",
    "last_response_text",
    "end_reason",
    "hangup_by",
    "transport",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "partial",
    "referred_by",
    "refer_to",
    "replaces",
    "user_agent",
    "sip_message_count",
];

/// How many legs the writer inserts before handing their messages to the compressing thread:
/// small enough that compression starts early, large enough that the hand-over is rare.
const ENCODE_CHUNK: usize = 512;

/// Chunks of legs waiting for compression at most; the writer waits beyond that, so a batch of
/// huge legs cannot pile up in memory.
const ENCODE_QUEUE: usize = 4;

/// How long a writer waits for another connection's lock before failing. Several processes
/// (server, an import run) may share one file; a few seconds covers a large batch commit.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Readers run beside the writer thanks to WAL; a handful of connections is enough for a GUI.
const MAX_CONNECTIONS: u32 = 4;

/// Page cache of a connection, in KiB (SQLite's negative `cache_size`): the random-order
/// number index pages of a large legs table stay hot during imports.
const CACHE_KIB: i64 = 65536;

pub(crate) struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// The database file, for bulk readers that open their own connection.
    pub(crate) path: std::path::PathBuf,
    /// The connection leg batches are written on (see [`write_batch`]). In a mutex only so
    /// that the store is `Sync`; `insert_legs` has `&mut self` and never waits for it.
    writer: Mutex<rusqlite::Connection>,
    checkpointer: Checkpointer,
}

impl SqliteStore {
    pub(crate) async fn open(data_dir: &Path) -> Result<Self> {
        tokio::fs::create_dir_all(data_dir)
            .await
            .map_err(|source| StoreError::CreateDir {
                path: data_dir.to_owned(),
                source,
            })?;
        let path = data_dir.join(crate::SQLITE_FILE_NAME);
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // In WAL mode NORMAL only risks the last transactions on power loss, never
            // corruption; FULL would fsync every batch commit.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT)
            .pragma("cache_size", format!("-{CACHE_KIB}"))
            .pragma("temp_store", "memory")
            // The checkpoint thread copies the log into the file; no connection does it in
            // the middle of its own commit.
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        let writer = open_writer(&path).map_err(StoreError::Write)?;
        let checkpointer =
            Checkpointer::start(open_plain(&path).map_err(StoreError::Write)?, &path)?;
        Ok(SqliteStore {
            pool,
            path,
            writer: Mutex::new(writer),
            checkpointer,
        })
    }

    pub(crate) async fn close(self) {
        // The writer and the checkpoint thread first: the pool's last connection then
        // checkpoints the whole log on close and removes it.
        drop(self.writer);
        drop(self.checkpointer);
        self.pool.close().await;
    }

    pub(crate) async fn insert_legs(
        &mut self,
        legs: &[Leg],
        messages: Messages<'_>,
    ) -> Result<InsertReport> {
        if legs.is_empty() {
            return Ok(InsertReport::default());
        }
        let conn = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let report = run_blocking(|| {
            if self.checkpointer.log_too_long() {
                crate::checkpoint::catch_up(conn).map_err(StoreError::Write)?;
                self.checkpointer.caught_up();
            }
            write_batch(conn, legs, messages)
        })?;
        self.checkpointer.nudge();
        Ok(report)
    }

    pub(crate) async fn legs(&self, q: &LegQuery) -> Result<Vec<StoredLeg>> {
        let mut sql = format!(
            "SELECT id, {} FROM legs WHERE 1 = 1",
            LEG_COLUMNS.join(", ")
        );
        if q.start_from.is_some() {
            sql.push_str(" AND start_us >= ?");
        }
        if q.start_before.is_some() {
            sql.push_str(" AND start_us < ?");
        }
        if q.sensor_id.is_some() {
            sql.push_str(" AND sensor_id = ?");
        }
        sql.push_str(" ORDER BY start_us, id LIMIT ? OFFSET ?");
        let query = q.bind_filters(sqlx::query(&sql));
        // SQLite spells "no limit" as a negative LIMIT.
        let limit = q.limit.map_or(-1, i64::from);
        let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
        let rows = query.bind(limit).bind(offset).fetch_all(&self.pool).await?;
        rows.iter().map(leg_from_row).collect()
    }

    pub(crate) async fn leg_messages(&self, leg_id: LegId) -> Result<Vec<LegMessage>> {
        let row: Option<(i64, Vec<u8>)> =
            sqlx::query_as("SELECT message_count, data FROM leg_messages WHERE leg_id = ?")
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

/// The write connection. sqlx hands every bound value and every statement to a worker thread
/// over a channel; for a batch of 28-column rows that per-row cost dominated (about 10 µs a
/// leg), so leg batches are written with a plain SQLite connection and one prepared
/// single-row INSERT, stepped directly (about a quarter of that).
fn open_writer(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = open_plain(path)?;
    // Checkpoints are the checkpoint thread's (see `checkpoint`).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.pragma_update(
        None,
        "journal_size_limit",
        crate::checkpoint::WAL_SIZE_LIMIT,
    )?;
    // The file is in WAL mode already (set by the pool). NORMAL in WAL mode syncs at
    // checkpoints, not at every commit: a power loss can lose the last committed batches
    // (which a sensor re-sends, as it only drops a batch once the server has it), never
    // corrupt the file. FULL would fsync every batch.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
    // A statement journal in memory, not in a temp file (a syscall per page).
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(16);
    Ok(conn)
}

/// A plain SQLite connection to an existing database, for one thread at a time. No SQLite
/// mutexes: locking every page access cost ~6 % of an insert.
fn open_plain(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    open_unshared(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE)
}

/// [`open_plain`], read-only: for row-heavy reads on a blocking thread, where sqlx's per-row
/// hand-over between threads would cost several times the read.
pub(crate) fn open_reader(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    open_unshared(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
}

fn open_unshared(path: &Path, mode: rusqlite::OpenFlags) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        mode | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// Runs blocking SQLite work from async code. On a multi-threaded runtime the worker hands its
/// other tasks to the rest of the pool meanwhile; a current-thread runtime (tests, benchmark
/// examples) just runs it, as it has nothing else to run. Not `spawn_blocking`: that needs
/// owned data, and copying a batch of legs would cost a good part of writing them.
fn run_blocking<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

/// One leg per statement, prepared once per connection. Measured against 64-row statements
/// (which keep the B-tree cursors open from row to row): no faster, and a single row tells
/// directly whether it was new and its id, where a multi-row statement needs `RETURNING`.
const INSERT_LEG_SQL: &str = "INSERT INTO legs (sensor_id, call_id, caller, caller_domain, \
     caller_name, called, called_domain, called_name, from_tag, to_tag, start_us, answer_us, \
     end_us, last_response, last_response_text, end_reason, hangup_by, transport, src_ip, \
     src_port, dst_ip, dst_port, partial, referred_by, refer_to, replaces, user_agent, \
     sip_message_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, \
     ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28) \
     ON CONFLICT (sensor_id, start_us, call_id) DO NOTHING";

const INSERT_MESSAGES_SQL: &str =
    "INSERT INTO leg_messages (leg_id, message_count, data) VALUES (?1, ?2, ?3)";

/// One batch in one transaction: sensors, legs, their messages, the stale channel ranges and
/// the outcome buckets of the new legs. A leg already stored is skipped by the unique identity
/// key, and only legs that were really inserted get messages and outcome counts.
fn write_batch(
    conn: &mut rusqlite::Connection,
    legs: &[Leg],
    messages: Messages<'_>,
) -> Result<InsertReport> {
    let write_err = StoreError::Write;
    // IMMEDIATE takes the write lock now (waiting up to the busy timeout), rather than at the
    // first INSERT where a busy lock could no longer be waited for.
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(write_err)?;
    register_sensors(&tx, legs).map_err(write_err)?;
    crate::summary::refresh_stale_buckets(&tx).map_err(write_err)?;

    let mut report = InsertReport::default();
    let mut outcomes = crate::summary::OutcomeBatch::default();
    let mut insert = LegWriter::new(&tx).map_err(write_err)?;
    if let Messages::Encoded(encoded) = messages {
        let mut blobs = tx.prepare_cached(INSERT_MESSAGES_SQL).map_err(write_err)?;
        for (leg, encoded) in legs.iter().zip(encoded) {
            let Some(id) = insert.insert(leg).map_err(write_err)? else {
                continue;
            };
            report.inserted += 1;
            outcomes.add(leg);
            if let Some(e) = encoded {
                blobs
                    .execute((id, i64::from(e.count), e.blob.as_slice()))
                    .map_err(write_err)?;
                report.legs_with_messages += 1;
            }
        }
    } else if legs.iter().all(|l| l.messages.is_empty()) {
        for leg in legs {
            if insert.insert(leg).map_err(write_err)?.is_some() {
                report.inserted += 1;
                outcomes.add(leg);
            }
        }
    } else {
        let (inserted, with_messages) =
            insert_with_messages(&tx, &mut insert, legs, &mut outcomes)?;
        report.inserted = inserted;
        report.legs_with_messages = with_messages;
    }
    drop(insert);
    if report.inserted > 0 {
        crate::channel_stats::mark_dirty(&tx, legs).map_err(write_err)?;
        outcomes.write(&tx).map_err(write_err)?;
    }
    tx.commit().map_err(write_err)?;
    report.duplicates = legs.len() as u64 - report.inserted;
    Ok(report)
}

/// Inserts the legs while a second thread compresses the messages of the new ones, so that both
/// cores work: compressing eight messages costs about as much as inserting the leg.
/// Returns (legs inserted, legs whose messages were stored).
fn insert_with_messages<'l>(
    tx: &rusqlite::Transaction<'_>,
    insert: &mut LegWriter<'_>,
    legs: &'l [Leg],
    outcomes: &mut crate::summary::OutcomeBatch<'l>,
) -> Result<(u64, u64)> {
    let write_err = StoreError::Write;
    let mut messages = tx.prepare_cached(INSERT_MESSAGES_SQL).map_err(write_err)?;
    let mut write_blobs = |blobs: Vec<MessageRow>| -> Result<u64> {
        for (id, count, blob) in &blobs {
            messages
                .execute((id, count, blob.as_slice()))
                .map_err(write_err)?;
        }
        Ok(blobs.len() as u64)
    };
    std::thread::scope(|scope| {
        let (job_tx, job_rx) = mpsc::sync_channel::<Vec<(LegId, &Leg)>>(ENCODE_QUEUE);
        let (blob_tx, blob_rx) = mpsc::channel::<Result<Vec<MessageRow>>>();
        scope.spawn(move || {
            let mut encoder = None;
            for job in job_rx {
                if blob_tx.send(encode_messages(&mut encoder, &job)).is_err() {
                    break;
                }
            }
        });
        let (mut inserted, mut stored) = (0u64, 0u64);
        for chunk in legs.chunks(ENCODE_CHUNK) {
            let mut job = Vec::new();
            for leg in chunk {
                if let Some(id) = insert.insert(leg).map_err(write_err)? {
                    inserted += 1;
                    outcomes.add(leg);
                    if !leg.messages.is_empty() {
                        job.push((id, leg));
                    }
                }
            }
            while let Ok(blobs) = blob_rx.try_recv() {
                stored += write_blobs(blobs?)?;
            }
            if !job.is_empty() {
                // Fails only if the encoder thread is gone, which it is not while we hold
                // its channel; its error would come through `blob_rx`.
                let _ = job_tx.send(job);
            }
        }
        drop(job_tx);
        for blobs in blob_rx {
            stored += write_blobs(blobs?)?;
        }
        Ok((inserted, stored))
    })
}

/// The prepared leg INSERT with a reused buffer for the address texts.
struct LegWriter<'c> {
    stmt: rusqlite::CachedStatement<'c>,
    conn: &'c rusqlite::Connection,
    text: String,
}

impl<'c> LegWriter<'c> {
    fn new(conn: &'c rusqlite::Connection) -> rusqlite::Result<Self> {
        Ok(LegWriter {
            stmt: conn.prepare_cached(INSERT_LEG_SQL)?,
            conn,
            text: String::with_capacity(48),
        })
    }

    /// The new row's id, or `None` when the leg was already stored.
    fn insert(&mut self, leg: &Leg) -> rusqlite::Result<Option<LegId>> {
        bind_leg(&mut self.stmt, leg, &mut self.text)?;
        Ok((self.stmt.raw_execute()? == 1).then(|| self.conn.last_insert_rowid()))
    }
}

/// Binds one leg in `LEG_COLUMNS` order. `text` is a reused buffer for the address texts.
fn bind_leg(
    s: &mut rusqlite::CachedStatement<'_>,
    leg: &Leg,
    text: &mut String,
) -> rusqlite::Result<()> {
    use std::fmt::Write as _;
    s.raw_bind_parameter(1, i64::from(leg.sensor_id))?;
    s.raw_bind_parameter(2, leg.call_id.as_str())?;
    s.raw_bind_parameter(3, leg.caller.as_str())?;
    s.raw_bind_parameter(4, leg.caller_domain.as_str())?;
    s.raw_bind_parameter(5, leg.caller_name.as_deref())?;
    s.raw_bind_parameter(6, leg.called.as_str())?;
    s.raw_bind_parameter(7, leg.called_domain.as_str())?;
    s.raw_bind_parameter(8, leg.called_name.as_deref())?;
    s.raw_bind_parameter(9, leg.from_tag.as_deref())?;
    s.raw_bind_parameter(10, leg.to_tag.as_deref())?;
    s.raw_bind_parameter(11, leg.start)?;
    s.raw_bind_parameter(12, leg.answer)?;
    s.raw_bind_parameter(13, leg.end)?;
    s.raw_bind_parameter(14, leg.last_response.map(i64::from))?;
    s.raw_bind_parameter(15, leg.last_response_text.as_deref())?;
    s.raw_bind_parameter(16, leg.end_reason.as_str())?;
    s.raw_bind_parameter(17, leg.hangup_by.map(|h| h.as_str()))?;
    s.raw_bind_parameter(18, leg.transport.as_str())?;
    text.clear();
    let _ = write!(text, "{}", leg.src_ip);
    s.raw_bind_parameter(19, text.as_str())?;
    s.raw_bind_parameter(20, i64::from(leg.src_port))?;
    text.clear();
    let _ = write!(text, "{}", leg.dst_ip);
    s.raw_bind_parameter(21, text.as_str())?;
    s.raw_bind_parameter(22, i64::from(leg.dst_port))?;
    s.raw_bind_parameter(23, leg.partial)?;
    s.raw_bind_parameter(24, leg.referred_by.as_deref())?;
    s.raw_bind_parameter(25, leg.refer_to.as_deref())?;
    s.raw_bind_parameter(26, leg.replaces.as_deref())?;
    s.raw_bind_parameter(27, leg.user_agent.as_deref())?;
    s.raw_bind_parameter(28, i64::from(leg.sip_message_count))?;
    Ok(())
}

/// Makes sure every sensor id of the batch has a row, for the foreign key.
fn register_sensors(tx: &rusqlite::Transaction<'_>, legs: &[Leg]) -> rusqlite::Result<()> {
    let mut sensors: Vec<u32> = Vec::new();
    for leg in legs {
        if !sensors.contains(&leg.sensor_id) {
            sensors.push(leg.sensor_id);
        }
    }
    let now = now_us();
    let mut stmt = tx.prepare_cached(
        "INSERT INTO sensors (id, name, created_us) VALUES (?1, ?2, ?3) \
         ON CONFLICT (id) DO NOTHING",
    )?;
    for id in sensors {
        stmt.execute((i64::from(id), format!("sensor {id}"), now))?;
    }
    Ok(())
}

type MessageRow = (LegId, i64, Vec<u8>);

fn encode_messages(
    encoder: &mut Option<Encoder>,
    legs: &[(LegId, &Leg)],
) -> Result<Vec<MessageRow>> {
    if legs.is_empty() {
        return Ok(Vec::new());
    }
    let encoder = match encoder {
        Some(e) => e,
        None => encoder.insert(Encoder::new().map_err(StoreError::Encode)?),
    };
    legs.iter()
        .map(|(id, leg)| {
            let blob = encoder.encode(&leg.messages).map_err(StoreError::Encode)?;
            Ok((*id, leg.messages.len() as i64, blob))
        })
        .collect()
}

/// Reads a row of `SELECT id, LEG_COLUMNS...`. Values the schema allows but the model cannot
/// hold (an unknown end reason, a port over 65535) are reported as a corrupt leg.
pub(crate) fn leg_from_row(row: &SqliteRow) -> Result<StoredLeg> {
    let id: LegId = row.try_get(0)?;
    let corrupt = |column: &'static str| StoreError::CorruptLeg { leg_id: id, column };
    let int = |i: usize| col::<i64>(row, i);
    let text = |i: usize| col::<String>(row, i);
    let opt_text = |i: usize| col::<Option<String>>(row, i);
    let narrow =
        |i: usize| -> Result<u32> { u32::try_from(int(i)?).map_err(|_| corrupt(LEG_COLUMNS[i])) };
    let port =
        |i: usize| -> Result<u16> { u16::try_from(int(i)?).map_err(|_| corrupt(LEG_COLUMNS[i])) };
    let ip = |i: usize| -> Result<IpAddr> {
        IpAddr::from_str(&text(i)?).map_err(|_| corrupt(LEG_COLUMNS[i]))
    };

    let last_response = match col::<Option<i64>>(row, 13)? {
        None => None,
        Some(v) => Some(u16::try_from(v).map_err(|_| corrupt("last_response"))?),
    };
    let hangup_by = match opt_text(16)? {
        None => None,
        Some(s) => Some(crate::side_from_str(&s).ok_or_else(|| corrupt("hangup_by"))?),
    };
    let leg = Leg {
        sensor_id: narrow(0)?,
        call_id: text(1)?,
        caller: text(2)?,
        caller_domain: text(3)?,
        caller_name: opt_text(4)?,
        called: text(5)?,
        called_domain: text(6)?,
        called_name: opt_text(7)?,
        from_tag: opt_text(8)?,
        to_tag: opt_text(9)?,
        start: int(10)?,
        answer: col(row, 11)?,
        end: int(12)?,
        last_response,
        last_response_text: opt_text(14)?,
        end_reason: EndReason::parse(&text(15)?).ok_or_else(|| corrupt("end_reason"))?,
        hangup_by,
        transport: crate::transport_from_str(&text(17)?).ok_or_else(|| corrupt("transport"))?,
        src_ip: ip(18)?,
        src_port: port(19)?,
        dst_ip: ip(20)?,
        dst_port: port(21)?,
        partial: col(row, 22)?,
        referred_by: opt_text(23)?,
        refer_to: opt_text(24)?,
        replaces: opt_text(25)?,
        user_agent: opt_text(26)?,
        sip_message_count: narrow(27)?,
        messages: Vec::new(),
    };
    Ok(StoredLeg { id, leg })
}

/// Column `i` of `LEG_COLUMNS` in a row that starts with `id`.
fn col<'r, T>(row: &'r SqliteRow, i: usize) -> Result<T>
where
    T: sqlx::Decode<'r, Sqlite> + sqlx::Type<Sqlite>,
{
    Ok(row.try_get(i + 1)?)
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

//! The SQLite backend: one database file in the data directory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use calls::{EndReason, Leg, LegMessage};
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row, Sqlite};

use crate::codec::{self, Encoder};
use crate::{InsertReport, LegId, LegQuery, Result, StoreError, StoredLeg};

/// SQLite refuses statements with more bound parameters than this (its default since 3.32).
const MAX_PARAMS: usize = 32766;

/// Columns of `legs` written on insert, in bind order (`id` is assigned by the database).
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

/// As many legs per statement as the parameter limit allows: per-statement overhead (one
/// round trip to sqlx's worker thread, one VDBE run) dominates small statements.
const LEGS_PER_STATEMENT: usize = MAX_PARAMS / LEG_COLUMNS.len();

/// Message blobs per statement. Far below the parameter limit on purpose: each row carries a
/// blob of kilobytes, and a few megabytes per statement already amortise the overhead.
const MESSAGE_ROWS_PER_STATEMENT: usize = 1000;

/// How long a writer waits for another connection's lock before failing. Several processes
/// (server, an import run) may share one file; a few seconds covers a large batch commit.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Readers run beside the writer thanks to WAL; a handful of connections is enough for a GUI.
const MAX_CONNECTIONS: u32 = 4;

pub(crate) struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// The database file, for bulk readers that open their own connection.
    pub(crate) path: std::path::PathBuf,
    /// SQL for a full chunk without and with RETURNING, built once: batches are mostly full
    /// chunks, and the identical text lets sqlx reuse its prepared statement.
    full_chunk_sql: [String; 2],
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
            // 64 MiB page cache per connection: the random-order caller/called index pages of
            // a large legs table stay hot during imports.
            .pragma("cache_size", "-65536")
            // A multi-row INSERT inside a transaction keeps a statement journal; in memory it
            // costs a copy, in a temp file a syscall per page (measured ~1.5x slower inserts).
            .pragma("temp_store", "memory")
            // RETURNING rows queue here while this thread compresses messages; a smaller
            // buffer (sqlx's default is 50) would stall SQLite's worker mid-statement.
            .row_buffer_size(LEGS_PER_STATEMENT + 1);
        let pool = SqlitePoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Open {
                path: path.clone(),
                source,
            })?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(SqliteStore {
            pool,
            path,
            full_chunk_sql: [
                insert_legs_sql(LEGS_PER_STATEMENT, false),
                insert_legs_sql(LEGS_PER_STATEMENT, true),
            ],
        })
    }

    pub(crate) async fn close(self) {
        self.pool.close().await;
    }

    pub(crate) async fn insert_legs(&mut self, legs: &[Leg]) -> Result<InsertReport> {
        let mut report = InsertReport::default();
        if legs.is_empty() {
            return Ok(report);
        }
        let tail_len = legs.len() % LEGS_PER_STATEMENT;
        let tail_sql = if tail_len > 0 {
            [
                insert_legs_sql(tail_len, false),
                insert_legs_sql(tail_len, true),
            ]
        } else {
            Default::default()
        };
        let build = |chunk| build_leg_insert(chunk, &self.full_chunk_sql, &tail_sql);

        let mut tx = self.pool.begin().await?;
        register_sensors(&mut tx, legs).await?;

        // SQLite runs on sqlx's worker thread, so this thread is free while a statement runs.
        // The loop uses that: while one chunk's legs are inserted, it compresses the messages
        // of the previous chunk's new legs and binds the next chunk. `biased` makes sure the
        // statement reaches the worker before the CPU work starts.
        let mut encoder: Option<Encoder> = None;
        let mut chunks = legs.chunks(LEGS_PER_STATEMENT);
        let mut next = chunks.next().map(build);
        let mut pending: Vec<(LegId, &Leg)> = Vec::new();
        while let Some((chunk, query, returning)) = next.take() {
            let to_encode = std::mem::take(&mut pending);
            let (outcome, (blobs, built)) = tokio::join!(
                biased;
                run_leg_insert(query, returning, &mut tx),
                async {
                    let blobs = encode_messages(&mut encoder, &to_encode);
                    (blobs, chunks.next().map(build))
                },
            );
            let blobs = blobs?;
            match outcome? {
                LegInsertOutcome::Inserted(n) => report.inserted += n,
                LegInsertOutcome::Returned(rows) => {
                    report.inserted += rows.len() as u64;
                    pending = new_legs_with_messages(chunk, &rows)?;
                }
            }
            write_messages(&mut tx, &blobs).await?;
            report.legs_with_messages += blobs.len() as u64;
            next = built;
        }
        let blobs = encode_messages(&mut encoder, &pending)?;
        write_messages(&mut tx, &blobs).await?;
        report.legs_with_messages += blobs.len() as u64;

        if report.inserted > 0 {
            crate::channel_stats::mark_dirty(&mut tx, legs).await?;
        }
        tx.commit().await?;
        report.duplicates = legs.len() as u64 - report.inserted;
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
        let mut query = sqlx::query(&sql);
        if let Some(t) = q.start_from {
            query = query.bind(t);
        }
        if let Some(t) = q.start_before {
            query = query.bind(t);
        }
        if let Some(s) = q.sensor_id {
            query = query.bind(i64::from(s));
        }
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
        let Some((count, blob)) = row else {
            return Ok(Vec::new());
        };
        let messages = codec::decode(&blob)
            .map_err(|reason| StoreError::CorruptMessages { leg_id, reason })?;
        if messages.len() as i64 != count {
            return Err(StoreError::CorruptMessages {
                leg_id,
                reason: "message count does not match the stored count",
            });
        }
        Ok(messages)
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

/// Makes sure every sensor id of the batch has a row, for the foreign key.
async fn register_sensors(conn: &mut SqliteConnection, legs: &[Leg]) -> Result<()> {
    let mut sensors: Vec<u32> = Vec::new();
    for leg in legs {
        if !sensors.contains(&leg.sensor_id) {
            sensors.push(leg.sensor_id);
        }
    }
    let now = now_us();
    for id in sensors {
        sqlx::query(
            "INSERT INTO sensors (id, name, created_us) VALUES (?, ?, ?) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(i64::from(id))
        .bind(format!("sensor {id}"))
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The multi-row INSERT for one chunk, with RETURNING only when some leg of the chunk has
/// messages (only then are the new ids needed). `full_sql` and `tail_sql` are indexed by that.
fn build_leg_insert<'q>(
    chunk: &'q [Leg],
    full_sql: &'q [String; 2],
    tail_sql: &'q [String; 2],
) -> (&'q [Leg], LegInsert<'q>, bool) {
    let returning = chunk.iter().any(|l| !l.messages.is_empty());
    let sql = if chunk.len() == LEGS_PER_STATEMENT {
        &full_sql[usize::from(returning)]
    } else {
        &tail_sql[usize::from(returning)]
    };
    let mut query = sqlx::query(sql);
    for leg in chunk {
        query = bind_leg(query, leg);
    }
    (chunk, query, returning)
}

enum LegInsertOutcome {
    /// Without RETURNING: only the count of new rows.
    Inserted(u64),
    /// With RETURNING: `id, sensor_id, call_id, start_us` of each new row.
    Returned(Vec<SqliteRow>),
}

async fn run_leg_insert(
    query: LegInsert<'_>,
    returning: bool,
    conn: &mut SqliteConnection,
) -> Result<LegInsertOutcome> {
    Ok(if returning {
        LegInsertOutcome::Returned(query.fetch_all(conn).await?)
    } else {
        LegInsertOutcome::Inserted(query.execute(conn).await?.rows_affected())
    })
}

/// Pairs the rows RETURNING reported as new with their input legs, keeping those with messages.
/// Matched by the identity key, since SQLite does not promise RETURNING rows in VALUES order.
/// Within one chunk the first of two equal keys is the one stored, so the first is kept here.
fn new_legs_with_messages<'a>(
    chunk: &'a [Leg],
    rows: &[SqliteRow],
) -> Result<Vec<(LegId, &'a Leg)>> {
    let mut by_key: HashMap<(i64, &str, i64), &Leg> = HashMap::with_capacity(chunk.len());
    for leg in chunk {
        by_key
            .entry((i64::from(leg.sensor_id), leg.call_id.as_str(), leg.start))
            .or_insert(leg);
    }
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let id: LegId = row.try_get(0)?;
        let sensor_id: i64 = row.try_get(1)?;
        let call_id: &str = row.try_get(2)?;
        let start: i64 = row.try_get(3)?;
        if let Some(leg) = by_key.get(&(sensor_id, call_id, start))
            && !leg.messages.is_empty()
        {
            out.push((id, *leg));
        }
    }
    Ok(out)
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

async fn write_messages(conn: &mut SqliteConnection, rows: &[MessageRow]) -> Result<()> {
    for part in rows.chunks(MESSAGE_ROWS_PER_STATEMENT) {
        let mut sql =
            String::from("INSERT INTO leg_messages (leg_id, message_count, data) VALUES ");
        push_placeholders(&mut sql, part.len(), 3);
        let mut query = sqlx::query(&sql);
        for (id, count, blob) in part {
            query = query.bind(*id).bind(*count).bind(blob.as_slice());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

fn insert_legs_sql(rows: usize, returning: bool) -> String {
    let mut sql = format!("INSERT INTO legs ({}) VALUES ", LEG_COLUMNS.join(", "));
    push_placeholders(&mut sql, rows, LEG_COLUMNS.len());
    sql.push_str(" ON CONFLICT (sensor_id, start_us, call_id) DO NOTHING");
    if returning {
        sql.push_str(" RETURNING id, sensor_id, call_id, start_us");
    }
    sql
}

/// Appends `(?, ?, ...), (...)` for a multi-row VALUES clause.
fn push_placeholders(sql: &mut String, rows: usize, cols: usize) {
    let mut group = String::with_capacity(cols * 3 + 2);
    group.push('(');
    for c in 0..cols {
        if c > 0 {
            group.push_str(", ");
        }
        group.push('?');
    }
    group.push(')');
    sql.reserve(rows * (group.len() + 2));
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&group);
    }
}

type LegInsert<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

/// Binds one leg in `LEG_COLUMNS` order. Strings are bound as `&str` (borrowed), not `&String`,
/// which sqlx would clone.
fn bind_leg<'q>(q: LegInsert<'q>, leg: &'q Leg) -> LegInsert<'q> {
    q.bind(i64::from(leg.sensor_id))
        .bind(leg.call_id.as_str())
        .bind(leg.caller.as_str())
        .bind(leg.caller_domain.as_str())
        .bind(leg.caller_name.as_deref())
        .bind(leg.called.as_str())
        .bind(leg.called_domain.as_str())
        .bind(leg.called_name.as_deref())
        .bind(leg.from_tag.as_deref())
        .bind(leg.to_tag.as_deref())
        .bind(leg.start)
        .bind(leg.answer)
        .bind(leg.end)
        .bind(leg.last_response.map(i64::from))
        .bind(leg.last_response_text.as_deref())
        .bind(leg.end_reason.as_str())
        .bind(leg.hangup_by.map(|s| s.as_str()))
        .bind(leg.transport.as_str())
        .bind(leg.src_ip.to_string())
        .bind(i64::from(leg.src_port))
        .bind(leg.dst_ip.to_string())
        .bind(i64::from(leg.dst_port))
        .bind(leg.partial)
        .bind(leg.referred_by.as_deref())
        .bind(leg.refer_to.as_deref())
        .bind(leg.replaces.as_deref())
        .bind(leg.user_agent.as_deref())
        .bind(i64::from(leg.sip_message_count))
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

//! Copies the SQLite write-ahead log into the database file on a thread of its own.
//!
//! With SQLite's automatic checkpoints, the connection whose commit crossed the threshold copies
//! the log itself, inside that commit: during an ingest that is the leg writer, which then spent
//! about a quarter of its time copying pages instead of inserting legs. Here every connection
//! has automatic checkpoints off and this thread does passive checkpoints instead, which run
//! beside the writer (it keeps appending to the log meanwhile) on the other core.
//!
//! SQLite starts the log from its beginning again only when a write transaction begins with
//! every frame copied. A passive checkpoint beside a busy writer never quite catches up, so
//! under a steady load the log would grow without end (a bulk load left 7 GB of it). Hence
//! [`Checkpointer::log_too_long`]: once the log is past [`LOG_FRAMES_MAX`], the writer copies
//! the last frames itself between two batches ([`catch_up`]), and its next transaction
//! restarts the log. Most frames were copied by the thread by then.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::StoreError;

/// Least time between two checkpoints while legs come in. A hot index page changed by every
/// batch is copied once per checkpoint, so checkpointing after each batch would copy it again
/// and again; a second's worth of batches is a few thousand distinct pages.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// A checkpoint also runs this long after the last one without a nudge, for writes that did
/// not come from the leg writer (channel figures, users, alerts).
const IDLE_INTERVAL: Duration = Duration::from_secs(30);

/// Size the log file is cut back to when SQLite starts writing it from the beginning again,
/// so that one burst does not leave a huge file behind.
pub(crate) const WAL_SIZE_LIMIT: i64 = 64 << 20;

/// Log frames (pages of 4 KiB) past which the writer finishes a checkpoint itself: 64 MiB.
const LOG_FRAMES_MAX: i64 = 16384;

/// The checkpoint thread. Dropping it stops the thread (after a checkpoint in progress).
pub(crate) struct Checkpointer {
    nudge: Option<SyncSender<()>>,
    /// Frames in the log at the thread's last checkpoint.
    log_frames: Arc<AtomicI64>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread with `conn`, a connection of its own to a database in WAL mode.
    pub(crate) fn start(conn: rusqlite::Connection, path: &Path) -> crate::Result<Self> {
        let setup = |c: &rusqlite::Connection| {
            c.pragma_update(None, "wal_autocheckpoint", 0)?;
            c.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
        };
        setup(&conn).map_err(StoreError::Write)?;
        let (nudge, nudges) = mpsc::sync_channel(1);
        let log_frames = Arc::new(AtomicI64::new(0));
        let frames = log_frames.clone();
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &nudges, &frames))
            .map_err(|source| StoreError::Checkpointer {
                path: path.to_owned(),
                source,
            })?;
        Ok(Checkpointer {
            nudge: Some(nudge),
            log_frames,
            thread: Some(thread),
        })
    }

    /// Tells the thread that the log has grown. Never waits: nudges between two checkpoints
    /// are one.
    pub(crate) fn nudge(&self) {
        if let Some(n) = &self.nudge {
            let _ = n.try_send(());
        }
    }

    /// Whether the writer should [`catch_up`] before its next batch.
    pub(crate) fn log_too_long(&self) -> bool {
        self.log_frames.load(Ordering::Relaxed) > LOG_FRAMES_MAX
    }

    /// After the writer's [`catch_up`]: the log restarts with its next transaction.
    pub(crate) fn caught_up(&self) {
        self.log_frames.store(0, Ordering::Relaxed);
    }
}

/// Copies the frames the thread has not copied yet, on the writer's connection between two of
/// its transactions, so that the next one starts the log from its beginning.
pub(crate) fn catch_up(writer: &rusqlite::Connection) -> rusqlite::Result<()> {
    passive(writer).map(|_| ())
}

/// A passive checkpoint; the frames in the log (before any restart).
fn passive(conn: &rusqlite::Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get(1))
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.nudge = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: &rusqlite::Connection, nudges: &mpsc::Receiver<()>, log_frames: &AtomicI64) {
    let mut grown = false;
    loop {
        if !grown && let Err(RecvTimeoutError::Disconnected) = nudges.recv_timeout(IDLE_INTERVAL) {
            return;
        }
        let started = Instant::now();
        // PASSIVE never waits for the writer or readers: it copies what it can now. A busy or
        // failed checkpoint is tried again at the next nudge; the log is only longer meanwhile.
        match passive(conn) {
            Ok(frames) => log_frames.store(frames, Ordering::Relaxed),
            Err(e) => eprintln!("sipmeter: SQLite checkpoint failed (will retry): {e}"),
        }
        // Let the nudges of the next second's batches gather, but leave at once on close.
        grown = false;
        while let Some(left) = (started + MIN_INTERVAL).checked_duration_since(Instant::now()) {
            match nudges.recv_timeout(left) {
                Ok(()) => grown = true,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }
}

//! Copies the SQLite write-ahead log into the database file on a thread of its own.
//!
//! With SQLite's automatic checkpoints, the connection whose commit crossed the threshold copies
//! the log itself, inside that commit: during an ingest that is the leg writer, which then spent
//! about a quarter of its time copying pages instead of inserting legs. Here every connection
//! has automatic checkpoints off and this thread does passive checkpoints instead, which run
//! beside the writer (it keeps appending to the log meanwhile) on the other core.

use std::path::Path;
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

/// The checkpoint thread. Dropping it stops the thread (after a checkpoint in progress).
pub(crate) struct Checkpointer {
    nudge: Option<SyncSender<()>>,
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
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(&conn, &nudges))
            .map_err(|source| StoreError::Checkpointer {
                path: path.to_owned(),
                source,
            })?;
        Ok(Checkpointer {
            nudge: Some(nudge),
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
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.nudge = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(conn: &rusqlite::Connection, nudges: &mpsc::Receiver<()>) {
    let mut grown = false;
    loop {
        if !grown && let Err(RecvTimeoutError::Disconnected) = nudges.recv_timeout(IDLE_INTERVAL) {
            return;
        }
        let started = Instant::now();
        // PASSIVE never waits for the writer or readers: it copies what it can now. A busy or
        // failed checkpoint is tried again at the next nudge; the log is only longer meanwhile.
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            eprintln!("sipmeter: SQLite checkpoint failed (will retry): {e}");
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

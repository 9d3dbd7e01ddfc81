//! The embedded sensor: every capture put into the capture directory, existing and new, is
//! read once through a `sensor::Pipeline`, and its legs go to the one database writer
//! ([`super::writer`]).
//!
//! Choices:
//! - A file is read only once its size and modification time have not changed for
//!   `settle` (a capture still being written by tcpdump or copied in must not be read half).
//! - Each file gets its own pipeline, finished at its end, so every leg of a file is stored as
//!   soon as the file is done and nothing waits in memory for a next file that may never come.
//!   A call that continues from one file into the next is therefore two legs (unlike
//!   `--readpcapdir`, which reads a directory as one capture).
//! - "Active channels now" for captures: "now" is the end of the last capture read. Just before
//!   the pipeline closes the legs still open at the end of input, its tracker's live legs are
//!   counted (deduplicated with the channel engine's keys); that snapshot is what the footer
//!   shows until the next capture. A live interface will replace it with the tracker's live
//!   legs at wall-clock time.
//! - Files done are remembered in `<data_dir>/captures-done.txt` (name and size), written by
//!   the writer after the legs are stored; a file that grew or was replaced is read again, which
//!   is harmless because inserts are idempotent.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use calls::{Leg, Micros};
use channels::{ActiveMode, Keyer};
use tokio::sync::mpsc;

use super::IngestMsg;
use crate::state::LiveSnapshot;

/// Name of the state file of captures already read.
pub const DONE_FILE_NAME: &str = "captures-done.txt";
/// Legs per database transaction.
const BATCH: usize = 10_000;

/// Identity of a capture for "done": its name in the directory and its size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DoneKey {
    pub name: String,
    pub size: u64,
}

impl DoneKey {
    /// A capture's key: its name relative to the watched directory, so the record stays
    /// valid when the directory is mounted elsewhere.
    fn of(dir: &Path, path: &Path, size: u64) -> DoneKey {
        DoneKey {
            name: path
                .strip_prefix(dir)
                .unwrap_or(path)
                .to_string_lossy()
                .into_owned(),
            size,
        }
    }

    fn line(&self) -> String {
        format!("{}\t{}\n", self.size, self.name)
    }

    fn parse(line: &str) -> Option<DoneKey> {
        let (size, name) = line.split_once('\t')?;
        Some(DoneKey {
            name: name.to_string(),
            size: size.parse().ok()?,
        })
    }
}

pub fn load_done(data_dir: &Path) -> HashSet<DoneKey> {
    std::fs::read_to_string(data_dir.join(DONE_FILE_NAME))
        .map(|t| t.lines().filter_map(DoneKey::parse).collect())
        .unwrap_or_default()
}

pub(super) fn append_done(data_dir: &Path, key: &DoneKey) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data_dir.join(DONE_FILE_NAME))?;
    f.write_all(key.line().as_bytes())
}

/// Channels among live legs: distinct dedup keys, as the channel engine counts them. In
/// answered mode a leg still ringing occupies no channel.
pub fn live_snapshot<'a>(
    legs: impl Iterator<Item = &'a Leg>,
    mode: ActiveMode,
    at: Option<Micros>,
) -> LiveSnapshot {
    let mut keyer = Keyer::new();
    let mut keys = HashSet::new();
    let mut calls = 0u32;
    for leg in legs {
        calls += 1;
        if mode == ActiveMode::Answered && leg.answer.is_none() {
            continue;
        }
        keys.insert(keyer.key(&leg.caller, &leg.called));
    }
    LiveSnapshot {
        at,
        calls,
        channels: u32::try_from(keys.len()).unwrap_or(u32::MAX),
    }
}

/// Settings of the directory watcher.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    pub dir: PathBuf,
    pub pipeline: sensor::PipelineConfig,
    pub mode: ActiveMode,
    pub poll: Duration,
    pub settle: Duration,
}

/// The watcher loop, on its own thread (reading captures is CPU work). Stops when `stop` is
/// set or the writer is gone.
pub fn watch(
    cfg: WatchConfig,
    mut done: HashSet<DoneKey>,
    tx: mpsc::Sender<IngestMsg>,
    stop: Arc<AtomicBool>,
) {
    let mut captures = ::sensor::watch::SettledCaptures::new(&cfg.dir, cfg.settle);
    let mut reported_error = false;
    while !stop.load(Ordering::Relaxed) {
        let settled = captures.poll(Instant::now(), |path, size| {
            done.contains(&DoneKey::of(&cfg.dir, path, size))
        });
        let settled = match settled {
            Ok(f) => {
                reported_error = false;
                f
            }
            Err(e) => {
                if !reported_error {
                    tracing::error!("{e}");
                    reported_error = true;
                }
                Vec::new()
            }
        };
        for (path, size) in settled {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            let key = DoneKey::of(&cfg.dir, &path, size);
            if !read_one(&cfg, &path, key.clone(), &tx) {
                return;
            }
            done.insert(key);
        }
        std::thread::sleep(cfg.poll);
    }
}

/// Reads one capture and hands its legs and live snapshot to the writer; `false` when the
/// writer is gone.
fn read_one(cfg: &WatchConfig, path: &Path, key: DoneKey, tx: &mpsc::Sender<IngestMsg>) -> bool {
    let mut pipeline = sensor::Pipeline::new(cfg.pipeline.clone());
    let mut pending: Vec<Leg> = Vec::new();
    let mut alive = true;
    let mut last_ts: Option<Micros> = None;
    let report = pipeline.read_file(
        path,
        &mut |legs| {
            pending.extend(legs);
            if pending.len() >= BATCH && alive {
                alive = tx
                    .blocking_send(IngestMsg::Legs(std::mem::take(&mut pending)))
                    .is_ok();
            }
        },
        &mut |_| {},
    );
    if let Some(err) = &report.error {
        tracing::error!("{err}");
    }
    let live: Vec<&Leg> = pipeline.tracker().live_legs().collect();
    for l in &live {
        last_ts = last_ts.max(Some(l.end.max(l.start)));
    }
    let live_legs = live.iter().map(|l| super::remote::live_leg(l)).collect();
    let snapshot = live_snapshot(live.into_iter(), cfg.mode, last_ts);
    pending.extend(pipeline.finish());
    if !pending.is_empty() && alive {
        alive = tx.blocking_send(IngestMsg::Legs(pending)).is_ok();
    }
    alive
        && tx
            .blocking_send(IngestMsg::FileDone {
                key,
                live: snapshot,
                live_legs,
                failed: report.error.is_some(),
            })
            .is_ok()
}

//! The embedded sensor: every capture put into the capture directory, existing and new, is
//! read once through a `sensor::Pipeline`, and its legs go to the one database writer.
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

use crate::state::{AppState, LiveSnapshot};

/// Name of the state file of captures already read.
pub const DONE_FILE_NAME: &str = "captures-done.txt";
/// Legs per database transaction.
const BATCH: usize = 10_000;
/// How often the writer brings the channel figures up to date on its own (legs stored or
/// deleted by another process, such as `sipmeter import` on the same database).
const STATS_TICK: Duration = Duration::from_secs(30);
/// How often the channel figures follow remote sensors' batches.
const REMOTE_STATS_TICK: Duration = Duration::from_secs(2);

/// What the sensor thread tells the writer.
pub enum IngestMsg {
    Legs(Vec<Leg>),
    FileDone {
        key: DoneKey,
        live: LiveSnapshot,
        /// The live legs behind `live`, for the union with remote sensors' (see `ingest`).
        live_legs: Vec<::sensor::uplink::LiveLeg>,
        failed: bool,
    },
    /// A remote sensor's batch; `ack` is answered once it is committed.
    Remote {
        legs: Vec<Leg>,
        /// One per leg, in stored form (a version 2 batch); empty when the messages are in
        /// the legs.
        messages: Vec<Option<msgblob::Encoded>>,
        ack: tokio::sync::oneshot::Sender<Result<store::InsertReport, String>>,
    },
}

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

fn append_done(data_dir: &Path, key: &DoneKey) -> std::io::Result<()> {
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

/// The database writer: the only holder of the write handle. Runs until the sensor side
/// hangs up, then brings the channel figures up to date one last time.
///
/// `second`, a PostgreSQL handle: a remote batch that comes while it is idle is written on it
/// by a task of its own, beside whatever the main handle does.
pub async fn writer(
    mut store: store::Store,
    mut second: Option<store::Store>,
    mut rx: mpsc::Receiver<IngestMsg>,
    app: AppState,
    data_dir: PathBuf,
) {
    let mode = app.channel_mode;
    let mut tick = tokio::time::interval(STATS_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut file_failed = false;
    // Remote batches come in continuously: their channel figures are brought up to date
    // every few seconds rather than after each batch.
    let mut remote_tick = tokio::time::interval(REMOTE_STATS_TICK);
    remote_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut remote_dirty = false;
    // The second handle comes back here with what its batch did.
    let (returned_tx, mut returned) = mpsc::channel::<(store::Store, Option<u64>)>(1);
    // A second handle that is not here is out writing a batch.
    let has_second = second.is_some();
    loop {
        tokio::select! {
            Some((handle, inserted)) = returned.recv() => {
                second = Some(handle);
                remote_dirty |= inserted.is_some_and(|n| n > 0);
            }
            msg = rx.recv() => match msg {
                None => break,
                Some(IngestMsg::Legs(legs)) => match store.insert_legs(&legs).await {
                    Ok(r) => count_stored(&app, &r),
                    Err(e) => {
                        file_failed = true;
                        eprintln!("sipmeter serve: cannot store {} legs: {}", legs.len(), chain(&e));
                    }
                },
                Some(IngestMsg::Remote { legs, messages, ack }) => {
                    if let Some(mut handle) = second.take() {
                        let (app, returned_tx) = (app.clone(), returned_tx.clone());
                        tokio::spawn(async move {
                            let r = insert_remote(&mut handle, &legs, &messages, &app).await;
                            let inserted = r.as_ref().ok().map(|r| r.inserted);
                            let _ = ack.send(r);
                            let _ = returned_tx.send((handle, inserted)).await;
                        });
                    } else {
                        let r = insert_remote(&mut store, &legs, &messages, &app).await;
                        remote_dirty |= r.as_ref().is_ok_and(|r| r.inserted > 0);
                        let _ = ack.send(r);
                    }
                }
                Some(IngestMsg::FileDone { key, live, live_legs, failed }) => {
                    app.remote.set_embedded(live_legs);
                    if let Err(e) = store.update_channel_stats(mode).await {
                        eprintln!("sipmeter serve: cannot update the channel figures: {}", chain(&e));
                    }
                    if failed || file_failed {
                        app.metrics.captures_failed.fetch_add(1, Ordering::Relaxed);
                    }
                    // A capture whose legs could not be stored is read again after a restart.
                    if !file_failed && let Err(e) = append_done(&data_dir, &key) {
                        eprintln!("sipmeter serve: cannot record {} as read: {e}", key.name);
                    }
                    file_failed = false;
                    app.metrics.captures_processed.fetch_add(1, Ordering::Relaxed);
                    app.set_live(live);
                    app.invalidate_status();
                    // Recompute now rather than in the next request.
                    app.refresh_in_background();
                }
            },
            _ = remote_tick.tick(), if remote_dirty => {
                remote_dirty = false;
                match store.update_channel_stats(mode).await {
                    Ok(_) => {
                        app.invalidate_status();
                        app.refresh_in_background();
                    }
                    Err(e) => eprintln!("sipmeter serve: cannot update the channel figures: {}", chain(&e)),
                }
            }
            _ = tick.tick() => match store.update_channel_stats(mode).await {
                Ok(u) if u.days > 0 => {
                    // Legs changed behind our back (an import, a deletion): count them again.
                    if let Ok(n) = store.count_legs().await {
                        app.metrics.legs_stored.store(n, Ordering::Relaxed);
                    }
                    app.invalidate_status();
                    app.refresh_in_background();
                }
                Ok(_) => {}
                Err(e) => eprintln!("sipmeter serve: cannot update the channel figures: {}", chain(&e)),
            },
        }
    }
    if has_second
        && second.is_none()
        && let Some((handle, _)) = returned.recv().await
    {
        second = Some(handle);
    }
    if let Some(handle) = second {
        handle.close().await;
    }
    if let Err(e) = store.update_channel_stats(mode).await {
        eprintln!(
            "sipmeter serve: cannot update the channel figures: {}",
            chain(&e)
        );
    }
    store.close().await;
}

/// Writes a remote sensor's batch and counts it in the metrics; the error as one line, for
/// the sensor's answer.
async fn insert_remote(
    store: &mut store::Store,
    legs: &[Leg],
    messages: &[Option<msgblob::Encoded>],
    app: &AppState,
) -> Result<store::InsertReport, String> {
    let r = if messages.is_empty() {
        store.insert_legs(legs).await
    } else {
        store.insert_encoded(legs, messages).await
    };
    if let Ok(r) = &r {
        count_stored(app, r);
    }
    r.map_err(|e| chain(&e))
}

/// A stored batch in the metrics.
fn count_stored(app: &AppState, r: &store::InsertReport) {
    let m = &app.metrics;
    m.legs_ingested.fetch_add(r.inserted, Ordering::Relaxed);
    m.legs_stored.fetch_add(r.inserted, Ordering::Relaxed);
    m.legs_duplicate.fetch_add(r.duplicates, Ordering::Relaxed);
}

/// The error and its causes on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
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
                    eprintln!("sipmeter serve: {e}");
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
        eprintln!("sipmeter serve: {err}");
    }
    let live: Vec<&Leg> = pipeline.tracker().live_legs().collect();
    for l in &live {
        last_ts = last_ts.max(Some(l.end.max(l.start)));
    }
    let live_legs = live.iter().map(|l| crate::ingest::live_leg(l)).collect();
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

//! The database writer: the only holder of the write handle. The embedded sensor's legs
//! ([`super::watcher`]) and remote sensors' batches ([`super::remote`]) all come through it.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use calls::Leg;
use tokio::sync::mpsc;

use super::IngestMsg;
use super::watcher::append_done;
use crate::error::chain;
use crate::state::AppState;

/// How often the writer brings the channel figures up to date on its own (legs stored or
/// deleted by another process, such as `sipmeter import` on the same database).
const STATS_TICK: Duration = Duration::from_secs(30);
/// How often the channel figures follow remote sensors' batches.
const REMOTE_STATS_TICK: Duration = Duration::from_secs(2);

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
                        tracing::error!("cannot store {} legs: {}", legs.len(), chain(&e));
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
                        tracing::error!("cannot update the channel figures: {}", chain(&e));
                    }
                    if failed || file_failed {
                        app.metrics.captures_failed.fetch_add(1, Ordering::Relaxed);
                    }
                    // A capture whose legs could not be stored is read again after a restart.
                    if !file_failed && let Err(e) = append_done(&data_dir, &key) {
                        tracing::error!("cannot record {} as read: {e}", key.name);
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
                    Err(e) => tracing::error!("cannot update the channel figures: {}", chain(&e)),
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
                Err(e) => tracing::error!("cannot update the channel figures: {}", chain(&e)),
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
        tracing::error!("cannot update the channel figures: {}", chain(&e));
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

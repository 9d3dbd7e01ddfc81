//! `sipmeter import` and `--readpcapdir`: legs into the database.
//!
//! Reading captures and writing the database each want a core, so the pipeline runs on the
//! calling thread and a writer thread owns the store; batches travel over a bounded channel
//! (two in flight), which caps memory and lets a slow disk slow the reader down instead of
//! piling up legs.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::mpsc;

use anyhow::{Context, Result, anyhow};
use calls::Leg;

use crate::config::Settings;
use crate::ingest;

/// Legs per database transaction.
const BATCH: usize = 10_000;

#[derive(Default)]
struct Written {
    inserted: u64,
    duplicates: u64,
}

fn writer(
    store: store::Store,
    rt: tokio::runtime::Runtime,
    rx: mpsc::Receiver<Vec<Leg>>,
    mode: store::ActiveMode,
) -> Result<Written> {
    let mut store = store;
    let mut written = Written::default();
    for batch in rx {
        let report = rt
            .block_on(store.insert_legs(&batch))
            .context("cannot store legs")?;
        written.inserted += report.inserted;
        written.duplicates += report.duplicates;
    }
    // The channel figures of the days these legs touched, so reports and the license see
    // them at once.
    rt.block_on(store.update_channel_stats(mode))
        .context("cannot update the channel statistics")?;
    rt.block_on(store.close());
    Ok(written)
}

pub fn import(settings: Settings, paths: &[PathBuf]) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let store = rt
        .block_on(store::Store::open(settings.database.clone()))
        .with_context(|| format!("cannot open the database {}", settings.database.describe()))?;
    let (tx, rx) = mpsc::sync_channel::<Vec<Leg>>(2);
    let mode = settings.channel_mode;
    let handle = std::thread::Builder::new()
        .name("store-writer".into())
        .spawn(move || writer(store, rt, rx, mode))
        .context("cannot start the database writer")?;

    let mut pending: Vec<Leg> = Vec::with_capacity(BATCH);
    // A failed send means the writer stopped; its own error is the one worth reporting.
    let send = |batch: Vec<Leg>| {
        tx.send(batch)
            .map_err(|_| anyhow!("the database writer stopped"))
    };
    let run = ingest::run(settings.pipeline, paths, |legs| {
        pending.extend(legs);
        if pending.len() >= BATCH {
            send(std::mem::replace(&mut pending, Vec::with_capacity(BATCH)))?;
        }
        Ok(())
    })
    .and_then(|summary| {
        if !pending.is_empty() {
            send(std::mem::take(&mut pending))?;
        }
        Ok(summary)
    });
    drop(tx);
    let written = handle
        .join()
        .map_err(|_| anyhow!("the database writer crashed"))?;
    let written = written?;
    let summary = run?;
    eprintln!(
        "sipmeter: {}; stored {} new legs ({} already present) in {}",
        summary.line(),
        written.inserted,
        written.duplicates,
        settings.database.describe()
    );
    if let Some(w) = summary.no_legs_warning() {
        eprintln!("sipmeter: {w}");
    }
    Ok(summary.exit_code())
}

//! Shared state of a running server: the read handle of the store, the clock, the license
//! status cache, sessions, the login throttle, the live-channel snapshot and the metrics.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use calls::Micros;
use channels::ActiveMode;
use license::Status;

use crate::auth::{Sessions, Throttle};
use crate::clock::Clock;
use crate::error::ServerError;
use crate::license_env::{self, LicenseSetup};
use crate::metrics::Metrics;

/// How long a computed license status is reused (by the server's clock). Any known change
/// (a new key, new legs) invalidates it at once; this bounds how late the server notices
/// what it cannot see happen, such as midnight or legs deleted by hand.
pub const STATUS_TTL_US: Micros = 5_000_000;

/// Channels active at the end of the last capture read (see `sensor`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveSnapshot {
    /// The capture time the snapshot is of; `None` before the first capture.
    pub at: Option<Micros>,
    /// Live legs.
    pub calls: u32,
    /// Live legs deduplicated by the channel engine's keys.
    pub channels: u32,
}

struct CachedStatus {
    generation: u64,
    computed_at: Micros,
    status: Arc<Status>,
}

pub struct Inner {
    pub store: store::Store,
    pub clock: Arc<dyn Clock>,
    pub license: LicenseSetup,
    pub channel_mode: ActiveMode,
    pub data_dir: PathBuf,
    pub pcap_dir: Option<PathBuf>,
    pub sessions: Sessions,
    pub throttle: Throttle,
    pub metrics: Metrics,
    /// The hash checked when a login names an unknown user, so that a failed login takes
    /// the same time whether or not the user exists.
    pub dummy_hash: String,
    live: RwLock<LiveSnapshot>,
    generation: AtomicU64,
    status: tokio::sync::Mutex<Option<CachedStatus>>,
}

/// Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: store::Store,
        clock: Arc<dyn Clock>,
        license: LicenseSetup,
        channel_mode: ActiveMode,
        data_dir: PathBuf,
        pcap_dir: Option<PathBuf>,
        dummy_hash: String,
    ) -> AppState {
        AppState(Arc::new(Inner {
            store,
            clock,
            license,
            channel_mode,
            data_dir,
            pcap_dir,
            sessions: Sessions::default(),
            throttle: Throttle::default(),
            metrics: Metrics::default(),
            dummy_hash,
            live: RwLock::new(LiveSnapshot::default()),
            generation: AtomicU64::new(0),
            status: tokio::sync::Mutex::new(None),
        }))
    }

    pub fn now(&self) -> Micros {
        self.clock.now()
    }

    pub fn live(&self) -> LiveSnapshot {
        self.live.read().map(|l| *l).unwrap_or_default()
    }

    pub fn set_live(&self, live: LiveSnapshot) {
        if let Ok(mut l) = self.live.write() {
            *l = live;
        }
    }

    /// Something the license status depends on changed (a key, legs, the limit): the next
    /// request recomputes it.
    pub fn invalidate_status(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// The license status, recomputed when invalidated or older than [`STATUS_TTL_US`]. One
    /// computation at a time: concurrent requests wait for it instead of repeating it.
    pub async fn status(&self) -> Result<Arc<Status>, ServerError> {
        let now = self.now();
        let mut cache = self.status.lock().await;
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some(c) = cache.as_ref()
            && c.generation == generation
            && (now - c.computed_at).abs() < STATUS_TTL_US
        {
            return Ok(c.status.clone());
        }
        let tz = &self.license.tz;
        let today = license::day_of(now, tz);
        let window = license_env::peak_window(today, tz)?;
        let rows = self.store.channel_minutes(window.from, window.to).await?;
        let peaks = license_env::daily_peaks(&rows, tz, &window)?;
        let setup = self.license.clone();
        let st = tokio::task::spawn_blocking(move || setup.status(now, &peaks, true))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??;
        let st = Arc::new(st);
        *cache = Some(CachedStatus {
            generation,
            computed_at: now,
            status: st.clone(),
        });
        Ok(st)
    }
}

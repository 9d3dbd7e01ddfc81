//! Shared state of a running server: the read handle of the store, the clock, the license
//! status cache, sessions, the login throttle, the live-channel snapshot and the metrics.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use calls::Micros;
use channels::ActiveMode;
use license::Status;

use crate::auth::{Sessions, Throttle};
use crate::clock::Clock;
use crate::error::ServerError;
use crate::license::env::{self as license_env, LicenseSetup};
use crate::metrics::Metrics;

/// How long a computed license status is served as fresh (by the server's clock). Any known
/// change (a new key, new legs) invalidates it at once, and so does a new day; this bounds
/// how late the server notices what it cannot see happen, such as legs deleted by hand.
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

#[derive(Clone)]
struct CachedStatus {
    generation: u64,
    computed_at: Micros,
    /// The license files as they were when the status was computed.
    files: FilesStamp,
    status: Arc<Status>,
}

/// Size, modification time and inode of each file the status reads from the data directory
/// (`None`: missing). Another process (`sipmeter license install`, `--set-license-key`, a
/// copied file) changes them without telling us; comparing costs a few `stat` calls per
/// request, so such a change shows on the very next request.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FilesStamp(Vec<Option<(u64, Option<std::time::SystemTime>, u64)>>);

impl FilesStamp {
    fn of(setup: &LicenseSetup) -> FilesStamp {
        let files = [
            setup.license_path.clone(),
            setup.data_dir.join(license_env::LIMIT_FILE_NAME),
            setup.data_dir.join(license_env::SUPERSEDED_FILE_NAME),
        ];
        FilesStamp(
            files
                .iter()
                .map(|p| {
                    std::fs::metadata(p).ok().map(|m| {
                        #[cfg(unix)]
                        let ino = std::os::unix::fs::MetadataExt::ino(&m);
                        #[cfg(not(unix))]
                        let ino = 0;
                        (m.len(), m.modified().ok(), ino)
                    })
                })
                .collect(),
        )
    }
}

pub struct Inner {
    pub store: store::Store,
    pub clock: Arc<dyn Clock>,
    pub license: LicenseSetup,
    pub channel_mode: ActiveMode,
    pub data_dir: PathBuf,
    pub pcap_dir: Option<PathBuf>,
    /// Browsers reach us over HTTPS (our own TLS, or a proxy's): cookies are `Secure` and
    /// every answer carries HSTS.
    pub browser_https: bool,
    pub sessions: Sessions,
    pub throttle: Throttle,
    /// Recent successful HTTP Basic checks (see [`crate::auth::BasicCache`]).
    pub basic_auth: crate::auth::BasicCache,
    pub metrics: Metrics,
    /// The alert engine's settings and its one-evaluation-at-a-time lock.
    pub alerts: crate::alerts::Engine,
    /// The license portal: its client, this installation's ids, the last check-in verdict.
    pub portal: crate::license::portal_client::PortalState,
    /// The hash checked when a login names an unknown user, so that a failed login takes
    /// the same time whether or not the user exists.
    pub dummy_hash: String,
    live: RwLock<LiveSnapshot>,
    /// Remote sensors: the ingest queue and their last heartbeats.
    pub remote: crate::ingest::remote::Remote,
    generation: AtomicU64,
    /// The last status computed; read without waiting.
    status: RwLock<Option<CachedStatus>>,
    /// One computation at a time: concurrent requests wait for it instead of repeating it.
    computing: tokio::sync::Mutex<()>,
    /// A background refresh is running.
    refreshing: AtomicBool,
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
        browser_https: bool,
        alerts: crate::alerts::AlertsConfig,
        portal: crate::license::portal_client::PortalState,
    ) -> AppState {
        AppState(Arc::new(Inner {
            store,
            clock,
            license,
            channel_mode,
            data_dir,
            pcap_dir,
            browser_https,
            sessions: Sessions::default(),
            throttle: Throttle::default(),
            basic_auth: Default::default(),
            metrics: Metrics::default(),
            alerts: crate::alerts::Engine::new(alerts),
            portal,
            dummy_hash,
            live: RwLock::new(LiveSnapshot::default()),
            remote: Default::default(),
            generation: AtomicU64::new(0),
            status: RwLock::new(None),
            computing: tokio::sync::Mutex::new(()),
            refreshing: AtomicBool::new(false),
        }))
    }

    pub fn now(&self) -> Micros {
        self.clock.now()
    }

    /// Live channels now: the embedded sensor's and the remote sensors' (see `ingest`).
    pub fn live(&self) -> LiveSnapshot {
        let embedded = self.live.read().map(|l| *l).unwrap_or_default();
        self.remote.merge(embedded, self.channel_mode)
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

    /// The license status. Reading it costs a scan of two months of minute figures (about
    /// 0.1 s at full load), so it is cached: recomputed before answering when something it
    /// depends on changed (a key, legs: [`AppState::invalidate_status`]) or the day changed,
    /// since those must show at once (a bigger key unlocks on the next request); merely older
    /// than [`STATUS_TTL_US`], it is answered as is while a background task refreshes it, so
    /// no request waits for the periodic refresh.
    pub async fn status(&self) -> Result<Arc<Status>, ServerError> {
        let now = self.now();
        let today = license::day_of(now, &self.license.tz);
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some(c) = self.cached()
            && c.generation == generation
            && c.status.today == today
            && c.files == FilesStamp::of(&self.license)
        {
            if (now - c.computed_at).abs() >= STATUS_TTL_US {
                self.refresh_in_background();
            }
            return Ok(c.status);
        }
        self.compute(Some(generation)).await
    }

    fn cached(&self) -> Option<CachedStatus> {
        self.status.read().ok().and_then(|c| c.clone())
    }

    /// Starts a refresh unless one is running (after new legs, or when the cache aged).
    pub fn refresh_in_background(&self) {
        if self.refreshing.swap(true, Ordering::SeqCst) {
            return;
        }
        let app = self.clone();
        tokio::spawn(async move {
            if let Err(e) = app.compute(None).await {
                tracing::error!("license status: {}", crate::error::chain(&e));
            }
            app.refreshing.store(false, Ordering::SeqCst);
        });
    }

    /// Computes and caches the status. With `wanted`, a status of that generation (or newer)
    /// for today computed while waiting for the lock is taken instead of computing again.
    async fn compute(&self, wanted: Option<u64>) -> Result<Arc<Status>, ServerError> {
        let _one = self.computing.lock().await;
        let now = self.now();
        let tz = &self.license.tz;
        let today = license::day_of(now, tz);
        let files = FilesStamp::of(&self.license);
        if let (Some(w), Some(c)) = (wanted, self.cached())
            && c.generation >= w
            && c.status.today == today
            && c.files == files
        {
            return Ok(c.status);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let window = license_env::peak_window(today, tz)?;
        let rows = self.store.channel_minutes(window.from, window.to).await?;
        let peaks = license_env::daily_peaks(&rows, tz, &window)?;
        let setup = self.license.clone();
        let st = tokio::task::spawn_blocking(move || setup.status(now, &peaks, true))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??;
        let st = Arc::new(st);
        if let Ok(mut c) = self.status.write() {
            *c = Some(CachedStatus {
                generation,
                computed_at: now,
                files,
                status: st.clone(),
            });
        }
        Ok(st)
    }
}

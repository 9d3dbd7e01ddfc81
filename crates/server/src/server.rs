//! Starting and stopping a server: the store handles, the embedded sensor, the HTTP listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use channels::ActiveMode;
use tokio::sync::mpsc;

use crate::alerts::AlertsConfig;
use crate::clock::Clock;
use crate::error::ServerError;
use crate::ingest::{watcher, writer};
use crate::license::env::{self as license_env, LicenseSetup};
use crate::license::portal_client::{self, PortalConfig, PortalState};
use crate::routes::router;
use crate::state::AppState;
use crate::{alerts, auth};

/// Name of the first administrator, created on first start.
pub const FIRST_ADMIN: &str = "admin";

/// Everything a server needs to start.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Captures put here are read by the embedded sensor.
    pub pcap_dir: Option<PathBuf>,
    /// Password of the first admin; generated (and reported in [`Started`]) when `None`.
    pub admin_password: Option<String>,
    pub license: LicenseSetup,
    pub pipeline: ::sensor::PipelineConfig,
    pub channel_mode: ActiveMode,
    /// How often the capture directory is listed.
    pub pcap_poll: Duration,
    /// How long a capture's size must stay unchanged before it is read.
    pub pcap_settle: Duration,
    /// Serve HTTPS with this certificate and key (else plain HTTP).
    pub tls: Option<crate::tls::TlsFiles>,
    /// A proxy in front terminates TLS: the browser speaks HTTPS even though we do not, so
    /// cookies are `Secure` and HSTS is sent as with [`ServerConfig::tls`].
    pub behind_tls_proxy: bool,
}

/// A running server.
pub struct Running {
    pub addr: SocketAddr,
    /// Set when the first admin was created with a generated password (print it once).
    pub generated_admin_password: Option<String>,
    /// Whether the first admin was created by this start (else a given password was not used).
    pub admin_created: bool,
    pub state: AppState,
    shutdown: tokio::sync::oneshot::Sender<()>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    writer: tokio::task::JoinHandle<()>,
    sensor_stop: Arc<AtomicBool>,
    sensor: Option<std::thread::JoinHandle<()>>,
    alerts: tokio::task::JoinHandle<()>,
    portal: tokio::task::JoinHandle<()>,
}

/// Creates the first admin if there is none: whether it was created, and the generated
/// password, if any.
async fn ensure_admin(
    store: &store::Store,
    password: Option<&str>,
    now: calls::Micros,
) -> Result<(bool, Option<String>), ServerError> {
    if store.user_by_name(FIRST_ADMIN).await?.is_some() {
        return Ok((false, None));
    }
    let (pw, generated) = match password {
        Some(p) => (p.to_string(), false),
        None => (auth::random_token()[..20].to_string(), true),
    };
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&pw).map(|h| (h, pw)))
        .await
        .map_err(|e| ServerError::Task(e.to_string()))??;
    let created = store
        .create_user(FIRST_ADMIN, store::Role::Admin, &hash.0, now)
        .await?;
    Ok((created, (created && generated).then_some(hash.1)))
}

impl Running {
    /// Starts everything with the default alert settings (no SMTP relay, evaluation every
    /// minute); the server answers as soon as this returns.
    pub async fn start(
        config: ServerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Running, ServerError> {
        Running::start_with_alerts(config, AlertsConfig::default(), clock).await
    }

    /// Like [`Running::start_full`] with no license portal.
    pub async fn start_with_alerts(
        config: ServerConfig,
        alerts: AlertsConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Running, ServerError> {
        Running::start_full(config, alerts, PortalConfig::default(), clock).await
    }

    /// Like [`Running::start`], with the alert delivery settings (`--smtp`, `--smtp-from`)
    /// and the evaluation interval (tests use a long interval and call
    /// [`crate::alerts::evaluate_once`] themselves), and the license portal (URL, check-in
    /// interval; tests call [`crate::license::portal_client::tick`] themselves).
    pub async fn start_full(
        config: ServerConfig,
        alerts: AlertsConfig,
        portal: PortalConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Running, ServerError> {
        let database = store::Database::Sqlite(config.data_dir.clone());
        Running::start_on(config, database, alerts, portal, clock).await
    }

    /// Like [`Running::start_full`], with the CDRs in `database` (`--database`: PostgreSQL)
    /// rather than SQLite in the data directory, which keeps the license files either way.
    pub async fn start_on(
        config: ServerConfig,
        database: store::Database,
        alerts: AlertsConfig,
        portal: PortalConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Running, ServerError> {
        if let Some(dir) = &config.pcap_dir
            && !dir.is_dir()
        {
            return Err(ServerError::PcapDir(dir.clone()));
        }
        // Two handles, so that a page never waits behind the writer's batch transactions:
        // SQLite's WAL readers and PostgreSQL's snapshots see the last committed state.
        let writer_store = store::Store::open(database.clone()).await?;
        // PostgreSQL runs writers in parallel (SQLite has one): a second handle lets two
        // sensors' batches be written at once.
        let second_writer = match &database {
            store::Database::Postgres(_) => Some(store::Store::open(database.clone()).await?),
            store::Database::Sqlite(_) => None,
        };
        let reader = store::Store::open(database).await?;
        let (admin_created, generated) =
            ensure_admin(&reader, config.admin_password.as_deref(), clock.now()).await?;
        let dummy_hash = tokio::task::spawn_blocking(|| auth::hash_password("not a password"))
            .await
            .map_err(|e| ServerError::Task(e.to_string()))??;
        let state = AppState::new(
            reader,
            clock,
            config.license.clone(),
            config.channel_mode,
            config.data_dir.clone(),
            config.pcap_dir.clone(),
            dummy_hash,
            config.tls.is_some() || config.behind_tls_proxy,
            alerts,
            PortalState::new(
                PortalConfig {
                    // The portal `--set-license-key --portal URL` remembered, unless configured.
                    url: portal
                        .url
                        .or(license_env::stored_portal_url(&config.data_dir)?),
                    ..portal
                },
                license_env::install_id(&config.data_dir)?.0,
            ),
        );

        state.metrics.legs_stored.store(
            state.store.count_legs().await?,
            std::sync::atomic::Ordering::Relaxed,
        );
        let (tx, rx) = mpsc::channel(4);
        state.remote.set_ingest(tx.clone());
        let writer = tokio::spawn(writer::writer(
            writer_store,
            second_writer,
            rx,
            state.clone(),
            config.data_dir.clone(),
        ));
        let sensor_stop = Arc::new(AtomicBool::new(false));
        let sensor = match &config.pcap_dir {
            Some(dir) => {
                let cfg = watcher::WatchConfig {
                    dir: dir.clone(),
                    pipeline: config.pipeline.clone(),
                    mode: config.channel_mode,
                    poll: config.pcap_poll,
                    settle: config.pcap_settle,
                };
                let done = watcher::load_done(&config.data_dir);
                let stop = sensor_stop.clone();
                Some(
                    std::thread::Builder::new()
                        .name("sensor".into())
                        .spawn(move || watcher::watch(cfg, done, tx, stop))
                        .map_err(ServerError::Sensor)?,
                )
            }
            None => {
                drop(tx);
                None
            }
        };

        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| ServerError::Listen {
                addr: config.listen,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| ServerError::Listen {
                addr: config.listen,
                source,
            })?;
        let alerts = tokio::spawn(alerts::run(state.clone()));
        let portal = tokio::spawn(portal_client::run(state.clone()));
        let (shutdown, signal) = tokio::sync::oneshot::channel::<()>();
        let http = crate::tls::serve(listener, config.tls.as_ref(), router(state.clone()), signal)?;
        Ok(Running {
            addr,
            generated_admin_password: generated,
            admin_created,
            state,
            shutdown,
            http,
            writer,
            sensor_stop,
            sensor,
            alerts,
            portal,
        })
    }

    /// Stops taking requests, lets the sensor finish the capture it is reading, stores
    /// everything it handed over, and closes the database.
    pub async fn stop(mut self) -> Result<(), ServerError> {
        let _ = self.shutdown.send(());
        // An evaluation cut short is harmless: a rule's state is written after its delivery,
        // so at worst it is sent again after the restart.
        self.alerts.abort();
        self.portal.abort();
        let http = self
            .http
            .await
            .map_err(|e| ServerError::Task(e.to_string()))?;
        self.sensor_stop.store(true, Ordering::Relaxed);
        self.state.remote.close_ingest();
        if let Some(h) = self.sensor.take() {
            tokio::task::spawn_blocking(move || h.join())
                .await
                .map_err(|e| ServerError::Task(e.to_string()))?
                .map_err(|_| ServerError::Task("the sensor thread panicked".into()))?;
        }
        self.writer
            .await
            .map_err(|e| ServerError::Task(e.to_string()))?;
        http.map_err(|e| ServerError::Task(e.to_string()))
    }
}

//! `sipmeter serve`: the central server (web GUI, JSON API, license enforcement) on the
//! embedded SQLite database, with an embedded sensor reading a capture directory. The server
//! itself lives in the `server` crate; this module turns flags and config into its settings.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::config::{CommonFlags, FileConfig, Settings};
use crate::license_cmd::{self, LicenseFlags};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address and port of the web GUI and API
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Read every capture put into DIR, those already there and new ones, each once
    #[arg(long, value_name = "DIR")]
    pcap_dir: Option<PathBuf>,
    /// Password of the first administrator `admin`, used only when that user is created
    /// (first start); without it a password is generated and printed once
    #[arg(long, env = "SIPMETER_ADMIN_PASSWORD", hide_env_values = true)]
    admin_password: Option<String>,
    /// SMTP relay for e-mail alerts (plain SMTP, no login; the relay delivers onwards)
    /// [config: smtp_relay]
    #[arg(long = "smtp", value_name = "HOST:PORT")]
    smtp: Option<String>,
    /// Sender address of e-mail alerts [config: smtp_from] [default: sipmeter@localhost]
    #[arg(long, value_name = "ADDRESS")]
    smtp_from: Option<String>,
    /// PEM file of CAs trusted for https alert webhooks and SMTP STARTTLS, besides the
    /// system's CA bundle [config: alerts_ca_file]
    #[arg(long = "alerts-ca", value_name = "FILE")]
    alerts_ca_file: Option<PathBuf>,
    /// The vendor's license portal for Get/Update License, the refresh before refresh-by
    /// and the check-ins [config: portal_url]
    #[arg(long = "portal", value_name = "URL")]
    portal_url: Option<String>,
    /// Seconds between check-ins with the portal [config: portal_checkin_s] [default: 600]
    #[arg(long, value_name = "SECONDS")]
    portal_checkin_s: Option<u64>,
    /// PEM file of the CA an https portal's certificate chains to [config: portal_ca_file]
    /// [default: the system's CA bundle]
    #[arg(long = "portal-ca", value_name = "FILE")]
    portal_ca_file: Option<PathBuf>,
    /// PEM certificate (chain) for HTTPS; with --tls-key the server speaks only HTTPS
    /// (remote sensors pin its fingerprint or check it against a CA)
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// A reverse proxy in front terminates TLS: session cookies are Secure and HSTS is sent
    /// [config: behind_tls_proxy]
    #[arg(long)]
    behind_tls_proxy: bool,
    #[command(flatten)]
    license: LicenseFlags,
}

pub fn run(args: ServeArgs, file: &FileConfig, common: &CommonFlags) -> Result<ExitCode> {
    init_logging();
    let settings = Settings::resolve(file, common, true)?;
    let license = license_cmd::license_setup(&args.license, file, common)?;
    let tls_files = args
        .tls_cert
        .clone()
        .zip(args.tls_key.clone())
        .map(|(cert, key)| server::tls::TlsFiles { cert, key });
    let config = server::ServerConfig {
        listen: args.listen,
        data_dir: settings.data_dir.clone(),
        pcap_dir: args.pcap_dir.clone(),
        admin_password: args.admin_password.clone().filter(|p| !p.is_empty()),
        license,
        pipeline: settings.pipeline,
        channel_mode: settings.channel_mode,
        pcap_poll: Duration::from_secs(1),
        pcap_settle: Duration::from_secs(2),
        tls: tls_files.clone(),
        behind_tls_proxy: args.behind_tls_proxy || file.behind_tls_proxy.unwrap_or(false),
    };
    let mut alerts = server::AlertsConfig {
        smtp_relay: args.smtp.clone().or_else(|| file.smtp_relay.clone()),
        ca_file: args
            .alerts_ca_file
            .clone()
            .or_else(|| file.alerts_ca_file.clone()),
        ..Default::default()
    };
    if let Some(ca) = &alerts.ca_file {
        server::trust_anchors(Some(ca))
            .map_err(anyhow::Error::msg)
            .context("--alerts-ca / alerts_ca_file")?;
    }
    if let Some(from) = args.smtp_from.clone().or_else(|| file.smtp_from.clone()) {
        anyhow::ensure!(
            server::valid_email(&from),
            "--smtp-from / smtp_from {from:?} is not an e-mail address"
        );
        alerts.smtp_from = from;
    }
    let mut portal = server::portal_client::PortalConfig {
        url: args.portal_url.clone().or_else(|| file.portal_url.clone()),
        ca_file: args
            .portal_ca_file
            .clone()
            .or_else(|| file.portal_ca_file.clone()),
        ..Default::default()
    };
    if let Some(s) = args.portal_checkin_s.or(file.portal_checkin_s) {
        anyhow::ensure!(
            (1..=86_400).contains(&s),
            "--portal-checkin-s / portal_checkin_s must be between 1 and 86400 seconds, not {s}"
        );
        portal.checkin_interval = Duration::from_secs(s);
    }
    if let Some(url) = &portal.url {
        server::portal_client::PortalClient::with_ca(url, portal.ca_file.as_deref())
            .context("--portal / portal_url")?;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let running =
            server::Running::start_on(
                config,
                settings.database.clone(),
                alerts,
                portal,
                Arc::new(server::SystemClock),
            )
            .await
            .context("cannot start the server")?;
        if let Some(pw) = &running.generated_admin_password {
            eprintln!(
                "sipmeter: created the administrator `{}` with the password {pw}\n\
                 sipmeter: it is shown only this once; log in and keep it safe",
                server::FIRST_ADMIN
            );
        }
        if !running.admin_created && args.admin_password.is_some() {
            eprintln!(
                "sipmeter: the user `{}` already exists; --admin-password / SIPMETER_ADMIN_PASSWORD was not used",
                server::FIRST_ADMIN
            );
        }
        eprintln!(
            "sipmeter: serving {}://{}/ (data in {}{})",
            if args.tls_cert.is_some() { "https" } else { "http" },
            running.addr,
            settings.data_dir.display(),
            args.pcap_dir
                .as_ref()
                .map(|d| format!(", reading captures from {}", d.display()))
                .unwrap_or_default()
        );
        if let Some(tls) = &tls_files {
            eprintln!(
                "sipmeter: TLS certificate fingerprint {} (for sipmeter sensor --server-fingerprint)",
                server::tls::fingerprint(tls)?
            );
        }
        shutdown_signal().await;
        eprintln!("sipmeter: stopping");
        running.stop().await.context("stopping the server")?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Ctrl-C or SIGTERM (systemd, docker stop).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

/// The server's log: its `tracing` events at INFO and above as plain lines on stderr,
/// `sipmeter serve: <message>`, as an operator reads them. Events of the libraries underneath
/// (database, HTTP) are left out. Installed once; a second call keeps the first.
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{Layer, filter::Targets, fmt};

    let lines = fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(ServeLine)
        .with_filter(Targets::new().with_target("server", tracing::Level::INFO));
    let _ = tracing_subscriber::registry().with(lines).try_init();
}

/// One event as one line: `sipmeter serve: ` and the message with any other fields.
struct ServeLine;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for ServeLine
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(w, "sipmeter serve: ")?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

//! Alerts: the engine that evaluates the rules of the store on the server's clock and
//! delivers them (webhook = HTTP POST of JSON over http or https, e-mail = SMTP to a relay,
//! upgraded with STARTTLS when the relay offers it), and the Alerts page (rules with their forms, the log of what was sent and what was suppressed).
//!
//! Rules are edge-triggered: a rule alerts when its condition starts to hold, again after its
//! re-notify interval while it keeps holding, and not at all while it stays quiet, so a busy
//! afternoon is one message instead of one a minute. A license rule alerts when the license
//! situation (state and date phase) changes, and at least daily during lockdown (SPEC §3:
//! admins are alerted daily). When the license is locked nothing is sent, and every would-be
//! delivery is logged as "suppressed: license locked" (SPEC §3). A delivery that fails is
//! logged with its error; nothing here may end the task, so every error becomes a log line.
//!
//! [`engine`] evaluates and decides, [`delivery`] sends (webhook, SMTP), [`page`] is the Alerts
//! page and its forms.

pub mod delivery;
pub mod engine;
pub mod page;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_rustls::rustls;

pub use self::delivery::{trust_anchors, valid_email};
pub use self::engine::{evaluate_once, run};

/// How alerts are delivered and how often rules are evaluated.
#[derive(Debug, Clone)]
pub struct AlertsConfig {
    /// The SMTP relay `HOST:PORT` e-mail alerts go to; without one they fail with a clear
    /// error in the log rather than vanish.
    pub smtp_relay: Option<String>,
    /// The envelope and header sender of e-mail alerts.
    pub smtp_from: String,
    /// How often the background task evaluates the rules (real time; the rules themselves
    /// look at the server's clock).
    pub interval: Duration,
    /// Bound on one delivery (connect + send), so a dead receiver cannot stall the others.
    pub timeout: Duration,
    /// PEM file of CAs trusted for https webhooks and SMTP STARTTLS besides the system's CA
    /// bundle (a company CA that signs internal receivers).
    pub ca_file: Option<PathBuf>,
}

impl Default for AlertsConfig {
    fn default() -> AlertsConfig {
        AlertsConfig {
            smtp_relay: None,
            smtp_from: "sipmeter@localhost".into(),
            interval: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
            ca_file: None,
        }
    }
}

/// The engine's part of the server state.
pub struct Engine {
    pub config: AlertsConfig,
    http: reqwest::Client,
    /// The TLS client settings for https webhooks (already in `http`) and SMTP STARTTLS; the
    /// error (an unreadable CA file, no CA at all) is what every TLS delivery then reports.
    tls: Result<Arc<rustls::ClientConfig>, String>,
    /// One evaluation at a time: the background task and a direct call must not both see a
    /// rule as newly firing and send it twice.
    running: tokio::sync::Mutex<()>,
}

impl Engine {
    /// The engine; a CA problem does not stop the server (plain http webhooks and plain SMTP
    /// still work) but fails every TLS delivery with the reason, in the alert log.
    /// `sipmeter serve` checks [`trust_anchors`] first, so a bad CA file is refused at start.
    pub fn new(config: AlertsConfig) -> Engine {
        let roots = trust_anchors(config.ca_file.as_deref());
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("sipmeter/", env!("CARGO_PKG_VERSION")));
        for der in roots.iter().flatten() {
            if let Ok(c) = reqwest::Certificate::from_der(der) {
                builder = builder.add_root_certificate(c);
            }
        }
        let http = builder.build().unwrap_or_default();
        let tls = roots.and_then(|roots| {
            let mut store = rustls::RootCertStore::empty();
            store.add_parsable_certificates(roots);
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| Arc::new(b.with_root_certificates(store).with_no_client_auth()))
                .map_err(|e| format!("TLS setup: {e}"))
        });
        Engine {
            config,
            http,
            tls,
            running: tokio::sync::Mutex::new(()),
        }
    }
}

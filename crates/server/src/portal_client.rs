//! The central server's side of the vendor portal: a client for its API (license files,
//! public keys, check-ins), and what a running server does with it: Get/Update License,
//! the refresh before `refresh_by`, and the periodic check-ins whose verdict every page shows.
//!
//! The portal is the credential holder's word, not ours: a file fetched from it is verified
//! with the keyring like an uploaded one before it replaces anything, and its keys are trusted
//! only once an operator pinned them (`sipmeter license trust-portal`), never on the fly.

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;

use calls::Micros;
use serde::{Deserialize, Serialize};

use crate::license_env::{self, EnvError, LicenseSetup};
use crate::state::AppState;

/// How often a server checks in, by default (the portal's live window is three of these).
pub const DEFAULT_CHECKIN_INTERVAL: Duration = Duration::from_secs(600);
/// A fresh file is fetched once `refresh_by` is this close (or passed).
pub const REFRESH_AHEAD_US: Micros = 24 * 3_600_000_000;
/// Whole-request timeout: the portal answers from its own database, so anything slower is a
/// portal (or network) in trouble and the operator should hear it, not wait.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a portal call failed; every message names the portal's URL, since "which portal?" is
/// the first question when a server has been pointed at the wrong one.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("portal URL {url:?} is not usable: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("cannot reach the license portal at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The portal's own refusal: its stable code and its sentence.
    #[error("the license portal at {url} refused: {message} [{code}]")]
    Refused {
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    #[error("the license portal at {url} gave an answer this server cannot read: {reason}")]
    BadAnswer { url: String, reason: String },
}

impl PortalError {
    /// The portal's error code (`unknown_token`, …), when the portal answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            PortalError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// `POST /api/v1/license`: by hardware id or by domain, never both.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LicenseRequest {
    pub token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hwid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct LicenseAnswer {
    pub license: String,
    pub license_id: String,
    pub refresh_by: String,
}

/// One key of `GET /api/v1/keys`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct PortalKey {
    pub key_id: String,
    pub public_key: String,
    pub created_at: String,
    pub active: bool,
}

#[derive(Debug, Deserialize)]
struct KeysAnswer {
    keys: Vec<PortalKey>,
}

/// `POST /api/v1/checkin`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Checkin {
    pub license_id: String,
    pub hwid: String,
    pub install_id: String,
    pub boot_id: String,
    pub version: String,
}

/// The portal's concurrent-use verdict.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Verdict {
    pub concurrent: bool,
    pub systems: u32,
    pub allowed: u32,
    pub message: Option<String>,
}

impl Verdict {
    /// The banner text when flagged: the portal's sentence, else ours with the same words.
    pub fn banner(&self) -> Option<String> {
        self.concurrent.then(|| {
            self.message
                .clone()
                .filter(|m| !m.trim().is_empty())
                .unwrap_or_else(|| format!("license used concurrently by {} systems", self.systems))
        })
    }
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
}

/// A client of one portal.
#[derive(Debug, Clone)]
pub struct PortalClient {
    base: String,
    http: reqwest::Client,
}

impl PortalClient {
    /// A client for the portal at `url` (`http://` or `https://host:port`, an optional path
    /// prefix), trusting the system's CA bundle for https.
    pub fn new(url: &str) -> Result<PortalClient, PortalError> {
        PortalClient::with_ca(url, None)
    }

    /// Like [`PortalClient::new`]; an https portal's certificate must chain to a certificate
    /// of the PEM file `ca_file` when given (a vendor's private CA), else to the system's CA
    /// bundle (`SSL_CERT_FILE`, else the usual bundle locations).
    pub fn with_ca(url: &str, ca_file: Option<&Path>) -> Result<PortalClient, PortalError> {
        let bad = |reason: &str| PortalError::BadUrl {
            url: url.to_string(),
            reason: reason.to_string(),
        };
        let trimmed = url.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(trimmed).map_err(|e| bad(&e.to_string()))?;
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("sipmeter/", env!("CARGO_PKG_VERSION")));
        match parsed.scheme() {
            "http" => {}
            "https" => {
                let bundle = match ca_file {
                    Some(p) => p.to_path_buf(),
                    None => system_ca_bundle().ok_or_else(|| {
                        bad("no CA bundle found for https; set portal_ca_file to the PEM file of the portal's CA")
                    })?,
                };
                let pem = std::fs::read(&bundle)
                    .map_err(|e| bad(&format!("cannot read CA file {}: {e}", bundle.display())))?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
                    bad(&format!(
                        "CA file {} is not PEM certificates: {e}",
                        bundle.display()
                    ))
                })?;
                if certs.is_empty() {
                    return Err(bad(&format!(
                        "CA file {} holds no certificate",
                        bundle.display()
                    )));
                }
                builder = builder.https_only(true);
                for c in certs {
                    builder = builder.add_root_certificate(c);
                }
            }
            other => return Err(bad(&format!("scheme {other}: is neither http: nor https:"))),
        }
        let http = builder.build().map_err(|e| bad(&e.to_string()))?;
        Ok(PortalClient {
            base: trimmed.to_string(),
            http,
        })
    }

    pub fn url(&self) -> &str {
        &self.base
    }

    /// Every public key the portal ever signed with, the active one first.
    pub async fn keys(&self) -> Result<Vec<PortalKey>, PortalError> {
        let r = self.http.get(format!("{}/api/v1/keys", self.base)).send();
        let a: KeysAnswer = self.answer(r).await?;
        Ok(a.keys)
    }

    /// The license file for a token and this server's hardware id or domain.
    pub async fn license(&self, req: &LicenseRequest) -> Result<LicenseAnswer, PortalError> {
        let r = self
            .http
            .post(format!("{}/api/v1/license", self.base))
            .json(req)
            .send();
        self.answer(r).await
    }

    pub async fn checkin(&self, c: &Checkin) -> Result<Verdict, PortalError> {
        let r = self
            .http
            .post(format!("{}/api/v1/checkin", self.base))
            .json(c)
            .send();
        self.answer(r).await
    }

    async fn answer<T: serde::de::DeserializeOwned>(
        &self,
        sent: impl std::future::Future<Output = reqwest::Result<reqwest::Response>>,
    ) -> Result<T, PortalError> {
        let url = self.base.clone();
        let r = sent.await.map_err(|e| PortalError::Unreachable {
            url: url.clone(),
            reason: crate::sensor::chain(&e),
        })?;
        let status = r.status();
        let body = r.bytes().await.map_err(|e| PortalError::Unreachable {
            url: url.clone(),
            reason: crate::sensor::chain(&e),
        })?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&body) {
                Ok(e) => PortalError::Refused {
                    url,
                    status: status.as_u16(),
                    code: e.error,
                    message: e.message,
                },
                Err(_) => PortalError::BadAnswer {
                    url,
                    reason: format!("HTTP {status} without an error body"),
                },
            });
        }
        serde_json::from_slice(&body).map_err(|e| PortalError::BadAnswer {
            url,
            reason: format!("HTTP {status}: {e}"),
        })
    }
}

/// The system's CA bundle: `SSL_CERT_FILE`, else the first of the usual locations present.
pub(crate) fn system_ca_bundle() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SSL_CERT_FILE") {
        return Some(PathBuf::from(p));
    }
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// The request this server makes for `token`: by its domain when one is configured (a
/// domain-bound license), else by its hardware id.
pub fn license_request(setup: &LicenseSetup, token: &str, install_id: &str) -> LicenseRequest {
    LicenseRequest {
        token: token.to_string(),
        hwid: setup.domain.is_none().then(|| setup.hwid.hwid.to_string()),
        domain: setup.domain.clone(),
        install_id: Some(install_id.to_string()),
    }
}

/// Why Get/Update License installed nothing.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(
        "no license portal is configured (config key portal_url or --portal URL); download the key file from the portal and install it instead"
    )]
    NoPortal,
    #[error("no license token is stored; save the token XXXX-XXXX-XXXX-XXXX first")]
    NoToken,
    #[error("{0}")]
    Portal(#[from] PortalError),
    /// The portal's file did not verify here; the installed file is unchanged.
    #[error("the license portal at {url} sent a file this server does not accept: {source}")]
    Rejected {
        url: String,
        #[source]
        source: license::VerifyError,
    },
    #[error("{0}")]
    Env(#[from] EnvError),
}

/// Fetches the license for `token`, verifies it for this installation at `now`, and only
/// then installs it (atomically, the previous file kept as `.old`), so a bad answer never
/// replaces a good file. Returns what was installed.
pub async fn fetch_and_install(
    client: &PortalClient,
    setup: &LicenseSetup,
    token: &str,
    install_id: &str,
    now: Micros,
) -> Result<license::Verified, FetchError> {
    let answer = client
        .license(&license_request(setup, token, install_id))
        .await?;
    let name = license_env::display_name(&setup.license_path);
    let text = license::license_text(answer.license.as_bytes(), &name)
        .map_err(|source| FetchError::Rejected {
            url: client.url().to_string(),
            source,
        })?
        .to_string();
    // Trust on first use, once: with no portal keys pinned yet, the portal's key list is
    // offered for this one verification and pinned only if the file verifies with it.
    // Afterwards keys change only by `sipmeter license trust-portal --update`.
    let pin_path = setup.data_dir.join(license_env::PINNED_KEYS_FILE_NAME);
    let offered = if pin_path.exists() {
        Vec::new()
    } else {
        parse_keys(client, &client.keys().await?)?
    };
    let verified =
        setup
            .verify_with(&text, now, &offered)
            .map_err(|source| FetchError::Rejected {
                url: client.url().to_string(),
                source,
            })?;
    if !offered.is_empty() {
        license_env::pin_keys(&setup.data_dir, &offered)?;
    }
    setup.install(&text)?;
    Ok(verified)
}

/// The portal's keys as public keys; one that does not parse makes the whole answer bad.
pub fn parse_keys(
    client: &PortalClient,
    keys: &[PortalKey],
) -> Result<Vec<license::PublicKey>, PortalError> {
    keys.iter()
        .map(|k| {
            let key = license::PublicKey::from_armored(&k.public_key).map_err(|e| {
                PortalError::BadAnswer {
                    url: client.url().to_string(),
                    reason: format!("key {}: {e}", k.key_id),
                }
            })?;
            if key.id().to_string() != k.key_id.to_ascii_lowercase() {
                return Err(PortalError::BadAnswer {
                    url: client.url().to_string(),
                    reason: format!("key {} has the key id {}", k.key_id, key.id()),
                });
            }
            Ok(key)
        })
        .collect()
}

/// How a running server talks to the portal.
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// `None`: no portal (Get License explains; no refresh, no check-ins).
    pub url: Option<String>,
    /// Between check-ins, and between looks at `refresh_by`.
    pub checkin_interval: Duration,
    /// PEM file of the CA an https portal's certificate chains to (default: system bundle).
    pub ca_file: Option<PathBuf>,
    /// Whether the server refreshes and checks in by itself; tests that drive [`tick`] on a
    /// fake clock turn it off, so that no background round races theirs.
    pub background: bool,
}

impl Default for PortalConfig {
    fn default() -> PortalConfig {
        PortalConfig {
            url: None,
            checkin_interval: DEFAULT_CHECKIN_INTERVAL,
            ca_file: None,
            background: true,
        }
    }
}

/// The outcome of the last background attempt, for Settings › License.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub at: Micros,
    pub ok: bool,
    pub text: String,
}

/// The server's portal state: who we are, and what the portal last said.
#[derive(Debug)]
pub struct PortalState {
    pub config: PortalConfig,
    /// A client when `config.url` is usable; else the reason it is not.
    pub client: Result<PortalClient, String>,
    pub install_id: String,
    /// New with every process start: a restart is a "reboot" to the portal.
    pub boot_id: String,
    verdict: RwLock<Option<(Micros, Verdict)>>,
    last_checkin: RwLock<Option<Attempt>>,
    last_refresh: RwLock<Option<Attempt>>,
}

impl PortalState {
    pub fn new(config: PortalConfig, install_id: String) -> PortalState {
        let client = match &config.url {
            None => Err(FetchError::NoPortal.to_string()),
            Some(u) => {
                PortalClient::with_ca(u, config.ca_file.as_deref()).map_err(|e| e.to_string())
            }
        };
        PortalState {
            config,
            client,
            install_id,
            boot_id: license_env::new_uuid(),
            verdict: RwLock::new(None),
            last_checkin: RwLock::new(None),
            last_refresh: RwLock::new(None),
        }
    }

    /// The last check-in verdict and when it came.
    pub fn verdict(&self) -> Option<(Micros, Verdict)> {
        self.verdict.read().ok().and_then(|v| v.clone())
    }

    /// The concurrent-use banner every page shows while the last verdict flags it. A verdict
    /// older than the portal's live window (three check-in intervals) is not shown: the
    /// portal itself would no longer count the systems it was about.
    pub fn banner(&self, now: Micros) -> Option<String> {
        let window = i64::try_from(self.config.checkin_interval.as_micros())
            .unwrap_or(i64::MAX)
            .saturating_mul(3);
        self.verdict()
            .filter(|(at, _)| now.saturating_sub(*at) <= window)
            .and_then(|(_, v)| v.banner())
    }

    pub fn last_checkin(&self) -> Option<Attempt> {
        self.last_checkin.read().ok().and_then(|a| a.clone())
    }

    pub fn last_refresh(&self) -> Option<Attempt> {
        self.last_refresh.read().ok().and_then(|a| a.clone())
    }

    fn record(slot: &RwLock<Option<Attempt>>, at: Micros, ok: bool, text: String) {
        if let Ok(mut s) = slot.write() {
            *s = Some(Attempt { at, ok, text });
        }
    }
}

/// Get/Update License for a running server: the stored token, this server's binding, the
/// configured portal; on success the status is recomputed at once (no restart).
pub async fn get_license(app: &AppState) -> Result<license::Verified, FetchError> {
    let client = app
        .portal
        .client
        .as_ref()
        .map_err(|_| match &app.portal.config.url {
            None => FetchError::NoPortal,
            Some(u) => FetchError::Portal(
                PortalClient::with_ca(u, app.portal.config.ca_file.as_deref())
                    .err()
                    .unwrap_or_else(|| PortalError::BadUrl {
                        url: u.clone(),
                        reason: "unusable".into(),
                    }),
            ),
        })?;
    let token = license_env::stored_token(&app.data_dir, None)?.ok_or(FetchError::NoToken)?;
    let v = fetch_and_install(
        client,
        &app.license,
        &token.to_string(),
        &app.portal.install_id,
        app.now(),
    )
    .await?;
    app.invalidate_status();
    Ok(v)
}

/// Get/Update License as Settings › License reports it: the HTTP status of the page, the
/// sentence (new terms, or why nothing was installed) and whether it worked.
pub async fn get_license_message(app: &AppState) -> (axum::http::StatusCode, String, bool) {
    use axum::http::StatusCode;
    match get_license(app).await {
        Ok(v) => {
            let t = &v.terms;
            let msg = format!(
                "Get/Update License: license {} installed from the portal: {} channels, {}, formal end {}, grace end {}, access until {}, refresh by {}. It is in force now.",
                t.license_id,
                t.channels,
                t.binding,
                t.formal_end,
                t.grace_end,
                t.access_end(),
                t.refresh_by
            );
            PortalState::record(&app.portal.last_refresh, app.now(), true, msg.clone());
            (StatusCode::OK, msg, true)
        }
        Err(e) => {
            let code = match &e {
                FetchError::NoPortal | FetchError::NoToken => StatusCode::CONFLICT,
                FetchError::Portal(PortalError::Refused { .. }) | FetchError::Rejected { .. } => {
                    StatusCode::BAD_GATEWAY
                }
                FetchError::Portal(PortalError::BadUrl { .. }) => StatusCode::CONFLICT,
                FetchError::Portal(_) => StatusCode::BAD_GATEWAY,
                FetchError::Env(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let msg = format!(
                "Get/Update License: not installed; the license file is unchanged. {}",
                crate::sensor::chain(&e)
            );
            (code, msg, false)
        }
    }
}

/// One round of the background work: refresh the file when `refresh_by` is within
/// [`REFRESH_AHEAD_US`] of the server's clock, then check in. Failures are logged and kept
/// for Settings › License; they never lock anything.
pub async fn tick(app: &AppState) {
    let Ok(client) = app.portal.client.as_ref() else {
        return;
    };
    let Ok(status) = app.status().await else {
        return;
    };
    let Some(terms) = status.license.as_ref() else {
        return;
    };
    let now = app.now();
    if terms.refresh_by.as_microsecond() - now <= REFRESH_AHEAD_US {
        let (ok, text) = match get_license(app).await {
            Ok(v) => (
                true,
                format!(
                    "refreshed license {}: {} channels, formal end {}, refresh by {}",
                    v.terms.license_id, v.terms.channels, v.terms.formal_end, v.terms.refresh_by
                ),
            ),
            Err(e) => {
                let text = format!("license refresh failed: {}", crate::sensor::chain(&e));
                eprintln!("sipmeter serve: {text}");
                (false, text)
            }
        };
        PortalState::record(&app.portal.last_refresh, now, ok, text);
    }
    let status = match app.status().await {
        Ok(s) => s,
        Err(_) => status,
    };
    let Some(terms) = status.license.as_ref() else {
        return;
    };
    let c = Checkin {
        license_id: terms.license_id.clone(),
        hwid: status.hwid.hwid.to_string(),
        install_id: app.portal.install_id.clone(),
        boot_id: app.portal.boot_id.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    match client.checkin(&c).await {
        Ok(v) => {
            let text = format!(
                "{} system(s) running this license, {} allowed",
                v.systems, v.allowed
            );
            if let Ok(mut slot) = app.portal.verdict.write() {
                *slot = Some((now, v));
            }
            PortalState::record(&app.portal.last_checkin, now, true, text);
        }
        Err(e) => {
            let text = format!("check-in failed: {e}");
            eprintln!("sipmeter serve: {text}");
            PortalState::record(&app.portal.last_checkin, now, false, text);
        }
    }
}

/// The background task: a [`tick`] at once and every check-in interval, until aborted.
pub async fn run(app: AppState) {
    if app.portal.client.is_err() || !app.portal.config.background {
        return;
    }
    let mut every = tokio::time::interval(app.portal.config.checkin_interval);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        tick(&app).await;
    }
}

/// What Settings › License shows about the portal.
#[derive(Debug, Clone)]
pub struct PortalInfo {
    /// The configured URL, or why there is none / it is unusable.
    pub url: String,
    pub configured: bool,
    pub install_id: String,
    pub boot_id: String,
    pub last_refresh: Option<Attempt>,
    pub last_checkin: Option<Attempt>,
    /// The last verdict in words.
    pub verdict: Option<String>,
}

impl PortalInfo {
    pub fn of(app: &AppState) -> PortalInfo {
        let p = &app.portal;
        PortalInfo {
            url: match (&p.config.url, &p.client) {
                (Some(_), Ok(c)) => c.url().to_string(),
                (Some(u), Err(e)) => format!("{u} ({e})"),
                (None, _) => "not configured (config key portal_url, or serve --portal URL)".into(),
            },
            configured: p.client.is_ok(),
            install_id: p.install_id.clone(),
            boot_id: p.boot_id.clone(),
            last_refresh: p.last_refresh(),
            last_checkin: p.last_checkin(),
            verdict: p.verdict().map(|(at, v)| {
                let when = license::timestamp(at).map_or_else(String::new, |t| format!(" ({t})"));
                match v.banner() {
                    Some(b) => format!("{b}; {} allowed{when}", v.allowed),
                    None => format!(
                        "no concurrent use: {} system(s), {} allowed{when}",
                        v.systems, v.allowed
                    ),
                }
            }),
        }
    }
}

impl Attempt {
    /// `time: text`, for the page.
    pub fn line(&self) -> String {
        let when = license::timestamp(self.at).map_or_else(String::new, |t| t.to_string());
        format!("{when}: {}", self.text)
    }
}

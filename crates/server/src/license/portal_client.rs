//! The central server's side of the vendor portal: a client for its API (license files,
//! public keys, check-ins), and what a running server does with it: Get/Update License,
//! the refresh before `refresh_by`, and the periodic check-ins whose verdict every page shows.
//!
//! The portal is the credential holder's word, not ours: a file fetched from it is verified
//! with the compiled-in roots like an uploaded one before it replaces anything; nothing the
//! portal says adds trust. Get License registers this installation's check-in key
//! ([`license_env::install_key`]); check-ins are signed with it, so knowing a license id is
//! not enough to speak for a server. The portal's answer `superseded` (the license was
//! re-bound elsewhere) starts the countdown to the lock ([`license::MOVED_LICENSE_DAYS`]).

use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::Duration;

use calls::Micros;
use serde::{Deserialize, Serialize};

use super::env::{self as license_env, EnvError, LicenseSetup};
use crate::error::chain;
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
    /// This installation's check-in public key (armored), registered for the license.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub install_key: Option<String>,
    /// An automatic refresh, not an operator's Get License: the portal answers `superseded`
    /// instead of moving the license back here.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub refresh: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct LicenseAnswer {
    pub license: String,
    pub license_id: String,
    #[serde(default)]
    pub refresh_by: Option<String>,
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

/// What a check-in says; signed as its canonical JSON ([`license::CHECKIN_CONTEXT`]).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Checkin {
    pub license_id: String,
    pub hwid: String,
    /// The domain of a domain-bound license file, so the portal can tell a moved one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub install_id: String,
    pub boot_id: String,
    pub version: String,
    /// When it was made (RFC 3339): the portal refuses stale ones, so a recorded check-in
    /// cannot be replayed for long.
    pub at: String,
}

/// `POST /api/v1/checkin`: the check-in and the installation's signature over its JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignedCheckin {
    /// The check-in as JSON text, exactly the signed bytes.
    pub checkin: String,
    /// Base64 of the Ed25519 signature.
    pub signature: String,
}

impl SignedCheckin {
    pub fn sign(c: &Checkin, key: &license::SigningKey) -> SignedCheckin {
        use base64::Engine;
        let checkin = serde_json::to_string(c).unwrap_or_default();
        let sig = key.sign_in_context(license::CHECKIN_CONTEXT, checkin.as_bytes());
        SignedCheckin {
            checkin,
            signature: base64::engine::general_purpose::STANDARD.encode(sig),
        }
    }
}

/// The portal's concurrent-use verdict.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Verdict {
    pub concurrent: bool,
    pub systems: u32,
    pub allowed: u32,
    pub message: Option<String>,
    /// The license was re-bound to another system: this copy stops after the countdown.
    #[serde(default)]
    pub superseded: bool,
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

    pub async fn checkin(&self, c: &SignedCheckin) -> Result<Verdict, PortalError> {
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
            reason: chain(&e),
        })?;
        let status = r.status();
        let body = r.bytes().await.map_err(|e| PortalError::Unreachable {
            url: url.clone(),
            reason: chain(&e),
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
/// domain-bound license), else by its hardware id; with this installation's check-in key.
pub fn license_request(
    setup: &LicenseSetup,
    token: &str,
    install_id: &str,
    install_key: &license::PublicKey,
    refresh: bool,
) -> LicenseRequest {
    LicenseRequest {
        token: token.to_string(),
        hwid: setup.domain.is_none().then(|| setup.hwid.hwid.to_string()),
        domain: setup.domain.clone(),
        install_id: Some(install_id.to_string()),
        install_key: Some(install_key.to_armored()),
        refresh,
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

/// Fetches the license for `token`, verifies it for this installation at `now` with the
/// compiled-in roots, and only then installs it (atomically, the previous file kept as
/// `.old`), so a bad answer never replaces a good file. `refresh`: an automatic refresh (the
/// portal does not move the license back here for one). Returns what was installed.
pub async fn fetch_and_install(
    client: &PortalClient,
    setup: &LicenseSetup,
    token: &str,
    refresh: bool,
    now: Micros,
) -> Result<license::Verified, FetchError> {
    let (install_id, _) = license_env::install_id(&setup.data_dir)?;
    let install_key = license_env::install_key(&setup.data_dir)?.public();
    let request = license_request(setup, token, &install_id, &install_key, refresh);
    let answer = client.license(&request).await?;
    let name = license_env::display_name(&setup.license_path);
    let rejected = |source| FetchError::Rejected {
        url: client.url().to_string(),
        source,
    };
    let text = license::license_text(answer.license.as_bytes(), &name)
        .map_err(rejected)?
        .to_string();
    let verified = setup.verify(&text, now).map_err(rejected)?;
    setup.install(&text, &verified)?;
    Ok(verified)
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
/// configured portal; on success the status is recomputed at once (no restart). `refresh`:
/// the server's own refresh rather than an operator's request.
pub async fn get_license(app: &AppState, refresh: bool) -> Result<license::Verified, FetchError> {
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
    let v = fetch_and_install(client, &app.license, &token.to_string(), refresh, app.now()).await;
    if let Err(FetchError::Portal(e)) = &v
        && e.code() == Some("superseded")
        && let Ok(st) = app.status().await
        && let Some(t) = &st.license
    {
        license_env::record_superseded(&app.data_dir, &t.license_id, app.now())?;
    }
    app.invalidate_status();
    v
}

/// Get/Update License as Settings › License reports it: the HTTP status of the page, the
/// sentence (new terms, or why nothing was installed) and whether it worked.
pub async fn get_license_message(app: &AppState) -> (axum::http::StatusCode, String, bool) {
    use axum::http::StatusCode;
    match get_license(app, false).await {
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
                refresh_by_text(t)
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
                chain(&e)
            );
            (code, msg, false)
        }
    }
}

/// `refresh_by` for people; offline files have none.
fn refresh_by_text(t: &license::LicenseTerms) -> String {
    t.refresh_by
        .map_or_else(|| "never (offline file)".to_string(), |r| r.to_string())
}

/// One round of the background work: refresh the file when `refresh_by` is within
/// [`REFRESH_AHEAD_US`] of the server's clock, then check in. Failures are logged and kept
/// for Settings › License; only the portal's `superseded` starts a countdown to a lock.
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
    if terms
        .refresh_by
        .is_some_and(|r| r.as_microsecond() - now <= REFRESH_AHEAD_US)
    {
        refresh(app, now).await;
    }
    let status = match app.status().await {
        Ok(s) => s,
        Err(_) => status,
    };
    let Some(terms) = status.license.as_ref() else {
        return;
    };
    let key = match license_env::install_key(&app.data_dir) {
        Ok(k) => k,
        Err(e) => {
            let text = format!("check-in not sent: {}", chain(&e));
            log_warning(&text);
            PortalState::record(&app.portal.last_checkin, now, false, text);
            return;
        }
    };
    let c = Checkin {
        license_id: terms.license_id.clone(),
        hwid: status.hwid.hwid.to_string(),
        domain: match &terms.binding {
            license::Binding::Domain(d) => Some(d.clone()),
            license::Binding::Hwid(_) => None,
        },
        install_id: app.portal.install_id.clone(),
        boot_id: app.portal.boot_id.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        at: license::timestamp(now).map_or_else(String::new, |t| t.to_string()),
    };
    let mut answer = client.checkin(&SignedCheckin::sign(&c, &key)).await;
    // A server whose key the portal does not know yet (it got its file before check-ins were
    // signed, or by hand) registers it with a refresh, then checks in again.
    if let Err(e) = &answer
        && e.code() == Some("unregistered_install")
        && refresh(app, now).await
    {
        answer = client.checkin(&SignedCheckin::sign(&c, &key)).await;
    }
    match answer {
        Ok(v) => {
            let mut text = format!(
                "{} system(s) running this license, {} allowed",
                v.systems, v.allowed
            );
            if v.superseded {
                text = format!(
                    "the portal says license {} was moved to another system",
                    c.license_id
                );
                if let Err(e) = license_env::record_superseded(&app.data_dir, &c.license_id, now) {
                    log_warning(&format!("cannot record it: {}", chain(&e)));
                }
                app.invalidate_status();
            }
            if let Ok(mut slot) = app.portal.verdict.write() {
                *slot = Some((now, v));
            }
            PortalState::record(&app.portal.last_checkin, now, true, text);
        }
        Err(e) => {
            let text = format!("check-in failed: {e}");
            log_warning(&text);
            PortalState::record(&app.portal.last_checkin, now, false, text);
        }
    }
}

/// The automatic refresh; true when a fresh file was installed.
async fn refresh(app: &AppState, now: Micros) -> bool {
    let (ok, text) = match get_license(app, true).await {
        Ok(v) => (
            true,
            format!(
                "refreshed license {}: {} channels, formal end {}, refresh by {}",
                v.terms.license_id,
                v.terms.channels,
                v.terms.formal_end,
                refresh_by_text(&v.terms)
            ),
        ),
        Err(e) => {
            let text = format!("license refresh failed: {}", chain(&e));
            log_warning(&text);
            (false, text)
        }
    };
    PortalState::record(&app.portal.last_refresh, now, ok, text);
    ok
}

fn log_warning(text: &str) {
    tracing::warn!("{text}");
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

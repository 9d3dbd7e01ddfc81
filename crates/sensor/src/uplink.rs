//! The sensor's connection to the central server: batches of legs and heartbeats over HTTPS
//! (rustls), the server identified by a pinned certificate fingerprint or a CA file; plain
//! HTTP only to a loopback address or when explicitly allowed.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Path of the batch endpoint on the server.
pub const LEGS_PATH: &str = "/api/v1/ingest/legs";
/// Path of the heartbeat endpoint on the server.
pub const HEARTBEAT_PATH: &str = "/api/v1/ingest/heartbeat";

/// How the sensor knows it talks to its server.
#[derive(Debug, Clone)]
pub enum Trust {
    /// SHA-256 of the server's certificate (DER), from `--server-fingerprint SHA256:<hex>`.
    Fingerprint([u8; 32]),
    /// PEM file of the CA that signed the server's certificate.
    Ca(PathBuf),
    /// Nothing configured: only `http://` to loopback (or with `--insecure-http`) works.
    None,
}

#[derive(Debug, Clone)]
pub struct UplinkConfig {
    /// `https://host:port` or `http://host:port` (no path).
    pub server: String,
    pub token: String,
    pub trust: Trust,
    /// Allow `http://` to a non-loopback address.
    pub insecure_http: bool,
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("--server {0:?} is not an http:// or https:// URL with a host")]
    BadUrl(String),
    #[error(
        "--server {0} is plain http:// to a non-loopback address: the token and call data would travel in clear; use https:// or pass --insecure-http"
    )]
    PlainHttp(String),
    #[error(
        "--server {0} is https:// but the server cannot be checked: give --server-fingerprint SHA256:<hex> or --ca FILE"
    )]
    NoTrust(String),
    #[error("--server-fingerprint {0:?} is not SHA256: followed by 64 hex digits")]
    BadFingerprint(String),
    #[error("cannot read the CA file {path}: {reason}")]
    Ca { path: PathBuf, reason: String },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
    /// The server is not the one configured (pin or CA mismatch): retrying cannot help.
    #[error("the server's certificate is not trusted: {0}")]
    Certificate(String),
    #[error("the server refused the sensor token (revoked or unknown): {0}")]
    Unauthorized(String),
    #[error("the server rejected the request ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// Worth retrying: the server is down, restarting, unreachable or busy.
    #[error("cannot reach the server: {0}")]
    Transient(String),
}

impl UplinkError {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, UplinkError::Transient(_))
    }
}

/// One live leg, enough for the server to count it as a channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LiveLeg {
    pub caller: String,
    pub called: String,
    pub answered: bool,
}

/// What a sensor says every few seconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The id the sensor was told to have (`--sensor-id`), checked by the server.
    pub sensor_id: Option<u32>,
    pub version: String,
    /// Seconds between heartbeats: the server forgets the live legs after three.
    pub interval_s: u32,
    pub spool_bytes: u64,
    pub spool_batches: u64,
    pub spool_full: bool,
    /// Capture time the live legs are of.
    pub live_at: Option<i64>,
    pub live: Vec<LiveLeg>,
}

/// The server's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// The sensor id the server stamps on this sensor's legs.
    pub sensor_id: u32,
}

/// The server's answer to a batch, sent only after the legs are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchAck {
    pub inserted: u64,
    pub duplicates: u64,
}

/// Parses `SHA256:<64 hex>` (colons between bytes allowed, case-insensitive).
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], UplinkError> {
    let bad = || UplinkError::BadFingerprint(s.to_string());
    let hex = s
        .strip_prefix("SHA256:")
        .or_else(|| s.strip_prefix("sha256:"))
        .ok_or_else(bad)?;
    let hex: String = hex.chars().filter(|c| *c != ':').collect();
    if hex.len() != 64 || !hex.is_ascii() {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

/// `SHA256:<hex>` of a DER certificate: what `--server-fingerprint` expects.
pub fn fingerprint(der: &[u8]) -> String {
    let d = Sha256::digest(der);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    format!("SHA256:{hex}")
}

/// Accepts exactly one certificate, by its SHA-256, whatever its names and signer: pinning
/// replaces the CA check, so a self-signed server certificate works without a CA. The
/// handshake signature is still verified, so only the holder of the key passes.
#[derive(Debug)]
struct PinnedCert {
    pin: [u8; 32],
    algs: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got: [u8; 32] = Sha256::digest(end_entity.as_ref()).into();
        if got == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the server's certificate is {}, not the pinned one",
                fingerprint(end_entity.as_ref())
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn tls_config(trust: &Trust) -> Result<rustls::ClientConfig, UplinkError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| UplinkError::Client(e.to_string()))?;
    let config = match trust {
        Trust::Fingerprint(pin) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(PinnedCert {
                pin: *pin,
                algs: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth(),
        Trust::Ca(path) => {
            use rustls::pki_types::pem::PemObject;
            let ca_err = |reason: String| UplinkError::Ca {
                path: path.clone(),
                reason,
            };
            let mut roots = rustls::RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(path).map_err(|e| ca_err(e.to_string()))?;
            for cert in certs {
                let cert = cert.map_err(|e| ca_err(e.to_string()))?;
                roots.add(cert).map_err(|e| ca_err(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca_err("no certificate in it".into()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        Trust::None => {
            return Err(UplinkError::Client("no trust configured".into()));
        }
    };
    Ok(config)
}

/// A blocking client for one server. Cheap to share between threads (`&self`).
pub struct Uplink {
    base: String,
    auth: String,
    client: reqwest::blocking::Client,
}

impl Uplink {
    pub fn new(cfg: &UplinkConfig) -> Result<Uplink, UplinkError> {
        let url = reqwest::Url::parse(&cfg.server)
            .map_err(|_| UplinkError::BadUrl(cfg.server.clone()))?;
        let host = url
            .host_str()
            .ok_or_else(|| UplinkError::BadUrl(cfg.server.clone()))?;
        let builder = reqwest::blocking::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("sipmeter-sensor/", env!("CARGO_PKG_VERSION")));
        let builder = match url.scheme() {
            "http" => {
                let host = host.trim_start_matches('[').trim_end_matches(']');
                let loopback =
                    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
                if !loopback && !cfg.insecure_http {
                    return Err(UplinkError::PlainHttp(cfg.server.clone()));
                }
                builder
            }
            "https" => {
                if matches!(cfg.trust, Trust::None) {
                    return Err(UplinkError::NoTrust(cfg.server.clone()));
                }
                builder
                    .use_preconfigured_tls(tls_config(&cfg.trust)?)
                    .https_only(true)
            }
            _ => return Err(UplinkError::BadUrl(cfg.server.clone())),
        };
        let client = builder
            .build()
            .map_err(|e| UplinkError::Client(e.to_string()))?;
        Ok(Uplink {
            base: cfg.server.trim_end_matches('/').to_string(),
            auth: format!("Bearer {}", cfg.token),
            client,
        })
    }

    fn post(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<reqwest::blocking::Response, UplinkError> {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .map_err(|e| {
                let chain = error_chain(&e);
                if chain.contains("certificate") {
                    UplinkError::Certificate(chain)
                } else {
                    UplinkError::Transient(chain)
                }
            })?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let message = resp
            .text()
            .ok()
            .and_then(|t| {
                serde_json::from_str::<serde_json::Value>(&t)
                    .ok()
                    .and_then(|v| v["error"].as_str().map(str::to_owned))
                    .or(Some(t))
            })
            .unwrap_or_default();
        Err(match status.as_u16() {
            401 => UplinkError::Unauthorized(message),
            // Busy, restarting, or a proxy in between that lost the server: try again.
            408 | 429 | 500..=599 => UplinkError::Transient(format!("{status}: {message}")),
            s => UplinkError::Rejected { status: s, message },
        })
    }

    /// Sends one compressed batch (see [`crate::wire`]); the server answers after commit.
    pub fn send_batch(&self, batch: Vec<u8>) -> Result<BatchAck, UplinkError> {
        let resp = self.post(LEGS_PATH, "application/zstd", batch)?;
        resp.json()
            .map_err(|e| UplinkError::Transient(format!("unreadable acknowledgement: {e}")))
    }

    pub fn heartbeat(&self, hb: &Heartbeat) -> Result<HeartbeatAck, UplinkError> {
        let body = serde_json::to_vec(hb).map_err(|e| UplinkError::Client(e.to_string()))?;
        let resp = self.post(HEARTBEAT_PATH, "application/json", body)?;
        resp.json()
            .map_err(|e| UplinkError::Transient(format!("unreadable heartbeat answer: {e}")))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_both_spellings() {
        let hex = "ab".repeat(32);
        assert_eq!(
            parse_fingerprint(&format!("SHA256:{hex}")).unwrap(),
            [0xab; 32]
        );
        let colons = vec!["AB"; 32].join(":");
        assert_eq!(
            parse_fingerprint(&format!("sha256:{colons}")).unwrap(),
            [0xab; 32]
        );
        assert!(parse_fingerprint(&hex).is_err());
        assert!(parse_fingerprint("SHA256:abcd").is_err());
        assert!(parse_fingerprint(&format!("SHA256:{}", "zz".repeat(32))).is_err());
    }

    #[test]
    fn plain_http_only_to_loopback_or_when_asked() {
        let cfg = |server: &str, insecure| UplinkConfig {
            server: server.into(),
            token: "t".into(),
            trust: Trust::None,
            insecure_http: insecure,
            timeout: Duration::from_secs(1),
        };
        assert!(Uplink::new(&cfg("http://127.0.0.1:1", false)).is_ok());
        assert!(Uplink::new(&cfg("http://[::1]:1", false)).is_ok());
        assert!(Uplink::new(&cfg("http://localhost:1", false)).is_ok());
        assert!(matches!(
            Uplink::new(&cfg("http://192.0.2.1:1", false)),
            Err(UplinkError::PlainHttp(_))
        ));
        assert!(Uplink::new(&cfg("http://192.0.2.1:1", true)).is_ok());
        assert!(matches!(
            Uplink::new(&cfg("https://192.0.2.1:1", false)),
            Err(UplinkError::NoTrust(_))
        ));
        assert!(matches!(
            Uplink::new(&cfg("ftp://x", false)),
            Err(UplinkError::BadUrl(_))
        ));
    }
}

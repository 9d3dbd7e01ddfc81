//! Typed errors. Verification errors carry a stable [`VerifyError::code`] because the GUI,
//! the API and support scripts branch on it; the messages are for people and include the two
//! sentences users already search for.

use thiserror::Error;

/// Why a license file is not accepted. Every variant names the file (its base name, as the
/// user sees it), because "which file?" is the first support question.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("license file {file} is malformed: {reason}")]
    Malformed { file: String, reason: String },
    #[error(
        "license file {file} has format version {version}; this sipmeter reads versions 1 and 2"
    )]
    UnsupportedVersion { file: String, version: u8 },
    /// The chain root → certificate → signing key does not hold: a self-made key, an
    /// expired or foreign certificate.
    #[error("license file {file} was not issued by the vendor: {reason}")]
    UntrustedIssuer { file: String, reason: String },
    #[error("license file {file} has a bad signature (the file was changed after signing)")]
    BadSignature { file: String },
    #[error(
        "license file {file} is for another hwid (license: {licensed}, this machine: {actual})"
    )]
    AnotherHwid {
        file: String,
        licensed: String,
        actual: String,
    },
    #[error(
        "license file {file} is for another domain (license: {licensed}, this server: {actual})"
    )]
    WrongDomain {
        file: String,
        licensed: String,
        actual: String,
    },
    #[error("license file {file} was issued in the future ({issued_at}; the clock says {now})")]
    IssuedInFuture {
        file: String,
        issued_at: String,
        now: String,
    },
    #[error(
        "the system clock was set back: it says {now}, but {high_water} was already seen; license file {file} is not trusted until the clock is right"
    )]
    ClockSetBack {
        file: String,
        now: String,
        high_water: String,
    },
    #[error("FAILED license file {file} expired (access ended after {access_end})")]
    Expired { file: String, access_end: String },
}

impl VerifyError {
    /// Stable machine-readable code; never change one once released.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::Malformed { .. } => "malformed",
            VerifyError::UnsupportedVersion { .. } => "unsupported_version",
            VerifyError::UntrustedIssuer { .. } => "untrusted_issuer",
            VerifyError::BadSignature { .. } => "bad_signature",
            VerifyError::AnotherHwid { .. } => "another_hwid",
            VerifyError::WrongDomain { .. } => "wrong_domain",
            VerifyError::IssuedInFuture { .. } => "issued_in_future",
            VerifyError::ClockSetBack { .. } => "clock_set_back",
            VerifyError::Expired { .. } => "expired",
        }
    }

    pub(crate) fn malformed(file: &str, reason: impl Into<String>) -> VerifyError {
        VerifyError::Malformed {
            file: file.to_string(),
            reason: reason.into(),
        }
    }
}

/// A key file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("not a sipmeter {expected} key file: {reason}")]
    Malformed {
        expected: &'static str,
        reason: String,
    },
    #[error("the public key is not a valid Ed25519 point")]
    InvalidPoint,
}

/// Terms that must not be signed, because no verifier would accept them.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IssueError {
    #[error("invalid license terms: {0}")]
    InvalidTerms(String),
    #[error("the certificate is for key {certificate}, not for the signing key {key}")]
    CertificateMismatch { certificate: String, key: String },
}

//! What can go wrong in the portal, with the stable codes the API answers with.

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// A record that does not exist, or that the asker may not see (both answer 404 so a
    /// customer cannot probe other customers' ids).
    #[error("{0} not found")]
    NotFound(String),
    #[error("no license has token {0}")]
    UnknownToken(String),
    #[error("no license has id {0}")]
    UnknownLicense(String),
    #[error("license {license} ended after {access_end}")]
    LicenseEnded { license: String, access_end: String },
    #[error("{0}")]
    BindingMismatch(String),
    /// Bad input, naming the field.
    #[error("{0}")]
    BadRequest(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("signing key: {0}")]
    Key(#[from] license::KeyError),
    #[error("cannot sign: {0}")]
    Issue(#[from] license::IssueError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("password hashing failed")]
    Hash,
    /// The active signing key was never certified by a vendor root: no server would accept
    /// what it signs, so nothing is issued.
    #[error(
        "the portal's signing key {key_id} has no certificate from a vendor root; run `sipmeter --data-dir {data_dir} portal certify --root-key ROOT.key` where the root key is kept"
    )]
    NoCertificate { key_id: String, data_dir: String },
    /// A refresh from a system the license is no longer bound to.
    #[error(
        "license {license} has been moved to another system; this copy stops after the countdown unless an operator moves it back (Get License)"
    )]
    Superseded { license: String },
    #[error(
        "installation {install} is not registered for license {license}; Get License registers it"
    )]
    UnregisteredInstall { license: String, install: String },
    #[error("the check-in of installation {0} has a bad signature")]
    BadCheckinSignature(String),
    #[error(
        "the check-in made at {0} is too far from the portal's clock (replayed, or a wrong clock)"
    )]
    StaleCheckin(String),
    #[error(transparent)]
    SecretKey(#[from] crate::secret::SecretKeyError),
    #[error(transparent)]
    Unseal(#[from] crate::secret::UnsealError),
    /// The database was migrated by a newer portal: this one refuses it rather than guess.
    #[error(
        "the portal database is at schema version {found}, newer than the versions this \
         sipmeter knows (up to {known}): run a sipmeter at least as new as the one that \
         upgraded it (nothing was changed)"
    )]
    SchemaTooNew { found: i64, known: i64 },
}

impl PortalError {
    /// The stable error code of the contract and the HTTP status it goes with.
    pub fn code(&self) -> (u16, &'static str) {
        match self {
            PortalError::NotFound(_) => (404, "not_found"),
            PortalError::UnknownToken(_) => (404, "unknown_token"),
            PortalError::UnknownLicense(_) => (404, "unknown_license"),
            PortalError::LicenseEnded { .. } => (410, "license_ended"),
            PortalError::BindingMismatch(_) => (409, "binding_mismatch"),
            PortalError::BadRequest(_) => (400, "bad_request"),
            PortalError::NoCertificate { .. } => (503, "no_certificate"),
            PortalError::Superseded { .. } => (409, "superseded"),
            PortalError::UnregisteredInstall { .. } => (401, "unregistered_install"),
            PortalError::BadCheckinSignature(_) => (401, "bad_signature"),
            PortalError::StaleCheckin(_) => (400, "stale_checkin"),
            _ => (500, "internal"),
        }
    }

    pub(crate) fn bad(msg: impl Into<String>) -> PortalError {
        PortalError::BadRequest(msg.into())
    }
}

pub type Result<T, E = PortalError> = std::result::Result<T, E>;

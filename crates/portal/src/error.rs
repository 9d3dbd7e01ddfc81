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
            _ => (500, "internal"),
        }
    }

    pub(crate) fn bad(msg: impl Into<String>) -> PortalError {
        PortalError::BadRequest(msg.into())
    }
}

pub type Result<T, E = PortalError> = std::result::Result<T, E>;

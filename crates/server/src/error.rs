//! Errors of the server library. Start-up errors ([`ServerError`]) are separate from request
//! errors ([`AppError`]): the first stop `sipmeter serve` with a message, the second become an
//! HTTP answer and a log line.

use std::path::PathBuf;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::license::env::EnvError;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot open the database")]
    Store(#[from] store::StoreError),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the embedded sensor")]
    Sensor(#[source] std::io::Error),
    #[error("capture directory {0} does not exist or is not a directory")]
    PcapDir(PathBuf),
    #[error("license: {0}")]
    License(#[from] EnvError),
    #[error("cannot hash a password")]
    Hash,
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the server task failed: {0}")]
    Task(String),
}

/// The error and its causes on one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Why a request failed, as the client is told: the status and one sentence. Handlers return
/// `Result<Response, AppError>` and use `?`; the gate turns the error into JSON on API routes
/// and the short HTML error page elsewhere ([`crate::http::error`]), so a handler never
/// decides the form. A failure that is not the client's is logged once, with its causes, when
/// it becomes an `AppError` ([`Context`], the `From` conversions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    pub code: StatusCode,
    pub message: String,
}

/// The sentence of an [`AppError`] answer, carried to the gate in the response's extensions.
#[derive(Debug, Clone)]
pub struct ErrorAnswer(pub String);

impl AppError {
    pub fn new(code: StatusCode, message: impl Into<String>) -> AppError {
        AppError {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::NOT_FOUND, message)
    }

    /// A failure that is not the client's: logged as `label: causes`, answered as a 500 that
    /// says `answer`.
    pub fn internal(label: &str, answer: &str, e: &dyn std::error::Error) -> AppError {
        tracing::error!("{label}: {}", chain(e));
        AppError::new(StatusCode::INTERNAL_SERVER_ERROR, answer)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let mut r = self.code.into_response();
        r.extensions_mut().insert(ErrorAnswer(self.message));
        r
    }
}

/// What could not be done, for an error on its way to becoming an [`AppError`].
pub trait Context<T> {
    /// On error: a 500 answering `what`, logged as `what: causes`.
    fn context(self, what: &str) -> Result<T, AppError>;
    /// On error: a 500 answering `answer`, logged as `label: causes`.
    fn log_as(self, label: &str, answer: &str) -> Result<T, AppError>;
}

impl<T, E: std::error::Error> Context<T> for Result<T, E> {
    fn context(self, what: &str) -> Result<T, AppError> {
        self.map_err(|e| AppError::internal(what, what, &e))
    }

    fn log_as(self, label: &str, answer: &str) -> Result<T, AppError> {
        self.map_err(|e| AppError::internal(label, answer, &e))
    }
}

impl From<store::StoreError> for AppError {
    fn from(e: store::StoreError) -> AppError {
        AppError::internal("database", "database error", &e)
    }
}

impl From<EnvError> for AppError {
    fn from(e: EnvError) -> AppError {
        AppError::internal("license files", "cannot read the license files", &e)
    }
}

impl From<ServerError> for AppError {
    fn from(e: ServerError) -> AppError {
        AppError::internal("request", "internal error", &e)
    }
}

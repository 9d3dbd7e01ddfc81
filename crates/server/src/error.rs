//! Errors of the server library. Start-up errors are separate from request errors: the first
//! stop `sipmeter serve` with a message, the second become an HTTP answer and a log line.

use std::path::PathBuf;

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
    License(#[from] crate::license::env::EnvError),
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

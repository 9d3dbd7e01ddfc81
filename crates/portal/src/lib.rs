//! The vendor portal (SPEC §4): customers, their licenses and orders, support actions, the
//! signing keys, and the API central servers use to get license files and check in.
//!
//! [`Portal`] is the one place actions happen (validated, applied, audited); [`router`]
//! puts the customer pages, the support console and the API in front of it.

mod api;
pub mod clock;
mod db;
mod error;
mod secret;
mod service;
mod trust;
mod web;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::{get, post};

pub use db::SCHEMA_VERSION;
pub use db::{
    AuditEntry, Backend, BindingState, Checkin, Customer, GrantRow, KeyRow, LicenseRow, Order,
    OrderKind, OrderStatus, Role, Tier, User,
};
pub use error::PortalError;
pub use secret::{DEFAULT_KEY_FILE, SECRET_KEY_ENV, SecretKey, SecretKeyError, UnsealError};
pub use service::{
    CheckinRequest, CheckinVerdict, Issued, LicenseView, OrderRequest, Portal, REFRESH_AFTER_US,
    Target, rfc3339,
};
pub use trust::{InstallKey, SignedCheckin};

/// Request bodies above this are refused: the largest legitimate one is an offline request
/// file of a few hundred bytes.
const MAX_BODY: usize = 64 * 1024;

pub(crate) struct App {
    pub portal: Portal,
    pub sessions: Mutex<HashMap<String, web::Session>>,
    /// Recent failed logins per user name, for the throttle.
    pub failures: Mutex<HashMap<String, Vec<std::time::Instant>>>,
}

pub(crate) type AppState = Arc<App>;

/// The portal's HTTP routes: pages, console and API.
pub fn router(portal: Portal) -> Router {
    let app = Arc::new(App {
        portal,
        sessions: Mutex::new(HashMap::new()),
        failures: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/api/v1/keys", get(api::keys))
        .route("/api/v1/license", post(api::license))
        .route("/api/v1/checkin", post(api::checkin))
        .merge(web::routes())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::map_response(web::security_headers))
        .with_state(app)
}

/// Serves the portal on `listener` until the future is dropped or fails.
pub async fn serve(listener: tokio::net::TcpListener, portal: Portal) -> std::io::Result<()> {
    axum::serve(listener, router(portal)).await
}

/// Binds 127.0.0.1 on a free port and serves the portal in the background (tests, and
/// callers that need the address before serving).
pub async fn spawn_local(portal: Portal) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(serve(listener, portal));
    Ok(addr)
}

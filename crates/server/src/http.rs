//! What every handler shares: the route's spec (who may call it, what a lock does to it),
//! the request context the gate found out ([`Ctx`]), and the error answer (JSON on the API, a
//! short page elsewhere).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use license::Status;

use crate::auth::AuthUser;
use crate::state::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No login: the login page, health check, metrics.
    Public,
    /// Any logged-in user.
    User,
    /// Admins only (settings).
    Admin,
    /// A remote sensor's bearer token (ingest); no user, no CSRF, never locked.
    Sensor,
}

/// What a license lock does to a route (SPEC §3: locked = only login, About/License and
/// Settings > License work; reports, CSV and the data API answer 423; ingest never stops).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// Always served: login/logout, About/License, Settings > License, health, metrics,
    /// the license API and the API description.
    Exempt,
    /// A GUI page: 423 page when the GUI is locked.
    Page,
    /// Reports: 423 when reports are locked.
    Report,
    /// CSV export: 423 when CSV export is locked.
    Csv,
    /// Data API: 423 JSON when the data API is locked.
    DataApi,
}

/// Makes a route's handler for the method of its row (`|m| on(m, handler)`), so that the
/// method is written once, in the table.
pub type MakeHandler = fn(MethodFilter) -> MethodRouter<AppState>;

/// One row of the route table ([`crate::routes::ROUTES`]): the route, who may call it, what a
/// lock does to it, and its handler.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub lock: Lock,
    /// Under `/api/`: answers JSON, 401 instead of a redirect to the login page, accepts
    /// HTTP Basic.
    pub api: bool,
    pub(crate) handler: MakeHandler,
}

impl RouteSpec {
    pub(crate) const fn new(
        method: Method,
        path: &'static str,
        access: Access,
        lock: Lock,
        handler: MakeHandler,
    ) -> RouteSpec {
        let b = path.as_bytes();
        let api = b.len() >= 5
            && b[0] == b'/'
            && b[1] == b'a'
            && b[2] == b'p'
            && b[3] == b'i'
            && b[4] == b'/';
        RouteSpec {
            method,
            path,
            access,
            lock,
            api,
            handler,
        }
    }
}

/// What the gate found out, for the handler.
#[derive(Clone)]
pub struct Ctx {
    pub user: Option<AuthUser>,
    pub status: Arc<Status>,
    pub peer: SocketAddr,
}

/// An error as JSON on the API, as a short page elsewhere.
pub fn error(route: &RouteSpec, code: StatusCode, message: &str) -> Response {
    if route.api {
        (code, axum::Json(serde_json::json!({ "error": message }))).into_response()
    } else {
        (
            code,
            Html(format!(
                "<!doctype html><title>{}</title><p>{}</p><p><a href=\"/\">sipmeter</a></p>",
                code.as_u16(),
                askama_escape(message)
            )),
        )
            .into_response()
    }
}

fn askama_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

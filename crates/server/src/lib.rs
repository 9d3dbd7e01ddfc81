//! The central server: web GUI, JSON API, login, license enforcement, alerts, reports.
//!
//! The folders follow the roles at run time (see ARCHITECTURE.md for the tree):
//! - `license/`: the license facts of this machine and data directory (`env`, shared with
//!   `sipmeter license`) and the vendor portal's client (Get/Update License, refresh,
//!   check-ins).
//! - `auth/`: passwords (argon2), sessions, CSRF tokens, HTTP Basic, the failed-login throttle.
//! - `ingest/`: where legs come in: the capture-directory `watcher`, `remote` sensors, and the
//!   one database `writer`.
//! - `api/`: `/api/v1`, `/healthz`, `/metrics`; the channel report JSON (`report`) and the CDR
//!   list as JSON/CSV with the printed leg shape (`cdrs`), both shared with the CLI.
//! - `web/`: the pages (askama, no JavaScript), the chrome around them, SVG charts.
//! - `reports/`: the Reports page and CSV, and the daily report figures.
//! - `alerts/`: the engine (rules evaluated on the clock), delivery (webhook, SMTP), the page.
//!
//! Layers, lowest first: `license`, `auth`, `ingest`, `api`, `web`, `reports`, `alerts`; a
//! folder imports only folders before it (the test `layers` below checks it). Beside them, at
//! the root: `error` (the error types, `chain`), `clock`, `metrics`, `state` (the shared
//! state: it holds each role's part, and every role sees it), `http` (route spec, request
//! context, error answer), `tls`, and on top `routes` (the one route table, with its handlers),
//! `gate` (the one middleware) and `server` (start/stop).
//!
//! The modules are private; what other crates use is re-exported below.

mod alerts;
mod api;
mod auth;
mod clock;
mod error;
mod gate;
mod http;
mod ingest;
mod license;
mod metrics;
mod reports;
mod routes;
mod server;
mod state;
pub mod tls;
mod web;

pub use self::license::env::{self as license_env, LicenseSetup};
pub use self::license::portal_client;
pub use alerts::{AlertsConfig, evaluate_once as evaluate_alerts, trust_anchors, valid_email};
pub use api::cdrs::{CSV_COLUMNS, LegRecord, csv_cell, csv_line};
pub use api::report::{DayOut, HourOut, ReportOut};
pub use auth::{MAX_FAILURES_PER_USER, hash_password};
pub use clock::{Clock, FakeClock, SystemClock};
pub use error::{ServerError, chain};
pub use http::{Access, Lock, RouteSpec};
pub use routes::ROUTES;
pub use server::{FIRST_ADMIN, Running, ServerConfig};
pub use state::{AppState, STATUS_TTL_US};
pub use web::sensors::{new_token as new_sensor_token, valid_name as valid_sensor_name};

/// What a development build (feature `dev-keys`) says wherever the license is shown: the
/// `--version` line, `license status` and the GUI footer.
pub const DEVELOPMENT_BUILD_NOTICE: &str =
    "development build: licenses from the development root are accepted";

#[cfg(test)]
mod tests {
    /// The role folders, lowest first: each may import only the ones before it (and the root
    /// modules: `error`, `clock`, `metrics`, `state`, `http`).
    const LAYERS: &[&str] = &[
        "license", "auth", "ingest", "api", "web", "reports", "alerts",
    ];
    /// Root modules a role folder must not import (they import the roles).
    const TOP: &[&str] = &["routes", "gate", "server"];

    fn sources(dir: &std::path::Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push((
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                ));
            }
        }
    }

    #[test]
    fn layers() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for (level, folder) in LAYERS.iter().enumerate() {
            let mut files = Vec::new();
            sources(&src.join(folder), &mut files);
            assert!(!files.is_empty(), "{folder}");
            for (path, text) in files {
                let code = text
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect::<Vec<_>>()
                    .join("\n");
                for (i, _) in code.match_indices("crate::") {
                    let name: String = code[i + 7..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    let higher = LAYERS[level + 1..].contains(&name.as_str());
                    assert!(
                        !higher && !TOP.contains(&name.as_str()),
                        "{path} imports crate::{name}: `{folder}` is below it"
                    );
                }
            }
        }
    }
}

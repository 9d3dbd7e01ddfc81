//! The central server: web GUI, JSON API, login, license enforcement, alerts, reports.
//!
//! Module map (one job each):
//! - `server`: start/stop: two store handles (one writer task, one reader for requests), the
//!   embedded sensor thread, the HTTP listener; `router` lists the handlers.
//! - `routes`: THE route table: access (public/user/admin) and lock class of every route.
//! - `gate`: the one middleware: route lookup, session or HTTP Basic, CSRF on every POST,
//!   license lock (423), latency metrics.
//! - `auth`: argon2 passwords, in-memory sessions, CSRF tokens, the failed-login throttle.
//! - `state`: shared state; the license status cache (invalidated on change, TTL 5 s).
//! - `license_env`: gathering the license facts (file, hwid, clock high-water mark, daily
//!   peaks); shared with `sipmeter license`.
//! - `sensor`: the embedded sensor (capture directory watcher) and the database writer.
//! - `pages`, `chrome`: askama pages and what surrounds every page (nav, banners, footer).
//! - `api`: `/api/v1`, `/healthz`, `/metrics`; `report`: the channel report JSON shape
//!   (shared with `sipmeter channels`); `metrics`: Prometheus text.
//! - `alerts`: the alert engine (rules from the store, evaluated on the clock; webhook and
//!   SMTP delivery, suppressed when locked) and the Alerts page.
//! - `cdrs`: the CDR browser, CDR detail (related legs, SIP ladder), `/api/v1/cdrs` JSON and CSV;
//!   the printed leg shape and CSV columns shared with `sipmeter read`.
//! - `reports`: the Reports page and its CSV downloads (figures from `daily`).
//! - `users`: Settings › Users (admins add users) and Settings › Password.
//! - `portal_client`: the license portal's API client; Get/Update License, the refresh before
//!   `refresh_by`, the periodic check-ins and their concurrent-use verdict.
//! - `clock`: the time source (a fake one for tests).
//! - `chart`: server-side SVG charts (Concurrent Calls Stats, dashboard), pure rendering.
//! - `daily`: the daily report figures (calls, answered, ASR, ACD, failures by code, peak).

pub mod alerts;
pub mod api;
pub mod auth;
pub mod cdrs;
pub mod chart;
pub mod chrome;
pub mod clock;
pub mod daily;
pub mod error;
pub mod gate;
pub mod ingest;
pub mod license_env;
pub mod metrics;
pub mod pages;
pub mod portal_client;
pub mod report;
pub mod reports;
pub mod routes;
pub mod sensor;
pub mod sensors_page;
pub mod server;
pub mod state;
pub mod tls;
pub mod users;

pub use clock::{Clock, FakeClock, SystemClock};

/// What a development build (feature `dev-keys`) says wherever the license is shown: the
/// `--version` line, `license status` and the GUI footer.
pub const DEVELOPMENT_BUILD_NOTICE: &str =
    "development build: licenses from the development root are accepted";
pub use error::ServerError;
pub use license_env::LicenseSetup;
pub use server::{FIRST_ADMIN, Running, ServerConfig};

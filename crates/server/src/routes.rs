//! The one route table. Every route is one row: method, path, who may call it, what a license
//! lock does to it, and its handler. The router is built from this table alone, so a route
//! cannot exist without deciding its access and lock, nor a row without a handler; the gate
//! looks the matched route up here, and the anonymous crawl test walks this same list.

use axum::Router;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};

use crate::http::{Access, Lock, RouteSpec};
use crate::state::AppState;
use crate::web::{cdrs, pages, sensors, users};
use crate::{alerts, api, gate, ingest, reports};

/// Rows of the table: `METHOD "path" Access Lock => handler;`.
macro_rules! table {
    ($($method:ident $path:literal $access:ident $lock:ident => $handler:path;)*) => {
        &[$(RouteSpec::new(
            Method::$method,
            $path,
            Access::$access,
            Lock::$lock,
            |m| on(m, $handler),
        ),)*]
    };
}

pub const ROUTES: &[RouteSpec] = table! {
    GET "/healthz" Public Exempt => api::healthz;
    GET "/metrics" Public Exempt => api::metrics;
    GET "/login" Public Exempt => pages::login_form;
    POST "/login" Public Exempt => pages::login_submit;
    POST "/logout" User Exempt => pages::logout;
    GET "/" User Page => pages::dashboard;
    GET "/cdrs" User Page => cdrs::list;
    GET "/cdrs/{id}" User Page => cdrs::detail;
    GET "/tools/concurrent-calls" User Page => pages::concurrent_calls;
    GET "/reports" User Report => reports::page::page;
    GET "/reports/daily.csv" User Csv => reports::page::daily_csv;
    GET "/reports/failures.csv" User Csv => reports::page::failures_csv;
    GET "/alerts" User Page => alerts::page::page;
    POST "/alerts/rules" Admin Page => alerts::page::save_rule;
    POST "/alerts/rules/enable" Admin Page => alerts::page::enable_rule;
    POST "/alerts/rules/delete" Admin Page => alerts::page::delete_rule;
    GET "/about" User Exempt => pages::about;
    GET "/settings/license" User Exempt => pages::settings_license;
    POST "/settings/license/token" Admin Exempt => pages::settings_token;
    POST "/settings/license/upload" Admin Exempt => pages::settings_upload;
    POST "/settings/license/fetch" Admin Exempt => pages::settings_fetch;
    // Exempt: lowering the configured limit back is a way out of a lock.
    POST "/settings/license/limit" Admin Exempt => pages::settings_limit;
    GET "/settings/users" Admin Page => users::list;
    POST "/settings/users" Admin Page => users::create;
    GET "/settings/password" User Exempt => users::password_form;
    POST "/settings/password" User Exempt => users::change_password;
    GET "/api/v1/openapi.json" User Exempt => api::openapi;
    GET "/api/v1/license" User Exempt => api::license_status;
    GET "/api/v1/channels/now" User DataApi => api::channels_now;
    GET "/api/v1/channels/stats" User DataApi => api::channels_stats;
    GET "/api/v1/cdrs" User DataApi => api::cdrs::api_list;
    GET "/api/v1/cdrs.csv" User Csv => api::cdrs::api_csv;
    // Recording continues while locked (SPEC §3), remote sensors included.
    POST "/api/v1/ingest/legs" Sensor Exempt => ingest::remote::legs;
    POST "/api/v1/ingest/heartbeat" Sensor Exempt => ingest::remote::heartbeat;
    GET "/settings/sensors" Admin Page => sensors::list;
    POST "/settings/sensors" Admin Page => sensors::create;
    POST "/settings/sensors/revoke" Admin Page => sensors::revoke;
};

pub fn find(method: &Method, path: &str) -> Option<&'static RouteSpec> {
    ROUTES.iter().find(|r| r.path == path && r.method == method)
}

/// Every row's handler, one method router per path.
fn routes() -> Router<AppState> {
    let mut paths: Vec<(&'static str, MethodRouter<AppState>)> = Vec::new();
    for route in ROUTES {
        let filter = MethodFilter::try_from(route.method.clone())
            .expect("the route table holds methods axum routes");
        let handler = (route.handler)(filter);
        match paths.iter_mut().find(|(p, _)| *p == route.path) {
            Some((_, m)) => *m = std::mem::take(m).merge(handler),
            None => paths.push((route.path, handler)),
        }
    }
    paths
        .into_iter()
        .fold(Router::new(), |r, (path, m)| r.route(path, m))
}

/// The router: every route of [`ROUTES`], behind the gate.
pub fn router(state: AppState) -> Router {
    routes()
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::gate,
        ))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_no_duplicates_and_api_flag_follows_the_path() {
        for (i, a) in ROUTES.iter().enumerate() {
            assert_eq!(a.api, a.path.starts_with("/api/"), "{}", a.path);
            for b in &ROUTES[i + 1..] {
                assert!(!(a.path == b.path && a.method == b.method), "{}", a.path);
            }
        }
    }

    #[test]
    fn every_row_becomes_a_route() {
        // Panics on a method axum cannot route or on two handlers for one method and path.
        let _ = routes();
    }
}

//! The one route table. Every route the router serves is listed here with who may call it
//! and what a license lock does to it; the gate middleware refuses any matched route that is
//! missing from the table, so a route cannot be added without deciding both, and the
//! anonymous crawl test walks this same list.

use axum::http::Method;

use crate::http::{Access, Lock, RouteSpec, r};

use Access::{Admin, Public, Sensor, User};

pub const ROUTES: &[RouteSpec] = &[
    r(Method::GET, "/healthz", Public, Lock::Exempt),
    r(Method::GET, "/metrics", Public, Lock::Exempt),
    r(Method::GET, "/login", Public, Lock::Exempt),
    r(Method::POST, "/login", Public, Lock::Exempt),
    r(Method::POST, "/logout", User, Lock::Exempt),
    r(Method::GET, "/", User, Lock::Page),
    r(Method::GET, "/cdrs", User, Lock::Page),
    r(Method::GET, "/cdrs/{id}", User, Lock::Page),
    r(Method::GET, "/tools/concurrent-calls", User, Lock::Page),
    r(Method::GET, "/reports", User, Lock::Report),
    r(Method::GET, "/reports/daily.csv", User, Lock::Csv),
    r(Method::GET, "/reports/failures.csv", User, Lock::Csv),
    r(Method::GET, "/alerts", User, Lock::Page),
    r(Method::POST, "/alerts/rules", Admin, Lock::Page),
    r(Method::POST, "/alerts/rules/enable", Admin, Lock::Page),
    r(Method::POST, "/alerts/rules/delete", Admin, Lock::Page),
    r(Method::GET, "/about", User, Lock::Exempt),
    r(Method::GET, "/settings/license", User, Lock::Exempt),
    r(Method::POST, "/settings/license/token", Admin, Lock::Exempt),
    r(
        Method::POST,
        "/settings/license/upload",
        Admin,
        Lock::Exempt,
    ),
    r(Method::POST, "/settings/license/fetch", Admin, Lock::Exempt),
    // Exempt: lowering the configured limit back is a way out of a lock.
    r(Method::POST, "/settings/license/limit", Admin, Lock::Exempt),
    r(Method::GET, "/settings/users", Admin, Lock::Page),
    r(Method::POST, "/settings/users", Admin, Lock::Page),
    r(Method::GET, "/settings/password", User, Lock::Exempt),
    r(Method::POST, "/settings/password", User, Lock::Exempt),
    r(Method::GET, "/api/v1/openapi.json", User, Lock::Exempt),
    r(Method::GET, "/api/v1/license", User, Lock::Exempt),
    r(Method::GET, "/api/v1/channels/now", User, Lock::DataApi),
    r(Method::GET, "/api/v1/channels/stats", User, Lock::DataApi),
    r(Method::GET, "/api/v1/cdrs", User, Lock::DataApi),
    r(Method::GET, "/api/v1/cdrs.csv", User, Lock::Csv),
    // Recording continues while locked (SPEC §3), remote sensors included.
    r(Method::POST, "/api/v1/ingest/legs", Sensor, Lock::Exempt),
    r(
        Method::POST,
        "/api/v1/ingest/heartbeat",
        Sensor,
        Lock::Exempt,
    ),
    r(Method::GET, "/settings/sensors", Admin, Lock::Page),
    r(Method::POST, "/settings/sensors", Admin, Lock::Page),
    r(Method::POST, "/settings/sensors/revoke", Admin, Lock::Page),
];

pub fn find(method: &Method, path: &str) -> Option<&'static RouteSpec> {
    ROUTES.iter().find(|r| r.path == path && r.method == method)
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
}

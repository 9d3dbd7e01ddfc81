//! The one middleware in front of every route: looks the route up in the table, finds out who
//! is asking (session cookie, or HTTP Basic on the API), refuses what needs a login, checks
//! the CSRF token of every POST, and applies the license lock. Handlers find the user and
//! the license status in the request's extensions and never decide access themselves.

use std::net::SocketAddr;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use license::Status;
use store::Role;

use crate::auth::{self, AuthUser, LOGIN_CSRF_COOKIE, SESSION_COOKIE};
use crate::error::{ErrorAnswer, chain};
use crate::http::{Access, Ctx, Lock, RouteSpec, error};
use crate::routes;
use crate::state::AppState;
use crate::web::{Chrome, render};

/// Largest POST body accepted (a license file is a few KiB).
pub const MAX_POST_BODY: usize = 256 * 1024;

pub async fn gate(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let Some(matched) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
    else {
        return next.run(req).await;
    };
    // HEAD is answered like GET (axum strips the body).
    let lookup = if method == Method::HEAD {
        Method::GET
    } else {
        method.clone()
    };
    // The router is built from the table, so a matched path is in it; another method is
    // not allowed.
    let Some(route) = routes::find(&lookup, &matched) else {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    };
    let mut resp = if route.access == Access::Sensor {
        crate::ingest::remote::gate_sensor(app.clone(), req, next).await
    } else {
        gated(app.clone(), peer, route, req, next).await
    };
    // A handler's `AppError`: JSON on the API, the short error page elsewhere.
    if let Some(ErrorAnswer(message)) = resp.extensions_mut().remove::<ErrorAnswer>() {
        resp = error(route, resp.status(), &message);
    }
    security_headers(resp.headers_mut(), app.browser_https);
    app.metrics.observe(
        route.path,
        method_name(&method),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// Headers every answer carries: no scripts at all (the GUI has none, so an injected one cannot
/// run), no framing (clickjacking), no content sniffing, no referrer to other sites, and no
/// caching of pages that show call data; over HTTPS, HSTS (a year), so a browser never tries
/// plain HTTP again.
fn security_headers(h: &mut axum::http::HeaderMap, https: bool) {
    let set = |h: &mut axum::http::HeaderMap, k: header::HeaderName, v: &'static str| {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::CACHE_CONTROL, "no-store");
    if https {
        set(h, header::STRICT_TRANSPORT_SECURITY, "max-age=31536000");
    }
}

fn method_name(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        _ => "OTHER",
    }
}

async fn gated(
    app: AppState,
    peer: SocketAddr,
    route: &'static RouteSpec,
    req: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = req.into_parts();
    let mut user = auth::cookie(&parts.headers, SESSION_COOKIE).and_then(|id| app.sessions.get(id));
    if user.is_none()
        && route.api
        && let Some((name, password)) = auth::basic_credentials(&parts.headers)
    {
        match auth::check_basic(&app, &name, &password, peer.ip()).await {
            Ok(u) => user = Some(u),
            // A throttled script hears why and when to come back, not "login required".
            Err(auth::LoginError::Throttled(t)) => {
                let mut r = error(route, StatusCode::TOO_MANY_REQUESTS, &t.message());
                let secs = t.retry_after().as_secs().max(1).to_string();
                if let Ok(v) = HeaderValue::from_str(&secs) {
                    r.headers_mut().insert(header::RETRY_AFTER, v);
                }
                return r;
            }
            Err(_) => return unauthorized(route),
        }
    }
    match (route.access, &user) {
        (Access::Public, _) => {}
        (_, None) => return unauthorized_or_login(route, &parts.uri),
        (Access::Admin, Some(u)) if u.role != Role::Admin => {
            return error(route, StatusCode::FORBIDDEN, "administrators only");
        }
        _ => {}
    }

    // CSRF: every POST carries the token of its session (or, for the login form, the token of
    // its cookie). Requests authenticated by HTTP Basic carry no cookie a third-party page
    // could make a browser send, so they need none.
    let body = if parts.method == Method::POST {
        let bytes = match axum::body::to_bytes(body, MAX_POST_BODY).await {
            Ok(b) => b,
            Err(_) => {
                return error(
                    route,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request body too large",
                );
            }
        };
        let expected = match &user {
            Some(u) => u.csrf.clone(),
            None => auth::cookie(&parts.headers, LOGIN_CSRF_COOKIE).map(str::to_owned),
        };
        let basic = user.as_ref().is_some_and(|u| u.csrf.is_none());
        if !basic {
            let ct = parts
                .headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let given = auth::csrf_field(ct, &bytes);
            let ok = matches!((&expected, &given), (Some(e), Some(g)) if !e.is_empty() && auth::tokens_equal(e, g));
            if !ok {
                return error(
                    route,
                    StatusCode::FORBIDDEN,
                    "the form is missing its security token or it has expired; reload the page and try again",
                );
            }
        }
        Body::from(bytes)
    } else {
        body
    };

    let status = match app.status().await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("license status: {}", chain(&e));
            return error(
                route,
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot compute the license status",
            );
        }
    };
    let f = status.features;
    let locked = match route.lock {
        Lock::Exempt => false,
        Lock::Page => !f.gui,
        Lock::Report => !f.reports,
        Lock::Csv => !f.csv_export,
        Lock::DataApi => !f.data_api,
    };
    if locked {
        return locked_response(&app, route, &status, user.as_ref());
    }
    parts.extensions.insert(Ctx { user, status, peer });
    next.run(Request::from_parts(parts, body)).await
}

fn unauthorized(route: &RouteSpec) -> Response {
    let mut r = error(route, StatusCode::UNAUTHORIZED, "login required");
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"sipmeter\", charset=\"UTF-8\""),
    );
    r
}

fn unauthorized_or_login(route: &RouteSpec, uri: &axum::http::Uri) -> Response {
    if route.api {
        return unauthorized(route);
    }
    // Only local paths go into `next`, so the login page cannot be made to redirect away.
    let target = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let next =
        if route.method == Method::GET && target.starts_with('/') && !target.starts_with("//") {
            target
        } else {
            "/"
        };
    let q = serde_urlencoded::to_string([("next", next)]).unwrap_or_default();
    Redirect::to(&format!("/login?{q}")).into_response()
}

const UNLOCK_HELP: &str = "Install a license with a higher channel limit or a renewed license in Settings > License (or Get/Update License), ask support for a temporary channel increase, raise a configured channel limit up to the entitlement, or delete/recompute miscounted CDRs. Recording continues while locked.";

fn locked_response(
    app: &AppState,
    route: &'static RouteSpec,
    st: &Status,
    user: Option<&AuthUser>,
) -> Response {
    let reason = crate::web::chrome::lock_reason_text(st);
    let code = StatusCode::LOCKED;
    // CSV downloads are fetched by scripts as often as by browsers: JSON says why.
    if route.api || route.lock == Lock::Csv {
        let body = serde_json::json!({
            "error": "locked",
            "state": crate::license::state_name(st.state),
            "lock_reason": st.lock_reason,
            "reason": reason,
            "unlock": UNLOCK_HELP,
        });
        return (code, axum::Json(body)).into_response();
    }
    let page = crate::web::pages::LockedPage {
        chrome: Chrome::new(app, st, user, ""),
        reason,
    };
    (code, render(&page)).into_response()
}

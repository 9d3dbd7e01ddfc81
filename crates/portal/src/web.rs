//! Server-rendered pages, no JavaScript: login, the customer's "My services", orders and key
//! download, and the support console. Sessions are in memory (a restart logs everyone out);
//! every POST form carries the session's CSRF token (the login form a double-submit cookie).
//! A customer only ever reaches their own licenses: anything else is 404, like a missing id.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use askama::Template;
use axum::Router;
use axum::extract::{Form, Multipart, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use license::rand_core::RngCore;

use crate::AppState;
use crate::db::{AuditEntry, BindingState, LicenseRow, Order, Role, Tier, User};
use crate::error::PortalError;
use crate::service::{Issued, LicenseView, OrderRequest, Target, rfc3339};

const SESSION_COOKIE: &str = "portal_session";
const LOGIN_CSRF_COOKIE: &str = "portal_login_csrf";
/// A session unused this long is gone.
const SESSION_IDLE: Duration = Duration::from_secs(8 * 3600);
/// Failed logins per user name within [`THROTTLE_WINDOW`] before that name is refused: the
/// portal holds every customer's tokens, so passwords must not be guessable at line rate.
const MAX_FAILURES: usize = 5;
const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
pub struct Session {
    user: User,
    csrf: String,
    last_seen: Instant,
}

fn random_token() -> String {
    let mut b = [0u8; 32];
    license::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Whether a token sent with a form is the expected one, in time that does not depend on
/// where they first differ (only on the length, which is public).
fn same_token(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// Headers every answer carries, as the central server sends them: no scripts at all (the
/// pages have none, so an injected one cannot run), no framing (clickjacking), no content
/// sniffing, no referrer to other sites, and no caching: pages show license tokens and the
/// API serves license files.
pub(crate) async fn security_headers(mut resp: Response) -> Response {
    use axum::http::HeaderValue;
    let h = resp.headers_mut();
    let mut set = |k: header::HeaderName, v: &'static str| {
        h.entry(k).or_insert(HeaderValue::from_static(v));
    };
    set(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::REFERRER_POLICY, "same-origin");
    set(header::CACHE_CONTROL, "no-store");
    resp
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// What went wrong for a page request.
enum WebError {
    Login,
    NotFound,
    Forbidden,
    Bad(String),
    Internal(PortalError),
}

impl From<PortalError> for WebError {
    fn from(e: PortalError) -> WebError {
        match e {
            PortalError::NotFound(_) | PortalError::UnknownLicense(_) => WebError::NotFound,
            PortalError::BadRequest(m) | PortalError::BindingMismatch(m) => WebError::Bad(m),
            e @ (PortalError::LicenseEnded { .. } | PortalError::UnknownToken(_)) => {
                WebError::Bad(e.to_string())
            }
            e => WebError::Internal(e),
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, text) = match self {
            WebError::Login => return Redirect::to("/login").into_response(),
            WebError::NotFound => (StatusCode::NOT_FOUND, "Not found", "No such page.".into()),
            WebError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Forbidden",
                "The form expired or did not come from this site; reload the page and try again."
                    .into(),
            ),
            WebError::Bad(m) => (StatusCode::BAD_REQUEST, "Cannot do that", m),
            WebError::Internal(e) => {
                eprintln!("portal: {e}");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error",
                    "Internal error; see the portal log.".into(),
                )
            }
        };
        let page = MessagePage {
            chrome: None,
            notice: None,
            title,
            text,
        };
        (status, render(&page)).into_response()
    }
}

type WebResult = Result<Response, WebError>;

fn render<T: Template>(t: &T) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            eprintln!("portal: template: {e}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

struct Chrome {
    user: String,
    role: &'static str,
    support: bool,
    csrf: String,
}

struct Auth {
    user: User,
    csrf: String,
}

impl Auth {
    fn chrome(&self) -> Option<Chrome> {
        Some(Chrome {
            user: self.user.username.clone(),
            role: self.user.role.as_str(),
            support: self.user.role == Role::Support,
            csrf: self.csrf.clone(),
        })
    }

    fn check_csrf(&self, form: &HashMap<String, String>) -> Result<(), WebError> {
        if form.get("csrf").is_some_and(|t| same_token(t, &self.csrf)) {
            Ok(())
        } else {
            Err(WebError::Forbidden)
        }
    }

    /// The customer this login is for, or 404 for any other role.
    fn customer(&self) -> Result<&str, WebError> {
        match (self.user.role, &self.user.customer_id) {
            (Role::Customer, Some(c)) => Ok(c),
            _ => Err(WebError::NotFound),
        }
    }

    fn support(&self) -> Result<String, WebError> {
        if self.user.role == Role::Support {
            Ok(format!("support:{}", self.user.username))
        } else {
            Err(WebError::NotFound)
        }
    }
}

/// A support login's form: the name its changes are audited under, once the CSRF token matched.
fn support_post(
    app: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<String, WebError> {
    let a = auth(app, headers)?;
    let who = a.support()?;
    a.check_csrf(form)?;
    Ok(who)
}

/// A customer's form on license `id`: the name their changes are audited under and the
/// license (404 before the CSRF check when it is not theirs).
async fn customer_post(
    app: &AppState,
    headers: &HeaderMap,
    id: &str,
    form: &HashMap<String, String>,
) -> Result<(String, LicenseRow), WebError> {
    let a = auth(app, headers)?;
    let row = app.portal.license_of(a.customer()?, id).await?;
    a.check_csrf(form)?;
    Ok((format!("customer:{}", a.user.username), row))
}

fn auth(app: &AppState, headers: &HeaderMap) -> Result<Auth, WebError> {
    let id = cookie(headers, SESSION_COOKIE).ok_or(WebError::Login)?;
    let mut sessions = app.sessions.lock().map_err(|_| WebError::Login)?;
    let now = Instant::now();
    sessions.retain(|_, s| now.duration_since(s.last_seen) < SESSION_IDLE);
    let s = sessions.get_mut(&id).ok_or(WebError::Login)?;
    s.last_seen = now;
    Ok(Auth {
        user: s.user.clone(),
        csrf: s.csrf.clone(),
    })
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/services", get(services))
        .route("/services/{id}", get(service))
        .route("/services/{id}/upgrade", post(customer_upgrade))
        .route("/services/{id}/renew", post(customer_renew))
        .route("/services/{id}/key", post(customer_key))
        .route("/services/{id}/offline", post(customer_offline))
        .route("/orders", get(customer_orders))
        .route("/support", get(support_home))
        .route("/support/customers", post(support_add_customer))
        .route("/support/licenses", post(support_add_license))
        .route("/support/licenses/{id}", get(support_license))
        .route("/support/licenses/{id}/{action}", post(support_action))
        .route("/support/orders", get(support_orders))
        .route("/support/orders/{id}/{action}", post(support_order_action))
        .route("/support/audit", get(support_audit))
}

async fn home(State(app): State<AppState>, headers: HeaderMap) -> WebResult {
    let a = auth(&app, &headers)?;
    Ok(match a.user.role {
        Role::Support => Redirect::to("/support"),
        Role::Customer => Redirect::to("/services"),
    }
    .into_response())
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    chrome: Option<Chrome>,
    notice: Option<String>,
    csrf: String,
    error: Option<String>,
}

fn login_form(error: Option<String>, status: StatusCode) -> Response {
    let csrf = random_token();
    let page = LoginPage {
        chrome: None,
        notice: None,
        csrf: csrf.clone(),
        error,
    };
    (
        status,
        [(
            header::SET_COOKIE,
            format!("{LOGIN_CSRF_COOKIE}={csrf}; Path=/login; HttpOnly; SameSite=Strict"),
        )],
        render(&page),
    )
        .into_response()
}

async fn login_page() -> Response {
    login_form(None, StatusCode::OK)
}

async fn login(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let expected = cookie(&headers, LOGIN_CSRF_COOKIE);
    let matches = match (form.get("csrf"), &expected) {
        (Some(given), Some(expected)) => same_token(given, expected),
        _ => false,
    };
    if !matches {
        return Err(WebError::Forbidden);
    }
    let name = form
        .get("user")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let password = form.get("password").map(String::as_str).unwrap_or_default();
    let now = Instant::now();
    let throttled = app.failures.lock().is_ok_and(|mut f| {
        let list = f.entry(name.clone()).or_default();
        list.retain(|t| now.duration_since(*t) < THROTTLE_WINDOW);
        list.len() >= MAX_FAILURES
    });
    if throttled {
        return Ok(login_form(
            Some("Too many failed logins for this user; try again in 15 minutes.".into()),
            StatusCode::TOO_MANY_REQUESTS,
        ));
    }
    let Some(user) = app.portal.login(&name, password).await? else {
        if let Ok(mut f) = app.failures.lock() {
            // Names anyone can invent must not grow the map without bound.
            if f.len() > 10_000 {
                f.retain(|_, l| l.iter().any(|t| now.duration_since(*t) < THROTTLE_WINDOW));
            }
            f.entry(name).or_default().push(now);
        }
        return Ok(login_form(
            Some("Wrong user name or password.".into()),
            StatusCode::UNAUTHORIZED,
        ));
    };
    if let Ok(mut f) = app.failures.lock() {
        f.remove(&name);
    }
    let id = random_token();
    let target = match user.role {
        Role::Support => "/support",
        Role::Customer => "/services",
    };
    if let Ok(mut s) = app.sessions.lock() {
        s.insert(
            id.clone(),
            Session {
                user,
                csrf: random_token(),
                last_seen: now,
            },
        );
    }
    Ok((
        [(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict"),
        )],
        Redirect::to(target),
    )
        .into_response())
}

async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let a = auth(&app, &headers)?;
    a.check_csrf(&form)?;
    if let (Some(id), Ok(mut s)) = (cookie(&headers, SESSION_COOKIE), app.sessions.lock()) {
        s.remove(&id);
    }
    Ok((
        [(
            header::SET_COOKIE,
            format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
        Redirect::to("/login"),
    )
        .into_response())
}

// ---- view rows ------------------------------------------------------------------------

struct LicRow {
    id: String,
    customer: String,
    customer_id: String,
    status: String,
    limit: u32,
    formal_end: String,
    grace_end: String,
    token: String,
    binding: String,
    concurrent: bool,
    systems: u32,
    allowed: u32,
}

impl From<&LicenseView> for LicRow {
    fn from(v: &LicenseView) -> LicRow {
        LicRow {
            id: v.row.id.clone(),
            customer: v.customer.name.clone(),
            customer_id: v.customer.id.clone(),
            status: v.status.clone(),
            limit: v.limit,
            formal_end: v.row.formal_end.to_string(),
            grace_end: v.grace_end.to_string(),
            token: v.row.token.clone(),
            binding: v.row.binding.to_string(),
            concurrent: v.verdict.concurrent,
            systems: v.verdict.systems,
            allowed: v.verdict.allowed,
        }
    }
}

struct OrderV {
    id: String,
    license_id: String,
    kind: &'static str,
    what: String,
    status: &'static str,
    created: String,
    completed: String,
}

impl From<&Order> for OrderV {
    fn from(o: &Order) -> OrderV {
        OrderV {
            id: o.id.clone(),
            license_id: o.license_id.clone(),
            kind: o.kind.as_str(),
            what: match (o.channels, o.months) {
                (_, Some(m)) => format!("{m} months"),
                (Some(c), None) => format!("{c} channels"),
                _ => String::new(),
            },
            status: o.status.as_str(),
            created: rfc3339(o.created_at),
            completed: o.completed_at.map(rfc3339).unwrap_or_default(),
        }
    }
}

struct AuditV {
    at: String,
    who: String,
    action: String,
    license: String,
    customer: String,
    details: String,
}

impl From<&AuditEntry> for AuditV {
    fn from(a: &AuditEntry) -> AuditV {
        AuditV {
            at: rfc3339(a.at),
            who: a.who.clone(),
            action: a.action.clone(),
            license: a.license_id.clone().unwrap_or_default(),
            customer: a.customer_id.clone().unwrap_or_default(),
            details: a.details.clone(),
        }
    }
}

struct CheckinV {
    boot_id: String,
    install_id: String,
    hwid: String,
    version: String,
    first: String,
    last: String,
}

// ---- customer pages -------------------------------------------------------------------

#[derive(Template)]
#[template(path = "services.html")]
struct ServicesPage {
    chrome: Option<Chrome>,
    notice: Option<String>,
    customer: String,
    licenses: Vec<LicRow>,
}

async fn services(State(app): State<AppState>, headers: HeaderMap) -> WebResult {
    let a = auth(&app, &headers)?;
    let customer = a.customer()?;
    let mut licenses = Vec::new();
    for row in app.portal.licenses(Some(customer)).await? {
        licenses.push(LicRow::from(&app.portal.view(row).await?));
    }
    let page = ServicesPage {
        chrome: a.chrome(),
        notice: None,
        customer: app.portal.customer(customer).await?.name,
        licenses,
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "service.html")]
struct ServicePage {
    chrome: Option<Chrome>,
    notice: Option<String>,
    csrf: String,
    l: LicRow,
    tiers: Vec<Tier>,
    orders: Vec<OrderV>,
}

async fn service(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> WebResult {
    let a = auth(&app, &headers)?;
    let row = app.portal.license_of(a.customer()?, &id).await?;
    let view = app.portal.view(row).await?;
    let page = ServicePage {
        chrome: a.chrome(),
        notice: q.get("done").cloned(),
        csrf: a.csrf.clone(),
        l: LicRow::from(&view),
        tiers: app.portal.tiers().await?,
        orders: view.orders.iter().map(OrderV::from).collect(),
    };
    Ok(render(&page))
}

fn back(path: &str, notice: &str) -> Response {
    let q = serde_urlencoded_pair("done", notice);
    Redirect::to(&format!("{path}?{q}")).into_response()
}

/// `key=value` with the value percent-encoded (no dependency for one query pair).
fn serde_urlencoded_pair(key: &str, value: &str) -> String {
    let enc: String = value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{key}={enc}")
}

async fn customer_upgrade(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let (who, row) = customer_post(&app, &headers, &id, &form).await?;
    let tier_id = form.get("tier").cloned().unwrap_or_default();
    customer_order(&app, &who, &row, OrderRequest::Upgrade { tier_id }).await
}

async fn customer_order(
    app: &AppState,
    who: &str,
    row: &LicenseRow,
    request: OrderRequest,
) -> WebResult {
    let order = app.portal.place_order(who, &row.id, request).await?;
    Ok(back(
        &format!("/services/{}", row.id),
        &format!("Order {} placed: pending until paid.", order.id),
    ))
}

async fn customer_renew(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let (who, row) = customer_post(&app, &headers, &id, &form).await?;
    let months = number(&form, "months")?;
    customer_order(&app, &who, &row, OrderRequest::Renewal { months }).await
}

fn attachment(issued: &Issued, name: &str) -> Response {
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8".to_string(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        issued.license.clone(),
    )
        .into_response()
}

async fn customer_key(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let (who, row) = customer_post(&app, &headers, &id, &form).await?;
    let target = Target::from_fields(
        form.get("hwid").map(String::as_str),
        form.get("domain").map(String::as_str),
    )?;
    let issued = app.portal.issue_for(&who, row, &target).await?;
    Ok(attachment(&issued, "license.key"))
}

async fn customer_offline(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    mut multipart: Multipart,
) -> WebResult {
    let a = auth(&app, &headers)?;
    let row = app.portal.license_of(a.customer()?, &id).await?;
    let mut fields = HashMap::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| WebError::Bad(format!("upload: {e}")))?
    {
        let name = field.name().unwrap_or_default().to_string();
        let text = field
            .text()
            .await
            .map_err(|e| WebError::Bad(format!("upload: {e}")))?;
        fields.insert(name, text);
    }
    a.check_csrf(&fields)?;
    let request = fields
        .get("request")
        .ok_or_else(|| WebError::Bad("request: no file uploaded".into()))?;
    let who = format!("customer:{}", a.user.username);
    let issued = app.portal.offline_for(&who, &row.id, request).await?;
    Ok(attachment(&issued, "license.key"))
}

#[derive(Template)]
#[template(path = "orders.html")]
struct OrdersPage {
    chrome: Option<Chrome>,
    notice: Option<String>,
    support: bool,
    csrf: String,
    orders: Vec<OrderV>,
}

async fn customer_orders(State(app): State<AppState>, headers: HeaderMap) -> WebResult {
    let a = auth(&app, &headers)?;
    let orders = app.portal.orders(None, Some(a.customer()?)).await?;
    let page = OrdersPage {
        chrome: a.chrome(),
        notice: None,
        support: false,
        csrf: a.csrf.clone(),
        orders: orders.iter().map(OrderV::from).collect(),
    };
    Ok(render(&page))
}

// ---- support console ------------------------------------------------------------------

#[derive(Template)]
#[template(path = "support.html")]
struct SupportPage {
    chrome: Option<Chrome>,
    notice: Option<String>,
    csrf: String,
    licenses: Vec<LicRow>,
    customers: Vec<crate::db::Customer>,
}

async fn support_home(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> WebResult {
    let a = auth(&app, &headers)?;
    a.support()?;
    let mut licenses = Vec::new();
    for row in app.portal.licenses(None).await? {
        licenses.push(LicRow::from(&app.portal.view(row).await?));
    }
    let page = SupportPage {
        chrome: a.chrome(),
        notice: q.get("done").cloned(),
        csrf: a.csrf.clone(),
        licenses,
        customers: app.portal.customers().await?,
    };
    Ok(render(&page))
}

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    form.get(name).map(|s| s.trim()).filter(|s| !s.is_empty())
}

fn number(form: &HashMap<String, String>, name: &str) -> Result<u32, WebError> {
    let v = field(form, name).unwrap_or_default();
    v.parse()
        .map_err(|_| WebError::Bad(format!("{name}: {v:?} is not a whole number")))
}

fn date(form: &HashMap<String, String>, name: &str) -> Result<jiff::civil::Date, WebError> {
    let v = field(form, name).unwrap_or_default();
    v.parse()
        .map_err(|_| WebError::Bad(format!("{name}: {v:?} is not a date like 2026-12-31")))
}

async fn support_add_customer(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let who = support_post(&app, &headers, &form)?;
    let c = app
        .portal
        .add_customer(&who, field(&form, "name").unwrap_or_default())
        .await?;
    if let Some(login) = field(&form, "login") {
        let pw = form.get("password").map(String::as_str).unwrap_or_default();
        app.portal
            .add_user(&who, login, pw, Role::Customer, Some(&c.id))
            .await?;
    }
    Ok(back("/support", &format!("Customer {} added.", c.id)))
}

async fn support_add_license(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let who = support_post(&app, &headers, &form)?;
    let trial = field(&form, "trial").is_some();
    let formal_end = match field(&form, "formal_end") {
        Some(_) => Some(date(&form, "formal_end")?),
        None => None,
    };
    let row = app
        .portal
        .add_license(
            &who,
            field(&form, "customer").unwrap_or_default(),
            number(&form, "channels")?,
            formal_end,
            trial,
            BindingState::Hwid(None),
        )
        .await?;
    Ok(back(
        &format!("/support/licenses/{}", row.id),
        &format!("License {} added, token {}.", row.id, row.token),
    ))
}

#[derive(Template)]
#[template(path = "support_license.html")]
struct SupportLicensePage {
    chrome: Option<Chrome>,
    notice: Option<String>,
    csrf: String,
    l: LicRow,
    tiers: Vec<Tier>,
    grants: Vec<(String, String)>,
    orders: Vec<OrderV>,
    checkins: Vec<CheckinV>,
    audit: Vec<AuditV>,
}

async fn support_license(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> WebResult {
    let a = auth(&app, &headers)?;
    a.support()?;
    let view = app.portal.view(app.portal.license(&id).await?).await?;
    let page = SupportLicensePage {
        chrome: a.chrome(),
        notice: q.get("done").cloned(),
        csrf: a.csrf.clone(),
        l: LicRow::from(&view),
        tiers: app.portal.tiers().await?,
        grants: view
            .grants
            .iter()
            .map(|g| {
                let text = match g.grant {
                    license::Grant::Increase {
                        channels,
                        start,
                        end,
                    } => format!("limit {channels} channels from {start} until {end}"),
                    license::Grant::Concurrent { systems, until } => {
                        format!("{systems} systems at once until {until}")
                    }
                };
                (text, rfc3339(g.created_at))
            })
            .collect(),
        orders: view.orders.iter().map(OrderV::from).collect(),
        checkins: view
            .checkins
            .iter()
            .map(|c| CheckinV {
                boot_id: c.boot_id.clone(),
                install_id: c.install_id.clone(),
                hwid: c.hwid.clone(),
                version: c.version.clone(),
                first: rfc3339(c.first_seen),
                last: rfc3339(c.last_seen),
            })
            .collect(),
        audit: app
            .portal
            .audit_log(Some(&id), 200)
            .await?
            .iter()
            .map(AuditV::from)
            .collect(),
    };
    Ok(render(&page))
}

async fn support_action(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let who = support_post(&app, &headers, &form)?;
    let p = &app.portal;
    let mut target_license = id.clone();
    let notice = match action.as_str() {
        "increase" => {
            let g = p
                .increase(&who, &id, number(&form, "channels")?, date(&form, "until")?)
                .await?;
            format!("Grant {} added.", g.id)
        }
        "allow-concurrent" => {
            let g = p
                .allow_concurrent(&who, &id, number(&form, "systems")?, date(&form, "until")?)
                .await?;
            format!("Grant {} added.", g.id)
        }
        "bind" => {
            let t = Target::from_fields(field(&form, "hwid"), field(&form, "domain"))?;
            let row = p.bind(&who, &id, t).await?;
            format!("Now bound to {}.", row.binding)
        }
        "cancel" => {
            let row = p.cancel(&who, &id).await?;
            format!("Cancelled: access ends after {}.", row.formal_end)
        }
        "emergency-trial" => {
            let row = p.emergency_trial(&who, &id).await?;
            target_license = row.id.clone();
            format!(
                "Emergency trial {} until {}, token {}.",
                row.id, row.formal_end, row.token
            )
        }
        "upgrade" => {
            let tier_id = field(&form, "tier").unwrap_or_default().to_string();
            let o = p
                .place_order(&who, &id, OrderRequest::Upgrade { tier_id })
                .await?;
            format!("Order {} placed.", o.id)
        }
        "renew" => {
            let months = number(&form, "months")?;
            let o = p
                .place_order(&who, &id, OrderRequest::Renewal { months })
                .await?;
            format!("Order {} placed.", o.id)
        }
        _ => return Err(WebError::NotFound),
    };
    Ok(back(
        &format!("/support/licenses/{target_license}"),
        &notice,
    ))
}

async fn support_orders(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> WebResult {
    let a = auth(&app, &headers)?;
    a.support()?;
    let orders = app.portal.orders(None, None).await?;
    let page = OrdersPage {
        chrome: a.chrome(),
        notice: q.get("done").cloned(),
        support: true,
        csrf: a.csrf.clone(),
        orders: orders.iter().map(OrderV::from).collect(),
    };
    Ok(render(&page))
}

async fn support_order_action(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> WebResult {
    let who = support_post(&app, &headers, &form)?;
    let o = match action.as_str() {
        "paid" => app.portal.order_paid(&who, &id).await?,
        "processing" => app.portal.order_processing(&who, &id).await?,
        _ => return Err(WebError::NotFound),
    };
    Ok(back(
        "/support/orders",
        &format!("Order {} is {}.", o.id, o.status.as_str()),
    ))
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    chrome: Option<Chrome>,
    notice: Option<String>,
    audit: Vec<AuditV>,
}

async fn support_audit(State(app): State<AppState>, headers: HeaderMap) -> WebResult {
    let a = auth(&app, &headers)?;
    a.support()?;
    let page = AuditPage {
        chrome: a.chrome(),
        notice: None,
        audit: app
            .portal
            .audit_log(None, 1000)
            .await?
            .iter()
            .map(AuditV::from)
            .collect(),
    };
    Ok(render(&page))
}

#[derive(Template)]
#[template(path = "message.html")]
struct MessagePage {
    chrome: Option<Chrome>,
    notice: Option<String>,
    title: &'static str,
    text: String,
}

//! Who is asking: passwords (argon2id), sessions (an opaque random id in an HttpOnly cookie,
//! state kept in memory), CSRF tokens, HTTP Basic for scripts, and the failed-login throttle.
//!
//! Sessions live in memory on purpose: a restart logs everybody out, which is acceptable for
//! an operator GUI and keeps stolen database copies free of live session ids.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use blake2::Blake2bMac;
use blake2::digest::Mac;
use blake2::digest::consts::U32;
use license::rand_core::RngCore;
use store::Role;

use crate::error::{ServerError, chain};
use crate::state::AppState;

pub const SESSION_COOKIE: &str = "sipmeter_session";
/// Cookie of the login form's CSRF token: there is no session yet to keep it in, so the form
/// field must match this cookie (double submit).
pub const LOGIN_CSRF_COOKIE: &str = "sipmeter_login_csrf";
/// A session unused this long is gone.
const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);
/// Failed logins are counted over this window.
pub const THROTTLE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures for one user name from one address within the window before that pair is refused.
/// Only the pair: an anonymous visitor guessing `admin`'s password must not lock the real
/// admin out from the admin's own address.
pub const MAX_FAILURES_PER_USER: usize = 5;
/// Failures for one user name from all addresses together before the name itself is refused
/// (a distributed guess); far above what a forgetful user reaches, and logged when it happens.
pub const MAX_FAILURES_PER_USER_EVERYWHERE: usize = 100;
/// Failures per client address within the window before the address is refused (higher: many
/// users may share an address behind NAT).
pub const MAX_FAILURES_PER_IP: usize = 20;

/// A random token: 32 bytes from the operating system, hex.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    license::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An argon2id PHC hash of `password` with a fresh salt.
pub fn hash_password(password: &str) -> Result<String, ServerError> {
    let mut salt = [0u8; 16];
    license::OsRng.fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|_| ServerError::Hash)?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| ServerError::Hash)
}

/// Whether `password` matches `hash`; a malformed hash matches nothing.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A logged-in user as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthUser {
    pub name: String,
    pub role: Role,
    /// The session's CSRF token; `None` for HTTP Basic (no cookie, so nothing to forge).
    pub csrf: Option<String>,
}

#[derive(Debug, Clone)]
struct Session {
    name: String,
    role: Role,
    csrf: String,
    last_seen: Instant,
}

#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    /// A new session; returns its id (the cookie value).
    pub fn create(&self, name: &str, role: Role) -> String {
        let id = random_token();
        if let Ok(mut m) = self.0.lock() {
            let now = Instant::now();
            m.retain(|_, s| now.duration_since(s.last_seen) < SESSION_IDLE);
            m.insert(
                id.clone(),
                Session {
                    name: name.to_string(),
                    role,
                    csrf: random_token(),
                    last_seen: now,
                },
            );
        }
        id
    }

    /// The session's user, refreshing its idle timer.
    pub fn get(&self, id: &str) -> Option<AuthUser> {
        let mut m = self.0.lock().ok()?;
        let now = Instant::now();
        let s = m.get_mut(id)?;
        if now.duration_since(s.last_seen) >= SESSION_IDLE {
            m.remove(id);
            return None;
        }
        s.last_seen = now;
        Some(AuthUser {
            name: s.name.clone(),
            role: s.role,
            csrf: Some(s.csrf.clone()),
        })
    }

    /// Ends every session of `name` but `keep` (after a password change).
    pub fn remove_user_except(&self, name: &str, keep: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.retain(|id, s| s.name != name || id == keep);
        }
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut m) = self.0.lock() {
            m.remove(id);
        }
    }
}

/// Failed logins per (user name, client address), per address and per user name over all
/// addresses, over a sliding window.
#[derive(Default)]
pub struct Throttle(Mutex<ThrottleInner>);

#[derive(Default)]
struct ThrottleInner {
    pairs: HashMap<(String, IpAddr), Vec<Instant>>,
    users: HashMap<String, Vec<Instant>>,
    ips: HashMap<IpAddr, Vec<Instant>>,
}

/// Why a login is refused before its password is even checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Throttled {
    /// This user name from this address.
    User { retry_after: Duration },
    /// This address, whatever the name.
    Ip { retry_after: Duration },
    /// This user name from everywhere: a distributed guess.
    UserEverywhere { retry_after: Duration },
}

impl Throttled {
    pub fn retry_after(&self) -> Duration {
        match self {
            Throttled::User { retry_after }
            | Throttled::Ip { retry_after }
            | Throttled::UserEverywhere { retry_after } => *retry_after,
        }
    }

    pub fn message(&self) -> String {
        let mins = self.retry_after().as_secs().div_ceil(60).max(1);
        let unit = if mins == 1 { "minute" } else { "minutes" };
        match self {
            Throttled::User { .. } => format!(
                "Too many failed logins for this user. Login is blocked for {mins} {unit}; try again later."
            ),
            Throttled::Ip { .. } => format!(
                "Too many failed logins from your address. Login is blocked for {mins} {unit}; try again later."
            ),
            Throttled::UserEverywhere { .. } => format!(
                "Too many failed logins for this user from many addresses. Login is blocked for {mins} {unit}; try again later."
            ),
        }
    }
}

fn prune(v: &mut Vec<Instant>, now: Instant) {
    v.retain(|t| now.duration_since(*t) < THROTTLE_WINDOW);
}

fn blocked(v: &[Instant], max: usize, now: Instant) -> Option<Duration> {
    if v.len() < max {
        return None;
    }
    // Blocked until enough of the failures have aged out of the window.
    let oldest_that_counts = v[v.len() - max];
    Some(THROTTLE_WINDOW.saturating_sub(now.duration_since(oldest_that_counts)))
}

impl Throttle {
    pub fn check(&self, user: &str, ip: IpAddr) -> Option<Throttled> {
        let mut t = self.0.lock().ok()?;
        let now = Instant::now();
        if let Some(v) = t.pairs.get_mut(&(user.to_string(), ip)) {
            prune(v, now);
            if let Some(retry_after) = blocked(v, MAX_FAILURES_PER_USER, now) {
                return Some(Throttled::User { retry_after });
            }
        }
        if let Some(v) = t.ips.get_mut(&ip) {
            prune(v, now);
            if let Some(retry_after) = blocked(v, MAX_FAILURES_PER_IP, now) {
                return Some(Throttled::Ip { retry_after });
            }
        }
        if let Some(v) = t.users.get_mut(user) {
            prune(v, now);
            if let Some(retry_after) = blocked(v, MAX_FAILURES_PER_USER_EVERYWHERE, now) {
                return Some(Throttled::UserEverywhere { retry_after });
            }
        }
        None
    }

    pub fn failed(&self, user: &str, ip: IpAddr) {
        if let Ok(mut t) = self.0.lock() {
            let now = Instant::now();
            // Bound memory against a flood of made-up user names or addresses.
            if t.pairs.len() > 100_000 || t.users.len() > 100_000 || t.ips.len() > 100_000 {
                t.pairs.retain(|_, v| {
                    prune(v, now);
                    !v.is_empty()
                });
                t.users.retain(|_, v| {
                    prune(v, now);
                    !v.is_empty()
                });
                t.ips.retain(|_, v| {
                    prune(v, now);
                    !v.is_empty()
                });
            }
            t.pairs.entry((user.to_string(), ip)).or_default().push(now);
            t.ips.entry(ip).or_default().push(now);
            let everywhere = t.users.entry(user.to_string()).or_default();
            everywhere.push(now);
            if everywhere.len() == MAX_FAILURES_PER_USER_EVERYWHERE {
                tracing::warn!(
                    "{MAX_FAILURES_PER_USER_EVERYWHERE} failed logins for user {user:?} from several addresses within {} minutes: that user name is blocked everywhere for a while",
                    THROTTLE_WINDOW.as_secs() / 60
                );
            }
        }
    }

    /// A successful login clears this user's failures from this address (not the address's
    /// own count, nor those of other addresses).
    pub fn succeeded(&self, user: &str, ip: IpAddr) {
        if let Ok(mut t) = self.0.lock() {
            t.pairs.remove(&(user.to_string(), ip));
        }
    }
}

/// How long a successful HTTP Basic check is trusted without running argon2 again.
pub const BASIC_CACHE_TTL: Duration = Duration::from_secs(5 * 60);
/// Most remembered HTTP Basic checks; beyond it the stale ones go, then all of them.
const BASIC_CACHE_MAX: usize = 10_000;

/// Successful HTTP Basic checks, remembered for [`BASIC_CACHE_TTL`], so that a script calling
/// the API does not pay an argon2 hash (tens of ms of CPU) per request.
///
/// The password itself is never kept: an entry is keyed by the user name and a keyed BLAKE2b
/// tag of the password, under a random key that lives only in this process. An entry also
/// holds the argon2 hash it was verified against; a hit requires the user's current hash to be
/// that same string, so a changed password (from the GUI or another process on the same
/// database) or a deleted user is refused at once, and the role is always read afresh. Only
/// successes are remembered: a wrong password always goes through argon2 and the throttle.
pub struct BasicCache {
    key: [u8; 32],
    entries: Mutex<HashMap<(String, [u8; 32]), BasicEntry>>,
    hits: AtomicU64,
}

struct BasicEntry {
    password_hash: String,
    verified_at: Instant,
}

impl Default for BasicCache {
    fn default() -> BasicCache {
        let mut key = [0u8; 32];
        license::OsRng.fill_bytes(&mut key);
        BasicCache {
            key,
            entries: Mutex::default(),
            hits: AtomicU64::new(0),
        }
    }
}

impl BasicCache {
    fn tag(&self, password: &str) -> [u8; 32] {
        let mut mac = <Blake2bMac<U32> as Mac>::new_from_slice(&self.key)
            .expect("a 32-byte key suits BLAKE2b");
        mac.update(password.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Whether `password` of `name` was verified against `current_hash` (the user's hash in
    /// the store now) within the TTL.
    pub fn hit(&self, name: &str, password: &str, current_hash: &str) -> bool {
        let key = (name.to_string(), self.tag(password));
        let Ok(mut m) = self.entries.lock() else {
            return false;
        };
        let fresh = match m.get(&key) {
            None => return false,
            Some(e) => {
                e.verified_at.elapsed() < BASIC_CACHE_TTL
                    && tokens_equal(&e.password_hash, current_hash)
            }
        };
        if !fresh {
            m.remove(&key);
            return false;
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Remembers that `password` of `name` matched `password_hash`.
    pub fn remember(&self, name: &str, password: &str, password_hash: &str) {
        let key = (name.to_string(), self.tag(password));
        if let Ok(mut m) = self.entries.lock() {
            if m.len() >= BASIC_CACHE_MAX {
                m.retain(|_, e| e.verified_at.elapsed() < BASIC_CACHE_TTL);
                if m.len() >= BASIC_CACHE_MAX {
                    m.clear();
                }
            }
            m.insert(
                key,
                BasicEntry {
                    password_hash: password_hash.to_string(),
                    verified_at: Instant::now(),
                },
            );
        }
    }

    /// Requests answered from the cache since the start.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

/// Why a login failed.
#[derive(Debug)]
pub enum LoginError {
    Throttled(Throttled),
    Wrong,
    Internal,
}

/// Checks a user name and password, with the throttle. Unknown users cost the same argon2
/// work as known ones, so timing does not tell which names exist.
pub async fn check_login(
    app: &AppState,
    name: &str,
    password: &str,
    ip: IpAddr,
) -> Result<AuthUser, LoginError> {
    let user = throttled_lookup(app, name, ip).await?;
    verify_login(app, name, password, ip, user).await
}

/// HTTP Basic credentials of an API request: the throttle first (always), then the cache of
/// recent successes against the user's current hash, else the full login check (argon2,
/// throttle bookkeeping), whose success is remembered.
pub async fn check_basic(
    app: &AppState,
    name: &str,
    password: &str,
    ip: IpAddr,
) -> Result<AuthUser, LoginError> {
    let user = throttled_lookup(app, name, ip).await?;
    if let Some(u) = &user
        && app.basic_auth.hit(name, password, &u.password_hash)
    {
        return Ok(AuthUser {
            name: u.name.clone(),
            role: u.role,
            csrf: None,
        });
    }
    // Remembered with the hash the password was checked against: if the password changes
    // later, the entry never matches the new hash, so the race fails closed.
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let ok = verify_login(app, name, password, ip, user).await?;
    if let Some(hash) = hash {
        app.basic_auth.remember(name, password, &hash);
    }
    Ok(ok)
}

/// What every password check starts with: the throttle, then the user's row.
async fn throttled_lookup(
    app: &AppState,
    name: &str,
    ip: IpAddr,
) -> Result<Option<store::User>, LoginError> {
    if let Some(t) = app.throttle.check(name, ip) {
        app.metrics.logins_failed.fetch_add(1, Ordering::Relaxed);
        return Err(LoginError::Throttled(t));
    }
    app.store.user_by_name(name).await.map_err(|e| {
        tracing::error!("user lookup: {}", chain(&e));
        LoginError::Internal
    })
}

/// The password against the user's hash (or the dummy hash for an unknown user) on a
/// blocking thread, and the throttle's bookkeeping.
async fn verify_login(
    app: &AppState,
    name: &str,
    password: &str,
    ip: IpAddr,
    user: Option<store::User>,
) -> Result<AuthUser, LoginError> {
    let hash = user
        .as_ref()
        .map_or(app.dummy_hash.clone(), |u| u.password_hash.clone());
    let pw = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &pw))
        .await
        .unwrap_or(false);
    match user {
        Some(u) if ok => {
            app.throttle.succeeded(name, ip);
            Ok(AuthUser {
                name: u.name,
                role: u.role,
                csrf: None,
            })
        }
        _ => {
            app.throttle.failed(name, ip);
            app.metrics.logins_failed.fetch_add(1, Ordering::Relaxed);
            Err(LoginError::Wrong)
        }
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value for a cookie the page scripts never need (there are none); `secure`
/// when browsers reach us over HTTPS, so the cookie never travels in clear.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>, secure: bool) -> String {
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}{age}")
}

/// User name and password of an `Authorization: Basic` header.
pub fn basic_credentials(headers: &axum::http::HeaderMap) -> Option<(String, String)> {
    let v = headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, rest) = v.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

/// Compares two tokens in time independent of where they differ.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The `csrf` field of a form body, urlencoded or multipart; `None` when absent or the body
/// is not a form.
pub fn csrf_field(content_type: &str, body: &[u8]) -> Option<String> {
    let ct = content_type.trim().to_ascii_lowercase();
    if ct.starts_with("application/x-www-form-urlencoded") {
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(body);
        return pairs.into_iter().find(|(k, _)| k == "csrf").map(|(_, v)| v);
    }
    if ct.starts_with("multipart/form-data") {
        let boundary = content_type
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
            .map(|(_, v)| v.trim().trim_matches('"').to_string())?;
        return multipart_text_field(body, &boundary, "csrf");
    }
    None
}

fn serde_urlencoded_pairs(body: &[u8]) -> Vec<(String, String)> {
    serde_urlencoded::from_bytes(body).unwrap_or_default()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The text of a small named field of a multipart body (headers then CRLF CRLF then the
/// value, up to the CRLF before the next delimiter).
fn multipart_text_field(body: &[u8], boundary: &str, name: &str) -> Option<String> {
    let delim = format!("--{boundary}");
    let wanted = format!("name=\"{name}\"");
    let mut rest = body;
    while let Some(pos) = find(rest, delim.as_bytes()) {
        rest = &rest[pos + delim.len()..];
        let end = find(rest, delim.as_bytes()).unwrap_or(rest.len());
        let part = &rest[..end];
        if let Some(h) = find(part, b"\r\n\r\n") {
            let headers = String::from_utf8_lossy(&part[..h]);
            let is_field = headers.lines().any(|l| {
                l.to_ascii_lowercase().starts_with("content-disposition")
                    && l.split(';').any(|p| p.trim() == wanted)
            });
            if is_field {
                let value = &part[h + 4..];
                let value = value.strip_suffix(b"\r\n").unwrap_or(value);
                return String::from_utf8(value.to_vec()).ok();
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_hashes_verify_and_differ_by_salt() {
        let a = hash_password("s3cret").unwrap();
        let b = hash_password("s3cret").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(verify_password(&a, "s3cret"));
        assert!(!verify_password(&a, "s3cre"));
        assert!(!verify_password("not a hash", "s3cret"));
    }

    #[test]
    fn csrf_field_from_both_form_encodings() {
        assert_eq!(
            csrf_field("application/x-www-form-urlencoded", b"a=1&csrf=ab%20c&b=2"),
            Some("ab c".into())
        );
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"k\"\r\n\r\nname=\"csrf\"\r\n--XyZ\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\ntok123\r\n--XyZ--\r\n";
        assert_eq!(
            csrf_field("multipart/form-data; boundary=XyZ", body),
            Some("tok123".into())
        );
        assert_eq!(csrf_field("multipart/form-data; boundary=Q", body), None);
        assert_eq!(csrf_field("application/json", b"{\"csrf\":\"x\"}"), None);
        assert_eq!(csrf_field("multipart/form-data", b"--"), None);
    }

    #[test]
    fn throttle_blocks_a_user_after_repeated_failures_only() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..MAX_FAILURES_PER_USER {
            assert_eq!(t.check("admin", ip), None);
            t.failed("admin", ip);
        }
        let blocked = t.check("admin", ip).unwrap();
        assert!(matches!(blocked, Throttled::User { .. }));
        assert!(blocked.message().contains("Too many failed logins"));
        assert_eq!(t.check("other", ip), None);
        // The same user from another address is not blocked by them.
        assert_eq!(t.check("admin", "192.0.2.2".parse().unwrap()), None);
    }

    #[test]
    fn throttle_blocks_an_address_trying_many_names() {
        let t = Throttle::default();
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        for i in 0..MAX_FAILURES_PER_IP {
            assert_eq!(t.check(&format!("user{i}"), ip), None);
            t.failed(&format!("user{i}"), ip);
        }
        let blocked = t.check("fresh-name", ip).unwrap();
        assert!(matches!(blocked, Throttled::Ip { .. }));
        assert!(blocked.message().contains("from your address"));
        assert!(blocked.retry_after() <= THROTTLE_WINDOW);
        assert_eq!(t.check("fresh-name", "192.0.2.8".parse().unwrap()), None);
        // Success clears the user's count only.
        t.succeeded("user0", ip);
        assert!(t.check("user0", ip).is_some());
    }

    #[test]
    fn a_user_is_blocked_everywhere_only_after_many_addresses_failed() {
        let t = Throttle::default();
        for i in 0..MAX_FAILURES_PER_USER_EVERYWHERE {
            let ip = IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8 + 1]);
            assert_eq!(t.check("admin", ip), None, "attempt {i}");
            t.failed("admin", ip);
        }
        let b = t.check("admin", "192.0.2.99".parse().unwrap()).unwrap();
        assert!(matches!(b, Throttled::UserEverywhere { .. }), "{b:?}");
    }

    #[test]
    fn basic_credentials_parse_and_reject_garbage() {
        let mut h = axum::http::HeaderMap::new();
        h.insert("authorization", "Basic YWRtaW46cHc6eA==".parse().unwrap());
        assert_eq!(basic_credentials(&h), Some(("admin".into(), "pw:x".into())));
        h.insert("authorization", "Basic !!!".parse().unwrap());
        assert_eq!(basic_credentials(&h), None);
        h.insert("authorization", "Bearer abc".parse().unwrap());
        assert_eq!(basic_credentials(&h), None);
    }
}

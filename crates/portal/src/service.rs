//! The portal's actions: everything the pages, the API and the CLI do goes through
//! [`Portal`], so each action is validated, applied and written to the audit log in one
//! transaction, whoever asked. The license rules themselves live in the `license` crate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use license::rand_core::RngCore;
use license::{
    BootSeen, ConcurrentUse, Grant, Hwid, LIVE_WINDOW_US, LicenseTerms, Micros, SigningKey, Upgrade,
};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{Any, Row};

use crate::clock::Clock;
use crate::db::{
    AuditEntry, BindingState, Checkin, Customer, Db, GrantRow, KeyRow, LicenseRow, Order,
    OrderKind, OrderStatus, Role, Tier, User, flag,
};
use crate::error::{PortalError, Result};
use crate::secret::SecretKey;
use crate::trust::{InstallKey, SignedCheckin};

/// How long a served license file is good before the server should fetch a fresh one.
pub const REFRESH_AFTER_US: Micros = 7 * 24 * 3600 * 1_000_000;
/// Tiers created with a new database (support can sell any limit through the CLI).
const DEFAULT_TIERS: &[(u32, &str)] = &[
    (10, "EUR 190 / year"),
    (25, "EUR 390 / year"),
    (50, "EUR 690 / year"),
    (100, "EUR 1190 / year"),
    (200, "EUR 1990 / year"),
    (500, "EUR 3990 / year"),
    (1000, "EUR 6990 / year"),
];
/// Check-ins of a boot are kept this long after its last one.
pub const CHECKIN_HISTORY_US: Micros = 30 * 24 * 3600 * 1_000_000;
/// Longest free-text value accepted (names, ids from servers, versions).
const MAX_FIELD: usize = 200;

/// The vendor portal: database, clock, data directory and the secret key the signing keys
/// are sealed under.
#[derive(Clone)]
pub struct Portal {
    db: Db,
    clock: Arc<dyn Clock>,
    data_dir: PathBuf,
    secret: Arc<SecretKey>,
}

/// A license file served to a server.
#[derive(Debug, Clone, Serialize)]
pub struct Issued {
    pub license: String,
    pub license_id: String,
    /// `None` for an offline file (request file, key download): it never needs a refresh.
    pub refresh_by: Option<String>,
    #[serde(skip)]
    pub terms: LicenseTerms,
}

/// What a license is asked for: the machine or the domain it should run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Hwid(Hwid),
    Domain(String),
}

impl Target {
    /// From the optional `hwid` and `domain` fields of a request: exactly one must be given.
    pub fn from_fields(hwid: Option<&str>, domain: Option<&str>) -> Result<Target> {
        match (
            hwid.filter(|s| !s.trim().is_empty()),
            domain.filter(|s| !s.trim().is_empty()),
        ) {
            (Some(h), None) => {
                Ok(Target::Hwid(h.parse().map_err(|e: String| {
                    PortalError::bad(format!("hwid: {e}"))
                })?))
            }
            (None, Some(d)) => Ok(Target::Domain(license::normalize_domain(d).ok_or_else(
                || PortalError::bad(format!("domain: {d:?} is not a domain name")),
            )?)),
            (Some(_), Some(_)) => Err(PortalError::bad("give hwid or domain, not both")),
            (None, None) => Err(PortalError::bad("hwid or domain is required")),
        }
    }
}

impl BindingState {
    /// Whether a server asking for `target` is the one the license is bound to now (a
    /// hardware license not bound yet is anyone's to take).
    pub(crate) fn is_for(&self, target: &Target) -> bool {
        match (self, target) {
            (BindingState::Hwid(None), Target::Hwid(_)) => true,
            (BindingState::Hwid(Some(h)), Target::Hwid(t)) => h == t,
            (BindingState::Domain(d), Target::Domain(t)) => d == t,
            _ => false,
        }
    }
}

/// A server's check-in (what its installation key signed).
#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
pub struct CheckinRequest {
    pub license_id: String,
    pub hwid: String,
    /// The domain of a domain-bound license file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub install_id: String,
    pub boot_id: String,
    pub version: String,
    /// When the server made it (RFC 3339).
    pub at: String,
}

/// The answer to a check-in: the concurrent-use verdict, and whether the license has since
/// been re-bound elsewhere (the server then counts down to its lock).
#[derive(Debug, Clone)]
pub struct CheckinVerdict {
    pub verdict: ConcurrentUse,
    pub superseded: bool,
}

/// A license as the customer pages and the support console show it.
#[derive(Debug, Clone)]
pub struct LicenseView {
    pub row: LicenseRow,
    pub customer: Customer,
    pub limit: u32,
    pub grace_end: Date,
    pub access_end: Date,
    pub status: String,
    pub grants: Vec<GrantRow>,
    pub orders: Vec<Order>,
    pub checkins: Vec<Checkin>,
    pub verdict: ConcurrentUse,
}

/// What a renewal or upgrade order buys.
#[derive(Debug, Clone)]
pub enum OrderRequest {
    Renewal { months: u32 },
    Upgrade { tier_id: String },
}

fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    license::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02X}")).collect()
}

/// A new license token: 16 characters from an alphabet without look-alikes (0/O, 1/I).
fn new_token() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut b = [0u8; 16];
    license::OsRng.fill_bytes(&mut b);
    let chars: Vec<char> = b
        .iter()
        .map(|x| char::from(ALPHABET[usize::from(*x) % ALPHABET.len()]))
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// Hashes a password with Argon2 on the blocking pool: a hash takes tens of milliseconds of
/// CPU that must not stall the async workers serving other requests.
async fn hash_password(password: &str) -> Result<String> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let mut salt = [0u8; 16];
        license::OsRng.fill_bytes(&mut salt);
        let salt = SaltString::encode_b64(&salt).map_err(|_| PortalError::Hash)?;
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|_| PortalError::Hash)
    })
    .await
    .map_err(|_| PortalError::Hash)?
}

/// Whether `password` matches `hash`, checked on the blocking pool like [`hash_password`].
async fn verify_password(hash: &str, password: &str) -> Result<bool> {
    let (hash, password) = (hash.to_string(), password.to_string());
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .map_err(|_| PortalError::Hash)
}

pub(crate) fn text_field(what: &str, v: &str) -> Result<String> {
    let v = v.trim();
    if v.is_empty() || v.len() > MAX_FIELD || v.chars().any(char::is_control) {
        return Err(PortalError::bad(format!(
            "{what} must be 1 to {MAX_FIELD} characters without control characters"
        )));
    }
    Ok(v.to_string())
}

/// The token (normalized), target and check-in key of an offline request file.
fn parse_offline_request(text: &str) -> Result<(String, Target, Option<InstallKey>)> {
    #[derive(serde::Deserialize)]
    struct Request {
        sipmeter_license_request: u32,
        token: String,
        hwid: Option<String>,
        domain: Option<String>,
        install_id: Option<String>,
        install_key: Option<String>,
    }
    let req: Request = serde_json::from_str(text)
        .map_err(|e| PortalError::bad(format!("request file is not a license request: {e}")))?;
    if req.sipmeter_license_request != 1 {
        return Err(PortalError::bad(format!(
            "request file version {} is not supported",
            req.sipmeter_license_request
        )));
    }
    let token: license::LicenseToken = req
        .token
        .parse()
        .map_err(|e: String| PortalError::bad(format!("token: {e}")))?;
    let target = Target::from_fields(req.hwid.as_deref(), req.domain.as_deref())?;
    let install = InstallKey::from_fields(req.install_id.as_deref(), req.install_key.as_deref())?;
    Ok((token.to_string(), target, install))
}

fn ts(us: Micros) -> jiff::Timestamp {
    jiff::Timestamp::from_microsecond(us).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// An instant as the pages and the API show it: RFC 3339, whole seconds, UTC.
pub fn rfc3339(us: Micros) -> String {
    jiff::Timestamp::from_second(us.div_euclid(1_000_000))
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .to_string()
}

/// A statement with its values bound, ready to run in a transaction.
type Statement<'q> = sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>;

/// The audit log row written with a change.
pub(crate) struct AuditRow<'a> {
    pub at: Micros,
    pub who: &'a str,
    pub action: &'a str,
    pub license: Option<&'a str>,
    pub customer: Option<&'a str>,
    pub details: String,
}

impl Portal {
    /// Opens the portal on `data_dir` (created if missing) and `database` (default: SQLite
    /// `portal.db` in the data directory), with the secret key from
    /// `SIPMETER_PORTAL_SECRET_KEY` or `data_dir/portal-secret.key` (see
    /// [`Portal::open_with_key_file`]).
    pub async fn open(
        data_dir: &Path,
        database: Option<&str>,
        clock: Arc<dyn Clock>,
    ) -> Result<Portal> {
        Portal::open_with_key_file(data_dir, database, None, clock).await
    }

    /// Opens the portal on `data_dir` (created if missing) and `database` (default: SQLite
    /// `portal.db` in the data directory), migrating its schema. The signing keys are sealed
    /// under the portal secret key: from `secret_key_file` when given, else from the
    /// environment variable `SIPMETER_PORTAL_SECRET_KEY`, else from
    /// `data_dir/portal-secret.key` (created, mode 0600, when missing). Every stored signing
    /// key is opened here, so a wrong secret key fails now, naming its source. A new portal
    /// gets its first signing key and the default tiers; `signing.pub` is rewritten from the
    /// database every time.
    pub async fn open_with_key_file(
        data_dir: &Path,
        database: Option<&str>,
        secret_key_file: Option<&Path>,
        clock: Arc<dyn Clock>,
    ) -> Result<Portal> {
        let existed = data_dir.exists();
        std::fs::create_dir_all(data_dir).map_err(|source| PortalError::Io {
            what: format!("cannot create {}", data_dir.display()),
            source,
        })?;
        // The database holds the signing keys: a directory we create is the owner's alone.
        #[cfg(unix)]
        if !existed {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700)).map_err(
                |source| PortalError::Io {
                    what: format!("cannot restrict {}", data_dir.display()),
                    source,
                },
            )?;
        }
        let secret = SecretKey::locate(data_dir, secret_key_file)?;
        let url = match database {
            Some(u) => u.to_string(),
            None => format!("sqlite://{}", data_dir.join("portal.db").display()),
        };
        let db = Db::open(&url, &secret, clock.now()).await?;
        let portal = Portal {
            db,
            clock,
            data_dir: data_dir.to_path_buf(),
            secret: Arc::new(secret),
        };
        portal.first_start().await?;
        Ok(portal)
    }

    async fn first_start(&self) -> Result<()> {
        let keys: i64 = sqlx::query("SELECT COUNT(*) AS n FROM signing_keys")
            .fetch_one(&self.db.pool)
            .await?
            .try_get("n")?;
        if keys == 0 {
            self.rotate_key("portal").await?;
        } else {
            for k in self.keys().await? {
                self.unseal(&k)?;
            }
            self.write_public_keys().await?;
        }
        #[cfg(feature = "dev-keys")]
        self.certify_for_development().await?;
        let tiers: i64 = sqlx::query("SELECT COUNT(*) AS n FROM tiers")
            .fetch_one(&self.db.pool)
            .await?
            .try_get("n")?;
        if tiers == 0 {
            for (channels, price) in DEFAULT_TIERS {
                sqlx::query("INSERT INTO tiers (id, channels, price) VALUES ($1, $2, $3)")
                    .bind(format!("T{channels}"))
                    .bind(i64::from(*channels))
                    .bind(*price)
                    .execute(&self.db.pool)
                    .await?;
            }
        }
        Ok(())
    }

    pub fn now(&self) -> Micros {
        self.clock.now()
    }

    pub(crate) fn pool(&self) -> &sqlx::AnyPool {
        &self.db.pool
    }

    /// Today in the portal's zone (UTC): grant days and ends are calendar days there.
    pub fn today(&self) -> Date {
        license::day_of(self.now(), &TimeZone::UTC)
    }

    /// Which database engine this portal runs on.
    pub fn backend(&self) -> crate::db::Backend {
        self.db.backend
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where the portal secret key came from: its file, or the environment variable.
    pub fn secret_key_source(&self) -> &str {
        self.secret.source_name()
    }

    /// The schema version of the database (after the migrations run at open).
    pub async fn schema_version(&self) -> Result<i64> {
        self.db.schema_version().await
    }

    pub async fn close(&self) {
        self.db.close().await;
    }

    /// Runs `changes` and writes their audit row in one transaction, so no change is ever
    /// without its record (nor a record without its change).
    pub(crate) async fn commit_audited(
        &self,
        changes: Vec<Statement<'_>>,
        entry: AuditRow<'_>,
    ) -> Result<()> {
        let mut tx = self.db.pool.begin().await?;
        for change in changes {
            change.execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO audit_log (at, who, action, license_id, customer_id, details) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(entry.at)
        .bind(entry.who)
        .bind(entry.action)
        .bind(entry.license.map(str::to_string))
        .bind(entry.customer.map(str::to_string))
        .bind(entry.details)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every row `query` yields, read with `from_row`.
    async fn all<T>(
        &self,
        query: Statement<'_>,
        from_row: fn(&AnyRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        query
            .fetch_all(&self.db.pool)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    /// The row `query` yields, if any, read with `from_row`.
    async fn one<T>(
        &self,
        query: Statement<'_>,
        from_row: fn(&AnyRow) -> Result<T>,
    ) -> Result<Option<T>> {
        query
            .fetch_optional(&self.db.pool)
            .await?
            .as_ref()
            .map(from_row)
            .transpose()
    }

    // ---- signing keys ------------------------------------------------------------------

    /// Every signing key, the active one first, then newest first.
    pub async fn keys(&self) -> Result<Vec<KeyRow>> {
        self.all(
            sqlx::query("SELECT * FROM signing_keys ORDER BY active DESC, created_at DESC, key_id"),
            KeyRow::from_row,
        )
        .await
    }

    async fn active_key(&self) -> Result<SigningKey> {
        let row = sqlx::query("SELECT * FROM signing_keys WHERE active = 1")
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| PortalError::Corrupt("no active signing key".into()))?;
        self.unseal(&KeyRow::from_row(&row)?)
    }

    /// The signing key of a row, its secret opened with the portal secret key.
    fn unseal(&self, row: &KeyRow) -> Result<SigningKey> {
        let armored = self.secret.unseal(&row.key_id, &row.secret)?;
        Ok(SigningKey::from_armored(&armored)?)
    }

    /// Makes a new active signing key. Old keys stay in the database and in `signing.pub`,
    /// so every file they signed keeps verifying on servers that pinned the set.
    pub async fn rotate_key(&self, who: &str) -> Result<String> {
        let key = SigningKey::generate(&mut license::OsRng);
        let id = key.public().id().to_string();
        let now = self.now();
        self.commit_audited(
            vec![
                sqlx::query("UPDATE signing_keys SET active = 0"),
                sqlx::query(
                    "INSERT INTO signing_keys (key_id, secret, public, created_at, active) VALUES ($1, $2, $3, $4, 1)",
                )
                .bind(&id)
                .bind(self.secret.seal(&id, &key.to_armored()))
                .bind(key.public().to_armored())
                .bind(now),
            ],
            AuditRow {
                at: now,
                who,
                action: "rotate_key",
                license: None,
                customer: None,
                details: format!("new active key {id}"),
            },
        )
        .await?;
        self.write_public_keys().await?;
        #[cfg(feature = "dev-keys")]
        self.certify_for_development().await?;
        Ok(id)
    }

    async fn write_public_keys(&self) -> Result<()> {
        let text: String = self
            .keys()
            .await?
            .iter()
            .map(|k| k.public.clone())
            .collect();
        let path = self.data_dir.join("signing.pub");
        let tmp = self.data_dir.join("signing.pub.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| PortalError::Io {
                what: format!("cannot write {}", path.display()),
                source,
            })
    }

    // ---- users -------------------------------------------------------------------------

    pub async fn add_user(
        &self,
        who: &str,
        username: &str,
        password: &str,
        role: Role,
        customer: Option<&str>,
    ) -> Result<User> {
        let username = text_field("user name", username)?;
        if password.len() < 8 {
            return Err(PortalError::bad("password must be at least 8 characters"));
        }
        match (role, customer) {
            (Role::Customer, None) => {
                return Err(PortalError::bad("a customer login needs a customer"));
            }
            (Role::Support, Some(_)) => {
                return Err(PortalError::bad("a support login has no customer"));
            }
            (Role::Customer, Some(c)) => {
                self.customer(c).await?;
            }
            (Role::Support, None) => {}
        }
        if self.user_by_name(&username).await?.is_some() {
            return Err(PortalError::bad(format!("user {username} exists already")));
        }
        let user = User {
            id: format!("U-{}", random_hex(6)),
            username,
            password_hash: hash_password(password).await?,
            role,
            customer_id: customer.map(str::to_string),
        };
        let now = self.now();
        self.commit_audited(
            vec![
                sqlx::query(
                    "INSERT INTO users (id, username, password_hash, role, customer_id, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&user.id)
                .bind(&user.username)
                .bind(&user.password_hash)
                .bind(role.as_str())
                .bind(user.customer_id.clone())
                .bind(now),
            ],
            AuditRow {
                at: now,
                who,
                action: "add_user",
                license: None,
                customer,
                details: format!("user {} role {}", user.username, role.as_str()),
            },
        )
        .await?;
        Ok(user)
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        self.one(
            sqlx::query("SELECT * FROM users WHERE username = $1").bind(username),
            User::from_row,
        )
        .await
    }

    /// Creates the first support user `support` when there is none. Returns the password
    /// when it was generated, for the caller to print once.
    pub async fn ensure_support_user(&self, password: Option<&str>) -> Result<Option<String>> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = 'support'")
            .fetch_one(&self.db.pool)
            .await?
            .try_get("n")?;
        if n > 0 {
            return Ok(None);
        }
        let generated = password
            .is_none()
            .then(|| random_hex(9).to_ascii_lowercase());
        let pw = password.or(generated.as_deref()).unwrap_or_default();
        self.add_user("portal", "support", pw, Role::Support, None)
            .await?;
        Ok(generated)
    }

    /// The user if `password` is theirs.
    pub async fn login(&self, username: &str, password: &str) -> Result<Option<User>> {
        let Some(user) = self.user_by_name(username.trim()).await? else {
            // As long as for a real user, so the time taken does not tell which names exist.
            static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
            let dummy = DUMMY
                .get_or_try_init(|| hash_password("not a password"))
                .await?;
            verify_password(dummy, password).await?;
            return Ok(None);
        };
        Ok(verify_password(&user.password_hash, password)
            .await?
            .then_some(user))
    }

    // ---- customers, tiers --------------------------------------------------------------

    pub async fn add_customer(&self, who: &str, name: &str) -> Result<Customer> {
        let c = Customer {
            id: format!("C-{}", random_hex(5)),
            name: text_field("customer name", name)?,
            created_at: self.now(),
        };
        self.commit_audited(
            vec![
                sqlx::query("INSERT INTO customers (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(&c.id)
                    .bind(&c.name)
                    .bind(c.created_at),
            ],
            AuditRow {
                at: c.created_at,
                who,
                action: "add_customer",
                license: None,
                customer: Some(&c.id),
                details: format!("customer {:?}", c.name),
            },
        )
        .await?;
        Ok(c)
    }

    pub async fn customer(&self, id: &str) -> Result<Customer> {
        self.one(
            sqlx::query("SELECT * FROM customers WHERE id = $1").bind(id),
            Customer::from_row,
        )
        .await?
        .ok_or_else(|| PortalError::NotFound(format!("customer {id}")))
    }

    pub async fn customers(&self) -> Result<Vec<Customer>> {
        self.all(
            sqlx::query("SELECT * FROM customers ORDER BY name, id"),
            Customer::from_row,
        )
        .await
    }

    pub async fn tiers(&self) -> Result<Vec<Tier>> {
        self.all(
            sqlx::query("SELECT * FROM tiers ORDER BY channels"),
            Tier::from_row,
        )
        .await
    }

    // ---- licenses ----------------------------------------------------------------------

    /// A new license (and its completed "new" order). Trials end 30 days from today whatever
    /// `formal_end` says; `formal_end` is required otherwise.
    pub async fn add_license(
        &self,
        who: &str,
        customer: &str,
        channels: u32,
        formal_end: Option<Date>,
        trial: bool,
        binding: BindingState,
    ) -> Result<LicenseRow> {
        self.add_license_inner(
            who, customer, channels, formal_end, trial, false, binding, "",
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn add_license_inner(
        &self,
        who: &str,
        customer: &str,
        channels: u32,
        formal_end: Option<Date>,
        trial: bool,
        emergency: bool,
        binding: BindingState,
        note: &str,
    ) -> Result<LicenseRow> {
        self.customer(customer).await?;
        if channels == 0 {
            return Err(PortalError::bad("channels must be at least 1"));
        }
        let today = self.today();
        let formal_end = if trial || emergency {
            let end = license::trial_formal_end(today);
            if formal_end.is_some_and(|d| d != end) {
                return Err(PortalError::bad(format!(
                    "formal end: a trial lasts {} days, so it ends on {end}",
                    license::TRIAL_DAYS
                )));
            }
            end
        } else {
            formal_end.ok_or_else(|| PortalError::bad("formal end is required"))?
        };
        let now = self.now();
        let row = LicenseRow {
            id: format!("SM-{}", random_hex(6)),
            customer_id: customer.to_string(),
            token: new_token(),
            channels,
            formal_end,
            cancelled: false,
            trial,
            emergency,
            binding,
            created_at: now,
        };
        let (kind, value) = row.binding.columns();
        let action = if emergency {
            "emergency_trial"
        } else {
            "add_license"
        };
        self.commit_audited(
            vec![
                sqlx::query(
                    "INSERT INTO licenses (id, customer_id, token, channels, formal_end, cancelled, trial, emergency, binding_kind, binding_value, created_at) VALUES ($1, $2, $3, $4, $5, 0, $6, $7, $8, $9, $10)",
                )
                .bind(&row.id)
                .bind(&row.customer_id)
                .bind(&row.token)
                .bind(i64::from(channels))
                .bind(formal_end.to_string())
                .bind(flag(trial))
                .bind(flag(emergency))
                .bind(kind)
                .bind(value)
                .bind(now),
                sqlx::query(
                    "INSERT INTO orders (id, license_id, kind, tier_id, channels, months, status, created_at, completed_at) VALUES ($1, $2, 'new', NULL, $3, NULL, 'completed', $4, $4)",
                )
                .bind(format!("O-{}", random_hex(5)))
                .bind(&row.id)
                .bind(i64::from(channels))
                .bind(now),
            ],
            AuditRow {
                at: now,
                who,
                action,
                license: Some(&row.id),
                customer: Some(customer),
                details: format!(
                    "{channels} channels, formal end {formal_end}{}, {}{note}",
                    if trial { ", trial" } else { "" },
                    row.binding
                ),
            },
        )
        .await?;
        Ok(row)
    }

    pub async fn license(&self, id: &str) -> Result<LicenseRow> {
        self.one(
            sqlx::query("SELECT * FROM licenses WHERE id = $1").bind(id),
            LicenseRow::from_row,
        )
        .await?
        .ok_or_else(|| PortalError::NotFound(format!("license {id}")))
    }

    /// The license if it belongs to `customer`; another customer's license is "not found".
    pub async fn license_of(&self, customer: &str, id: &str) -> Result<LicenseRow> {
        let row = self.license(id).await?;
        if row.customer_id != customer {
            return Err(PortalError::NotFound(format!("license {id}")));
        }
        Ok(row)
    }

    async fn license_by_token(&self, token: &str) -> Result<Option<LicenseRow>> {
        self.one(
            sqlx::query("SELECT * FROM licenses WHERE token = $1").bind(token),
            LicenseRow::from_row,
        )
        .await
    }

    /// Licenses of one customer, or all with `None`.
    pub async fn licenses(&self, customer: Option<&str>) -> Result<Vec<LicenseRow>> {
        let q = match customer {
            Some(c) => {
                sqlx::query("SELECT * FROM licenses WHERE customer_id = $1 ORDER BY created_at, id")
                    .bind(c.to_string())
            }
            None => sqlx::query("SELECT * FROM licenses ORDER BY created_at, id"),
        };
        self.all(q, LicenseRow::from_row).await
    }

    pub async fn grants(&self, license: &str) -> Result<Vec<GrantRow>> {
        self.all(
            sqlx::query("SELECT * FROM grants WHERE license_id = $1 ORDER BY created_at, id")
                .bind(license),
            GrantRow::from_row,
        )
        .await
    }

    /// Orders of one license, or of all licenses of one customer, or all (newest first).
    pub async fn orders(
        &self,
        license: Option<&str>,
        customer: Option<&str>,
    ) -> Result<Vec<Order>> {
        let q = match (license, customer) {
            (Some(l), _) => {
                sqlx::query("SELECT * FROM orders WHERE license_id = $1 ORDER BY created_at DESC, id")
                    .bind(l.to_string())
            }
            (None, Some(c)) => {
                sqlx::query("SELECT o.* FROM orders o JOIN licenses l ON l.id = o.license_id WHERE l.customer_id = $1 ORDER BY o.created_at DESC, o.id")
                    .bind(c.to_string())
            }
            (None, None) => sqlx::query("SELECT * FROM orders ORDER BY created_at DESC, id"),
        };
        self.all(q, Order::from_row).await
    }

    pub async fn checkins(&self, license: &str) -> Result<Vec<Checkin>> {
        self.all(
            sqlx::query(
                "SELECT * FROM checkins WHERE license_id = $1 ORDER BY last_seen DESC, boot_id",
            )
            .bind(license),
            Checkin::from_row,
        )
        .await
    }

    /// The license's terms as a file issued now would carry them.
    async fn terms(&self, row: &LicenseRow, binding: license::Binding) -> Result<LicenseTerms> {
        let now = self.now();
        let today = self.today();
        let customer = self.customer(&row.customer_id).await?;
        let upgrades: Vec<Upgrade> = self
            .orders(Some(&row.id), None)
            .await?
            .iter()
            .filter(|o| o.kind == OrderKind::Upgrade)
            .filter_map(|o| {
                o.channels.map(|channels| Upgrade {
                    channels,
                    completed_at: o.completed_at,
                })
            })
            .collect();
        let grants: Vec<Grant> = self
            .grants(&row.id)
            .await?
            .into_iter()
            .map(|g| g.grant)
            .collect();
        let issued = jiff::Timestamp::from_second(now.div_euclid(1_000_000))
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let refresh_by = ts(issued.as_microsecond().saturating_add(REFRESH_AFTER_US));
        Ok(LicenseTerms {
            license_id: row.id.clone(),
            customer: customer.name,
            channels: license::limit_at(row.channels, &upgrades, now),
            issued_at: issued,
            formal_end: row.formal_end,
            grace_end: license::grace_end_for(
                row.formal_end,
                row.cancelled || row.trial || row.emergency,
            ),
            cancelled: row.cancelled,
            trial: row.trial,
            emergency: row.emergency,
            binding,
            grants: license::grants_to_carry(&grants, today),
            refresh_by: Some(refresh_by),
        })
    }

    /// Everything the pages show about one license.
    pub async fn view(&self, row: LicenseRow) -> Result<LicenseView> {
        // The binding does not change limits or dates; a placeholder keeps `terms` total for
        // licenses not bound yet.
        let binding = match &row.binding {
            BindingState::Hwid(Some(h)) => license::Binding::Hwid(*h),
            BindingState::Hwid(None) => license::Binding::Hwid(
                "0000-0000-0000-0000"
                    .parse()
                    .map_err(|e: String| PortalError::Corrupt(e))?,
            ),
            BindingState::Domain(d) => license::Binding::Domain(d.clone()),
        };
        let terms = self.terms(&row, binding).await?;
        let today = self.today();
        let ds = license::date_status(&terms, today);
        let phase = match ds.phase {
            license::DatePhase::Active => "active",
            license::DatePhase::ExpiringSoon => "expiring soon",
            license::DatePhase::RenewalPending => "renewal pending",
            license::DatePhase::Expired => "expired",
        };
        let kind = if row.emergency {
            "emergency trial, "
        } else if row.trial {
            "trial, "
        } else {
            ""
        };
        let status = format!(
            "{kind}{phase}{}",
            if row.cancelled { ", cancelled" } else { "" }
        );
        let checkins = self.checkins(&row.id).await?;
        let grants = self.grants(&row.id).await?;
        let verdict = self.verdict(&checkins, &grants);
        Ok(LicenseView {
            customer: self.customer(&row.customer_id).await?,
            limit: terms.channels,
            grace_end: terms.grace_end,
            access_end: terms.access_end(),
            status,
            orders: self.orders(Some(&row.id), None).await?,
            grants,
            checkins,
            verdict,
            row,
        })
    }

    fn verdict(&self, checkins: &[Checkin], grants: &[GrantRow]) -> ConcurrentUse {
        let boots: Vec<BootSeen<'_>> = checkins
            .iter()
            .map(|c| BootSeen {
                hwid: &c.hwid,
                install_id: &c.install_id,
                boot_id: &c.boot_id,
                first_seen: c.first_seen,
                last_seen: c.last_seen,
            })
            .collect();
        let grants: Vec<Grant> = grants.iter().map(|g| g.grant.clone()).collect();
        let allowed = license::allowed_systems(&grants, self.today());
        license::concurrent_use(&boots, self.now(), LIVE_WINDOW_US, allowed)
    }

    // ---- support actions ---------------------------------------------------------------

    async fn add_grant(&self, who: &str, license: &str, grant: Grant) -> Result<GrantRow> {
        let row = self.license(license).await?;
        let probe = LicenseTerms {
            grants: vec![grant.clone()],
            ..self
                .terms(&row, license::Binding::Domain("x".into()))
                .await?
        };
        probe.check().map_err(PortalError::BadRequest)?;
        let (kind, amount, start, end) = match grant {
            Grant::Increase {
                channels,
                start,
                end,
            } => ("increase", channels, start, end),
            Grant::Concurrent { systems, until } => ("concurrent", systems, self.today(), until),
        };
        let now = self.now();
        let g = GrantRow {
            id: format!("G-{}", random_hex(5)),
            license_id: row.id.clone(),
            grant,
            created_at: now,
        };
        let details = match kind {
            "increase" => format!("limit {amount} channels from {start} until {end}"),
            _ => format!("{amount} systems at once until {end}"),
        };
        self.commit_audited(
            vec![
                sqlx::query(
                    "INSERT INTO grants (id, license_id, kind, amount, start_day, end_day, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&g.id)
                .bind(&row.id)
                .bind(kind)
                .bind(i64::from(amount))
                .bind(start.to_string())
                .bind(end.to_string())
                .bind(now),
            ],
            AuditRow {
                at: now,
                who,
                action: kind,
                license: Some(&row.id),
                customer: Some(&row.customer_id),
                details,
            },
        )
        .await?;
        Ok(g)
    }

    /// Temporary channel increase: the limit is `channels` from today until `until`.
    pub async fn increase(
        &self,
        who: &str,
        license: &str,
        channels: u32,
        until: Date,
    ) -> Result<GrantRow> {
        let today = self.today();
        if until < today {
            return Err(PortalError::bad(format!("until: {until} is in the past")));
        }
        self.add_grant(
            who,
            license,
            Grant::Increase {
                channels,
                start: today,
                end: until,
            },
        )
        .await
    }

    /// Concurrent use on `systems` systems until `until` (a migration window).
    pub async fn allow_concurrent(
        &self,
        who: &str,
        license: &str,
        systems: u32,
        until: Date,
    ) -> Result<GrantRow> {
        if until < self.today() {
            return Err(PortalError::bad(format!("until: {until} is in the past")));
        }
        self.add_grant(who, license, Grant::Concurrent { systems, until })
            .await
    }

    /// An emergency trial for the customer of `license`: a new 30-day license with the same
    /// limit and binding (billing problems must not stop monitoring).
    pub async fn emergency_trial(&self, who: &str, license: &str) -> Result<LicenseRow> {
        let row = self.license(license).await?;
        let view = self.view(row.clone()).await?;
        self.add_license_inner(
            who,
            &row.customer_id,
            view.limit,
            None,
            false,
            true,
            row.binding.clone(),
            &format!(", standing in for {}", row.id),
        )
        .await
    }

    /// Converts between hardware and domain binding (or sets either).
    pub async fn bind(&self, who: &str, license: &str, target: Target) -> Result<LicenseRow> {
        let row = self.license(license).await?;
        let binding = match target {
            Target::Hwid(h) => BindingState::Hwid(Some(h)),
            Target::Domain(d) => BindingState::Domain(d),
        };
        self.set_binding(who, "bind", &row, &binding).await?;
        self.license(license).await
    }

    async fn set_binding(
        &self,
        who: &str,
        action: &str,
        row: &LicenseRow,
        binding: &BindingState,
    ) -> Result<()> {
        let (kind, value) = binding.columns();
        let now = self.now();
        self.commit_audited(
            vec![
                sqlx::query(
                    "UPDATE licenses SET binding_kind = $1, binding_value = $2 WHERE id = $3",
                )
                .bind(kind)
                .bind(value)
                .bind(&row.id),
            ],
            AuditRow {
                at: now,
                who,
                action,
                license: Some(&row.id),
                customer: Some(&row.customer_id),
                details: format!("{} -> {binding}", row.binding),
            },
        )
        .await
    }

    /// Cancels the subscription: access ends at the formal end, no grace period.
    pub async fn cancel(&self, who: &str, license: &str) -> Result<LicenseRow> {
        let row = self.license(license).await?;
        let now = self.now();
        self.commit_audited(
            vec![sqlx::query("UPDATE licenses SET cancelled = 1 WHERE id = $1").bind(&row.id)],
            AuditRow {
                at: now,
                who,
                action: "cancel",
                license: Some(&row.id),
                customer: Some(&row.customer_id),
                details: format!("access ends after {}", row.formal_end),
            },
        )
        .await?;
        self.license(license).await
    }

    /// Places a renewal or upgrade order (pending: nothing changes until it is paid).
    pub async fn place_order(&self, who: &str, license: &str, req: OrderRequest) -> Result<Order> {
        let row = self.license(license).await?;
        let (kind, tier_id, channels, months) = match req {
            OrderRequest::Renewal { months } => {
                if !(1..=120).contains(&months) {
                    return Err(PortalError::bad("months must be 1 to 120"));
                }
                (OrderKind::Renewal, None, None, Some(months))
            }
            OrderRequest::Upgrade { tier_id } => {
                let tier = self
                    .tiers()
                    .await?
                    .into_iter()
                    .find(|t| t.id == tier_id)
                    .ok_or_else(|| PortalError::bad(format!("tier: no tier {tier_id:?}")))?;
                (OrderKind::Upgrade, Some(tier.id), Some(tier.channels), None)
            }
        };
        let order = Order {
            id: format!("O-{}", random_hex(5)),
            license_id: row.id.clone(),
            kind,
            tier_id,
            channels,
            months,
            status: OrderStatus::Pending,
            created_at: self.now(),
            completed_at: None,
        };
        self.commit_audited(
            vec![
                sqlx::query(
                    "INSERT INTO orders (id, license_id, kind, tier_id, channels, months, status, created_at, completed_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, NULL)",
                )
                .bind(&order.id)
                .bind(&order.license_id)
                .bind(kind.as_str())
                .bind(order.tier_id.clone())
                .bind(channels.map(i64::from))
                .bind(months.map(i64::from))
                .bind(order.created_at),
            ],
            AuditRow {
                at: order.created_at,
                who,
                action: "place_order",
                license: Some(&row.id),
                customer: Some(&row.customer_id),
                details: format!(
                    "order {} {}{}",
                    order.id,
                    kind.as_str(),
                    match (channels, months) {
                        (Some(c), _) => format!(" to {c} channels"),
                        (_, Some(m)) => format!(" for {m} months"),
                        _ => String::new(),
                    }
                ),
            },
        )
        .await?;
        Ok(order)
    }

    pub async fn order(&self, id: &str) -> Result<Order> {
        self.one(
            sqlx::query("SELECT * FROM orders WHERE id = $1").bind(id),
            Order::from_row,
        )
        .await?
        .ok_or_else(|| PortalError::NotFound(format!("order {id}")))
    }

    /// Marks an order in processing (payment seen, not yet booked): still changes nothing.
    pub async fn order_processing(&self, who: &str, id: &str) -> Result<Order> {
        let order = self.order(id).await?;
        if order.status != OrderStatus::Pending {
            return Err(PortalError::bad(format!(
                "order {id} is {}, not pending",
                order.status.as_str()
            )));
        }
        let now = self.now();
        self.commit_audited(
            vec![sqlx::query("UPDATE orders SET status = 'processing' WHERE id = $1").bind(id)],
            AuditRow {
                at: now,
                who,
                action: "order_processing",
                license: Some(&order.license_id),
                customer: None,
                details: format!("order {id}"),
            },
        )
        .await?;
        self.order(id).await
    }

    /// Marks an order paid: it is completed now, and takes effect now. A renewal moves the
    /// formal end by its months from the previous formal end (and ends trial status and any
    /// cancellation: the customer paid for the next period); an upgrade's limit applies from
    /// this instant.
    pub async fn order_paid(&self, who: &str, id: &str) -> Result<Order> {
        let order = self.order(id).await?;
        if order.status == OrderStatus::Completed {
            return Err(PortalError::bad(format!("order {id} is completed already")));
        }
        let row = self.license(&order.license_id).await?;
        let now = self.now();
        let mut changes = Vec::new();
        let mut details = format!("order {id} {} completed", order.kind.as_str());
        if order.kind == OrderKind::Renewal {
            let months = order
                .months
                .ok_or_else(|| PortalError::Corrupt(format!("renewal order {id} has no months")))?;
            let end = license::renewed_formal_end(row.formal_end, months);
            changes.push(
                sqlx::query(
                    "UPDATE licenses SET formal_end = $1, trial = 0, cancelled = 0 WHERE id = $2",
                )
                .bind(end.to_string())
                .bind(&row.id),
            );
            details.push_str(&format!(
                ": formal end {} -> {end} ({months} months)",
                row.formal_end
            ));
        } else if let Some(c) = order.channels {
            details.push_str(&format!(": limit {c} channels from now"));
        }
        changes.push(
            sqlx::query("UPDATE orders SET status = 'completed', completed_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id),
        );
        self.commit_audited(
            changes,
            AuditRow {
                at: now,
                who,
                action: "order_paid",
                license: Some(&row.id),
                customer: Some(&row.customer_id),
                details,
            },
        )
        .await?;
        self.order(id).await
    }

    pub async fn audit_log(&self, license: Option<&str>, limit: i64) -> Result<Vec<AuditEntry>> {
        let q = match license {
            Some(l) => sqlx::query(
                "SELECT * FROM audit_log WHERE license_id = $1 ORDER BY seq DESC LIMIT $2",
            )
            .bind(l.to_string())
            .bind(limit),
            None => sqlx::query("SELECT * FROM audit_log ORDER BY seq DESC LIMIT $1").bind(limit),
        };
        self.all(q, AuditEntry::from_row).await
    }

    // ---- servers: Get License, check-in, offline ---------------------------------------

    /// A license file for `token` on `target` (Get License: a server online, so the file has
    /// a `refresh_by`). Asking with a new hardware id moves a hardware-bound license there
    /// (audited), except for a server's automatic `refresh`: that answers `superseded`, so
    /// the old system learns it lost the license instead of taking it back. `install`: the
    /// asking installation's check-in key, registered for the license.
    pub async fn get_license(
        &self,
        who: &str,
        token: &str,
        target: &Target,
        refresh: bool,
        install: Option<&InstallKey>,
    ) -> Result<Issued> {
        let token: license::LicenseToken = token
            .parse()
            .map_err(|e: String| PortalError::bad(format!("token: {e}")))?;
        let row = self
            .license_by_token(token.as_str())
            .await?
            .ok_or_else(|| PortalError::UnknownToken(token.to_string()))?;
        if refresh && !row.binding.is_for(target) {
            return Err(PortalError::Superseded {
                license: row.id.clone(),
            });
        }
        let issued = self.issue(who, row, target, true).await?;
        if let Some(i) = install {
            self.register_install(&issued.license_id, i).await?;
        }
        Ok(issued)
    }

    /// Like [`Portal::get_license`] for a license the caller already found (the customer's
    /// key download page): an offline file, without `refresh_by`.
    pub async fn issue_for(&self, who: &str, row: LicenseRow, target: &Target) -> Result<Issued> {
        self.issue(who, row, target, false).await
    }

    async fn issue(
        &self,
        who: &str,
        row: LicenseRow,
        target: &Target,
        online: bool,
    ) -> Result<Issued> {
        let today = self.today();
        let access_end =
            license::grace_end_for(row.formal_end, row.cancelled || row.trial || row.emergency);
        if today > access_end {
            return Err(PortalError::LicenseEnded {
                license: row.id.clone(),
                access_end: access_end.to_string(),
            });
        }
        let binding = match (&row.binding, target) {
            (BindingState::Hwid(current), Target::Hwid(h)) => {
                if current.as_ref() != Some(h) {
                    let action = if current.is_some() { "rebind" } else { "bind" };
                    self.set_binding(who, action, &row, &BindingState::Hwid(Some(*h)))
                        .await?;
                }
                license::Binding::Hwid(*h)
            }
            (BindingState::Domain(d), Target::Domain(asked)) if d == asked => {
                license::Binding::Domain(d.clone())
            }
            (BindingState::Domain(d), Target::Domain(asked)) => {
                return Err(PortalError::BindingMismatch(format!(
                    "license {} is bound to domain {d}, not {asked}",
                    row.id
                )));
            }
            (BindingState::Domain(d), Target::Hwid(_)) => {
                return Err(PortalError::BindingMismatch(format!(
                    "license {} is bound to domain {d}: ask with the domain, not a hardware id",
                    row.id
                )));
            }
            (BindingState::Hwid(_), Target::Domain(_)) => {
                return Err(PortalError::BindingMismatch(format!(
                    "license {} is bound to a hardware id: ask with the hwid, or have support convert it to domain binding",
                    row.id
                )));
            }
        };
        let mut terms = self.terms(&row, binding).await?;
        if !online {
            terms.refresh_by = None;
        }
        let key = self.active_key().await?;
        let certificate = self.issuing_certificate(&key).await?;
        let text = license::issue(&terms, &key, Some(&certificate))?;
        Ok(Issued {
            license: text,
            license_id: row.id,
            refresh_by: terms.refresh_by.map(|r| r.to_string()),
            terms,
        })
    }

    /// The response to an offline request file (JSON written by `sipmeter license request`).
    pub async fn offline(&self, who: &str, request: &str) -> Result<Issued> {
        let (token, target, install) = parse_offline_request(request)?;
        let row = self
            .license_by_token(&token)
            .await?
            .ok_or_else(|| PortalError::UnknownToken(token.clone()))?;
        self.offline_answer(who, row, &target, install.as_ref())
            .await
    }

    async fn offline_answer(
        &self,
        who: &str,
        row: LicenseRow,
        target: &Target,
        install: Option<&InstallKey>,
    ) -> Result<Issued> {
        let issued = self.issue(who, row, target, false).await?;
        if let Some(i) = install {
            self.register_install(&issued.license_id, i).await?;
        }
        Ok(issued)
    }

    /// Like [`Portal::offline`], but only for license `license` (a customer's page): a request
    /// for any other license is "not found" and changes nothing.
    pub async fn offline_for(&self, who: &str, license: &str, request: &str) -> Result<Issued> {
        let (token, target, install) = parse_offline_request(request)?;
        let row = match self.license_by_token(&token).await? {
            Some(row) if row.id == license => row,
            _ => return Err(PortalError::NotFound(format!("license {license}"))),
        };
        self.offline_answer(who, row, &target, install.as_ref())
            .await
    }

    /// Records a check-in its installation signed and answers the concurrent-use verdict,
    /// and whether the license now belongs to another system.
    pub async fn checkin(&self, signed: &SignedCheckin) -> Result<CheckinVerdict> {
        let req = &self.open_checkin(signed).await?;
        let hwid: Hwid = req
            .hwid
            .parse()
            .map_err(|e: String| PortalError::bad(format!("hwid: {e}")))?;
        let install = text_field("install_id", &req.install_id)?;
        let boot = text_field("boot_id", &req.boot_id)?;
        let version = text_field("version", &req.version)?;
        let row = self.license(&req.license_id).await.map_err(|e| match e {
            PortalError::NotFound(_) => PortalError::UnknownLicense(req.license_id.clone()),
            e => e,
        })?;
        let target = match &req.domain {
            Some(d) => Target::Domain(d.clone()),
            None => Target::Hwid(hwid),
        };
        let superseded = !row.binding.is_for(&target);
        let now = self.now();
        sqlx::query(
            "INSERT INTO checkins (license_id, boot_id, hwid, install_id, version, first_seen, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $6) \
             ON CONFLICT (license_id, boot_id) DO UPDATE SET last_seen = excluded.last_seen, version = excluded.version, hwid = excluded.hwid, install_id = excluded.install_id",
        )
        .bind(&req.license_id)
        .bind(boot)
        .bind(hwid.to_string())
        .bind(install)
        .bind(version)
        .bind(now)
        .execute(&self.db.pool)
        .await?;
        // Boots long gone say nothing about concurrent use; keep a month for support to read.
        sqlx::query("DELETE FROM checkins WHERE license_id = $1 AND last_seen < $2")
            .bind(&req.license_id)
            .bind(now.saturating_sub(CHECKIN_HISTORY_US))
            .execute(&self.db.pool)
            .await?;
        let checkins = self.checkins(&req.license_id).await?;
        let grants = self.grants(&req.license_id).await?;
        Ok(CheckinVerdict {
            verdict: self.verdict(&checkins, &grants),
            superseded,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_license_tokens_without_look_alikes() {
        for _ in 0..200 {
            let t = new_token();
            let parsed: license::LicenseToken = t.parse().expect("valid token");
            assert_eq!(parsed.as_str(), t);
            assert!(!t.contains(['0', 'O', '1', 'I']), "{t}");
        }
        assert_ne!(new_token(), new_token());
    }

    #[test]
    fn target_needs_exactly_one_valid_field() {
        let h = "AAAA-BBBB-CCCC-DDDD";
        assert!(matches!(
            Target::from_fields(Some(h), None),
            Ok(Target::Hwid(_))
        ));
        assert_eq!(
            Target::from_fields(Some(" "), Some("PBX.Example.com.")).unwrap(),
            Target::Domain("pbx.example.com".into())
        );
        for (hwid, domain, needle) in [
            (None, None, "required"),
            (Some(h), Some("a.example.com"), "not both"),
            (Some("XYZ"), None, "hwid"),
            (None, Some("a..b"), "domain"),
        ] {
            let e = Target::from_fields(hwid, domain).unwrap_err();
            assert!(matches!(e, PortalError::BadRequest(_)));
            assert!(e.to_string().contains(needle), "{e}");
        }
    }

    #[test]
    fn offline_requests_are_parsed_strictly() {
        let ok = r#"{"sipmeter_license_request":1,"token":"abcd-efgh-jkmn-pqrs","domain":"a.example.com","install_id":"i","created_at":"2026-11-28T00:00:00Z"}"#;
        let (token, target, _) = parse_offline_request(ok).unwrap();
        assert_eq!(token, "ABCD-EFGH-JKMN-PQRS");
        assert_eq!(target, Target::Domain("a.example.com".into()));
        for (bad, needle) in [
            ("not json", "not a license request"),
            (
                r#"{"sipmeter_license_request":2,"token":"ABCD-EFGH-JKMN-PQRS","hwid":"AAAA-BBBB-CCCC-DDDD"}"#,
                "version 2",
            ),
            (
                r#"{"sipmeter_license_request":1,"token":"nope","hwid":"AAAA-BBBB-CCCC-DDDD"}"#,
                "token",
            ),
            (
                r#"{"sipmeter_license_request":1,"token":"ABCD-EFGH-JKMN-PQRS"}"#,
                "hwid or domain",
            ),
        ] {
            let e = parse_offline_request(bad).unwrap_err();
            assert!(e.to_string().contains(needle), "{bad}: {e}");
        }
    }
}

//! Shared setup: a real portal (SQLite in a temp dir, or PostgreSQL) on 127.0.0.1 with a
//! fake clock, and helpers to call its API and check what it signs.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use base64::Engine;
use jiff::civil::Date;
use license::{Hwid, Keyring, SigningKey, Verified, VerifyContext, VerifyError};
use portal::Portal;
use portal::clock::FakeClock;
use serde_json::{Value, json};

pub const DAY: i64 = 86_400 * 1_000_000;
pub const MIN: i64 = 60 * 1_000_000;
pub const HWID_A: &str = "AAAA-BBBB-CCCC-0001";
pub const HWID_B: &str = "AAAA-BBBB-CCCC-0002";

/// Noon UTC on `d`, in workspace microseconds.
pub fn noon(d: Date) -> i64 {
    d.at(12, 0, 0, 0)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .expect("valid date")
        .timestamp()
        .as_microsecond()
}

pub fn day(s: &str) -> Date {
    s.parse().expect("date")
}

pub struct World {
    pub portal: Portal,
    pub base: String,
    pub clock: FakeClock,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
    /// The token of each license made by [`World::license`], to register installations.
    tokens: Mutex<HashMap<String, String>>,
    /// (license, install) pairs whose check-in key Get License registered.
    registered: Mutex<HashSet<(String, String)>>,
}

/// The check-in key of installation `install` (fixed per name, so a test can forge one).
pub fn install_key(install: &str) -> SigningKey {
    let mut seed = [7u8; 32];
    for (i, b) in install.bytes().enumerate() {
        seed[i % 32] = seed[i % 32].wrapping_mul(31).wrapping_add(b);
    }
    SigningKey::from_seed(&seed)
}

/// A check-in body as a server sends it: the JSON of `checkin`, signed by `key`.
pub fn signed_checkin(checkin: &Value, key: &SigningKey) -> Value {
    let text = checkin.to_string();
    let sig = key.sign_in_context(license::CHECKIN_CONTEXT, text.as_bytes());
    json!({
        "checkin": text,
        "signature": base64::engine::general_purpose::STANDARD.encode(sig),
    })
}

impl World {
    /// A portal on SQLite in a fresh temp dir, its clock at noon on `today`.
    pub async fn sqlite(today: &str) -> World {
        World::start(today, None).await
    }

    pub async fn start(today: &str, database: Option<&str>) -> World {
        world_in(tempfile::tempdir().expect("tempdir"), today, database).await
    }

    pub fn set_day(&self, d: &str) {
        self.clock.set(noon(day(d)));
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        (status, r.json().await.expect("JSON body"))
    }

    pub async fn get_license(&self, token: &str, hwid: &str) -> (u16, Value) {
        self.post("/api/v1/license", json!({"token": token, "hwid": hwid}))
            .await
    }

    /// Get License on HWID_A for `license` as installation `install`, which registers its
    /// check-in key ([`install_key`]).
    pub async fn register(&self, license: &str, install: &str) {
        let token = self.tokens.lock().unwrap()[license].clone();
        let key = install_key(install).public().to_armored();
        let (status, v) = self
            .post(
                "/api/v1/license",
                json!({"token": token, "hwid": HWID_A, "install_id": install, "install_key": key}),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        self.registered
            .lock()
            .unwrap()
            .insert((license.to_string(), install.to_string()));
    }

    /// A signed check-in of installation `install` (registered first if needed) on HWID_A.
    pub async fn checkin(&self, license: &str, install: &str, boot: &str) -> Value {
        let known = self
            .registered
            .lock()
            .unwrap()
            .contains(&(license.to_string(), install.to_string()));
        if !known {
            self.register(license, install).await;
        }
        let (status, v) = self.checkin_as(license, install, boot, HWID_A).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// A check-in signed by `install`'s key, for `hwid`, at the portal's now.
    pub async fn checkin_as(
        &self,
        license: &str,
        install: &str,
        boot: &str,
        hwid: &str,
    ) -> (u16, Value) {
        let at = license::timestamp(self.portal.now()).unwrap().to_string();
        let c = json!({"license_id": license, "hwid": hwid, "install_id": install,
                       "boot_id": boot, "version": "0.1.0", "at": at});
        self.post("/api/v1/checkin", signed_checkin(&c, &install_key(install)))
            .await
    }

    /// What a server of this development build trusts: the compiled-in roots, among them the
    /// development root that certified this portal's key on first start.
    pub fn keyring(&self) -> Keyring {
        Keyring::builtin()
    }

    /// Verifies a served file as a server with hardware id `hwid` would, at the portal's now.
    pub fn verify(
        &self,
        text: &str,
        hwid: &str,
        domain: Option<&str>,
    ) -> Result<Verified, VerifyError> {
        let ring = self.keyring();
        let ctx = VerifyContext {
            keyring: &ring,
            hwid: hwid.parse::<Hwid>().expect("hwid"),
            domain,
            now: self.portal.now(),
            high_water: None,
            time_zone: &jiff::tz::TimeZone::UTC,
        };
        license::verify(text, "license.key", &ctx)
    }

    pub async fn customer(&self, name: &str) -> String {
        self.portal
            .add_customer("test", name)
            .await
            .expect("customer")
            .id
    }

    /// A hardware-bound license (bound on first Get License); returns (id, token).
    pub async fn license(
        &self,
        customer: &str,
        channels: u32,
        formal_end: &str,
    ) -> (String, String) {
        let row = self
            .portal
            .add_license(
                "test",
                customer,
                channels,
                Some(day(formal_end)),
                false,
                portal::BindingState::Hwid(None),
            )
            .await
            .expect("license");
        self.tokens
            .lock()
            .unwrap()
            .insert(row.id.clone(), row.token.clone());
        (row.id, row.token)
    }

    /// Gets and verifies a file for `token` on HWID_A; returns its terms.
    pub async fn terms(&self, token: &str) -> license::LicenseTerms {
        let (status, v) = self.get_license(token, HWID_A).await;
        assert_eq!(status, 200, "{v}");
        let text = v["license"].as_str().expect("license text");
        self.verify(text, HWID_A, None).expect("verifies").terms
    }
}

/// The portal schema as it was before versioned migrations (copied here, not read from
/// `migrations/`, so a change to migration 0001 cannot hide from the upgrade tests).
pub const LEGACY_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS customers (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, created_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY, username TEXT NOT NULL UNIQUE, password_hash TEXT NOT NULL,
    role TEXT NOT NULL, customer_id TEXT REFERENCES customers(id), created_at BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS tiers (
    id TEXT PRIMARY KEY, channels BIGINT NOT NULL, price TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS licenses (
    id TEXT PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(id),
    token TEXT NOT NULL UNIQUE, channels BIGINT NOT NULL, formal_end TEXT NOT NULL,
    cancelled BIGINT NOT NULL, trial BIGINT NOT NULL, emergency BIGINT NOT NULL,
    binding_kind TEXT NOT NULL, binding_value TEXT, created_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS licenses_customer ON licenses (customer_id);
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY, license_id TEXT NOT NULL REFERENCES licenses(id),
    kind TEXT NOT NULL, tier_id TEXT, channels BIGINT, months BIGINT, status TEXT NOT NULL,
    created_at BIGINT NOT NULL, completed_at BIGINT);
CREATE INDEX IF NOT EXISTS orders_license ON orders (license_id);
CREATE TABLE IF NOT EXISTS grants (
    id TEXT PRIMARY KEY, license_id TEXT NOT NULL REFERENCES licenses(id), kind TEXT NOT NULL,
    amount BIGINT NOT NULL, start_day TEXT NOT NULL, end_day TEXT NOT NULL,
    created_at BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS grants_license ON grants (license_id);
CREATE TABLE IF NOT EXISTS checkins (
    license_id TEXT NOT NULL REFERENCES licenses(id), boot_id TEXT NOT NULL,
    hwid TEXT NOT NULL, install_id TEXT NOT NULL, version TEXT NOT NULL,
    first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL, PRIMARY KEY (license_id, boot_id));
CREATE TABLE IF NOT EXISTS audit_log (
    seq {SERIAL}, at BIGINT NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL,
    license_id TEXT, customer_id TEXT, details TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS signing_keys (
    key_id TEXT PRIMARY KEY, secret TEXT NOT NULL, public TEXT NOT NULL,
    created_at BIGINT NOT NULL, active BIGINT NOT NULL)
";

/// What [`make_legacy_db`] put in the database.
pub struct LegacyPortal {
    pub key: license::SigningKey,
    pub license_id: String,
    pub token: String,
}

/// The base64 body of an armored secret: what must never be found in a database file.
pub fn armored_body(armored: &str) -> String {
    armored
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect::<String>()
}

/// A portal database as the portal before versioned migrations left it, at `url` (SQLite or
/// PostgreSQL): its schema run as it was, a signing key stored in clear, a customer, a
/// hardware-bound license not bound yet, and an audit entry.
pub async fn make_legacy_db(url: &str) -> LegacyPortal {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let serial = if url.starts_with("sqlite:") {
        "INTEGER PRIMARY KEY AUTOINCREMENT"
    } else {
        "BIGSERIAL PRIMARY KEY"
    };
    let mut c = sqlx::AnyConnection::connect(url).await.expect("connect");
    if url.starts_with("sqlite:") {
        sqlx::query("PRAGMA journal_mode=WAL")
            .execute(&mut c)
            .await
            .unwrap();
    }
    for stmt in LEGACY_SCHEMA.replace("{SERIAL}", serial).split(';') {
        if !stmt.trim().is_empty() {
            sqlx::query(stmt).execute(&mut c).await.expect(stmt);
        }
    }
    let key = license::SigningKey::generate(&mut license::OsRng);
    let now = noon(day("2026-01-10"));
    sqlx::query("INSERT INTO signing_keys (key_id, secret, public, created_at, active) VALUES ($1, $2, $3, $4, 1)")
        .bind(key.public().id().to_string())
        .bind(key.to_armored())
        .bind(key.public().to_armored())
        .bind(now)
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query("INSERT INTO tiers (id, channels, price) VALUES ('T50', 50, 'EUR 690 / year')")
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO customers (id, name, created_at) VALUES ('C-OLD01', 'Old Customer', $1)",
    )
    .bind(now)
    .execute(&mut c)
    .await
    .unwrap();
    let token = "ABCD-EFGH-JKLM-NPQR".to_string();
    sqlx::query(
        "INSERT INTO licenses (id, customer_id, token, channels, formal_end, cancelled, trial, emergency, binding_kind, binding_value, created_at) \
         VALUES ('SM-OLD001', 'C-OLD01', $1, 50, '2027-01-31', 0, 0, 0, 'hwid', NULL, $2)",
    )
    .bind(&token)
    .bind(now)
    .execute(&mut c)
    .await
    .unwrap();
    sqlx::query("INSERT INTO audit_log (at, who, action, license_id, customer_id, details) VALUES ($1, 'cli:old', 'add_license', 'SM-OLD001', 'C-OLD01', 'made before migrations')")
        .bind(now)
        .execute(&mut c)
        .await
        .unwrap();
    c.close().await.unwrap();
    LegacyPortal {
        key,
        license_id: "SM-OLD001".into(),
        token,
    }
}

/// A portal on an existing `database` (or the data directory's SQLite file), with the API
/// served, its clock at noon on `today`, in the data directory `dir`.
pub async fn world_in(dir: tempfile::TempDir, today: &str, database: Option<&str>) -> World {
    let clock = FakeClock::new(noon(day(today)));
    let portal = Portal::open(dir.path(), database, Arc::new(clock.clone()))
        .await
        .expect("portal opens");
    let addr = portal::spawn_local(portal.clone()).await.expect("listen");
    World {
        portal,
        base: format!("http://{addr}"),
        clock,
        dir,
        http: reqwest::Client::new(),
        tokens: Mutex::default(),
        registered: Mutex::default(),
    }
}

/// The versions and names recorded in `portal_schema`.
pub async fn schema_rows(url: &str) -> Vec<(i64, String)> {
    sqlx::any::install_default_drivers();
    let mut c = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    let rows = sqlx::query("SELECT version, name FROM portal_schema ORDER BY version")
        .fetch_all(&mut c)
        .await
        .unwrap()
        .iter()
        .map(|r| {
            (
                sqlx::Row::get::<i64, _>(r, "version"),
                sqlx::Row::get::<String, _>(r, "name"),
            )
        })
        .collect();
    sqlx::Connection::close(c).await.unwrap();
    rows
}

/// The checks shared by the SQLite and PostgreSQL upgrade tests, on a portal opened on a
/// database made by [`make_legacy_db`].
pub async fn check_upgraded(w: &World, old: &LegacyPortal, url: &str) {
    assert_eq!(
        w.portal.schema_version().await.unwrap(),
        portal::SCHEMA_VERSION
    );
    let rows = schema_rows(url).await;
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        (1..=portal::SCHEMA_VERSION).collect::<Vec<_>>()
    );
    assert_eq!(rows[0].1, "initial");

    // The key is the old one, now sealed; it opens with the portal secret key.
    let keys = w.portal.keys().await.unwrap();
    assert_eq!(keys.len(), 1);
    let k = &keys[0];
    assert_eq!(k.key_id, old.key.public().id().to_string());
    assert!(k.active);
    assert!(k.secret.starts_with("enc1:"), "{}", k.secret);
    assert!(!k.secret.contains(&armored_body(&old.key.to_armored())));
    let secret =
        portal::SecretKey::load_or_create(&w.dir.path().join("portal-secret.key")).unwrap();
    assert_eq!(
        secret.unseal(&k.key_id, &k.secret).unwrap(),
        old.key.to_armored()
    );

    // The data is kept.
    let row = w.portal.license(&old.license_id).await.unwrap();
    assert_eq!(row.token, old.token);
    assert_eq!(row.channels, 50);
    assert_eq!(
        w.portal.customer("C-OLD01").await.unwrap().name,
        "Old Customer"
    );
    assert!(
        w.portal
            .tiers()
            .await
            .unwrap()
            .iter()
            .any(|t| t.id == "T50")
    );
    let audit = w.portal.audit_log(Some(&old.license_id), 10).await.unwrap();
    assert!(audit.iter().any(|a| a.details == "made before migrations"));

    // signing.pub still lists the old key, and the portal signs with it.
    let pub_text = std::fs::read_to_string(w.dir.path().join("signing.pub")).unwrap();
    assert_eq!(pub_text, old.key.public().to_armored());
    let terms = w.terms(&old.token).await;
    assert_eq!(terms.license_id, old.license_id);
    assert_eq!(terms.channels, 50);

    // A rotation after the upgrade makes a sealed key too, and files signed with it verify.
    let new_id = w.portal.rotate_key("test").await.unwrap();
    let keys = w.portal.keys().await.unwrap();
    assert_eq!(keys[0].key_id, new_id);
    assert!(keys.iter().all(|k| k.secret.starts_with("enc1:")));
    w.terms(&old.token).await;
}

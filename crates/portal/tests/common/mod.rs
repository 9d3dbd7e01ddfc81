//! Shared setup: a real portal (SQLite in a temp dir, or PostgreSQL) on 127.0.0.1 with a
//! fake clock, and helpers to call its API and check what it signs.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use jiff::civil::Date;
use base64::Engine;
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
    let sig = key.sign_in_context(portal::CHECKIN_CONTEXT, text.as_bytes());
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
        let dir = tempfile::tempdir().expect("tempdir");
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

//! Shared setup: a real portal (SQLite in a temp dir, or PostgreSQL) on 127.0.0.1 with a
//! fake clock, and helpers to call its API and check what it signs.
#![allow(dead_code)]

use std::sync::Arc;

use jiff::civil::Date;
use license::{Hwid, Keyring, PublicKey, Verified, VerifyContext, VerifyError};
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

    pub async fn checkin(&self, license: &str, install: &str, boot: &str) -> Value {
        let (status, v) = self
            .post(
                "/api/v1/checkin",
                json!({"license_id": license, "hwid": HWID_A, "install_id": install,
                       "boot_id": boot, "version": "0.1.0"}),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// The keyring a server gets by pinning `signing.pub`.
    pub fn keyring(&self) -> Keyring {
        let text = std::fs::read_to_string(self.dir.path().join("signing.pub")).expect("pub");
        let mut ring = Keyring::empty();
        for block in text.split_inclusive("-----END SIPMETER PUBLIC KEY-----\n") {
            ring.add(PublicKey::from_armored(block).expect("public key"));
        }
        ring
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

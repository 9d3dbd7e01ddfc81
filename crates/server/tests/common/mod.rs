//! Setup shared by the server's integration tests (`http.rs`, `browser.rs`, `alerts.rs`,
//! `cdrs.rs`): a temporary world with a data and a capture directory, a test license signing
//! key and a fixed hardware id, the server started on 127.0.0.1 with a fake clock, an HTTP
//! client that logs in as the admin, and the fixtures several tests seed (busy days, a capture
//! cut at its peak).

// Each test file compiles this module on its own and uses only part of it; what one file leaves
// unused is not dead code of the test suite as a whole.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use calls::Micros;
use license::{Binding, Hwid, HwidSource, Keyring, LicenseTerms, ResolvedHwid, SigningKey};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use server::{FakeClock, LicenseSetup, Running, ServerConfig};

pub const ADMIN_PW: &str = "correct horse battery";
pub const HWID: &str = "1111-2222-3333-4444";
pub const DAY: Micros = 86_400_000_000;

pub fn us(rfc3339: &str) -> Micros {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_microsecond()
}

pub fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// A temporary directory with `data` and `pcaps`, and a license signing key the server trusts.
pub struct World {
    pub dir: tempfile::TempDir,
    pub signing: SigningKey,
}

impl World {
    pub fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("pcaps")).unwrap();
        std::fs::create_dir_all(dir.path().join("data")).unwrap();
        World {
            dir,
            signing: SigningKey::generate(&mut license::OsRng),
        }
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn pcaps(&self) -> PathBuf {
        self.dir.path().join("pcaps")
    }

    /// The license setup of the server: the built-in keyring (this development build's roots,
    /// which certify this world's key), the fixed hardware id, UTC.
    pub fn setup(&self) -> LicenseSetup {
        let keyring = Keyring::builtin();
        LicenseSetup {
            data_dir: self.data(),
            license_path: self.data().join("license.key"),
            keyring,
            hwid: ResolvedHwid {
                hwid: HWID.parse::<Hwid>().unwrap(),
                source: HwidSource::Override,
            },
            domain: None,
            operator_limit: None,
            operator_limit_override: None,
            tz: jiff::tz::TimeZone::UTC,
        }
    }

    /// The terms of a license for this world's hardware id with `channels`: issued 40 days
    /// before `now`, formal end 300 days after it (grace 20 more), no `refresh_by` (an offline
    /// file: the tests move their clocks far, and a missed refresh would lock). Tests change
    /// fields for other keys.
    pub fn terms(&self, channels: u32, now: Micros) -> LicenseTerms {
        let today = license::day_of(now, &jiff::tz::TimeZone::UTC);
        let formal_end = today.checked_add(jiff::Span::new().days(300)).unwrap();
        LicenseTerms {
            license_id: format!("L-TEST-{channels}"),
            customer: "Example Telecom".into(),
            channels,
            issued_at: license::timestamp(now - 40 * DAY).unwrap(),
            formal_end,
            grace_end: license::grace_end_for(formal_end, false),
            cancelled: false,
            trial: false,
            emergency: false,
            binding: Binding::Hwid(HWID.parse().unwrap()),
            grants: vec![],
            refresh_by: None,
        }
    }

    /// The key file text of `terms`, signed with this world's key and carrying its
    /// certificate from the development root, as a development portal issues them.
    pub fn issue(&self, terms: &LicenseTerms) -> String {
        license::issue(terms, &self.signing, Some(&self.certificate())).unwrap()
    }

    /// The development root's certificate of this world's key, valid 2000–2100 (the tests'
    /// fake clocks stay inside).
    pub fn certificate(&self) -> license::Certificate {
        let (from, until) = (946_684_800_000_000, 4_102_444_800_000_000);
        license::Certificate::issue(
            &license::dev_root_signing_key(),
            &self.signing.public(),
            "test portal",
            from,
            until,
        )
        .unwrap()
    }

    /// A license for this world's hardware id, issued 40 days before `now` (see [`terms`]).
    ///
    /// [`terms`]: World::terms
    pub fn license(&self, channels: u32, now: Micros) -> String {
        self.issue(&self.terms(channels, now))
    }

    /// Writes `text` as the server's key file.
    pub fn install_key(&self, text: &str) {
        std::fs::write(self.data().join("license.key"), text).unwrap();
    }

    /// Stores `per_day` concurrent calls on each of `days` (see [`busy_days`]) and updates the
    /// channel figures, before the server starts.
    pub async fn seed_busy_days(&self, days: &[jiff::civil::Date], per_day: u32) {
        let mut store = store::Store::open_sqlite(self.data()).await.unwrap();
        store.insert_legs(&busy_days(days, per_day)).await.unwrap();
        store
            .update_channel_stats(channels::ActiveMode::Signalling)
            .await
            .unwrap();
        store.close().await;
    }

    /// The server's configuration: 127.0.0.1 on an ephemeral port, this world's directories,
    /// the admin password, SIP messages kept, captures listed every 50 ms and read once their
    /// size has held for 200 ms. Tests change fields where they need otherwise.
    pub fn config(&self) -> ServerConfig {
        ServerConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: self.data(),
            pcap_dir: Some(self.pcaps()),
            admin_password: Some(ADMIN_PW.into()),
            license: self.setup(),
            pipeline: sensor::PipelineConfig {
                tracker: calls::TrackerConfig {
                    keep_messages: true,
                    ..Default::default()
                },
                ..Default::default()
            },
            channel_mode: channels::ActiveMode::Signalling,
            pcap_poll: Duration::from_millis(50),
            pcap_settle: Duration::from_millis(200),
            tls: None,
            behind_tls_proxy: false,
        }
    }

    /// The server with [`config`](World::config).
    pub async fn start(&self, clock: &FakeClock) -> Running {
        start(self.config(), clock).await
    }
}

/// The server with `config` on the fake clock.
pub async fn start(config: ServerConfig, clock: &FakeClock) -> Running {
    Running::start(config, Arc::new(clock.clone()))
        .await
        .unwrap()
}

/// The `n` days before `day`, nearest first.
pub fn days_before(day: jiff::civil::Date, n: i64) -> Vec<jiff::civil::Date> {
    (1..=n)
        .map(|k| day.checked_sub(jiff::Span::new().days(k)).unwrap())
        .collect()
}

/// A call answered 1 s after `start` and ended by a confirmed BYE at `end`, sensor 1, UDP
/// between two documentation addresses: the plain leg tests and benchmarks vary from.
pub fn answered_leg(
    call_id: String,
    caller: String,
    called: String,
    start: Micros,
    end: Micros,
) -> calls::Leg {
    calls::Leg::builder()
        .call_id(call_id)
        .caller(caller)
        .called(called)
        .domains("example.test", "example.test")
        .start(start)
        .answer(Some(start + 1_000_000))
        .end(end)
        .response(200, "OK")
        .src_ip("192.0.2.1".parse().unwrap())
        .dst_ip("192.0.2.2".parse().unwrap())
        .build()
}

/// `per_day` concurrent 30-minute calls (distinct numbers) at 10:00 UTC on each of `days`.
pub fn busy_days(days: &[jiff::civil::Date], per_day: u32) -> Vec<calls::Leg> {
    let mut legs = Vec::new();
    for d in days {
        let start = d
            .at(10, 0, 0, 0)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .unwrap()
            .timestamp()
            .as_microsecond();
        for i in 0..per_day {
            legs.push(answered_leg(
                format!("busy-{d}-{i}"),
                format!("4420700{i:05}"),
                format!("4420300{i:05}"),
                start + i64::from(i),
                start + 1_800_000_000,
            ));
        }
    }
    legs
}

/// The packets of a classic little-endian µs pcap up to `until_us` (packet time): a capture
/// that stops while calls are still up.
pub fn pcap_until(src: &Path, until_us: Micros) -> Vec<u8> {
    let data = std::fs::read(src).unwrap();
    assert_eq!(
        &data[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "classic µs pcap expected"
    );
    let mut out = data[..24].to_vec();
    let mut at = 24;
    while at + 16 <= data.len() {
        let field = |o: usize| u32::from_le_bytes(data[at + o..at + o + 4].try_into().unwrap());
        let ts = i64::from(field(0)) * 1_000_000 + i64::from(field(4));
        let len = field(8) as usize;
        if ts > until_us {
            break;
        }
        out.extend_from_slice(&data[at..at + 16 + len]);
        at += 16 + len;
    }
    out
}

/// The last call start of basic_concurrent.pcap at which 5 calls are up (its peak), from its
/// tshark-derived truth file, not from our code.
pub fn an_instant_with_five_calls() -> Micros {
    let truth: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(repo_file("tests/data/basic_concurrent.expected.json")).unwrap(),
    )
    .unwrap();
    let spans: Vec<(Micros, Micros)> = truth
        .iter()
        .map(|l| {
            let t = |k: &str| us(l[k].as_str().unwrap());
            (t("start"), t("end"))
        })
        .collect();
    spans
        .iter()
        .map(|s| s.0)
        .filter(|&t| spans.iter().filter(|(a, b)| *a <= t && t < *b).count() == 5)
        .max()
        .expect("an instant with 5 calls")
}

// --- HTTP -------------------------------------------------------------------------------------

/// A client with a cookie store that does not follow redirects (the tests check them).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        .build()
        .unwrap()
}

pub fn url(addr: SocketAddr, path: &str) -> String {
    format!("http://{addr}{path}")
}

/// The value of the first `name="csrf"` hidden field of a page.
pub fn csrf_of(html: &str) -> String {
    let key = "name=\"csrf\" value=\"";
    let at = html.find(key).expect("page has a csrf field") + key.len();
    html[at..at + html[at..].find('"').unwrap()].to_string()
}

/// POSTs `form` to `path` as `c`, exactly as given: for the tests of a missing, wrong or
/// foreign CSRF token, which bring their own.
pub async fn post<F: serde::Serialize + ?Sized>(
    c: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    form: &F,
) -> reqwest::Response {
    c.post(url(addr, path)).form(form).send().await.unwrap()
}

/// The CSRF token of `c`'s session, from the license page (which every signed-in user may see,
/// also when the license locks the other pages).
pub async fn session_csrf(c: &reqwest::Client, addr: SocketAddr) -> String {
    let (code, html) = get_text(c, addr, "/settings/license").await;
    assert_eq!(code, StatusCode::OK, "{html}");
    csrf_of(&html)
}

/// Submits a form as a browser does: `form` and the session's CSRF token, POSTed to `path`.
pub async fn post_form(
    c: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let csrf = session_csrf(c, addr).await;
    let mut form = form.to_vec();
    form.push(("csrf", &csrf));
    post(c, addr, path, &form).await
}

/// A client logged in as the viewer `eve` (created here), for the "viewers may look but not
/// change" checks.
pub async fn logged_in_viewer(s: &Running) -> reqwest::Client {
    let hash = server::hash_password("viewer pw").unwrap();
    assert!(
        s.state
            .store
            .create_user("eve", store::Role::Viewer, &hash, 0)
            .await
            .unwrap()
    );
    let c = client();
    assert_eq!(
        login_as(&c, s.addr, "eve", "viewer pw").await.status(),
        StatusCode::SEE_OTHER
    );
    c
}

/// Posts the login form (with the token of the login page) as `user`; the answer.
pub async fn login_as(
    c: &reqwest::Client,
    addr: SocketAddr,
    user: &str,
    pw: &str,
) -> reqwest::Response {
    let page = c.get(url(addr, "/login")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = csrf_of(&page.text().await.unwrap());
    c.post(url(addr, "/login"))
        .form(&[
            ("user", user),
            ("password", pw),
            ("csrf", &csrf),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap()
}

/// A client logged in as the admin.
pub async fn logged_in(addr: SocketAddr) -> reqwest::Client {
    let c = client();
    let r = login_as(&c, addr, "admin", ADMIN_PW).await;
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "{}",
        r.text().await.unwrap()
    );
    c
}

pub async fn get_text(c: &reqwest::Client, addr: SocketAddr, path: &str) -> (StatusCode, String) {
    let r = c.get(url(addr, path)).send().await.unwrap();
    (r.status(), r.text().await.unwrap())
}

/// GETs `path` as `c`: the status alone, for requests whose answer is refused or ignored.
pub async fn get_status(c: &reqwest::Client, addr: SocketAddr, path: &str) -> StatusCode {
    c.get(url(addr, path)).send().await.unwrap().status()
}

/// GETs `path` as `c` and reads the JSON answer as `T`.
pub async fn get_json<T: serde::de::DeserializeOwned>(
    c: &reqwest::Client,
    addr: SocketAddr,
    path: &str,
) -> T {
    c.get(url(addr, path))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// GETs a CSV download as `c`, checking it answers 200 with a `text/csv` type.
pub async fn get_csv(c: &reqwest::Client, addr: SocketAddr, path: &str) -> reqwest::Response {
    let r = c.get(url(addr, path)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ctype = r.headers()["content-type"].to_str().unwrap();
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    r
}

/// The value of a metric line `name value`, read without a login (`/metrics` is public).
pub async fn metric(addr: SocketAddr, name: &str) -> f64 {
    let text = client()
        .get(url(addr, "/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no metric {name} in\n{text}"))
}

/// Until the sensor has read `n` captures; fails after `within`.
pub async fn wait_for_captures(addr: SocketAddr, n: f64, within: Duration) {
    let deadline = Instant::now() + within;
    while metric(addr, "sipmeter_captures_processed_total").await < n {
        assert!(Instant::now() < deadline, "captures not processed in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A CA and a certificate for 127.0.0.1 signed by it, as PEM files in `dir`; the CA file.
pub fn private_ca(dir: &Path, name: &str) -> (PathBuf, server::tls::TlsFiles) {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let files = server::tls::TlsFiles {
        cert: dir.join(format!("{name}-cert.pem")),
        key: dir.join(format!("{name}-key.pem")),
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    let ca_file = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    (ca_file, files)
}

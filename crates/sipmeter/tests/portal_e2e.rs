//! End to end with the real vendor portal and real central servers on 127.0.0.1 (issue 6,
//! point 8): each test runs the portal in-process on its own data directory and SQLite
//! database, and one or more servers on their own data directories, all on ONE fake clock, so
//! the date rules are checked on exact calendar days. The CLI test runs the `sipmeter` binary
//! (real time) against the same portal.
//!
//! The expected dates are written out as literals from the rules of the product page (a trial
//! lasts 30 days; a renewal extends the previous formal end, not the renewal date; grace is 20
//! days; a migration window holds until its date inclusive), never computed by our code.

#[path = "../../server/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{DAY, World, csrf_of, days_before, get_text, logged_in, url, us};
use license::{Hwid, HwidSource, Keyring, ResolvedHwid};
use portal::{BindingState, OrderRequest, Portal};
use reqwest::StatusCode;
use server::portal_client::{self, PortalConfig};
use server::{Clock, FakeClock, Running};

struct Vendor {
    _dir: tempfile::TempDir,
    portal: Portal,
    url: String,
    customer: String,
}

async fn vendor(clock: &FakeClock) -> Vendor {
    let dir = tempfile::tempdir().unwrap();
    let portal = Portal::open(dir.path(), None, Arc::new(clock.clone()))
        .await
        .unwrap();
    let addr = portal::spawn_local(portal.clone()).await.unwrap();
    let customer = portal
        .add_customer("support", "Example Telecom")
        .await
        .unwrap()
        .id;
    Vendor {
        _dir: dir,
        portal,
        url: format!("http://{addr}"),
        customer,
    }
}

impl Vendor {
    /// A license of `channels` with the given binding; its (license id, token).
    async fn license(
        &self,
        channels: u32,
        formal_end: Option<&str>,
        trial: bool,
        binding: BindingState,
    ) -> (String, String) {
        let row = self
            .portal
            .add_license(
                "support",
                &self.customer,
                channels,
                formal_end.map(|d| d.parse().unwrap()),
                trial,
                binding,
            )
            .await
            .unwrap();
        (row.id, row.token)
    }

    /// A license (not a trial) of `channels` until `formal_end`, bound to the first hardware
    /// id that asks; its (license id, token).
    async fn hwid_license(&self, channels: u32, formal_end: &str) -> (String, String) {
        self.license(channels, Some(formal_end), false, BindingState::Hwid(None))
            .await
    }

    async fn paid(&self, license: &str, req: OrderRequest) {
        let o = self
            .portal
            .place_order("customer", license, req)
            .await
            .unwrap();
        self.portal.order_paid("support", &o.id).await.unwrap();
    }
}

/// A server's world with hardware id `hwid` (or a domain) that trusts only the built-in roots
/// (in this development build, with the development root that certifies the portal's key).
fn server_world(hwid: &str, domain: Option<&str>) -> (World, server::ServerConfig) {
    let w = World::new();
    let mut config = w.config();
    config.pcap_dir = None;
    config.license.keyring = Keyring::builtin();
    config.license.hwid = ResolvedHwid {
        hwid: hwid.parse::<Hwid>().unwrap(),
        source: HwidSource::Override,
    };
    config.license.domain = domain.map(str::to_string);
    (w, config)
}

/// Starts a server on `clock` with the portal at `portal_url`, without background refresh and
/// check-ins: the tests drive [`portal_client::tick`] themselves on the fake clock.
async fn serve(config: server::ServerConfig, portal_url: &str, clock: &FakeClock) -> Running {
    let alerts = server::AlertsConfig {
        interval: Duration::from_secs(3600),
        ..Default::default()
    };
    let portal = PortalConfig {
        url: Some(portal_url.to_string()),
        checkin_interval: Duration::from_secs(3600),
        ca_file: None,
        background: false,
    };
    Running::start_full(config, alerts, portal, Arc::new(clock.clone()))
        .await
        .unwrap()
}

/// A server of `hwid` (or `domain`) started with the portal of `v`, and its admin's client.
async fn site(
    v: &Vendor,
    hwid: &str,
    domain: Option<&str>,
    clock: &FakeClock,
) -> (World, Running, reqwest::Client) {
    let (w, config) = server_world(hwid, domain);
    let s = serve(config, &v.url, clock).await;
    let c = logged_in(s.addr).await;
    (w, s, c)
}

/// Posts a Settings › License form as the logged-in admin: (status, page).
async fn settings_post(
    c: &reqwest::Client,
    s: &Running,
    action: &str,
    fields: &[(&str, &str)],
) -> (StatusCode, String) {
    let (_, page) = get_text(c, s.addr, "/settings/license").await;
    let csrf = csrf_of(&page);
    let mut form = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    let r = c
        .post(url(s.addr, &format!("/settings/license/{action}")))
        .form(&form)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

/// Saves `token` and presses Get/Update License: (status, page).
async fn get_license(c: &reqwest::Client, s: &Running, token: &str) -> (StatusCode, String) {
    let (code, page) = settings_post(c, s, "token", &[("token", token)]).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    settings_post(c, s, "fetch", &[]).await
}

fn dd(page: &str, id: &str) -> String {
    let key = format!("id=\"{id}\">");
    let at = page
        .find(&key)
        .unwrap_or_else(|| panic!("no {id} in\n{page}"))
        + key.len();
    page[at..at + page[at..].find('<').unwrap()].to_string()
}

/// The About page's field `label` (a `<dt>`), as shown.
fn about_field(page: &str, label: &str) -> String {
    let key = format!("<dt>{label}</dt><dd");
    let at = page
        .find(&key)
        .unwrap_or_else(|| panic!("no {label} in\n{page}"));
    let rest = &page[at + key.len()..];
    let open = rest.find('>').unwrap() + 1;
    rest[open..open + rest[open..].find("</dd>").unwrap()].to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trial_warning_renewal_and_upgrade_unlocking_an_over_limit_lock() {
    let day0 = us("2026-03-01T09:00:00Z");
    let clock = FakeClock::new(day0);
    let v = vendor(&clock).await;
    let (id, token) = v.license(10, None, true, BindingState::Hwid(None)).await;
    let (w, config) = server_world(common::HWID, None);
    // 12 calls at once on the 15 days before 2026-03-26, against a 10-channel trial: by then
    // the GUI is locked for over-use.
    let lock_day: jiff::civil::Date = "2026-03-26".parse().unwrap();
    w.seed_busy_days(&days_before(lock_day, 15), 12).await;
    let s = serve(config, &v.url, &clock).await;
    let c = logged_in(s.addr).await;

    // Trial: 30 days from its first day, no grace period; fetched by the GUI, which registers
    // this installation's check-in key and pins nothing.
    let (code, page) = get_license(&c, &s, &token).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    assert!(
        page.contains(&format!(
            "license {id} installed from the portal: 10 channels, hwid {}",
            common::HWID
        )) && page.contains("formal end 2026-03-31, grace end 2026-03-31"),
        "{page}"
    );
    assert!(w.data().join("install.key").exists());
    assert!(!w.data().join("trusted-keys.pub").exists());
    let (_, about) = get_text(&c, s.addr, "/about").await;
    assert_eq!(about_field(&about, "Formal end"), "2026-03-31");
    assert_eq!(
        about_field(&about, "Trial / emergency / cancelled"),
        "yes / no / no"
    );

    // Expiry warning five days before the trial's end; by then 15 days were over the limit.
    clock.set(us("2026-03-26T10:00:00Z"));
    let (_, about) = get_text(&c, s.addr, "/about").await;
    assert!(
        about.contains("trial ends after 2026-03-31 (5 days left)"),
        "{about}"
    );
    assert!(dd(&about, "about-state").starts_with("LOCKED"), "{about}");
    assert_eq!(
        c.get(url(s.addr, "/reports"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::LOCKED
    );

    // Renewal for 12 months paid on 2026-03-26: from the previous formal end 2026-03-31, so
    // to 2027-03-31 (not 2027-03-26), and no longer a trial, so 20 days of grace.
    v.paid(&id, OrderRequest::Renewal { months: 12 }).await;
    let (code, page) = settings_post(&c, &s, "fetch", &[]).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    assert!(
        page.contains("formal end 2027-03-31, grace end 2027-04-20"),
        "{page}"
    );
    let (_, about) = get_text(&c, s.addr, "/about").await;
    assert_eq!(
        about_field(&about, "Trial / emergency / cancelled"),
        "no / no / no"
    );
    assert!(!about.contains("days left"), "{about}");
    // The renewal changes no limit: still locked.
    assert!(dd(&about, "about-state").starts_with("LOCKED"), "{about}");

    // Upgrade to the 25-channel tier, paid: the next Get License unlocks at once.
    v.paid(
        &id,
        OrderRequest::Upgrade {
            tier_id: "T25".into(),
        },
    )
    .await;
    let (code, page) = settings_post(&c, &s, "fetch", &[]).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    assert!(page.contains(": 25 channels,"), "{page}");
    assert_eq!(
        c.get(url(s.addr, "/reports"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let (_, about) = get_text(&c, s.addr, "/about").await;
    assert_eq!(dd(&about, "license-limit"), "25");
    assert!(!dd(&about, "about-state").starts_with("LOCKED"), "{about}");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_fetches_a_fresh_file_only_within_a_day_of_refresh_by() {
    let t0 = us("2026-05-04T08:00:00Z");
    let clock = FakeClock::new(t0);
    let v = vendor(&clock).await;
    let (id, token) = v.hwid_license(10, "2026-12-31").await;
    let (w, s, c) = site(&v, common::HWID, None, &clock).await;
    assert_eq!(get_license(&c, &s, &token).await.0, StatusCode::OK);
    let key = w.data().join("license.key");
    let first = std::fs::read_to_string(&key).unwrap();

    // refresh_by = issue + 7 days = 2026-05-11T08:00Z. 25 hours before it: nothing fetched.
    v.paid(&id, OrderRequest::Renewal { months: 1 }).await;
    clock.set(us("2026-05-10T07:00:00Z"));
    portal_client::tick(&s.state).await;
    assert_eq!(std::fs::read_to_string(&key).unwrap(), first);
    assert_eq!(s.state.portal.last_refresh().map(|a| a.at), Some(t0));

    // 23 hours before it: a fresh file with the renewal (2027-01-31), in force at once.
    clock.set(us("2026-05-10T09:00:00Z"));
    portal_client::tick(&s.state).await;
    let refreshed = s.state.portal.last_refresh().unwrap();
    assert!(refreshed.ok, "{refreshed:?}");
    assert!(
        refreshed
            .text
            .contains("formal end 2027-01-31, refresh by 2026-05-17T09:00:00Z"),
        "{refreshed:?}"
    );
    assert_ne!(std::fs::read_to_string(&key).unwrap(), first);
    let (_, about) = get_text(&c, s.addr, "/about").await;
    assert_eq!(about_field(&about, "Formal end"), "2027-01-31");

    // A portal that refuses (cancelled, past its end) is reported, never a lock; the file stays.
    v.portal.cancel("support", &id).await.unwrap();
    let before = std::fs::read_to_string(&key).unwrap();
    clock.set(us("2027-02-01T09:00:00Z"));
    portal_client::tick(&s.state).await;
    let failed = s.state.portal.last_refresh().unwrap();
    assert!(
        !failed.ok && failed.text.contains("[license_ended]"),
        "{failed:?}"
    );
    assert!(failed.text.contains(&v.url), "{failed:?}");
    assert_eq!(std::fs::read_to_string(&key).unwrap(), before);
    let (_, settings) = get_text(&c, s.addr, "/settings/license").await;
    assert!(settings.contains("license_ended"), "{settings}");
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_key_is_for_another_hwid_until_get_license_moves_it() {
    let clock = FakeClock::new(us("2026-06-10T10:00:00Z"));
    let v = vendor(&clock).await;
    let (id, token) = v.hwid_license(20, "2027-06-30").await;
    let (a_world, a, ca) = site(&v, "1111-2222-3333-4444", None, &clock).await;
    assert_eq!(get_license(&ca, &a, &token).await.0, StatusCode::OK);

    // The key copied to a machine with another hardware id.
    let (b_world, b_config) = server_world("5555-6666-7777-8888", None);
    std::fs::copy(
        a_world.data().join("license.key"),
        b_world.data().join("license.key"),
    )
    .unwrap();
    let b = serve(b_config, &v.url, &clock).await;
    let cb = logged_in(b.addr).await;
    let (_, page) = get_text(&cb, b.addr, "/settings/license").await;
    assert!(
        page.contains("license file license.key is for another hwid"),
        "{page}"
    );
    assert!(
        page.contains("The GUI is locked: license file license.key is for another hwid")
            && page.contains("class=\"state-locked\""),
        "{page}"
    );

    // Get License with the token moves the license to this machine; no ticket.
    let (code, page) = get_license(&cb, &b, &token).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    assert!(page.contains("hwid 5555-6666-7777-8888"), "{page}");
    assert!(!page.contains("for another hwid"), "{page}");
    assert_eq!(dd(&page, "license-limit"), "20");
    let log = v.portal.audit_log(Some(&id), 50).await.unwrap();
    assert!(
        log.iter()
            .any(|e| e.action == "rebind" && e.details.contains("5555-6666-7777-8888")),
        "{log:?}"
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_bound_key_works_only_under_its_domain() {
    let clock = FakeClock::new(us("2026-06-10T10:00:00Z"));
    let v = vendor(&clock).await;
    let (_, token) = v
        .license(
            15,
            Some("2027-06-30"),
            false,
            BindingState::Domain("pbx.example.com".into()),
        )
        .await;
    let (good_world, good, cg) = site(&v, common::HWID, Some("pbx.example.com"), &clock).await;
    let (code, page) = get_license(&cg, &good, &token).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    assert!(
        page.contains("15 channels, domain pbx.example.com"),
        "{page}"
    );

    // Another domain: the portal refuses, and the copied file is not accepted either.
    let (other_world, other, co) = site(&v, common::HWID, Some("other.example.com"), &clock).await;
    let (code, page) = get_license(&co, &other, &token).await;
    assert_eq!(code, StatusCode::BAD_GATEWAY, "{page}");
    assert!(
        page.contains("bound to domain pbx.example.com, not other.example.com")
            && page.contains("[binding_mismatch]")
            && page.contains(&v.url),
        "{page}"
    );
    assert!(!other_world.data().join("license.key").exists());
    std::fs::copy(
        good_world.data().join("license.key"),
        other_world.data().join("license.key"),
    )
    .unwrap();
    other.state.invalidate_status();
    let (_, page) = get_text(&co, other.addr, "/settings/license").await;
    assert!(
        page.contains("license file license.key is for another domain"),
        "{page}"
    );

    // No domain configured: asked by hardware id, refused.
    let (_, hw, ch) = site(&v, common::HWID, None, &clock).await;
    let (code, page) = get_license(&ch, &hw, &token).await;
    assert_eq!(code, StatusCode::BAD_GATEWAY, "{page}");
    assert!(page.contains("ask with the domain"), "{page}");
    for s in [good, other, hw] {
        s.stop().await.unwrap();
    }
}

/// Copies what makes a clone: license, token, the install id and its check-in key.
fn clone_data(from: &Path, to: &Path) {
    for f in ["license.key", "license.token", "install-id", "install.key"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
}

fn banner_count(page: &str) -> usize {
    page.matches("license used concurrently by").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_clones_are_concurrent_use_a_reboot_is_not() {
    let clock = FakeClock::new(us("2026-07-01T10:00:00Z"));
    let v = vendor(&clock).await;
    let (_, token) = v.hwid_license(10, "2027-06-30").await;
    let (a_world, a, ca) = site(&v, common::HWID, None, &clock).await;
    assert_eq!(get_license(&ca, &a, &token).await.0, StatusCode::OK);
    portal_client::tick(&a.state).await;
    let (_, va) = a.state.portal.verdict().unwrap();
    assert_eq!((va.concurrent, va.systems, va.allowed), (false, 1, 1));

    // A clone: same hardware id, same install id, its own boot id, running beside A.
    let (b_world, b_config) = server_world(common::HWID, None);
    clone_data(&a_world.data(), &b_world.data());
    let b = serve(b_config, &v.url, &clock).await;
    assert_eq!(b.state.portal.install_id, a.state.portal.install_id);
    assert_ne!(b.state.portal.boot_id, a.state.portal.boot_id);
    let cb = logged_in(b.addr).await;
    for s in [&b, &a, &b] {
        clock.advance(60_000_000);
        portal_client::tick(&s.state).await;
    }
    let (_, vb) = b.state.portal.verdict().unwrap();
    assert_eq!((vb.concurrent, vb.systems, vb.allowed), (true, 2, 1));
    let (_, page) = get_text(&cb, b.addr, "/").await;
    assert!(
        page.contains("license used concurrently by 2 systems"),
        "{page}"
    );
    let (_, page) = get_text(&ca, a.addr, "/cdrs").await;
    assert_eq!(banner_count(&page), 1, "{page}");
    // A verdict older than the live window (3 x the 1-hour interval of these servers) is not
    // shown: nobody knows any more whether both still run.
    clock.advance(3 * 3_600_000_000 + 1);
    let (_, page) = get_text(&ca, a.addr, "/cdrs").await;
    assert_eq!(banner_count(&page), 0, "{page}");
    a.stop().await.unwrap();
    b.stop().await.unwrap();

    // A reboot: another license's server checks in, stops, starts again (new boot id).
    let (_, token) = v.hwid_license(10, "2027-06-30").await;
    let (r_world, r_config) = server_world("9999-8888-7777-6666", None);
    let r = serve(r_config.clone(), &v.url, &clock).await;
    let cr = logged_in(r.addr).await;
    assert_eq!(get_license(&cr, &r, &token).await.0, StatusCode::OK);
    portal_client::tick(&r.state).await;
    let old_boot = r.state.portal.boot_id.clone();
    r.stop().await.unwrap();
    clock.advance(5 * 60_000_000);
    let r = serve(r_config, &v.url, &clock).await;
    assert_ne!(r.state.portal.boot_id, old_boot);
    for _ in 0..2 {
        clock.advance(60_000_000);
        portal_client::tick(&r.state).await;
        let (_, vr) = r.state.portal.verdict().unwrap();
        assert_eq!((vr.concurrent, vr.systems), (false, 1), "{vr:?}");
    }
    let cr = logged_in(r.addr).await;
    let (_, page) = get_text(&cr, r.addr, "/").await;
    assert_eq!(banner_count(&page), 0, "{page}");
    assert!(r_world.data().join("install-id").exists());
    r.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_window_allows_two_systems_until_its_date_and_not_after() {
    let clock = FakeClock::new(us("2026-08-10T10:00:00Z"));
    let v = vendor(&clock).await;
    let (id, token) = v.hwid_license(10, "2027-06-30").await;
    v.portal
        .allow_concurrent("support", &id, 2, "2026-08-12".parse().unwrap())
        .await
        .unwrap();
    let (a_world, a, ca) = site(&v, common::HWID, None, &clock).await;
    assert_eq!(get_license(&ca, &a, &token).await.0, StatusCode::OK);
    let (b_world, b_config) = server_world(common::HWID, None);
    clone_data(&a_world.data(), &b_world.data());
    let b = serve(b_config, &v.url, &clock).await;
    let cb = logged_in(b.addr).await;

    let round = |at: &str| {
        clock.set(us(at));
        let (a, b, clock) = (&a, &b, clock.clone());
        async move {
            for s in [a, b, a, b] {
                clock.advance(60_000_000);
                portal_client::tick(&s.state).await;
            }
            b.state.portal.verdict().unwrap().1
        }
    };
    // Its last day, late in the evening: two systems allowed.
    let vb = round("2026-08-12T23:40:00Z").await;
    assert_eq!((vb.concurrent, vb.systems, vb.allowed), (false, 2, 2));
    let (_, page) = get_text(&cb, b.addr, "/").await;
    assert_eq!(banner_count(&page), 0, "{page}");
    // The next day, minutes later: one system allowed, two running.
    let vb = round("2026-08-13T00:00:00Z").await;
    assert_eq!((vb.concurrent, vb.systems, vb.allowed), (true, 2, 1));
    let (_, page) = get_text(&cb, b.addr, "/").await;
    assert!(
        page.contains("license used concurrently by 2 systems"),
        "{page}"
    );
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

/// Writes `sipmeter.toml` in `dir` for hardware id `hwid` and the portal at `portal_url`,
/// followed by `extra` lines: (the data directory it names, the config file's path).
fn cli_config(dir: &Path, hwid: &str, portal_url: &str, extra: &str) -> (PathBuf, String) {
    cli_config_lines(dir, hwid, &format!("portal_url = {portal_url:?}\n{extra}"))
}

/// [`cli_config`] with only `extra` besides the data directory and hardware id.
fn cli_config_lines(dir: &Path, hwid: &str, extra: &str) -> (PathBuf, String) {
    let data = dir.join("data");
    let cfg = dir.join("sipmeter.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\nhwid_override = {hwid:?}\n{extra}",
            data.display().to_string()
        ),
    )
    .unwrap();
    (data, cfg.to_str().unwrap().to_string())
}

fn sipmeter(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_sipmeter"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_license_key_with_a_portal_fetches_verifies_and_installs() {
    // The CLI runs on the real clock: the portal's fake clock stands a minute behind it.
    let clock = FakeClock::new(jiff::Timestamp::now().as_microsecond() - 60_000_000);
    let v = vendor(&clock).await;
    let (id, token) = v.hwid_license(30, "2099-12-31").await;
    let dir = tempfile::tempdir().unwrap();
    let (data, cfg) = cli_config(dir.path(), "ABCD-0000-1111-2222", &v.url, "");
    let cfg = cfg.as_str();

    // An unknown token: the portal's code and URL, nothing installed.
    let out = sipmeter(&[
        "--config-file",
        cfg,
        "--set-license-key",
        "AAAA-BBBB-CCCC-DDDD",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("[unknown_token]") && err.contains(&v.url),
        "{err}"
    );
    assert!(!data.join("license.key").exists());

    let out = sipmeter(&["--config-file", cfg, "--set-license-key", &token]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("installed license {id} from {}", v.url))
            && text.contains("30 channels, hwid ABCD-0000-1111-2222, formal end 2099-12-31"),
        "{text}"
    );
    let out = sipmeter(&["--config-file", cfg, "license", "status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["license"]["license_id"], id.as_str());
    assert_eq!(st["state"], "ok");

    // The offline request file, turned into a key file by the portal.
    let req = dir.path().join("request.json");
    let out = sipmeter(&[
        "--config-file",
        cfg,
        "license",
        "request",
        "--out",
        req.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&req).unwrap()).unwrap();
    assert_eq!(body["sipmeter_license_request"], 1);
    assert_eq!(body["token"], token.as_str());
    assert_eq!(body["hwid"], "ABCD-0000-1111-2222");
    assert_eq!(
        body["install_id"].as_str().unwrap(),
        std::fs::read_to_string(data.join("install-id"))
            .unwrap()
            .trim()
    );
    let issued = v
        .portal
        .offline("support", &std::fs::read_to_string(&req).unwrap())
        .await
        .unwrap();
    assert_eq!(issued.license_id, id);
    let answer = dir.path().join("response.key");
    std::fs::write(&answer, &issued.license).unwrap();
    let out = sipmeter(&[
        "--config-file",
        cfg,
        "license",
        "install",
        answer.to_str().unwrap(),
    ]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("installed response.key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(data.join("license.key")).unwrap(),
        issued.license
    );

    // A key rotation: the new key's certificate comes with every file, so servers need
    // nothing new; the next Get License installs a file signed by the new key.
    let installed = std::fs::read_to_string(data.join("license.key")).unwrap();
    let old_key = license::SignedLicense::parse(&installed, "license.key")
        .unwrap()
        .key_id;
    v.portal.rotate_key("support").await.unwrap();
    let out = sipmeter(&["--config-file", cfg, "--set-license-key", &token]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = std::fs::read_to_string(data.join("license.key")).unwrap();
    assert_ne!(
        license::SignedLicense::parse(&fresh, "license.key")
            .unwrap()
            .key_id,
        old_key
    );
    // `trust-portal` and first-use pinning are gone: nothing a portal says adds trust.
    let out = sipmeter(&["--config-file", cfg, "license", "trust-portal"]);
    assert!(!out.status.success());
    assert!(!data.join("trusted-keys.pub").exists());

    // Given as a flag (not in the config), the portal URL is remembered for refresh and
    // check-ins, and a later --set-license-key without it uses it.
    let dir2 = tempfile::tempdir().unwrap();
    let (data2, cfg2) = cli_config_lines(dir2.path(), "ABCD-0000-1111-2222", "");
    let cfg2 = cfg2.as_str();
    let out = sipmeter(&[
        "--config-file",
        cfg2,
        "--set-license-key",
        &token,
        "--portal",
        &v.url,
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("remembered the portal"), "{text}");
    assert_eq!(
        std::fs::read_to_string(data2.join("portal-url"))
            .unwrap()
            .trim(),
        v.url
    );
    std::fs::remove_file(data2.join("license.key")).unwrap();
    let out = sipmeter(&["--config-file", cfg2, "--set-license-key", &token]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(data2.join("license.key").exists());
    let _ = DAY;
}

/// `sipmeter serve` as a process with `portal_url` and `portal_checkin_s` from the config
/// file: the address it serves on (from its log line) and the process.
fn serve_process(cfg: &str) -> (std::process::Child, std::net::SocketAddr) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_sipmeter"))
        .args(["--config-file", cfg, "serve", "--listen", "127.0.0.1:0"])
        .args(["--admin-password", common::ADMIN_PW])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("serve exited").unwrap();
        if let Some(rest) = line.split("serving http://").nth(1) {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, addr)
}

async fn wait_for_checkins(v: &Vendor, license: &str, n: usize) -> Vec<portal::Checkin> {
    for _ in 0..200 {
        let seen = v.portal.checkins(license).await.unwrap();
        if seen.len() >= n {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} check-ins within 10 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_checks_in_by_itself_and_a_restart_is_a_reboot() {
    let clock = FakeClock::new(jiff::Timestamp::now().as_microsecond() - 60_000_000);
    let v = vendor(&clock).await;
    let (id, token) = v.hwid_license(5, "2099-12-31").await;
    let dir = tempfile::tempdir().unwrap();
    let (data, cfg) = cli_config(
        dir.path(),
        "ABCD-0000-1111-3333",
        &v.url,
        "portal_checkin_s = 1\n",
    );
    let cfg = cfg.as_str();
    let out = sipmeter(&["--config-file", cfg, "--set-license-key", &token]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (mut first, _) = serve_process(cfg);
    let seen = wait_for_checkins(&v, &id, 1).await;
    let install_id = std::fs::read_to_string(data.join("install-id")).unwrap();
    assert_eq!(seen[0].install_id, install_id.trim());
    assert_eq!(seen[0].hwid, "ABCD-0000-1111-3333");
    assert_eq!(seen[0].version, env!("CARGO_PKG_VERSION"));
    first.kill().unwrap();
    first.wait().unwrap();

    // A restart a minute later: a new boot id of the same install, one system.
    clock.advance(60_000_000);
    let (mut second, addr) = serve_process(cfg);
    let seen = wait_for_checkins(&v, &id, 2).await;
    assert_ne!(seen[0].boot_id, seen[1].boot_id);
    assert!(seen.iter().all(|c| c.install_id == install_id.trim()));
    let c = logged_in(addr).await;
    let mut page = String::new();
    for _ in 0..100 {
        page = get_text(&c, addr, "/settings/license").await.1;
        if page.contains("no concurrent use") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        page.contains("no concurrent use: 1 system(s), 1 allowed"),
        "{page}"
    );
    assert!(page.contains(&install_id.trim().to_string()), "{page}");
    assert_eq!(banner_count(&page), 0, "{page}");
    second.kill().unwrap();
    second.wait().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_portal_is_trusted_through_the_configured_ca_only() {
    let clock = FakeClock::new(jiff::Timestamp::now().as_microsecond() - 60_000_000);
    let v = vendor(&clock).await;
    let (id, token) = v.hwid_license(8, "2099-12-31").await;
    // The same portal behind TLS, with a certificate for 127.0.0.1 from a private CA.
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, files) = common::private_ca(dir.path(), "portal");
    // Another CA, which did not sign the portal's certificate.
    let (other_ca, _) = common::private_ca(dir.path(), "other");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let https = format!("https://{}", listener.local_addr().unwrap());
    let (_stop, signal) = tokio::sync::oneshot::channel();
    let _tls = server::tls::serve(
        listener,
        Some(&files),
        portal::router(v.portal.clone()),
        signal,
    )
    .unwrap();

    let config = |ca: &Path| {
        let extra = format!("portal_ca_file = {:?}\n", ca.display().to_string());
        cli_config(dir.path(), "ABCD-0000-1111-4444", &https, &extra)
    };
    // A CA that did not sign the portal's certificate: refused, named, nothing installed.
    let (data, cfg) = config(&other_ca);
    let out = sipmeter(&["--config-file", &cfg, "--set-license-key", &token]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("cannot reach the license portal at {https}")),
        "{err}"
    );
    assert!(!data.join("license.key").exists());
    // The portal's CA: fetched over TLS and installed.
    let (_, cfg) = config(&ca_pem);
    let out = sipmeter(&["--config-file", &cfg, "--set-license-key", &token]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("installed license {id} from {https}")),
        "{text}"
    );
}

fn last_line(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines().last().unwrap_or_default().trim().to_string()
}

/// Everything as processes, on the real clock: the vendor's operator makes a trial with the
/// portal CLI, `sipmeter portal serve` serves it, `--set-license-key` fetches it.
#[test]
fn portal_processes_and_the_cli_issue_a_trial_of_thirty_days_from_today() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let pd = dir.path().join("portal");
    let pd = pd.to_str().unwrap();
    let customer = last_line(&sipmeter(&[
        "portal",
        "customer",
        "add",
        "--data-dir",
        pd,
        "--name",
        "Acme",
    ]));
    let token = last_line(&sipmeter(&[
        "portal",
        "license",
        "add",
        "--data-dir",
        pd,
        "--customer",
        &customer,
        "--channels",
        "7",
        "--trial",
    ]));
    let mut portal = std::process::Command::new(env!("CARGO_BIN_EXE_sipmeter"))
        .args([
            "portal",
            "serve",
            "--data-dir",
            pd,
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--admin-password", "portal support pw"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(portal.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines.next().expect("portal exited").unwrap();
        if let Some(rest) = line.split("portal on ").nth(1) {
            break rest
                .split_whitespace()
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_string();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));

    let data = dir.path().join("server");
    let data = data.to_str().unwrap();
    let out = sipmeter(&[
        "--data-dir",
        data,
        "--set-license-key",
        &token,
        "--portal",
        &url,
    ]);
    let fetched = String::from_utf8_lossy(&out.stdout).to_string();
    let _ = portal.kill();
    let _ = portal.wait();
    assert!(
        out.status.success(),
        "{fetched}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 30 days from the portal's today (UTC), no grace period.
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let end = today.checked_add(jiff::Span::new().days(30)).unwrap();
    assert!(
        fetched.contains("7 channels, hwid ")
            && fetched.contains(&format!("formal end {end}, grace end {end}")),
        "{fetched}"
    );
    let out = sipmeter(&["--data-dir", data, "license", "status", "--json"]);
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(st["license"]["trial"], true);
    assert_eq!(st["license"]["formal_end"], end.to_string());
    assert_eq!(st["state"], "ok");
    assert!(
        st["dates"]["warning"]
            .as_str()
            .unwrap()
            .contains(&format!("trial ends after {end} (30 days left)")),
        "{st}"
    );
}

/// A license re-bound to another system stops on the old one: its next check-in hears
/// `superseded`, every page shows the countdown, and 7 days later the GUI locks (ingest goes
/// on); the new system is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_license_counts_down_and_locks_on_the_old_system() {
    let clock = FakeClock::new(us("2026-09-01T10:00:00Z"));
    let v = vendor(&clock).await;
    let (id, token) = v.hwid_license(20, "2027-06-30").await;
    let (a_world, a, ca) = site(&v, "1111-2222-3333-4444", None, &clock).await;
    assert_eq!(get_license(&ca, &a, &token).await.0, StatusCode::OK);
    portal_client::tick(&a.state).await;
    assert!(a.state.portal.last_checkin().unwrap().ok);

    // The operator moves the license to B with Get License there.
    let (_b_world, b, cb) = site(&v, "5555-6666-7777-8888", None, &clock).await;
    assert_eq!(get_license(&cb, &b, &token).await.0, StatusCode::OK);
    clock.advance(60_000_000);
    portal_client::tick(&a.state).await;
    let (_, verdict) = a.state.portal.verdict().unwrap();
    assert!(verdict.superseded, "{verdict:?}");
    assert!(a_world.data().join("license.superseded").exists());
    let (_, page) = get_text(&ca, a.addr, "/cdrs").await;
    assert!(
        page.contains("License lock in 7 days")
            && page.contains(&format!("license {id} was moved to another system")),
        "{page}"
    );
    // A refresh from A does not take the license back (it says superseded) ...
    clock.advance(3 * DAY);
    portal_client::tick(&a.state).await;
    let (_, page) = get_text(&ca, a.addr, "/cdrs").await;
    assert!(page.contains("License lock in 4 days"), "{page}");
    // ... and the countdown runs from the first word, however often it is repeated.
    let (_, st) = get_text(&ca, a.addr, "/api/v1/license").await;
    let st: serde_json::Value = serde_json::from_str(&st).unwrap();
    let lock_at = st["pending_lock"]["lock_at"].as_i64().unwrap();
    assert_eq!(st["pending_lock"]["reason"]["kind"], "moved");

    clock.advance(4 * DAY);
    a.state.invalidate_status();
    let (_, page) = get_text(&ca, a.addr, "/settings/license").await;
    assert!(
        page.contains("LOCKED (the license was moved to another system)"),
        "{page}"
    );
    let r = ca.get(url(a.addr, "/cdrs")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::LOCKED);
    assert!(clock.now() >= lock_at);

    // B runs on: its check-ins are not superseded, its pages are not locked.
    portal_client::tick(&b.state).await;
    let (_, vb) = b.state.portal.verdict().unwrap();
    assert!(!vb.superseded);
    let r = cb.get(url(b.addr, "/cdrs")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // Moving it back to A (an operator's Get License there) ends A's lock.
    assert_eq!(get_license(&ca, &a, &token).await.0, StatusCode::OK);
    assert!(!a_world.data().join("license.superseded").exists());
    let r = ca.get(url(a.addr, "/cdrs")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    a.stop().await.unwrap();
    b.stop().await.unwrap();
}

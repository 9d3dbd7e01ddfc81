//! The server over real HTTP: a real listener on 127.0.0.1 (ephemeral port), real SQLite in a
//! temporary directory, the embedded sensor on a real capture directory, a real HTTP client,
//! and a fake clock for the dates.

use std::net::SocketAddr;
use std::time::Duration;

use license::{Binding, LicenseTerms, SigningKey};
use reqwest::StatusCode;
use server::FakeClock;
use server::{Access, ROUTES};

mod common;
use common::{
    ADMIN_PW, DAY, World, an_instant_with_five_calls, client, csrf_of, days_before, get_csv,
    get_json, get_status, get_text, logged_in, logged_in_viewer, login_as, metric, pcap_until,
    post, post_form, repo_file, session_csrf, url, us,
};

/// How long the sensor may take to read the captures of a test.
const CAPTURES_IN: Duration = Duration::from_secs(60);

async fn wait_for_captures(addr: SocketAddr, n: f64) {
    common::wait_for_captures(addr, n, CAPTURES_IN).await;
}

fn footer_numbers(html: &str) -> (u32, u32) {
    let grab = |id: &str| -> u32 {
        let key = format!("id=\"{id}\">");
        let at = html.find(&key).unwrap_or_else(|| panic!("no {id} in page")) + key.len();
        html[at..html[at..].find('<').unwrap() + at]
            .parse()
            .unwrap()
    };
    (grab("active-channels"), grab("license-limit"))
}

#[tokio::test]
async fn login_session_and_logout() {
    let w = World::new();
    let clock = FakeClock::new(us("2026-11-28T18:00:00Z"));
    let s = w.start(&clock).await;
    let c = client();
    let r = c.get(url(s.addr, "/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()["location"], "/login?next=%2F");

    let r = login_as(&c, s.addr, "admin", ADMIN_PW).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let (code, html) = get_text(&c, s.addr, "/").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains("<h1>Dashboard</h1>"));
    assert!(html.contains("Active channels"));
    assert!(
        html.contains(">admin</summary>"),
        "the user menu names the user"
    );
    assert!(html.contains("Role: admin"));

    let csrf = csrf_of(&html);
    let r = post(&c, s.addr, "/logout", &[("csrf", csrf.as_str())]).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = c.get(url(s.addr, "/")).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "the session is gone after logout"
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn wrong_passwords_are_throttled_per_user_with_a_clear_message() {
    let w = World::new();
    let clock = FakeClock::new(us("2026-11-28T18:00:00Z"));
    let s = w.start(&clock).await;
    let c = client();
    for _ in 0..server::MAX_FAILURES_PER_USER {
        let r = login_as(&c, s.addr, "admin", "guess").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            r.text()
                .await
                .unwrap()
                .contains("Wrong user name or password.")
        );
    }
    // Now even the right password is refused, and the page says why.
    let r = login_as(&c, s.addr, "admin", ADMIN_PW).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("Too many failed logins for this user"),
        "{text}"
    );
    // HTTP Basic counts against the same throttle.
    let r = c
        .get(url(s.addr, "/api/v1/license"))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    assert!(r.text().await.unwrap().contains("Too many failed logins"));
    assert!(metric(s.addr, "sipmeter_logins_failed_total").await >= 6.0);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn posts_without_the_csrf_token_are_rejected() {
    let w = World::new();
    let clock = FakeClock::new(us("2026-11-28T18:00:00Z"));
    let s = w.start(&clock).await;
    // The login form itself: a made-up token does not match the cookie.
    let c = client();
    let _ = c.get(url(s.addr, "/login")).send().await.unwrap();
    let r = post(
        &c,
        s.addr,
        "/login",
        &[
            ("user", "admin"),
            ("password", ADMIN_PW),
            ("csrf", "forged"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    let c = logged_in(s.addr).await;
    let token = [("token", "ABCD-EFGH-JKLM-NPQR")];
    let r = post(&c, s.addr, "/settings/license/token", &token).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post(
        &c,
        s.addr,
        "/settings/license/token",
        &[("token", "ABCD-EFGH-JKLM-NPQR"), ("csrf", "0000")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Multipart without the field.
    let form = reqwest::multipart::Form::new().text("file", "x");
    let r = c
        .post(url(s.addr, "/settings/license/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!w.data().join("license.token").exists());

    let r = post_form(
        &c,
        s.addr,
        "/settings/license/token",
        &[("token", "ABCD-EFGH-JKLM-NPQR")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("License token ABCD-EFGH-JKLM-NPQR saved")
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn nothing_but_login_health_and_metrics_answers_without_a_login() {
    let w = World::new();
    let clock = FakeClock::new(us("2026-11-28T18:00:00Z"));
    let s = w.start(&clock).await;
    let c = client();
    let mut crawled = 0;
    for route in ROUTES {
        let req = if route.method == reqwest::Method::POST {
            c.post(url(s.addr, route.path)).form(&[("csrf", "x")])
        } else {
            c.get(url(s.addr, route.path))
        };
        let r = req.send().await.unwrap();
        let code = r.status();
        match (route.access, route.api) {
            (Access::Public, _) => {
                assert!(
                    code == StatusCode::OK
                        || (route.method == reqwest::Method::POST && code == StatusCode::FORBIDDEN),
                    "{} {} gave {code}",
                    route.method,
                    route.path
                );
            }
            (_, true) => {
                assert_eq!(code, StatusCode::UNAUTHORIZED, "{}", route.path);
                assert!(r.headers().contains_key("www-authenticate"));
                let body: serde_json::Value = r.json().await.unwrap();
                assert_eq!(body["error"], "login required");
            }
            (_, false) => {
                assert_eq!(
                    code,
                    StatusCode::SEE_OTHER,
                    "{} {}",
                    route.method,
                    route.path
                );
                let loc = r.headers()["location"].to_str().unwrap();
                assert!(loc.starts_with("/login"), "{loc}");
            }
        }
        crawled += 1;
    }
    assert!(crawled >= 19);
    // Logged in, every GET route of the table is served (none is missing from the router, and
    // the router serves none that the table lacks: that would be a 500).
    let user = logged_in(s.addr).await;
    for route in ROUTES.iter().filter(|r| r.method == reqwest::Method::GET) {
        // A route with a parameter (`/cdrs/{id}`) is asked for a record that does not exist:
        // served by a handler, that is a clean 404, never a 500.
        let (path, expected) = match route.path.split_once('{') {
            Some((prefix, _)) => (format!("{prefix}999999999"), StatusCode::NOT_FOUND),
            // The login page sends a logged-in user on to the GUI.
            None if route.path == "/login" => (route.path.to_string(), StatusCode::SEE_OTHER),
            None => (route.path.to_string(), StatusCode::OK),
        };
        let r = user.get(url(s.addr, &path)).send().await.unwrap();
        assert_eq!(r.status(), expected, "{path}");
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'none'"), "{csp}");
        assert_eq!(r.headers()["x-frame-options"], "DENY");
    }
    // Other methods on known paths: HEAD is GET without a body, the rest are not allowed.
    let r = c.head(url(s.addr, "/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = c.head(url(s.addr, "/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c.put(url(s.addr, "/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    // HTTP Basic works on the API only, not on pages.
    let r = c
        .get(url(s.addr, "/api/v1/license"))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .get(url(s.addr, "/"))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The API description lists what exists.
    let doc: serde_json::Value = c
        .get(url(s.addr, "/api/v1/openapi.json"))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for route in ROUTES.iter().filter(|r| r.api) {
        assert!(
            doc["paths"].get(route.path).is_some(),
            "{} missing from openapi.json",
            route.path
        );
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_capture_dropped_into_the_pcap_dir_shows_in_the_footer_and_the_figures() {
    let w = World::new();
    let clock = FakeClock::new(us("2026-11-28T18:00:00Z"));
    let s = w.start(&clock).await;
    let c = logged_in(s.addr).await;
    let (_, html) = get_text(&c, s.addr, "/").await;
    assert_eq!(footer_numbers(&html), (0, license::EVALUATION_CHANNELS));

    // Half of the capture first: the calls still in progress at its end are the channels now.
    let t5 = an_instant_with_five_calls();
    let src = repo_file("tests/data/basic_concurrent.pcap");
    // Written elsewhere, then moved in: the sensor must never see half a file.
    let tmp = w.dir.path().join("half.pcap");
    std::fs::write(&tmp, pcap_until(&src, t5)).unwrap();
    std::fs::rename(&tmp, w.pcaps().join("a-half.pcap")).unwrap();
    wait_for_captures(s.addr, 1.0).await;
    let (_, html) = get_text(&c, s.addr, "/").await;
    assert_eq!(
        footer_numbers(&html),
        (5, 10),
        "live legs at the end of the half capture"
    );
    let now: serde_json::Value = get_json(&c, s.addr, "/api/v1/channels/now").await;
    assert_eq!(now["active_channels"], 5);
    assert_eq!(now["limit"], 10);

    // The whole capture in a second data directory would give the same legs; here it adds the
    // complete legs (new starts are new legs) and no call is left in progress.
    std::fs::copy(&src, w.pcaps().join("b-full.pcap")).unwrap();
    wait_for_captures(s.addr, 2.0).await;
    let (_, html) = get_text(&c, s.addr, "/").await;
    assert_eq!(footer_numbers(&html), (0, 10));
    assert!(
        html.contains("id=\"today-peak\">5<"),
        "today's peak is the capture's 5 channels"
    );
    assert!(
        !html.contains("no-calls-24h"),
        "calls today: no empty-state hint"
    );

    let stats: server::ReportOut = get_json(&c, s.addr, "/api/v1/channels/stats?days=14").await;
    assert_eq!(stats.peak, 5);
    assert_eq!(stats.days.len(), 14);
    assert_eq!(stats.days.last().unwrap().day, "2026-11-28");
    assert_eq!(stats.hours.len(), 14 * 24);
    assert_eq!(
        get_status(&c, s.addr, "/api/v1/channels/stats?days=0").await,
        StatusCode::BAD_REQUEST
    );

    let (code, html) = get_text(&c, s.addr, "/tools/concurrent-calls").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains("id=\"ccs-peak\">5<"));
    // Each day's peak links to its explanation: the legs active then, grouped by key.
    assert!(html.contains("/tools/concurrent-calls?explain=2026-11-28#explain"));
    let (code, html) = get_text(&c, s.addr, "/tools/concurrent-calls?explain=2026-11-28").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains("id=\"explain-channels\">5<"), "{html}");
    assert_eq!(
        html.matches("different numbers: an independent call")
            .count(),
        5
    );
    let (code, _) = get_text(&c, s.addr, "/tools/concurrent-calls?explain=yesterday").await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(metric(s.addr, "sipmeter_legs_stored").await >= 10.0);
    assert_eq!(metric(s.addr, "sipmeter_active_channels").await, 0.0);

    // Reports: the daily figures of the stored legs, as a page and as CSV.
    let stored = metric(s.addr, "sipmeter_legs_stored").await;
    let (code, html) = get_text(&c, s.addr, "/reports").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains("<td class=\"day\">2026-11-28</td>"), "{html}");
    let r = get_csv(
        &c,
        s.addr,
        "/reports/daily.csv?from=2026-11-27&to=2026-11-28",
    )
    .await;
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "{csv}");
    assert!(lines[0].starts_with("day,calls,answered"));
    assert!(lines[1].starts_with("2026-11-27,0,0,"), "{csv}");
    let today: Vec<&str> = lines[2].split(',').collect();
    assert_eq!(today[0], "2026-11-28");
    assert_eq!(
        today[1].parse::<f64>().unwrap(),
        stored,
        "every stored leg is a call of the day"
    );
    assert_eq!(today[7], "5", "the day's channel peak");
    assert_eq!(
        get_status(&c, s.addr, "/reports?from=2026-11-29&to=2026-11-28").await,
        StatusCode::BAD_REQUEST
    );
    s.stop().await.unwrap();

    // A restart does not read the same captures again.
    let s = w.start(&clock).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        metric(s.addr, "sipmeter_captures_processed_total").await,
        0.0
    );
    s.stop().await.unwrap();
}

/// Concurrent Calls Stats and its API end today in the license zone even when the last call
/// is days old (quiet days are zeros, not a stale fortnight), and the pages show times in the
/// license zone to the millisecond with the exact RFC 3339 instant kept in `title`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stats_end_today_and_times_read_in_the_license_zone() {
    let w = World::new();
    let mut config = w.config();
    config.license.tz = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
    // Five days after the sample capture (recorded on 2026-11-28).
    let clock = FakeClock::new(us("2026-12-03T10:00:00Z"));
    let s = common::start(config, &clock).await;
    let c = logged_in(s.addr).await;
    std::fs::copy(
        repo_file("tests/data/basic_concurrent.pcap"),
        w.pcaps().join("a.pcap"),
    )
    .unwrap();
    wait_for_captures(s.addr, 1.0).await;

    let stats: server::ReportOut = get_json(&c, s.addr, "/api/v1/channels/stats?days=14").await;
    assert_eq!(stats.days.len(), 14);
    assert_eq!(stats.from, "2026-11-20");
    assert_eq!(
        stats.to, "2026-12-03",
        "the window ends today, not on 11-28"
    );
    let busy: Vec<_> = stats.days.iter().filter(|d| d.peak > 0).collect();
    assert_eq!(busy.len(), 1);
    assert_eq!((busy[0].day.as_str(), busy[0].peak), ("2026-11-28", 5));
    for d in stats.days.iter().filter(|d| d.day.as_str() > "2026-11-28") {
        assert_eq!((d.peak, d.mean), (0, Some(0.0)), "{}: a quiet day", d.day);
    }
    // The API keeps RFC 3339 in UTC.
    let peak_at = stats.peak_at.clone().unwrap();
    assert!(
        peak_at.starts_with("2026-11-28T16:29:") && peak_at.ends_with('Z'),
        "{peak_at}"
    );

    let (code, html) = get_text(&c, s.addr, "/tools/concurrent-calls").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains("2026-11-20 to 2026-12-03 (today)"), "{html}");
    let today = html
        .find("id=\"ccs-today\"")
        .expect("today's row is marked");
    assert!(html[today..].contains(">2026-12-03 (today)<"));
    // 16:29 UTC is 17:29 in Berlin in November; milliseconds, no 'T', no 'Z' on the page.
    let ms = &peak_at[19..23];
    let local = format!("2026-11-28 17:29:{}{ms}", &peak_at[17..19]);
    assert!(
        html.contains(&format!(
            "<time datetime=\"{peak_at}\" title=\"{peak_at}\">{local}</time>"
        )),
        "the peak instant in the license zone with the exact value in title: {html}"
    );
    assert!(
        !html.contains(&format!(">{peak_at}<")),
        "no raw RFC 3339 text"
    );
    assert!(
        html.contains("2026-11-28 17:00</time>"),
        "window starts local, to the minute"
    );

    // The dashboard's last 24 hours are empty and the page says where calls come from.
    let (_, html) = get_text(&c, s.addr, "/").await;
    assert!(html.contains("id=\"no-calls-24h\""), "{html}");
    assert!(html.contains("id=\"today-peak\">0<"));
}

#[tokio::test]
async fn fifteen_days_over_the_limit_lock_and_a_bigger_key_unlocks_at_once() {
    let w = World::new();
    let now = us("2026-11-28T12:00:00Z");
    let today = license::day_of(now, &jiff::tz::TimeZone::UTC);
    // 5 channels on each of the 15 days before today, against a 4-channel license.
    w.seed_busy_days(&days_before(today, 15), 5).await;
    w.install_key(&w.license(4, now));

    // Two days earlier the streak was 14 days long (13 before, and that day): lockdown, the
    // pages work and carry the countdown.
    let clock = FakeClock::new(now - 2 * DAY);
    let s = w.start(&clock).await;
    let c = logged_in(s.addr).await;
    let (code, html) = get_text(&c, s.addr, "/").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        html.contains("License lockdown: the GUI locks in 1 day, on "),
        "{html}"
    );
    assert_eq!(footer_numbers(&html), (0, 4));

    // Today: 15 days over. Locked.
    clock.set(now);
    for path in [
        "/",
        "/cdrs",
        "/tools/concurrent-calls",
        "/reports",
        "/alerts",
    ] {
        let (code, html) = get_text(&c, s.addr, path).await;
        assert_eq!(code, StatusCode::LOCKED, "{path}");
        assert!(html.contains("The GUI is locked by the license"), "{path}");
        assert_eq!(
            html.matches("15 consecutive days").count(),
            1,
            "{path}: the reason is shown once (not in a banner or the footer too): {html}"
        );
        assert!(
            html.contains("LOCKED (channel peaks over the limit)"),
            "{path}: the footer names the kind of lock"
        );
        assert!(html.contains("Settings › License"), "{path}: how to unlock");
    }
    for path in ["/about", "/settings/license"] {
        let (code, _) = get_text(&c, s.addr, path).await;
        assert_eq!(code, StatusCode::OK, "{path} stays usable when locked");
    }
    let (_, about) = get_text(&c, s.addr, "/about").await;
    assert!(about.contains("id=\"days-over\">15<"));
    assert!(about.contains("L-TEST-4"));
    for path in [
        "/api/v1/channels/now",
        "/api/v1/channels/stats?days=14",
        "/reports/daily.csv",
        "/reports/failures.csv",
    ] {
        let r = c
            .get(url(s.addr, path))
            .basic_auth("admin", Some(ADMIN_PW))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::LOCKED, "{path}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"], "locked");
        assert_eq!(body["lock_reason"]["kind"], "over_limit");
        assert!(
            body["reason"]
                .as_str()
                .unwrap()
                .contains("15 consecutive days")
        );
    }
    let lic: serde_json::Value = get_json(&c, s.addr, "/api/v1/license").await;
    assert_eq!(lic["state"], "locked");
    assert_eq!(
        metric(s.addr, "sipmeter_license_state{state=\"locked\"}").await,
        1.0
    );

    // Recording goes on while locked.
    let before = metric(s.addr, "sipmeter_legs_stored").await;
    std::fs::copy(
        repo_file("tests/data/basic_concurrent.pcap"),
        w.pcaps().join("while-locked.pcap"),
    )
    .unwrap();
    wait_for_captures(s.addr, 1.0).await;
    assert_eq!(metric(s.addr, "sipmeter_legs_stored").await, before + 10.0);

    // A license from a self-made key, certified by a self-made root: refused with the
    // reason, and nothing changes.
    let csrf = session_csrf(&c, s.addr).await;
    let self_made = {
        let (root, key) = (
            SigningKey::generate(&mut license::OsRng),
            SigningKey::generate(&mut license::OsRng),
        );
        let cert =
            license::Certificate::issue(&root, &key.public(), "me", 0, 4_102_444_800_000_000)
                .unwrap();
        license::issue(&w.terms(100_000, now), &key, Some(&cert)).unwrap()
    };
    let form = reqwest::multipart::Form::new()
        .text("csrf", csrf.clone())
        .part(
            "file",
            reqwest::multipart::Part::bytes(self_made.into_bytes()).file_name("license.key"),
        );
    let r = c
        .post(url(s.addr, "/settings/license/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let text = r.text().await.unwrap();
    assert!(
        text.contains("Not installed: license file license.key was not issued by the vendor"),
        "{text}"
    );
    let (code, _) = get_text(&c, s.addr, "/").await;
    assert_eq!(code, StatusCode::LOCKED);

    // A 10-channel key through Settings > License: unlocked on the very next request.
    let form = reqwest::multipart::Form::new().text("csrf", csrf).part(
        "file",
        reqwest::multipart::Part::bytes(w.license(10, now).into_bytes()).file_name("license.key"),
    );
    let r = c
        .post(url(s.addr, "/settings/license/upload"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains("License L-TEST-10 installed"), "{text}");
    let (code, html) = get_text(&c, s.addr, "/").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(footer_numbers(&html).1, 10);
    assert_eq!(
        get_status(&c, s.addr, "/api/v1/channels/now").await,
        StatusCode::OK
    );
    assert!(
        w.data().join("license.key.old").exists(),
        "the previous key is kept"
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_key_for_another_hwid_is_reported_in_the_words_users_search_for() {
    let w = World::new();
    let now = us("2026-11-28T12:00:00Z");
    let clock = FakeClock::new(now);
    // Issued for another machine.
    let text = {
        let today = license::day_of(now, &jiff::tz::TimeZone::UTC);
        let formal_end = today.checked_add(jiff::Span::new().days(30)).unwrap();
        let terms = LicenseTerms {
            license_id: "L-OTHER".into(),
            customer: "Example Telecom".into(),
            channels: 50,
            issued_at: license::timestamp(now - DAY).unwrap(),
            formal_end,
            grace_end: license::grace_end_for(formal_end, false),
            cancelled: false,
            trial: false,
            emergency: false,
            binding: Binding::Hwid("AAAA-BBBB-CCCC-DDDD".parse().unwrap()),
            grants: vec![],
            refresh_by: license::timestamp(now + DAY),
        };
        w.issue(&terms)
    };
    std::fs::create_dir_all(w.data()).unwrap();
    std::fs::write(w.data().join("license.key"), text).unwrap();
    let s = w.start(&clock).await;
    let c = logged_in(s.addr).await;
    let (code, html) = get_text(&c, s.addr, "/settings/license").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        html.contains("license file license.key is for another hwid"),
        "{html}"
    );
    let (code, _) = get_text(&c, s.addr, "/").await;
    assert_eq!(
        code,
        StatusCode::LOCKED,
        "an invalid key locks like an expired one"
    );
    let r = post_form(&c, s.addr, "/settings/license/fetch", &[]).await;
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("no license portal is configured")
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn an_expired_license_locks_with_the_known_message_and_renewal_is_shown_before() {
    let w = World::new();
    let now = us("2026-11-28T12:00:00Z");
    // w.license: formal end 300 days after `now`, grace 20 days more.
    std::fs::create_dir_all(w.data()).unwrap();
    std::fs::write(w.data().join("license.key"), w.license(50, now)).unwrap();
    let clock = FakeClock::new(now + 305 * DAY);
    let s = w.start(&clock).await;
    let c = logged_in(s.addr).await;
    // Past the formal end, within the grace period: everything works, renewal pending shown.
    let (code, html) = get_text(&c, s.addr, "/").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        html.contains("renewal pending: the paid period ended"),
        "{html}"
    );
    assert_eq!(footer_numbers(&html).1, 50);

    // Past the grace end: expired, locked like an over-limit lock.
    clock.set(now + 330 * DAY);
    let (code, html) = get_text(&c, s.addr, "/").await;
    assert_eq!(code, StatusCode::LOCKED);
    assert!(
        html.contains("FAILED license file license.key expired"),
        "{html}"
    );
    let (code, html) = get_text(&c, s.addr, "/settings/license").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains("FAILED license file license.key expired"));
    let r = c
        .get(url(s.addr, "/api/v1/channels/now"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::LOCKED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["lock_reason"]["kind"], "expired");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn viewers_see_pages_but_cannot_change_the_license() {
    let w = World::new();
    let clock = FakeClock::new(us("2026-11-28T12:00:00Z"));
    let s = w.start(&clock).await;
    let c = logged_in_viewer(&s).await;
    let (code, html) = get_text(&c, s.addr, "/settings/license").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains("Only an administrator can change the license."));
    let r = post_form(
        &c,
        s.addr,
        "/settings/license/token",
        &[("token", "ABCD-EFGH-JKLM-NPQR")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(!w.data().join("license.token").exists());
    let (code, _) = get_text(&c, s.addr, "/about").await;
    assert_eq!(code, StatusCode::OK);

    // The token is a credential (it re-binds the license at the portal): an admin sees it,
    // a viewer neither on the page nor in the API.
    let token = "ABCD-EFGH-JKLM-NPQR";
    std::fs::write(w.data().join("license.token"), format!("{token}\n")).unwrap();
    let (_, html) = get_text(&c, s.addr, "/settings/license").await;
    assert!(!html.contains(token), "{html}");
    let (_, api) = get_text(&c, s.addr, "/api/v1/license").await;
    assert!(
        !api.contains(token) && !api.contains("license_token"),
        "{api}"
    );
    let admin = logged_in(s.addr).await;
    let (_, html) = get_text(&admin, s.addr, "/settings/license").await;
    assert!(html.contains(token), "{html}");
    let (_, api) = get_text(&admin, s.addr, "/api/v1/license").await;
    assert!(
        api.contains(&format!("\"license_token\":\"{token}\"")),
        "{api}"
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_capture_still_being_written_is_read_once_when_complete() {
    let w = World::new();
    let clock = FakeClock::new(us("2026-11-28T18:00:00Z"));
    let mut config = w.config();
    config.pcap_settle = Duration::from_millis(1500);
    let s = common::start(config, &clock).await;
    let full = std::fs::read(repo_file("tests/data/basic_concurrent.pcap")).unwrap();
    let target = w.pcaps().join("growing.pcap");
    // Written in four pieces, each well within the settle time of the previous one.
    let mut written = 0;
    for piece in full.chunks(full.len().div_ceil(4)) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&target)
            .unwrap();
        std::io::Write::write_all(&mut f, piece).unwrap();
        written += piece.len();
        if written < full.len() {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(
                metric(s.addr, "sipmeter_captures_processed_total").await,
                0.0,
                "read while still growing"
            );
        }
    }
    wait_for_captures(s.addr, 1.0).await;
    assert_eq!(metric(s.addr, "sipmeter_legs_stored").await, 10.0);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(
        metric(s.addr, "sipmeter_captures_processed_total").await,
        1.0,
        "read once"
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_key_replaced_behind_the_servers_back_unlocks_on_the_next_request() {
    let w = World::new();
    let now = us("2026-11-28T12:00:00Z");
    std::fs::create_dir_all(w.data()).unwrap();
    std::fs::write(w.data().join("license.key"), "not a license").unwrap();
    let clock = FakeClock::new(now);
    let s = w.start(&clock).await;
    let c = logged_in(s.addr).await;
    assert_eq!(get_text(&c, s.addr, "/").await.0, StatusCode::LOCKED);
    // Replaced on disk (an operator's copy, not through the GUI), the clock standing still:
    // the file's new size, time and inode are noticed by the very next request.
    std::fs::write(w.data().join("license.key"), w.license(20, now)).unwrap();
    let (code, html) = get_text(&c, s.addr, "/").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(footer_numbers(&html).1, 20);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn admins_add_users_and_everyone_changes_their_own_password() {
    let w = World::new();
    let clock = FakeClock::new(us("2026-11-28T12:00:00Z"));
    let s = w.start(&clock).await;
    let admin = logged_in(s.addr).await;
    let (code, html) = get_text(&admin, s.addr, "/settings/users").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains("name=\"csrf\""), "the page has a form");
    let add = async |name: &str, pw: &str| {
        let form = [("name", name), ("role", "viewer"), ("password", pw)];
        post_form(&admin, s.addr, "/settings/users", &form).await
    };
    let r = add("vic", "viewer-password").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("User vic (viewer) created.")
    );
    let r = add("vic", "another-password").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST, "names are unique");
    assert_eq!(
        add("bad:name", "long-enough").await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        add("shorty", "short").await.status(),
        StatusCode::BAD_REQUEST
    );

    let vic = client();
    assert_eq!(
        login_as(&vic, s.addr, "vic", "viewer-password")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let (code, html) = get_text(&vic, s.addr, "/").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        !html.contains("href=\"/settings/users\""),
        "no Users link for viewers"
    );
    assert_eq!(
        get_text(&vic, s.addr, "/settings/users").await.0,
        StatusCode::FORBIDDEN
    );

    let change = async |current: &str, new: &str| {
        let form = [("current", current), ("new", new)];
        post_form(&vic, s.addr, "/settings/password", &form).await
    };
    assert_eq!(
        change("wrong-password", "fresh-password").await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        change("viewer-password", "fresh-password").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        get_text(&vic, s.addr, "/").await.0,
        StatusCode::OK,
        "this session stays"
    );
    assert_eq!(
        login_as(&client(), s.addr, "vic", "viewer-password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login_as(&client(), s.addr, "vic", "fresh-password")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    s.stop().await.unwrap();
}

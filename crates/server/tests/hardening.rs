//! Findings of a review as an attacker (issue 20): where a login may send the browser, cookie
//! flags and HSTS when browsers speak HTTPS, and what an anonymous visitor learns.

mod common;

use common::{ADMIN_PW, World, client, csrf_of, get_text, url, us};
use reqwest::StatusCode;
use server::FakeClock;

/// Logs in as the admin with `next` and returns where the answer sends the browser.
async fn login_with_next(addr: std::net::SocketAddr, next: &str) -> String {
    let c = client();
    let page = c.get(url(addr, "/login")).send().await.unwrap();
    let csrf = csrf_of(&page.text().await.unwrap());
    let r = c
        .post(url(addr, "/login"))
        .form(&[
            ("user", "admin"),
            ("password", ADMIN_PW),
            ("csrf", &csrf),
            ("next", next),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{next:?}");
    r.headers()["location"].to_str().unwrap().to_string()
}

#[tokio::test]
async fn a_login_sends_the_browser_only_to_a_path_of_this_site() {
    let w = World::new();
    let s = w.start(&FakeClock::new(us("2026-12-01T12:00:00Z"))).await;
    for (next, to) in [
        ("/cdrs?sort=start", "/cdrs?sort=start"),
        ("/\t/evil.example/", "/"),
        ("/%09/evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example/", "/"),
        ("/%5C/evil.example", "/"),
        ("https://evil.example/", "/"),
    ] {
        assert_eq!(login_with_next(s.addr, next).await, to, "{next:?}");
    }
    s.stop().await.unwrap();
}

#[tokio::test]
async fn an_anonymous_visitor_sees_no_channels_limit_or_license_state() {
    let w = World::new();
    let s = w.start(&FakeClock::new(us("2026-12-01T12:00:00Z"))).await;
    let (code, html) = get_text(&client(), s.addr, "/login").await;
    assert_eq!(code, StatusCode::OK);
    for hidden in [
        "Active channels",
        "License limit",
        "license-state",
        "evaluation",
    ] {
        assert!(!html.contains(hidden), "{hidden} on the login page: {html}");
    }
    let admin = common::logged_in(s.addr).await;
    let (_, html) = get_text(&admin, s.addr, "/").await;
    assert!(html.contains("id=\"footer-channels\"") && html.contains("license-state"));
    s.stop().await.unwrap();
}

/// The `Set-Cookie` values of the login page and of a login.
async fn cookies_and_hsts(base: &str, c: &reqwest::Client) -> (Vec<String>, Option<String>) {
    let page = c.get(format!("{base}/login")).send().await.unwrap();
    let hsts = page
        .headers()
        .get("strict-transport-security")
        .map(|v| v.to_str().unwrap().to_string());
    let mut cookies: Vec<String> = page
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let csrf = csrf_of(&page.text().await.unwrap());
    let r = c
        .post(format!("{base}/login"))
        .form(&[
            ("user", "admin"),
            ("password", ADMIN_PW),
            ("csrf", &csrf),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    cookies.extend(
        r.headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_string()),
    );
    (cookies, hsts)
}

fn no_redirects() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .cookie_store(true)
}

#[tokio::test]
async fn cookies_are_secure_and_hsts_is_sent_only_when_browsers_speak_https() {
    let clock = FakeClock::new(us("2026-12-01T12:00:00Z"));
    // Plain HTTP: neither (a Secure cookie would never come back).
    let w = World::new();
    let s = w.start(&clock).await;
    let (cookies, hsts) = cookies_and_hsts(&format!("http://{}", s.addr), &client()).await;
    assert!(
        !cookies.is_empty() && cookies.iter().all(|c| !c.contains("Secure")),
        "{cookies:?}"
    );
    assert_eq!(hsts, None);
    s.stop().await.unwrap();

    // Behind a TLS-terminating proxy.
    let w = World::new();
    let mut config = w.config();
    config.behind_tls_proxy = true;
    let s = common::start(config, &clock).await;
    let (cookies, hsts) = cookies_and_hsts(&format!("http://{}", s.addr), &client()).await;
    assert!(
        cookies.iter().all(|c| c.contains("; Secure")),
        "{cookies:?}"
    );
    assert_eq!(hsts.as_deref(), Some("max-age=31536000"));
    s.stop().await.unwrap();

    // Our own TLS, with a certificate of a private CA made here.
    let w = World::new();
    let (ca_file, files) = common::private_ca(w.dir.path(), "server");
    let mut config = w.config();
    config.tls = Some(files);
    let s = common::start(config, &clock).await;
    let https = no_redirects()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(ca_file).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    let (cookies, hsts) = cookies_and_hsts(&format!("https://{}", s.addr), &https).await;
    assert!(
        !cookies.is_empty() && cookies.iter().all(|c| c.contains("; Secure")),
        "{cookies:?}"
    );
    assert_eq!(hsts.as_deref(), Some("max-age=31536000"));
    s.stop().await.unwrap();
}

/// A client whose connections come from `ip` (any 127.0.0.0/8 address is this machine).
fn client_from(ip: &str) -> reqwest::Client {
    no_redirects()
        .local_address(ip.parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
}

#[tokio::test]
async fn an_anonymous_guesser_cannot_lock_the_admin_out_of_another_address() {
    let w = World::new();
    let s = w.start(&FakeClock::new(us("2026-12-01T12:00:00Z"))).await;
    let attacker = client_from("127.0.0.2");
    for _ in 0..server::MAX_FAILURES_PER_USER {
        let r = common::login_as(&attacker, s.addr, "admin", "guess").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // The guesser's address is refused for admin, even with the right password ...
    let r = common::login_as(&attacker, s.addr, "admin", ADMIN_PW).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    // ... and over HTTP Basic it says why and when to come back.
    let r = attacker
        .get(url(s.addr, "/api/v1/license"))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    // The admin, from another address, logs in as usual.
    let admin = client_from("127.0.0.1");
    let r = common::login_as(&admin, s.addr, "admin", ADMIN_PW).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_license_changed_by_another_process_counts_on_the_next_request() {
    let w = World::new();
    let now = us("2026-12-01T12:00:00Z");
    // The clock stands still: nothing but the files themselves can make the server look again.
    let s = w.start(&FakeClock::new(now)).await;
    let admin = common::logged_in(s.addr).await;
    let status = || async {
        let (_, text) = get_text(&admin, s.addr, "/api/v1/license").await;
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    assert_eq!(status().await["mode"], "evaluation");
    // `sipmeter license install` (or a copy) into the same data directory.
    std::fs::write(w.data().join("license.key"), w.license(50, now)).unwrap();
    let st = status().await;
    assert_eq!(
        (st["mode"].as_str(), st["limit"]["effective"].as_u64()),
        (Some("licensed"), Some(50))
    );
    // The configured limit written by another process, then removed.
    std::fs::write(w.data().join("channel-limit"), "20\n").unwrap();
    assert_eq!(status().await["limit"]["effective"], 20);
    std::fs::remove_file(w.data().join("channel-limit")).unwrap();
    assert_eq!(status().await["limit"]["effective"], 50);
    s.stop().await.unwrap();
}

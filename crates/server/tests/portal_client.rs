//! The portal client's error mapping: what an operator reads when the portal is wrong,
//! down, or answers something unexpected. A tiny axum stand-in on 127.0.0.1 plays the broken
//! portal (the real portal never answers like this; its own behaviour is checked end to end
//! in `crates/sipmeter/tests/portal_e2e.rs`).

mod common;

use std::net::SocketAddr;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::{get, post};
use server::portal_client::{
    Checkin, LicenseRequest, PortalClient, PortalError, SignedCheckin, Verdict,
};

async fn stand_in() -> SocketAddr {
    let app = Router::new()
        .route(
            "/api/v1/license",
            post(|| async {
                (
                    StatusCode::GONE,
                    r#"{"error":"license_ended","message":"license SM-1 ended after 2026-01-31"}"#,
                )
            }),
        )
        .route(
            "/api/v1/checkin",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "<html>oops</html>") }),
        )
        .route("/api/v1/keys", get(|| async { "{\"keys\": 7}" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn request() -> LicenseRequest {
    LicenseRequest {
        token: "AAAA-BBBB-CCCC-DDDD".into(),
        hwid: Some("1111-2222-3333-4444".into()),
        domain: None,
        install_id: None,
        install_key: None,
        refresh: false,
    }
}

#[tokio::test]
async fn refusals_carry_the_portal_code_message_and_url() {
    let addr = stand_in().await;
    let base = format!("http://{addr}");
    let c = PortalClient::new(&format!("{base}/")).unwrap();
    assert_eq!(c.url(), base, "trailing slash trimmed");
    let e = c.license(&request()).await.unwrap_err();
    assert_eq!(e.code(), Some("license_ended"));
    let text = e.to_string();
    assert_eq!(
        text,
        format!(
            "the license portal at {base} refused: license SM-1 ended after 2026-01-31 [license_ended]"
        )
    );
    assert!(matches!(e, PortalError::Refused { status: 410, .. }));
}

#[tokio::test]
async fn unreadable_answers_and_dead_portals_are_named() {
    let addr = stand_in().await;
    let c = PortalClient::new(&format!("http://{addr}")).unwrap();
    let e = c
        .checkin(&SignedCheckin::sign(
            &Checkin {
                license_id: "SM-1".into(),
                hwid: "1111-2222-3333-4444".into(),
                domain: None,
                install_id: "i".into(),
                boot_id: "b".into(),
                version: "0".into(),
                at: "2026-12-08T00:00:00Z".into(),
            },
            &license::SigningKey::from_seed(&[1; 32]),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "the license portal at http://{addr} gave an answer this server cannot read: HTTP 500 Internal Server Error without an error body"
        )
    );
    let e = c.keys().await.unwrap_err();
    assert!(matches!(e, PortalError::BadAnswer { .. }), "{e}");
    assert!(e.to_string().contains("HTTP 200 OK"), "{e}");

    // Nothing listens on a port just freed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = PortalClient::new(&format!("http://127.0.0.1:{port}")).unwrap();
    let e = dead.license(&request()).await.unwrap_err();
    assert!(matches!(e, PortalError::Unreachable { .. }), "{e}");
    assert!(
        e.to_string().starts_with(&format!(
            "cannot reach the license portal at http://127.0.0.1:{port}: "
        )),
        "{e}"
    );
}

#[test]
fn unusable_urls_are_refused_up_front() {
    for (url, why) in [
        ("ftp://portal.example.com", "scheme ftp"),
        ("portal.example.com:8080", "portal.example.com:8080"),
        ("not a url", "not a url"),
    ] {
        let e = PortalClient::new(url).unwrap_err();
        assert!(matches!(e, PortalError::BadUrl { .. }), "{url}: {e}");
        assert!(e.to_string().contains(why), "{url}: {e}");
    }
}

#[test]
fn an_https_portal_needs_a_readable_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let e = PortalClient::with_ca("https://portal.example.com", Some(&missing)).unwrap_err();
    assert!(e.to_string().contains("cannot read CA file"), "{e}");
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let e = PortalClient::with_ca("https://portal.example.com", Some(&junk)).unwrap_err();
    assert!(e.to_string().contains("holds no certificate"), "{e}");
}

#[test]
fn the_banner_uses_the_portal_sentence_or_the_same_words() {
    let v = |concurrent, message: Option<&str>| Verdict {
        concurrent,
        systems: 3,
        allowed: 1,
        message: message.map(str::to_string),
        superseded: false,
    };
    assert_eq!(v(false, None).banner(), None);
    assert_eq!(
        v(true, None).banner().as_deref(),
        Some("license used concurrently by 3 systems")
    );
    assert_eq!(
        v(true, Some("license used concurrently by 3 systems"))
            .banner()
            .as_deref(),
        Some("license used concurrently by 3 systems")
    );
}

/// Without a portal, Get/Update License says what to do and changes nothing; the install id
/// and boot id are shown anyway (support asks for them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_license_without_a_portal_explains_and_installs_nothing() {
    let w = common::World::new();
    let clock = server::FakeClock::new(common::us("2026-11-28T12:00:00Z"));
    let s = w.start(&clock).await;
    let c = common::logged_in(s.addr).await;
    let (_, page) = common::get_text(&c, s.addr, "/settings/license").await;
    assert!(
        page.contains("not configured (config key portal_url"),
        "{page}"
    );
    let r = common::post_form(&c, s.addr, "/settings/license/fetch", &[]).await;
    assert_eq!(r.status(), reqwest::StatusCode::CONFLICT);
    let page = r.text().await.unwrap();
    assert!(
        page.contains("Get/Update License: not installed; the license file is unchanged. no license portal is configured"),
        "{page}"
    );
    assert!(!w.data().join("license.key").exists());
    let install_id = std::fs::read_to_string(w.data().join("install-id")).unwrap();
    let (_, about) = common::get_text(&c, s.addr, "/about").await;
    assert!(
        about.contains(&format!("<dd id=\"install-id\">{}</dd>", install_id.trim())),
        "{about}"
    );
    assert!(
        about.contains(&format!(
            "<dd id=\"boot-id\">{}</dd>",
            s.state.portal.boot_id
        )),
        "{about}"
    );
    s.stop().await.unwrap();
}

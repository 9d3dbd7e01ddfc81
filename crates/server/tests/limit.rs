//! The configured channel limit of Settings › License: set and cleared in the running server,
//! in force at once (no restart), admins only, CSRF-checked, validated.

use std::net::SocketAddr;

use reqwest::StatusCode;
use server::FakeClock;

mod common;
use common::{World, days_before, get_text, logged_in, logged_in_viewer, post, post_form, us};

/// Posts the limit form with the session's token; status and page.
async fn set_limit(c: &reqwest::Client, addr: SocketAddr, value: &str) -> (StatusCode, String) {
    let r = post_form(
        c,
        addr,
        "/settings/license/limit",
        &[("channel_limit", value)],
    )
    .await;
    (r.status(), r.text().await.unwrap())
}

#[tokio::test]
async fn the_configured_limit_locks_and_unlocks_at_once_without_a_restart() {
    let w = World::new();
    let now = us("2026-11-28T12:00:00Z");
    let today = license::day_of(now, &jiff::tz::TimeZone::UTC);
    // 5 channels on each of the 15 days before today, under a 10-channel key: unlocked.
    w.seed_busy_days(&days_before(today, 15), 5).await;
    w.install_key(&w.license(10, now));
    let clock = FakeClock::new(now);
    let s = w.start(&clock).await;
    let c = logged_in(s.addr).await;
    let (code, _) = get_text(&c, s.addr, "/").await;
    assert_eq!(code, StatusCode::OK);

    // Lowered to 4: 15 days over, locked on the very next request.
    let (code, html) = set_limit(&c, s.addr, "4").await;
    assert_eq!(code, StatusCode::OK, "{html}");
    assert!(html.contains("Configured channel limit set to 4"), "{html}");
    assert!(
        html.contains("value=\"4\""),
        "the form shows the value: {html}"
    );
    assert_eq!(
        std::fs::read_to_string(w.data().join("channel-limit"))
            .unwrap()
            .trim(),
        "4"
    );
    let (code, html) = get_text(&c, s.addr, "/").await;
    assert_eq!(code, StatusCode::LOCKED, "{html}");
    assert!(html.contains("15 consecutive days"), "{html}");
    let (code, about) = get_text(&c, s.addr, "/about").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        about.contains("id=\"configured-limit\">4 (set in Settings › License)"),
        "{about}"
    );
    assert!(about.contains("id=\"effective-limit\">4<"), "{about}");

    // Cleared: unlocked at once.
    let (code, html) = set_limit(&c, s.addr, "").await;
    assert_eq!(code, StatusCode::OK, "{html}");
    assert!(html.contains("Configured channel limit cleared"), "{html}");
    assert!(!w.data().join("channel-limit").exists());
    let (code, _) = get_text(&c, s.addr, "/").await;
    assert_eq!(code, StatusCode::OK);

    // Locked again, then raised to the entitlement: unlocked at once.
    assert_eq!(set_limit(&c, s.addr, "4").await.0, StatusCode::OK);
    assert_eq!(get_text(&c, s.addr, "/").await.0, StatusCode::LOCKED);
    assert_eq!(set_limit(&c, s.addr, "10").await.0, StatusCode::OK);
    let (code, _) = get_text(&c, s.addr, "/").await;
    assert_eq!(code, StatusCode::OK);

    // Above the entitlement: accepted, and the page says it has no effect beyond it.
    let (code, html) = set_limit(&c, s.addr, "50").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        html.contains("above the 10 channels of the license"),
        "{html}"
    );
    let (_, about) = get_text(&c, s.addr, "/about").await;
    assert!(about.contains("id=\"effective-limit\">10<"), "{about}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn bad_values_are_refused_with_the_field_named() {
    let w = World::new();
    let clock = FakeClock::new(us("2026-11-28T12:00:00Z"));
    let s = w.start(&clock).await;
    let c = logged_in(s.addr).await;
    for bad in ["abc", "0", "-3", "2.5", "99999999999"] {
        let (code, html) = set_limit(&c, s.addr, bad).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}");
        assert!(
            html.contains("Configured channel limit must be a whole number of at least 1"),
            "{bad}: {html}"
        );
        assert!(!w.data().join("channel-limit").exists(), "{bad}");
    }
    // A form without the field is refused too, rather than read as "clear".
    let r = post_form(&c, s.addr, "/settings/license/limit", &[]).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("Configured channel limit"));
    s.stop().await.unwrap();
}

#[tokio::test]
async fn only_admins_with_the_form_token_change_the_limit() {
    let w = World::new();
    let clock = FakeClock::new(us("2026-11-28T12:00:00Z"));
    let s = w.start(&clock).await;

    // No token, or a wrong one: refused by the gate.
    let c = logged_in(s.addr).await;
    for form in [
        vec![("channel_limit", "4")],
        vec![("channel_limit", "4"), ("csrf", "0000")],
    ] {
        let r = post(&c, s.addr, "/settings/license/limit", &form).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    assert!(!w.data().join("channel-limit").exists());

    // A viewer sees no form and is refused with a valid token.
    let v = logged_in_viewer(&s).await;
    let (code, html) = get_text(&v, s.addr, "/settings/license").await;
    assert_eq!(code, StatusCode::OK);
    assert!(!html.contains("/settings/license/limit"));
    let (code, _) = set_limit(&v, s.addr, "4").await;
    assert_eq!(code, StatusCode::FORBIDDEN);
    assert!(!w.data().join("channel-limit").exists());
    s.stop().await.unwrap();
}

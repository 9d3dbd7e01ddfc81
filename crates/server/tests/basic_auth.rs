//! HTTP Basic on the API remembers successful checks for a while (no argon2 per request), but a
//! changed password is refused at once and failures are never remembered and still count
//! toward the throttle. A real server on 127.0.0.1 over real SQLite.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use server::{FakeClock, Running};

mod common;
use common::{World, client, url, us};

async fn api_as(addr: SocketAddr, user: &str, pw: &str) -> (StatusCode, Duration) {
    let started = Instant::now();
    let r = client()
        .get(url(addr, "/api/v1/license"))
        .basic_auth(user, Some(pw))
        .send()
        .await
        .unwrap();
    let code = r.status();
    r.bytes().await.unwrap();
    (code, started.elapsed())
}

fn hits(s: &Running) -> u64 {
    s.state.basic_auth.hits()
}

/// A server with a 50-channel license and no capture directory (a world it keeps alive).
async fn licensed_server() -> (World, Running) {
    let w = World::new();
    let now = us("2026-11-28T18:00:00Z");
    w.install_key(&w.license(50, now));
    let mut config = w.config();
    config.pcap_dir = None;
    let s = common::start(config, &FakeClock::new(now)).await;
    (w, s)
}

#[tokio::test]
async fn basic_checks_are_cached_until_the_password_changes() {
    let (_w, s) = licensed_server().await;
    let hash = server::hash_password("script pw 1").unwrap();
    assert!(
        s.state
            .store
            .create_user("script", store::Role::Viewer, &hash, 0)
            .await
            .unwrap()
    );

    let (code, first) = api_as(s.addr, "script", "script pw 1").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(hits(&s), 0, "the first request runs argon2");
    let (code, second) = api_as(s.addr, "script", "script pw 1").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(hits(&s), 1, "the second request is answered from the cache");
    println!("HTTP Basic: first request {first:?} (argon2), second {second:?} (cached)");
    assert!(second < Duration::from_secs(5));

    // Another user's password is not the script's.
    let (code, _) = api_as(s.addr, "admin", "script pw 1").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    // The password changes (as the Password page or another process does, in the store):
    // the old one is refused on the very next request, the new one works.
    let new_hash = server::hash_password("script pw 2").unwrap();
    assert!(
        s.state
            .store
            .set_password("script", &new_hash)
            .await
            .unwrap()
    );
    let before = hits(&s);
    let (code, _) = api_as(s.addr, "script", "script pw 1").await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(hits(&s), before);
    let (code, _) = api_as(s.addr, "script", "script pw 2").await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = api_as(s.addr, "script", "script pw 2").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(hits(&s), before + 1);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn failures_are_not_cached_and_still_throttled() {
    let (_w, s) = licensed_server().await;

    // A success is cached...
    for _ in 0..2 {
        let (code, _) = api_as(s.addr, "admin", common::ADMIN_PW).await;
        assert_eq!(code, StatusCode::OK);
    }
    assert_eq!(hits(&s), 1);
    // ...wrong passwords never are, and each one counts toward the throttle.
    for _ in 0..server::MAX_FAILURES_PER_USER {
        let (code, _) = api_as(s.addr, "admin", "guess").await;
        assert_eq!(code, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(hits(&s), 1);
    // Throttled: even the right (cached) password is refused until the window passes, with
    // the reason (429, not "login required").
    let (code, _) = api_as(s.addr, "admin", common::ADMIN_PW).await;
    assert_eq!(code, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(hits(&s), 1);
    s.stop().await.unwrap();
}

//! Settings › Sensors and the ingest API over real HTTP: an admin creates a sensor (its token
//! shown once), the token ingests legs and heartbeats, the page shows what the sensor
//! reported, and a revoked token is refused at once.

use reqwest::StatusCode;
use server::FakeClock;

mod common;
use common::{
    World, answered_leg, client, get_text, logged_in, logged_in_viewer, post_form, url, us,
};

fn leg(i: u32, claimed_sensor: u32) -> calls::Leg {
    let start = us("2026-11-28T10:00:00Z") + i64::from(i) * 1_000_000;
    calls::Leg {
        sensor_id: claimed_sensor,
        caller_domain: "a.example".into(),
        called_domain: "b.example".into(),
        answer: Some(start + 2_000_000),
        hangup_by: Some(calls::Side::Caller),
        sip_message_count: 6,
        ..answered_leg(
            format!("remote-{i}@example"),
            format!("+4930{i:06}"),
            format!("+4940{i:06}"),
            start,
            start + 60_000_000,
        )
    }
}

#[tokio::test]
async fn an_admin_creates_a_sensor_whose_token_ingests_until_revoked() {
    let w = World::new();
    let clock = FakeClock::new(us("2026-11-28T18:00:00Z"));
    let s = w.start(&clock).await;
    let admin = logged_in(s.addr).await;
    let (code, html) = get_text(&admin, s.addr, "/settings/sensors").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains("name=\"csrf\""), "the page has a form");
    // No CSRF token, no sensor.
    let r = common::post(&admin, s.addr, "/settings/sensors", &[("name", "nocsrf")]).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post_form(&admin, s.addr, "/settings/sensors", &[("name", "site-a")]).await;
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().await.unwrap();
    let key = "<code id=\"sensor-token\">";
    let at = html.find(key).expect("the new token is shown") + key.len();
    let token = html[at..at + 64].to_string();
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    let (_, again) = get_text(&admin, s.addr, "/settings/sensors").await;
    assert!(!again.contains(&token), "the token is shown only once");
    assert!(again.contains("site-a") && again.contains("never seen"));
    // The same name twice is refused.
    let r = post_form(&admin, s.addr, "/settings/sensors", &[("name", "site-a")]).await;
    assert_eq!(r.status(), StatusCode::CONFLICT);

    let c = client();
    let post = |path: &'static str, body: Vec<u8>, token: String| {
        c.post(url(s.addr, path))
            .bearer_auth(token)
            .body(body)
            .send()
    };
    // A heartbeat claiming another sensor id is refused; the right one learns its id.
    let hb = |id: Option<u32>| {
        serde_json::to_vec(&sensor::uplink::Heartbeat {
            sensor_id: id,
            version: "9.9.9".into(),
            interval_s: 5,
            spool_bytes: 12345,
            spool_batches: 3,
            ..Default::default()
        })
        .unwrap()
    };
    let r = post("/api/v1/ingest/heartbeat", hb(Some(999)), token.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = post("/api/v1/ingest/heartbeat", hb(None), token.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let ack: sensor::uplink::HeartbeatAck = r.json().await.unwrap();
    let id = ack.sensor_id;
    assert!(id > 1, "a sensor of its own, not the embedded one");

    // A batch whose legs claim sensor 1 is stored under the token's sensor; resent, it is
    // all duplicates.
    let batch = sensor::wire::encode(&(0..50).map(|i| leg(i, 1)).collect::<Vec<_>>()).unwrap();
    for (inserted, duplicates) in [(50, 0), (0, 50)] {
        let r = post("/api/v1/ingest/legs", batch.clone(), token.clone())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let ack: sensor::uplink::BatchAck = r.json().await.unwrap();
        assert_eq!((ack.inserted, ack.duplicates), (inserted, duplicates));
    }
    let legs = s.state.store.legs(&Default::default()).await.unwrap();
    assert_eq!(legs.len(), 50);
    assert!(legs.iter().all(|l| l.sensor_id == id));
    // A damaged batch is a clear 400, not a crash.
    let r = post("/api/v1/ingest/legs", b"garbage".to_vec(), token.clone())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // The sensor's row is updated just after the answer (it must not delay it).
    let wanted = ["9.9.9", ">50<", "3 batches, 12345 bytes", "active"];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (_, html) = get_text(&admin, s.addr, "/settings/sensors").await;
        if wanted.iter().all(|w| html.contains(w)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{wanted:?} not all in {html}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Viewers may not see or change sensors.
    let viewer = logged_in_viewer(&s).await;
    let (code, _) = get_text(&viewer, s.addr, "/settings/sensors").await;
    assert_eq!(code, StatusCode::FORBIDDEN);

    let r = post_form(
        &admin,
        s.addr,
        "/settings/sensors/revoke",
        &[("id", &id.to_string())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains("revoked"));
    for path in ["/api/v1/ingest/heartbeat", "/api/v1/ingest/legs"] {
        let r = post(path, hb(None), token.clone()).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    s.stop().await.unwrap();
}

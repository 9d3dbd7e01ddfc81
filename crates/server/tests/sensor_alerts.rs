//! Sensor alerts end to end (issue 7: a full spool is an alerted error, never a silent drop):
//! a real server on 127.0.0.1, a sensor whose token is made through the store, heartbeats
//! POSTed over HTTP, and a real webhook receiver. Evaluation is driven by
//! `alerts::evaluate_once` on the fake clock (the background task waits an hour).

use std::sync::Arc;
use std::time::{Duration, Instant};

use calls::Micros;
use reqwest::StatusCode;
use server::AlertsConfig;
use server::{Clock, FakeClock, Running};
use store::{AlertKind, AlertRuleSpec};

mod common;
#[path = "common/hook.rs"]
mod hook;
use common::{DAY, World, client, get_text, logged_in, post_form, url, us};
use hook::Hook;

const MINUTE: Micros = 60_000_000;

fn heartbeat(spool_full: bool, spool_batches: u64) -> Vec<u8> {
    serde_json::to_vec(&sensor::uplink::Heartbeat {
        sensor_id: None,
        version: "9.9.9".into(),
        interval_s: 5,
        spool_bytes: spool_batches * 1000,
        spool_batches,
        spool_full,
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test]
async fn a_full_spool_and_a_silent_sensor_alert_naming_the_sensor_and_recover() {
    let w = World::new();
    let now = us("2026-11-28T18:00:00Z");
    let mut terms = w.terms(50, now);
    terms.refresh_by = license::timestamp(now + 400 * DAY);
    w.install_key(&w.issue(&terms));
    let clock = FakeClock::new(now);
    let mut config = w.config();
    config.pipeline = sensor::PipelineConfig::default();
    let alerts_config = AlertsConfig {
        interval: Duration::from_secs(3600),
        timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let s = Running::start_with_alerts(config, alerts_config, Arc::new(clock.clone()))
        .await
        .unwrap();

    let token = "ab".repeat(32);
    s.state
        .store
        .create_sensor("site-berlin", &store::token_hash(&token), now)
        .await
        .unwrap()
        .expect("a new sensor");
    let (hook, hook_url) = Hook::start(None).await;
    let id = s
        .state
        .store
        .create_alert_rule(
            &AlertRuleSpec {
                name: "sensors".into(),
                kind: AlertKind::Sensor,
                enabled: true,
                threshold_percent: 0.0,
                window_minutes: 10,
                min_calls: 0,
                webhook_url: Some(hook_url),
                email: None,
                renotify_minutes: 60,
            },
            now,
        )
        .await
        .unwrap();
    let c = client();
    // The server acknowledges a heartbeat before it writes the sensor's row, so each beat
    // waits until the row says what was sent (at the clock's now) before the rules look.
    let beat = async |full: bool, batches: u64| {
        let r = c
            .post(url(s.addr, "/api/v1/ingest/heartbeat"))
            .bearer_auth(&token)
            .body(heartbeat(full, batches))
            .send()
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let sensors = s.state.store.list_sensors().await.unwrap();
            let row = sensors.iter().find(|x| x.name == "site-berlin").unwrap();
            if row.last_seen == Some(clock.now())
                && row.spool_full == full
                && row.spool_batches == batches
            {
                return r.status();
            }
            assert!(Instant::now() < deadline, "heartbeat not recorded: {row:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };

    // Never heard from: not yet deployed, no alert.
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 0);
    // Healthy heartbeat: nothing.
    assert_eq!(beat(false, 2).await, StatusCode::OK);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 0);

    // Spool full: one webhook naming the sensor, not repeated while it stays full.
    clock.advance(MINUTE);
    assert_eq!(beat(true, 500).await, StatusCode::OK);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 1);
    clock.advance(MINUTE);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 0);
    let docs = hook.docs();
    assert_eq!(docs.len(), 1, "{docs:?}");
    assert_eq!(docs[0]["event"], "fired");
    assert_eq!(docs[0]["rule"]["kind"], "sensor");
    assert_eq!(docs[0]["rule"]["id"], id);
    assert_eq!(docs[0]["message"], "Sensors: site-berlin (spool full)");
    assert_eq!(docs[0]["details"]["sensors"][0]["sensor"], "site-berlin");
    assert_eq!(docs[0]["details"]["sensors"][0]["spool_batches"], 500);

    // Drained: one recovery, then quiet.
    assert_eq!(beat(false, 0).await, StatusCode::OK);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 1);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 0);
    let docs = hook.docs();
    assert_eq!(docs.len(), 2, "{docs:?}");
    assert_eq!(docs[1]["event"], "recovered");
    assert!(
        docs[1]["message"]
            .as_str()
            .unwrap()
            .contains("site-berlin (spool full)"),
        "{docs:?}"
    );
    assert!(!s.state.store.alert_rule(id).await.unwrap().unwrap().firing);

    // Silent for the window: alerted with how long; a heartbeat clears it.
    clock.advance(9 * MINUTE);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 0);
    clock.advance(MINUTE);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 1);
    assert_eq!(
        hook.docs()[2]["message"],
        "Sensors: site-berlin (silent for 10 min)"
    );
    assert_eq!(beat(false, 0).await, StatusCode::OK);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 1);
    assert_eq!(hook.docs()[3]["event"], "recovered");
    assert_eq!(hook.docs().len(), 4);

    // The Alerts page offers the kind and describes the rule.
    let admin = logged_in(s.addr).await;
    let (code, html) = get_text(&admin, s.addr, "/alerts").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains("<option value=\"sensor\""), "{html}");
    assert!(html.contains("spool full or silent for 10 min"), "{html}");
    let r = post_form(
        &admin,
        s.addr,
        "/alerts/rules",
        &[
            ("name", "backlog"),
            ("kind", "sensor"),
            ("enabled", "1"),
            ("window", "15"),
            ("min_calls", "100"),
            ("webhook", "http://127.0.0.1:9/hook"),
            ("renotify", "0"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "saved, back to the page");
    let saved = s.state.store.alert_rules().await.unwrap();
    let backlog = saved.iter().find(|r| r.spec.name == "backlog").unwrap();
    assert_eq!(backlog.spec.kind, AlertKind::Sensor);
    assert_eq!(
        (backlog.spec.window_minutes, backlog.spec.min_calls),
        (15, 100)
    );
    let (_, html) = get_text(&admin, s.addr, "/alerts").await;
    assert!(
        html.contains("spool full, more than 100 batches waiting, or silent for 15 min"),
        "{html}"
    );
    s.stop().await.unwrap();
}

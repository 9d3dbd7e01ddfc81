//! Alerts end to end: a real server on 127.0.0.1 with the embedded sensor reading real
//! captures, a real webhook receiver (axum) and a real SMTP sink (hand-written, records the
//! DATA) on 127.0.0.1, and the fake clock. Evaluation is driven by `alerts::evaluate_once`
//! (the background task is given an hour-long interval so it never races the test).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use calls::Micros;
use reqwest::StatusCode;
use server::AlertsConfig;
use server::{Clock, FakeClock, Running};
use store::{AlertKind, AlertOutcome, AlertRuleSpec};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

mod common;
#[path = "common/hook.rs"]
mod hook;
use common::{
    DAY, World, csrf_of, days_before, get_text, logged_in, logged_in_viewer, post, repo_file, us,
};
use hook::Hook;

const MINUTE: Micros = 60_000_000;

/// One message an SMTP client handed over.
#[derive(Debug, Clone)]
struct Mail {
    from: String,
    to: String,
    data: String,
}

/// A minimal SMTP server: greets, accepts EHLO/HELO, MAIL, RCPT, DATA (until the lone dot),
/// QUIT, and records each message.
#[derive(Clone, Default)]
struct SmtpSink(Arc<Mutex<Vec<Mail>>>);

impl SmtpSink {
    async fn start() -> (SmtpSink, String) {
        let sink = SmtpSink::default();
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let got = sink.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = l.accept().await {
                let got = got.clone();
                tokio::spawn(async move {
                    let (r, mut w) = conn.into_split();
                    let mut r = BufReader::new(r);
                    w.write_all(b"220 sink ESMTP\r\n").await.unwrap();
                    let (mut from, mut to) = (String::new(), String::new());
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let cmd = line.trim_end().to_string();
                        let upper = cmd.to_ascii_uppercase();
                        if upper.starts_with("EHLO") {
                            w.write_all(b"250-sink\r\n250 8BITMIME\r\n").await.unwrap();
                        } else if upper.starts_with("MAIL FROM:") {
                            from = cmd[10..].to_string();
                            w.write_all(b"250 OK\r\n").await.unwrap();
                        } else if upper.starts_with("RCPT TO:") {
                            to = cmd[8..].to_string();
                            w.write_all(b"250 OK\r\n").await.unwrap();
                        } else if upper == "DATA" {
                            w.write_all(b"354 go on\r\n").await.unwrap();
                            let mut data = String::new();
                            loop {
                                let mut l = String::new();
                                if r.read_line(&mut l).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if l == ".\r\n" {
                                    break;
                                }
                                data.push_str(&l);
                            }
                            got.0.lock().unwrap().push(Mail {
                                from: from.clone(),
                                to: to.clone(),
                                data,
                            });
                            w.write_all(b"250 queued\r\n").await.unwrap();
                        } else if upper == "QUIT" {
                            let _ = w.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            w.write_all(b"502 what\r\n").await.unwrap();
                        }
                    }
                });
            }
        });
        (sink, addr.to_string())
    }

    fn mails(&self) -> Vec<Mail> {
        self.0.lock().unwrap().clone()
    }
}

/// Installs a license for the world's hardware id: `channels`, issued 40 days before `issued`,
/// formal end 300 days after it (grace 20 more), refresh due 400 days after it.
fn install_license(w: &World, channels: u32, issued: Micros) {
    let mut terms = w.terms(channels, issued);
    terms.refresh_by = license::timestamp(issued + 400 * DAY);
    w.install_key(&w.issue(&terms));
}

/// The server of these tests, with the alert engine: SIP messages not kept, the background
/// evaluation given an hour-long interval so it never races the test.
async fn start(w: &World, clock: &FakeClock, smtp: Option<String>) -> Running {
    let mut config = w.config();
    config.pipeline = sensor::PipelineConfig::default();
    let alerts = AlertsConfig {
        smtp_relay: smtp,
        smtp_from: "sipmeter@example.test".into(),
        interval: Duration::from_secs(3600),
        timeout: Duration::from_secs(5),
        ca_file: None,
    };
    Running::start_with_alerts(config, alerts, Arc::new(clock.clone()))
        .await
        .unwrap()
}

fn rule(name: &str, kind: AlertKind) -> AlertRuleSpec {
    AlertRuleSpec {
        name: name.into(),
        kind,
        enabled: true,
        threshold_percent: 80.0,
        window_minutes: 5,
        min_calls: 0,
        webhook_url: None,
        email: None,
        renotify_minutes: 60,
    }
}

/// Drops a capture into the pcap dir and waits until its legs are stored and counted in the
/// channel figures (the writer updates those after the batch).
async fn feed(w: &World, s: &Running, name: &str, legs: u64) {
    std::fs::copy(
        repo_file(&format!("tests/data/{name}")),
        w.pcaps().join(name),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stored = s.state.store.count_legs().await.unwrap();
        let minutes = s
            .state
            .store
            .channel_minutes(us("2026-11-28T16:00:00Z"), us("2026-11-28T17:00:00Z"))
            .await
            .unwrap();
        if stored >= legs && !minutes.is_empty() {
            // The writer invalidates the status after the update; give it the same.
            s.state.invalidate_status();
            return;
        }
        assert!(Instant::now() < deadline, "{name} not stored in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn channels_above_the_share_go_to_the_webhook_and_by_email_once_then_again_when_due() {
    let w = World::new();
    // basic_concurrent.pcap: 10 calls on 2026-11-28 16:29, at most 5 at once; 5 > 80 % of 6.
    let now = us("2026-11-28T16:31:00Z");
    install_license(&w, 6, now);
    let (hook, hook_url) = Hook::start(None).await;
    let (sink, smtp) = SmtpSink::start().await;
    let clock = FakeClock::new(now);
    let s = start(&w, &clock, Some(smtp)).await;
    let mut spec = rule("busy trunk", AlertKind::Channels);
    spec.webhook_url = Some(hook_url);
    spec.email = Some("noc@example.test".into());
    spec.renotify_minutes = 2;
    let id = s.state.store.create_alert_rule(&spec, now).await.unwrap();
    // A rule that must stay quiet: 5 is not above 90 % of 6.
    let mut quiet = rule("quiet", AlertKind::Channels);
    quiet.threshold_percent = 90.0;
    quiet.email = Some("quiet@example.test".into());
    s.state.store.create_alert_rule(&quiet, now).await.unwrap();

    assert_eq!(
        server::evaluate_alerts(&s.state).await.unwrap(),
        0,
        "no calls yet"
    );
    feed(&w, &s, "basic_concurrent.pcap", 10).await;
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 2);

    let docs = hook.docs();
    assert_eq!(docs.len(), 1, "{docs:?}");
    let d = &docs[0];
    assert_eq!(d["source"], "sipmeter");
    assert_eq!(d["rule"]["name"], "busy trunk");
    assert_eq!(d["rule"]["id"], id);
    assert_eq!(d["rule"]["kind"], "channels");
    assert_eq!(d["event"], "fired");
    assert_eq!(d["details"]["peak_channels"], 5);
    assert_eq!(d["details"]["limit"], 6);
    assert_eq!(d["license"]["state"], "ok");
    assert_eq!(d["at"], "2026-11-28T16:31:00.000000Z");

    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "only the firing rule mails: {mails:?}");
    assert_eq!(mails[0].from, "<sipmeter@example.test>");
    assert_eq!(mails[0].to, "<noc@example.test>");
    assert!(mails[0].data.contains("To: noc@example.test\r\n"));
    assert!(
        mails[0]
            .data
            .contains("Subject: [sipmeter] busy trunk: Channels: peak 5")
    );
    assert!(mails[0].data.contains("\"peak_channels\": 5"));

    // Edge-triggered: still above, not due again yet.
    clock.advance(MINUTE);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 0);
    assert_eq!(hook.docs().len(), 1);
    // Re-notify after 2 minutes while it holds (16:33: the 5-minute window still has 16:29).
    clock.advance(MINUTE);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 2);
    assert_eq!(hook.docs()[1]["event"], "still_firing");
    assert_eq!(sink.mails().len(), 2);
    // Out of the window: quiet, and nothing more is sent.
    clock.advance(10 * MINUTE);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 0);
    assert!(!s.state.store.alert_rule(id).await.unwrap().unwrap().firing);

    let log = s.state.store.alert_log(10, 0).await.unwrap();
    assert_eq!(log.len(), 4);
    assert!(
        log.iter()
            .all(|e| e.outcome == AlertOutcome::Delivered && e.rule_name == "busy trunk")
    );

    // The page shows the rule and the log.
    let c = logged_in(s.addr).await;
    let (code, html) = get_text(&c, s.addr, "/alerts").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains("busy trunk"));
    assert!(html.contains("e-mail noc@example.test"));
    assert_eq!(html.matches(">delivered</td>").count(), 4, "{html}");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn license_changes_alert_and_a_locked_license_sends_nothing_and_logs_why() {
    let w = World::new();
    let now = us("2026-11-28T12:00:00Z");
    install_license(&w, 50, now);
    let (hook, hook_url) = Hook::start(None).await;
    let (sink, smtp) = SmtpSink::start().await;
    let clock = FakeClock::new(now);
    let s = start(&w, &clock, Some(smtp)).await;
    let mut spec = rule("license watch", AlertKind::License);
    spec.webhook_url = Some(hook_url);
    spec.email = Some("admin@example.test".into());
    spec.renotify_minutes = 0;
    s.state.store.create_alert_rule(&spec, now).await.unwrap();

    // First look: the situation is remembered, nothing is sent.
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 0);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 0);
    // 280 days on: the formal end is 20 days away.
    clock.advance(280 * DAY);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 2);
    let docs = hook.docs();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["event"], "changed");
    assert_eq!(docs[0]["details"]["situation"], "ok, expiring soon");
    assert_eq!(docs[0]["details"]["previous"], "ok");
    assert!(
        sink.mails()[0]
            .data
            .contains("License: ok, expiring soon (was ok)")
    );
    assert_eq!(
        server::evaluate_alerts(&s.state).await.unwrap(),
        0,
        "no change, no alert"
    );

    // Past the grace end: expired, locked. The change would be alerted, but nothing leaves.
    clock.advance(45 * DAY);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 2);
    assert_eq!(hook.docs().len(), 1, "nothing sent while locked");
    assert_eq!(sink.mails().len(), 1, "nothing mailed while locked");
    let log = s.state.store.alert_log(2, 0).await.unwrap();
    let mut channels: Vec<&str> = log.iter().map(|e| e.channel.as_str()).collect();
    channels.sort();
    assert_eq!(channels, ["email", "webhook"]);
    for e in &log {
        assert_eq!(e.outcome, AlertOutcome::Suppressed);
        assert_eq!(e.detail.as_deref(), Some("license locked"));
        assert!(e.what.contains("locked, expired"), "{}", e.what);
    }
    // Renewed: the page is usable again and its log says why nothing was sent.
    install_license(&w, 50, clock.now());
    s.state.invalidate_status();
    let c = logged_in(s.addr).await;
    let (code, html) = get_text(&c, s.addr, "/alerts").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        html.matches("suppressed: license locked").count(),
        2,
        "{html}"
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn lockdown_alerts_admins_daily() {
    let w = World::new();
    let now = us("2026-11-28T12:00:00Z");
    let today = license::day_of(now, &jiff::tz::TimeZone::UTC);
    // 5 channels on each of the 5 days before today against a 4-channel key: lockdown.
    w.seed_busy_days(&days_before(today, 5), 5).await;
    install_license(&w, 4, now);
    let (hook, hook_url) = Hook::start(None).await;
    let clock = FakeClock::new(now);
    let s = start(&w, &clock, None).await;
    let mut spec = rule("lockdown", AlertKind::License);
    spec.webhook_url = Some(hook_url);
    spec.renotify_minutes = 0;
    s.state.store.create_alert_rule(&spec, now).await.unwrap();
    assert_eq!(
        s.state.status().await.unwrap().state,
        license::State::Lockdown
    );
    server::evaluate_alerts(&s.state).await.unwrap();
    assert_eq!(
        hook.docs().len(),
        1,
        "lockdown is alerted although it is no change"
    );
    assert_eq!(hook.docs()[0]["event"], "still_firing");
    clock.advance(6 * 60 * MINUTE);
    server::evaluate_alerts(&s.state).await.unwrap();
    assert_eq!(hook.docs().len(), 1, "not twice a day");
    clock.advance(18 * 60 * MINUTE);
    server::evaluate_alerts(&s.state).await.unwrap();
    let docs = hook.docs();
    assert_eq!(docs.len(), 2, "again the next day");
    assert!(docs[1]["message"].as_str().unwrap().contains("lockdown"));
    s.stop().await.unwrap();
}

#[tokio::test]
async fn failed_call_ratio_fires_above_the_threshold_with_enough_calls() {
    let w = World::new();
    // failures.pcap: 486, 404, 503 and a cancelled call at 16:29: 3 of 4 failed (75 %).
    let now = us("2026-11-28T16:35:00Z");
    install_license(&w, 50, now);
    let (hook, hook_url) = Hook::start(None).await;
    let clock = FakeClock::new(now);
    let s = start(&w, &clock, None).await;
    let mut spec = rule("failures", AlertKind::FailedRatio);
    spec.threshold_percent = 50.0;
    spec.window_minutes = 10;
    spec.min_calls = 3;
    spec.webhook_url = Some(hook_url.clone());
    s.state.store.create_alert_rule(&spec, now).await.unwrap();
    let mut noisy = spec.clone();
    noisy.name = "needs more calls".into();
    noisy.min_calls = 5;
    s.state.store.create_alert_rule(&noisy, now).await.unwrap();
    let mut high = spec.clone();
    high.name = "above 80".into();
    high.threshold_percent = 80.0;
    s.state.store.create_alert_rule(&high, now).await.unwrap();

    feed(&w, &s, "failures.pcap", 4).await;
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 1);
    let docs = hook.docs();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["rule"]["name"], "failures");
    assert_eq!(docs[0]["details"]["calls"], 4);
    assert_eq!(docs[0]["details"]["failed"], 3);
    assert_eq!(docs[0]["details"]["cancelled"], 1);
    assert_eq!(docs[0]["details"]["failed_percent"], 75.0);
    // An hour later the calls are out of the window.
    clock.advance(60 * MINUTE);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 0);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn a_webhook_that_refuses_the_connection_is_logged_as_failed() {
    let w = World::new();
    let now = us("2026-11-28T12:00:00Z");
    install_license(&w, 50, now);
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let clock = FakeClock::new(now);
    let s = start(&w, &clock, None).await;
    let mut spec = rule("dead hook", AlertKind::License);
    spec.webhook_url = Some(format!("http://{dead}/hook"));
    spec.email = Some("ops@example.test".into());
    s.state.store.create_alert_rule(&spec, now).await.unwrap();
    server::evaluate_alerts(&s.state).await.unwrap();
    clock.advance(280 * DAY);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 2);
    let log = s.state.store.alert_log(10, 0).await.unwrap();
    let hook = log.iter().find(|e| e.channel == "webhook").unwrap();
    assert_eq!(hook.outcome, AlertOutcome::Failed);
    let err = hook.detail.as_deref().unwrap();
    assert!(
        err.to_ascii_lowercase().contains("connection refused"),
        "{err}"
    );
    let mail = log.iter().find(|e| e.channel == "email").unwrap();
    assert_eq!(mail.outcome, AlertOutcome::Failed);
    assert!(
        mail.detail
            .as_deref()
            .unwrap()
            .contains("no SMTP relay configured")
    );
    // The engine keeps going after failures.
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 0);
    let c = logged_in(s.addr).await;
    let (_, html) = get_text(&c, s.addr, "/alerts").await;
    assert!(html.contains("failed: "), "the page shows the error");
    s.stop().await.unwrap();
}

#[tokio::test]
async fn rule_forms_need_an_admin_and_the_csrf_token() {
    let w = World::new();
    let now = us("2026-11-28T12:00:00Z");
    let clock = FakeClock::new(now);
    let s = start(&w, &clock, None).await;
    let admin = logged_in(s.addr).await;
    let (code, html) = get_text(&admin, s.addr, "/alerts").await;
    assert_eq!(code, StatusCode::OK);
    assert!(html.contains("Add a rule"));
    let csrf = csrf_of(&html);
    let form = |csrf: &str| {
        vec![
            ("csrf", csrf.to_string()),
            ("id", String::new()),
            ("name", "trunk full".into()),
            ("kind", "channels".into()),
            ("enabled", "1".into()),
            ("threshold", "80".into()),
            ("window", "5".into()),
            ("min_calls", "0".into()),
            ("renotify", "30".into()),
            ("webhook", "http://127.0.0.1:9/hook".into()),
            ("email", String::new()),
        ]
    };
    // No token, a wrong token: refused, nothing stored.
    let mut no_token = form("");
    no_token.remove(0);
    let r = post(&admin, s.addr, "/alerts/rules", &no_token).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post(&admin, s.addr, "/alerts/rules", &form("0000")).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(s.state.store.alert_rules().await.unwrap().is_empty());

    // A viewer with a valid token of their own session: refused.
    let eve = logged_in_viewer(&s).await;
    let (code, eve_html) = get_text(&eve, s.addr, "/alerts").await;
    assert_eq!(code, StatusCode::OK, "viewers see the alerts");
    assert!(!eve_html.contains("Add a rule"), "but get no forms");
    let eve_csrf = csrf_of(&eve_html);
    let r = post(&eve, s.addr, "/alerts/rules", &form(&eve_csrf)).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert!(s.state.store.alert_rules().await.unwrap().is_empty());

    // Bad input is refused with a message and the form kept.
    let mut bad = form(&csrf);
    bad[10].1 = "x@y\r\nRCPT TO:<z@w>".into();
    let r = post(&admin, s.addr, "/alerts/rules", &bad).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("The e-mail address is not valid.")
    );

    // The admin with the token: created.
    let r = post(&admin, s.addr, "/alerts/rules", &form(&csrf)).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let rules = s.state.store.alert_rules().await.unwrap();
    assert_eq!(rules.len(), 1);
    let id = rules[0].id;
    assert_eq!(rules[0].spec.name, "trunk full");
    assert_eq!(rules[0].spec.renotify_minutes, 30);

    // Edit: the form comes prefilled, the change is stored.
    let (_, html) = get_text(&admin, s.addr, &format!("/alerts?edit={id}")).await;
    assert!(html.contains("Edit rule") && html.contains("value=\"trunk full\""));
    let mut edit = form(&csrf);
    edit[1].1 = id.to_string();
    edit[2].1 = "trunk nearly full".into();
    edit[5].1 = "75".into();
    let r = post(&admin, s.addr, "/alerts/rules", &edit).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = s.state.store.alert_rule(id).await.unwrap().unwrap();
    assert_eq!(
        (r.spec.name.as_str(), r.spec.threshold_percent),
        ("trunk nearly full", 75.0)
    );

    // Disable, enable, delete.
    let idv = id.to_string();
    let r = post(
        &admin,
        s.addr,
        "/alerts/rules/enable",
        &[("csrf", csrf.as_str()), ("id", idv.as_str())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        !s.state
            .store
            .alert_rule(id)
            .await
            .unwrap()
            .unwrap()
            .spec
            .enabled
    );
    let (_, html) = get_text(&admin, s.addr, "/alerts").await;
    assert!(html.contains(">disabled<"));
    let r = post(
        &eve,
        s.addr,
        "/alerts/rules/enable",
        &[
            ("csrf", eve_csrf.as_str()),
            ("id", idv.as_str()),
            ("enabled", "1"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post(
        &admin,
        s.addr,
        "/alerts/rules/enable",
        &[
            ("csrf", csrf.as_str()),
            ("id", idv.as_str()),
            ("enabled", "1"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(
        s.state
            .store
            .alert_rule(id)
            .await
            .unwrap()
            .unwrap()
            .spec
            .enabled
    );
    let r = post(
        &admin,
        s.addr,
        "/alerts/rules/delete",
        &[("id", idv.as_str())],
    )
    .await;
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "delete needs the token too"
    );
    let r = post(
        &admin,
        s.addr,
        "/alerts/rules/delete",
        &[("csrf", csrf.as_str()), ("id", idv.as_str())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(s.state.store.alert_rules().await.unwrap().is_empty());
    s.stop().await.unwrap();
}

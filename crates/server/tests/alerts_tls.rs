//! Alert delivery over TLS: a real https webhook receiver and a real SMTP sink that insists on
//! STARTTLS, both on 127.0.0.1 with certificates of a private CA made here (rcgen). With the
//! CA configured (`AlertsConfig::ca_file`) both deliver; a receiver of another CA, or the same
//! receivers without the CA configured, fail with the reason in the alert log and nothing
//! leaves in plain text.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use server::AlertsConfig;
use server::tls::TlsFiles;
use server::{FakeClock, Running};
use store::{AlertKind, AlertOutcome, AlertRuleSpec};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

mod common;
#[path = "common/hook.rs"]
mod hook;
use common::{DAY, World, private_ca, us};
use hook::Hook;

/// An SMTP sink that offers STARTTLS and refuses mail until the session is encrypted; it
/// records the DATA of each message it accepted.
#[derive(Clone, Default)]
struct TlsSmtpSink(Arc<Mutex<Vec<String>>>);

async fn line<S: AsyncRead + Unpin>(r: &mut BufReader<S>) -> Option<String> {
    let mut l = String::new();
    match r.read_line(&mut l).await {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(l.trim_end().to_string()),
    }
}

impl TlsSmtpSink {
    async fn start(tls: &TlsFiles) -> (TlsSmtpSink, String) {
        let sink = TlsSmtpSink::default();
        let acceptor = tokio_rustls::TlsAcceptor::from(server::tls::server_config(tls).unwrap());
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let got = sink.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = l.accept().await {
                let (got, acceptor) = (got.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let mut plain = BufReader::new(conn);
                    plain
                        .get_mut()
                        .write_all(b"220 sink ESMTP\r\n")
                        .await
                        .ok()?;
                    loop {
                        let cmd = line(&mut plain).await?.to_ascii_uppercase();
                        let reply: &[u8] = if cmd.starts_with("EHLO") {
                            b"250-sink\r\n250-STARTTLS\r\n250 8BITMIME\r\n"
                        } else if cmd == "STARTTLS" {
                            b"220 go ahead\r\n"
                        } else if cmd == "QUIT" {
                            return None;
                        } else {
                            b"530 must issue a STARTTLS command first\r\n"
                        };
                        plain.get_mut().write_all(reply).await.ok()?;
                        if cmd == "STARTTLS" {
                            break;
                        }
                    }
                    let tls = acceptor.accept(plain.into_inner()).await.ok()?;
                    encrypted_session(BufReader::new(tls), &got).await
                });
            }
        });
        (sink, addr.to_string())
    }

    fn mails(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

async fn encrypted_session<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: BufReader<S>,
    got: &TlsSmtpSink,
) -> Option<()> {
    loop {
        let cmd = line(&mut s).await?;
        let upper = cmd.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("MAIL FROM:") || upper.starts_with("RCPT TO:") {
            b"250 OK\r\n"
        } else if upper == "DATA" {
            s.get_mut().write_all(b"354 go on\r\n").await.ok()?;
            let mut data = String::new();
            loop {
                let l = line(&mut s).await?;
                if l == "." {
                    break;
                }
                data.push_str(&l);
                data.push('\n');
            }
            got.0.lock().unwrap().push(data);
            b"250 queued\r\n"
        } else if upper == "QUIT" {
            let _ = s.get_mut().write_all(b"221 bye\r\n").await;
            let _ = s.get_mut().shutdown().await;
            return Some(());
        } else {
            b"502 what\r\n"
        };
        s.get_mut().write_all(reply).await.ok()?;
        s.get_mut().flush().await.ok()?;
    }
}

fn rule(name: &str, webhook: &str, email: Option<&str>) -> AlertRuleSpec {
    AlertRuleSpec {
        name: name.into(),
        kind: AlertKind::License,
        enabled: true,
        threshold_percent: 80.0,
        window_minutes: 5,
        min_calls: 0,
        webhook_url: Some(webhook.into()),
        email: email.map(str::to_string),
        renotify_minutes: 0,
    }
}

async fn start(w: &World, clock: &FakeClock, smtp: String, ca_file: Option<PathBuf>) -> Running {
    let mut config = w.config();
    config.pcap_dir = None;
    let alerts = AlertsConfig {
        smtp_relay: Some(smtp),
        smtp_from: "sipmeter@example.test".into(),
        interval: Duration::from_secs(3600),
        timeout: Duration::from_secs(5),
        ca_file,
    };
    Running::start_with_alerts(config, alerts, Arc::new(clock.clone()))
        .await
        .unwrap()
}

/// The alert log as (rule, channel, outcome, detail).
async fn log(s: &Running) -> Vec<(String, String, AlertOutcome, String)> {
    let mut v: Vec<_> = s
        .state
        .store
        .alert_log(100, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.rule_name,
                e.channel,
                e.outcome,
                e.detail.unwrap_or_default(),
            )
        })
        .collect();
    v.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    v
}

#[tokio::test]
async fn https_webhooks_and_starttls_mail_trust_the_configured_ca_only() {
    let w = World::new();
    let now = us("2026-11-28T16:31:00Z");
    w.install_key(&w.license(50, now));
    let (ca_file, tls) = private_ca(w.dir.path(), "ours");
    let (_, foreign_tls) = private_ca(w.dir.path(), "foreign");
    let (hook, hook_url) = Hook::start(Some(&tls)).await;
    let (foreign, foreign_url) = Hook::start(Some(&foreign_tls)).await;
    let (sink, smtp) = TlsSmtpSink::start(&tls).await;
    let clock = FakeClock::new(now);
    let s = start(&w, &clock, smtp, Some(ca_file)).await;
    let st = &s.state.store;
    st.create_alert_rule(&rule("ours", &hook_url, Some("noc@example.test")), now)
        .await
        .unwrap();
    st.create_alert_rule(&rule("foreign", &foreign_url, None), now)
        .await
        .unwrap();

    // First look remembers the situation; 280 days on the formal end is near: a change.
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 0);
    clock.advance(280 * DAY);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 3);
    let docs = hook.docs();
    assert_eq!(docs.len(), 1);
    assert_eq!(docs[0]["rule"]["name"], "ours");
    assert_eq!(docs[0]["details"]["situation"], "ok, expiring soon");
    let mails = sink.mails();
    assert_eq!(mails.len(), 1, "the mail went over the upgraded session");
    assert!(mails[0].contains("License: ok, expiring soon (was ok)"));
    assert!(foreign.docs().is_empty());
    let log = log(&s).await;
    println!("{log:#?}");
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].0, "foreign");
    assert_eq!(log[0].2, AlertOutcome::Failed);
    assert!(log[0].3.contains("certificate"), "{}", log[0].3);
    assert_eq!(
        (log[1].1.as_str(), log[1].2),
        ("email", AlertOutcome::Delivered)
    );
    assert_eq!(
        (log[2].1.as_str(), log[2].2),
        ("webhook", AlertOutcome::Delivered)
    );
    s.stop().await.unwrap();
}

#[tokio::test]
async fn without_the_ca_nothing_is_delivered_and_mail_never_falls_back_to_plain_text() {
    let w = World::new();
    let now = us("2026-11-28T16:31:00Z");
    w.install_key(&w.license(50, now));
    let (_, tls) = private_ca(w.dir.path(), "ours");
    let (hook, hook_url) = Hook::start(Some(&tls)).await;
    let (sink, smtp) = TlsSmtpSink::start(&tls).await;
    let clock = FakeClock::new(now);
    let s = start(&w, &clock, smtp, None).await;
    s.state
        .store
        .create_alert_rule(&rule("ours", &hook_url, Some("noc@example.test")), now)
        .await
        .unwrap();
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 0);
    clock.advance(280 * DAY);
    assert_eq!(server::evaluate_alerts(&s.state).await.unwrap(), 2);
    assert!(hook.docs().is_empty());
    assert!(sink.mails().is_empty());
    let log = log(&s).await;
    println!("{log:#?}");
    assert!(log.iter().all(|e| e.2 == AlertOutcome::Failed), "{log:?}");
    assert!(log[0].3.contains("STARTTLS"), "{}", log[0].3);
    s.stop().await.unwrap();
}

#[test]
fn a_bad_ca_file_is_named_in_the_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let e = server::trust_anchors(Some(&missing)).unwrap_err();
    assert!(e.contains("missing.pem"), "{e}");
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let e = server::trust_anchors(Some(&empty)).unwrap_err();
    assert!(
        e.contains("empty.pem") && e.contains("no certificate"),
        "{e}"
    );
    let (ca, _) = private_ca(dir.path(), "ok");
    assert!(!server::trust_anchors(Some(&ca)).unwrap().is_empty());
}

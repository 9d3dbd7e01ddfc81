//! `sipmeter portal …` as operators and scripts run it: the real binary on a real data
//! directory (SQLite), the support actions audited as `cli:<user>`, offline answers that
//! verify, and `portal serve` answering the API on 127.0.0.1.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const HWID: &str = "ABCD-0000-1111-2222";

fn sipmeter(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sipmeter"))
        .arg("portal")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("USER", "tester")
        .output()
        .expect("run sipmeter");
    assert!(
        out.status.success(),
        "sipmeter portal {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn last_line(s: &str) -> String {
    s.lines().last().unwrap_or_default().trim().to_string()
}

/// What a server of this (development) build trusts: the compiled-in roots and the
/// development root that a development portal certifies its key with.
/// The public keys listed in the portal's `signing.pub`.
fn listed_keys(dir: &Path) -> usize {
    let text = std::fs::read_to_string(dir.join("signing.pub")).unwrap();
    text.split_inclusive("-----END SIPMETER PUBLIC KEY-----\n")
        .inspect(|block| {
            license::PublicKey::from_armored(block).unwrap();
        })
        .count()
}

fn verify(dir: &Path, text: &str) -> license::LicenseTerms {
    assert!(dir.join("signing.pub").exists());
    let ring = license::Keyring::builtin();
    let ctx = license::VerifyContext {
        keyring: &ring,
        hwid: HWID.parse().unwrap(),
        domain: None,
        now: jiff::Timestamp::now().as_microsecond(),
        high_water: None,
        time_zone: &jiff::tz::TimeZone::UTC,
    };
    license::verify(text, "license.key", &ctx)
        .expect("verifies")
        .terms
}

fn today_plus(days: i64) -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
        .checked_add(jiff::Span::new().days(days))
        .unwrap()
}

#[test]
fn operator_workflow_is_audited_and_offline_answers_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = &tmp.path().join("portal");
    let customer = last_line(&sipmeter(dir, &["customer", "add", "--name", "Acme Ltd"]));
    assert!(customer.starts_with("C-"), "{customer}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o700,
            "the portal's directory holds the signing keys"
        );
    }
    let formal_end = today_plus(100);
    let out = sipmeter(
        dir,
        &[
            "license",
            "add",
            "--customer",
            &customer,
            "--channels",
            "50",
            "--formal-end",
            &formal_end.to_string(),
        ],
    );
    let token = last_line(&out);
    assert!(
        token.parse::<license::LicenseToken>().is_ok(),
        "token on the last line: {out}"
    );
    let id = out.split_whitespace().nth(1).unwrap().to_string();
    assert!(id.starts_with("SM-"), "{out}");

    // offline: the request file a server writes, answered by the portal
    let req = dir.join("req.json");
    std::fs::write(
        &req,
        format!(r#"{{"sipmeter_license_request":1,"token":"{token}","hwid":"{HWID}","install_id":"i-1","created_at":"2026-11-28T10:00:00Z"}}"#),
    )
    .unwrap();
    let resp = dir.join("resp.key");
    // The portal's answer to the request file, verified.
    let offline = || {
        sipmeter(
            dir,
            &[
                "offline",
                "--request",
                req.to_str().unwrap(),
                "--out",
                resp.to_str().unwrap(),
            ],
        );
        verify(dir, &std::fs::read_to_string(&resp).unwrap())
    };
    let t = offline();
    assert_eq!(
        (t.license_id.as_str(), t.channels, t.formal_end),
        (id.as_str(), 50, formal_end)
    );

    // support actions
    let until = today_plus(10).to_string();
    sipmeter(
        dir,
        &[
            "license",
            "increase",
            "--license",
            &id,
            "--channels",
            "80",
            "--until",
            &until,
        ],
    );
    sipmeter(
        dir,
        &[
            "license",
            "allow-concurrent",
            "--license",
            &id,
            "--until",
            &until,
        ],
    );
    let trial = last_line(&sipmeter(
        dir,
        &["license", "emergency-trial", "--license", &id],
    ));
    assert!(trial.parse::<license::LicenseToken>().is_ok());
    let order = last_line(&sipmeter(
        dir,
        &["license", "renew", "--license", &id, "--months", "12"],
    ));
    sipmeter(dir, &["order", "paid", "--order", &order]);
    sipmeter(
        dir,
        &[
            "license",
            "upgrade",
            "--license",
            &id,
            "--tier",
            "100",
            "--paid",
        ],
    );
    sipmeter(dir, &["license", "bind", "--license", &id, "--hwid", HWID]);
    sipmeter(dir, &["license", "cancel", "--license", &id]);
    sipmeter(dir, &["rotate-key"]);

    let t = offline();
    // renewed from the previous formal end, upgraded, cancelled, grants carried
    let renewed = license::renewed_formal_end(formal_end, 12);
    assert_eq!(t.formal_end, renewed);
    assert_eq!(t.grace_end, renewed, "cancelled: no grace period");
    assert!(t.cancelled);
    assert_eq!(t.channels, 100);
    assert_eq!(t.grants.len(), 2);
    assert_eq!(
        listed_keys(dir),
        2,
        "rotation keeps the old key in signing.pub"
    );

    let audit = sipmeter(dir, &["audit", "--limit", "1000"]);
    for action in [
        "add_customer",
        "add_license",
        "increase",
        "concurrent",
        "emergency_trial",
        "place_order",
        "order_paid",
        "bind",
        "cancel",
        "rotate_key",
    ] {
        assert!(
            audit
                .lines()
                .any(|l| l.contains(&format!("cli:tester  {action}"))),
            "{action} not audited as cli:tester:\n{audit}"
        );
    }

    // bad input is named, not a panic
    let out = Command::new(env!("CARGO_BIN_EXE_sipmeter"))
        .args(["portal", "--data-dir"])
        .arg(dir)
        .args([
            "license",
            "increase",
            "--license",
            &id,
            "--channels",
            "80",
            "--until",
            "tomorrow",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--until"));
}

#[test]
fn serve_answers_the_api_and_prints_a_generated_password_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sipmeter"))
        .args(["portal", "serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tmp.path())
        .env_remove("SIPMETER_PORTAL_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.contains("support user `support` with password"),
        "{first}"
    );
    let second = lines.next().unwrap().unwrap();
    let addr = second
        .split("http://")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .expect("address printed")
        .to_string();
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /api/v1/keys HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(
        resp.contains("\"active\":true") && resp.contains("SIPMETER PUBLIC KEY"),
        "{resp}"
    );
    assert_eq!(listed_keys(tmp.path()), 1);
}

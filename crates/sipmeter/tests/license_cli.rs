//! `sipmeter license …`, `sipmeter portal …` and `--set-license-key` end to end, with real
//! key and license files in temporary directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

const HWID: &str = "1111-2222-3333-4444";
const OTHER_HWID: &str = "AAAA-BBBB-CCCC-DDDD";

fn sipmeter<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sipmeter"))
        .args(args)
        .output()
        .expect("run sipmeter")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    o
}

/// A vendor key pair and a data directory.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new() -> World {
        let w = World {
            dir: tempfile::tempdir().unwrap(),
        };
        ok(sipmeter(&[
            "portal",
            "keygen",
            "--out",
            w.path("keys").to_str().unwrap(),
        ]));
        w
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn data(&self) -> PathBuf {
        self.path("data")
    }

    /// Issues a license to `out` (relative to the world) with extra `portal issue` args.
    fn issue(&self, out: &str, extra: &[&str]) -> PathBuf {
        let out_path = self.path(out);
        std::fs::create_dir_all(out_path.parent().unwrap()).unwrap();
        let key = self.path("keys/signing.key");
        let mut args = vec![
            "portal",
            "issue",
            "--signing-key",
            key.to_str().unwrap(),
            "--channels",
            "100",
            "--customer",
            "Example Telecom",
            "--out",
            out_path.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        ok(sipmeter(&args));
        out_path
    }

    /// `sipmeter --data-dir DATA license --trusted-key PUB --hwid-override HWID <args>`.
    fn license(&self, args: &[&str]) -> Output {
        let data = self.data();
        let key = self.path("keys/signing.pub");
        let mut all = vec![
            "--data-dir",
            data.to_str().unwrap(),
            "license",
            "--trusted-key",
            key.to_str().unwrap(),
            "--hwid-override",
            HWID,
        ];
        all.extend_from_slice(args);
        sipmeter(&all)
    }

    fn status(&self, extra: &[&str]) -> Value {
        let mut args = vec!["status", "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&stdout(&ok(self.license(&args)))).unwrap()
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn keygen_issue_install_status_verify() {
    let w = World::new();
    let public = std::fs::read_to_string(w.path("keys/signing.pub")).unwrap();
    assert!(public.starts_with("-----BEGIN SIPMETER PUBLIC KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(w.path("keys/signing.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the signing key is private");
    }
    let again = sipmeter(&["portal", "keygen", "--out", s(&w.path("keys"))]);
    assert!(
        !again.status.success(),
        "keygen never overwrites a signing key"
    );

    let file = w.issue(
        "portal/license.key",
        &[
            "--hwid",
            HWID,
            "--formal-end",
            "2099-12-31",
            "--grant",
            "concurrent:2:2099-01-31",
        ],
    );
    let out = ok(w.license(&["verify", s(&file)]));
    assert!(
        stdout(&out).starts_with("OK license file license.key: 100 channels"),
        "{}",
        stdout(&out)
    );

    let st = w.status(&[]);
    assert_eq!(st["mode"], "evaluation");
    assert_eq!(st["limit"]["effective"], 10);

    let out = ok(w.license(&["install", s(&file)]));
    assert!(stdout(&out).contains("installed"), "{}", stdout(&out));
    assert_eq!(
        std::fs::read(w.data().join("license.key")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    let st = w.status(&[]);
    assert_eq!(st["state"], "ok", "{st:#}");
    assert_eq!(st["mode"], "licensed");
    assert_eq!(st["limit"]["effective"], 100);
    assert_eq!(st["license"]["customer"], "Example Telecom");
    assert_eq!(st["license"]["formal_end"], "2099-12-31");
    assert_eq!(st["license"]["grace_end"], "2100-01-20");
    assert_eq!(st["license"]["binding"]["hwid"], HWID);
    assert_eq!(st["hwid"]["source"], "override");
    assert_eq!(st["concurrent_systems"], 2);
    assert_eq!(st["features"]["reports"], true);
    assert_eq!(st["errors"].as_array().unwrap().len(), 0);
    assert!(
        w.data().join("license.clock").exists(),
        "high-water mark saved"
    );

    // The operator's lower limit shows, and the text status names the state.
    let st = w.status(&["--channel-limit", "40"]);
    assert_eq!(st["limit"]["effective"], 40);
    let text = stdout(&ok(w.license(&["status"])));
    assert!(text.contains("state:     ok (licensed)"), "{text}");
    assert!(text.contains("operator override"), "{text}");

    // A second install keeps the previous file.
    let newer = w.issue(
        "portal2/license.key",
        &["--hwid", HWID, "--formal-end", "2100-06-30"],
    );
    ok(w.license(&["install", s(&newer)]));
    assert_eq!(
        std::fs::read(w.data().join("license.key.old")).unwrap(),
        std::fs::read(&file).unwrap()
    );
    assert_eq!(w.status(&[])["license"]["formal_end"], "2100-06-30");
}

#[test]
fn another_hwid_gives_the_known_message_and_fails() {
    let w = World::new();
    let file = w.issue(
        "license.key",
        &["--hwid", OTHER_HWID, "--formal-end", "2099-12-31"],
    );
    let out = w.license(&["verify", s(&file)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("license file license.key is for another hwid"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());

    // Installed by hand anyway: the status is locked with the same message.
    std::fs::create_dir_all(w.data()).unwrap();
    std::fs::copy(&file, w.data().join("license.key")).unwrap();
    let st = w.status(&[]);
    assert_eq!(st["state"], "locked");
    assert_eq!(st["lock_reason"]["code"], "another_hwid");
    let msg = st["errors"][0]["message"].as_str().unwrap();
    assert!(
        msg.starts_with("license file license.key is for another hwid"),
        "{msg}"
    );
    assert_eq!(st["features"]["ingest"], true);
    assert_eq!(st["features"]["gui"], false);

    // The same file verifies on the machine it was issued for.
    let data = w.data();
    let key = w.path("keys/signing.pub");
    let out = sipmeter(&[
        "--data-dir",
        s(&data),
        "license",
        "--trusted-key",
        s(&key),
        "--hwid-override",
        OTHER_HWID,
        "verify",
        s(&file),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn expired_gives_the_known_message_and_fails() {
    let w = World::new();
    let file = w.issue(
        "license.key",
        &["--hwid", HWID, "--formal-end", "2020-01-01"],
    );
    let out = w.license(&["verify", s(&file)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("FAILED license file license.key expired"),
        "{}",
        stderr(&out)
    );
    let out = w.license(&["install", s(&file)]);
    assert!(!out.status.success(), "an expired file is not installed");
    assert!(!w.data().join("license.key").exists());

    let cancelled = w.issue(
        "c/license.key",
        &["--hwid", HWID, "--formal-end", "2099-12-31", "--cancelled"],
    );
    ok(w.license(&["install", s(&cancelled)]));
    let st = w.status(&[]);
    assert_eq!(
        st["license"]["grace_end"], "2099-12-31",
        "no grace when cancelled"
    );
    let st = w.status(&["--now", "2100-01-01T00:00:00Z"]);
    assert_eq!(st["state"], "locked");
    assert_eq!(st["lock_reason"]["kind"], "expired");
    assert!(
        st["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("FAILED license file license.key expired")
    );
}

#[test]
fn install_of_a_bad_file_keeps_the_old_one() {
    let w = World::new();
    let good = w.issue(
        "good/license.key",
        &["--hwid", HWID, "--formal-end", "2099-12-31"],
    );
    ok(w.license(&["install", s(&good)]));
    let installed = std::fs::read(w.data().join("license.key")).unwrap();

    // One changed character in the signed body.
    let mut bytes = std::fs::read(&good).unwrap();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = w.path("tampered.key");
    std::fs::write(&tampered, &bytes).unwrap();
    // Signed by a key the server does not trust.
    let rogue = w.path("rogue");
    ok(sipmeter(&["portal", "keygen", "--out", s(&rogue)]));
    let foreign = w.path("foreign.key");
    ok(sipmeter(&[
        "portal",
        "issue",
        "--signing-key",
        s(&rogue.join("signing.key")),
        "--channels",
        "9999",
        "--hwid",
        HWID,
        "--formal-end",
        "2099-12-31",
        "--out",
        s(&foreign),
    ]));
    let not_a_license = w.path("notes.txt");
    std::fs::write(&not_a_license, "hello").unwrap();

    for (bad, code) in [
        (&tampered, "bad_signature"),
        (&foreign, "untrusted_issuer"),
        (&not_a_license, "malformed"),
        (&w.path("missing.key"), "malformed"),
    ] {
        let out = w.license(&["install", s(bad)]);
        assert!(!out.status.success(), "{}", bad.display());
        assert!(stderr(&out).contains("is unchanged"), "{}", stderr(&out));
        let out = w.license(&["verify", s(bad)]);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains(&format!("[{code}]")),
            "{code}: {}",
            stderr(&out)
        );
        assert_eq!(
            std::fs::read(w.data().join("license.key")).unwrap(),
            installed
        );
    }
    assert_eq!(w.status(&[])["state"], "ok");
}

#[test]
fn domain_binding_and_trials() {
    let w = World::new();
    let file = w.issue(
        "license.key",
        &["--domain", "GUI.Example.com", "--formal-end", "2099-12-31"],
    );
    let out = w.license(&["verify", s(&file)]);
    assert!(stderr(&out).contains("[wrong_domain]"), "{}", stderr(&out));
    ok(w.license(&["--domain", "gui.example.com", "verify", s(&file)]));

    let trial = w.issue("trial.key", &["--hwid", HWID, "--trial"]);
    ok(w.license(&["install", s(&trial)]));
    let st = w.status(&[]);
    assert_eq!(st["license"]["trial"], true);
    assert_eq!(st["dates"]["phase"], "expiring_soon");
    assert_eq!(st["license"]["formal_end"], st["license"]["grace_end"]);

    let key = w.path("keys/signing.key");
    let too_long = sipmeter(&[
        "portal",
        "issue",
        "--signing-key",
        s(&key),
        "--channels",
        "5",
        "--hwid",
        HWID,
        "--emergency",
        "--formal-end",
        "2099-01-01",
        "--out",
        s(&w.path("x.key")),
    ]);
    assert!(!too_long.status.success());
    assert!(
        stderr(&too_long).contains("at most 30 days"),
        "{}",
        stderr(&too_long)
    );
}

#[test]
fn set_license_key_stores_the_token_and_says_what_is_missing() {
    let w = World::new();
    let data = w.data();
    let out = ok(sipmeter(&[
        "--data-dir",
        s(&data),
        "--set-license-key",
        "ab12-cd34-ef56-7890",
    ]));
    assert!(
        stdout(&out).contains("no portal is configured"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        std::fs::read_to_string(data.join("license.token"))
            .unwrap()
            .trim(),
        "AB12-CD34-EF56-7890"
    );
    assert_eq!(w.status(&[])["license_token"], "AB12-CD34-EF56-7890");
    let bad = sipmeter(&["--data-dir", s(&data), "--set-license-key", "not-a-token"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("not a license token"),
        "{}",
        stderr(&bad)
    );

    // The config key works too (the stored token wins over it).
    let fresh = w.path("data2");
    let cfg = w.path("sipmeter.toml");
    std::fs::write(
        &cfg,
        "license_key = \"ZZZZ-0000-1111-2222\"\nchannel_limit = 7\n",
    )
    .unwrap();
    let out = ok(sipmeter(&[
        "--config-file",
        s(&cfg),
        "--data-dir",
        s(&fresh),
        "license",
        "--hwid-override",
        HWID,
        "status",
        "--json",
    ]));
    let st: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(st["license_token"], "ZZZZ-0000-1111-2222");
    assert_eq!(st["limit"]["effective"], 7);
}

#[test]
fn clock_set_back_is_caught_from_the_saved_high_water_mark() {
    let w = World::new();
    let file = w.issue(
        "license.key",
        &["--hwid", HWID, "--formal-end", "2099-12-31"],
    );
    ok(w.license(&["install", s(&file)]));
    assert_eq!(w.status(&[])["state"], "ok");
    std::fs::write(w.data().join("license.clock"), "2090-01-01T00:00:00Z\n").unwrap();
    let st = w.status(&[]);
    assert_eq!(st["state"], "locked");
    assert_eq!(st["errors"][0]["code"], "clock_set_back");
    let out = w.license(&["verify", s(&file)]);
    assert!(
        stderr(&out).contains("[clock_set_back]"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn over_limit_days_come_from_the_channel_figures_in_the_database() {
    let w = World::new();
    let capture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/basic_concurrent.pcap");
    let data = w.data();
    ok(sipmeter(&["--data-dir", s(&data), "import", s(&capture)]));
    // The capture's day, from its first leg (captures are re-recorded now and then).
    let read = ok(sipmeter(&["read", s(&capture)]));
    let first: Value = serde_json::from_str(stdout(&read).lines().next().unwrap()).unwrap();
    let day = &first["start"].as_str().unwrap()[..10];
    let next_noon = {
        let d: jiff::civil::Date = day.parse().unwrap();
        format!("{}T12:00:00Z", d.tomorrow().unwrap())
    };

    // Evaluation allowance (10) covers the capture's 5 concurrent calls.
    let st = w.status(&["--now", &next_noon]);
    assert_eq!(
        (st["state"].as_str(), st["timeline"]["days_over"].as_u64()),
        (Some("ok"), Some(0))
    );
    // A lower operator limit: the capture day was over, so day 1 of grace.
    let st = w.status(&["--now", &next_noon, "--channel-limit", "4"]);
    assert_eq!(st["state"], "grace", "{st:#}");
    assert_eq!(st["timeline"]["days_over"], 1);
    assert_eq!(st["timeline"]["offending_days"][0]["date"], day);
    assert_eq!(st["timeline"]["offending_days"][0]["peak"], 5);
    // On the capture day itself, today already counts.
    let st = w.status(&["--now", &format!("{day}T23:59:00Z"), "--channel-limit", "4"]);
    assert_eq!(st["timeline"]["days_over"], 1);
    let st = w.status(&["--now", &next_noon, "--channel-limit", "5"]);
    assert_eq!(st["state"], "ok");
}

/// The limit set in Settings › License (`<data_dir>/channel-limit`) is read by
/// `license status` through the same code as the server: it wins over config `channel_limit`,
/// and `--channel-limit` wins over it for that one run.
#[test]
fn the_configured_limit_of_the_settings_page_shows_in_status() {
    let w = World::new();
    let file = w.issue(
        "license.key",
        &["--hwid", HWID, "--formal-end", "2099-12-31"],
    );
    ok(w.license(&["install", s(&file)]));
    let st = w.status(&[]);
    assert_eq!(st["limit"]["effective"], 100);
    assert_eq!(st["operator_limit_source"], Value::Null);

    std::fs::write(w.data().join("channel-limit"), "12\n").unwrap();
    let st = w.status(&[]);
    assert_eq!(st["limit"]["operator_limit"], 12);
    assert_eq!(st["limit"]["effective"], 12);
    assert_eq!(st["operator_limit_source"], "settings");
    let text = stdout(&ok(w.license(&["status"])));
    assert!(
        text.contains("channel_limit 12 set in Settings › License"),
        "{text}"
    );

    // The flag: a what-if for this run.
    let st = w.status(&["--channel-limit", "5"]);
    assert_eq!(st["limit"]["effective"], 5);
    assert_eq!(st["operator_limit_source"], "override");

    // Over the config key.
    let cfg = w.path("sipmeter.toml");
    std::fs::write(&cfg, "channel_limit = 7\n").unwrap();
    let with_config = |w: &World| -> Value {
        let key = w.path("keys/signing.pub");
        let out = ok(sipmeter(&[
            "--config-file",
            s(&cfg),
            "--data-dir",
            s(&w.data()),
            "license",
            "--trusted-key",
            s(&key),
            "--hwid-override",
            HWID,
            "status",
            "--json",
        ]));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    let st = with_config(&w);
    assert_eq!(st["limit"]["effective"], 12);
    assert_eq!(st["operator_limit_source"], "settings");
    std::fs::remove_file(w.data().join("channel-limit")).unwrap();
    let st = with_config(&w);
    assert_eq!(st["limit"]["effective"], 7);
    assert_eq!(st["operator_limit_source"], "config");

    // A hand-edited file that is not a limit is ignored with a warning, not an error.
    std::fs::write(w.data().join("channel-limit"), "lots\n").unwrap();
    let st = w.status(&[]);
    assert_eq!(st["limit"]["effective"], 100);
    assert!(st["warnings"].to_string().contains("channel-limit"), "{st}");
}

/// `portal certify --public-key` and `portal issue --certificate`: a key the development root
/// certified counts without `--trusted-key` (a development build trusts that root); one a
/// self-made root certified is "not issued by the vendor", however the file is installed.
#[test]
fn certified_keys_count_and_self_certified_ones_do_not() {
    let w = World::new();
    let dev_root = w.path("dev-root.key");
    std::fs::write(&dev_root, license::dev_root_signing_key().to_armored()).unwrap();
    let self_root = w.path("self-root");
    ok(sipmeter(&["portal", "keygen", "--out", s(&self_root)]));
    let key = w.path("keys");
    let issue_with = |root: &Path, name: &str| -> PathBuf {
        let cert = w.path(&format!("{name}.cert"));
        let out = ok(sipmeter(&[
            "portal",
            "certify",
            "--root-key",
            s(root),
            "--public-key",
            s(&key.join("signing.pub")),
            "--out",
            s(&cert),
        ]));
        assert!(stdout(&out).contains("certified key"), "{}", stdout(&out));
        let file = w.path(&format!("{name}.key"));
        ok(sipmeter(&[
            "portal",
            "issue",
            "--signing-key",
            s(&key.join("signing.key")),
            "--certificate",
            s(&cert),
            "--channels",
            "500",
            "--hwid",
            HWID,
            "--formal-end",
            "2099-12-31",
            "--out",
            s(&file),
        ]));
        file
    };
    let vendor = issue_with(&dev_root, "vendor");
    let selfish = issue_with(&self_root.join("signing.key"), "self");
    let plain = |args: &[&str]| {
        let data = w.data();
        let mut all = vec![
            "--data-dir",
            data.to_str().unwrap(),
            "license",
            "--hwid-override",
            HWID,
        ];
        all.extend_from_slice(args);
        sipmeter(&all)
    };
    let out = plain(&["verify", s(&selfish)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("license file self.key was not issued by the vendor")
            && stderr(&out).contains("[untrusted_issuer]"),
        "{}",
        stderr(&out)
    );
    let out = plain(&["install", s(&selfish)]);
    assert!(!out.status.success() && stderr(&out).contains("is unchanged"));
    assert!(!w.data().join("license.key").exists());
    ok(plain(&["install", s(&vendor)]));
    let st: Value = serde_json::from_str(&stdout(&ok(plain(&["status", "--json"])))).unwrap();
    assert_eq!(
        (st["state"].as_str(), st["limit"]["licensed"].as_u64()),
        (Some("ok"), Some(500))
    );
    assert_eq!(st["development_build"], true);
    let text = stdout(&ok(plain(&["status"])));
    assert!(
        text.contains("development build: licenses from the development root are accepted"),
        "{text}"
    );
    let version = stdout(&ok(sipmeter(&["--version"])));
    assert!(version.contains("development build"), "{version}");
}

//! `sipmeter channels` end to end: peaks of the SIPp captures against a brute-force count over
//! their tshark-derived truth (independent of the channel engine), dedup across sensors
//! through the database, transfers counting twice, and explain agreeing with the report.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

fn sipmeter(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sipmeter"))
        .args(args)
        .output()
        .expect("run sipmeter")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

/// Last six digits of a user part, or the lower-cased user part without digits: written here
/// again, on purpose, as the reference the engine is checked against.
fn part(user: &str) -> String {
    let digits: String = user.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        user.to_lowercase()
    } else {
        digits[digits.len().saturating_sub(6)..].to_string()
    }
}

fn micros(ts: &str) -> i64 {
    // "2026-11-28T16:29:07.729285Z": compare within one day, seconds of day are enough.
    let t = &ts[11..26];
    let h: i64 = t[0..2].parse().unwrap();
    let m: i64 = t[3..5].parse().unwrap();
    let s: i64 = t[6..8].parse().unwrap();
    let us: i64 = t[9..15].parse().unwrap();
    ((h * 60 + m) * 60 + s) * 1_000_000 + us
}

/// The peak of distinct keys active over [start, end), by trying every start instant.
fn brute_force_peak(legs: &[Value]) -> usize {
    let spans: Vec<(i64, i64, (String, String))> = legs
        .iter()
        .map(|l| {
            (
                micros(l["start"].as_str().unwrap()),
                micros(l["end"].as_str().unwrap()),
                (
                    part(l["caller"].as_str().unwrap()),
                    part(l["called"].as_str().unwrap()),
                ),
            )
        })
        .collect();
    spans
        .iter()
        .map(|(t, _, _)| {
            spans
                .iter()
                .filter(|(s, e, _)| s <= t && t < e)
                .map(|(_, _, k)| k)
                .collect::<HashSet<_>>()
                .len()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn peaks_of_the_sipp_captures_equal_a_brute_force_count_of_their_truth() {
    let mut checked = 0;
    for entry in std::fs::read_dir(data("")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".expected.json") else {
            continue;
        };
        let truth: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let pcap = data(&format!("{stem}.pcap"));
        let rep = json(&sipmeter(&[
            "channels",
            "--format",
            "json",
            "--pcap",
            pcap.to_str().unwrap(),
        ]));
        assert_eq!(
            rep["peak"].as_u64().unwrap() as usize,
            brute_force_peak(&truth),
            "{stem}"
        );
        checked += 1;
    }
    assert!(checked >= 5);
}

#[test]
fn the_same_calls_from_two_sensors_count_once_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().to_str().unwrap();
    let pcap = data("basic_concurrent.pcap");
    let pcap = pcap.to_str().unwrap();
    let single = json(&sipmeter(&["channels", "--format", "json", "--pcap", pcap]));
    for sensor in ["1", "2"] {
        let out = sipmeter(&["import", "--data-dir", db, "--sensor-id", sensor, pcap]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let both = json(&sipmeter(&[
        "channels",
        "--data-dir",
        db,
        "--format",
        "json",
    ]));
    assert_eq!(both["peak"], single["peak"]);
    assert_eq!(both["peak_at"], single["peak_at"]);
    assert_eq!(both["days"].as_array().unwrap().len(), 14);
    let busy: Vec<&Value> = both["days"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["peak"].as_u64().unwrap() > 0)
        .collect();
    assert_eq!(busy.len(), 1);

    // Explain the busy day's peak: as many groups as channels, each with both sensors' legs.
    let day = busy[0]["day"].as_str().unwrap();
    let ex = json(&sipmeter(&[
        "channels",
        "explain",
        "--data-dir",
        db,
        "--day",
        day,
        "--format",
        "json",
    ]));
    assert_eq!(ex["channels"], both["peak"]);
    assert_eq!(ex["at"], both["peak_at"]);
    for g in ex["groups"].as_array().unwrap() {
        let sensors: HashSet<u64> = g["legs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["sensor_id"].as_u64().unwrap())
            .collect();
        assert_eq!(sensors, HashSet::from([1, 2]));
    }
}

#[test]
fn pcap_sensor_ids_model_several_sensors() {
    let pcap = data("basic_concurrent.pcap");
    let spec = format!("7={}", pcap.display());
    let one = json(&sipmeter(&[
        "channels",
        "--format",
        "json",
        "--pcap",
        pcap.to_str().unwrap(),
    ]));
    let two = json(&sipmeter(&[
        "channels",
        "--format",
        "json",
        "--pcap",
        pcap.to_str().unwrap(),
        "--pcap",
        &spec,
    ]));
    assert_eq!(one["peak"], two["peak"]);
}

#[test]
fn a_transfer_counts_twice_and_explain_says_why() {
    let pcap = data("transfer.pcap");
    let truth: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(data("transfer.expected.json")).unwrap())
            .unwrap();
    // An instant when the transferred call (A->C) and the attended one (D->C) overlap.
    let d_c = truth
        .iter()
        .find(|l| l["call_id"] == "xfer-d-c-1@sipmeter.test")
        .unwrap();
    let at = d_c["start"].as_str().unwrap();
    let ex = json(&sipmeter(&[
        "channels",
        "explain",
        "--format",
        "json",
        "--at",
        at,
        "--pcap",
        pcap.to_str().unwrap(),
    ]));
    assert_eq!(ex["channels"], 2);
    let reasons: Vec<String> = ex["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["not_merged"].as_array().unwrap().clone())
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("transfer: Replaces")),
        "{reasons:?}"
    );
}

#[test]
fn bad_time_zone_and_dates_are_named() {
    let pcap = data("basic_concurrent.pcap");
    let out = sipmeter(&[
        "channels",
        "--tz",
        "Mars/Olympus",
        "--pcap",
        pcap.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Mars/Olympus"));
    let out = sipmeter(&[
        "channels",
        "--from",
        "28.11.2026",
        "--pcap",
        pcap.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("28.11.2026"));
}

#[test]
fn local_days_follow_the_time_zone() {
    // The basic capture is around 16:29 UTC: still the same day in Tokyo? 16:29 UTC is
    // 01:29 the next day in Tokyo.
    let pcap = data("basic_concurrent.pcap");
    let utc = json(&sipmeter(&[
        "channels",
        "--format",
        "json",
        "--pcap",
        pcap.to_str().unwrap(),
    ]));
    let tokyo = json(&sipmeter(&[
        "channels",
        "--format",
        "json",
        "--tz",
        "Asia/Tokyo",
        "--pcap",
        pcap.to_str().unwrap(),
    ]));
    let day = |v: &Value| v["days"][0]["day"].as_str().unwrap().to_string();
    let next = {
        let d: jiff::civil::Date = day(&utc).parse().unwrap();
        d.tomorrow().unwrap().to_string()
    };
    assert_eq!(day(&tokyo), next);
    assert_eq!(tokyo["peak"], utc["peak"]);
    assert_eq!(tokyo["time_zone"], "Asia/Tokyo");
}

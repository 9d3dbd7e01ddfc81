//! The committed SIPp captures against their expected legs (tests/data/*.expected.json, made by
//! tests/data/truth.py from tshark's view of the same packets, independently of our code).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data")
}

fn sipmeter() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sipmeter"))
}

/// Run `sipmeter read --format jsonl` and return the legs, sorted like the expected files.
fn read_legs(pcap: &Path) -> Vec<Value> {
    let out = sipmeter()
        .args(["read", "--format", "jsonl"])
        .arg(pcap)
        .output()
        .expect("run sipmeter");
    assert!(
        out.status.success(),
        "sipmeter read {} failed: {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut legs: Vec<Value> = String::from_utf8(out.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    legs.sort_by(|a, b| {
        (a["start"].as_str(), a["call_id"].as_str())
            .cmp(&(b["start"].as_str(), b["call_id"].as_str()))
    });
    legs
}

/// The fields the truth states; each one must match exactly (times to the microsecond).
const COMPARED: &[&str] = &[
    "call_id",
    "caller",
    "called",
    "caller_domain",
    "called_domain",
    "start",
    "answer",
    "end",
    "duration",
    "last_response",
    "end_reason",
    "transport",
    "partial",
    "referred_by",
    "refer_to",
    "replaces",
];

#[test]
fn every_capture_gives_the_expected_legs() {
    let mut checked = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(data_dir())
        .expect("tests/data exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".expected.json"))
        .collect();
    entries.sort();
    for expected_path in entries {
        let name = expected_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches(".expected.json")
            .to_string();
        let pcap = data_dir().join(format!("{name}.pcap"));
        let expected: Vec<Value> =
            serde_json::from_str(&std::fs::read_to_string(&expected_path).unwrap()).unwrap();
        let got = read_legs(&pcap);
        checked += 1;
        if got.len() != expected.len() {
            failures.push(format!(
                "{name}: {} legs, expected {}\n got: {:?}",
                got.len(),
                expected.len(),
                got.iter().map(|l| &l["call_id"]).collect::<Vec<_>>()
            ));
            continue;
        }
        for (g, e) in got.iter().zip(&expected) {
            for field in COMPARED {
                let Some(want) = e.get(*field) else { continue };
                let have = &g[*field];
                let same = match (have, want) {
                    (Value::Number(a), Value::Number(b)) => {
                        (a.as_f64().unwrap() - b.as_f64().unwrap()).abs() < 1e-6
                    }
                    _ => have == want,
                };
                if !same {
                    failures.push(format!(
                        "{name} {}: {field} is {have}, expected {want}",
                        e["call_id"]
                    ));
                }
            }
        }
    }
    assert!(
        checked >= 5,
        "only {checked} expected files found in tests/data"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

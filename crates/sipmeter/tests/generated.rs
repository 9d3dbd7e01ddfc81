//! Many concurrent calls, exactly: a generated capture (UDP and TCP signalling with split and
//! coalesced segments, RTP, failures, CANCELs) read by `sipmeter read` must reproduce the
//! generator's truth for every call, to the microsecond.

use std::collections::HashMap;

use serde_json::Value;

// Also the sensor tests' helpers; this test uses the generator and `sipmeter_ok`.
#[allow(dead_code)]
#[path = "common/sensors.rs"]
mod common;

fn generate(dir: &std::path::Path, extra: &[&str]) -> (std::path::PathBuf, Vec<Value>) {
    let pcap = dir.join("gen.pcap");
    let truth = common::generate_truth(&pcap, extra);
    (pcap, truth)
}

fn read(pcap: &std::path::Path) -> HashMap<String, Value> {
    let out = common::sipmeter_ok(&[std::ffi::OsStr::new("read"), pcap.as_os_str()]);
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["call_id"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

fn assert_matches_truth(truth: &[Value], got: &HashMap<String, Value>) {
    assert_eq!(got.len(), truth.len(), "one leg per generated call");
    let mut mismatches = Vec::new();
    for t in truth {
        let id = t["call_id"].as_str().unwrap();
        let Some(g) = got.get(id) else {
            mismatches.push(format!("{id}: no leg"));
            continue;
        };
        for (field, want) in t.as_object().unwrap() {
            if g[field] != *want {
                mismatches.push(format!("{id}: {field} is {}, truth {want}", g[field]));
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches, first: {:#?}",
        mismatches.len(),
        &mismatches[..mismatches.len().min(10)]
    );
}

#[test]
fn thousands_of_concurrent_calls_over_udp_and_tcp_match_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = generate(
        dir.path(),
        &[
            "--calls",
            "3000",
            "--concurrency",
            "400",
            "--duration-s",
            "20",
            "--tcp-ratio",
            "0.3",
            "--failure-ratio",
            "0.3",
            "--seed",
            "7",
        ],
    );
    assert_eq!(truth.len(), 3000);
    assert_matches_truth(&truth, &read(&pcap));
}

#[test]
fn rtp_heavy_capture_matches_the_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (pcap, truth) = generate(
        dir.path(),
        &[
            "--calls",
            "60",
            "--concurrency",
            "30",
            "--duration-s",
            "5",
            "--rtp",
            "--seed",
            "3",
        ],
    );
    assert_eq!(truth.len(), 60);
    assert_matches_truth(&truth, &read(&pcap));
}

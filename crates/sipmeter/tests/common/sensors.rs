//! What the sensor tests (`sensor_faults.rs`, `sensor_tls.rs`) each needed: a free loopback
//! port, a generated capture, and a sensor added through the CLI.

use std::ffi::OsStr;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;

use sipmeter_gen::args::{self, Command as GenCommand};
use sipmeter_gen::sim::Sim;

/// An address on 127.0.0.1 nothing listens on right now.
pub fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Runs the generator into `pcap` with `flags` (after `--out … --quiet`); the Call-IDs its
/// truth says the capture holds.
pub fn generate(pcap: &Path, flags: &[&str]) -> Vec<String> {
    generate_truth(pcap, flags)
        .iter()
        .map(|v| v["call_id"].as_str().unwrap().to_string())
        .collect()
}

/// [`generate`], with the generator's whole truth: one JSON object per call.
pub fn generate_truth(pcap: &Path, flags: &[&str]) -> Vec<serde_json::Value> {
    let argv: Vec<String> = ["--out", pcap.to_str().unwrap(), "--quiet"]
        .iter()
        .chain(flags)
        .map(|s| s.to_string())
        .collect();
    let GenCommand::Run(cfg) = args::parse(argv).unwrap() else {
        panic!("expected a run")
    };
    let out = std::io::BufWriter::new(std::fs::File::create(pcap).unwrap());
    let (_, mut out, truth) = Sim::new(cfg, out, Some(Vec::<u8>::new()))
        .unwrap()
        .run()
        .unwrap();
    out.flush().unwrap();
    String::from_utf8(truth.unwrap())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs `sipmeter` with `args`, which must succeed (else its stderr is the failure); its stdout.
pub fn sipmeter_ok<S: AsRef<OsStr>>(args: &[S]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_sipmeter"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `sipmeter sensors --data-dir DATA ARGS…`, which must succeed; its stdout.
pub fn sensors_cli(data: &Path, args: &[&str]) -> Vec<u8> {
    let mut all = vec![
        OsStr::new("sensors"),
        OsStr::new("--data-dir"),
        data.as_os_str(),
    ];
    all.extend(args.iter().map(OsStr::new));
    sipmeter_ok(&all)
}

/// `sipmeter sensors add`: the new sensor's id and token (the last line of its output).
pub fn add_sensor(data: &Path, name: &str) -> (i64, String) {
    add_sensor_with(data, &[], name)
}

/// [`add_sensor`] with options of `sensors` (`--database URL`).
pub fn add_sensor_with(data: &Path, options: &[&str], name: &str) -> (i64, String) {
    let out = sensors_cli(data, &[options, &["add", "--name", name]].concat());
    let text = String::from_utf8(out).unwrap();
    let token = text.lines().last().unwrap().to_string();
    assert_eq!(token.len(), 64, "the token is the last line: {token:?}");
    let id = text
        .split("with id ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap()
        .parse()
        .unwrap();
    (id, token)
}

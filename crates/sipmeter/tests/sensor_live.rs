//! `sipmeter sensor --interface lo` (feature `live`): real SIPp calls on loopback captured by a
//! live sensor reach the central server as legs, and its heartbeat shows them as live calls
//! while they are up. Needs root or CAP_NET_RAW, and `sipp`.
#![cfg(feature = "live")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_sipmeter");
const UAS_PORT: u16 = 25_460;
const UAC_PORT: u16 = 25_470;
const CALLS: i64 = 10;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    // admin:admin-password
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46YWRtaW4tcGFzc3dvcmQ=\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    buf
}

fn answered_legs(data: &Path) -> i64 {
    let Ok(c) = rusqlite::Connection::open(data.join("sipmeter.db")) else {
        return 0;
    };
    let _ = c.busy_timeout(Duration::from_secs(2));
    c.query_row(
        "SELECT COUNT(*) FROM legs WHERE last_response = 200",
        [],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

/// A server with one sensor token: (temp dir, server data dir, server address, token, server).
fn server_with_token() -> (
    tempfile::TempDir,
    std::path::PathBuf,
    SocketAddr,
    String,
    Kill,
) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let out = Command::new(BIN)
        .args(["sensors", "--data-dir"])
        .arg(&data)
        .args(["add", "--name", "lo"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let addr = free_addr();
    let server = Kill(
        Command::new(BIN)
            .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
            .arg(&data)
            .env("SIPMETER_ADMIN_PASSWORD", "admin-password")
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    (dir, data, addr, token, server)
}

/// SIPp UAS on `uas_port` and a UAC placing `calls` calls of `duration_ms` from `uac_port`.
fn sipp_calls(
    dir: &Path,
    uas_port: u16,
    uac_port: u16,
    calls: i64,
    duration_ms: u32,
) -> (Kill, Kill) {
    let sipp = |args: &[String]| {
        Command::new("sipp")
            .args(["-nostdin", "-i", "127.0.0.1", "-timeout", "60s"])
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp")
    };
    let uas = Kill(sipp(&[
        "-sn".into(),
        "uas".into(),
        "-p".into(),
        uas_port.to_string(),
    ]));
    std::thread::sleep(Duration::from_millis(300));
    let uac = Kill(sipp(&[
        "-sn".into(),
        "uac".into(),
        format!("127.0.0.1:{uas_port}"),
        "-p".into(),
        uac_port.to_string(),
        "-m".into(),
        calls.to_string(),
        "-r".into(),
        "10".into(),
        "-d".into(),
        duration_ms.to_string(),
    ]));
    (uas, uac)
}

#[test]
fn sipp_calls_on_loopback_reach_the_server_through_a_live_sensor() {
    let (dir, data, addr, token, _server) = server_with_token();
    let _sensor = Kill(
        Command::new(BIN)
            .args(["sensor", "--data-dir"])
            .arg(dir.path().join("sensor"))
            .args(["--server", &format!("http://{addr}"), "--token", &token])
            .args(["--interface", "lo", "--heartbeat-s", "1"])
            .args(["--sip-ports", &UAS_PORT.to_string()])
            .stderr(std::fs::File::create(dir.path().join("sensor.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let (_uas, uac) = sipp_calls(dir.path(), UAS_PORT, UAC_PORT, CALLS, 3000);
    // While the calls are up, the heartbeat carries them.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = get(addr, "/api/v1/channels/now");
        if !now.contains("\"active_calls\":0,") && now.contains("\"active_calls\":") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no live calls seen: {now}\nsensor: {}",
            std::fs::read_to_string(dir.path().join("sensor.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(40);
    while answered_legs(&data) < CALLS {
        assert!(
            Instant::now() < deadline,
            "{} of {CALLS} answered legs stored",
            answered_legs(&data)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(answered_legs(&data), CALLS, "each call once");
    drop(uac);
}

/// SIGTERM (a service manager stopping the sensor) before a heartbeat slice ends: the legs of
/// the finished calls are spooled and delivered before the sensor exits, not lost with it.
#[test]
fn a_live_sensor_stopped_by_sigterm_delivers_the_calls_it_saw() {
    let (dir, data, addr, token, _server) = server_with_token();
    let mut sensor = Kill(
        Command::new(BIN)
            .args(["sensor", "--data-dir"])
            .arg(dir.path().join("sensor"))
            .args(["--server", &format!("http://{addr}"), "--token", &token])
            // No slice ends during the test: only the stop can deliver the legs.
            .args(["--interface", "lo", "--heartbeat-s", "3600"])
            .args(["--sip-ports", "25480"])
            .stderr(std::fs::File::create(dir.path().join("sensor.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(1500));
    let (_uas, mut uac) = sipp_calls(dir.path(), 25_480, 25_490, 5, 500);
    let deadline = Instant::now() + Duration::from_secs(30);
    while uac.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "SIPp did not finish its calls");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(answered_legs(&data), 0, "nothing delivered before the stop");
    let term = Command::new("kill")
        .args(["-TERM", &sensor.0.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = sensor.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the sensor did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(dir.path().join("sensor.log")).unwrap_or_default();
    assert!(status.success(), "sensor exit {status}: {log}");
    assert_eq!(answered_legs(&data), 5, "every call once: {log}");
}

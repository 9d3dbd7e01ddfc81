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

#[test]
fn sipp_calls_on_loopback_reach_the_server_through_a_live_sensor() {
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
    let _server = Kill(
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
    let sipp = |args: &[String]| {
        Command::new("sipp")
            .args(["-nostdin", "-i", "127.0.0.1", "-timeout", "60s"])
            .args(args)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp")
    };
    let _uas = Kill(sipp(&[
        "-sn".into(),
        "uas".into(),
        "-p".into(),
        UAS_PORT.to_string(),
    ]));
    std::thread::sleep(Duration::from_millis(300));
    let uac = Kill(sipp(&[
        "-sn".into(),
        "uac".into(),
        format!("127.0.0.1:{UAS_PORT}"),
        "-p".into(),
        UAC_PORT.to_string(),
        "-m".into(),
        CALLS.to_string(),
        "-r".into(),
        "10".into(),
        "-d".into(),
        "3000".into(),
    ]));
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

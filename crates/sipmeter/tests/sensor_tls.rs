//! The sensor ↔ server transport with real processes: HTTPS with a pinned certificate or a CA,
//! plain HTTP only to loopback, tokens that work until revoked.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

#[path = "common/sensors.rs"]
mod common;
use common::{add_sensor, free_addr, generate, sensors_cli};

const BIN: &str = env!("CARGO_BIN_EXE_sipmeter");

fn capture(dir: &Path, calls: u32) -> PathBuf {
    let pcap = dir.join("c.pcap");
    generate(&pcap, &["--calls", &calls.to_string()]);
    pcap
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `sipmeter serve` with the given extra flags; up once it listens.
fn serve(data: &Path, addr: SocketAddr, extra: &[&std::ffi::OsStr]) -> Server {
    let child = Command::new(BIN)
        .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
        .arg(data)
        .args(extra)
        .env("SIPMETER_ADMIN_PASSWORD", "admin-password")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "the server did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server(child)
}

fn sensor(
    sdata: &Path,
    server: &str,
    token: &str,
    extra: &[&std::ffi::OsStr],
    pcap: &Path,
) -> Output {
    Command::new(BIN)
        .args(["sensor", "--data-dir"])
        .arg(sdata)
        .args([
            "--server",
            server,
            "--token",
            token,
            "--max-retry-time",
            "5",
        ])
        .args(extra)
        .arg(pcap)
        .output()
        .unwrap()
}

fn stored(data: &Path) -> i64 {
    let c = rusqlite::Connection::open(data.join("sipmeter.db")).unwrap();
    c.busy_timeout(Duration::from_secs(5)).unwrap();
    c.query_row("SELECT COUNT(*) FROM legs", [], |r| r.get(0))
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(path: &Path, text: &str) -> PathBuf {
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

#[test]
fn a_pinned_self_signed_server_is_trusted_and_any_other_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let pcap = capture(dir.path(), 300);
    let (_, token) = add_sensor(&data, "pinned");
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let cert = write(&dir.path().join("cert.pem"), &ck.cert.pem());
    let key = write(&dir.path().join("key.pem"), &ck.key_pair.serialize_pem());
    let addr = free_addr();
    let _server = serve(
        &data,
        addr,
        &[
            "--tls-cert".as_ref(),
            cert.as_os_str(),
            "--tls-key".as_ref(),
            key.as_os_str(),
        ],
    );
    let url = format!("https://{addr}");
    let pin = sensor::uplink::fingerprint(ck.cert.der());

    // Another certificate's fingerprint: refused at once, nothing delivered, kept spooled.
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let wrong = sensor::uplink::fingerprint(other.cert.der());
    let sdata = dir.path().join("sensor");
    let o = sensor(
        &sdata,
        &url,
        &token,
        &["--server-fingerprint".as_ref(), wrong.as_ref()],
        &pcap,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not trusted"), "{}", stderr(&o));
    assert_eq!(stored(&data), 0);

    // No pin and no CA: a clear error before any connection.
    let o = sensor(&sdata, &url, &token, &[], &pcap);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("--server-fingerprint"),
        "{}",
        stderr(&o)
    );

    // The right pin: the spooled legs and the rest arrive.
    let o = sensor(
        &sdata,
        &url,
        &token,
        &["--server-fingerprint".as_ref(), pin.as_ref()],
        &pcap,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stored(&data), 300);

    // Plain HTTP to this HTTPS server does not get through either.
    let o = sensor(
        &dir.path().join("sensor2"),
        &format!("http://{addr}"),
        &token,
        &[],
        &pcap,
    );
    assert!(!o.status.success());
}

#[test]
fn a_server_signed_by_the_given_ca_is_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let pcap = capture(dir.path(), 200);
    let (_, token) = add_sensor(&data, "ca");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let cert_pem = write(&dir.path().join("cert.pem"), &cert.pem());
    let key_pem = write(&dir.path().join("key.pem"), &key.serialize_pem());
    let ca_pem = write(&dir.path().join("ca.pem"), &ca.pem());
    let addr = free_addr();
    let _server = serve(
        &data,
        addr,
        &[
            "--tls-cert".as_ref(),
            cert_pem.as_os_str(),
            "--tls-key".as_ref(),
            key_pem.as_os_str(),
        ],
    );
    let url = format!("https://{addr}");
    // A CA that did not sign it: refused.
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut other_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other = other_params.self_signed(&other_key).unwrap();
    let other_pem = write(&dir.path().join("other.pem"), &other.pem());
    let sdata = dir.path().join("sensor");
    let o = sensor(
        &sdata,
        &url,
        &token,
        &["--ca".as_ref(), other_pem.as_os_str()],
        &pcap,
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not trusted"), "{}", stderr(&o));
    let o = sensor(
        &sdata,
        &url,
        &token,
        &["--ca".as_ref(), ca_pem.as_os_str()],
        &pcap,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stored(&data), 200);
}

#[test]
fn plain_http_is_refused_off_loopback_and_a_revoked_token_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let pcap = capture(dir.path(), 100);
    let sdata = dir.path().join("sensor");
    let (_, token) = add_sensor(&data, "plain");
    // Refused before any connection is tried (the .invalid name never resolves anyway).
    let o = sensor(&sdata, "http://central.invalid:8080", &token, &[], &pcap);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--insecure-http"), "{}", stderr(&o));

    let addr = free_addr();
    let _server = serve(&data, addr, &[]);
    let url = format!("http://{addr}");
    let o = sensor(&sdata, &url, "not-a-token", &[], &pcap);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("refused the sensor token"),
        "{}",
        stderr(&o)
    );
    let o = sensor(
        &sdata,
        &url,
        &token,
        &["--batch-legs".as_ref(), "32".as_ref()],
        &pcap,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stored(&data), 100);
    // Full batches and one rest, however the reader handed the legs over (each batch is a
    // commit on the server).
    assert!(
        stderr(&o).contains("100 legs in 4 batches acknowledged"),
        "{}",
        stderr(&o)
    );

    sensors_cli(&data, &["revoke", "--name", "plain"]);
    // The running server refuses it on the next request: no restart, no cache.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /api/v1/ingest/heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let o = sensor(&dir.path().join("sensor2"), &url, &token, &[], &pcap);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("refused the sensor token"),
        "{}",
        stderr(&o)
    );
}

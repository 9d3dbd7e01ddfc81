//! Remote sensors under faults, with real processes: `sipmeter serve` and several
//! `sipmeter sensor`s on loopback, captures made by the generator. Whatever is killed or cut
//! mid-stream, once the sensors have exited 0 the legs in the server's database must equal
//! exactly the legs the sensors produced: none lost, none twice.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "common/sensors.rs"]
mod common;
use common::{add_sensor, add_sensor_with, free_addr, generate, sipmeter_ok};

const BIN: &str = env!("CARGO_BIN_EXE_sipmeter");

/// (sensor, Call-ID, start, end, final response code): what must arrive, exactly once.
type LegKey = (i64, String, i64, i64, Option<i64>);

/// A capture of `calls` calls and the Call-IDs the generator says it holds.
fn capture(dir: &Path, name: &str, calls: u32, seed: u64) -> (PathBuf, Vec<String>) {
    let pcap = dir.join(name);
    let (calls, seed) = (calls.to_string(), seed.to_string());
    let flags = [
        "--calls",
        &calls,
        "--concurrency",
        "150",
        "--duration-s",
        "20",
        "--tcp-ratio",
        "0.2",
        "--seed",
        &seed,
    ];
    let ids = generate(&pcap, &flags);
    (pcap, ids)
}

/// The legs a sensor makes of one capture (one pipeline per file, as `sipmeter sensor` does),
/// checked against the generator's Call-IDs.
fn legs_of(pcap: &Path, truth: &[String], sensor: i64) -> Vec<LegKey> {
    let mut p = sensor::Pipeline::new(sensor::PipelineConfig::default());
    let mut legs = Vec::new();
    p.read_file(pcap, &mut |l| legs.extend(l), &mut |_| {});
    legs.extend(p.finish());
    let mut ids: Vec<&str> = legs.iter().map(|l| l.call_id.as_str()).collect();
    let mut want: Vec<&str> = truth.iter().map(String::as_str).collect();
    ids.sort_unstable();
    want.sort_unstable();
    assert_eq!(ids, want, "the pipeline makes one leg per generated call");
    legs.into_iter()
        .map(|l| {
            (
                sensor,
                l.call_id,
                l.start,
                l.end,
                l.last_response.map(i64::from),
            )
        })
        .collect()
}

fn http_ok(addr: SocketAddr, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200")
}

struct Server {
    child: Child,
}

impl Server {
    fn start(data: &Path, addr: SocketAddr, log: &Path) -> Server {
        Server::start_with(data, addr, log, &[])
    }

    fn start_with(data: &Path, addr: SocketAddr, log: &Path, args: &[&str]) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--listen", &addr.to_string(), "--data-dir"])
            .arg(data)
            .args(args)
            .env("SIPMETER_ADMIN_PASSWORD", "admin-password")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !http_ok(addr, "/healthz") {
            assert!(Instant::now() < deadline, "the server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child }
    }

    fn kill(mut self) {
        self.child.kill().unwrap(); // SIGKILL
        self.child.wait().unwrap();
    }

    fn terminate(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sensor_cmd(data: &Path, server: SocketAddr, token: &str, files: &[&Path]) -> Command {
    let mut c = Command::new(BIN);
    c.args(["sensor", "--data-dir"])
        .arg(data)
        .args(["--server", &format!("http://{server}"), "--token", token])
        .args(["--batch-legs", "100", "--heartbeat-s", "1"])
        .args(files)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

fn wait_ok(mut child: Child, within: Duration) -> String {
    let deadline = Instant::now() + within;
    let status: ExitStatus = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a sensor did not finish in {within:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "sensor failed: {err}");
    err
}

fn db(data: &Path) -> rusqlite::Connection {
    let c = rusqlite::Connection::open(data.join("sipmeter.db")).unwrap();
    c.busy_timeout(Duration::from_secs(10)).unwrap();
    c
}

fn stored_count(data: &Path) -> i64 {
    let Ok(c) = rusqlite::Connection::open(data.join("sipmeter.db")) else {
        return 0;
    };
    let _ = c.busy_timeout(Duration::from_secs(2));
    c.query_row("SELECT COUNT(*) FROM legs", [], |r| r.get(0))
        .unwrap_or(0)
}

fn stored(data: &Path) -> Vec<LegKey> {
    let c = db(data);
    let mut st = c
        .prepare("SELECT sensor_id, call_id, start_us, end_us, last_response FROM legs")
        .unwrap();
    st.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// Exact equality as multisets: a leg stored twice or missing shows by name.
fn assert_same_legs(mut want: Vec<LegKey>, mut got: Vec<LegKey>) {
    want.sort();
    got.sort();
    let count = |v: &[LegKey]| {
        let mut m: BTreeMap<LegKey, u32> = BTreeMap::new();
        for k in v {
            *m.entry(k.clone()).or_default() += 1;
        }
        m
    };
    let (w, g) = (count(&want), count(&got));
    let missing: Vec<_> = w.keys().filter(|k| !g.contains_key(*k)).take(5).collect();
    let extra: Vec<_> = g.keys().filter(|k| !w.contains_key(*k)).take(5).collect();
    let twice: Vec<_> = g.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty() && twice.is_empty(),
        "{} wanted, {} stored; missing {missing:?}; unexpected {extra:?}; more than once {twice:?}",
        want.len(),
        got.len()
    );
    assert_eq!(want, got);
}

/// Waits until the database holds more than `n` legs, so a fault lands mid-stream.
fn wait_for_legs(data: &Path, n: i64) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let c = stored_count(data);
        if c > n {
            return c;
        }
        assert!(Instant::now() < deadline, "no legs arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Three sensors registered on the server in `data` (`options`: `--database URL`), each with
/// a capture of 2000 calls of its own (seeds from `seed`): the legs they must deliver, and
/// their commands, to be started once the server at `addr` is up.
fn three_sensors(
    dir: &Path,
    data: &Path,
    options: &[&str],
    name: &str,
    seed: u64,
    addr: SocketAddr,
) -> (Vec<LegKey>, Vec<Command>) {
    let mut want = Vec::new();
    let mut commands = Vec::new();
    for i in 0..3u64 {
        let (pcap, truth) = capture(dir, &format!("{name}{i}.pcap"), 2000, seed + i);
        let (id, token) = add_sensor_with(data, options, &format!("{name}-{i}"));
        want.extend(legs_of(&pcap, &truth, id));
        commands.push(sensor_cmd(
            &dir.join(format!("sensor{i}")),
            addr,
            &token,
            &[&pcap],
        ));
    }
    (want, commands)
}

#[test]
fn three_sensors_lose_nothing_when_the_server_is_killed_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let addr = free_addr();
    let log = dir.path().join("server.log");
    let (want, sensors) = three_sensors(dir.path(), &data, &[], "site", 10, addr);
    let server = Server::start(&data, addr, &log);
    let children: Vec<Child> = sensors
        .into_iter()
        .map(|mut c| c.spawn().unwrap())
        .collect();
    let at_kill = wait_for_legs(&data, 0);
    server.kill();
    assert!(
        at_kill < want.len() as i64,
        "the server was killed after everything had arrived: no fault was tested"
    );
    std::thread::sleep(Duration::from_millis(700));
    let server = Server::start(&data, addr, &log);
    for c in children {
        wait_ok(c, Duration::from_secs(120));
    }
    server.terminate();
    assert_same_legs(want, stored(&data));
}

#[test]
fn a_sensor_killed_mid_capture_and_restarted_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let addr = free_addr();
    let log = dir.path().join("server.log");
    let (id, token) = add_sensor(&data, "site");
    let mut want = Vec::new();
    let mut files = Vec::new();
    for i in 0..3u64 {
        let (pcap, truth) = capture(dir.path(), &format!("part{i}.pcap"), 1500, 20 + i);
        want.extend(legs_of(&pcap, &truth, id));
        files.push(pcap);
    }
    let file_refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let sdata = dir.path().join("sensor");
    let server = Server::start(&data, addr, &log);
    let mut first = sensor_cmd(&sdata, addr, &token, &file_refs)
        .spawn()
        .unwrap();
    let at_kill = wait_for_legs(&data, 0);
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(
        at_kill < want.len() as i64,
        "the sensor was killed after everything had arrived: no fault was tested"
    );
    let second = sensor_cmd(&sdata, addr, &token, &file_refs)
        .spawn()
        .unwrap();
    wait_ok(second, Duration::from_secs(120));
    // Nothing is left behind: the spool is empty and every file is recorded as read.
    let left: Vec<_> = std::fs::read_dir(sdata.join("spool")).unwrap().collect();
    assert!(left.is_empty(), "spool not empty: {left:?}");
    server.terminate();
    assert_same_legs(want, stored(&data));
}

/// A TCP relay whose listener and connections can be cut and restored: the network between
/// the sensors and the server.
struct Link {
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Link {
    fn up(listen: SocketAddr, upstream: SocketAddr) -> Link {
        let listener = TcpListener::bind(listen).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (s, cs) = (stop.clone(), conns.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((down, _)) => {
                        down.set_nonblocking(false).unwrap();
                        let Ok(up) = TcpStream::connect(upstream) else {
                            continue;
                        };
                        let mut g = cs.lock().unwrap();
                        g.push(down.try_clone().unwrap());
                        g.push(up.try_clone().unwrap());
                        for (mut a, mut b) in [
                            (down.try_clone().unwrap(), up.try_clone().unwrap()),
                            (up, down),
                        ] {
                            std::thread::spawn(move || {
                                let _ = std::io::copy(&mut a, &mut b);
                                let _ = b.shutdown(Shutdown::Write);
                            });
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        Link {
            stop,
            conns,
            thread: Some(thread),
        }
    }

    /// The listener closes and every connection through it is torn down.
    fn cut(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

#[test]
fn a_network_cut_to_the_server_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let server_addr = free_addr();
    let link_addr = free_addr();
    let log = dir.path().join("server.log");
    let mut want = Vec::new();
    let mut children = Vec::new();
    let server = Server::start(&data, server_addr, &log);
    let link = Link::up(link_addr, server_addr);
    for i in 0..2u64 {
        let (pcap, truth) = capture(dir.path(), &format!("n{i}.pcap"), 2000, 30 + i);
        let (id, token) = add_sensor(&data, &format!("remote-{i}"));
        want.extend(legs_of(&pcap, &truth, id));
        let sdata = dir.path().join(format!("sensor{i}"));
        children.push(
            sensor_cmd(&sdata, link_addr, &token, &[&pcap])
                .spawn()
                .unwrap(),
        );
    }
    let at_cut = wait_for_legs(&data, 0);
    link.cut();
    assert!(
        at_cut < want.len() as i64,
        "the link was cut after everything had arrived: no fault was tested"
    );
    std::thread::sleep(Duration::from_millis(1500));
    let during = stored_count(&data);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        stored_count(&data),
        during,
        "nothing arrives while the link is cut"
    );
    let link = Link::up(link_addr, server_addr);
    for c in children {
        wait_ok(c, Duration::from_secs(120));
    }
    link.cut();
    server.terminate();
    assert_same_legs(want, stored(&data));
}

#[test]
fn the_same_captures_seen_by_two_sensors_count_as_one_set_of_channels() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let addr = free_addr();
    let (a, _) = capture(dir.path(), "a.pcap", 800, 41);
    let (b, _) = capture(dir.path(), "b.pcap", 800, 42);
    let server = Server::start(&data, addr, &dir.path().join("server.log"));
    let mut children = Vec::new();
    for i in 0..2 {
        let (_, token) = add_sensor(&data, &format!("twin-{i}"));
        let sdata = dir.path().join(format!("sensor{i}"));
        children.push(sensor_cmd(&sdata, addr, &token, &[&a, &b]).spawn().unwrap());
    }
    for c in children {
        wait_ok(c, Duration::from_secs(120));
    }
    server.terminate();
    let peak = |args: &[&std::ffi::OsStr]| -> u64 {
        let flags = ["channels", "--format", "json"].map(std::ffi::OsStr::new);
        let out = sipmeter_ok(&[&flags[..], args].concat());
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        v["peak"].as_u64().unwrap()
    };
    let central = peak(&["--data-dir".as_ref(), data.as_os_str()]);
    let one = peak(&[
        "--pcap".as_ref(),
        a.as_os_str(),
        "--pcap".as_ref(),
        b.as_os_str(),
    ]);
    assert!(one > 100, "the captures overlap in many calls: {one}");
    assert_eq!(central, one, "two sensors, one set of channels");
    assert_eq!(
        stored(&data).len(),
        2 * 2 * 800,
        "both sensors' legs are kept"
    );
}

#[test]
fn a_full_spool_stops_the_sensor_loudly_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let (pcap, truth) = capture(dir.path(), "full.pcap", 1500, 51);
    let (id, token) = add_sensor(&data, "small-spool");
    let want = legs_of(&pcap, &truth, id);
    let addr = free_addr();
    let sdata = dir.path().join("sensor");
    // No server yet, and room for a few batches only.
    let o = sensor_cmd(&sdata, addr, &token, &[&pcap])
        .args(["--spool-max", "256K", "--max-retry-time", "2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a full spool must fail the run: {err}");
    assert!(err.contains("is full"), "{err}");
    let spooled = std::fs::read_dir(sdata.join("spool")).unwrap().count();
    assert!(spooled > 0, "what fitted stays spooled");
    let server = Server::start(&data, addr, &dir.path().join("server.log"));
    let o = sensor_cmd(&sdata, addr, &token, &[&pcap]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    server.terminate();
    assert_same_legs(want, stored(&data));
}

fn base64(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b = s.as_bytes();
    let mut out = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `GET /api/v1/channels/now` as the admin: (active channels, active calls).
fn channels_now(addr: SocketAddr) -> (u64, u64) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        s,
        "GET /api/v1/channels/now HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {}\r\nConnection: close\r\n\r\n",
        base64("admin:admin-password")
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or("");
    let v: serde_json::Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("{buf}"));
    (
        v["active_channels"].as_u64().unwrap(),
        v["active_calls"].as_u64().unwrap(),
    )
}

/// The first half (by packet time) of a classic pcap: calls are still up at its end.
fn first_half(src: &Path, dst: &Path) {
    let data = std::fs::read(src).unwrap();
    let field = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
    let mut recs = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let len = field(at + 8) as usize;
        recs.push((at, 16 + len, i64::from(field(at))));
        at += 16 + len;
    }
    let mid = (recs[0].2 + recs[recs.len() - 1].2) / 2;
    let mut out = data[..24].to_vec();
    for (at, len, ts) in recs {
        if ts < mid {
            out.extend_from_slice(&data[at..at + len]);
        }
    }
    std::fs::write(dst, out).unwrap();
}

#[test]
fn live_calls_of_two_sensors_seeing_the_same_traffic_are_one_set_of_channels_now() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let (full, _) = capture(dir.path(), "full.pcap", 600, 61);
    let cut = dir.path().join("cut.pcap");
    first_half(&full, &cut);
    // What one sensor sees live at the end of the cut capture.
    let mut p = sensor::Pipeline::new(sensor::PipelineConfig::default());
    p.read_file(&cut, &mut |_| {}, &mut |_| {});
    let mut keyer = channels::Keyer::new();
    let mut keys = std::collections::HashSet::new();
    let mut calls = 0u64;
    for l in p.tracker().live_legs() {
        calls += 1;
        keys.insert(keyer.key(&l.caller, &l.called));
    }
    assert!(calls > 20, "the cut leaves calls up: {calls}");
    let addr = free_addr();
    let server = Server::start(&data, addr, &dir.path().join("server.log"));
    let mut children = Vec::new();
    for i in 0..2 {
        let (_, token) = add_sensor(&data, &format!("live-{i}"));
        let pdir = dir.path().join(format!("pcaps{i}"));
        std::fs::create_dir_all(&pdir).unwrap();
        std::fs::copy(&cut, pdir.join("cut.pcap")).unwrap();
        let sdata = dir.path().join(format!("sensor{i}"));
        let mut c = Command::new(BIN);
        c.args(["sensor", "--data-dir"])
            .arg(&sdata)
            .args(["--server", &format!("http://{addr}"), "--token", &token])
            .args(["--heartbeat-s", "1", "--pcap-dir"])
            .arg(&pdir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        children.push(c.spawn().unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut now = channels_now(addr);
    while now.1 != 2 * calls {
        assert!(
            Instant::now() < deadline,
            "live calls never showed: {now:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
        now = channels_now(addr);
    }
    assert_eq!(
        now,
        (keys.len() as u64, 2 * calls),
        "channels deduplicated across sensors"
    );
    // Sensors gone quiet: their live calls expire after three heartbeat intervals.
    for mut c in children {
        c.kill().unwrap();
        c.wait().unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while channels_now(addr) != (0, 0) {
        assert!(
            Instant::now() < deadline,
            "live calls of dead sensors never expired"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server.terminate();
}

/// A fresh PostgreSQL database on the local test server (`SIPMETER_TEST_PG`, default
/// `postgres://postgres@127.0.0.1:5432/test`): its URL, dropped by `psql` when the guard goes.
struct PgDatabase {
    admin: String,
    name: String,
    url: String,
}

impl PgDatabase {
    fn create(name: &str) -> PgDatabase {
        let admin = std::env::var("SIPMETER_TEST_PG")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let name = format!("{name}_{}", std::process::id());
        let psql = |sql: &str| {
            let ok = Command::new("psql")
                .args([admin.as_str(), "-qc", sql])
                .status()
                .expect("psql");
            assert!(ok.success(), "{sql}");
        };
        psql(&format!("DROP DATABASE IF EXISTS {name}"));
        psql(&format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        let url = format!("{base}/{name}");
        PgDatabase { admin, name, url }
    }

    fn legs(&self) -> Vec<LegKey> {
        let out = Command::new("psql")
            .args([self.url.as_str(), "-Atc"])
            .arg(
                "SELECT sensor_id, call_id, start_us, end_us, COALESCE(last_response, -1) \
                 FROM legs",
            )
            .output()
            .expect("psql");
        assert!(out.status.success());
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let f: Vec<&str> = l.split('|').collect();
                let code: i64 = f[4].parse().unwrap();
                (
                    f[0].parse().unwrap(),
                    f[1].to_string(),
                    f[2].parse().unwrap(),
                    f[3].parse().unwrap(),
                    (code >= 0).then_some(code),
                )
            })
            .collect()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([self.admin.as_str(), "-qc"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .status();
    }
}

/// Into PostgreSQL, where the server writes two sensors' batches at once on two handles:
/// three sensors' legs are all there, once each, with a server SIGKILL mid-stream.
#[test]
fn three_sensors_into_postgresql_lose_nothing_and_store_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("server");
    let pg = PgDatabase::create("sipmeter_faults");
    let db = ["--database", pg.url.as_str()];
    let addr = free_addr();
    let log = dir.path().join("server.log");
    let (want, sensors) = three_sensors(dir.path(), &data, &db, "pg", 20, addr);
    let server = Server::start_with(&data, addr, &log, &db);
    let children: Vec<Child> = sensors
        .into_iter()
        .map(|mut c| c.spawn().unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while pg.legs().is_empty() {
        assert!(Instant::now() < deadline, "no legs arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.kill();
    std::thread::sleep(Duration::from_millis(500));
    let server = Server::start_with(&data, addr, &log, &db);
    for c in children {
        wait_ok(c, Duration::from_secs(120));
    }
    server.terminate();
    assert_same_legs(want, pg.legs());
}

//! Live capture on the loopback interface with real SIPp calls (feature `live`; needs root or
//! CAP_NET_RAW, as tcpdump does). Run: `cargo test -p capture --features live --test live`.
#![cfg(feature = "live")]

use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use calls::{EndReason, Leg, Origin, Tracker, TrackerConfig};
use capture::live::{LiveCapture, LiveConfig, LiveError, LiveStats};
use capture::{CaptureConfig, Decoder, PortSet, SipPayload};

/// The SIP ports of these tests: UAS ports of their own, so the product's own tests (5060)
/// and anything else on the machine stay out of the capture.
const UAS_PORT: u16 = 25_060;
const REJECT_UAS_PORT: u16 = 25_061;
const UAC_PORT: u16 = 25_070;
const REJECT_UAC_PORT: u16 = 25_071;
/// A port outside the filter, where a SIP-looking datagram must never reach the decoder.
const OUTSIDE_PORT: u16 = 25_099;

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// Parses what the decoder delivers and tracks calls, as the sensor pipeline does.
struct Calls {
    tracker: Tracker,
    ports: Vec<u16>,
}

impl capture::Sink for Calls {
    fn sip(&mut self, p: &SipPayload<'_>) {
        self.ports.push(p.src.port());
        self.ports.push(p.dst.port());
        if let Ok(msg) = sip::parse(p.data) {
            let origin = Origin {
                ts: p.ts_us,
                src: p.src,
                dst: p.dst,
                transport: p.transport,
            };
            self.tracker.message(&origin, &msg, p.data);
        }
    }
}

struct Captured {
    legs: Vec<Leg>,
    ports: Vec<u16>,
    frames: u64,
    linktype: u32,
    filter: String,
    stats: LiveStats,
}

/// Captures on `lo` in a thread until `stop`; `ready` fires once the filter is in place.
fn capture_until(
    ports: PortSet,
    stop: Arc<AtomicBool>,
    ready: mpsc::Sender<Result<(), String>>,
) -> std::thread::JoinHandle<Option<Captured>> {
    std::thread::spawn(move || {
        let mut config = LiveConfig::new("lo");
        config.poll = Duration::from_millis(50);
        let mut cap = match LiveCapture::open(&config, &ports) {
            Ok(c) => c,
            Err(e) => {
                ready.send(Err(e.to_string())).unwrap();
                return None;
            }
        };
        ready.send(Ok(())).unwrap();
        let capture_config = CaptureConfig {
            ports,
            // Content detection on every port: a frame the kernel filter let through on a
            // foreign port would show up as SIP, so the test sees whether the filter works.
            detect_any_port: true,
            ..Default::default()
        };
        let mut decoder = Decoder::new(&capture_config);
        let mut calls = Calls {
            tracker: Tracker::new(TrackerConfig::default()),
            ports: Vec::new(),
        };
        let mut frames = 0;
        while !stop.load(Ordering::Relaxed) {
            match cap.next_frame().unwrap() {
                Some(f) => {
                    frames += 1;
                    decoder.frame(f.linktype, f.ts_us, f.data, &mut calls);
                }
                None => calls.tracker.advance(now_us()),
            }
        }
        let stats = cap.stats().unwrap();
        calls.tracker.finish();
        Some(Captured {
            legs: calls.tracker.take_closed(),
            ports: calls.ports,
            frames,
            linktype: cap.linktype(),
            filter: cap.filter().to_string(),
            stats,
        })
    })
}

fn sipp(dir: &Path, args: &[&str]) -> Child {
    Command::new("sipp")
        .current_dir(dir)
        .args([
            "-nostdin",
            "-timeout",
            "20s",
            "-timeout_error",
            "-i",
            "127.0.0.1",
        ])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp runs (Debian package sip-tester)")
}

fn wait_ok(mut child: Child, what: &str) {
    let status = child.wait().unwrap();
    assert!(status.success(), "sipp {what} failed: {status}");
}

#[test]
fn sipp_calls_on_loopback_become_legs() {
    let dir = std::env::temp_dir().join(format!("sipmeter-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let reject = std::fs::read_to_string(repo_file("tests/data/scenarios/reject_uas.xml.in"))
        .unwrap()
        .replace("@CODE@", "486")
        .replace("@REASON@", "Busy Here");
    std::fs::write(dir.join("reject_uas.xml"), reject).unwrap();

    let ports = PortSet::parse(&format!("{UAS_PORT}-{REJECT_UAS_PORT}")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (ready_tx, ready_rx) = mpsc::channel();
    let t0 = now_us();
    let worker = capture_until(ports, stop.clone(), ready_tx);
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap_or_else(|e| panic!("live capture on lo did not open: {e}"));

    let uas = sipp(
        &dir,
        &["-sn", "uas", "-p", &UAS_PORT.to_string(), "-m", "5"],
    );
    let reject_uas = sipp(
        &dir,
        &[
            "-sf",
            "reject_uas.xml",
            "-p",
            &REJECT_UAS_PORT.to_string(),
            "-m",
            "1",
        ],
    );
    std::thread::sleep(Duration::from_millis(400));
    let uas_addr = format!("127.0.0.1:{UAS_PORT}");
    let uac = sipp(
        &dir,
        &[
            "-sn",
            "uac",
            &uas_addr,
            "-p",
            &UAC_PORT.to_string(),
            "-m",
            "5",
            "-l",
            "5",
            "-r",
            "20",
            "-d",
            "300",
            "-cid_str",
            "live-%u@sipmeter.test",
        ],
    );
    let reject_addr = format!("127.0.0.1:{REJECT_UAS_PORT}");
    let reject_uac = sipp(
        &dir,
        &[
            "-sf",
            repo_file("tests/data/scenarios/reject_uac.xml")
                .to_str()
                .unwrap(),
            &reject_addr,
            "-p",
            &REJECT_UAC_PORT.to_string(),
            "-m",
            "1",
            "-s",
            "442030070486",
            "-key",
            "caller",
            "442070070001",
            "-cid_str",
            "live-busy-%u@sipmeter.test",
        ],
    );
    // SIP on a port outside the filter: the kernel must drop it.
    let stray = UdpSocket::bind("127.0.0.1:0").unwrap();
    stray
        .send_to(
            b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nCall-ID: stray@sipmeter.test\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
            ("127.0.0.1", OUTSIDE_PORT),
        )
        .unwrap();
    wait_ok(uac, "uac");
    wait_ok(reject_uac, "reject uac");
    wait_ok(uas, "uas");
    wait_ok(reject_uas, "reject uas");
    // Immediate mode hands frames over at once; a short grace covers the last 200 OK.
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let got = worker.join().unwrap().unwrap();
    let t1 = now_us();
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(
        got.linktype, 1,
        "loopback frames are Ethernet (LINKTYPE_ETHERNET)"
    );
    assert!(
        got.filter.contains("portrange 25060-25061"),
        "{}",
        got.filter
    );
    // uac/uas: INVITE 180 200 ACK BYE 200; busy: INVITE 100 180 486 ACK (retransmissions add).
    assert!(got.frames >= 5 * 6 + 5, "frames: {}", got.frames);
    assert_eq!(got.stats.dropped, 0, "{:?}", got.stats);
    assert!(
        !got.ports.contains(&OUTSIDE_PORT),
        "the capture filter let port {OUTSIDE_PORT} through"
    );

    let mut legs = got.legs;
    legs.sort_by(|a, b| a.call_id.cmp(&b.call_id));
    let ids: Vec<&str> = legs.iter().map(|l| l.call_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "live-1@sipmeter.test",
            "live-2@sipmeter.test",
            "live-3@sipmeter.test",
            "live-4@sipmeter.test",
            "live-5@sipmeter.test",
            "live-busy-1@sipmeter.test",
        ]
    );
    for l in &legs[..5] {
        assert_eq!(l.last_response, Some(200), "{}", l.call_id);
        assert!(l.answer.is_some(), "{} answered", l.call_id);
        assert_eq!(l.end_reason, EndReason::ByeConfirmed, "{}", l.call_id);
        assert_eq!(l.dst_port, UAS_PORT);
        assert!(!l.partial);
        // Kernel timestamps, converted right: inside the test's own wall-clock window, and
        // the 300 ms pause between answer and BYE is there.
        assert!(
            t0 <= l.start && l.end <= t1,
            "{}: {}..{}",
            l.call_id,
            l.start,
            l.end
        );
        let talk = l.end - l.answer.unwrap();
        assert!(talk >= 290_000, "{}: talk {talk} µs", l.call_id);
    }
    let busy = &legs[5];
    assert_eq!(busy.last_response, Some(486));
    assert_eq!(busy.answer, None);
    assert_eq!(busy.caller, "442070070001");
    assert_eq!(busy.called, "442030070486");
}

#[test]
fn a_missing_interface_is_named_with_those_that_exist() {
    let err = LiveCapture::open(&LiveConfig::new("nosuch0"), &PortSet::sip_default())
        .err()
        .expect("no such interface");
    match &err {
        LiveError::NoSuchInterface {
            interface,
            available,
        } => {
            assert_eq!(interface, "nosuch0");
            assert!(available.split(", ").any(|n| n == "lo"), "{available}");
        }
        other => panic!("wrong error: {other}"),
    }
    assert!(
        err.to_string().contains("\"nosuch0\" does not exist"),
        "{err}"
    );
}

#[test]
fn a_bad_filter_shows_what_libpcap_said() {
    let mut config = LiveConfig::new("lo");
    config.filter = Some("udp port banana".into());
    let err = LiveCapture::open(&config, &PortSet::sip_default())
        .err()
        .expect("a bad filter");
    match &err {
        LiveError::BadFilter { filter, message } => {
            assert_eq!(filter, "udp port banana");
            assert!(message.contains("banana"), "libpcap's words: {message}");
        }
        other => panic!("wrong error: {other}"),
    }
}

/// Run without any capability (as user nobody, every capability dropped) the open fails with
/// the capability to grant. The test re-runs this test binary under `setpriv` and reads what
/// the child printed.
#[test]
fn without_the_capability_the_error_says_which_one() {
    if std::env::var_os("SIPMETER_LIVE_CHILD").is_some() {
        match LiveCapture::open(&LiveConfig::new("lo"), &PortSet::sip_default()) {
            Ok(_) => println!("CHILD-OPENED"),
            Err(e) => println!("CHILD-ERROR {e:?} / {e}"),
        }
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--",
        ])
        .arg(&exe)
        .args([
            "--exact",
            "without_the_capability_the_error_says_which_one",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SIPMETER_LIVE_CHILD", "1")
        .output()
        .expect("setpriv runs (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("CHILD-ERROR PermissionDenied"),
        "child output: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("CAP_NET_RAW"), "{text}");
}

//! The live HEPv3 listener: the SIP messages of the SIPp captures sent as HEP (over UDP, and
//! over one TCP connection) to a listening pipeline give the legs read from the captures.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use calls::Leg;
use capture::{Decoder, SipPayload, Transport};
use common::wrap;
use sensor::hep_listen::{HepListenConfig, HepSource};
use sensor::{Pipeline, PipelineConfig};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

type Msg = (i64, SocketAddr, SocketAddr, Transport, Vec<u8>);

fn payloads(path: &Path) -> Vec<Msg> {
    struct Collect(Vec<Msg>);
    impl capture::Sink for Collect {
        fn sip(&mut self, p: &SipPayload<'_>) {
            self.0
                .push((p.ts_us, p.src, p.dst, p.transport, p.data.to_vec()));
        }
    }
    let cfg = capture::CaptureConfig::default();
    let mut dec = Decoder::new(&cfg);
    let mut sink = Collect(Vec::new());
    capture::read_path(path, &cfg, &mut dec, &mut sink);
    sink.0
}

fn sorted(mut legs: Vec<Leg>) -> Vec<Leg> {
    legs.sort_by(|a, b| (a.start, &a.call_id).cmp(&(b.start, &b.call_id)));
    legs
}

fn file_legs(path: &Path) -> Vec<Leg> {
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut legs = Vec::new();
    p.read_file(path, &mut |mut l| legs.append(&mut l), &mut |_| {});
    legs.extend(p.finish());
    sorted(legs)
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// Send the capture's messages as HEP to a listening pipeline (timestamps moved to just
/// before now, so the wall-clock timers of a live pipeline agree with the capture's) and
/// return (legs, expected legs, listener).
fn through_listener(
    capture: &str,
    tcp: bool,
    password: Option<&str>,
    key: &[u8],
) -> (Vec<Leg>, Vec<Leg>, u64) {
    let msgs = payloads(&data(capture));
    let last = msgs.iter().map(|m| m.0).max().unwrap();
    let shift = now_us() - last - 1_000_000;
    let expected: Vec<Leg> = file_legs(&data(capture))
        .into_iter()
        .map(|mut l| {
            l.start += shift;
            l.end += shift;
            l.answer = l.answer.map(|a| a + shift);
            l
        })
        .collect();
    let mut cfg = HepListenConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.password = password.map(str::to_string);
    cfg.poll = Duration::from_millis(50);
    let source = HepSource::open(&cfg).unwrap();
    let to = source.local_addr();
    let stop = Arc::new(AtomicBool::new(false));
    let key = key.to_vec();
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let packets: Vec<Vec<u8>> = msgs
                .iter()
                .map(|(ts, s, d, t, m)| {
                    let proto = if *t == Transport::Tcp { 6 } else { 17 };
                    wrap::hep3_with_key(*s, *d, ts + shift, proto, m, &key)
                })
                .collect();
            if tcp {
                let mut c = TcpStream::connect(to).unwrap();
                let all: Vec<u8> = packets.concat();
                // Odd-sized writes, so packets straddle reads.
                for chunk in all.chunks(333) {
                    c.write_all(chunk).unwrap();
                    c.flush().unwrap();
                }
            } else {
                let u = UdpSocket::bind("127.0.0.1:0").unwrap();
                for p in &packets {
                    u.send_to(p, to).unwrap();
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            std::thread::sleep(Duration::from_millis(500));
            stop.store(true, Ordering::SeqCst);
        })
    };
    let mut pipeline = Pipeline::new(PipelineConfig::default());
    let mut legs = Vec::new();
    pipeline.run_hep(&source, &stop, &mut |mut l| legs.append(&mut l));
    sender.join().unwrap();
    legs.extend(pipeline.finish());
    let bad = source.stats().bad_auth.load(Ordering::Relaxed);
    (sorted(legs), expected, bad)
}

#[test]
fn hep_over_udp_gives_the_captures_legs() {
    for cap in ["reinvite.pcap", "basic_concurrent.pcap", "failures.pcap"] {
        let (legs, expected, _) = through_listener(cap, false, None, b"");
        assert!(!expected.is_empty());
        assert_eq!(legs, expected, "{cap}");
    }
}

#[test]
fn hep_over_tcp_gives_the_captures_legs() {
    let (legs, expected, _) = through_listener("tcp.pcap", true, None, b"");
    assert_eq!(legs, expected);
}

#[test]
fn a_wrong_password_is_refused_and_counted() {
    let (legs, _, bad) = through_listener("reinvite.pcap", false, Some("s3cret"), b"wrong");
    assert!(legs.is_empty());
    assert!(bad > 0);
    let (legs, expected, bad) = through_listener("reinvite.pcap", false, Some("s3cret"), b"s3cret");
    assert_eq!((legs, bad), (expected, 0));
}

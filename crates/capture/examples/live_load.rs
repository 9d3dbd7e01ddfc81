//! Live capture under load: SIPp calls at a fixed rate on loopback, captured with
//! `LiveCapture`, decoded, parsed and tracked; prints frames, legs, legs/s and the kernel's
//! drop counter. Needs root or CAP_NET_RAW and `sipp`.
//!
//! cargo run --release -p capture --features live --example live_load -- [CALLS_PER_S] [SECONDS]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use calls::{Origin, Tracker, TrackerConfig};
use capture::live::{LiveCapture, LiveConfig};
use capture::{CaptureConfig, Decoder, PortSet, SipPayload};

const UAS_PORT: u16 = 25_260;
const UAC_PORT: u16 = 25_270;

struct Calls {
    tracker: Tracker,
    messages: u64,
}

impl capture::Sink for Calls {
    fn sip(&mut self, p: &SipPayload<'_>) {
        if let Ok(msg) = sip::parse(p.data) {
            self.messages += 1;
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

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rate: u32 = args
        .next()
        .map_or(500, |a| a.parse().expect("calls per second"));
    let secs: u32 = args.next().map_or(10, |a| a.parse().expect("seconds"));
    let calls = rate * secs;
    let ports = PortSet::parse(&UAS_PORT.to_string()).unwrap();
    let mut live = LiveConfig::new("lo");
    live.poll = Duration::from_millis(50);
    let mut cap = LiveCapture::open(&live, &ports).unwrap_or_else(|e| panic!("{e}"));
    let mut decoder = Decoder::new(&CaptureConfig {
        ports,
        ..Default::default()
    });
    let mut sink = Calls {
        tracker: Tracker::new(TrackerConfig::default()),
        messages: 0,
    };
    let sipp = |args: &[String]| {
        Command::new("sipp")
            .args(["-nostdin", "-i", "127.0.0.1", "-timeout", "120s"])
            .args(args)
            .current_dir(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp")
    };
    let mut uas = sipp(&[
        "-sn".into(),
        "uas".into(),
        "-p".into(),
        UAS_PORT.to_string(),
    ]);
    std::thread::sleep(Duration::from_millis(300));
    let mut uac = sipp(&[
        "-sn".into(),
        "uac".into(),
        format!("127.0.0.1:{UAS_PORT}"),
        "-p".into(),
        UAC_PORT.to_string(),
        "-m".into(),
        calls.to_string(),
        "-r".into(),
        rate.to_string(),
        "-l".into(),
        (rate * 2).to_string(),
        "-d".into(),
        "1000".into(),
    ]);
    let started = Instant::now();
    let mut frames = 0u64;
    let mut legs = 0u64;
    let mut quiet_since: Option<Instant> = None;
    loop {
        match cap.next_frame().unwrap() {
            Some(f) => {
                frames += 1;
                quiet_since = None;
                decoder.frame(f.linktype, f.ts_us, f.data, &mut sink);
            }
            None => {
                sink.tracker.advance(now_us());
                let q = *quiet_since.get_or_insert_with(Instant::now);
                if uac.try_wait().unwrap().is_some() && q.elapsed() > Duration::from_secs(2) {
                    break;
                }
            }
        }
        legs += sink.tracker.take_closed().len() as u64;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = uas.kill();
    let _ = uas.wait();
    sink.tracker.finish();
    legs += sink.tracker.take_closed().len() as u64;
    let stats = cap.stats().unwrap();
    println!(
        "rate {rate} calls/s for {secs} s: {frames} frames, {} SIP messages, {legs} legs of {calls} calls in {elapsed:.1} s; kernel received {}, dropped {}, interface dropped {}",
        sink.messages, stats.received, stats.dropped, stats.if_dropped
    );
}

//! Live capture into a [`Pipeline`] (feature `live`): frames from a network interface go into
//! the same decoder, parser and tracker as frames from files, so legs come out the same way.
//!
//! ```no_run
//! # use std::sync::atomic::AtomicBool;
//! # use sensor::{Pipeline, PipelineConfig};
//! # use sensor::live::{LiveConfig, LiveSource};
//! let mut pipeline = Pipeline::new(PipelineConfig::default());
//! // Fails here, before any thread is started, with a message naming the interface, the
//! // missing capability or libpcap's complaint about the filter.
//! let mut source = LiveSource::open(&LiveConfig::new("eth0"), pipeline.config())?;
//! let stop = AtomicBool::new(false); // set it (e.g. from a signal handler) to return
//! pipeline.run_live(&mut source, &stop, &mut |legs| { /* store or ship them */ })?;
//! let still_open = pipeline.finish(); // the calls in progress, as `end_of_input` legs
//! # Ok::<(), sensor::live::LiveError>(())
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use calls::Leg;
pub use capture::live::{LiveConfig, LiveError, LiveStats, default_filter};

use crate::{Pipeline, PipelineConfig, TrackSink};

/// Closed legs are handed out at least this often while frames keep coming, so a busy link
/// does not hold finished calls back until a batch fills.
const HAND_OUT_EVERY: Duration = Duration::from_millis(500);

/// An open interface, ready to feed a pipeline.
pub struct LiveSource {
    capture: capture::live::LiveCapture,
}

impl LiveSource {
    /// Opens the interface with the pipeline's SIP ports as the default capture filter.
    pub fn open(live: &LiveConfig, pipeline: &PipelineConfig) -> Result<LiveSource, LiveError> {
        Ok(LiveSource {
            capture: capture::live::LiveCapture::open(live, &pipeline.capture.ports)?,
        })
    }

    pub fn interface(&self) -> &str {
        self.capture.interface()
    }

    /// The BPF filter in force.
    pub fn filter(&self) -> &str {
        self.capture.filter()
    }

    /// The kernel's counters: frames received and dropped (a full ring buffer means the
    /// pipeline did not keep up).
    pub fn stats(&mut self) -> Result<LiveStats, LiveError> {
        self.capture.stats()
    }
}

fn wall_clock_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

impl Pipeline {
    /// The configuration this pipeline was made with.
    pub fn config(&self) -> &PipelineConfig {
        &self.config
    }

    /// Captures from `source` until `stop` is set (checked at least every
    /// [`LiveConfig::poll`]). Closed legs go to `on_legs` as they close. On a quiet link the
    /// tracker's timers run on the wall clock (the kernel stamps frames with it too), so
    /// finished calls are still handed out. Open legs stay open: call [`Pipeline::finish`]
    /// when the capture is over for good.
    pub fn run_live(
        &mut self,
        source: &mut LiveSource,
        stop: &AtomicBool,
        on_legs: &mut dyn FnMut(Vec<Leg>),
    ) -> Result<(), LiveError> {
        let mut no_progress = |_: u64| {};
        let mut sink = TrackSink {
            tracker: &mut self.tracker,
            totals: &mut self.totals,
            on_legs,
            progress: &mut no_progress,
        };
        let mut last_hand_out = Instant::now();
        let result = loop {
            if stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            match source.capture.next_frame() {
                Ok(Some(f)) => {
                    sink.totals.packets += 1;
                    sink.totals.bytes += f.data.len() as u64;
                    self.decoder.frame(f.linktype, f.ts_us, f.data, &mut sink);
                    if last_hand_out.elapsed() >= HAND_OUT_EVERY {
                        sink.hand_out();
                        last_hand_out = Instant::now();
                    }
                }
                Ok(None) => {
                    sink.tracker.advance(wall_clock_us());
                    sink.hand_out();
                    last_hand_out = Instant::now();
                }
                Err(e) => break Err(e),
            }
        };
        sink.hand_out();
        self.totals.capture = self.decoder.stats().clone();
        result
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};
    use std::sync::Arc;

    use super::*;

    /// Three SIPp calls on loopback through a whole pipeline, stopped from another thread.
    /// Needs root or CAP_NET_RAW, like tcpdump.
    #[test]
    fn sipp_calls_on_loopback_come_out_of_the_pipeline() {
        let (uas_port, uac_port) = (25_160u16, 25_170u16);
        let mut config = PipelineConfig::default();
        config.capture.ports = capture::PortSet::parse(&uas_port.to_string()).unwrap();
        let mut pipeline = Pipeline::new(config);
        let mut live = LiveConfig::new("lo");
        live.poll = Duration::from_millis(50);
        let mut source = LiveSource::open(&live, pipeline.config()).unwrap();
        assert!(
            source.filter().contains("port 25160"),
            "{}",
            source.filter()
        );

        let stop = Arc::new(AtomicBool::new(false));
        let stopper = stop.clone();
        let calls = std::thread::spawn(move || {
            let sipp = |args: &[&str]| {
                Command::new("sipp")
                    .args(["-nostdin", "-timeout", "20s", "-timeout_error"])
                    .args(["-i", "127.0.0.1"])
                    .args(args)
                    .current_dir(std::env::temp_dir())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("sipp runs (Debian package sip-tester)")
            };
            let mut uas = sipp(&["-sn", "uas", "-p", &uas_port.to_string(), "-m", "3"]);
            std::thread::sleep(Duration::from_millis(300));
            let target = format!("127.0.0.1:{uas_port}");
            let mut uac = sipp(&[
                "-sn",
                "uac",
                &target,
                "-p",
                &uac_port.to_string(),
                "-m",
                "3",
                "-d",
                "200",
                "-cid_str",
                "pipe-%u@sipmeter.test",
            ]);
            let ok = uac.wait().unwrap().success() && uas.wait().unwrap().success();
            // Past the tracker's close timer after the BYE's 200 (wall clock, quiet link).
            std::thread::sleep(Duration::from_millis(1500));
            stopper.store(true, Ordering::Relaxed);
            ok
        });
        let mut legs = Vec::new();
        pipeline
            .run_live(&mut source, &stop, &mut |mut l| legs.append(&mut l))
            .unwrap();
        assert!(calls.join().unwrap(), "the SIPp calls succeeded");
        let handed_out_live = legs.len();
        legs.extend(pipeline.finish());
        legs.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        let ids: Vec<&str> = legs.iter().map(|l| l.call_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "pipe-1@sipmeter.test",
                "pipe-2@sipmeter.test",
                "pipe-3@sipmeter.test"
            ]
        );
        assert!(
            legs.iter()
                .all(|l| l.last_response == Some(200) && l.answer.is_some()),
            "{legs:?}"
        );
        assert_eq!(
            handed_out_live, 3,
            "closed by the wall clock while capturing, not by finish()"
        );
        let t = pipeline.totals();
        assert_eq!((t.sip_messages, t.legs), (18, 3), "{t:?}");
        assert!(t.packets >= 18);
        assert_eq!(source.stats().unwrap().dropped, 0);
    }
}

//! The sensor pipeline: capture sources → SIP parser → dialog tracker → closed legs.
//!
//! This is where packets meet calls; what happens to the legs (printed, stored, shipped to a
//! central server) is the caller's business. One `Pipeline` spans all the files it reads, so a
//! call that continues from one file of a capture directory into the next stays one leg.

pub mod hep_listen;
#[cfg(feature = "live")]
pub mod live;
pub mod spool;
pub mod uplink;
pub mod watch;
pub mod wire;

use std::path::Path;

use calls::{Leg, Origin, Tracker, TrackerConfig};
use capture::{CaptureConfig, Decoder, FileReport, SipPayload};

/// What a pipeline is told to do.
#[derive(Debug, Clone, Default)]
pub struct PipelineConfig {
    pub capture: CaptureConfig,
    pub tracker: TrackerConfig,
}

/// Running totals over every file read so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub files: u64,
    /// Files that stopped early or could not be read at all.
    pub files_with_errors: u64,
    pub packets: u64,
    /// Captured bytes of the packets.
    pub bytes: u64,
    pub sip_messages: u64,
    /// Payloads on SIP ports that did not parse as SIP (counted and skipped).
    pub malformed: u64,
    /// Datagrams (UDP, SCTP) whose Content-Length was missing or larger than what the datagram
    /// holds: read as one message ending with the datagram, counted here, not as malformed.
    pub content_length_mismatch: u64,
    pub legs: u64,
    /// The decoder's counters over everything read (tunnels, TLS, SCTP, HEP, errors).
    pub capture: capture::Stats,
}

/// Capture files in, legs out.
pub struct Pipeline {
    config: PipelineConfig,
    decoder: Decoder,
    tracker: Tracker,
    totals: Totals,
}

/// Closed legs are handed out in batches of this many while a file is read, so memory follows
/// the number of concurrent calls, not the size of the file.
const LEG_BATCH: usize = 4096;

struct TrackSink<'a, 'p> {
    tracker: &'a mut Tracker,
    totals: &'a mut Totals,
    on_legs: &'a mut (dyn FnMut(Vec<Leg>) + 'p),
    progress: &'a mut (dyn FnMut(u64) + 'p),
}

impl TrackSink<'_, '_> {
    fn hand_out(&mut self) {
        let legs = self.tracker.take_closed();
        if !legs.is_empty() {
            self.totals.legs += legs.len() as u64;
            (self.on_legs)(legs);
        }
    }
}

impl capture::Sink for TrackSink<'_, '_> {
    fn sip(&mut self, payload: &SipPayload<'_>) {
        match sip::parse(payload.data) {
            Ok(msg) => {
                self.totals.sip_messages += 1;
                if payload.transport != sip::Transport::Tcp
                    && msg.content_length.is_none_or(|n| n > msg.body.len())
                {
                    self.totals.content_length_mismatch += 1;
                }
                let origin = Origin {
                    ts: payload.ts_us,
                    src: payload.src,
                    dst: payload.dst,
                    transport: payload.transport,
                };
                self.tracker.message(&origin, &msg, payload.data);
                if self.tracker.closed_count() >= LEG_BATCH {
                    self.hand_out();
                }
            }
            Err(_) => self.totals.malformed += 1,
        }
    }

    fn progress(&mut self, bytes_done: u64) {
        (self.progress)(bytes_done);
    }
}

impl Pipeline {
    pub fn new(config: PipelineConfig) -> Pipeline {
        Pipeline {
            decoder: Decoder::new(&config.capture),
            tracker: Tracker::new(config.tracker.clone()),
            config,
            totals: Totals::default(),
        }
    }

    /// Read one capture file to its end (or its first error). Closed legs go to `on_legs` as
    /// they close (in batches); `progress` gets the bytes of this file consumed so far.
    pub fn read_file(
        &mut self,
        path: &Path,
        on_legs: &mut dyn FnMut(Vec<Leg>),
        progress: &mut dyn FnMut(u64),
    ) -> FileReport {
        let mut sink = TrackSink {
            tracker: &mut self.tracker,
            totals: &mut self.totals,
            on_legs,
            progress,
        };
        let report = capture::read_path(path, &self.config.capture, &mut self.decoder, &mut sink);
        sink.hand_out();
        self.totals.files += 1;
        if report.error.is_some() {
            self.totals.files_with_errors += 1;
        }
        self.totals.packets += report.stats.packets;
        self.totals.bytes += report.stats.bytes;
        self.totals.capture = self.decoder.stats().clone();
        report
    }

    /// End of input: every open leg closes (`end_of_input` unless its end was decided).
    pub fn finish(&mut self) -> Vec<Leg> {
        self.tracker.finish();
        let legs = self.tracker.take_closed();
        self.totals.legs += legs.len() as u64;
        legs
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }
}

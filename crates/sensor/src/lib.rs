//! The sensor pipeline: capture sources → SIP parser → dialog tracker → closed legs.
//!
//! This is where packets meet calls; what happens to the legs (printed, stored, shipped to a
//! central server) is the caller's business. One `Pipeline` spans all the files it reads, so a
//! call that continues from one file of a capture directory into the next stays one leg.

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
    pub legs: u64,
}

/// Capture files in, legs out.
pub struct Pipeline {
    config: PipelineConfig,
    decoder: Decoder,
    tracker: Tracker,
    totals: Totals,
}

struct TrackSink<'a, 'p> {
    tracker: &'a mut Tracker,
    totals: &'a mut Totals,
    progress: &'a mut (dyn FnMut(u64) + 'p),
}

impl capture::Sink for TrackSink<'_, '_> {
    fn sip(&mut self, payload: &SipPayload<'_>) {
        match sip::parse(payload.data) {
            Ok(msg) => {
                self.totals.sip_messages += 1;
                let origin = Origin {
                    ts: payload.ts_us,
                    src: payload.src,
                    dst: payload.dst,
                    transport: payload.transport,
                };
                self.tracker.message(&origin, &msg, payload.data);
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

    /// Read one capture file to its end (or its first error). `progress` gets the bytes of
    /// this file consumed so far. Closed legs accumulate until [`Pipeline::take_legs`].
    pub fn read_file(&mut self, path: &Path, progress: &mut dyn FnMut(u64)) -> FileReport {
        let mut sink = TrackSink {
            tracker: &mut self.tracker,
            totals: &mut self.totals,
            progress,
        };
        let report = capture::read_path(path, &self.config.capture, &mut self.decoder, &mut sink);
        self.totals.files += 1;
        if report.error.is_some() {
            self.totals.files_with_errors += 1;
        }
        self.totals.packets += report.stats.packets;
        self.totals.bytes += report.stats.bytes;
        report
    }

    /// Legs closed since the last call.
    pub fn take_legs(&mut self) -> Vec<Leg> {
        let legs = self.tracker.take_closed();
        self.totals.legs += legs.len() as u64;
        legs
    }

    /// End of input: every open leg closes (`end_of_input` unless its end was decided).
    pub fn finish(&mut self) -> Vec<Leg> {
        self.tracker.finish();
        self.take_legs()
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    pub fn tracker(&self) -> &Tracker {
        &self.tracker
    }
}

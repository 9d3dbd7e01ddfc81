//! Reading capture paths through the sensor pipeline, with progress and a summary: the shared
//! part of `read`, `import` and `--readpcapdir`.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Result, bail};
use calls::Leg;
use indicatif::{ProgressBar, ProgressStyle};
use sensor::{Pipeline, Totals};

/// What a run over some paths did.
pub struct RunSummary {
    pub totals: Totals,
    pub seconds: f64,
    /// Paths or files that could not be read at all or stopped early.
    pub errors: usize,
    /// The SIP ports, and whether SIP was read only on them (`--sip-ports-only`).
    pub ports: capture::PortSet,
    pub ports_only: bool,
}

impl RunSummary {
    /// Nothing usable came out: every file failed before its first packet.
    pub fn nothing_read(&self) -> bool {
        self.totals.packets == 0 && self.errors > 0
    }

    /// Non-zero only when nothing at all could be read; partial damage is reported, not fatal.
    pub fn exit_code(&self) -> std::process::ExitCode {
        if self.nothing_read() {
            std::process::ExitCode::FAILURE
        } else {
            std::process::ExitCode::SUCCESS
        }
    }

    pub fn line(&self) -> String {
        let t = &self.totals;
        let mb = t.bytes as f64 / 1e6;
        let rate = if self.seconds > 0.0 {
            mb / self.seconds
        } else {
            0.0
        };
        let mut line = format!(
            "{} files, {} packets, {} SIP messages, {} malformed, {} legs, {:.2} s, {:.1} MB/s",
            t.files, t.packets, t.sip_messages, t.malformed, t.legs, self.seconds, rate
        );
        let c = &t.capture;
        let read: Vec<String> = [
            (c.tunnels, "tunnel headers opened"),
            (c.hep_packets, "HEP packets"),
            (c.sctp_chunks, "SCTP data chunks"),
            (t.content_length_mismatch, "content-length mismatch"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
        if !read.is_empty() {
            line.push_str(&format!("; {}", read.join(", ")));
        }
        let not_read = self.not_read();
        if !not_read.is_empty() {
            line.push_str(&format!("; not read: {}", not_read.join(", ")));
        }
        line
    }

    /// What was seen but could not be used, one phrase each (only the counts that are not 0).
    pub fn not_read(&self) -> Vec<String> {
        let c = &self.totals.capture;
        [
            (
                c.tls_records,
                "TLS records (SIP over TLS cannot be read without keys)",
            ),
            (
                c.unknown_tunnels,
                "packets in tunnels sipmeter does not open",
            ),
            (c.malformed_tunnels, "malformed tunnel or HEP headers"),
            (c.sctp_non_sip, "SCTP messages that are not SIP"),
            (c.sctp_dropped, "incomplete SCTP messages"),
            (c.decode_errors, "malformed packets"),
            (c.unsupported_linktype, "frames of an unsupported link type"),
        ]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect()
    }

    /// When packets were read but no leg came out: a warning naming the most likely cause.
    pub fn no_legs_warning(&self) -> Option<String> {
        let t = &self.totals;
        let c = &t.capture;
        if t.legs > 0 || t.packets == 0 {
            return None;
        }
        let why = if t.sip_messages > 0 {
            format!(
                "its {} SIP messages hold no INVITE dialog (only REGISTER, OPTIONS, SUBSCRIBE \
                 and such; a leg starts with an INVITE)",
                t.sip_messages
            )
        } else if t.malformed > 0 {
            format!(
                "every SIP payload ({}) was malformed (truncated by a small snap length?)",
                t.malformed
            )
        } else if c.tls_records > 0 {
            format!(
                "the SIP is encrypted: {} TLS records on the SIP ports, and SIP over TLS \
                 cannot be read without keys",
                c.tls_records
            )
        } else if self.ports_only {
            format!(
                "no SIP on the SIP ports ({}) and --sip-ports-only keeps sipmeter from looking \
                 anywhere else; drop it to find SIP on any port",
                self.ports
            )
        } else if c.unknown_tunnels > 0 || c.malformed_tunnels > 0 {
            format!(
                "{} packets are in tunnels sipmeter does not open and {} tunnel headers are \
                 malformed",
                c.unknown_tunnels, c.malformed_tunnels
            )
        } else if c.sctp_non_sip > 0 {
            "its SCTP carries no SIP".to_string()
        } else if c.unsupported_linktype > 0 {
            "its link type is not supported".to_string()
        } else {
            format!(
                "none of its {} packets carries SIP (is it a capture of the media only?)",
                t.packets
            )
        };
        Some(format!("warning: no legs in this input: {why}"))
    }
}

/// Expand files and directories to capture files, reporting (not failing on) bad paths.
fn expand(paths: &[PathBuf], errors: &mut usize) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in paths {
        match capture::list_captures(p) {
            Ok(list) if list.is_empty() => {
                eprintln!(
                    "sipmeter: {}: no capture files (.pcap, .pcapng, .cap, .gz) in this directory",
                    p.display()
                );
                *errors += 1;
            }
            Ok(list) => files.extend(list),
            Err(e) => {
                eprintln!("sipmeter: {e}");
                *errors += 1;
            }
        }
    }
    files
}

/// Run every capture under `paths` through one pipeline, handing closed legs to `on_legs` as
/// they close (and the rest at the end of input).
pub fn run(
    config: sensor::PipelineConfig,
    paths: &[PathBuf],
    mut on_legs: impl FnMut(Vec<Leg>) -> Result<()>,
) -> Result<RunSummary> {
    if paths.is_empty() {
        bail!("no capture path given");
    }
    let started = Instant::now();
    let mut errors = 0;
    let files = expand(paths, &mut errors);
    let total_bytes: u64 = files.iter().map(|f| file_size(f)).sum();
    let bar = progress_bar(total_bytes);
    let ports = config.capture.ports.clone();
    let ports_only = !config.capture.detect_any_port;
    let mut pipeline = Pipeline::new(config);
    let mut done_before = 0u64;
    // The first error of `on_legs` (a closed stdout, a database failure) stops the run; legs
    // closed after it are dropped, as nothing can take them.
    let failed: RefCell<Option<anyhow::Error>> = RefCell::new(None);
    let mut deliver = |legs: Vec<Leg>| {
        if failed.borrow().is_none()
            && let Err(e) = on_legs(legs)
        {
            *failed.borrow_mut() = Some(e);
        }
    };
    for file in &files {
        let report = pipeline.read_file(file, &mut deliver, &mut |b| {
            if let Some(bar) = &bar {
                bar.set_position(done_before + b);
            }
        });
        done_before += file_size(file);
        if let Some(err) = report.error {
            errors += 1;
            let msg = format!("sipmeter: {err}");
            match &bar {
                Some(bar) => bar.println(msg),
                None => eprintln!("{msg}"),
            }
        }
        if failed.borrow().is_some() {
            break;
        }
    }
    deliver(pipeline.finish());
    if let Some(e) = failed.into_inner() {
        return Err(e);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(RunSummary {
        totals: pipeline.totals().clone(),
        seconds: started.elapsed().as_secs_f64(),
        errors,
        ports,
        ports_only,
    })
}

fn file_size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn progress_bar(total: u64) -> Option<ProgressBar> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Some(bar)
}

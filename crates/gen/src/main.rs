//! `sipmeter-gen`: writes big, realistic SIP/RTP captures (classic pcap) plus the ground truth
//! of the calls in them, for end-to-end benchmarks and for checking CDR output at scale.
//!
//! Everything is deterministic for a seed, so a benchmark capture can be regenerated instead of
//! stored, and a reader's output can be compared against `--truth` exactly.

use sipmeter_gen::{args, sim};

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::time::Instant;

use args::{Command, Config, USAGE};

/// Big buffers: the writer produces hundreds of MB/s and syscalls per 8 KiB would dominate.
const OUT_BUFFER: usize = 1 << 20;

fn open(path: &std::path::Path, what: &str) -> Result<Box<dyn Write>, String> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(io::stdout().lock()));
    }
    File::create(path)
        .map(|f| Box::new(f) as Box<dyn Write>)
        .map_err(|e| format!("cannot create {what} {}: {e}", path.display()))
}

fn run(cfg: Config) -> Result<(), String> {
    let out = BufWriter::with_capacity(OUT_BUFFER, open(&cfg.out, "output file")?);
    let truth = match &cfg.truth {
        Some(p) => Some(BufWriter::with_capacity(1 << 16, open(p, "truth file")?)),
        None => None,
    };
    let began = Instant::now();
    let quiet = cfg.quiet;
    let out_name = cfg.out.display().to_string();
    let sim =
        sim::Sim::new(cfg, out, truth).map_err(|e| format!("cannot write {out_name}: {e}"))?;
    let (stats, _, _) = sim
        .run()
        .map_err(|e| format!("write failed ({out_name}): {e}"))?;
    let wall = began.elapsed().as_secs_f64();
    if !quiet {
        let mb = stats.bytes as f64 / 1e6;
        let span = stats.last.saturating_sub(stats.first) as f64 / 1e6;
        eprintln!(
            "sipmeter-gen: wrote {out_name}: calls={} answered={} rejected={} cancelled={} \
             tcp_calls={} packets={} sip_messages={} rtp_packets={} bytes={} capture_s={span:.1} \
             peak_concurrency={} mean_concurrency={:.1} wall_s={wall:.2} mb_per_s={:.0}",
            stats.calls,
            stats.answered,
            stats.rejected,
            stats.cancelled,
            stats.tcp_calls,
            stats.packets,
            stats.sip_messages,
            stats.rtp_packets,
            stats.bytes,
            stats.peak_concurrency,
            stats.mean_concurrency,
            if wall > 0.0 { mb / wall } else { 0.0 },
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match args::parse(std::env::args().skip(1)) {
        Ok(Command::Help) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Command::Run(cfg)) => match run(cfg) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("sipmeter-gen: error: {e}");
                ExitCode::FAILURE
            }
        },
        Err(e) => {
            eprintln!("sipmeter-gen: error: {e}\n\n{USAGE}");
            ExitCode::from(2)
        }
    }
}

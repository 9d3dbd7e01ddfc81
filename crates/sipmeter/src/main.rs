//! `sipmeter`: the command line of the VoIP call monitor.

mod config;
mod ingest;
mod output;

use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use config::{CommonFlags, FileConfig, Settings};
use output::{Format, LegWriter};

/// VoIP call monitor with channel licensing: SIP captures to call detail records.
#[derive(Parser, Debug)]
#[command(name = "sipmeter", version, about)]
struct Cli {
    /// TOML configuration file; flags given on the command line win over its keys
    #[arg(long, global = true)]
    config_file: Option<PathBuf>,
    /// (Re)compute CDRs from every capture in DIR into the configured database
    #[arg(long, value_name = "DIR")]
    readpcapdir: Option<PathBuf>,
    #[command(flatten)]
    common: CommonFlags,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print one CDR leg per line for every call in the captures
    Read {
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
        /// Capture files or directories (.pcap, .pcapng, .cap, also .gz)
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
    /// Store the CDR legs of the captures in the database (idempotent)
    Import {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sipmeter: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let file = match &cli.config_file {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    match (cli.command, cli.readpcapdir) {
        (Some(_), Some(_)) => bail!("--readpcapdir cannot be combined with a subcommand"),
        (Some(Command::Read { format, paths }), None) => read(
            Settings::resolve(&file, &cli.common, false)?,
            &paths,
            format,
        ),
        (Some(Command::Import { paths }), None) => {
            import(Settings::resolve(&file, &cli.common, true)?, &paths)
        }
        (None, Some(dir)) => import(Settings::resolve(&file, &cli.common, true)?, &[dir]),
        (None, None) => bail!("nothing to do: give a subcommand (see --help) or --readpcapdir DIR"),
    }
}

fn read(settings: Settings, paths: &[PathBuf], format: Format) -> Result<ExitCode> {
    let stdout = std::io::stdout().lock();
    let mut writer = LegWriter::new(BufWriter::with_capacity(1 << 16, stdout), format);
    let summary = ingest::run(settings.pipeline, paths, |legs| {
        for leg in &legs {
            writer.write(leg)?;
        }
        Ok(())
    });
    let flushed = writer.flush();
    let summary = match summary {
        Err(e) if is_broken_pipe(&e) => return Ok(ExitCode::SUCCESS),
        other => other?,
    };
    if let Err(e) = flushed
        && e.kind() != std::io::ErrorKind::BrokenPipe
    {
        return Err(e).context("cannot write to standard output");
    }
    eprintln!("sipmeter: {}", summary.line());
    Ok(exit_code(&summary))
}

fn import(settings: Settings, paths: &[PathBuf]) -> Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut store = rt
        .block_on(store::Store::open_sqlite(&settings.data_dir))
        .with_context(|| {
            format!(
                "cannot open the database in {}",
                settings.data_dir.display()
            )
        })?;
    let mut inserted = 0u64;
    let mut duplicates = 0u64;
    const BATCH: usize = 20_000;
    let mut pending: Vec<calls::Leg> = Vec::with_capacity(BATCH);
    let mut flush = |pending: &mut Vec<calls::Leg>| -> Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        let report = rt
            .block_on(store.insert_legs(pending))
            .context("cannot store legs")?;
        inserted += report.inserted;
        duplicates += report.duplicates;
        pending.clear();
        Ok(())
    };
    let summary = ingest::run(settings.pipeline, paths, |legs| {
        pending.extend(legs);
        if pending.len() >= BATCH {
            flush(&mut pending)?;
        }
        Ok(())
    })?;
    flush(&mut pending)?;
    drop(flush);
    rt.block_on(store.close());
    eprintln!(
        "sipmeter: {}; stored {inserted} new legs ({duplicates} already present) in {}",
        summary.line(),
        settings.data_dir.display()
    );
    Ok(exit_code(&summary))
}

/// Non-zero only when nothing at all could be read; partial damage is reported, not fatal.
fn exit_code(summary: &ingest::RunSummary) -> ExitCode {
    if summary.nothing_read() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

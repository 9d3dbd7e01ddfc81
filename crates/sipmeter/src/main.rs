//! `sipmeter`: the command line of the VoIP call monitor.

mod channels_cmd;
mod config;
mod import;
mod ingest;
mod license_cmd;
mod output;
mod portal_cmd;
mod sensor_cmd;
mod sensors_cmd;
mod serve_cmd;

use std::io::BufWriter;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

use config::{CommonFlags, FileConfig, Settings};
use output::{Format, LegWriter};

/// The `--version` text: a development build says so.
const VERSION: &str = if license::DEVELOPMENT_BUILD {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (development build: licenses from the development root are accepted)"
    )
} else {
    env!("CARGO_PKG_VERSION")
};

/// VoIP call monitor with channel licensing: SIP captures to call detail records.
#[derive(Parser, Debug)]
#[command(name = "sipmeter", version = VERSION, about)]
struct Cli {
    /// TOML configuration file; flags given on the command line win over its keys
    #[arg(long, global = true)]
    config_file: Option<PathBuf>,
    /// (Re)compute CDRs from every capture in DIR into the configured database
    #[arg(long, value_name = "DIR")]
    readpcapdir: Option<PathBuf>,
    /// Store the license token XXXX-XXXX-XXXX-XXXX (for the portal's Get License)
    #[arg(long, value_name = "TOKEN")]
    set_license_key: Option<String>,
    /// With --set-license-key: fetch and install the license file from this portal
    /// [config: portal_url]
    #[arg(long = "portal", value_name = "URL", requires = "set_license_key")]
    portal_url: Option<String>,
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
    /// Concurrent channels: peaks per day and per 60-minute window, and why (explain)
    Channels(channels_cmd::ChannelsArgs),
    /// The channel license: status, verify, hwid, install
    License(license_cmd::LicenseArgs),
    /// The vendor portal: serve, customers, licenses, support actions; offline keygen, issue
    Portal(portal_cmd::PortalArgs),
    /// The central server: web GUI, JSON API, license enforcement, embedded sensor
    Serve(serve_cmd::ServeArgs),
    /// A remote sensor: captures to legs, spooled on disk and shipped to the central server
    Sensor(sensor_cmd::SensorArgs),
    /// Remote sensor tokens: add, revoke, list
    Sensors(sensors_cmd::SensorsArgs),
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
    if let Some(token) = &cli.set_license_key {
        if cli.command.is_some() || cli.readpcapdir.is_some() {
            bail!("--set-license-key cannot be combined with other commands");
        }
        return license_cmd::set_license_key(token, cli.portal_url.as_deref(), &file, &cli.common);
    }
    match (cli.command, cli.readpcapdir) {
        (Some(_), Some(_)) => bail!("--readpcapdir cannot be combined with a subcommand"),
        (Some(Command::Read { format, paths }), None) => read(
            Settings::resolve(&file, &cli.common, false)?,
            &paths,
            format,
        ),
        (Some(Command::Import { paths }), None) => {
            import::import(Settings::resolve(&file, &cli.common, true)?, &paths)
        }
        (Some(Command::Channels(args)), None) => {
            channels_cmd::run(args, &file, &cli.common).map(|()| ExitCode::SUCCESS)
        }
        (Some(Command::License(args)), None) => license_cmd::run(args, &file, &cli.common),
        (Some(Command::Portal(args)), None) => portal_cmd::run(args, cli.common.data_dir),
        (Some(Command::Serve(args)), None) => serve_cmd::run(args, &file, &cli.common),
        (Some(Command::Sensor(args)), None) => sensor_cmd::run(args, &file, &cli.common),
        (Some(Command::Sensors(args)), None) => sensors_cmd::run(args, &file, &cli.common),
        (None, Some(dir)) => import::import(Settings::resolve(&file, &cli.common, true)?, &[dir]),
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
    if let Some(w) = summary.no_legs_warning() {
        eprintln!("sipmeter: {w}");
    }
    Ok(summary.exit_code())
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

//! `sipmeter channels`: concurrent channels (SPEC §2) from the database or straight from
//! captures, as the "Concurrent Calls Stats" report, and `explain` for an instant or a day.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use calls::Micros;
use calls::time::{format_rfc3339, parse_rfc3339};
use channels::{ActiveMode, Keyer, MinuteRow, Span, Window};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::config::{CommonFlags, FileConfig, Settings};
use crate::ingest;
use server::{HourOut, ReportOut};

const DAY: Micros = 86_400_000_000;
/// Days in the default report: the Concurrent Calls Stats window.
const REPORT_DAYS: i64 = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Json,
    Table,
}

/// Where the legs come from and how they count.
#[derive(Debug, Clone, clap::Args)]
pub struct Source {
    /// Count straight from captures instead of the database: `[ID=]PATH` (file or directory),
    /// repeatable; ID is the sensor id of that path (default 1)
    #[arg(long = "pcap", value_name = "[ID=]PATH")]
    pcap: Vec<String>,
    /// License time zone (IANA name) whose days are reported [default: UTC]
    #[arg(long)]
    tz: Option<String>,
    /// Count only answered time, [answer, end), instead of [start, end)
    #[arg(long)]
    answered_only: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: ReportFormat,
}

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ChannelsArgs {
    #[command(subcommand)]
    explain: Option<ExplainCommand>,
    #[command(flatten)]
    source: Source,
    /// First day of the report (YYYY-MM-DD) [default: 13 days before --to]
    #[arg(long)]
    from: Option<String>,
    /// Last day of the report [default: today, or the last day with calls if that is earlier]
    #[arg(long)]
    to: Option<String>,
    /// Recompute every minute figure from all legs first (after deleting CDRs, say)
    #[arg(long)]
    recompute: bool,
}

#[derive(Debug, clap::Subcommand)]
enum ExplainCommand {
    /// Which legs made the count at an instant, or at a day's peak, and why they did not merge
    Explain {
        /// An instant (RFC 3339)
        #[arg(long, conflicts_with = "day", required_unless_present = "day")]
        at: Option<String>,
        /// A day (YYYY-MM-DD): explain its peak
        #[arg(long)]
        day: Option<String>,
        #[command(flatten)]
        source: Source,
    },
}

pub fn run(args: ChannelsArgs, file: &FileConfig, common: &CommonFlags) -> Result<()> {
    match args.explain {
        Some(ExplainCommand::Explain { at, day, source }) => {
            explain(file, common, &source, at.as_deref(), day.as_deref())
        }
        None => report(file, common, &args),
    }
}

/// Where the minute rows are.
enum Rows {
    /// Computed from captures: all of them.
    Memory(Vec<MinuteRow>),
    /// Kept up to date in this database.
    Database(store::Database),
}

/// First and last local day with data.
type DayRange = (Date, Date);

/// Everything needed to answer from one source.
struct Counted {
    tz: TimeZone,
    mode: ActiveMode,
    rows: Rows,
    /// The span of days with data, if any.
    data_days: Option<DayRange>,
}

fn parse_day(s: &str, what: &str) -> Result<Date> {
    s.parse::<Date>()
        .with_context(|| format!("{what} must be a date like 2026-11-28, not {s:?}"))
}

fn local_day(t: Micros, tz: &TimeZone) -> Result<Date> {
    Ok(channels::day_of(t, tz)?)
}

fn today(tz: &TimeZone) -> Date {
    jiff::Timestamp::now().to_zoned(tz.clone()).date()
}

/// Legs from `--pcap` arguments, each path with its sensor id.
fn legs_from_pcaps(
    specs: &[String],
    file: &FileConfig,
    common: &CommonFlags,
) -> Result<Vec<calls::Leg>> {
    let mut legs = Vec::new();
    for spec in specs {
        let (sensor, path) = match spec.split_once('=') {
            Some((id, path)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
                let id: u32 = id
                    .parse()
                    .with_context(|| format!("sensor id in --pcap {spec:?} is too large"))?;
                (id, path)
            }
            _ => (1, spec.as_str()),
        };
        let flags = CommonFlags {
            sensor_id: Some(sensor),
            keep_messages: Some(false),
            ..common.clone()
        };
        let settings = Settings::resolve(file, &flags, false)?;
        let summary = ingest::run(settings.pipeline, &[PathBuf::from(path)], |batch| {
            legs.extend(batch);
            Ok(())
        })?;
        if summary.nothing_read() {
            bail!("nothing could be read from {path}");
        }
        eprintln!("sipmeter: sensor {sensor}: {}", summary.line());
    }
    Ok(legs)
}

fn spans_of(legs: &[calls::Leg], mode: ActiveMode) -> Vec<Span> {
    let mut keyer = Keyer::new();
    legs.iter()
        .filter_map(|l| Span::of_leg(l, &mut keyer, mode))
        .collect()
}

/// Minute rows straight from legs in memory, over the whole UTC days they touch.
fn rows_from_legs(legs: &[calls::Leg], mode: ActiveMode) -> Result<Vec<MinuteRow>> {
    let spans = spans_of(legs, mode);
    let (Some(first), Some(last)) = (
        spans.iter().map(|s| s.from).min(),
        spans.iter().map(|s| s.to).max(),
    ) else {
        return Ok(Vec::new());
    };
    let window = Window {
        start: first.div_euclid(DAY) * DAY,
        end: (last - 1).div_euclid(DAY) * DAY + DAY,
    };
    let rows = channels::minute_rows(&spans, window)?;
    Ok(rows.into_iter().filter(|r| r.peak > 0).collect())
}

fn data_days(rows: &[MinuteRow], tz: &TimeZone) -> Result<Option<DayRange>> {
    match (rows.first(), rows.last()) {
        (Some(f), Some(l)) => Ok(Some((local_day(f.start, tz)?, local_day(l.start, tz)?))),
        _ => Ok(None),
    }
}

fn block_on<F: std::future::Future>(f: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(rt.block_on(f))
}

/// Open the database and bring its channel figures up to date; the days with data.
fn update_database(
    db: &store::Database,
    mode: ActiveMode,
    recompute: bool,
    tz: &TimeZone,
) -> Result<Option<DayRange>> {
    block_on(async {
        let mut store = store::Store::open(db.clone())
            .await
            .with_context(|| format!("cannot open the database {}", db.describe()))?;
        let update = if recompute {
            store.recompute_channel_stats(mode).await?
        } else {
            store.update_channel_stats(mode).await?
        };
        if update.days > 0 {
            eprintln!(
                "sipmeter: channel figures updated: {} days from {} legs",
                update.days, update.legs
            );
        }
        let extent = store.channel_extent().await?;
        store.close().await;
        match extent {
            Some((first, last)) => Ok(Some((local_day(first, tz)?, local_day(last, tz)?))),
            None => Ok(None),
        }
    })?
}

impl Counted {
    /// The minute rows of the local days `first..=last`: only those are read from the
    /// database, so a report costs the same whatever the size of the history.
    fn rows(&self, first: Date, last: Date) -> Result<Vec<MinuteRow>> {
        let from = channels::day_start(first, &self.tz)?;
        let to = channels::day_start(last.tomorrow()?, &self.tz)?;
        match &self.rows {
            Rows::Memory(rows) => Ok(rows
                .iter()
                .filter(|r| r.start >= from && r.start < to)
                .copied()
                .collect()),
            Rows::Database(db) => block_on(async {
                let store = store::Store::open(db.clone()).await?;
                let rows = store.channel_minutes(from, to).await?;
                store.close().await;
                Ok::<_, anyhow::Error>(rows)
            })?,
        }
    }
}

fn count(
    source: &Source,
    file: &FileConfig,
    common: &CommonFlags,
    recompute: bool,
) -> Result<Counted> {
    let tz = file.time_zone(source.tz.as_deref())?;
    let mode = file.channel_mode(common.channel_mode.as_deref(), source.answered_only)?;
    let (rows, data_days) = if source.pcap.is_empty() {
        let db = Settings::resolve(file, common, false)?.database;
        let days = update_database(&db, mode, recompute, &tz)?;
        (Rows::Database(db), days)
    } else {
        let legs = legs_from_pcaps(&source.pcap, file, common)?;
        let rows = rows_from_legs(&legs, mode)?;
        let days = data_days(&rows, &tz)?;
        (Rows::Memory(rows), days)
    };
    Ok(Counted {
        tz,
        mode,
        rows,
        data_days,
    })
}

fn report(file: &FileConfig, common: &CommonFlags, args: &ChannelsArgs) -> Result<()> {
    let counted = count(&args.source, file, common, args.recompute)?;
    let to = match &args.to {
        Some(s) => parse_day(s, "--to")?,
        None => {
            let today = today(&counted.tz);
            match counted.data_days {
                Some((_, last)) if last < today => last,
                _ => today,
            }
        }
    };
    let from = match &args.from {
        Some(s) => parse_day(s, "--from")?,
        None if !args.source.pcap.is_empty() => counted.data_days.map_or(to, |d| d.0),
        None => to
            .checked_sub(jiff::Span::new().days(REPORT_DAYS - 1))
            .context("--to is too early")?,
    };
    if from > to {
        bail!("--from {from} is after --to {to}");
    }
    let rep = channels::report(&counted.rows(from, to)?, &counted.tz, from, to)?;
    let out = ReportOut::new(&rep, &counted.tz, counted.mode, from, to);
    match args.source.format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        ReportFormat::Table => print_table(&out),
    }
    Ok(())
}

fn print_table(out: &ReportOut) {
    println!(
        "Concurrent channels {} .. {} ({}, {} mode): peak {}{}",
        out.from,
        out.to,
        out.time_zone,
        out.mode,
        out.peak,
        out.peak_at
            .as_deref()
            .map(|t| format!(" at {t}"))
            .unwrap_or_default()
    );
    println!();
    println!("{:<12} {:>6} {:>8}  PEAK AT", "DAY", "PEAK", "MEAN");
    for d in &out.days {
        println!(
            "{:<12} {:>6} {:>8.2}  {}",
            d.day,
            d.peak,
            d.mean.unwrap_or(0.0),
            d.peak_at.as_deref().unwrap_or("-")
        );
    }
    let busy: Vec<&HourOut> = out.hours.iter().filter(|h| h.max > 0).collect();
    if !busy.is_empty() {
        println!();
        println!(
            "{:<27} {:>6} {:>8}",
            "HOUR (60-minute window)", "MAX", "MEAN"
        );
        for h in busy {
            println!("{:<27} {:>6} {:>8.2}", h.start, h.max, h.mean);
        }
    }
}

#[derive(Serialize)]
struct ExplainedLegOut {
    sensor_id: u32,
    call_id: String,
    caller: String,
    called: String,
    start: String,
    answer: Option<String>,
    end: String,
}

#[derive(Serialize)]
struct GroupOut {
    caller_part: String,
    called_part: String,
    /// Why this group is a channel of its own.
    not_merged: Vec<String>,
    legs: Vec<ExplainedLegOut>,
}

#[derive(Serialize)]
struct ExplainOut {
    at: String,
    channels: usize,
    groups: Vec<GroupOut>,
}

fn explain_out(e: &channels::explain::Explanation) -> ExplainOut {
    use channels::explain::NotMerged;
    ExplainOut {
        at: format_rfc3339(e.at),
        channels: e.channels,
        groups: e
            .groups
            .iter()
            .map(|g| GroupOut {
                caller_part: g.caller_part.clone(),
                called_part: g.called_part.clone(),
                not_merged: g
                    .not_merged
                    .iter()
                    .map(|n| match n {
                        NotMerged::DifferentNumbers => {
                            "different numbers: no other active leg has this key".to_string()
                        }
                        NotMerged::Linked {
                            link,
                            leg,
                            other,
                            other_leg,
                        } => {
                            let other_group = &e.groups[*other];
                            format!(
                                "{} (leg {} here, leg {} of group {} -> {})",
                                link.as_str(),
                                g.legs[*leg].call_id,
                                other_group.legs[*other_leg].call_id,
                                other_group.caller_part,
                                other_group.called_part
                            )
                        }
                    })
                    .collect(),
                legs: g
                    .legs
                    .iter()
                    .map(|l| ExplainedLegOut {
                        sensor_id: l.sensor_id,
                        call_id: l.call_id.clone(),
                        caller: l.caller.clone(),
                        called: l.called.clone(),
                        start: format_rfc3339(l.start),
                        answer: l.answer.map(format_rfc3339),
                        end: format_rfc3339(l.end),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn parse_at(at: &str) -> Result<Micros> {
    parse_rfc3339(at).with_context(|| {
        format!("--at must be an RFC 3339 instant like 2026-11-28T14:05:00Z, not {at:?}")
    })
}

/// The instant of `day`'s peak in the license time zone.
fn day_peak(day: &str, counted: &Counted) -> Result<Micros> {
    let day = parse_day(day, "--day")?;
    let rep = channels::report(&counted.rows(day, day)?, &counted.tz, day, day)?;
    match rep.peak {
        Some(p) => Ok(p.at),
        None => bail!("no channel was active on {day}: nothing to explain"),
    }
}

fn explain(
    file: &FileConfig,
    common: &CommonFlags,
    source: &Source,
    at: Option<&str>,
    day: Option<&str>,
) -> Result<()> {
    let at = at.map(parse_at).transpose()?;
    let (instant, legs) = if source.pcap.is_empty() {
        let instant = match at {
            Some(at) => at,
            None => day_peak(
                day.unwrap_or_default(),
                &count(source, file, common, false)?,
            )?,
        };
        let db = Settings::resolve(file, common, false)?.database;
        let legs = block_on(async {
            let store = store::Store::open(db.clone())
                .await
                .with_context(|| format!("cannot open the database {}", db.describe()))?;
            let legs = store.legs_active_at(instant).await?;
            store.close().await;
            Ok::<_, anyhow::Error>(legs)
        })??;
        (instant, legs.into_iter().map(|s| s.leg).collect::<Vec<_>>())
    } else {
        let legs = legs_from_pcaps(&source.pcap, file, common)?;
        let instant = match at {
            Some(at) => at,
            None => {
                let mode =
                    file.channel_mode(common.channel_mode.as_deref(), source.answered_only)?;
                let counted = Counted {
                    tz: file.time_zone(source.tz.as_deref())?,
                    mode,
                    rows: Rows::Memory(rows_from_legs(&legs, mode)?),
                    data_days: None,
                };
                day_peak(day.unwrap_or_default(), &counted)?
            }
        };
        (instant, legs)
    };
    let mode = file.channel_mode(common.channel_mode.as_deref(), source.answered_only)?;
    let e = channels::explain::explain(&legs, instant, mode);
    let out = explain_out(&e);
    match source.format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&out)?),
        ReportFormat::Table => {
            println!("{} channels at {}", out.channels, out.at);
            for (i, g) in out.groups.iter().enumerate() {
                println!();
                println!("#{} key {} -> {}", i + 1, g.caller_part, g.called_part);
                for reason in &g.not_merged {
                    println!("   not merged: {reason}");
                }
                for l in &g.legs {
                    println!(
                        "   sensor {:<3} {} -> {}  {} .. {}  {}",
                        l.sensor_id, l.caller, l.called, l.start, l.end, l.call_id
                    );
                }
            }
        }
    }
    Ok(())
}

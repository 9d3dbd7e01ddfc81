//! `sipmeter portal keygen|issue`: offline license issuing, for tests and for operators who
//! run their own portal. The vendor portal (a later issue) signs through the same
//! `license::issue`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use jiff::civil::Date;
use license::rand_core::RngCore;
use license::{Binding, Grant, Hwid, LicenseTerms, SigningKey, TRIAL_DAYS};

#[derive(Debug, clap::Args)]
pub struct PortalArgs {
    #[command(subcommand)]
    command: PortalCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PortalCommand {
    /// Create a signing key pair: DIR/signing.key (secret) and DIR/signing.pub
    Keygen {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Sign a license file
    Issue(IssueArgs),
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("binding").required(true).args(["hwid", "domain"])))]
struct IssueArgs {
    /// The vendor's signing key (from `portal keygen`)
    #[arg(long, value_name = "FILE")]
    signing_key: PathBuf,
    /// Licensed channel limit
    #[arg(long, value_name = "N")]
    channels: u32,
    /// Bind to this hardware id (`sipmeter license hwid` on the server)
    #[arg(long, value_name = "HWID")]
    hwid: Option<String>,
    /// Bind to this domain name instead of a hardware id
    #[arg(long)]
    domain: Option<String>,
    /// Last day of the paid period (YYYY-MM-DD) [trials: default and maximum today + 30 days]
    #[arg(long, value_name = "DATE")]
    formal_end: Option<String>,
    /// A trial: no grace period after the formal end
    #[arg(long)]
    trial: bool,
    /// An emergency trial (support, during billing problems): no grace period
    #[arg(long)]
    emergency: bool,
    /// The subscription is cancelled: access ends at the formal end
    #[arg(long)]
    cancelled: bool,
    /// increase:N:START:END (limit N from START to END) or concurrent:N:UNTIL (N systems)
    #[arg(long = "grant", value_name = "GRANT")]
    grants: Vec<String>,
    /// License id [default: random]
    #[arg(long)]
    license_id: Option<String>,
    #[arg(long, default_value = "")]
    customer: String,
    /// Days until the server should fetch a fresh file from the portal
    #[arg(long, default_value_t = 30)]
    refresh_days: u32,
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

pub fn run(args: PortalArgs) -> Result<ExitCode> {
    match args.command {
        PortalCommand::Keygen { out } => keygen(&out),
        PortalCommand::Issue(a) => issue(a),
    }
}

fn keygen(dir: &Path) -> Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let key = SigningKey::generate(&mut license::OsRng);
    let secret = dir.join("signing.key");
    let public = dir.join("signing.pub");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    // create_new: never overwrite a signing key; losing one orphans every license it signed.
    let mut f = options
        .open(&secret)
        .with_context(|| format!("cannot create {} (it must not exist yet)", secret.display()))?;
    f.write_all(key.to_armored().as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", secret.display()))?;
    std::fs::write(&public, key.public().to_armored())
        .with_context(|| format!("cannot write {}", public.display()))?;
    println!(
        "key {}: secret {} (keep it private), public {} (give to servers as --trusted-key)",
        key.public().id(),
        secret.display(),
        public.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn date(s: &str, what: &str) -> Result<Date> {
    s.parse::<Date>()
        .with_context(|| format!("{what} must be a date like 2026-12-31, not {s:?}"))
}

fn parse_grant(s: &str) -> Result<Grant> {
    let parts: Vec<&str> = s.split(':').collect();
    let n = |p: &str| {
        p.parse::<u32>()
            .with_context(|| format!("grant {s:?}: {p:?} is not a number"))
    };
    match parts.as_slice() {
        ["increase", ch, start, end] => Ok(Grant::Increase {
            channels: n(ch)?,
            start: date(start, "grant start")?,
            end: date(end, "grant end")?,
        }),
        ["concurrent", systems, until] => Ok(Grant::Concurrent {
            systems: n(systems)?,
            until: date(until, "grant until")?,
        }),
        _ => bail!("grant {s:?} must be increase:N:START:END or concurrent:N:UNTIL"),
    }
}

fn issue(a: IssueArgs) -> Result<ExitCode> {
    let key_text = std::fs::read_to_string(&a.signing_key)
        .with_context(|| format!("cannot read signing key {}", a.signing_key.display()))?;
    let key = SigningKey::from_armored(&key_text)
        .with_context(|| format!("{} is not a signing key", a.signing_key.display()))?;
    let now = jiff::Timestamp::now();
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let trial = a.trial || a.emergency;
    let trial_end = today
        .checked_add(jiff::Span::new().days(TRIAL_DAYS))
        .context("date out of range")?;
    let formal_end = match (&a.formal_end, trial) {
        (Some(s), _) => date(s, "--formal-end")?,
        (None, true) => trial_end,
        (None, false) => bail!("--formal-end is required (except for trials)"),
    };
    if trial && formal_end > trial_end {
        bail!(
            "a trial lasts at most {TRIAL_DAYS} days: --formal-end must be {trial_end} or earlier"
        );
    }
    let binding = match (&a.hwid, &a.domain) {
        (Some(h), None) => Binding::Hwid(h.parse::<Hwid>().map_err(anyhow::Error::msg)?),
        (None, Some(d)) => Binding::Domain(
            license::normalize_domain(d).with_context(|| format!("{d:?} is not a domain name"))?,
        ),
        _ => bail!("give exactly one of --hwid and --domain"),
    };
    let grants = a
        .grants
        .iter()
        .map(|g| parse_grant(g))
        .collect::<Result<Vec<_>>>()?;
    let license_id = a.license_id.clone().unwrap_or_else(|| {
        let mut r = [0u8; 6];
        license::OsRng.fill_bytes(&mut r);
        format!(
            "SM-{}",
            r.iter().map(|b| format!("{b:02X}")).collect::<String>()
        )
    });
    let refresh_by = now
        .checked_add(jiff::Span::new().hours(i64::from(a.refresh_days) * 24))
        .context("--refresh-days out of range")?;
    let terms = LicenseTerms {
        license_id,
        customer: a.customer.clone(),
        channels: a.channels,
        // Whole seconds: the file stays readable and nothing needs sub-second precision.
        issued_at: jiff::Timestamp::from_second(now.as_second())?,
        formal_end,
        grace_end: license::grace_end_for(formal_end, a.cancelled || trial),
        cancelled: a.cancelled,
        trial: a.trial,
        emergency: a.emergency,
        binding,
        grants,
        refresh_by: jiff::Timestamp::from_second(refresh_by.as_second())?,
    };
    let text = license::issue(&terms, &key)?;
    std::fs::write(&a.out, &text).with_context(|| format!("cannot write {}", a.out.display()))?;
    println!(
        "issued {} to {}: {} channels, {}, formal end {}, access until {}, key {}",
        terms.license_id,
        a.out.display(),
        terms.channels,
        terms.binding,
        terms.formal_end,
        terms.access_end(),
        key.public().id()
    );
    Ok(ExitCode::SUCCESS)
}

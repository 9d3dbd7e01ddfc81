//! `sipmeter license …` and `--set-license-key`: the license as this server sees it.
//!
//! All rules live in the pure `license` crate; this module only gathers the facts it needs
//! (license file, machine identity, clock, persisted clock high-water mark, daily channel
//! peaks from the database) and persists what must survive a restart (fallback hardware id,
//! high-water mark, token, the previous license file).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use license::{
    DailyPeak, Hwid, Keyring, LicenseToken, Micros, ResolvedHwid, Status, VerifyContext,
};
use serde::Serialize;

use crate::config::{CommonFlags, FileConfig, Settings};

pub use server::license_env::LICENSE_FILE_NAME;
use server::license_env::{self as shared, LicenseSetup, OLD_SUFFIX};

#[derive(Debug, clap::Args)]
pub struct LicenseArgs {
    #[command(subcommand)]
    command: LicenseCommand,
    #[command(flatten)]
    flags: LicenseFlags,
}

/// Flags of every `license` command; each also a config key.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LicenseFlags {
    /// License file [config: license_file; default: <data_dir>/license.key]
    #[arg(long, global = true, value_name = "FILE")]
    license_file: Option<PathBuf>,
    /// Development builds only: also trust licenses signed by this public key file, without a
    /// certificate (repeatable) [config: trusted_keys]
    #[cfg(feature = "dev-keys")]
    #[arg(long = "trusted-key", global = true, value_name = "FILE")]
    trusted_keys: Vec<PathBuf>,
    /// Use this hardware id instead of the machine's own (containers) [config: hwid_override]
    #[arg(long, global = true, value_name = "HWID")]
    hwid_override: Option<String>,
    /// Domain name of this server, for domain-bound licenses [config: license_domain]
    #[arg(long, global = true)]
    domain: Option<String>,
    /// Channel limit below the licensed one [config: channel_limit]. A limit set in
    /// Settings > License (<data_dir>/channel-limit) wins over it in `serve`; for
    /// `license status` the flag wins for that one run (a what-if)
    #[arg(long, global = true, value_name = "N")]
    channel_limit: Option<u32>,
    /// License time zone (IANA name) whose days count [config: license_time_zone; default: UTC]
    #[arg(long, global = true)]
    tz: Option<String>,
    /// Evaluate at this instant (RFC 3339) instead of now, for what-if questions; the clock
    /// high-water mark is then neither updated nor saved
    #[arg(long, global = true, hide = true)]
    now: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum LicenseCommand {
    /// State, limits, over-limit days, dates, hardware id, binding, grants, warnings, errors
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Check a license file against this machine; non-zero exit and the reason on failure
    Verify { file: PathBuf },
    /// This machine's hardware id, for the portal's Get License
    Hwid {
        #[arg(long)]
        json: bool,
    },
    /// Verify FILE, then make it the license (the previous one is kept as license.key.old)
    Install { file: PathBuf },
    /// Write an offline request file (token, hwid or domain, install id) for the portal;
    /// install its answer with `license install FILE`
    Request {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
}

/// The license setup of `sipmeter serve`: the same flags and config keys as `license status`.
pub fn license_setup(
    flags: &LicenseFlags,
    file: &FileConfig,
    common: &CommonFlags,
) -> Result<LicenseSetup> {
    let env = Env::resolve(flags, file, common)?;
    // The server is long-lived: what the operator sets in Settings > License must win over
    // the start-time flag, or the GUI could never raise a limit given on the command line.
    Ok(LicenseSetup {
        operator_limit: env.limit_flag.or(env.config_limit),
        operator_limit_override: None,
        ..env.setup()
    })
}

pub fn run(args: LicenseArgs, file: &FileConfig, common: &CommonFlags) -> Result<ExitCode> {
    let env = Env::resolve(&args.flags, file, common)?;
    match args.command {
        LicenseCommand::Status { json } => status(&env, file, json),
        LicenseCommand::Verify { file } => verify(&env, &file),
        LicenseCommand::Hwid { json } => hwid(&env, json),
        LicenseCommand::Install { file } => install(&env, &file),
        LicenseCommand::Request { out } => request(&env, &out),
    }
}

/// The trust anchors: the compiled-in roots; in a development build also the signing keys of
/// `--trusted-key` and the config key `trusted_keys`, which a release build refuses.
fn keyring(flags: &LicenseFlags, file: &FileConfig) -> Result<Keyring> {
    #[allow(unused_mut)]
    let mut keyring = Keyring::builtin();
    #[cfg(feature = "dev-keys")]
    for path in file
        .trusted_keys
        .iter()
        .flatten()
        .chain(&flags.trusted_keys)
    {
        keyring.trust_signing_key(read_public_key(path)?);
    }
    #[cfg(not(feature = "dev-keys"))]
    {
        let _ = flags;
        if file.trusted_keys.as_ref().is_some_and(|k| !k.is_empty()) {
            bail!(
                "config key trusted_keys is refused: only a development build (cargo feature dev-keys) trusts keys other than the vendor's roots"
            );
        }
    }
    Ok(keyring)
}

/// Everything the license commands need, resolved from flags, config and the machine.
struct Env {
    data_dir: PathBuf,
    /// The CDR store (`--database`, else SQLite in the data directory).
    database: store::Database,
    license_path: PathBuf,
    keyring: Keyring,
    hwid: ResolvedHwid,
    domain: Option<String>,
    /// `--channel-limit`.
    limit_flag: Option<u32>,
    /// Config `channel_limit`.
    config_limit: Option<u32>,
    tz: TimeZone,
    now: Micros,
    /// `--now` given: a what-if, not the real clock.
    simulated_now: bool,
    token: Option<LicenseToken>,
}

impl Env {
    fn resolve(flags: &LicenseFlags, file: &FileConfig, common: &CommonFlags) -> Result<Env> {
        let settings = Settings::resolve(file, common, false)?;
        let (data_dir, database) = (settings.data_dir, settings.database);
        let license_path = flags
            .license_file
            .clone()
            .or_else(|| file.license_file.clone())
            .unwrap_or_else(|| data_dir.join(LICENSE_FILE_NAME));
        let keyring = keyring(flags, file)?;
        let hwid_override = flags
            .hwid_override
            .as_deref()
            .or(file.hwid_override.as_deref())
            .map(|h| {
                h.parse::<Hwid>()
                    .map_err(anyhow::Error::msg)
                    .context("invalid hwid_override")
            })
            .transpose()?;
        let hwid = machine_hwid(&data_dir, hwid_override)?;
        let domain = flags.domain.clone().or_else(|| file.license_domain.clone());
        let (limit_flag, config_limit) = (flags.channel_limit, file.channel_limit);
        if limit_flag == Some(0) || config_limit == Some(0) {
            bail!("channel_limit must be at least 1");
        }
        let tz = file.time_zone(flags.tz.as_deref())?;
        let (now, simulated_now) = match &flags.now {
            Some(s) => (
                s.parse::<jiff::Timestamp>()
                    .with_context(|| format!("--now must be an RFC 3339 instant, not {s:?}"))?
                    .as_microsecond(),
                true,
            ),
            None => (jiff::Timestamp::now().as_microsecond(), false),
        };
        let token = stored_token(&data_dir, file)?;
        Ok(Env {
            data_dir,
            database,
            license_path,
            keyring,
            hwid,
            domain,
            limit_flag,
            config_limit,
            tz,
            now,
            simulated_now,
            token,
        })
    }

    /// The facts that do not change while a server runs, for `license_env`. The precedence of
    /// the `license` commands: `--channel-limit` (this run only), then the limit set in
    /// Settings > License, then config `channel_limit` (resolved in `license_env`).
    fn setup(&self) -> LicenseSetup {
        LicenseSetup {
            data_dir: self.data_dir.clone(),
            license_path: self.license_path.clone(),
            keyring: self.keyring.clone(),
            hwid: self.hwid,
            domain: self.domain.clone(),
            operator_limit: self.config_limit,
            operator_limit_override: self.limit_flag,
            tz: self.tz.clone(),
        }
    }

    fn verify_context(&self, high_water: Option<Micros>) -> VerifyContext<'_> {
        VerifyContext {
            keyring: &self.keyring,
            hwid: self.hwid.hwid,
            domain: self.domain.as_deref(),
            now: self.now,
            high_water,
            time_zone: &self.tz,
        }
    }
}

#[cfg(feature = "dev-keys")]
fn read_public_key(path: &Path) -> Result<license::PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read trusted key {}", path.display()))?;
    license::PublicKey::from_armored(&text)
        .with_context(|| format!("trusted key {} is not usable", path.display()))
}

use shared::display_name;

fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    Ok(shared::write_atomic(path, contents)?)
}

/// The machine's hardware id (creating the persisted fallback id on machines without one).
fn machine_hwid(data_dir: &Path, hwid_override: Option<Hwid>) -> Result<ResolvedHwid> {
    let (hwid, created) = shared::machine_hwid(data_dir, hwid_override)?;
    if let Some(path) = created {
        eprintln!(
            "sipmeter: this machine has no machine-id; created the fallback hardware identity {}",
            path.display()
        );
    }
    Ok(hwid)
}

/// The token from `--set-license-key` (data directory) or, failing that, the config key.
fn stored_token(data_dir: &Path, file: &FileConfig) -> Result<Option<LicenseToken>> {
    shared::stored_token(data_dir, file.license_key.as_deref())
        .context("invalid license token (license_key)")
}

fn read_high_water(data_dir: &Path) -> Result<Option<Micros>> {
    let (mark, unreadable) = shared::read_high_water(data_dir)?;
    if unreadable {
        eprintln!(
            "sipmeter: ignoring unreadable clock high-water mark {}",
            data_dir.join(shared::CLOCK_FILE_NAME).display()
        );
    }
    Ok(mark)
}

/// Daily channel peaks (license time zone) for the over-limit timeline, from the channel
/// engine's per-minute figures in the database, brought up to date first so that new,
/// deleted or recomputed CDRs count at once. No database, or one without channel figures,
/// gives an empty list (nothing counted yet), never an error.
fn daily_peaks(
    database: &store::Database,
    file: &FileConfig,
    tz: &TimeZone,
    today: Date,
) -> Result<Vec<DailyPeak>> {
    if let store::Database::Sqlite(dir) = database
        && !dir.join(store::SQLITE_FILE_NAME).exists()
    {
        return Ok(Vec::new());
    }
    let mode = file.channel_mode(None, false)?;
    let window = shared::peak_window(today, tz)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let rows = rt.block_on(async {
        let mut store = store::Store::open(database.clone())
            .await
            .with_context(|| format!("cannot open the database {}", database.describe()))?;
        store
            .update_channel_stats(mode)
            .await
            .context("cannot bring the channel figures up to date")?;
        let rows = store.channel_minutes(window.from, window.to).await?;
        store.close().await;
        Ok::<_, anyhow::Error>(rows)
    })?;
    Ok(shared::daily_peaks(&rows, tz, &window)?)
}

/// `license status --json`: the library's status plus where things are.
#[derive(Serialize)]
struct StatusOut<'a> {
    license_file: String,
    license_token: Option<String>,
    /// A `dev-keys` build: licenses from the development root are accepted.
    development_build: bool,
    time_zone: String,
    /// Where `limit.operator_limit` comes from (`override`, `settings`, `config`), so that a
    /// limit nobody remembers setting can be traced.
    operator_limit_source: Option<shared::LimitSource>,
    #[serde(flatten)]
    status: &'a Status,
}

fn status(env: &Env, file: &FileConfig, json: bool) -> Result<ExitCode> {
    let today = license::day_of(env.now, &env.tz);
    let peaks = daily_peaks(&env.database, file, &env.tz, today)?;
    // A what-if (`--now`) must not move the persisted clock high-water mark.
    let setup = env.setup();
    let st = setup.status(env.now, &peaks, !env.simulated_now)?;
    let source = setup.operator_limit()?.source;
    if json {
        let out = StatusOut {
            license_file: env.license_path.display().to_string(),
            license_token: env.token.as_ref().map(|t| t.to_string()),
            development_build: license::DEVELOPMENT_BUILD,
            time_zone: env.tz.iana_name().unwrap_or("UTC").to_string(),
            operator_limit_source: source,
            status: &st,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_status(env, &st, source);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_status(env: &Env, st: &Status, source: Option<shared::LimitSource>) {
    if license::DEVELOPMENT_BUILD {
        println!("build:     {}", server::DEVELOPMENT_BUILD_NOTICE);
    }
    let state = serde_json::to_value(st.state).unwrap_or_default();
    let mode = serde_json::to_value(st.mode).unwrap_or_default();
    println!(
        "state:     {} ({})",
        state.as_str().unwrap_or("?"),
        mode.as_str().unwrap_or("?")
    );
    println!("file:      {}", env.license_path.display());
    println!(
        "hwid:      {} ({})",
        st.hwid.hwid,
        st.hwid.source.describe()
    );
    if let Some(t) = &st.license {
        println!(
            "license:   {} for {:?}, key {}",
            t.license_id,
            t.customer,
            st.key_id.as_deref().unwrap_or("?")
        );
        println!("binding:   {}", t.binding);
        let kind = if t.emergency {
            " (emergency trial)"
        } else if t.trial {
            " (trial)"
        } else if t.cancelled {
            " (cancelled)"
        } else {
            ""
        };
        println!(
            "dates:     formal end {}, grace end {}{kind}",
            t.formal_end, t.grace_end
        );
        for g in &t.grants {
            let active = if st.active_grants.contains(g) {
                "active"
            } else {
                "inactive"
            };
            match g {
                license::Grant::Increase {
                    channels,
                    start,
                    end,
                } => {
                    println!("grant:     {channels} channels from {start} to {end} ({active})")
                }
                license::Grant::Concurrent { systems, until } => {
                    println!(
                        "grant:     concurrent use on {systems} systems until {until} ({active})"
                    )
                }
            }
        }
    }
    let l = &st.limit;
    let mut how = format!("licensed {}", l.licensed);
    if let Some(t) = l.temporary_increase {
        how.push_str(&format!(", temporary increase {t}"));
    }
    if let Some(o) = l.operator_limit {
        let from = source.map_or("", |s| s.describe());
        how.push_str(&format!(", channel_limit {o} {from}"));
    }
    println!("limit:     {} ({how})", l.effective);
    println!(
        "over:      {} day{} (N) — {}",
        st.timeline.days_over,
        if st.timeline.days_over == 1 { "" } else { "s" },
        st.timeline.reason
    );
    let f = st.features;
    println!(
        "features:  gui {}, alerts {}, reports {}, csv export {}, data api {}, ingest {}",
        on(f.gui),
        on(f.alerts),
        on(f.reports),
        on(f.csv_export),
        on(f.data_api),
        on(f.ingest)
    );
    if let Some(t) = &env.token {
        println!("token:     {t}");
    }
    for w in &st.warnings {
        println!("warning:   {w}");
    }
    for e in &st.errors {
        println!("error:     {} [{}]", e.message, e.code);
    }
}

fn on(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

/// Reads `path` and verifies it fully (including expiry) for this machine, naming it by its
/// base name in messages.
fn check_file(env: &Env, path: &Path) -> Result<(license::Verified, String), license::VerifyError> {
    let name = display_name(path);
    let bytes = std::fs::read(path).map_err(|e| license::VerifyError::Malformed {
        file: name.clone(),
        reason: format!("cannot read {}: {e}", path.display()),
    })?;
    let text = license::license_text(&bytes, &name)?;
    let high_water = read_high_water(&env.data_dir).ok().flatten();
    let v = license::verify(text, &name, &env.verify_context(high_water))?;
    Ok((v, text.to_string()))
}

fn verify(env: &Env, path: &Path) -> Result<ExitCode> {
    match check_file(env, path) {
        Ok((v, _)) => {
            let t = &v.terms;
            println!(
                "OK license file {}: {} channels, {}, formal end {}, access until {}, key {}",
                display_name(path),
                t.channels,
                t.binding,
                t.formal_end,
                t.access_end(),
                v.key_id
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!("sipmeter: license verification failed [{}]", e.code());
            Ok(ExitCode::FAILURE)
        }
    }
}

#[derive(Serialize)]
struct HwidOut {
    hwid: String,
    source: license::HwidSource,
    is_override: bool,
}

fn hwid(env: &Env, json: bool) -> Result<ExitCode> {
    let h = env.hwid;
    if json {
        let out = HwidOut {
            hwid: h.hwid.to_string(),
            source: h.source,
            is_override: h.source == license::HwidSource::Override,
        };
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!("{} ({})", h.hwid, h.source.describe());
    }
    Ok(ExitCode::SUCCESS)
}

fn install(env: &Env, path: &Path) -> Result<ExitCode> {
    let (v, text) = match check_file(env, path) {
        Ok(ok) => ok,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "sipmeter: not installed; {} is unchanged",
                env.license_path.display()
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    let target = &env.license_path;
    if target.exists() {
        let mut old = target.as_os_str().to_owned();
        old.push(OLD_SUFFIX);
        std::fs::copy(target, &old).with_context(|| {
            format!(
                "cannot keep the previous license as {}",
                Path::new(&old).display()
            )
        })?;
    }
    write_atomic(target, text.as_bytes())?;
    println!(
        "installed {} as {}: {} channels, {}, access until {} (takes effect at once)",
        display_name(path),
        target.display(),
        v.terms.channels,
        v.terms.binding,
        v.terms.access_end()
    );
    Ok(ExitCode::SUCCESS)
}

/// `sipmeter --set-license-key TOKEN [--portal URL]`: stores the token and, with a portal
/// (flag or config `portal_url`), fetches, verifies and installs the license file for it.
pub fn set_license_key(
    token: &str,
    portal: Option<&str>,
    file: &FileConfig,
    common: &CommonFlags,
) -> Result<ExitCode> {
    let token: LicenseToken = token.parse().map_err(anyhow::Error::msg)?;
    let env = Env::resolve(&LicenseFlags::default(), file, common)?;
    let path = shared::store_token(&env.data_dir, &token)?;
    println!("stored license token {token} in {}", path.display());
    let stored = shared::stored_portal_url(&env.data_dir)?;
    let Some(url) = portal.or(file.portal_url.as_deref()).or(stored.as_deref()) else {
        println!(
            "note: no portal is configured (--portal URL or config portal_url), so no license \
             file was fetched; install one with `sipmeter license install FILE`"
        );
        return Ok(ExitCode::SUCCESS);
    };
    let client = server::portal_client::PortalClient::with_ca(url, file.portal_ca_file.as_deref())?;
    let setup = env.setup();
    let fetched = runtime()?.block_on(server::portal_client::fetch_and_install(
        &client,
        &setup,
        &token.to_string(),
        false,
        env.now,
    ));
    match fetched {
        Ok(v) => {
            if portal.is_some() && file.portal_url.is_none() {
                let path = shared::store_portal_url(&env.data_dir, client.url())?;
                println!(
                    "remembered the portal {} in {} (refresh and check-ins use it)",
                    client.url(),
                    path.display()
                );
            }
            let t = &v.terms;
            println!(
                "installed license {} from {} as {}: {} channels, {}, formal end {}, grace end {}, refresh by {} (takes effect at once)",
                t.license_id,
                client.url(),
                env.license_path.display(),
                t.channels,
                t.binding,
                t.formal_end,
                t.grace_end,
                t.refresh_by
                    .map_or_else(|| "never (offline file)".to_string(), |r| r.to_string())
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("sipmeter: {}", server::chain(&e));
            eprintln!(
                "sipmeter: no license installed; {} is unchanged",
                env.license_path.display()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The offline request file of the portal contract.
#[derive(Serialize)]
struct RequestFile {
    sipmeter_license_request: u32,
    token: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    hwid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    install_id: String,
    /// This installation's check-in key, registered with the license by the portal.
    install_key: String,
    created_at: String,
}

fn request(env: &Env, out: &Path) -> Result<ExitCode> {
    let Some(token) = &env.token else {
        bail!("no license token is stored; run `sipmeter --set-license-key TOKEN` first");
    };
    let (install_id, _) = shared::install_id(&env.data_dir)?;
    let install_key = shared::install_key(&env.data_dir)?.public();
    let r = server::portal_client::license_request(
        &env.setup(),
        &token.to_string(),
        &install_id,
        &install_key,
        false,
    );
    let file = RequestFile {
        sipmeter_license_request: 1,
        token: r.token,
        hwid: r.hwid,
        domain: r.domain,
        install_id,
        install_key: install_key.to_armored(),
        created_at: license::timestamp(env.now)
            .context("clock out of range")?
            .to_string(),
    };
    write_atomic(
        out,
        format!("{}\n", serde_json::to_string_pretty(&file)?).as_bytes(),
    )?;
    println!(
        "wrote the license request {} (for {}); turn it into a key file on the portal, then `sipmeter license install FILE`",
        out.display(),
        file.domain
            .as_ref()
            .map(|d| format!("domain {d}"))
            .or(file.hwid.as_ref().map(|h| format!("hwid {h}")))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

//! `sipmeter portal`: the vendor portal (`serve`), the operator commands that work on its data
//! directory (customers, licenses, support actions, orders, offline requests, key rotation,
//! the audit log), and offline license issuing (`keygen`, `issue`) for operators who run
//! without a portal. Every portal action goes through `portal::Portal`, so the CLI is
//! validated and audited exactly like the web console (who = `cli:<unix user>`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use jiff::civil::Date;
use license::rand_core::RngCore;
use license::{Binding, Grant, Hwid, LicenseTerms, SigningKey, TRIAL_DAYS};
use portal::{BindingState, OrderRequest, Portal, Target};

#[derive(Debug, clap::Args)]
pub struct PortalArgs {
    /// The portal database [default: SQLite DIR/portal.db]; postgres://… for PostgreSQL
    #[arg(
        long,
        global = true,
        env = "SIPMETER_PORTAL_DATABASE",
        value_name = "URL"
    )]
    database: Option<String>,
    /// The portal secret key that seals the signing keys in the database (32 bytes, base64
    /// or hex), created with mode 0600 when missing [default: DIR/portal-secret.key, or the
    /// key itself in SIPMETER_PORTAL_SECRET_KEY]. Keep it, and back it up apart from the
    /// database: without it the signing keys cannot be used.
    #[arg(long, global = true, value_name = "FILE")]
    secret_key_file: Option<PathBuf>,
    #[command(subcommand)]
    command: PortalCommand,
}

#[derive(Debug, clap::Subcommand)]
enum PortalCommand {
    /// Run the portal: customer pages, support console, API for servers
    Serve {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
        /// Password of the first support user `support` [default: generated, printed once]
        #[arg(long, env = "SIPMETER_PORTAL_ADMIN_PASSWORD", hide_env_values = true)]
        admin_password: Option<String>,
    },
    /// Customers
    #[command(subcommand)]
    Customer(CustomerCommand),
    /// Logins for customers and support staff
    #[command(subcommand)]
    User(UserCommand),
    /// Licenses and the support actions on them
    #[command(subcommand)]
    License(LicenseCommand),
    /// Orders
    #[command(subcommand)]
    Order(OrderCommand),
    /// Answer an offline request file with a license file
    Offline {
        #[arg(long, value_name = "FILE")]
        request: PathBuf,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Make a new active signing key (old public keys stay served and trusted)
    RotateKey,
    /// Print the audit log, newest first
    Audit {
        #[arg(long)]
        license: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Create a signing key pair: DIR/signing.key (secret) and DIR/signing.pub
    Keygen {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Sign a license file offline, without a portal database
    Issue(IssueArgs),
    /// Certify the portal's active signing key (or a --public-key file) with a vendor root
    /// key, on the machine that keeps the root offline; servers then trust what it signs
    Certify(CertifyArgs),
}

#[derive(Debug, clap::Subcommand)]
enum CustomerCommand {
    /// Add a customer (prints its id), optionally with a login
    Add {
        #[arg(long)]
        name: String,
        /// A login for the customer's pages
        #[arg(long, requires = "password")]
        login: Option<String>,
        #[arg(long, env = "SIPMETER_PORTAL_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// List customers
    List,
}

#[derive(Debug, clap::Subcommand)]
enum UserCommand {
    /// Add a login
    Add {
        #[arg(long)]
        username: String,
        #[arg(long, env = "SIPMETER_PORTAL_USER_PASSWORD", hide_env_values = true)]
        password: String,
        #[arg(long, value_parser = ["customer", "support"])]
        role: String,
        /// The customer a customer login belongs to
        #[arg(long)]
        customer: Option<String>,
    },
}

#[derive(Debug, clap::Args)]
struct LicenseRef {
    /// License id (SM-…)
    #[arg(long)]
    license: String,
}

#[derive(Debug, clap::Subcommand)]
enum LicenseCommand {
    /// Add a license (the token is the last line printed)
    Add {
        #[arg(long)]
        customer: String,
        #[arg(long)]
        channels: u32,
        /// Last day of the paid period (trials: 30 days from today)
        #[arg(long, value_name = "DATE", required_unless_present = "trial")]
        formal_end: Option<String>,
        #[arg(long)]
        trial: bool,
        /// Bind to a domain instead of the hardware id of the first Get License
        #[arg(long)]
        domain: Option<String>,
    },
    /// List licenses with their current terms
    List {
        #[arg(long)]
        customer: Option<String>,
    },
    /// Show one license: terms, grants, orders, check-ins, concurrent-use flag
    Show(LicenseRef),
    /// Temporary channel increase: limit N from today until DATE
    Increase {
        #[command(flatten)]
        l: LicenseRef,
        #[arg(long)]
        channels: u32,
        #[arg(long, value_name = "DATE")]
        until: String,
    },
    /// Emergency trial: a new 30-day license for the same customer, limit and binding
    EmergencyTrial(LicenseRef),
    /// Allow concurrent use on N systems until DATE (migration)
    AllowConcurrent {
        #[command(flatten)]
        l: LicenseRef,
        #[arg(long, value_name = "DATE")]
        until: String,
        #[arg(long, default_value_t = 2)]
        systems: u32,
    },
    /// Bind to a hardware id or a domain (converts between the two)
    Bind {
        #[command(flatten)]
        l: LicenseRef,
        #[arg(long, conflicts_with = "domain", required_unless_present = "domain")]
        hwid: Option<String>,
        #[arg(long)]
        domain: Option<String>,
    },
    /// Cancel: access ends at the formal end, no grace period
    Cancel(LicenseRef),
    /// Place a renewal order for N months (--paid: complete it now)
    Renew {
        #[command(flatten)]
        l: LicenseRef,
        #[arg(long)]
        months: u32,
        #[arg(long)]
        paid: bool,
    },
    /// Place an upgrade order to a tier (--paid: complete it now)
    Upgrade {
        #[command(flatten)]
        l: LicenseRef,
        /// Tier id (T100) or its channel limit (100)
        #[arg(long)]
        tier: String,
        #[arg(long)]
        paid: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
enum OrderCommand {
    /// Mark an order paid: completed now, and in effect now
    Paid {
        #[arg(long)]
        order: String,
    },
    /// Mark an order as processing (changes nothing yet)
    Processing {
        #[arg(long)]
        order: String,
    },
    /// List orders, newest first
    List {
        #[arg(long)]
        license: Option<String>,
    },
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
    /// Days until the server should fetch a fresh file from the portal (and locks 7 days
    /// after that without one) [default: none, an offline file]
    #[arg(long, value_name = "DAYS")]
    refresh_days: Option<u32>,
    /// The signing key's certificate from a vendor root (`portal certify --public-key`);
    /// without one the file verifies only where the key is trusted directly (development
    /// builds, `--trusted-key`)
    #[arg(long, value_name = "FILE")]
    certificate: Option<PathBuf>,
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct CertifyArgs {
    /// The vendor root's secret key file (kept offline; never stored anywhere by this command)
    #[arg(long, value_name = "FILE")]
    root_key: PathBuf,
    /// Certify this public key file (from `portal keygen`) instead of the portal's active
    /// key; the certificate is written to --out
    #[arg(long, value_name = "FILE", requires = "out")]
    public_key: Option<PathBuf>,
    /// Where to write the certificate (with --public-key; optional otherwise)
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Last day of validity [default: 3 years from today]
    #[arg(long, value_name = "DATE")]
    until: Option<String>,
    /// Who holds the key, for people reading the certificate [default: the portal's
    /// directory name]
    #[arg(long)]
    subject: Option<String>,
}

/// Runs a portal command; `data_dir` is the global `--data-dir` (the portal's directory).
pub fn run(args: PortalArgs, data_dir: Option<PathBuf>) -> Result<ExitCode> {
    let dir = data_dir.unwrap_or_else(|| PathBuf::from("./sipmeter-portal"));
    match args.command {
        PortalCommand::Keygen { out } => keygen(&out),
        PortalCommand::Issue(a) => issue(a),
        PortalCommand::Certify(a) if a.public_key.is_some() => certify_file(&a),
        command => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            rt.block_on(portal_command(
                command,
                &dir,
                args.database.as_deref(),
                args.secret_key_file.as_deref(),
            ))
        }
    }
}

/// Who the audit log names for CLI actions.
fn cli_who() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

async fn open(
    dir: &Path,
    database: Option<&str>,
    secret_key_file: Option<&Path>,
) -> Result<Portal> {
    Portal::open_with_key_file(
        dir,
        database,
        secret_key_file,
        Arc::new(portal::clock::SystemClock),
    )
    .await
    .with_context(|| format!("cannot open the portal in {}", dir.display()))
}

fn print_license(v: &portal::LicenseView) {
    println!(
        "{}  customer {}  {}  limit {}  formal end {}  grace end {}  {}  concurrent: {} of {} allowed{}",
        v.row.id,
        v.row.customer_id,
        v.status,
        v.limit,
        v.row.formal_end,
        v.grace_end,
        v.row.binding,
        v.verdict.systems,
        v.verdict.allowed,
        if v.verdict.concurrent {
            " (FLAGGED)"
        } else {
            ""
        },
    );
}

async fn portal_command(
    command: PortalCommand,
    dir: &Path,
    database: Option<&str>,
    secret_key_file: Option<&Path>,
) -> Result<ExitCode> {
    let p = open(dir, database, secret_key_file).await?;
    let who = cli_who();
    let result = run_on(&p, command, &who).await;
    p.close().await;
    result
}

async fn run_on(p: &Portal, command: PortalCommand, who: &str) -> Result<ExitCode> {
    match command {
        PortalCommand::Serve {
            listen,
            admin_password,
        } => {
            if let Some(pw) = p.ensure_support_user(admin_password.as_deref()).await? {
                println!("created support user `support` with password {pw} (shown once)");
            }
            let listener = tokio::net::TcpListener::bind(&listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            let addr = listener.local_addr()?;
            println!(
                "portal on http://{addr}/ (data {}, public keys {}, signing keys sealed with the secret key from {})",
                p.data_dir().display(),
                p.data_dir().join("signing.pub").display(),
                p.secret_key_source()
            );
            tokio::select! {
                r = portal::serve(listener, p.clone()) => r.context("portal server failed")?,
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        PortalCommand::Customer(CustomerCommand::Add {
            name,
            login,
            password,
        }) => {
            let c = p.add_customer(who, &name).await?;
            if let (Some(login), Some(pw)) = (login, password) {
                p.add_user(who, &login, &pw, portal::Role::Customer, Some(&c.id))
                    .await?;
            }
            println!("{}", c.id);
        }
        PortalCommand::Customer(CustomerCommand::List) => {
            for c in p.customers().await? {
                println!("{}  {}", c.id, c.name);
            }
        }
        PortalCommand::User(UserCommand::Add {
            username,
            password,
            role,
            customer,
        }) => {
            let role = portal::Role::parse(&role).context("--role is customer or support")?;
            let u = p
                .add_user(who, &username, &password, role, customer.as_deref())
                .await?;
            println!("{}", u.id);
        }
        PortalCommand::License(cmd) => license_command(p, cmd, who).await?,
        PortalCommand::Order(OrderCommand::Paid { order }) => {
            let o = p.order_paid(who, &order).await?;
            let v = p.view(p.license(&o.license_id).await?).await?;
            println!("order {} completed", o.id);
            print_license(&v);
        }
        PortalCommand::Order(OrderCommand::Processing { order }) => {
            let o = p.order_processing(who, &order).await?;
            println!("order {} {}", o.id, o.status.as_str());
        }
        PortalCommand::Order(OrderCommand::List { license }) => {
            for o in p.orders(license.as_deref(), None).await? {
                println!(
                    "{}  {}  {}  {}  channels {}  months {}  created {}  completed {}",
                    o.id,
                    o.license_id,
                    o.kind.as_str(),
                    o.status.as_str(),
                    o.channels.map_or("-".into(), |c| c.to_string()),
                    o.months.map_or("-".into(), |m| m.to_string()),
                    portal::rfc3339(o.created_at),
                    o.completed_at.map_or("-".into(), portal::rfc3339),
                );
            }
        }
        PortalCommand::Offline { request, out } => {
            let text = std::fs::read_to_string(&request)
                .with_context(|| format!("cannot read {}", request.display()))?;
            let issued = p.offline(&format!("{who} (offline)"), &text).await?;
            std::fs::write(&out, &issued.license)
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "license {} for {} written to {} (refresh by {})",
                issued.license_id,
                issued.terms.binding,
                out.display(),
                issued
                    .refresh_by
                    .as_deref()
                    .unwrap_or("never: an offline file")
            );
        }
        PortalCommand::RotateKey => {
            let id = p.rotate_key(who).await?;
            println!(
                "new active key {id}; {} lists every public key",
                p.data_dir().join("signing.pub").display()
            );
        }
        PortalCommand::Audit { license, limit } => {
            for a in p.audit_log(license.as_deref(), limit).await? {
                println!(
                    "{}  {}  {}  {}  {}  {}",
                    portal::rfc3339(a.at),
                    a.who,
                    a.action,
                    a.license_id.as_deref().unwrap_or("-"),
                    a.customer_id.as_deref().unwrap_or("-"),
                    a.details
                );
            }
        }
        PortalCommand::Certify(a) => {
            let root = read_signing_key(&a.root_key)?;
            let (from, until) = validity(a.until.as_deref())?;
            let subject = a.subject.clone().unwrap_or_else(|| {
                p.data_dir()
                    .file_name()
                    .map_or_else(|| "portal".into(), |n| n.to_string_lossy().into_owned())
            });
            let cert = p
                .certify_active_key(who, &root, &subject, from, until)
                .await?;
            if let Some(out) = &a.out {
                write_new_or_same(out, &cert.to_armored())?;
            }
            print_certificate(&cert);
        }
        PortalCommand::Keygen { .. } | PortalCommand::Issue(_) => {
            bail!("keygen and issue do not use the portal database")
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn license_command(p: &Portal, cmd: LicenseCommand, who: &str) -> Result<()> {
    match cmd {
        LicenseCommand::Add {
            customer,
            channels,
            formal_end,
            trial,
            domain,
        } => {
            let formal_end = formal_end.map(|s| date(&s, "--formal-end")).transpose()?;
            let binding = match domain {
                Some(d) => BindingState::Domain(
                    license::normalize_domain(&d)
                        .with_context(|| format!("--domain {d:?} is not a domain name"))?,
                ),
                None => BindingState::Hwid(None),
            };
            let row = p
                .add_license(who, &customer, channels, formal_end, trial, binding)
                .await?;
            println!(
                "license {} for customer {}: {} channels, formal end {}{}",
                row.id,
                row.customer_id,
                row.channels,
                row.formal_end,
                if row.trial { " (trial)" } else { "" }
            );
            println!("{}", row.token);
        }
        LicenseCommand::List { customer } => {
            for row in p.licenses(customer.as_deref()).await? {
                print_license(&p.view(row).await?);
            }
        }
        LicenseCommand::Show(l) => {
            let v = p.view(p.license(&l.license).await?).await?;
            print_license(&v);
            println!("token {}", v.row.token);
            for g in &v.grants {
                println!("grant {}  {:?}", g.id, g.grant);
            }
            for c in &v.checkins {
                println!(
                    "check-in boot {}  install {}  hwid {}  version {}  first {}  last {}",
                    c.boot_id,
                    c.install_id,
                    c.hwid,
                    c.version,
                    portal::rfc3339(c.first_seen),
                    portal::rfc3339(c.last_seen)
                );
            }
        }
        LicenseCommand::Increase { l, channels, until } => {
            let g = p
                .increase(who, &l.license, channels, date(&until, "--until")?)
                .await?;
            println!("grant {}: limit {channels} until {until}", g.id);
        }
        LicenseCommand::EmergencyTrial(l) => {
            let row = p.emergency_trial(who, &l.license).await?;
            println!(
                "emergency trial {} for customer {}: {} channels until {}",
                row.id, row.customer_id, row.channels, row.formal_end
            );
            println!("{}", row.token);
        }
        LicenseCommand::AllowConcurrent { l, until, systems } => {
            let g = p
                .allow_concurrent(who, &l.license, systems, date(&until, "--until")?)
                .await?;
            println!("grant {}: {systems} systems until {until}", g.id);
        }
        LicenseCommand::Bind { l, hwid, domain } => {
            let target = Target::from_fields(hwid.as_deref(), domain.as_deref())?;
            let row = p.bind(who, &l.license, target).await?;
            println!("{} bound to {}", row.id, row.binding);
        }
        LicenseCommand::Cancel(l) => {
            let row = p.cancel(who, &l.license).await?;
            println!("{} cancelled: access ends after {}", row.id, row.formal_end);
        }
        LicenseCommand::Renew { l, months, paid } => {
            let o = p
                .place_order(who, &l.license, OrderRequest::Renewal { months })
                .await?;
            finish_order(p, who, o, paid).await?;
        }
        LicenseCommand::Upgrade { l, tier, paid } => {
            let tiers = p.tiers().await?;
            let t = tiers
                .iter()
                .find(|t| t.id == tier || t.channels.to_string() == tier)
                .with_context(|| {
                    format!(
                        "no tier {tier:?}; tiers: {}",
                        tiers
                            .iter()
                            .map(|t| format!("{} ({} channels)", t.id, t.channels))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
            let o = p
                .place_order(
                    who,
                    &l.license,
                    OrderRequest::Upgrade {
                        tier_id: t.id.clone(),
                    },
                )
                .await?;
            finish_order(p, who, o, paid).await?;
        }
    }
    Ok(())
}

async fn finish_order(p: &Portal, who: &str, o: portal::Order, paid: bool) -> Result<()> {
    let o = if paid {
        p.order_paid(who, &o.id).await?
    } else {
        o
    };
    println!("order {} {} {}", o.id, o.kind.as_str(), o.status.as_str());
    print_license(&p.view(p.license(&o.license_id).await?).await?);
    println!("{}", o.id);
    Ok(())
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
        "key {}: secret {} (keep it private), public {} (certify it with `portal certify --public-key`, or give it to a development build as --trusted-key)",
        key.public().id(),
        secret.display(),
        public.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read signing key {}", path.display()))?;
    SigningKey::from_armored(&text)
        .with_context(|| format!("{} is not a signing key", path.display()))
}

/// Certificate validity: from now until the end of `until` (UTC), default three years.
fn validity(until: Option<&str>) -> Result<(i64, i64)> {
    let now = jiff::Timestamp::now();
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let last = match until {
        Some(s) => date(s, "--until")?,
        None => today
            .checked_add(jiff::Span::new().years(3))
            .context("date out of range")?,
    };
    if last < today {
        bail!("--until {last} is in the past");
    }
    let end = last
        .tomorrow()
        .context("date out of range")?
        .to_zoned(jiff::tz::TimeZone::UTC)?
        .timestamp()
        .as_microsecond()
        - 1;
    // Valid from a minute ago: a server whose clock is slightly behind still accepts it.
    Ok((now.as_microsecond() - 60_000_000, end))
}

/// Writes `text` to a new file (a certificate is not secret, but never silently replaced).
fn write_new_or_same(path: &Path, text: &str) -> Result<()> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("cannot create {} (it must not exist yet)", path.display()))?;
    f.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

fn print_certificate(cert: &license::Certificate) {
    let t = &cert.terms;
    println!(
        "certified key {} ({}) with root {}: valid from {} until {}",
        t.key_id, t.subject, t.issuer, t.valid_from, t.valid_until
    );
}

/// `portal certify --public-key FILE --out CERT`: a key made by `portal keygen`, for
/// `portal issue --certificate`.
fn certify_file(a: &CertifyArgs) -> Result<ExitCode> {
    let root = read_signing_key(&a.root_key)?;
    let Some(path) = &a.public_key else {
        bail!("--public-key FILE is required here");
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read public key {}", path.display()))?;
    let key = license::PublicKey::from_armored(&text)
        .with_context(|| format!("{} is not a public key", path.display()))?;
    let (from, until) = validity(a.until.as_deref())?;
    let subject = a.subject.clone().unwrap_or_else(|| "offline issuer".into());
    let cert = license::Certificate::issue(&root, &key, &subject, from, until)
        .map_err(anyhow::Error::msg)?;
    let Some(out) = &a.out else {
        bail!("--out FILE is required with --public-key");
    };
    write_new_or_same(out, &cert.to_armored())?;
    print_certificate(&cert);
    println!("wrote {}", out.display());
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
    let key = read_signing_key(&a.signing_key)?;
    let certificate = a
        .certificate
        .as_ref()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read certificate {}", p.display()))?;
            license::Certificate::from_armored(&text)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("{} is not a key certificate", p.display()))
        })
        .transpose()?;
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
    let refresh_by = a
        .refresh_days
        .map(|d| {
            let t = now
                .checked_add(jiff::Span::new().hours(i64::from(d) * 24))
                .context("--refresh-days out of range")?;
            Ok::<_, anyhow::Error>(jiff::Timestamp::from_second(t.as_second())?)
        })
        .transpose()?;
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
        refresh_by,
    };
    let text = license::issue(&terms, &key, certificate.as_ref())?;
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

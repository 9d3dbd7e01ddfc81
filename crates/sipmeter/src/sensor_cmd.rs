//! `sipmeter sensor`: a remote sensor. Reads captures (files, a capture directory, or a live
//! interface when built with it), tracks calls, and ships closed legs to the central server
//! through a disk spool (see `sensor::spool`), with a heartbeat carrying its live legs and
//! spool backlog.
//!
//! Three threads: the reader (this one) turns captures into batches and writes each to the
//! spool before anything is sent; the sender sends the oldest spooled batch and deletes it
//! once the server acknowledged it (retrying with backoff); the heartbeat reports every few
//! seconds. Each capture file gets its own pipeline, finished at its end, so a file is either
//! wholly spooled (and recorded as done) or read again after a restart.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use calls::Leg;
use sensor::spool::{Progress, Spool, SpoolError};
use sensor::uplink::{Heartbeat, LiveLeg, Trust, Uplink, UplinkConfig, UplinkError};

use crate::config::{CommonFlags, FileConfig, Settings};

#[derive(Debug, clap::Args)]
pub struct SensorArgs {
    /// The central server, https://HOST:PORT (http:// only to loopback or with --insecure-http)
    #[arg(long, value_name = "URL")]
    server: String,
    /// This sensor's token (Settings › Sensors or `sipmeter sensors add`)
    #[arg(long, env = "SIPMETER_SENSOR_TOKEN", hide_env_values = true)]
    token: String,
    /// Accept only the server certificate with this SHA-256 fingerprint (SHA256:<hex>)
    #[arg(long, value_name = "SHA256:HEX", conflicts_with = "ca")]
    server_fingerprint: Option<String>,
    /// Accept a server certificate signed by the CA in this PEM file
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    /// Allow plain http:// to a non-loopback server (token and call data in clear)
    #[arg(long)]
    insecure_http: bool,
    /// Capture live from this network interface (needs a build with the `live` feature)
    #[arg(long, value_name = "IF", conflicts_with_all = ["pcap_dir", "paths"])]
    interface: Option<String>,
    /// With --interface: BPF capture filter (tcpdump syntax) [default: the SIP ports, VLANs and
    /// IP fragments]
    #[arg(long, value_name = "FILTER", requires = "interface")]
    filter: Option<String>,
    /// Take HEPv3 (Kamailio siptrace, OpenSIPS proto_hep, FreeSWITCH, Asterisk, heplify) on
    /// this address, UDP and TCP
    #[arg(long, value_name = "ADDR", conflicts_with_all = ["pcap_dir", "paths", "interface"])]
    hep_listen: Option<SocketAddr>,
    /// With --hep-listen: accept only HEP packets whose auth key chunk is this password
    #[arg(
        long,
        value_name = "PASSWORD",
        requires = "hep_listen",
        env = "SIPMETER_HEP_PASSWORD",
        hide_env_values = true
    )]
    hep_password: Option<String>,
    /// Read every capture put into DIR, each once (a rotating tcpdump -w -G directory)
    #[arg(long, value_name = "DIR", conflicts_with = "paths")]
    pcap_dir: Option<PathBuf>,
    /// With --pcap-dir: read what is there now, deliver it, and exit
    #[arg(long, requires = "pcap_dir")]
    once: bool,
    /// Largest spool on disk (K/M/G suffixes, powers of 1024); a full spool stops reading,
    /// is logged and reported to the server, and ends the sensor after --max-retry-time
    #[arg(long, value_name = "SIZE", default_value = "1G", value_parser = parse_size)]
    spool_max: u64,
    /// Give up (exit non-zero) when the server has acknowledged nothing for this long
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    max_retry_time: u64,
    /// Seconds between heartbeats
    #[arg(long, value_name = "SECONDS", default_value_t = 5)]
    heartbeat_s: u32,
    /// Legs per batch
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    batch_legs: usize,
    /// Capture files or directories (.pcap, .pcapng, .cap, also .gz): read, deliver, exit
    paths: Vec<PathBuf>,
}

/// `1G`, `200M`, `64K` or plain bytes.
fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{s:?} is not a size such as 512M or 2G"))
}

/// What the threads share.
struct Shared {
    spool: Mutex<Spool>,
    /// Signalled when a batch is spooled or acknowledged, and when something fails.
    changed: Condvar,
    live: Mutex<(Option<i64>, Vec<LiveLeg>)>,
    spool_full: AtomicBool,
    reading_done: AtomicBool,
    stop: AtomicBool,
    /// SIGTERM or SIGINT came: finish reading now, spool what was read, deliver for a while.
    interrupted: AtomicBool,
    /// Why the sensor must stop (a revoked token, an undeliverable backlog).
    fatal: Mutex<Option<String>>,
    legs_acked: AtomicU64,
    batches_acked: AtomicU64,
    /// Seconds from sending a batch to its acknowledgement, for the exit summary.
    ack_latency: Mutex<Vec<f64>>,
}

impl Shared {
    fn fail(&self, why: String) {
        if let Ok(mut f) = self.fatal.lock()
            && f.is_none()
        {
            *f = Some(why);
        }
        self.stop.store(true, Ordering::SeqCst);
        self.changed.notify_all();
    }

    fn fatal(&self) -> Option<String> {
        self.fatal.lock().ok().and_then(|f| f.clone())
    }
}

/// How long a sensor asked to stop (SIGTERM, SIGINT) keeps delivering its spool.
const DELIVERY_GRACE: Duration = Duration::from_secs(10);

/// How often `--pcap-dir` is listed, and how long a capture's size and time must stay the
/// same before it is read (the capture tool has finished it).
const POLL: Duration = Duration::from_secs(1);
const SETTLE: Duration = Duration::from_secs(1);

/// The first SIGTERM or SIGINT ends reading at once: the legs read so far (and, live, the
/// calls still up, as end-of-input legs) are spooled and delivered for up to
/// [`DELIVERY_GRACE`]. A second signal stops delivering too; the spool keeps the rest.
fn stop_on_signals(shared: Arc<Shared>) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .context("cannot start the signal handler")?;
    // Registered here, before reading starts, so no early signal falls to the default action.
    let (mut term, mut int) = runtime.block_on(async {
        Ok::<_, std::io::Error>((
            signal(SignalKind::terminate())?,
            signal(SignalKind::interrupt())?,
        ))
    })?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            runtime.block_on(async {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                eprintln!("sipmeter sensor: stopping: spooling what was read, then delivering it");
                shared.interrupted.store(true, Ordering::SeqCst);
                shared.changed.notify_all();
                // Deliver while the server answers, but do not keep a stopping service
                // waiting on an unreachable one: the spool keeps the rest for the next start.
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                    _ = tokio::time::sleep(DELIVERY_GRACE) => {}
                }
                shared.stop.store(true, Ordering::SeqCst);
                shared.changed.notify_all();
            })
        })?;
    Ok(())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panicking thread cannot leave the spool half-changed (each step is one file
    // operation), so the data behind a poisoned lock is still good.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn run(args: SensorArgs, file: &FileConfig, common: &CommonFlags) -> Result<ExitCode> {
    let settings = Settings::resolve(file, common, true)?;
    #[cfg(not(feature = "live"))]
    if let Some(ifname) = &args.interface {
        bail!(
            "--interface {ifname}: this sipmeter was built without the `live` feature (libpcap); \
             rebuild with `--features live`, or give capture files or --pcap-dir"
        );
    }
    if args.interface.is_none()
        && args.hep_listen.is_none()
        && args.pcap_dir.is_none()
        && args.paths.is_empty()
    {
        bail!(
            "nothing to read: give capture files, --pcap-dir DIR, --interface IF or --hep-listen ADDR"
        );
    }
    anyhow::ensure!(args.batch_legs > 0, "--batch-legs must be at least 1");
    anyhow::ensure!(
        (1..=3600).contains(&args.heartbeat_s),
        "--heartbeat-s must be between 1 and 3600"
    );
    let trust = match (&args.server_fingerprint, &args.ca) {
        (Some(f), _) => Trust::Fingerprint(sensor::uplink::parse_fingerprint(f)?),
        (None, Some(ca)) => Trust::Ca(ca.clone()),
        (None, None) => Trust::None,
    };
    let uplink = Uplink::new(&UplinkConfig {
        server: args.server.clone(),
        token: args.token.clone(),
        trust,
        insecure_http: args.insecure_http,
        timeout: Duration::from_secs(60),
    })?;
    std::fs::create_dir_all(&settings.data_dir)
        .with_context(|| format!("cannot create {}", settings.data_dir.display()))?;
    let spool = Spool::open(&settings.data_dir.join("spool"), args.spool_max)?;
    let mut progress = Progress::open(&settings.data_dir.join("sensor-progress.txt"))?;
    if !spool.is_empty() {
        let b = spool.backlog();
        eprintln!(
            "sipmeter sensor: {} batches ({} bytes) left in the spool by an earlier run; sending them first",
            b.batches, b.bytes
        );
    }
    let shared = Arc::new(Shared {
        spool: Mutex::new(spool),
        changed: Condvar::new(),
        live: Mutex::new((None, Vec::new())),
        spool_full: AtomicBool::new(false),
        reading_done: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        interrupted: AtomicBool::new(false),
        fatal: Mutex::new(None),
        legs_acked: AtomicU64::new(0),
        batches_acked: AtomicU64::new(0),
        ack_latency: Mutex::new(Vec::new()),
    });
    let uplink = Arc::new(uplink);
    let max_retry = Duration::from_secs(args.max_retry_time);
    let sender = {
        let (s, u) = (shared.clone(), uplink.clone());
        std::thread::Builder::new()
            .name("sender".into())
            .spawn(move || send_loop(&s, &u, max_retry))?
    };
    let heartbeat = {
        let (s, u) = (shared.clone(), uplink.clone());
        let hb = HeartbeatSettings {
            sensor_id: common.sensor_id.or(file.sensor_id),
            interval: args.heartbeat_s,
        };
        std::thread::Builder::new()
            .name("heartbeat".into())
            .spawn(move || heartbeat_loop(&s, &u, &hb))?
    };

    stop_on_signals(shared.clone())?;
    let reader = Reader {
        shared: &shared,
        pipeline: settings.pipeline.clone(),
        batch_legs: args.batch_legs,
        max_wait: max_retry,
    };
    let started = Instant::now();
    let read = match (&args.pcap_dir, args.hep_listen) {
        (None, Some(addr)) => reader.hep(addr, args.hep_password.clone(), args.heartbeat_s),
        #[cfg(feature = "live")]
        (None, None) if args.interface.is_some() => reader.live(
            args.interface.as_deref().unwrap_or_default(),
            args.filter.clone(),
            args.heartbeat_s,
        ),
        (None, None) => {
            let mut files = Vec::new();
            for p in &args.paths {
                files
                    .extend(capture::list_captures(p).with_context(|| format!("{}", p.display()))?);
            }
            reader.read_all(&files, &mut progress)
        }
        (Some(dir), _) => reader.watch(dir, args.once, &mut progress),
    };
    shared.reading_done.store(true, Ordering::SeqCst);
    shared.changed.notify_all();
    if let Err(e) = &read {
        shared.fail(format!("{e:#}"));
    }
    let _ = sender.join();
    shared.stop.store(true, Ordering::SeqCst);
    shared.changed.notify_all();
    let _ = heartbeat.join();
    let backlog = lock(&shared.spool).backlog();
    let (files, legs) = read.unwrap_or_default();
    if shared.fatal().is_none() && backlog.batches > 0 {
        eprintln!(
            "sipmeter sensor: stopped with {} batches ({} bytes) not yet acknowledged; they stay in the spool and are sent on the next start",
            backlog.batches, backlog.bytes
        );
        return Ok(ExitCode::FAILURE);
    }
    if let Some(why) = shared.fatal() {
        eprintln!(
            "sipmeter sensor: {why}\nsipmeter sensor: {} batches ({} bytes) stay in the spool and are sent on the next start",
            backlog.batches, backlog.bytes
        );
        return Ok(ExitCode::FAILURE);
    }
    eprintln!(
        "sipmeter sensor: {files} files, {legs} legs read; {} legs in {} batches acknowledged by the server; {:.2} s",
        shared.legs_acked.load(Ordering::Relaxed),
        shared.batches_acked.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    let mut lat = std::mem::take(&mut *lock(&shared.ack_latency));
    if !lat.is_empty() {
        lat.sort_by(f64::total_cmp);
        let q = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize] * 1e3;
        eprintln!(
            "sipmeter sensor: batch sent -> acknowledged: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            q(0.5),
            q(0.9),
            q(0.99),
            q(1.0)
        );
    }
    Ok(ExitCode::SUCCESS)
}

struct Reader<'a> {
    shared: &'a Arc<Shared>,
    pipeline: sensor::PipelineConfig,
    batch_legs: usize,
    /// How long a full spool may block reading before the sensor gives up.
    max_wait: Duration,
}

impl Reader<'_> {
    /// Spools one encoded batch, waiting while the spool is full (the sender frees space as
    /// the server acknowledges); an error when it stays full for `max_wait`.
    fn spool(&self, legs: &[Leg]) -> Result<()> {
        let batch = sensor::wire::encode(legs).context("cannot encode a batch of legs")?;
        let mut spool = lock(&self.shared.spool);
        let since = Instant::now();
        let mut reported = false;
        loop {
            if let Some(why) = self.shared.fatal() {
                bail!("{why}");
            }
            match spool.push(&batch) {
                Ok(_) => {
                    if reported {
                        eprintln!("sipmeter sensor: the spool has room again");
                    }
                    self.shared.spool_full.store(false, Ordering::SeqCst);
                    self.shared.changed.notify_all();
                    return Ok(());
                }
                Err(e @ SpoolError::Full { .. }) => {
                    self.shared.spool_full.store(true, Ordering::SeqCst);
                    if batch.len() as u64 > spool.cap() || since.elapsed() >= self.max_wait {
                        return Err(e).context("legs cannot be kept: reading stopped");
                    }
                    if !reported {
                        eprintln!("sipmeter sensor: {e}; reading waits for the server");
                        reported = true;
                    }
                    spool = self
                        .shared
                        .changed
                        .wait_timeout(spool, Duration::from_millis(500))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// One capture file through its own pipeline into the spool. Its legs.
    fn read_file(&self, path: &Path) -> Result<u64> {
        let mut pipeline = sensor::Pipeline::new(self.pipeline.clone());
        let mut pending: Vec<Leg> = Vec::new();
        let mut failed: Option<anyhow::Error> = None;
        let mut legs = 0u64;
        let report = pipeline.read_file(
            path,
            &mut |batch| {
                legs += batch.len() as u64;
                pending.extend(batch);
                if failed.is_none() && pending.len() >= self.batch_legs {
                    // Whole batches only: the rest waits for more legs, so that a file makes
                    // full batches and not a small one each time the pipeline hands over legs
                    // (every batch is a commit on the server).
                    let whole = pending.len() - pending.len() % self.batch_legs;
                    let full: Vec<Leg> = pending.drain(..whole).collect();
                    for chunk in full.chunks(self.batch_legs) {
                        if let Err(e) = self.spool(chunk) {
                            failed = Some(e);
                            break;
                        }
                    }
                }
            },
            &mut |_| {},
        );
        if let Some(e) = failed {
            return Err(e);
        }
        if let Some(err) = &report.error {
            eprintln!("sipmeter sensor: {err}");
        }
        let live: Vec<&Leg> = pipeline.tracker().live_legs().collect();
        let at = live.iter().map(|l| l.end.max(l.start)).max();
        *lock(&self.shared.live) = (at, live.iter().map(|l| live_leg(l)).collect());
        let rest = pipeline.finish();
        legs += rest.len() as u64;
        pending.extend(rest);
        for chunk in pending.chunks(self.batch_legs) {
            self.spool(chunk)?;
        }
        Ok(legs)
    }

    fn read_all(&self, files: &[PathBuf], progress: &mut Progress) -> Result<(u64, u64)> {
        let (mut n, mut legs) = (0u64, 0u64);
        for f in files {
            let key = Progress::key(f);
            if progress.is_done(&key) {
                continue;
            }
            if self.shared.interrupted.load(Ordering::SeqCst) {
                break;
            }
            legs += self.read_file(f)?;
            progress.mark_done(key)?;
            n += 1;
        }
        Ok((n, legs))
    }

    /// Captures from a network interface until the sensor must stop (see [`Reader::slices`]).
    #[cfg(feature = "live")]
    fn live(&self, interface: &str, filter: Option<String>, slice_s: u32) -> Result<(u64, u64)> {
        let mut cfg = capture::live::LiveConfig::new(interface);
        cfg.filter = filter;
        let mut source = sensor::live::LiveSource::open(&cfg, &self.pipeline)?;
        eprintln!(
            "sipmeter sensor: capturing on {} with the filter {:?}",
            source.interface(),
            source.filter()
        );
        self.slices(slice_s, |pipeline, slice_end, on_legs| {
            pipeline
                .run_live(&mut source, slice_end, on_legs)
                .map_err(anyhow::Error::from)
        })
    }

    /// Takes HEPv3 on `addr` (UDP and TCP) until the sensor must stop (see [`Reader::slices`]).
    fn hep(&self, addr: SocketAddr, password: Option<String>, slice_s: u32) -> Result<(u64, u64)> {
        let mut cfg = sensor::hep_listen::HepListenConfig::new(addr);
        cfg.password = password;
        let source = sensor::hep_listen::HepSource::open(&cfg)
            .with_context(|| format!("cannot listen for HEP on {addr}"))?;
        eprintln!(
            "sipmeter sensor: listening for HEPv3 on {} (UDP and TCP)",
            source.local_addr()
        );
        self.slices(slice_s, |pipeline, slice_end, on_legs| {
            pipeline.run_hep(&source, slice_end, on_legs);
            Ok(())
        })
    }

    /// Runs a live source until the sensor must stop, in slices of one heartbeat interval:
    /// between slices the legs closed in it are spooled (so a killed sensor loses at most the
    /// calls of one slice that were already over) and the live legs are taken for the
    /// heartbeat.
    fn slices(
        &self,
        slice_s: u32,
        mut run_slice: impl FnMut(
            &mut sensor::Pipeline,
            &AtomicBool,
            &mut dyn FnMut(Vec<Leg>),
        ) -> Result<()>,
    ) -> Result<(u64, u64)> {
        let mut pipeline = sensor::Pipeline::new(self.pipeline.clone());
        let slice_end = Arc::new(AtomicBool::new(false));
        let ticker = {
            let slice_end = slice_end.clone();
            let shared = self.shared.clone();
            let period = Duration::from_secs(u64::from(slice_s));
            std::thread::spawn(move || {
                let mut since = Instant::now();
                loop {
                    std::thread::sleep(Duration::from_millis(50));
                    if Arc::strong_count(&slice_end) == 1 {
                        return;
                    }
                    if since.elapsed() >= period || shared.interrupted.load(Ordering::SeqCst) {
                        slice_end.store(true, Ordering::SeqCst);
                        since = Instant::now();
                    }
                }
            })
        };
        let mut legs = 0u64;
        let result = loop {
            let mut closed: Vec<Leg> = Vec::new();
            if let Err(e) = run_slice(&mut pipeline, &slice_end, &mut |l| closed.extend(l)) {
                break Err(e);
            }
            let interrupted = self.shared.interrupted.load(Ordering::SeqCst);
            if interrupted {
                // Calls still up end here, as at the end of a capture file (end of input):
                // a partial leg kept beats a call lost with the process.
                closed.extend(pipeline.finish());
            }
            slice_end.store(false, Ordering::SeqCst);
            legs += closed.len() as u64;
            if let Some(e) = closed
                .chunks(self.batch_legs)
                .find_map(|c| self.spool(c).err())
            {
                break Err(e);
            }
            let now = jiff::Timestamp::now().as_microsecond();
            *lock(&self.shared.live) = (
                Some(now),
                pipeline.tracker().live_legs().map(live_leg).collect(),
            );
            if interrupted || self.shared.stop.load(Ordering::SeqCst) {
                break Ok((1, legs));
            }
        };
        drop(slice_end);
        let _ = ticker;
        result
    }

    fn watch(&self, dir: &Path, once: bool, progress: &mut Progress) -> Result<(u64, u64)> {
        let (mut n, mut legs) = (0u64, 0u64);
        let settle = if once { Duration::ZERO } else { SETTLE };
        let mut captures = sensor::watch::SettledCaptures::new(dir, settle);
        loop {
            let settled: Vec<PathBuf> = captures
                .poll(Instant::now(), |f, _| progress.is_done(&Progress::key(f)))
                .with_context(|| format!("{}", dir.display()))?
                .into_iter()
                .map(|(f, _)| f)
                .collect();
            let (files, read) = self.read_all(&settled, progress)?;
            n += files;
            legs += read;
            if once
                || self.shared.stop.load(Ordering::SeqCst)
                || self.shared.interrupted.load(Ordering::SeqCst)
            {
                return Ok((n, legs));
            }
            std::thread::sleep(POLL);
        }
    }
}

fn live_leg(l: &Leg) -> LiveLeg {
    LiveLeg {
        caller: l.caller.clone(),
        called: l.called.clone(),
        answered: l.answer.is_some(),
    }
}

/// Sends the oldest batch until the spool is empty and reading is over.
fn send_loop(shared: &Shared, uplink: &Uplink, max_retry: Duration) {
    let mut backoff = Duration::from_millis(100);
    let mut last_progress = Instant::now();
    let mut last_report: Option<Instant> = None;
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let next = {
            let spool = lock(&shared.spool);
            match spool.oldest() {
                Ok(Some(b)) => Some(b),
                Ok(None) => {
                    if shared.reading_done.load(Ordering::SeqCst) {
                        return;
                    }
                    last_progress = Instant::now();
                    let _ = shared
                        .changed
                        .wait_timeout(spool, Duration::from_millis(500));
                    None
                }
                Err(e) => {
                    drop(spool);
                    shared.fail(e.to_string());
                    return;
                }
            }
        };
        let Some((seq, data)) = next else { continue };
        let legs_hint = data.len();
        let sent = Instant::now();
        match uplink.send_batch(data) {
            Ok(ack) => {
                lock(&shared.ack_latency).push(sent.elapsed().as_secs_f64());
                if let Err(e) = lock(&shared.spool).ack(seq) {
                    shared.fail(e.to_string());
                    return;
                }
                shared
                    .legs_acked
                    .fetch_add(ack.inserted + ack.duplicates, Ordering::Relaxed);
                shared.batches_acked.fetch_add(1, Ordering::Relaxed);
                shared.changed.notify_all();
                if last_report.is_some() {
                    eprintln!("sipmeter sensor: the server acknowledges again");
                    last_report = None;
                }
                backoff = Duration::from_millis(100);
                last_progress = Instant::now();
            }
            Err(e) if e.is_transient() => {
                if last_progress.elapsed() >= max_retry {
                    shared.fail(format!(
                        "nothing acknowledged for {} s (--max-retry-time): {e}",
                        max_retry.as_secs()
                    ));
                    return;
                }
                if last_report.is_none_or(|t| t.elapsed() >= Duration::from_secs(30)) {
                    eprintln!(
                        "sipmeter sensor: {e}; batch {seq} ({legs_hint} bytes) stays spooled, retrying"
                    );
                    last_report = Some(Instant::now());
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
            Err(e) => {
                shared.fail(e.to_string());
                return;
            }
        }
    }
}

struct HeartbeatSettings {
    sensor_id: Option<u32>,
    interval: u32,
}

fn heartbeat_loop(shared: &Shared, uplink: &Uplink, hb: &HeartbeatSettings) {
    let beat = |shared: &Shared| {
        let backlog = lock(&shared.spool).backlog();
        let (live_at, live) = lock(&shared.live).clone();
        Heartbeat {
            sensor_id: hb.sensor_id,
            version: env!("CARGO_PKG_VERSION").to_string(),
            interval_s: hb.interval,
            spool_bytes: backlog.bytes,
            spool_batches: backlog.batches,
            spool_full: shared.spool_full.load(Ordering::SeqCst),
            live_at,
            live,
        }
    };
    loop {
        match uplink.heartbeat(&beat(shared)) {
            Ok(_) => {}
            Err(
                e @ (UplinkError::Unauthorized(_)
                | UplinkError::Rejected { .. }
                | UplinkError::Certificate(_)),
            ) => {
                shared.fail(e.to_string());
                return;
            }
            Err(_) => {} // The sender reports an unreachable server.
        }
        let deadline = Instant::now() + Duration::from_secs(u64::from(hb.interval));
        let mut guard = lock(&shared.live);
        while Instant::now() < deadline {
            if shared.stop.load(Ordering::SeqCst) {
                return;
            }
            // Sleep on the `changed` condvar's sibling: a short poll keeps shutdown prompt.
            drop(guard);
            std::thread::sleep(Duration::from_millis(100));
            guard = lock(&shared.live);
        }
    }
}

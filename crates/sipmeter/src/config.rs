//! The TOML configuration file and how command-line flags override it.
//!
//! Every key has a flag of the same name (`sip_ports` ↔ `--sip-ports`); a flag given on the
//! command line wins over the file, the file over the built-in default.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The keys of `--config-file`. Unknown keys are an error: a typo must not silently fall
/// back to a default.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    /// Where the CDRs are: a `postgres://` URL, or else SQLite in the data directory.
    pub database: Option<String>,
    pub sensor_id: Option<u32>,
    pub sip_ports: Option<String>,
    /// Read SIP only on `sip_ports` (default: SIP is found by its content on any port).
    pub sip_ports_only: Option<bool>,
    /// Kept for old files: `true` is the default now, `false` means `sip_ports_only = true`.
    pub sip_any_port: Option<bool>,
    pub keep_messages: Option<bool>,
    pub zombie_timeout_s: Option<u64>,
    pub absolute_timeout_s: Option<u64>,
    /// IANA zone whose days the license counts in (default UTC).
    pub license_time_zone: Option<String>,
    /// What occupies a channel: `signalling` = [start, end) (default), `answered` = [answer, end).
    pub channel_mode: Option<String>,
    /// License token `XXXX-XXXX-XXXX-XXXX` for the portal's Get License (`--set-license-key`).
    pub license_key: Option<String>,
    /// License file [default: `<data_dir>/license.key`].
    pub license_file: Option<PathBuf>,
    /// Operator-configured channel limit below the licensed one (`--channel-limit`).
    pub channel_limit: Option<u32>,
    /// Extra vendor public keys to trust besides the built-in ones (`--trusted-key`).
    pub trusted_keys: Option<Vec<PathBuf>>,
    /// Hardware id to use instead of the machine's own, for containers (`--hwid-override`).
    pub hwid_override: Option<String>,
    /// Domain name of this server, for domain-bound licenses (`--domain`).
    pub license_domain: Option<String>,
    /// SMTP relay `HOST:PORT` for e-mail alerts of `serve` (`--smtp`).
    pub smtp_relay: Option<String>,
    /// Sender address of e-mail alerts (`--smtp-from`).
    pub smtp_from: Option<String>,
    /// A reverse proxy in front of `serve` terminates TLS (`--behind-tls-proxy`).
    pub behind_tls_proxy: Option<bool>,
    /// The vendor's license portal, `http://host:port` (`--portal`): Get/Update License,
    /// the refresh before refresh-by and the check-ins.
    pub portal_url: Option<String>,
    /// Seconds between check-ins with the portal (`serve --portal-checkin-s`) [default: 600].
    pub portal_checkin_s: Option<u64>,
    /// PEM file of the CA an https portal's certificate chains to (`serve --portal-ca`)
    /// [default: the system's CA bundle].
    pub portal_ca_file: Option<PathBuf>,
    /// PEM file of CAs trusted for https alert webhooks and SMTP STARTTLS besides the system's
    /// CA bundle (`serve --alerts-ca`).
    pub alerts_ca_file: Option<PathBuf>,
}

impl FileConfig {
    /// The license time zone: `flag`, else the file's key, else UTC.
    pub fn time_zone(&self, flag: Option<&str>) -> Result<jiff::tz::TimeZone> {
        match flag.or(self.license_time_zone.as_deref()) {
            None => Ok(jiff::tz::TimeZone::UTC),
            Some(name) => jiff::tz::TimeZone::get(name).with_context(|| {
                format!("unknown time zone {name:?} (use an IANA name such as Europe/Prague)")
            }),
        }
    }

    /// The channel mode: `answered_only` (`--answered-only`) wins, then `flag`
    /// (`--channel-mode`), then the file's key.
    pub fn channel_mode(
        &self,
        flag: Option<&str>,
        answered_only: bool,
    ) -> Result<channels::ActiveMode> {
        if answered_only {
            return Ok(channels::ActiveMode::Answered);
        }
        match flag.or(self.channel_mode.as_deref()) {
            None | Some("signalling") => Ok(channels::ActiveMode::Signalling),
            Some("answered") => Ok(channels::ActiveMode::Answered),
            Some(other) => {
                bail!("channel_mode must be \"signalling\" or \"answered\", not {other:?}")
            }
        }
    }
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("config file {} is invalid", path.display()))
    }
}

/// Options shared by every command that reads captures, after merging file and flags.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    /// The CDR store: `database` if set (PostgreSQL URL), else SQLite in `data_dir`.
    pub database: store::Database,
    pub pipeline: sensor::PipelineConfig,
    pub channel_mode: channels::ActiveMode,
}

/// Flags that override [`FileConfig`] keys; `None` = not given.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonFlags {
    /// Data directory (database, license, state) [default: ./sipmeter-data]
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// CDR database: postgres://user@host/db, else SQLite in the data directory
    #[arg(long, global = true)]
    pub database: Option<String>,
    /// Sensor id written into the legs [default: 1]
    #[arg(long, global = true)]
    pub sensor_id: Option<u32>,
    /// SIP ports, tried first (SIP is also found by its content on any other port): list and
    /// ranges, e.g. 5060,5061,5080-5090 [default: 5060,5061]
    #[arg(long, global = true)]
    pub sip_ports: Option<String>,
    /// Read SIP only on the --sip-ports (no content detection on other ports)
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub sip_ports_only: Option<bool>,
    /// Detect SIP by content on any port: the default now, kept for old command lines
    /// (--sip-any-port=false is --sip-ports-only)
    #[arg(
        long,
        global = true,
        num_args = 0..=1,
        default_missing_value = "true",
        require_equals = true,
        hide = true
    )]
    pub sip_any_port: Option<bool>,
    /// Keep each leg's SIP messages for the message ladder [default: true when storing]
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    pub keep_messages: Option<bool>,
    /// Close an unanswered leg with no packet for this many seconds [default: 300]
    #[arg(long, global = true)]
    pub zombie_timeout_s: Option<u64>,
    /// Close any leg this many seconds after its start [default: 14400]
    #[arg(long, global = true)]
    pub absolute_timeout_s: Option<u64>,
    /// What occupies a channel: signalling = [start, end), answered = [answer, end)
    /// [default: signalling]
    #[arg(long, global = true, value_parser = ["signalling", "answered"])]
    pub channel_mode: Option<String>,
}

impl Settings {
    /// Merge defaults, the file and the flags. `storing` picks the default of `keep_messages`
    /// (messages cost memory and are only worth it when they are stored).
    pub fn resolve(file: &FileConfig, flags: &CommonFlags, storing: bool) -> Result<Settings> {
        let data_dir = flags
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from(store::DEFAULT_DATA_DIR));
        let sensor_id = flags.sensor_id.or(file.sensor_id).unwrap_or(1);
        if sensor_id == 0 {
            bail!("sensor id must be at least 1");
        }
        let mut pipeline = sensor::PipelineConfig::default();
        if let Some(ports) = flags.sip_ports.as_ref().or(file.sip_ports.as_ref()) {
            pipeline.capture.ports = capture::PortSet::parse(ports)
                .with_context(|| format!("invalid SIP port list {ports:?}"))?;
        }
        let ports_only = flags
            .sip_ports_only
            .or(file.sip_ports_only)
            .unwrap_or(false)
            || flags.sip_any_port.or(file.sip_any_port) == Some(false);
        pipeline.capture.detect_any_port = !ports_only;
        let t = &mut pipeline.tracker;
        t.sensor_id = sensor_id;
        t.keep_messages = flags
            .keep_messages
            .or(file.keep_messages)
            .unwrap_or(storing);
        if let Some(s) = flags.zombie_timeout_s.or(file.zombie_timeout_s) {
            t.zombie_timeout = seconds(s, "zombie_timeout_s")?;
        }
        if let Some(s) = flags.absolute_timeout_s.or(file.absolute_timeout_s) {
            t.absolute_timeout = seconds(s, "absolute_timeout_s")?;
        }
        let channel_mode = file.channel_mode(flags.channel_mode.as_deref(), false)?;
        let database = store::Database::from_setting(
            flags.database.as_deref().or(file.database.as_deref()),
            &data_dir,
        );
        Ok(Settings {
            data_dir,
            database,
            pipeline,
            channel_mode,
        })
    }
}

fn seconds(s: u64, key: &str) -> Result<i64> {
    if s == 0 || s > 30 * 86_400 {
        bail!("{key} must be between 1 and 2592000 seconds, not {s}");
    }
    Ok(s as i64 * 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let file: FileConfig = toml::from_str(
            "data_dir = \"/srv/sm\"\nsensor_id = 7\nsip_ports = \"5060,5080-5081\"\nzombie_timeout_s = 60\n",
        )
        .unwrap();
        let flags = CommonFlags {
            sensor_id: Some(9),
            ..CommonFlags::default()
        };
        let s = Settings::resolve(&file, &flags, false).unwrap();
        assert_eq!(s.data_dir, PathBuf::from("/srv/sm"));
        assert_eq!(s.pipeline.tracker.sensor_id, 9);
        assert!(s.pipeline.capture.ports.contains(5081));
        assert!(!s.pipeline.capture.ports.contains(5061));
        assert_eq!(s.pipeline.tracker.zombie_timeout, 60_000_000);
        assert!(!s.pipeline.tracker.keep_messages);

        let d = Settings::resolve(&FileConfig::default(), &CommonFlags::default(), true).unwrap();
        assert_eq!(d.data_dir, PathBuf::from("./sipmeter-data"));
        assert!(d.pipeline.capture.ports.contains(5061));
        assert!(d.pipeline.tracker.keep_messages);
        assert!(
            d.pipeline.capture.detect_any_port,
            "SIP on any port by default"
        );
    }

    #[test]
    fn sip_ports_only_and_the_old_any_port_key() {
        let resolve = |file: &str, flags: CommonFlags| {
            let file: FileConfig = toml::from_str(file).unwrap();
            Settings::resolve(&file, &flags, false)
                .unwrap()
                .pipeline
                .capture
                .detect_any_port
        };
        let only = CommonFlags {
            sip_ports_only: Some(true),
            ..CommonFlags::default()
        };
        assert!(!resolve("", only));
        assert!(!resolve("sip_ports_only = true", CommonFlags::default()));
        assert!(resolve("sip_any_port = true", CommonFlags::default()));
        assert!(!resolve("sip_any_port = false", CommonFlags::default()));
        let not_only = CommonFlags {
            sip_ports_only: Some(false),
            ..CommonFlags::default()
        };
        assert!(resolve("sip_ports_only = true", not_only));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let err = toml::from_str::<FileConfig>("sip_prots = \"5060\"").unwrap_err();
        assert!(err.to_string().contains("sip_prots"), "{err}");
        let file = FileConfig {
            sip_ports: Some("5060,abc".into()),
            ..FileConfig::default()
        };
        let err = Settings::resolve(&file, &CommonFlags::default(), false).unwrap_err();
        assert!(format!("{err:#}").contains("5060,abc"), "{err:#}");
    }
}

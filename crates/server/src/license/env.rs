//! The facts `license::status` needs, gathered from this machine and the data directory:
//! the license file, the hardware id, the persisted clock high-water mark, the stored token and
//! the daily channel peaks. Shared by `sipmeter license …` and the server, so that both give
//! the same answer for the same data directory.

use std::io::Write;
use std::path::{Path, PathBuf};

use calls::Micros;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use license::rand_core::RngCore;
use license::{
    DailyPeak, Hwid, Keyring, LicenseFile, LicenseToken, MachineIdentity, ResolvedHwid, Status,
    StatusInput,
};

/// Name of the license file in the data directory.
pub const LICENSE_FILE_NAME: &str = "license.key";
/// The previous license file, kept when a new one is installed.
pub const OLD_SUFFIX: &str = ".old";
/// The license token (`--set-license-key`, Settings > License).
pub const TOKEN_FILE_NAME: &str = "license.token";
/// The operator's channel limit set in Settings > License: the number alone, or no file.
/// A file (not a store row) so that `sipmeter license status` reads it without opening the
/// database, and so that an operator can also see or remove it by hand.
pub const LIMIT_FILE_NAME: &str = "channel-limit";
/// Random hardware id source for machines without machine-id or DMI uuid.
pub const FALLBACK_FILE_NAME: &str = "hwid-fallback";
/// High-water mark of the clock (RFC 3339), to notice a clock set back.
pub const CLOCK_FILE_NAME: &str = "license.clock";
/// This installation's id (a UUID created once), sent with check-ins so that the portal can
/// tell a restart of this installation from an identical clone running beside it.
pub const INSTALL_ID_FILE_NAME: &str = "install-id";
/// The portal's word that the installed license moved to another system (JSON
/// [`license::Superseded`]); removed when a license is installed.
pub const SUPERSEDED_FILE_NAME: &str = "license.superseded";
/// The portal URL given with `--set-license-key TOKEN --portal URL`, used when the
/// configuration names none.
pub const PORTAL_URL_FILE_NAME: &str = "portal-url";
/// This installation's check-in signing key (armored, mode 0600), made on first use; its
/// public half is registered with the portal by Get License.
pub const INSTALL_KEY_FILE_NAME: &str = "install.key";
/// Days of daily peaks read for the over-limit timeline. The state needs 15 days; more
/// lets the status name the whole offending streak of a long lock.
pub const PEAK_HISTORY_DAYS: i64 = 62;
/// The persisted clock mark is rewritten only when it moved this far: a server asks for the
/// status every few seconds, and the set-back check allows an hour of slack
/// ([`license::CLOCK_SET_BACK_TOLERANCE_US`]), so a minute of lag costs nothing.
pub const HIGH_WATER_STEP_US: Micros = 60_000_000;

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid license token: {0}")]
    Token(String),
    #[error("cannot determine a hardware id")]
    NoHwid,
    #[error("date out of range")]
    DateRange,
    #[error("channel statistics: {0}")]
    Channels(#[from] channels::ChannelsError),
}

/// Base name of a path for messages (`license.key`), as users know the file by it.
pub fn display_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// The file's text, `None` when it does not exist. Invalid UTF-8 is kept (lossily) so that
/// verification reports a malformed license instead of an I/O error.
pub fn read_optional(path: &Path) -> Result<Option<String>, EnvError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(EnvError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Replaces `path` by `contents` atomically (write beside it, then rename), so a crash never
/// leaves half a license or a truncated clock file.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), EnvError> {
    let err = |source| EnvError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    // Beside the target under a name of its own: `with_extension` gave `license.key` and
    // `license.clock` the same temporary file, so a status computation persisting the clock
    // mark could rename a half-written license away (seen in the portal refresh test). The
    // process id and a counter keep two writers of the same file apart too.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}-{n}.tmp-write", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(contents).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.map_err(err)
}

/// The machine's hardware id. Creates and persists the fallback id when the machine has no
/// machine-id and no readable DMI uuid (containers), so the id stays the same afterwards;
/// the second value is the fallback file when it was just created (worth telling the user).
pub fn machine_hwid(
    data_dir: &Path,
    hwid_override: Option<Hwid>,
) -> Result<(ResolvedHwid, Option<PathBuf>), EnvError> {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let fallback_path = data_dir.join(FALLBACK_FILE_NAME);
    let mut machine = MachineIdentity {
        machine_id: read("/etc/machine-id").or_else(|| read("/var/lib/dbus/machine-id")),
        dmi_product_uuid: read("/sys/class/dmi/id/product_uuid"),
        fallback_id: read_optional(&fallback_path)?,
        hwid_override,
    };
    if let Some(r) = license::resolve_hwid(&machine) {
        return Ok((r, None));
    }
    let mut random = [0u8; 16];
    license::OsRng.fill_bytes(&mut random);
    let id = license::new_fallback_id(random);
    write_atomic(&fallback_path, format!("{id}\n").as_bytes())?;
    machine.fallback_id = Some(id);
    let r = license::resolve_hwid(&machine).ok_or(EnvError::NoHwid)?;
    Ok((r, Some(fallback_path)))
}

/// A random (version 4) UUID, for the install id and the boot id.
pub fn new_uuid() -> String {
    let mut b = [0u8; 16];
    license::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// This installation's id from [`INSTALL_ID_FILE_NAME`], created on first use. A file that
/// does not hold a UUID is replaced (and the second value says so): the id only has to stay
/// the same from now on, and refusing to start over it would help nobody.
pub fn install_id(data_dir: &Path) -> Result<(String, bool), EnvError> {
    let path = data_dir.join(INSTALL_ID_FILE_NAME);
    let old = read_optional(&path)?;
    if let Some(id) = old.as_deref().map(str::trim).filter(|s| is_uuid(s)) {
        return Ok((id.to_ascii_lowercase(), false));
    }
    let id = new_uuid();
    write_atomic(&path, format!("{id}\n").as_bytes())?;
    Ok((id, old.is_some()))
}

/// This installation's check-in key, created (mode 0600) on first use. A file that is not a
/// key is an error naming it: replacing it would silently unregister this installation.
pub fn install_key(data_dir: &Path) -> Result<license::SigningKey, EnvError> {
    let path = data_dir.join(INSTALL_KEY_FILE_NAME);
    if let Some(text) = read_optional(&path)? {
        return license::SigningKey::from_armored(&text).map_err(|e| EnvError::Read {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
        });
    }
    let key = license::SigningKey::generate(&mut license::OsRng);
    write_private(&path, key.to_armored().as_bytes())?;
    Ok(key)
}

/// [`write_atomic`] for a secret: readable by the owner only, from the first byte.
fn write_private(path: &Path, contents: &[u8]) -> Result<(), EnvError> {
    write_atomic(path, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| EnvError::Write {
                path: path.to_owned(),
                source,
            },
        )?;
    }
    Ok(())
}

/// The portal's `superseded` word about the installed license, if it was given. A damaged
/// file counts as none: it can only have been written by us, and a lock must not hang on it.
pub fn read_superseded(data_dir: &Path) -> Result<Option<license::Superseded>, EnvError> {
    let text = read_optional(&data_dir.join(SUPERSEDED_FILE_NAME))?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()))
}

/// Records that the portal said license `license_id` moved elsewhere, keeping the first time
/// it was said (the countdown runs from then, however often it is repeated).
pub fn record_superseded(
    data_dir: &Path,
    license_id: &str,
    now: Micros,
) -> Result<license::Superseded, EnvError> {
    if let Some(s) = read_superseded(data_dir)?.filter(|s| s.license_id == license_id) {
        return Ok(s);
    }
    let s = license::Superseded {
        license_id: license_id.to_string(),
        since: now,
    };
    let json = serde_json::to_vec(&s).unwrap_or_default();
    write_atomic(&data_dir.join(SUPERSEDED_FILE_NAME), &json)?;
    Ok(s)
}

/// Forgets the `superseded` word (a license was installed: the countdown is over).
pub fn clear_superseded(data_dir: &Path) -> Result<(), EnvError> {
    remove_optional(&data_dir.join(SUPERSEDED_FILE_NAME))
}

fn remove_optional(path: &Path) -> Result<(), EnvError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(EnvError::Write {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The portal URL stored by `--set-license-key --portal URL`, if any.
pub fn stored_portal_url(data_dir: &Path) -> Result<Option<String>, EnvError> {
    let text = read_optional(&data_dir.join(PORTAL_URL_FILE_NAME))?;
    Ok(text.map(|t| t.trim().to_string()).filter(|t| !t.is_empty()))
}

pub fn store_portal_url(data_dir: &Path, url: &str) -> Result<PathBuf, EnvError> {
    let path = data_dir.join(PORTAL_URL_FILE_NAME);
    write_atomic(&path, format!("{}\n", url.trim()).as_bytes())?;
    Ok(path)
}

/// The stored token (data directory) or, failing that, the configured one.
pub fn stored_token(
    data_dir: &Path,
    configured: Option<&str>,
) -> Result<Option<LicenseToken>, EnvError> {
    let stored = read_optional(&data_dir.join(TOKEN_FILE_NAME))?;
    match stored.as_deref().or(configured) {
        None => Ok(None),
        Some(t) => t
            .trim()
            .parse::<LicenseToken>()
            .map(Some)
            .map_err(|e| EnvError::Token(e.to_string())),
    }
}

/// Stores the license token for the portal's Get License.
pub fn store_token(data_dir: &Path, token: &LicenseToken) -> Result<PathBuf, EnvError> {
    let path = data_dir.join(TOKEN_FILE_NAME);
    write_atomic(&path, format!("{token}\n").as_bytes())?;
    Ok(path)
}

/// The persisted clock high-water mark; an unreadable file counts as none (the second value
/// says so, for a message), since refusing to start over it would help nobody.
pub fn read_high_water(data_dir: &Path) -> Result<(Option<Micros>, bool), EnvError> {
    let Some(text) = read_optional(&data_dir.join(CLOCK_FILE_NAME))? else {
        return Ok((None, false));
    };
    match text.trim().parse::<jiff::Timestamp>() {
        Ok(t) => Ok((Some(t.as_microsecond()), false)),
        Err(_) => Ok((None, true)),
    }
}

pub fn write_high_water(data_dir: &Path, us: Micros) -> Result<(), EnvError> {
    let t = license::timestamp(us).ok_or(EnvError::DateRange)?;
    write_atomic(&data_dir.join(CLOCK_FILE_NAME), format!("{t}\n").as_bytes())
}

/// Parses an operator channel limit as typed in the form or found in [`LIMIT_FILE_NAME`]:
/// empty means none (clears it), otherwise a whole number of at least 1. The error names the
/// field, since it is shown to the user as is.
pub fn parse_limit(text: &str) -> Result<Option<u32>, String> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    match t.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(Some(n)),
        _ => Err(format!(
            "Configured channel limit must be a whole number of at least 1 (or empty to clear it), not {t:?}."
        )),
    }
}

/// The channel limit stored by Settings > License. `Err` carries the file's content when it
/// is not a valid limit: the caller then ignores it and says so, because refusing to compute
/// the license status over a hand-edited file would lock nothing and help nobody.
pub fn read_stored_limit(data_dir: &Path) -> Result<Result<Option<u32>, String>, EnvError> {
    let path = data_dir.join(LIMIT_FILE_NAME);
    Ok(match read_optional(&path)? {
        None => Ok(None),
        Some(text) => parse_limit(&text).map_err(|_| text.trim().to_string()),
    })
}

/// Stores (`Some`) or clears (`None`) the operator channel limit of Settings > License.
pub fn store_limit(data_dir: &Path, limit: Option<u32>) -> Result<(), EnvError> {
    let path = data_dir.join(LIMIT_FILE_NAME);
    match limit {
        Some(n) => write_atomic(&path, format!("{n}\n").as_bytes()),
        None => remove_optional(&path),
    }
}

/// Where the operator channel limit in force comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitSource {
    /// `license status --channel-limit N`: a one-run what-if.
    Override,
    /// Settings > License (the [`LIMIT_FILE_NAME`] file in the data directory).
    Settings,
    /// The config key `channel_limit` (or `serve --channel-limit`), read at start.
    Config,
}

impl LimitSource {
    pub fn describe(self) -> &'static str {
        match self {
            LimitSource::Override => "--channel-limit for this run",
            LimitSource::Settings => "set in Settings › License",
            LimitSource::Config => "from the configuration (channel_limit)",
        }
    }
}

/// The operator channel limit in force and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorLimit {
    pub limit: Option<u32>,
    pub source: Option<LimitSource>,
    /// A [`LIMIT_FILE_NAME`] that is not a valid limit and was ignored, for a warning.
    pub ignored_file: Option<String>,
}

/// The local days whose peaks the timeline reads, and their UTC bounds `[from, to)`.
pub struct PeakWindow {
    pub first: Date,
    pub today: Date,
    pub from: Micros,
    pub to: Micros,
}

pub fn peak_window(today: Date, tz: &TimeZone) -> Result<PeakWindow, EnvError> {
    let first = today
        .checked_sub(jiff::Span::new().days(PEAK_HISTORY_DAYS - 1))
        .map_err(|_| EnvError::DateRange)?;
    let tomorrow = today.tomorrow().map_err(|_| EnvError::DateRange)?;
    Ok(PeakWindow {
        first,
        today,
        from: channels::day_start(first, tz)?,
        to: channels::day_start(tomorrow, tz)?,
    })
}

/// Daily peaks (license time zone) from the channel engine's minute rows of the window.
pub fn daily_peaks(
    rows: &[channels::MinuteRow],
    tz: &TimeZone,
    window: &PeakWindow,
) -> Result<Vec<DailyPeak>, EnvError> {
    let report = channels::report(rows, tz, window.first, window.today)?;
    Ok(report
        .days
        .iter()
        .filter_map(|d| {
            d.stats.peak.map(|p| DailyPeak {
                date: d.day,
                peak: p.value,
            })
        })
        .collect())
}

/// Everything about this installation's license that does not change by itself: where the
/// file is, which keys to trust, who we are.
#[derive(Debug, Clone)]
pub struct LicenseSetup {
    pub data_dir: PathBuf,
    pub license_path: PathBuf,
    pub keyring: Keyring,
    pub hwid: ResolvedHwid,
    pub domain: Option<String>,
    /// The operator limit configured at start (config `channel_limit`, `serve --channel-limit`).
    /// The value set in Settings > License wins over it, so that an operator can raise a
    /// configured limit back to the license's entitlement without a restart.
    pub operator_limit: Option<u32>,
    /// A limit that wins over everything for this one run (`license status --channel-limit`),
    /// a what-if like `--now`; `None` in the server.
    pub operator_limit_override: Option<u32>,
    pub tz: TimeZone,
}

impl LicenseSetup {
    /// The operator limit in force, read afresh on every call (the file may have changed since
    /// the last one): the one-run override, else Settings > License, else the configuration.
    pub fn operator_limit(&self) -> Result<OperatorLimit, EnvError> {
        if let Some(n) = self.operator_limit_override {
            return Ok(OperatorLimit {
                limit: Some(n),
                source: Some(LimitSource::Override),
                ignored_file: None,
            });
        }
        let (stored, ignored_file) = match read_stored_limit(&self.data_dir)? {
            Ok(n) => (n, None),
            Err(text) => (None, Some(text)),
        };
        let (limit, source) = match (stored, self.operator_limit) {
            (Some(n), _) => (Some(n), Some(LimitSource::Settings)),
            (None, Some(n)) => (Some(n), Some(LimitSource::Config)),
            (None, None) => (None, None),
        };
        Ok(OperatorLimit {
            limit,
            source,
            ignored_file,
        })
    }

    /// The status at `now` given the daily peaks. When `persist` is set the clock
    /// high-water mark is advanced on disk (a what-if evaluation must not move it).
    pub fn status(
        &self,
        now: Micros,
        peaks: &[DailyPeak],
        persist: bool,
    ) -> Result<Status, EnvError> {
        let text = read_optional(&self.license_path)?;
        let name = display_name(&self.license_path);
        let (high_water, _) = read_high_water(&self.data_dir)?;
        let operator = self.operator_limit()?;
        let superseded = read_superseded(&self.data_dir)?;
        let mut st = license::status(&StatusInput {
            license: text
                .as_deref()
                .map(|text| LicenseFile { name: &name, text }),
            keyring: &self.keyring,
            hwid: self.hwid,
            domain: self.domain.as_deref(),
            now,
            time_zone: &self.tz,
            high_water,
            operator_limit: operator.limit,
            daily_peaks: peaks,
            superseded: superseded.as_ref(),
        });
        if let Some(text) = operator.ignored_file {
            st.warnings.push(format!(
                "{LIMIT_FILE_NAME} in the data directory holds {text:?}, not a whole number of at least 1; ignored. Set or clear the configured channel limit in Settings › License."
            ));
        }
        let moved =
            high_water.is_none_or(|h| st.high_water >= h.saturating_add(HIGH_WATER_STEP_US));
        if persist && moved {
            write_high_water(&self.data_dir, st.high_water)?;
        }
        Ok(st)
    }

    /// Verifies `text` as a license for this installation at `now`, with the compiled-in
    /// roots (and, in a development build, the `--trusted-key` keys) and nothing else.
    pub fn verify(
        &self,
        text: &str,
        now: Micros,
    ) -> Result<license::Verified, license::VerifyError> {
        let name = display_name(&self.license_path);
        let high_water = read_high_water(&self.data_dir).ok().and_then(|h| h.0);
        license::verify(
            text,
            &name,
            &license::VerifyContext {
                keyring: &self.keyring,
                hwid: self.hwid.hwid,
                domain: self.domain.as_deref(),
                now,
                high_water,
                time_zone: &self.tz,
            },
        )
    }

    /// Makes `text` (which `verified` says is a license for this installation) the license
    /// file, keeping the previous one beside it.
    pub fn install(&self, text: &str, verified: &license::Verified) -> Result<(), EnvError> {
        let target = &self.license_path;
        if target.exists() {
            let mut old = target.as_os_str().to_owned();
            old.push(OLD_SUFFIX);
            let old = PathBuf::from(old);
            std::fs::copy(target, &old).map_err(|source| EnvError::Write { path: old, source })?;
        }
        write_atomic(target, text.as_bytes())?;
        // Another license, or the moved one issued again after the move (moved back here),
        // ends the countdown. Re-installing the old file does not: it would restart it.
        if let Some(s) = read_superseded(&self.data_dir)? {
            let t = &verified.terms;
            if t.license_id != s.license_id || t.issued_at.as_microsecond() > s.since {
                clear_superseded(&self.data_dir)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The license file and the clock mark are written from different tasks (Get License,
    /// status computations); neither write may disturb the other.
    #[test]
    fn atomic_writes_of_different_files_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let (key, clock) = (
            dir.path().join("license.key"),
            dir.path().join("license.clock"),
        );
        std::thread::scope(|s| {
            for (path, text) in [(&key, "key"), (&clock, "clock")] {
                s.spawn(move || {
                    for i in 0..300 {
                        write_atomic(path, format!("{text} {i}").as_bytes()).unwrap();
                    }
                });
            }
        });
        assert_eq!(std::fs::read_to_string(&key).unwrap(), "key 299");
        assert_eq!(std::fs::read_to_string(&clock).unwrap(), "clock 299");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temporary left"
        );
    }

    #[test]
    fn the_install_id_is_created_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (id, replaced) = install_id(dir.path()).unwrap();
        assert!(is_uuid(&id) && !replaced, "{id}");
        assert_eq!(&id[14..15], "4", "version 4: {id}");
        assert_eq!(install_id(dir.path()).unwrap(), (id.clone(), false));
        std::fs::write(dir.path().join(INSTALL_ID_FILE_NAME), "garbage").unwrap();
        let (new, replaced) = install_id(dir.path()).unwrap();
        assert!(replaced && new != id && is_uuid(&new));
        assert_ne!(new_uuid(), new_uuid());
    }
}

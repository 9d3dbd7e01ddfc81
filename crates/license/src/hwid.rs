//! Hardware id: which machine a hardware-bound license belongs to.
//!
//! The id is a keyed hash (HMAC-SHA-256 with a fixed product key, truncated to 64 bits) of
//! the most stable identity the machine has, shown as `XXXX-XXXX-XXXX-XXXX`. Hashing keeps
//! the raw machine-id private (machine-id(5) asks applications not to expose it), and the
//! product key makes our id useless for correlating the machine with other software.
//!
//! Sources, first usable one wins:
//! 1. an operator override (containers, whose machine-id changes with every image) —
//!    reported as an override so support can see it;
//! 2. the machine-id (`/etc/machine-id`);
//! 3. the DMI product uuid, only when there is no machine-id;
//! 4. a random fallback id that the caller persists in the data directory.
//!
//! The DMI uuid is deliberately not mixed into a machine-id based id: hypervisors give a
//! cloned VM a new product uuid while the machine-id is copied, and the product promise is
//! that a VM clone keeps its hardware id and its license.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The hardware id `XXXX-XXXX-XXXX-XXXX` (uppercase hex).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hwid(pub [u8; 8]);

impl fmt::Display for Hwid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, pair) in self.0.chunks(2).enumerate() {
            if i > 0 {
                f.write_str("-")?;
            }
            write!(f, "{:02X}{:02X}", pair[0], pair[1])?;
        }
        Ok(())
    }
}

impl FromStr for Hwid {
    type Err = String;

    /// Accepts upper- or lowercase hex in four dash-separated groups of four.
    fn from_str(s: &str) -> Result<Hwid, String> {
        let groups = parse_groups(s, |c| c.is_ascii_hexdigit())
            .ok_or_else(|| format!("{s:?} is not a hardware id (XXXX-XXXX-XXXX-XXXX, hex)"))?;
        let mut out = [0u8; 8];
        for (i, byte) in out.iter_mut().enumerate() {
            let pair = &groups[i * 2..i * 2 + 2];
            *byte = u8::from_str_radix(pair, 16).map_err(|e| e.to_string())?;
        }
        Ok(Hwid(out))
    }
}

impl Serialize for Hwid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Hwid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Hwid, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The 16 characters of `XXXX-XXXX-XXXX-XXXX` if `s` has exactly that shape.
fn parse_groups(s: &str, ok: impl Fn(char) -> bool) -> Option<String> {
    let parts: Vec<&str> = s.split('-').collect();
    if parts.len() != 4
        || parts
            .iter()
            .any(|p| p.len() != 4 || !p.chars().all(|c| c.is_ascii() && ok(c)))
    {
        return None;
    }
    Some(parts.concat())
}

/// A license token `XXXX-XXXX-XXXX-XXXX` (letters and digits) that the portal exchanges for
/// a license file. Stored uppercase, so a token typed in lowercase is the same token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LicenseToken(String);

impl LicenseToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LicenseToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for LicenseToken {
    type Err = String;

    fn from_str(s: &str) -> Result<LicenseToken, String> {
        let t = s.trim();
        parse_groups(t, |c| c.is_ascii_alphanumeric()).ok_or_else(|| {
            format!("{t:?} is not a license token (XXXX-XXXX-XXXX-XXXX, letters and digits)")
        })?;
        Ok(LicenseToken(t.to_ascii_uppercase()))
    }
}

/// Where the hardware id came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HwidSource {
    Override,
    MachineId,
    DmiProductUuid,
    Fallback,
}

impl HwidSource {
    pub fn describe(self) -> &'static str {
        match self {
            HwidSource::Override => "operator override (hwid_override)",
            HwidSource::MachineId => "machine-id",
            HwidSource::DmiProductUuid => "DMI product uuid",
            HwidSource::Fallback => "fallback id in the data directory",
        }
    }
}

/// What the caller read about the machine. Raw contents, untrimmed, as read from the files;
/// `None` where a file is missing or unreadable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MachineIdentity {
    pub machine_id: Option<String>,
    pub dmi_product_uuid: Option<String>,
    /// The persisted fallback id (see [`new_fallback_id`]), if one exists.
    pub fallback_id: Option<String>,
    pub hwid_override: Option<Hwid>,
}

/// A hardware id and its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolvedHwid {
    pub hwid: Hwid,
    pub source: HwidSource,
}

/// The machine's hardware id, or `None` when the machine has no stable identity at all:
/// then the caller creates a fallback id with [`new_fallback_id`], persists it, and asks
/// again with it filled in.
pub fn resolve_hwid(m: &MachineIdentity) -> Option<ResolvedHwid> {
    if let Some(hwid) = m.hwid_override {
        return Some(ResolvedHwid {
            hwid,
            source: HwidSource::Override,
        });
    }
    let sources = [
        (
            m.machine_id.as_deref().and_then(clean_machine_id),
            HwidSource::MachineId,
            "machine-id",
        ),
        (
            m.dmi_product_uuid.as_deref().and_then(clean_uuid),
            HwidSource::DmiProductUuid,
            "dmi-uuid",
        ),
        (
            m.fallback_id.as_deref().and_then(clean_fallback),
            HwidSource::Fallback,
            "fallback",
        ),
    ];
    sources.into_iter().find_map(|(value, source, tag)| {
        value.map(|v| ResolvedHwid {
            hwid: keyed_hash(tag, &v),
            source,
        })
    })
}

/// A new fallback id from 16 random bytes (the caller supplies them, e.g. from
/// [`crate::OsRng`]): 32 lowercase hex characters, the shape of a machine-id.
pub fn new_fallback_id(random: [u8; 16]) -> String {
    random.iter().map(|b| format!("{b:02x}")).collect()
}

/// machine-id: trimmed, lowercase; empty and systemd's "uninitialized" placeholder are no id.
fn clean_machine_id(raw: &str) -> Option<String> {
    let v = raw.trim().to_ascii_lowercase();
    (!v.is_empty() && v != "uninitialized" && v.chars().any(|c| c != '0')).then_some(v)
}

/// DMI product uuid: firmware fills in placeholders (all zeros, all F, "Not Settable") that
/// are the same on many machines, so those are no id.
fn clean_uuid(raw: &str) -> Option<String> {
    let v = raw.trim().to_ascii_lowercase();
    let hex: String = v.chars().filter(|c| *c != '-').collect();
    let placeholder = hex.is_empty()
        || !hex.chars().all(|c| c.is_ascii_hexdigit())
        || hex.chars().all(|c| c == '0')
        || hex.chars().all(|c| c == 'f');
    (!placeholder).then_some(v)
}

fn clean_fallback(raw: &str) -> Option<String> {
    let v = raw.trim().to_ascii_lowercase();
    (v.len() == 32 && v.chars().all(|c| c.is_ascii_hexdigit())).then_some(v)
}

/// HMAC-SHA-256 under the product key, over `tag 0x00 value`, truncated to 64 bits.
fn keyed_hash(tag: &str, value: &str) -> Hwid {
    const KEY: &[u8] = b"sipmeter hardware id key, version 1";
    let mut block = [0u8; 64];
    block[..KEY.len()].copy_from_slice(KEY);
    let pad = |x: u8| block.map(|b| b ^ x);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(tag.as_bytes())
        .chain_update([0u8])
        .chain_update(value.as_bytes())
        .finalize();
    let outer = Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize();
    let mut id = [0u8; 8];
    id.copy_from_slice(&outer[..8]);
    Hwid(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(machine_id: Option<&str>, dmi: Option<&str>) -> MachineIdentity {
        MachineIdentity {
            machine_id: machine_id.map(str::to_string),
            dmi_product_uuid: dmi.map(str::to_string),
            ..MachineIdentity::default()
        }
    }

    #[test]
    fn a_vm_clone_with_the_same_machine_id_keeps_its_hwid() {
        let original = resolve_hwid(&ident(
            Some("4c4c4544003957108052b4c04f384833\n"),
            Some("11111111-2222-3333-4444-555555555555"),
        ))
        .unwrap();
        let clone = resolve_hwid(&ident(
            Some("4c4c4544003957108052b4c04f384833"),
            Some("99999999-2222-3333-4444-555555555555"),
        ))
        .unwrap();
        assert_eq!(original, clone);
        assert_eq!(original.source, HwidSource::MachineId);
        let other = resolve_hwid(&ident(Some("0123456789abcdef0123456789abcdef"), None)).unwrap();
        assert_ne!(other.hwid, original.hwid);
    }

    #[test]
    fn sources_in_order_and_placeholders_ignored() {
        assert_eq!(resolve_hwid(&MachineIdentity::default()), None);
        assert_eq!(resolve_hwid(&ident(Some("uninitialized\n"), None)), None);
        assert_eq!(
            resolve_hwid(&ident(None, Some("00000000-0000-0000-0000-000000000000"))),
            None
        );
        let dmi = resolve_hwid(&ident(
            Some(""),
            Some("11111111-2222-3333-4444-555555555555"),
        ));
        assert_eq!(dmi.unwrap().source, HwidSource::DmiProductUuid);

        let fallback = new_fallback_id([7; 16]);
        let m = MachineIdentity {
            fallback_id: Some(format!("{fallback}\n")),
            ..MachineIdentity::default()
        };
        let r = resolve_hwid(&m).unwrap();
        assert_eq!(r.source, HwidSource::Fallback);
        assert_eq!(resolve_hwid(&m), Some(r), "stable for the same fallback id");

        let forced: Hwid = "abcd-0000-1111-FFFF".parse().unwrap();
        let o = resolve_hwid(&MachineIdentity {
            hwid_override: Some(forced),
            ..ident(Some("0123456789abcdef0123456789abcdef"), None)
        })
        .unwrap();
        assert_eq!((o.hwid, o.source), (forced, HwidSource::Override));
        assert_eq!(forced.to_string(), "ABCD-0000-1111-FFFF");
    }

    #[test]
    fn hwid_and_token_syntax() {
        for bad in [
            "",
            "ABCD-0000-1111",
            "ABCD-0000-1111-FFFFF",
            "ABCD_0000-1111-FFFF",
            "GHIJ-0000-1111-FFFF",
            "ABCD-0000-1111-FFF\u{e9}",
        ] {
            assert!(bad.parse::<Hwid>().is_err(), "{bad}");
        }
        let t: LicenseToken = " ab12-CD34-ef56-7890\n".parse().unwrap();
        assert_eq!(t.as_str(), "AB12-CD34-EF56-7890");
        assert!("AB12-CD34-EF56".parse::<LicenseToken>().is_err());
        assert!("AB12-CD34-EF56-78!0".parse::<LicenseToken>().is_err());
    }
}

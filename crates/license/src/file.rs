//! The license file: armor, envelope, signature, and verification against a machine.
//!
//! ```text
//! -----BEGIN SIPMETER LICENSE-----
//! base64 of: version (1 byte, = 2) | certificate length (2 bytes, big endian)
//!            | certificate body | key id (8 bytes) | Ed25519 signature (64) | payload
//! -----END SIPMETER LICENSE-----
//! ```
//!
//! Version 1 is the same without the certificate: only a development build, which trusts
//! signing keys directly (`--trusted-key`), can accept one. A version 2 file is trusted when
//! its certificate chains to a compiled-in root ([`crate::Certificate::check`]), is valid now,
//! and certifies the key that signed the file.
//!
//! The payload is the canonical JSON of [`LicenseTerms`]. The signature covers
//! `DOMAIN_SEPARATOR | version | key id | payload` — the exact bytes carried, never a
//! re-serialization — so a signature made for anything else (another format, another key
//! slot) cannot be replayed here. The parsed payload must re-serialize to exactly the
//! carried bytes: re-ordered keys, duplicate keys, extra whitespace, escapes or unknown
//! fields are all refused even before one asks whether they are signed.

use jiff::tz::TimeZone;

use crate::armor;
use crate::certificate::{Certificate, MAX_CERTIFICATE_LEN};
use crate::dates::{DatePhase, date_status};
use crate::error::{IssueError, VerifyError};
use crate::hwid::Hwid;
use crate::keys::{KeyId, Keyring, SigningKey};
use crate::terms::{Binding, LicenseTerms, normalize_domain};
use crate::{Micros, day_of, timestamp};

pub const LICENSE_LABEL: &str = "SIPMETER LICENSE";
/// The version of files that carry their signing key's certificate (what portals issue).
pub const FORMAT_VERSION: u8 = 2;
/// The version of files without a certificate (development keys trusted directly).
pub const UNCERTIFIED_VERSION: u8 = 1;
pub const DOMAIN_SEPARATOR: &[u8] = b"sipmeter-license-v1\0";
/// Clock drift tolerated between the portal and the server before a file counts as issued
/// in the future.
pub const ISSUE_DRIFT_US: Micros = 5 * 60 * 1_000_000;
/// How far the clock may step back below the high-water mark (NTP corrections, a slightly
/// wrong RTC fixed after boot) before it counts as set back.
pub const CLOCK_SET_BACK_TOLERANCE_US: Micros = 60 * 60 * 1_000_000;

const HEADER_LEN: usize = 1 + 8 + 64;

/// A license file whose armor and envelope parsed; nothing about it is trusted yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedLicense {
    pub key_id: KeyId,
    signature: [u8; 64],
    payload: Vec<u8>,
    /// The signing key's certificate (version 2 files).
    pub certificate: Option<Certificate>,
}

fn signed_message(version: u8, key_id: KeyId, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(DOMAIN_SEPARATOR.len() + HEADER_LEN + payload.len());
    m.extend_from_slice(DOMAIN_SEPARATOR);
    m.push(version);
    m.extend_from_slice(&key_id.0);
    m.extend_from_slice(payload);
    m
}

impl SignedLicense {
    /// Parses the armor and the envelope. `file` is the name used in error messages.
    pub fn parse(text: &str, file: &str) -> Result<SignedLicense, VerifyError> {
        let bytes =
            armor::decode(LICENSE_LABEL, text).map_err(|r| VerifyError::malformed(file, r))?;
        let Some((&version, mut rest)) = bytes.split_first() else {
            return Err(VerifyError::malformed(file, "empty body"));
        };
        let certificate = match version {
            UNCERTIFIED_VERSION => None,
            FORMAT_VERSION => {
                let Some((len, after)) = rest.split_first_chunk::<2>() else {
                    return Err(VerifyError::malformed(file, "body too short"));
                };
                let len = usize::from(u16::from_be_bytes(*len));
                if len > MAX_CERTIFICATE_LEN || len > after.len() {
                    return Err(VerifyError::malformed(
                        file,
                        "certificate length out of range",
                    ));
                }
                let cert = Certificate::from_body(&after[..len])
                    .map_err(|r| VerifyError::malformed(file, r))?;
                rest = &after[len..];
                Some(cert)
            }
            _ => {
                return Err(VerifyError::UnsupportedVersion {
                    file: file.to_string(),
                    version,
                });
            }
        };
        if rest.len() < HEADER_LEN {
            return Err(VerifyError::malformed(file, "body too short"));
        }
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&rest[..8]);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&rest[8..HEADER_LEN - 1]);
        Ok(SignedLicense {
            key_id: KeyId(key_id),
            signature,
            payload: rest[HEADER_LEN - 1..].to_vec(),
            certificate,
        })
    }

    fn version(&self) -> u8 {
        if self.certificate.is_some() {
            FORMAT_VERSION
        } else {
            UNCERTIFIED_VERSION
        }
    }

    /// The key that may have signed this file: a directly trusted signing key (development
    /// builds), else the key of a certificate that a root of `keyring` issued and that is
    /// valid at `now`.
    fn signer<'a>(
        &'a self,
        keyring: &'a Keyring,
        file: &str,
        now: Micros,
    ) -> Result<&'a crate::PublicKey, VerifyError> {
        let untrusted = |reason: String| VerifyError::UntrustedIssuer {
            file: file.to_string(),
            reason,
        };
        if let Some(key) = keyring.signer(self.key_id) {
            return Ok(key);
        }
        let Some(cert) = &self.certificate else {
            return Err(untrusted(format!(
                "it is signed by key {} without a certificate from a vendor root",
                self.key_id
            )));
        };
        cert.check(keyring, now).map_err(untrusted)?;
        if cert.key.id() != self.key_id {
            return Err(untrusted(format!(
                "it is signed by key {} but carries the certificate of key {}",
                self.key_id,
                cert.key.id()
            )));
        }
        Ok(&cert.key)
    }

    /// Checks the chain (root → certificate → signing key) and the signature, then parses
    /// the payload strictly.
    pub fn open(
        &self,
        keyring: &Keyring,
        file: &str,
        now: Micros,
    ) -> Result<LicenseTerms, VerifyError> {
        let key = self.signer(keyring, file, now)?;
        let message = signed_message(self.version(), self.key_id, &self.payload);
        if !key.verify(&message, &self.signature) {
            return Err(VerifyError::BadSignature {
                file: file.to_string(),
            });
        }
        parse_payload(&self.payload).map_err(|r| VerifyError::malformed(file, r))
    }

    /// The payload bytes as carried (for diagnostics and tests).
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Re-assembles a file from parts: lets tests build forgeries, and the portal re-armor.
    pub fn from_parts(
        key_id: KeyId,
        signature: [u8; 64],
        payload: Vec<u8>,
        certificate: Option<Certificate>,
    ) -> SignedLicense {
        SignedLicense {
            key_id,
            signature,
            payload,
            certificate,
        }
    }

    pub fn signature(&self) -> [u8; 64] {
        self.signature
    }

    pub fn to_armored(&self) -> String {
        let cert = self.certificate.as_ref().map(Certificate::body);
        let mut body = Vec::with_capacity(HEADER_LEN + 2 + self.payload.len());
        body.push(self.version());
        if let Some(c) = &cert {
            // Certificates are bounded far below u16::MAX (MAX_CERTIFICATE_LEN).
            body.extend_from_slice(&u16::try_from(c.len()).unwrap_or(u16::MAX).to_be_bytes());
            body.extend_from_slice(c);
        }
        body.extend_from_slice(&self.key_id.0);
        body.extend_from_slice(&self.signature);
        body.extend_from_slice(&self.payload);
        armor::encode(LICENSE_LABEL, &body)
    }
}

fn parse_payload(payload: &[u8]) -> Result<LicenseTerms, String> {
    let terms: LicenseTerms =
        serde_json::from_slice(payload).map_err(|e| format!("payload is not valid: {e}"))?;
    if terms.canonical_bytes() != payload {
        return Err("payload is not in canonical form".into());
    }
    terms.check()?;
    Ok(terms)
}

/// The text of a license file read as bytes: license files are ASCII, so anything that is
/// not UTF-8 is malformed (and reported as such rather than as an I/O problem).
pub fn license_text<'a>(bytes: &'a [u8], file: &str) -> Result<&'a str, VerifyError> {
    std::str::from_utf8(bytes).map_err(|_| VerifyError::malformed(file, "not a text file"))
}

/// Signs `terms` with `key` and returns the armored license file, carrying `certificate`
/// (the root's certificate of `key`; what portals do). Without one the file verifies only
/// where `key` is trusted directly (development builds).
pub fn issue(
    terms: &LicenseTerms,
    key: &SigningKey,
    certificate: Option<&Certificate>,
) -> Result<String, IssueError> {
    terms.check().map_err(IssueError::InvalidTerms)?;
    let key_id = key.public().id();
    if let Some(c) = certificate
        && c.key.id() != key_id
    {
        return Err(IssueError::CertificateMismatch {
            certificate: c.key.id().to_string(),
            key: key_id.to_string(),
        });
    }
    let payload = terms.canonical_bytes();
    let mut signed = SignedLicense::from_parts(key_id, [0; 64], payload, certificate.cloned());
    signed.signature = key.sign(&signed_message(signed.version(), key_id, &signed.payload));
    Ok(signed.to_armored())
}

/// The facts a verification needs about the verifier's world.
#[derive(Debug, Clone)]
pub struct VerifyContext<'a> {
    pub keyring: &'a Keyring,
    /// This machine's hardware id.
    pub hwid: Hwid,
    /// The domain this server is reached by, if configured.
    pub domain: Option<&'a str>,
    pub now: Micros,
    /// The latest time seen before (persisted by the caller); `None` on first use.
    pub high_water: Option<Micros>,
    /// The license time zone: where calendar days begin and end.
    pub time_zone: &'a TimeZone,
}

/// A license that passed every check except, possibly, expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub terms: LicenseTerms,
    pub key_id: KeyId,
}

fn rfc3339(us: Micros) -> String {
    timestamp(us).map_or_else(|| format!("{us} µs"), |t| t.to_string())
}

/// Every check but expiry, in the order a person should fix them: can it be read, is it
/// genuine, is it for this machine, is the clock sane.
pub(crate) fn check(
    text: &str,
    file: &str,
    ctx: &VerifyContext<'_>,
) -> Result<Verified, VerifyError> {
    let signed = SignedLicense::parse(text, file)?;
    let terms = signed.open(ctx.keyring, file, ctx.now)?;
    match &terms.binding {
        Binding::Hwid(h) if *h != ctx.hwid => {
            return Err(VerifyError::AnotherHwid {
                file: file.to_string(),
                licensed: h.to_string(),
                actual: ctx.hwid.to_string(),
            });
        }
        Binding::Domain(d) => {
            let actual = ctx.domain.and_then(normalize_domain);
            if actual.as_deref() != Some(d.as_str()) {
                return Err(VerifyError::WrongDomain {
                    file: file.to_string(),
                    licensed: d.clone(),
                    actual: actual.unwrap_or_else(|| "(no domain configured)".into()),
                });
            }
        }
        Binding::Hwid(_) => {}
    }
    if let Some(hw) = ctx.high_water
        && ctx.now < hw.saturating_sub(CLOCK_SET_BACK_TOLERANCE_US)
    {
        return Err(VerifyError::ClockSetBack {
            file: file.to_string(),
            now: rfc3339(ctx.now),
            high_water: rfc3339(hw),
        });
    }
    let issued = terms.issued_at.as_microsecond();
    if issued > ctx.now.saturating_add(ISSUE_DRIFT_US) {
        return Err(VerifyError::IssuedInFuture {
            file: file.to_string(),
            issued_at: terms.issued_at.to_string(),
            now: rfc3339(ctx.now),
        });
    }
    Ok(Verified {
        terms,
        key_id: signed.key_id,
    })
}

/// Full verification of license file `text` named `file` (its base name, e.g.
/// `license.key`): genuine, for this machine, sane clock, and not expired.
pub fn verify(text: &str, file: &str, ctx: &VerifyContext<'_>) -> Result<Verified, VerifyError> {
    let v = check(text, file, ctx)?;
    let today = day_of(ctx.now, ctx.time_zone);
    if date_status(&v.terms, today).phase == DatePhase::Expired {
        return Err(VerifyError::Expired {
            file: file.to_string(),
            access_end: v.terms.access_end().to_string(),
        });
    }
    Ok(v)
}

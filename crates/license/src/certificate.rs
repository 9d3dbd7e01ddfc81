//! Key certificates: a root key's word that a portal's signing key may issue licenses during
//! a period.
//!
//! ```text
//! -----BEGIN SIPMETER KEY CERTIFICATE-----
//! base64 of: version (1 byte, = 1) | Ed25519 signature by the issuer root (64) | payload
//! -----END SIPMETER KEY CERTIFICATE-----
//! ```
//!
//! The payload is the canonical JSON of [`CertificateTerms`]; the signature covers
//! `CERTIFICATE_DOMAIN | version | payload`, a context no license or check-in signature
//! shares. As with license files, the payload must re-serialize to exactly the carried bytes.
//! A license file carries the binary body of its certificate (see [`crate::SignedLicense`]),
//! so a server needs nothing but its compiled-in roots to check the whole chain.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::armor;
use crate::keys::{KeyId, Keyring, PublicKey, SigningKey};
use crate::{Micros, timestamp};

pub const CERTIFICATE_LABEL: &str = "SIPMETER KEY CERTIFICATE";
pub const CERTIFICATE_VERSION: u8 = 1;
pub const CERTIFICATE_DOMAIN: &[u8] = b"sipmeter-key-certificate-v1\0";
/// Upper bound of a certificate body; a real one is about 300 bytes. The license format
/// stores the length in two bytes, and a verifier refuses more before parsing.
pub const MAX_CERTIFICATE_LEN: usize = 2048;
const MAX_SUBJECT: usize = 128;

/// What a root certifies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateTerms {
    /// Who holds the key, for people (e.g. `portal.example.com`).
    pub subject: String,
    /// Key id of `public_key` (hex), checked against it.
    pub key_id: String,
    /// The certified Ed25519 public key, base64.
    pub public_key: String,
    pub valid_from: Timestamp,
    pub valid_until: Timestamp,
    /// Key id of the root that signed (hex).
    pub issuer: String,
}

/// A parsed certificate; [`Certificate::check`] says whether it is trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub terms: CertificateTerms,
    /// The certified key (parsed from the terms).
    pub key: PublicKey,
    signature: [u8; 64],
    payload: Vec<u8>,
}

fn signed_message(payload: &[u8]) -> Vec<u8> {
    [CERTIFICATE_DOMAIN, &[CERTIFICATE_VERSION], payload].concat()
}

impl Certificate {
    /// Certifies `key` for `[valid_from, valid_until]` with `root`.
    pub fn issue(
        root: &SigningKey,
        key: &PublicKey,
        subject: &str,
        valid_from: Micros,
        valid_until: Micros,
    ) -> Result<Certificate, String> {
        let (Some(from), Some(until)) = (timestamp(valid_from), timestamp(valid_until)) else {
            return Err("validity out of range".into());
        };
        let terms = CertificateTerms {
            subject: subject.to_string(),
            key_id: key.id().to_string(),
            public_key: STANDARD.encode(key.as_bytes()),
            valid_from: from,
            valid_until: until,
            issuer: root.public().id().to_string(),
        };
        let payload = serde_json::to_vec(&terms).map_err(|e| e.to_string())?;
        check_terms(&terms)?;
        let signature = root.sign(&signed_message(&payload));
        Certificate::from_body(&body(&signature, &payload))
    }

    /// Parses a binary certificate body (as carried inside a license file): structure and
    /// canonical payload only, nothing about trust.
    pub fn from_body(bytes: &[u8]) -> Result<Certificate, String> {
        if bytes.len() > MAX_CERTIFICATE_LEN {
            return Err(format!(
                "certificate larger than {MAX_CERTIFICATE_LEN} bytes"
            ));
        }
        let Some((&version, rest)) = bytes.split_first() else {
            return Err("empty certificate".into());
        };
        if version != CERTIFICATE_VERSION {
            return Err(format!("certificate version {version} is not known"));
        }
        if rest.len() <= 64 {
            return Err("certificate too short".into());
        }
        let mut signature = [0u8; 64];
        signature.copy_from_slice(&rest[..64]);
        let payload = rest[64..].to_vec();
        let terms: CertificateTerms = serde_json::from_slice(&payload)
            .map_err(|e| format!("certificate payload is not valid: {e}"))?;
        if serde_json::to_vec(&terms).ok().as_deref() != Some(payload.as_slice()) {
            return Err("certificate payload is not in canonical form".into());
        }
        check_terms(&terms)?;
        let raw = STANDARD
            .decode(&terms.public_key)
            .map_err(|_| "certificate public_key is not base64".to_string())?;
        let raw: [u8; 32] = raw
            .try_into()
            .map_err(|_| "certificate public_key is not 32 bytes".to_string())?;
        let key = PublicKey::from_bytes(&raw).map_err(|e| format!("certificate key: {e}"))?;
        if key.id().to_string() != terms.key_id {
            return Err(format!(
                "certificate key_id {} does not match its public key ({})",
                terms.key_id,
                key.id()
            ));
        }
        Ok(Certificate {
            terms,
            key,
            signature,
            payload,
        })
    }

    /// Reads a certificate file.
    pub fn from_armored(text: &str) -> Result<Certificate, String> {
        Certificate::from_body(&armor::decode(CERTIFICATE_LABEL, text)?)
    }

    pub fn to_armored(&self) -> String {
        armor::encode(CERTIFICATE_LABEL, &self.body())
    }

    /// The binary body carried in license files.
    pub fn body(&self) -> Vec<u8> {
        body(&self.signature, &self.payload)
    }

    /// Whether a root of `keyring` certified this key and `now` is inside the validity. The
    /// error is the reason, for a person.
    pub fn check(&self, keyring: &Keyring, now: Micros) -> Result<(), String> {
        let issuer = parse_key_id(&self.terms.issuer)
            .ok_or_else(|| format!("certificate issuer {:?} is not a key id", self.terms.issuer))?;
        let root = keyring.root(issuer).ok_or_else(|| {
            format!(
                "its signing key {} is certified by key {}, which is not a vendor root",
                self.key.id(),
                self.terms.issuer
            )
        })?;
        if !root.verify(&signed_message(&self.payload), &self.signature) {
            return Err(format!(
                "the certificate of its signing key {} has a bad signature",
                self.key.id()
            ));
        }
        if now < self.terms.valid_from.as_microsecond() {
            return Err(format!(
                "the certificate of its signing key {} is valid only from {}",
                self.key.id(),
                self.terms.valid_from
            ));
        }
        if now > self.terms.valid_until.as_microsecond() {
            return Err(format!(
                "the certificate of its signing key {} expired at {}",
                self.key.id(),
                self.terms.valid_until
            ));
        }
        Ok(())
    }
}

fn body(signature: &[u8; 64], payload: &[u8]) -> Vec<u8> {
    [&[CERTIFICATE_VERSION][..], signature, payload].concat()
}

fn check_terms(t: &CertificateTerms) -> Result<(), String> {
    if t.subject.len() > MAX_SUBJECT || t.subject.chars().any(char::is_control) {
        return Err(format!(
            "certificate subject must be at most {MAX_SUBJECT} characters without control characters"
        ));
    }
    if t.valid_until <= t.valid_from {
        return Err("certificate valid_until is not after valid_from".into());
    }
    if parse_key_id(&t.issuer).is_none() || parse_key_id(&t.key_id).is_none() {
        return Err("certificate key ids must be 16 lowercase hex digits".into());
    }
    Ok(())
}

/// A key id from its 16 lowercase hex digits.
pub(crate) fn parse_key_id(s: &str) -> Option<KeyId> {
    if s.len() != 16
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut id = [0u8; 8];
    for (i, out) in id.iter_mut().enumerate() {
        *out = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(KeyId(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Micros = 86_400_000_000;

    #[test]
    fn a_certificate_round_trips_and_checks_against_its_root_only() {
        let root = SigningKey::from_seed(&[1; 32]);
        let portal = SigningKey::from_seed(&[2; 32]).public();
        let cert = Certificate::issue(&root, &portal, "portal.test", 0, 10 * DAY).unwrap();
        let again = Certificate::from_armored(&cert.to_armored()).unwrap();
        assert_eq!(again, cert);
        assert_eq!(again.key, portal);
        let mut ring = Keyring::empty();
        assert!(
            cert.check(&ring, DAY)
                .unwrap_err()
                .contains("not a vendor root")
        );
        ring.add_root(root.public());
        assert_eq!(cert.check(&ring, DAY), Ok(()));
        assert!(cert.check(&ring, 11 * DAY).unwrap_err().contains("expired"));
        assert!(
            cert.check(&ring, -1)
                .unwrap_err()
                .contains("valid only from")
        );
        assert_eq!(parse_key_id(&portal.id().to_string()), Some(portal.id()));
    }

    #[test]
    fn every_changed_byte_of_a_certificate_is_refused() {
        let root = SigningKey::from_seed(&[1; 32]);
        let portal = SigningKey::from_seed(&[2; 32]).public();
        let cert = Certificate::issue(&root, &portal, "p", 0, 10 * DAY).unwrap();
        let mut ring = Keyring::empty();
        ring.add_root(root.public());
        let body = cert.body();
        for i in 0..body.len() {
            for bit in [0x01u8, 0x20, 0x80] {
                let mut b = body.clone();
                b[i] ^= bit;
                if let Ok(c) = Certificate::from_body(&b) {
                    assert!(c.check(&ring, DAY).is_err(), "byte {i} bit {bit:#x}");
                }
            }
        }
    }
}

//! Vendor signing keys, their public halves and the keyring of keys a server trusts.
//!
//! Every key has a [`KeyId`] derived from its public key, carried in each license file, so
//! the vendor can rotate signing keys: old files keep verifying as long as their key stays
//! in the keyring, and a verifier never has to try every key.

use std::fmt;

use ed25519_dalek::{Signer, VerifyingKey};
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};

use crate::armor;
use crate::error::KeyError;

/// Armor label of a private signing key file.
pub const SIGNING_KEY_LABEL: &str = "SIPMETER SIGNING KEY";
/// Armor label of a public key file.
pub const PUBLIC_KEY_LABEL: &str = "SIPMETER PUBLIC KEY";

/// Public keys built into every sipmeter binary: the vendor's production keys. Files signed
/// by other keys verify only where an operator configured those keys as trusted.
const BUILTIN_KEYS: &[&str] = &[include_str!("../keys/builtin-cc8c06501fd3aa2f.pub")];

/// Short identifier of a public key: the first 8 bytes of a domain-separated SHA-256 of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    fn of(key: &VerifyingKey) -> KeyId {
        let mut h = Sha256::new();
        h.update(b"sipmeter-key-id-v1\0");
        h.update(key.as_bytes());
        let digest = h.finalize();
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        KeyId(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A public key that license files can be verified against.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
    id: KeyId,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

impl PublicKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, KeyError> {
        let key = VerifyingKey::from_bytes(bytes).map_err(|_| KeyError::InvalidPoint)?;
        Ok(PublicKey {
            id: KeyId::of(&key),
            key,
        })
    }

    /// Reads a public key file (armored 32 bytes).
    pub fn from_armored(text: &str) -> Result<PublicKey, KeyError> {
        let bytes =
            armor::decode(PUBLIC_KEY_LABEL, text).map_err(|reason| KeyError::Malformed {
                expected: "public",
                reason,
            })?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed {
            expected: "public",
            reason: "a public key is 32 bytes".into(),
        })?;
        PublicKey::from_bytes(&bytes)
    }

    pub fn to_armored(&self) -> String {
        armor::encode(PUBLIC_KEY_LABEL, self.key.as_bytes())
    }

    pub fn id(&self) -> KeyId {
        self.id
    }

    /// Strict verification: rejects small-order keys and non-canonical signatures, so one
    /// payload has exactly one valid signature per key (no malleated twins).
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.key.verify_strict(message, &sig).is_ok()
    }
}

/// A private signing key. Only the vendor (portal, or an operator of their own portal) holds
/// one; the verifier never needs it.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public().id())
    }
}

impl SigningKey {
    /// A fresh key from `rng` (the caller passes [`crate::OsRng`] in production, a seeded
    /// generator in tests).
    pub fn generate(rng: &mut impl CryptoRngCore) -> SigningKey {
        SigningKey {
            key: ed25519_dalek::SigningKey::generate(rng),
        }
    }

    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        SigningKey {
            key: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// Reads a signing key file (armored 32-byte seed).
    pub fn from_armored(text: &str) -> Result<SigningKey, KeyError> {
        let bytes =
            armor::decode(SIGNING_KEY_LABEL, text).map_err(|reason| KeyError::Malformed {
                expected: "signing",
                reason,
            })?;
        let seed: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed {
            expected: "signing",
            reason: "a signing key is 32 bytes".into(),
        })?;
        Ok(SigningKey::from_seed(&seed))
    }

    /// The key file text. It is the secret: whoever has it can issue licenses.
    pub fn to_armored(&self) -> String {
        armor::encode(SIGNING_KEY_LABEL, self.key.as_bytes())
    }

    pub fn public(&self) -> PublicKey {
        let key = self.key.verifying_key();
        PublicKey {
            id: KeyId::of(&key),
            key,
        }
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// The public keys a verifier trusts, looked up by key id.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<PublicKey>,
}

impl Keyring {
    /// A keyring with no keys: trusts nothing until keys are added.
    pub fn empty() -> Keyring {
        Keyring::default()
    }

    /// The vendor's built-in keys. A built-in key that fails to parse is a build defect that
    /// the crate's tests catch; it is skipped rather than panicking at run time.
    pub fn builtin() -> Keyring {
        let mut ring = Keyring::empty();
        for text in BUILTIN_KEYS {
            if let Ok(key) = PublicKey::from_armored(text) {
                ring.add(key);
            }
        }
        ring
    }

    /// Adds a trusted key; adding one already present changes nothing.
    pub fn add(&mut self, key: PublicKey) {
        if self.get(key.id()).is_none() {
            self.keys.push(key);
        }
    }

    pub fn get(&self, id: KeyId) -> Option<&PublicKey> {
        self.keys.iter().find(|k| k.id == id)
    }

    pub fn ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.keys.iter().map(|k| k.id)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

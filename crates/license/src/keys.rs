//! Signing keys, their public halves and the keyring of trust anchors a server has.
//!
//! Every key has a [`KeyId`] derived from its public key. The vendor's root keys are compiled
//! into the binary ([`Keyring::builtin`]); a root never signs a license, it certifies the
//! signing key of a portal ([`crate::Certificate`]), and the license file carries that
//! certificate. So a portal can rotate its key (a new certificate) without any server
//! learning anything new, and nothing a user can write at run time adds an anchor.

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

// `ROOT_KEYS`: the armored `root-*.pub` files of `keys/` (or of the directory named by
// `SIPMETER_ROOT_KEYS_DIR` at build time), written by build.rs.
include!(concat!(env!("OUT_DIR"), "/root_keys.rs"));

/// The development root (feature `dev-keys`): its secret half is committed with the tests, so
/// anyone can issue licenses it certifies. Only development builds trust it, and say so.
#[cfg(feature = "dev-keys")]
const DEV_ROOT_PUBLIC: &str = include_str!("../dev-keys/dev-root.pub");
#[cfg(feature = "dev-keys")]
const DEV_ROOT_SECRET: &str = include_str!("../tests/keys/dev-root.key");

/// The signing context of a server's check-in with the portal, made with the installation's
/// key: the one definition both sides use, so no license or certificate signature can pass
/// for a check-in.
pub const CHECKIN_CONTEXT: &[u8] = b"sipmeter-checkin-v1\0";

/// Whether this build trusts the development root and directly trusted signing keys
/// (feature `dev-keys`): binaries print it wherever the license is shown.
pub const DEVELOPMENT_BUILD: bool = cfg!(feature = "dev-keys");

/// The secret half of the development root, for a development portal that certifies its own
/// key on first start.
#[cfg(feature = "dev-keys")]
pub fn dev_root_signing_key() -> SigningKey {
    // The committed file is checked by this crate's tests; a broken one is a build defect.
    SigningKey::from_armored(DEV_ROOT_SECRET).unwrap_or_else(|_| SigningKey::from_seed(&[0; 32]))
}

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

    pub fn as_bytes(&self) -> &[u8; 32] {
        self.key.as_bytes()
    }

    /// Checks a signature made by [`SigningKey::sign_in_context`] with the same context.
    pub fn verify_in_context(&self, context: &[u8], message: &[u8], signature: &[u8; 64]) -> bool {
        self.verify(&[context, message].concat(), signature)
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

    /// Signs `context | message`. Each use of a key has its own `context` (a NUL-terminated
    /// label such as `sipmeter-checkin-v1\0`), so a signature made for one purpose can never
    /// be replayed as another (a check-in as a license, say).
    pub fn sign_in_context(&self, context: &[u8], message: &[u8]) -> [u8; 64] {
        self.sign(&[context, message].concat())
    }
}

/// The trust anchors of a verifier: root keys, which certify signing keys, and (development
/// builds only) signing keys trusted directly.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    roots: Vec<PublicKey>,
    signers: Vec<PublicKey>,
}

impl Keyring {
    /// A keyring with no keys: trusts nothing until keys are added.
    pub fn empty() -> Keyring {
        Keyring::default()
    }

    /// The roots compiled into this binary (and the development root in a `dev-keys`
    /// build). A compiled-in key that fails to parse is a build defect that the crate's tests
    /// catch; it is skipped rather than panicking at run time.
    pub fn builtin() -> Keyring {
        let mut ring = Keyring::empty();
        #[cfg(feature = "dev-keys")]
        let dev = [DEV_ROOT_PUBLIC];
        #[cfg(not(feature = "dev-keys"))]
        let dev: [&str; 0] = [];
        for text in ROOT_KEYS.iter().chain(dev.iter()) {
            if let Ok(key) = PublicKey::from_armored(text) {
                ring.add_root(key);
            }
        }
        ring
    }

    /// Adds a root. The binaries call it only with compiled-in keys; it is public for the
    /// tests and tools of a vendor that builds with its own roots.
    pub fn add_root(&mut self, key: PublicKey) {
        if self.root(key.id()).is_none() {
            self.roots.push(key);
        }
    }

    /// Trusts a signing key directly, without a certificate: `--trusted-key` of a
    /// development build. Absent from release builds, so no flag or file can use it.
    #[cfg(feature = "dev-keys")]
    pub fn trust_signing_key(&mut self, key: PublicKey) {
        if self.signer(key.id()).is_none() {
            self.signers.push(key);
        }
    }

    pub fn root(&self, id: KeyId) -> Option<&PublicKey> {
        self.roots.iter().find(|k| k.id == id)
    }

    /// A directly trusted signing key (development builds).
    pub fn signer(&self, id: KeyId) -> Option<&PublicKey> {
        self.signers.iter().find(|k| k.id == id)
    }

    pub fn root_ids(&self) -> impl Iterator<Item = KeyId> + '_ {
        self.roots.iter().map(|k| k.id)
    }

    pub fn len(&self) -> usize {
        self.roots.len() + self.signers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

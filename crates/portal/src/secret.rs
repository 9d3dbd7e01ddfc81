//! The portal secret key, and the signing-key secrets sealed under it.
//!
//! The database never holds a signing key's secret in clear: each row stores
//! `enc1:<base64 nonce>:<base64 ciphertext>`, XChaCha20-Poly1305 with a random 24-byte nonce per
//! row and the key id as associated data (so a sealed secret copied onto another row does not
//! open). The 32-byte key lives outside the database: the environment variable
//! [`SECRET_KEY_ENV`] (base64 or hex), else a file (`--secret-key-file`, default
//! `portal-secret.key` in the data directory) that is created with mode 0600 on first start
//! and refused when group or others may read it. A database copied or backed up without that
//! key gives nobody the signing keys; losing the key loses them.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use license::rand_core::RngCore;

/// The environment variable that holds the portal secret key (base64 or hex of 32 bytes).
pub const SECRET_KEY_ENV: &str = "SIPMETER_PORTAL_SECRET_KEY";
/// The key file's name in the data directory when no other is given.
pub const DEFAULT_KEY_FILE: &str = "portal-secret.key";
/// The prefix of a sealed secret: the format's version.
const SEALED_PREFIX: &str = "enc1:";

/// Why the portal secret key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum SecretKeyError {
    #[error("the portal secret key from {source_name} is not 32 bytes in base64 or hex")]
    Malformed { source_name: String },
    #[error(
        "the portal secret key file {} may be read by group or others (mode {mode:04o}): run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("give the portal secret key either in {SECRET_KEY_ENV} or as --secret-key-file {}, not both", path.display())]
    TwoSources { path: PathBuf },
    #[error("cannot {what} the portal secret key file {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Why a stored signing-key secret could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum UnsealError {
    #[error(
        "signing key {key_id} cannot be decrypted with the portal secret key from {source_name} \
         (is it the key this database was encrypted with?)"
    )]
    WrongKey { key_id: String, source_name: String },
    #[error("signing key {key_id}: the stored secret is not in a known encrypted form")]
    Malformed { key_id: String },
}

/// The portal secret key: 32 bytes, and where they came from (for messages).
pub struct SecretKey {
    key: [u8; 32],
    source_name: String,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretKey")
            .field("source", &self.source_name)
            .finish_non_exhaustive()
    }
}

impl Drop for SecretKey {
    fn drop(&mut self) {
        // Best effort: the bytes do not outlive the portal in this copy.
        self.key.iter_mut().for_each(|b| *b = 0);
        std::hint::black_box(&self.key);
    }
}

impl SecretKey {
    /// The key as configured: `file` when given, else [`SECRET_KEY_ENV`] when set, else
    /// `data_dir/portal-secret.key` (created when missing). Giving both a file and the
    /// variable is refused rather than silently preferring one.
    pub fn locate(data_dir: &Path, file: Option<&Path>) -> Result<SecretKey, SecretKeyError> {
        let env = std::env::var(SECRET_KEY_ENV)
            .ok()
            .filter(|v| !v.trim().is_empty());
        match (file, env) {
            (Some(path), Some(_)) => Err(SecretKeyError::TwoSources {
                path: path.to_path_buf(),
            }),
            (Some(path), None) => SecretKey::load_or_create(path),
            (None, Some(value)) => {
                SecretKey::parse(&value, format!("the environment variable {SECRET_KEY_ENV}"))
            }
            (None, None) => SecretKey::load_or_create(&data_dir.join(DEFAULT_KEY_FILE)),
        }
    }

    /// Reads the key file at `path`, or creates it (mode 0600, 32 random bytes in base64)
    /// when it does not exist. A file that group or others may read is refused.
    pub fn load_or_create(path: &Path) -> Result<SecretKey, SecretKeyError> {
        let io = |what, source| SecretKeyError::Io {
            what,
            path: path.to_path_buf(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        match options.open(path) {
            Ok(mut f) => {
                let mut key = [0u8; 32];
                license::OsRng.fill_bytes(&mut key);
                let text = format!("{}\n", B64.encode(key));
                f.write_all(text.as_bytes())
                    .and_then(|()| f.sync_all())
                    .map_err(|e| io("write", e))?;
                Ok(SecretKey {
                    key,
                    source_name: path.display().to_string(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    let mode = std::fs::metadata(path)
                        .map_err(|e| io("read", e))?
                        .permissions()
                        .mode()
                        & 0o7777;
                    if mode & 0o077 != 0 {
                        return Err(SecretKeyError::Permissions {
                            path: path.to_path_buf(),
                            mode,
                        });
                    }
                }
                let text = std::fs::read_to_string(path).map_err(|e| io("read", e))?;
                SecretKey::parse(&text, path.display().to_string())
            }
            Err(e) => Err(io("create", e)),
        }
    }

    /// A key from its text: 64 hex digits or the base64 of 32 bytes (surrounding
    /// whitespace ignored). `source_name` says where it came from in messages.
    pub fn parse(text: &str, source_name: impl Into<String>) -> Result<SecretKey, SecretKeyError> {
        let source_name = source_name.into();
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16))
                .collect::<Result<Vec<u8>, _>>()
                .ok()
        } else {
            B64.decode(text).ok()
        };
        let key = bytes
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| SecretKeyError::Malformed {
                source_name: source_name.clone(),
            })?;
        Ok(SecretKey { key, source_name })
    }

    /// Where the key came from: the file's path or the environment variable.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.key).into())
    }

    /// `secret` (a signing key's armored seed) sealed for the row of `key_id`.
    pub fn seal(&self, key_id: &str, secret: &str) -> String {
        let mut nonce = [0u8; 24];
        license::OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: secret.as_bytes(),
                    aad: key_id.as_bytes(),
                },
            )
            // Encryption only fails on inputs of gigabytes; a signing key is 100 bytes.
            .unwrap_or_default();
        format!(
            "{SEALED_PREFIX}{}:{}",
            B64.encode(nonce),
            B64.encode(ciphertext)
        )
    }

    /// The secret sealed in `stored` for the row of `key_id`.
    pub fn unseal(&self, key_id: &str, stored: &str) -> Result<String, UnsealError> {
        let malformed = || UnsealError::Malformed {
            key_id: key_id.to_string(),
        };
        let (nonce, ciphertext) = stored
            .strip_prefix(SEALED_PREFIX)
            .and_then(|rest| rest.split_once(':'))
            .ok_or_else(malformed)?;
        let nonce = B64.decode(nonce).map_err(|_| malformed())?;
        let ciphertext = B64.decode(ciphertext).map_err(|_| malformed())?;
        if nonce.len() != 24 {
            return Err(malformed());
        }
        let clear = self
            .cipher()
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ciphertext,
                    aad: key_id.as_bytes(),
                },
            )
            .map_err(|_| UnsealError::WrongKey {
                key_id: key_id.to_string(),
                source_name: self.source_name.clone(),
            })?;
        String::from_utf8(clear).map_err(|_| malformed())
    }
}

/// Whether a stored secret is sealed (as opposed to the clear armored seed that portals
/// before schema version 2 stored).
pub(crate) fn is_sealed(stored: &str) -> bool {
    stored.starts_with(SEALED_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8, name: &str) -> SecretKey {
        SecretKey::parse(&B64.encode([byte; 32]), name).unwrap()
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key_and_key_id() {
        let k = key(7, "k");
        let sealed = k.seal("KEY1", "the secret");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("the secret"));
        assert_eq!(k.unseal("KEY1", &sealed).unwrap(), "the secret");
        // A fresh nonce each time.
        assert_ne!(k.seal("KEY1", "the secret"), sealed);
        let e = key(8, "FILE-B").unseal("KEY1", &sealed).unwrap_err();
        assert_eq!(
            e.to_string(),
            "signing key KEY1 cannot be decrypted with the portal secret key from FILE-B \
             (is it the key this database was encrypted with?)"
        );
        assert!(matches!(
            k.unseal("KEY2", &sealed),
            Err(UnsealError::WrongKey { .. })
        ));
        assert!(matches!(
            k.unseal("KEY1", "-----BEGIN SIPMETER SIGNING KEY-----"),
            Err(UnsealError::Malformed { .. })
        ));
        let mut flipped = sealed.clone().into_bytes();
        let last = flipped.len() - 3;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert!(
            k.unseal("KEY1", &String::from_utf8(flipped).unwrap())
                .is_err()
        );
    }

    #[test]
    fn keys_are_read_as_hex_or_base64_of_32_bytes() {
        let hex = "00".repeat(31) + "ff";
        let a = SecretKey::parse(&format!(" {hex}\n"), "env").unwrap();
        assert_eq!(a.key[31], 0xff);
        let b = SecretKey::parse(&B64.encode([0xffu8; 32]), "env").unwrap();
        assert_eq!(b.key, [0xff; 32]);
        for bad in ["", "abc", &B64.encode([1u8; 31]), &"0".repeat(63)] {
            let e = SecretKey::parse(bad, "the environment variable X").unwrap_err();
            assert_eq!(
                e.to_string(),
                "the portal secret key from the environment variable X is not 32 bytes in base64 or hex"
            );
        }
    }
}

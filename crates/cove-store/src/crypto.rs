//! Secrets at the storage boundary: the server key (32 random bytes kept
//! 0600 in the state dir, or given by the operator), AES-256-GCM sealing of
//! env values, and API key generation and hashing.
//!
//! API keys are 256 random bits, so a plain SHA-256 is enough to store them:
//! a slow password hash (argon2, bcrypt) defends low-entropy secrets against
//! guessing, and guessing a 256-bit value is already out of reach. A fast
//! hash also keeps every authenticated request cheap.

use std::io::Write;
use std::path::Path;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

/// Errors of key handling and sealing.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("server key file {path} could not be read or created: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("server key is malformed: expected 64 hex characters (32 bytes)")]
    MalformedKey,
    #[error("sealed value is corrupt or was sealed under another server key")]
    Open,
    #[error("sealing failed")]
    Seal,
}

/// The 32-byte key env values are sealed under.
#[derive(Clone)]
pub struct ServerKey(Secret<[u8; 32]>);

impl std::fmt::Debug for ServerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKey(***)")
    }
}

impl ServerKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self(Secret::new(key))
    }

    /// Parses 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, CryptoError> {
        let bytes = hex::decode(text.trim()).map_err(|_| CryptoError::MalformedKey)?;
        let key: [u8; 32] = bytes.try_into().map_err(|_| CryptoError::MalformedKey)?;
        Ok(Self(Secret::new(key)))
    }

    /// Reads the key at `path`, or creates it (mode 0600, created exclusively
    /// so two processes starting at once agree on one key).
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        let err = |source| CryptoError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::from_hex(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err(e)),
        }
        let key = Self::generate();
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        match opts.open(path) {
            Ok(mut file) => {
                let text = hex::encode(key.0.expose());
                file.write_all(text.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(err)?;
                Ok(key)
            }
            // Someone else created it between our read and our create.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let text = std::fs::read_to_string(path).map_err(err)?;
                Self::from_hex(&text)
            }
            Err(e) => Err(err(e)),
        }
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(self.0.expose().into())
    }

    /// Seals `plain` as `nonce ‖ ciphertext`. `context` (the row id) is bound
    /// as associated data, so a blob copied to another row does not open.
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let ct = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .map_err(|_| CryptoError::Seal)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Opens a blob made by `seal` with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if sealed.len() < 12 {
            return Err(CryptoError::Open);
        }
        let (nonce, ct) = sealed.split_at(12);
        self.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ct,
                    aad: context,
                },
            )
            .map_err(|_| CryptoError::Open)
    }
}

/// Prefix of every API key, so a leaked key is recognisable in a scan.
pub const API_KEY_PREFIX: &str = "cove_";

/// A new API key: the prefix and 32 random bytes in URL-safe base64.
pub fn generate_api_key() -> Secret<String> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    Secret::new(format!("{API_KEY_PREFIX}{body}"))
}

/// The stored form of an API key: lowercase hex SHA-256.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_context() {
        let key = ServerKey::generate();
        let sealed = key.seal(b"secret", b"sb_1").unwrap();
        assert_ne!(&sealed[12..], b"secret");
        assert_eq!(key.open(&sealed, b"sb_1").unwrap(), b"secret");
        assert!(key.open(&sealed, b"sb_2").is_err());
        assert!(ServerKey::generate().open(&sealed, b"sb_1").is_err());
        assert!(key.open(b"short", b"sb_1").is_err());
    }

    #[test]
    fn key_file_is_created_0600_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.key");
        let a = ServerKey::load_or_create(&path).unwrap();
        let b = ServerKey::load_or_create(&path).unwrap();
        let sealed = a.seal(b"x", b"").unwrap();
        assert_eq!(b.open(&sealed, b"").unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(format!("{a:?}").contains("***"));
    }

    #[test]
    fn malformed_key_is_rejected() {
        assert!(ServerKey::from_hex("abcd").is_err());
        assert!(ServerKey::from_hex(&"zz".repeat(32)).is_err());
        assert!(ServerKey::from_hex(&"ab".repeat(32)).is_ok());
    }

    #[test]
    fn api_keys_are_distinct_and_hash_stably() {
        let a = generate_api_key();
        let b = generate_api_key();
        assert_ne!(a.expose(), b.expose());
        assert!(a.expose().starts_with(API_KEY_PREFIX));
        assert_eq!(a.expose().len(), API_KEY_PREFIX.len() + 43);
        assert_eq!(hash_api_key(a.expose()), hash_api_key(a.expose()));
        assert_eq!(hash_api_key("abc").len(), 64);
    }
}

//! Passphrase to key-encryption key: Argon2id, with the parameters stored in
//! each key object and bounded, since a key object may be hostile.

use super::{CryptoError, KEY_LEN};
use rand::rngs::OsRng;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Argon2id parameters stored in a key object.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct KdfParams {
    pub algorithm: String,
    /// Memory in KiB.
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    #[serde(with = "crate::format::encoding::b64")]
    pub salt: Vec<u8>,
}

/// The `algorithm` of a key object opened by a key file (docs/FORMAT.md §4).
const KEY_FILE_KDF: &str = "hkdf-sha256";

/// Upper bounds on what a key object may ask of us; a hostile key file must
/// not be able to make `open` allocate 1 TiB or spin for a day.
pub const KDF_MAX_MEMORY_KIB: u32 = 4 * 1024 * 1024;
pub const KDF_MAX_ITERATIONS: u32 = 64;
pub const KDF_MAX_PARALLELISM: u32 = 64;

impl KdfParams {
    /// RFC 9106 section 4, second recommended option (64 MiB, t=3, p=4).
    pub fn recommended() -> Self {
        Self::with_cost(64 * 1024, 3, 4)
    }

    pub fn with_cost(memory_kib: u32, iterations: u32, parallelism: u32) -> Self {
        let mut salt = vec![0u8; 16];
        OsRng.fill_bytes(&mut salt);
        KdfParams { algorithm: "argon2id".into(), memory_kib, iterations, parallelism, salt }
    }

    /// For a key file: its secret is 32 random bytes, so no stretching is
    /// needed and opening costs microseconds (WAL archiving opens the
    /// repository once per segment).
    pub fn key_file() -> Self {
        let mut salt = vec![0u8; 16];
        OsRng.fill_bytes(&mut salt);
        KdfParams { algorithm: KEY_FILE_KDF.into(), memory_kib: 0, iterations: 0, parallelism: 0, salt }
    }

    /// Opened by a key file's secret rather than a passphrase.
    pub fn is_key_file(&self) -> bool {
        self.algorithm == KEY_FILE_KDF
    }

    pub fn is_excessive(&self) -> bool {
        self.memory_kib > KDF_MAX_MEMORY_KIB
            || self.iterations > KDF_MAX_ITERATIONS
            || self.parallelism > KDF_MAX_PARALLELISM
    }

    /// Derives the key-encryption key from a passphrase.
    pub fn derive(&self, passphrase: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>, CryptoError> {
        if self.is_key_file() {
            if passphrase.len() != KEY_LEN {
                return Err(CryptoError::Kdf(format!("a key file's secret is {KEY_LEN} bytes")));
            }
            let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(&self.salt), passphrase);
            let mut out = Zeroizing::new([0u8; KEY_LEN]);
            hk.expand(b"coffer1 key-file", out.as_mut()).map_err(|e| CryptoError::Kdf(e.to_string()))?;
            return Ok(out);
        }
        if self.algorithm != "argon2id" {
            return Err(CryptoError::Kdf(format!("unknown algorithm {:?}", self.algorithm)));
        }
        let params = argon2::Params::new(self.memory_kib, self.iterations, self.parallelism, Some(KEY_LEN))
            .map_err(|e| CryptoError::Kdf(e.to_string()))?;
        let argon = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        argon.hash_password_into(passphrase, &self.salt, out.as_mut()).map_err(|e| CryptoError::Kdf(e.to_string()))?;
        Ok(out)
    }
}

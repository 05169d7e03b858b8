//! Key derivation, key wrapping, authenticated encryption, keyed chunk ids
//! and content digests.
//!
//! Owns every use of a key or nonce; nothing else in coffer touches a cipher.
//! It knows roles and ids only as bytes to bind into associated data, not what
//! the objects mean.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

mod hash;
mod kdf;
#[cfg(test)]
mod vectors;

pub use hash::{sha256, ContentHasher, HashAlgo, HashingReader};
pub use kdf::KdfParams;

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Bytes a sealed object adds to its plaintext.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// What an encrypted object is; bound into its associated data so that one
/// kind of object can never be passed off as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Key,
    Chunk,
    PackHeader,
    Index,
    Snapshot,
    Lock,
    /// A WAL archive object (WAL file, or a stanza's cluster record).
    Wal,
    /// `copy`'s local record of chunk names (never in a repository).
    CopyMap,
}

impl Role {
    fn label(self) -> &'static [u8] {
        match self {
            Role::Key => b"key",
            Role::Chunk => b"chunk",
            Role::PackHeader => b"pack-header",
            Role::Index => b"index",
            Role::Snapshot => b"snapshot",
            Role::Lock => b"lock",
            Role::Wal => b"wal",
            Role::CopyMap => b"copy-map",
        }
    }
}

/// Associated data: "coffer1" 0x00 role 0x00 id. See docs/FORMAT.md.
fn associated_data(role: Role, id: &[u8]) -> Vec<u8> {
    let mut aad = Vec::with_capacity(8 + 12 + id.len());
    aad.extend_from_slice(b"coffer1\0");
    aad.extend_from_slice(role.label());
    aad.push(0);
    aad.extend_from_slice(id);
    aad
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("authentication failed")]
    Authentication,
    #[error("too short to be a sealed object ({0} bytes)")]
    TooShort(usize),
    #[error("key derivation: {0}")]
    Kdf(String),
}

/// The repository's random master key. Never stored except wrapped.
#[derive(Clone)]
pub struct MasterKey(Zeroizing<[u8; KEY_LEN]>);

impl MasterKey {
    pub fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(key.as_mut());
        MasterKey(key)
    }

    /// Wraps the master key under a key-encryption key; `binding` is the
    /// repository id, so a key object cannot be moved to another repository.
    pub fn wrap(&self, kek: &[u8; KEY_LEN], binding: &[u8]) -> Vec<u8> {
        let cipher = Aes256Gcm::new(kek.into());
        seal(&cipher, Role::Key, binding, self.0.as_ref())
    }

    pub fn unwrap(kek: &[u8; KEY_LEN], binding: &[u8], wrapped: &[u8]) -> Result<Self, CryptoError> {
        let cipher = Aes256Gcm::new(kek.into());
        let plain = Zeroizing::new(open(&cipher, Role::Key, binding, wrapped)?);
        let bytes: [u8; KEY_LEN] = plain.as_slice().try_into().map_err(|_| CryptoError::Authentication)?;
        Ok(MasterKey(Zeroizing::new(bytes)))
    }

    /// Derives the per-purpose subkeys (HKDF-SHA256, salt = repository id);
    /// chunk ids are computed with `ids`, the repository's algorithm.
    pub fn subkeys(&self, repository_id: &[u8], ids: HashAlgo) -> Keys {
        let data = self.subkey(repository_id, SUBKEY_DATA);
        let metadata = self.subkey(repository_id, SUBKEY_METADATA);
        let chunk_id = self.subkey(repository_id, SUBKEY_CHUNK_ID);
        Keys { data: Aes256Gcm::new((&*data).into()), metadata: Aes256Gcm::new((&*metadata).into()), chunk_id, ids }
    }

    /// One subkey: HKDF-SHA256(salt = repository id, ikm = master key, info).
    fn subkey(&self, repository_id: &[u8], info: &[u8]) -> Zeroizing<[u8; KEY_LEN]> {
        let hk = Hkdf::<Sha256>::new(Some(repository_id), self.0.as_ref());
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        // SECURITY: 32 bytes is far below HKDF's 255*32 limit; expand cannot fail.
        hk.expand(info, k.as_mut()).expect("hkdf output length is valid");
        k
    }

    /// A master key of known bytes: for the fuzz targets and test vectors.
    pub(crate) fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        MasterKey(Zeroizing::new(bytes))
    }
}

/// HKDF info strings of the three subkeys (FORMAT.md §4).
const SUBKEY_DATA: &[u8] = b"coffer1 data";
const SUBKEY_METADATA: &[u8] = b"coffer1 metadata";
const SUBKEY_CHUNK_ID: &[u8] = b"coffer1 chunk-id";

/// Subkeys of an open repository. `data` seals chunks and pack headers,
/// `metadata` seals indexes and snapshots, `chunk_id` keys the ids' MAC.
#[derive(Clone)]
pub struct Keys {
    data: Aes256Gcm,
    metadata: Aes256Gcm,
    chunk_id: Zeroizing<[u8; KEY_LEN]>,
    ids: HashAlgo,
}

impl Keys {
    fn cipher(&self, role: Role) -> &Aes256Gcm {
        match role {
            Role::Chunk | Role::PackHeader | Role::Wal => &self.data,
            Role::Index | Role::Snapshot | Role::Lock | Role::Key | Role::CopyMap => &self.metadata,
        }
    }

    /// Chunk id: a MAC of the plaintext under a secret key (HMAC-SHA256 or
    /// keyed BLAKE3), so that the bucket owner cannot confirm a guessed file
    /// by its hash.
    pub fn chunk_id(&self, plaintext: &[u8]) -> [u8; 32] {
        match self.ids {
            HashAlgo::Sha256 => {
                let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(self.chunk_id.as_ref())
                    .expect("hmac takes keys of any length");
                mac.update(plaintext);
                mac.finalize().into_bytes().into()
            }
            HashAlgo::Blake3 => blake3::keyed_hash(&self.chunk_id, plaintext).into(),
        }
    }

    pub fn seal(&self, role: Role, id: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal(self.cipher(role), role, id, plaintext)
    }

    /// Seals in place, without a copy: `buf` is `NONCE_LEN` bytes of room
    /// (their value is ignored) and then the plaintext; it becomes the sealed
    /// object (`seal`'s layout).
    pub fn seal_in_place(&self, role: Role, id: &[u8], buf: &mut Vec<u8>) {
        seal_in_place(self.cipher(role), role, id, buf)
    }

    pub fn open(&self, role: Role, id: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open(self.cipher(role), role, id, sealed)
    }

    /// Opens without a copy; returns the plaintext, a slice of `sealed`.
    pub fn open_in_place<'b>(&self, role: Role, id: &[u8], sealed: &'b mut [u8]) -> Result<&'b [u8], CryptoError> {
        open_in_place(self.cipher(role), role, id, sealed)
    }
}

/// nonce || ciphertext || tag. SECURITY: a fresh random 96-bit nonce per
/// object; with < 2^32 objects per key the collision chance stays negligible.
fn seal(cipher: &Aes256Gcm, role: Role, id: &[u8], plaintext: &[u8]) -> Vec<u8> {
    // Encrypted in place, so no second cleartext copy (of a key) is left.
    let mut buf = Vec::with_capacity(plaintext.len() + SEAL_OVERHEAD);
    buf.extend_from_slice(&[0; NONCE_LEN]);
    buf.extend_from_slice(plaintext);
    seal_in_place(cipher, role, id, &mut buf);
    buf
}

fn seal_in_place(cipher: &Aes256Gcm, role: Role, id: &[u8], buf: &mut Vec<u8>) {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    seal_in_place_with(cipher, role, id, buf, nonce)
}

/// SECURITY: `nonce` must be fresh; only `seal_in_place` and the test
/// vectors (a fixed nonce, so that the bytes are known) call this.
fn seal_in_place_with(cipher: &Aes256Gcm, role: Role, id: &[u8], buf: &mut Vec<u8>, nonce: [u8; NONCE_LEN]) {
    buf[..NONCE_LEN].copy_from_slice(&nonce);
    let aad = associated_data(role, id);
    let tag = cipher
        .encrypt_inout_detached(&Nonce::from(nonce), &aad, (&mut buf[NONCE_LEN..]).into())
        .expect("aes-gcm encrypts any buffer below 64 GiB");
    buf.extend_from_slice(&tag);
}

fn open(cipher: &Aes256Gcm, role: Role, id: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let mut buf = sealed.to_vec();
    let len = open_in_place(cipher, role, id, &mut buf)?.len();
    buf.copy_within(NONCE_LEN..NONCE_LEN + len, 0);
    buf.truncate(len);
    Ok(buf)
}

fn open_in_place<'b>(cipher: &Aes256Gcm, role: Role, id: &[u8], sealed: &'b mut [u8]) -> Result<&'b [u8], CryptoError> {
    let len = sealed.len();
    let (nonce, rest) = sealed.split_first_chunk_mut::<NONCE_LEN>().ok_or(CryptoError::TooShort(len))?;
    let (body, tag) = rest.split_last_chunk_mut::<TAG_LEN>().ok_or(CryptoError::TooShort(len))?;
    let aad = associated_data(role, id);
    cipher
        .decrypt_inout_detached(&Nonce::from(*nonce), &aad, body.into(), &Tag::from(*tag))
        .map_err(|_| CryptoError::Authentication)?;
    Ok(body)
}

/// Random bytes for ids and salts.
pub fn random_id() -> [u8; 32] {
    let mut id = [0u8; 32];
    OsRng.fill_bytes(&mut id);
    id
}

#[cfg(test)]
mod tests {
    use super::kdf::KDF_MAX_MEMORY_KIB;
    use super::*;
    use sha2::Digest;

    fn keys() -> Keys {
        MasterKey::generate().subkeys(b"repo", HashAlgo::Blake3)
    }

    #[test]
    fn seal_open_round_trip_at_boundary_sizes() {
        let k = keys();
        for len in [0usize, 1, 15, 16, 17, 4096] {
            let plain = vec![7u8; len];
            let sealed = k.seal(Role::Chunk, b"id", &plain);
            assert_eq!(sealed.len(), len + SEAL_OVERHEAD);
            assert_eq!(k.open(Role::Chunk, b"id", &sealed).unwrap(), plain);
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let k = keys();
        let sealed = k.seal(Role::Snapshot, b"s1", b"hello world");
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(k.open(Role::Snapshot, b"s1", &bad).is_err(), "flip at {i} not detected");
        }
        let truncated = &sealed[..sealed.len() - 1];
        assert!(k.open(Role::Snapshot, b"s1", truncated).is_err());
        assert!(k.open(Role::Snapshot, b"s1", &sealed[..5]).is_err());
        // Shorter than a nonce and a tag: refused as such, before any decryption.
        for n in [0, NONCE_LEN, SEAL_OVERHEAD - 1] {
            assert!(matches!(k.open(Role::Snapshot, b"s1", &sealed[..n]), Err(CryptoError::TooShort(l)) if l == n));
        }
        assert!(matches!(k.open(Role::Snapshot, b"s1", &sealed[..SEAL_OVERHEAD]), Err(CryptoError::Authentication)));
    }

    #[test]
    fn role_and_id_are_bound() {
        let k = keys();
        let sealed = k.seal(Role::Index, b"a", b"data");
        assert!(k.open(Role::Snapshot, b"a", &sealed).is_err());
        assert!(k.open(Role::Index, b"b", &sealed).is_err());
        assert!(k.open(Role::Index, b"a", &sealed).is_ok());
    }

    #[test]
    fn nonces_are_fresh() {
        let k = keys();
        assert_ne!(k.seal(Role::Chunk, b"x", b"same"), k.seal(Role::Chunk, b"x", b"same"));
    }

    #[test]
    fn wrap_unwrap_and_wrong_kek() {
        let master = MasterKey::generate();
        let params = KdfParams::with_cost(64, 1, 1);
        let kek = params.derive(b"right").unwrap();
        let wrapped = master.wrap(&kek, b"repo");
        let back = MasterKey::unwrap(&kek, b"repo", &wrapped).unwrap();
        assert_eq!(back.0.as_ref(), master.0.as_ref());
        let wrong = params.derive(b"wrong").unwrap();
        assert!(MasterKey::unwrap(&wrong, b"repo", &wrapped).is_err());
        assert!(MasterKey::unwrap(&kek, b"other-repo", &wrapped).is_err());
    }

    #[test]
    fn chunk_ids_are_keyed() {
        let a = keys();
        let b = keys();
        assert_eq!(a.chunk_id(b"x"), a.chunk_id(b"x"));
        assert_ne!(a.chunk_id(b"x"), b.chunk_id(b"x"));
        assert_ne!(a.chunk_id(b"x"), a.chunk_id(b"y"));
    }

    #[test]
    fn chunk_ids_follow_the_repository_algorithm() {
        let master = MasterKey::generate();
        let (v1, v2) = (master.subkeys(b"r", HashAlgo::Sha256), master.subkeys(b"r", HashAlgo::Blake3));
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(v1.chunk_id.as_ref()).unwrap();
        mac.update(b"data");
        assert_eq!(v1.chunk_id(b"data"), <[u8; 32]>::from(mac.finalize().into_bytes()));
        assert_eq!(v2.chunk_id(b"data"), *blake3::keyed_hash(&v2.chunk_id, b"data").as_bytes());
        assert_ne!(v1.chunk_id(b"data"), v2.chunk_id(b"data"));
    }

    #[test]
    fn content_digests_match_the_reference_functions() {
        for algo in [HashAlgo::Sha256, HashAlgo::Blake3] {
            let mut h = algo.hasher();
            h.update(b"hello ");
            h.update(b"world");
            let want: [u8; 32] = match algo {
                HashAlgo::Sha256 => Sha256::digest(b"hello world").into(),
                HashAlgo::Blake3 => blake3::hash(b"hello world").into(),
            };
            assert_eq!(h.finalize(), want, "{}", algo.name());
        }
    }

    #[test]
    fn excessive_kdf_is_flagged() {
        assert!(!KdfParams::recommended().is_excessive());
        assert!(KdfParams::with_cost(KDF_MAX_MEMORY_KIB + 1, 1, 1).is_excessive());
    }
}

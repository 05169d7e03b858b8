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

mod envelope;
mod hash;
mod kdf;
#[cfg(test)]
mod vectors;

pub use envelope::{KeyBlock, ENVELOPE_LEN};
pub use hash::{sha256, ContentHasher, HashAlgo, HashingReader};
pub use kdf::KdfParams;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use x25519_dalek::{PublicKey, StaticSecret};

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
    /// A write-only backup's local record of its last snapshot's files.
    StatCache,
    /// A session key wrapped in a public-key envelope (format 3).
    Envelope,
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
            Role::StatCache => b"stat-cache",
            Role::Envelope => b"envelope",
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

/// `associated_data`, for the test that tries raw keys on stored objects.
#[cfg(test)]
pub(crate) fn associated_data_for_tests(role: Role, id: &[u8]) -> Vec<u8> {
    associated_data(role, id)
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("authentication failed")]
    Authentication,
    #[error("too short to be a sealed object ({0} bytes)")]
    TooShort(usize),
    #[error("key derivation: {0}")]
    Kdf(String),
    /// A write-only key holds no key that opens this.
    #[error("a write-only key cannot open it")]
    WriteOnly,
    #[error("key block: {0}")]
    KeyBlock(String),
    #[error("sealed under key generation {0}, which this key does not hold")]
    Generation(u32),
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

    /// Derives the per-purpose subkeys (HKDF-SHA256, salt = repository id)
    /// of a repository of format `version`.
    pub fn subkeys(&self, repository_id: &[u8], version: u32) -> Keys {
        let data = self.subkey(repository_id, SUBKEY_DATA);
        let metadata = self.subkey(repository_id, SUBKEY_METADATA);
        let chunk_id = self.subkey(repository_id, SUBKEY_CHUNK_ID);
        let metadata = Aes256Gcm::new((&*metadata).into());
        let (index, v3) = if version >= 3 {
            let identity = StaticSecret::from(*self.subkey(repository_id, SUBKEY_IDENTITY));
            let v3 = V3 {
                repository_id: repository_id.into(),
                identity: Some(identity),
                session: None,
                opened: Default::default(),
            };
            (Aes256Gcm::new((&*self.subkey(repository_id, SUBKEY_INDEX)).into()), Some(v3))
        } else {
            (metadata.clone(), None)
        };
        Keys {
            data: Some(Aes256Gcm::new((&*data).into())),
            metadata: Some(metadata),
            index,
            chunk_id,
            ids: HashAlgo::of_version(version),
            v3,
        }
    }

    /// What a write-only key holds (format 3): the chunk-id and index keys,
    /// and the recipient its sessions are wrapped to.
    pub fn write_only(&self, repository_id: &[u8]) -> WriteOnlyKey {
        let mut bytes = Zeroizing::new([0u8; WRITE_ONLY_LEN]);
        bytes[..32].copy_from_slice(self.subkey(repository_id, SUBKEY_CHUNK_ID).as_ref());
        bytes[32..64].copy_from_slice(self.subkey(repository_id, SUBKEY_INDEX).as_ref());
        let identity = StaticSecret::from(*self.subkey(repository_id, SUBKEY_IDENTITY));
        bytes[64..].copy_from_slice(PublicKey::from(&identity).as_bytes());
        WriteOnlyKey(bytes)
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

const WRITE_ONLY_LEN: usize = 3 * KEY_LEN;

/// A write-only key's material (FORMAT.md §4a): chunk-id key || index key
/// || recipient public key. Nothing in it opens a chunk, a manifest or WAL.
#[derive(Clone)]
pub struct WriteOnlyKey(Zeroizing<[u8; WRITE_ONLY_LEN]>);

impl WriteOnlyKey {
    /// Its bytes, for the test that tries them as keys.
    #[cfg(test)]
    pub(crate) fn material_for_tests(&self) -> &[u8] {
        self.0.as_ref()
    }

    pub fn wrap(&self, kek: &[u8; KEY_LEN], binding: &[u8]) -> Vec<u8> {
        seal(&Aes256Gcm::new(kek.into()), Role::Key, binding, self.0.as_ref())
    }

    pub fn unwrap(kek: &[u8; KEY_LEN], binding: &[u8], wrapped: &[u8]) -> Result<Self, CryptoError> {
        let plain = Zeroizing::new(open(&Aes256Gcm::new(kek.into()), Role::Key, binding, wrapped)?);
        let bytes: [u8; WRITE_ONLY_LEN] = plain.as_slice().try_into().map_err(|_| CryptoError::Authentication)?;
        Ok(WriteOnlyKey(Zeroizing::new(bytes)))
    }

    /// Keys that seal new objects under a fresh session key of this process
    /// (one envelope for the whole run) and open only indexes and locks.
    pub fn subkeys(&self, repository_id: &[u8], version: u32) -> Keys {
        let chunk_id = Zeroizing::new(<[u8; KEY_LEN]>::try_from(&self.0[..32]).unwrap_or_default());
        let index = Zeroizing::new(<[u8; KEY_LEN]>::try_from(&self.0[32..64]).unwrap_or_default());
        let index = Aes256Gcm::new((&*index).into());
        let recipient = PublicKey::from(<[u8; 32]>::try_from(&self.0[64..]).unwrap_or_default());
        let session = envelope::new_session(&recipient, repository_id);
        Keys {
            data: None,
            metadata: None,
            index,
            chunk_id,
            ids: HashAlgo::of_version(version),
            v3: Some(V3 {
                repository_id: repository_id.into(),
                identity: None,
                session: Some(Arc::new(session)),
                opened: Default::default(),
            }),
        }
    }
}

/// HKDF info strings of the subkeys (FORMAT.md §4).
const SUBKEY_DATA: &[u8] = b"coffer1 data";
const SUBKEY_METADATA: &[u8] = b"coffer1 metadata";
const SUBKEY_CHUNK_ID: &[u8] = b"coffer1 chunk-id";
/// Format 3: indexes, locks and pack headers, which write-only keys read too.
const SUBKEY_INDEX: &[u8] = b"coffer3 index";
/// Format 3: the X25519 identity that opens envelopes.
const SUBKEY_IDENTITY: &[u8] = b"coffer3 identity";

/// Subkeys of an open repository. `data` seals chunks, pack headers (before
/// format 3) and WAL, `metadata` snapshots (and indexes and locks before
/// format 3), `index` indexes, locks and pack headers in format 3;
/// `chunk_id` keys the ids' MAC. A write-only key has neither `data` nor
/// `metadata`, only a session key to seal with.
#[derive(Clone)]
pub struct Keys {
    data: Option<Aes256Gcm>,
    metadata: Option<Aes256Gcm>,
    index: Aes256Gcm,
    chunk_id: Zeroizing<[u8; KEY_LEN]>,
    ids: HashAlgo,
    v3: Option<V3>,
}

/// What format 3 adds: key blocks, the recipient, envelopes.
#[derive(Clone)]
struct V3 {
    repository_id: Vec<u8>,
    /// A full key's: opens envelopes.
    identity: Option<StaticSecret>,
    /// A write-only key's: the session key this process seals with, and its envelope.
    session: Option<Arc<(Aes256Gcm, Box<[u8; ENVELOPE_LEN]>)>>,
    /// Session keys unwrapped so far, by envelope: one X25519 per backup run read.
    opened: Arc<Mutex<HashMap<[u8; ENVELOPE_LEN], Aes256Gcm>>>,
}

/// Roles whose objects a write-only key seals under its session key.
fn is_data_role(role: Role) -> bool {
    matches!(role, Role::Chunk | Role::Snapshot | Role::Wal)
}

impl Keys {
    /// A write-only key's: it seals, but opens no chunk, manifest or WAL.
    pub fn is_write_only(&self) -> bool {
        self.data.is_none()
    }

    /// Format 3: sealed objects start with a key block.
    pub fn has_key_blocks(&self) -> bool {
        self.v3.is_some()
    }

    /// The cipher `role` is sealed with in a repository-key block.
    fn cipher(&self, role: Role) -> Result<&Aes256Gcm, CryptoError> {
        let v3 = self.v3.is_some();
        match role {
            Role::Index | Role::Lock | Role::CopyMap | Role::StatCache if v3 => Ok(&self.index),
            Role::PackHeader if v3 => Ok(&self.index),
            Role::Chunk | Role::PackHeader | Role::Wal => self.data.as_ref().ok_or(CryptoError::WriteOnly),
            Role::Index
            | Role::Snapshot
            | Role::Lock
            | Role::Key
            | Role::CopyMap
            | Role::StatCache
            | Role::Envelope => self.metadata.as_ref().ok_or(CryptoError::WriteOnly),
        }
    }

    /// What new objects of `role` are sealed with, and the key block that
    /// says so (format 3).
    fn sealer(&self, role: Role) -> (&Aes256Gcm, Option<KeyBlock>) {
        match &self.v3 {
            Some(V3 { session: Some(s), .. }) if is_data_role(role) => {
                (&s.0, Some(KeyBlock::Envelope { generation: 0, envelope: s.1.clone() }))
            }
            // SECURITY: a write-only key has a session for every role it
            // lacks a key of (is_data_role); the others use the index key.
            _ => (self.cipher(role).unwrap_or(&self.index), self.v3.as_ref().map(|_| KeyBlock::DEFAULT)),
        }
    }

    /// The cipher that opens `role` under `block`.
    fn opener(&self, role: Role, block: &KeyBlock) -> Result<Aes256Gcm, CryptoError> {
        if block.generation() != 0 {
            return Err(CryptoError::Generation(block.generation()));
        }
        match block {
            KeyBlock::Repository { .. } => self.cipher(role).cloned(),
            KeyBlock::Envelope { envelope, .. } => {
                let v3 = self.v3.as_ref().ok_or_else(|| CryptoError::KeyBlock("an envelope before format 3".into()))?;
                let identity = v3.identity.as_ref().ok_or(CryptoError::WriteOnly)?;
                let mut opened = v3.opened.lock().map_err(|_| CryptoError::Authentication)?;
                if let Some(c) = opened.get(&**envelope) {
                    return Ok(c.clone());
                }
                let c = envelope::open_session(identity, envelope, &v3.repository_id)?;
                opened.insert(**envelope, c.clone());
                Ok(c)
            }
        }
    }

    /// The key block a pack written now carries (format 3): its chunks' key.
    pub fn pack_key_block(&self) -> Option<KeyBlock> {
        self.sealer(Role::Chunk).1
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

    /// The chunk-id MAC as a streaming keyed BLAKE3 (formats 2 and later):
    /// format 3's WAL tags, which write-only keys compute too.
    pub fn tag_hasher(&self) -> blake3::Hasher {
        blake3::Hasher::new_keyed(&self.chunk_id)
    }

    /// A whole object (snapshot, index, lock, WAL): in format 3, its key
    /// block, then the sealed bytes.
    pub fn seal(&self, role: Role, id: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let (cipher, block) = self.sealer(role);
        let sealed = seal(cipher, role, id, plaintext);
        match block {
            Some(b) => [b.encode(), sealed].concat(),
            None => sealed,
        }
    }

    pub fn open(&self, role: Role, id: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        if self.v3.is_none() {
            return open(self.cipher(role)?, role, id, sealed);
        }
        let (block, n) = KeyBlock::parse(sealed)?;
        open(&self.opener(role, &block)?, role, id, &sealed[n..])
    }

    /// A part of a pack, sealed in place without a copy: `buf` is
    /// `NONCE_LEN` bytes of room (their value is ignored) and then the
    /// plaintext; it becomes nonce || ciphertext || tag. Its key is the
    /// one `pack_key_block` names.
    pub fn seal_in_place(&self, role: Role, id: &[u8], buf: &mut Vec<u8>) {
        seal_in_place(self.sealer(role).0, role, id, buf)
    }

    /// A pack's header (no key block of its own; bound to the pack's).
    pub fn seal_part(&self, role: Role, id: &[u8], plaintext: &[u8]) -> Vec<u8> {
        seal(self.sealer(role).0, role, id, plaintext)
    }

    pub fn open_part(&self, role: Role, id: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        open(self.cipher(role)?, role, id, sealed)
    }

    /// Opens a part of a pack without a copy, under the pack's key block;
    /// returns the plaintext, a slice of `sealed`.
    pub fn open_in_place<'b>(
        &self,
        role: Role,
        block: Option<&KeyBlock>,
        id: &[u8],
        sealed: &'b mut [u8],
    ) -> Result<&'b [u8], CryptoError> {
        match block {
            Some(b) if self.v3.is_some() => open_in_place(&self.opener(role, b)?, role, id, sealed),
            _ => open_in_place(self.cipher(role)?, role, id, sealed),
        }
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
        MasterKey::generate().subkeys(b"repo", 2)
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
        let (v1, v2) = (master.subkeys(b"r", 1), master.subkeys(b"r", 2));
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

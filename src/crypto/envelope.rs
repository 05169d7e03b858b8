//! Format 3's key blocks and public-key envelopes (docs/FORMAT.md §4a).
//!
//! A write-only key holds no key that opens data: each of its runs seals
//! under a fresh session key, and wraps that key to the repository's X25519
//! recipient (ephemeral-static Diffie-Hellman, HKDF-SHA256, AES-256-GCM),
//! which only a full key's identity unwraps.

use super::{open, seal, CryptoError, Role, KEY_LEN, SEAL_OVERHEAD};
use aes_gcm::aead::KeyInit;
use aes_gcm::Aes256Gcm;
use hkdf::Hkdf;
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;
use x25519_dalek::{EphemeralSecret, PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// Key block schemes: sealed under the repository's own subkey for the
/// object's role, or under a session key wrapped in an envelope.
const SCHEME_REPOSITORY: u8 = 0;
const SCHEME_ENVELOPE: u8 = 1;

/// An envelope: the ephemeral public key, then the sealed session key.
pub const ENVELOPE_LEN: usize = 32 + SEAL_OVERHEAD + KEY_LEN;

const ENVELOPE_INFO: &[u8] = b"coffer3 envelope";

/// Which key sealed a format 3 object (or a pack's chunks). `generation`
/// is the repository's key generation; only 0 exists so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyBlock {
    Repository { generation: u32 },
    Envelope { generation: u32, envelope: Box<[u8; ENVELOPE_LEN]> },
}

impl KeyBlock {
    pub const DEFAULT: KeyBlock = KeyBlock::Repository { generation: 0 };

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len());
        match self {
            KeyBlock::Repository { generation } => {
                out.push(SCHEME_REPOSITORY);
                out.extend_from_slice(&generation.to_le_bytes());
            }
            KeyBlock::Envelope { generation, envelope } => {
                out.push(SCHEME_ENVELOPE);
                out.extend_from_slice(&generation.to_le_bytes());
                out.extend_from_slice(&envelope[..]);
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        match self {
            KeyBlock::Repository { .. } => 5,
            KeyBlock::Envelope { .. } => 5 + ENVELOPE_LEN,
        }
    }

    /// Never empty; for clippy's `len` rule.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn is_envelope(&self) -> bool {
        matches!(self, KeyBlock::Envelope { .. })
    }

    /// The block at the start of `bytes`, and how many bytes it took.
    pub fn parse(bytes: &[u8]) -> Result<(KeyBlock, usize), CryptoError> {
        let bad = |why: &str| CryptoError::KeyBlock(why.to_string());
        let (&scheme, rest) = bytes.split_first().ok_or_else(|| bad("missing"))?;
        let generation = u32::from_le_bytes(
            rest.get(..4).ok_or_else(|| bad("truncated"))?.try_into().map_err(|_| bad("truncated"))?,
        );
        match scheme {
            SCHEME_REPOSITORY => Ok((KeyBlock::Repository { generation }, 5)),
            SCHEME_ENVELOPE => {
                let envelope: [u8; ENVELOPE_LEN] = rest
                    .get(4..4 + ENVELOPE_LEN)
                    .ok_or_else(|| bad("truncated envelope"))?
                    .try_into()
                    .map_err(|_| bad("truncated envelope"))?;
                Ok((KeyBlock::Envelope { generation, envelope: Box::new(envelope) }, 5 + ENVELOPE_LEN))
            }
            other => Err(bad(&format!("unknown scheme {other}"))),
        }
    }

    pub fn generation(&self) -> u32 {
        match self {
            KeyBlock::Repository { generation } | KeyBlock::Envelope { generation, .. } => *generation,
        }
    }
}

/// The wrapping key of an envelope: HKDF-SHA256(salt = ephemeral public key
/// || recipient, ikm = the shared secret, info).
fn wrap_key(shared: &[u8; 32], ephemeral: &PublicKey, recipient: &PublicKey) -> Aes256Gcm {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral.as_bytes());
    salt[32..].copy_from_slice(recipient.as_bytes());
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared);
    let mut k = Zeroizing::new([0u8; KEY_LEN]);
    // SECURITY: 32 bytes is far below HKDF's limit; expand cannot fail.
    hk.expand(ENVELOPE_INFO, k.as_mut()).expect("hkdf output length is valid");
    Aes256Gcm::new((&*k).into())
}

/// A fresh session key and its envelope to `recipient`, bound to the
/// repository id.
pub(super) fn new_session(recipient: &PublicKey, repository_id: &[u8]) -> (Aes256Gcm, Box<[u8; ENVELOPE_LEN]>) {
    let mut session = Zeroizing::new([0u8; KEY_LEN]);
    OsRng.fill_bytes(session.as_mut());
    let ephemeral = EphemeralSecret::random_from_rng(OsRng);
    let ephemeral_public = PublicKey::from(&ephemeral);
    let shared = ephemeral.diffie_hellman(recipient);
    let sealed = seal(
        &wrap_key(shared.as_bytes(), &ephemeral_public, recipient),
        Role::Envelope,
        repository_id,
        session.as_ref(),
    );
    let mut envelope = Box::new([0u8; ENVELOPE_LEN]);
    envelope[..32].copy_from_slice(ephemeral_public.as_bytes());
    envelope[32..].copy_from_slice(&sealed);
    (Aes256Gcm::new((&*session).into()), envelope)
}

/// The session key inside `envelope`, with the repository's identity.
pub(super) fn open_session(
    identity: &StaticSecret,
    envelope: &[u8; ENVELOPE_LEN],
    repository_id: &[u8],
) -> Result<Aes256Gcm, CryptoError> {
    let ephemeral: [u8; 32] = envelope[..32].try_into().map_err(|_| CryptoError::Authentication)?;
    let ephemeral = PublicKey::from(ephemeral);
    let shared = identity.diffie_hellman(&ephemeral);
    // A low-order point would make the shared secret known to anyone.
    if !shared.was_contributory() {
        return Err(CryptoError::Authentication);
    }
    let recipient = PublicKey::from(identity);
    let session = Zeroizing::new(open(
        &wrap_key(shared.as_bytes(), &ephemeral, &recipient),
        Role::Envelope,
        repository_id,
        &envelope[32..],
    )?);
    let key: [u8; KEY_LEN] = session.as_slice().try_into().map_err(|_| CryptoError::Authentication)?;
    let key = Zeroizing::new(key);
    Ok(Aes256Gcm::new((&*key).into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_blocks_round_trip_and_refuse_garbage() {
        let env = KeyBlock::Envelope { generation: 7, envelope: Box::new([9; ENVELOPE_LEN]) };
        for b in [KeyBlock::DEFAULT, env] {
            let mut bytes = b.encode();
            assert_eq!(bytes.len(), b.len());
            bytes.extend_from_slice(b"rest");
            assert_eq!(KeyBlock::parse(&bytes).unwrap(), (b.clone(), b.len()));
            for n in 0..b.len() {
                assert!(KeyBlock::parse(&bytes[..n]).is_err(), "{n} bytes of {b:?}");
            }
        }
        assert!(KeyBlock::parse(&[2, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn envelopes_open_only_with_the_identity_and_repository() {
        let identity = StaticSecret::random_from_rng(OsRng);
        let recipient = PublicKey::from(&identity);
        let (session, envelope) = new_session(&recipient, b"repo");
        let sealed = seal(&session, Role::Chunk, b"id", b"secret");
        let opened = open_session(&identity, &envelope, b"repo").unwrap();
        assert_eq!(open(&opened, Role::Chunk, b"id", &sealed).unwrap(), b"secret");
        assert!(open_session(&identity, &envelope, b"other").is_err());
        assert!(open_session(&StaticSecret::random_from_rng(OsRng), &envelope, b"repo").is_err());
        for i in [0, 31, 32, 50, ENVELOPE_LEN - 1] {
            let mut bad = envelope.clone();
            bad[i] ^= 1;
            assert!(open_session(&identity, &bad, b"repo").is_err(), "flip at {i}");
        }
        // An all-zero (low-order) ephemeral key is refused.
        let mut zero = envelope.clone();
        zero[..32].fill(0);
        assert!(open_session(&identity, &zero, b"repo").is_err());
    }
}

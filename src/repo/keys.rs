//! Key objects: each wraps the one master key under a passphrase. Adding,
//! listing, removing, changing, and trying them on open.

use super::{backend_error, Repository};
use crate::backend::{Backend, Kind};
use crate::crypto::{KdfParams, Keys, MasterKey, WriteOnlyKey};
use crate::error::{Error, Result};
use crate::format::{Access, Config, KeyFile};

/// What a key object unwrapped: the master key, or a write-only key.
#[derive(Clone)]
pub enum Secret {
    Full(MasterKey),
    WriteOnly(WriteOnlyKey),
}

impl Secret {
    pub(super) fn subkeys(&self, config: &Config) -> Keys {
        match self {
            Secret::Full(m) => m.subkeys(&config.id.0, config.version),
            Secret::WriteOnly(w) => w.subkeys(&config.id.0, config.version),
        }
    }
}

/// A key object, as `key list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub name: String,
    pub created: chrono::DateTime<chrono::Utc>,
    pub host: String,
    /// The key this process opened the repository with.
    pub current: bool,
    /// `passphrase` (Argon2id) or `key-file` (a random secret in a file).
    pub kind: &'static str,
    /// `full`, or `write-only` (backups only).
    pub access: &'static str,
}

/// A key file's text: `coffer-key-1:<key object name>:<base64 of 32 random
/// bytes>`. It goes where a passphrase goes (COFFER_PASSWORD_FILE, a
/// profile's password_file); naming its key object spares a listing.
pub(crate) struct KeyFileSecret {
    pub key: String,
    pub secret: zeroize::Zeroizing<Vec<u8>>,
}

const KEY_FILE_TAG: &str = "coffer-key-1";

impl KeyFileSecret {
    /// None for anything else: a passphrase.
    pub fn parse(text: &[u8]) -> Option<KeyFileSecret> {
        use base64::Engine;
        let text = std::str::from_utf8(text).ok()?;
        let mut parts = text.trim_end_matches('\n').split(':');
        let (tag, key, secret) = (parts.next()?, parts.next()?, parts.next()?);
        if tag != KEY_FILE_TAG
            || parts.next().is_some()
            || key.len() != 64
            || !key.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return None;
        }
        let secret = zeroize::Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(secret).ok()?);
        (secret.len() == crate::crypto::KEY_LEN).then(|| KeyFileSecret { key: key.to_string(), secret })
    }

    fn text(&self) -> zeroize::Zeroizing<String> {
        use base64::Engine;
        zeroize::Zeroizing::new(format!(
            "{KEY_FILE_TAG}:{}:{}\n",
            self.key,
            base64::engine::general_purpose::STANDARD.encode(&*self.secret)
        ))
    }
}

pub(super) fn new_key_file(
    master: &MasterKey,
    config: &Config,
    passphrase: &[u8],
    kdf: KdfParams,
    access: Access,
) -> Result<(String, Vec<u8>)> {
    // Such a passphrase would be read as a key file on open, and never match.
    if !kdf.is_key_file() && KeyFileSecret::parse(passphrase).is_some() {
        return Err(Error::InvalidOptions(
            "a passphrase in the form of a key file is refused: use `key add-file` for key files".into(),
        ));
    }
    let kek = kdf.derive(passphrase).map_err(|e| Error::InvalidOptions(format!("key derivation: {e}")))?;
    let key = KeyFile {
        version: config.version,
        created: chrono::Utc::now(),
        host: crate::hostname(),
        wrapped: match access {
            Access::Full => master.wrap(&kek, &config.id.0),
            Access::WriteOnly => master.write_only(&config.id.0).wrap(&kek, &config.id.0),
        },
        kdf,
        access,
    };
    let bytes = serde_json::to_vec_pretty(&key).map_err(|e| Error::Internal(e.to_string()))?;
    Ok((hex::encode(crate::crypto::sha256(&bytes)), bytes))
}

impl Repository {
    /// `Ok(None)`: a sound key that this passphrase does not open.
    /// `key_file`: the secret is a key file's, which opens only key-file
    /// key objects (and a passphrase only the others: no Argon2 is spent
    /// on a key file, nor a bare HKDF on a human passphrase).
    pub(super) fn try_key(
        backend: &dyn Backend,
        config: &Config,
        name: &str,
        passphrase: &[u8],
        key_file: bool,
    ) -> Result<Option<Secret>> {
        let object = format!("key keys/{name}");
        let bytes = backend.get(Kind::Key, name).map_err(backend_error)?;
        if hex::encode(crate::crypto::sha256(&bytes)) != name {
            return Err(Error::corrupt(object, "content does not match its name (sha256)"));
        }
        let key: KeyFile = serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(&object, e.to_string()))?;
        Error::check_version(|| object.clone(), key.version, config.version)?;
        if key.kdf.is_key_file() != key_file {
            return Ok(None);
        }
        if key.access == Access::WriteOnly && config.version < 3 {
            return Err(Error::corrupt(object, "a write-only key in a repository of format 1 or 2, which has none"));
        }
        if key.kdf.is_excessive() {
            let p = &key.kdf;
            return Err(Error::ExcessiveKdf {
                object,
                params: format!("m={}KiB t={} p={}", p.memory_kib, p.iterations, p.parallelism),
            });
        }
        let kek = key.kdf.derive(passphrase).map_err(|e| Error::corrupt(&object, e.to_string()))?;
        Ok(match key.access {
            Access::Full => MasterKey::unwrap(&kek, &config.id.0, &key.wrapped).ok().map(Secret::Full),
            Access::WriteOnly => WriteOnlyKey::unwrap(&kek, &config.id.0, &key.wrapped).ok().map(Secret::WriteOnly),
        })
    }

    /// Every key object, oldest first.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for info in self.backend.list(Kind::Key).map_err(backend_error)? {
            let bytes = self.backend.get(Kind::Key, &info.name).map_err(backend_error)?;
            let key: KeyFile = serde_json::from_slice(&bytes)
                .map_err(|e| Error::corrupt(format!("key keys/{}", info.name), e.to_string()))?;
            out.push(KeyInfo {
                current: info.name == self.key_name,
                kind: if key.kdf.is_key_file() { "key-file" } else { "passphrase" },
                access: key.access.name(),
                name: info.name,
                created: key.created,
                host: key.host,
            });
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    /// The master key, to wrap it anew; a write-only key has none.
    fn master(&self, access: Access) -> Result<&MasterKey> {
        let Secret::Full(master) = &self.secret else {
            return Err(self.write_only_error("add or change keys"));
        };
        if access == Access::WriteOnly && self.config.version < 3 {
            return Err(Error::Refused(format!(
                "write-only keys need repository format 3; this repository has format {} \
                 (copy its snapshots into a new repository with `coffer copy`)",
                self.config.version
            )));
        }
        Ok(master)
    }

    /// Wraps the master key (or, `WriteOnly`, a write-only key) under another
    /// passphrase: one new key object, no data rewritten. Returns its name.
    pub fn add_key(&self, passphrase: &[u8], kdf: KdfParams, access: Access) -> Result<String> {
        let (name, bytes) = new_key_file(self.master(access)?, &self.config, passphrase, kdf, access)?;
        self.backend.put(Kind::Key, &name, &bytes).map_err(backend_error)?;
        Ok(name)
    }

    /// A new key file's key: a random secret that opens the repository
    /// without Argon2 (for wal-push, run once per WAL segment). `save`
    /// stores the file's text first, so a key object never exists without
    /// its file. Returns the key object's name.
    pub fn add_key_file(&self, access: Access, save: impl FnOnce(&str) -> Result<()>) -> Result<String> {
        use rand::RngCore;
        let master = self.master(access)?;
        let mut secret = zeroize::Zeroizing::new(vec![0u8; crate::crypto::KEY_LEN]);
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let (name, bytes) = new_key_file(master, &self.config, &secret, KdfParams::key_file(), access)?;
        save(&KeyFileSecret { key: name.clone(), secret }.text())?;
        self.backend.put(Kind::Key, &name, &bytes).map_err(backend_error)?;
        Ok(name)
    }

    /// Removes a key object by name or unique prefix. The key in use and the
    /// last key are refused: a repository must always keep a way in. Only a
    /// full key removes keys, and never itself, so one full key always stays.
    pub fn remove_key(&self, query: &str) -> Result<String> {
        self.master(Access::Full)?;
        let keys = self.list_keys()?;
        let matches: Vec<&KeyInfo> = keys.iter().filter(|k| k.name.starts_with(query) && !query.is_empty()).collect();
        let key = match matches.as_slice() {
            [k] => *k,
            [] => return Err(Error::NotFound { object: format!("key {query}") }),
            _ => return Err(Error::InvalidOptions(format!("key prefix {query:?} is ambiguous"))),
        };
        if keys.len() == 1 {
            return Err(Error::Refused("refusing to remove the repository's last key".into()));
        }
        if key.current {
            return Err(Error::Refused(
                "refusing to remove the key in use; open the repository with another passphrase, or use `key passwd`"
                    .into(),
            ));
        }
        self.backend.delete(Kind::Key, &key.name).map_err(backend_error)?;
        Ok(key.name.clone())
    }

    /// Replaces the key in use by one under a new passphrase: the new key is
    /// stored before the old one is deleted, so there is always a way in.
    pub fn change_passphrase(&mut self, passphrase: &[u8], kdf: KdfParams) -> Result<String> {
        let old = self.key_name.clone();
        let name = self.add_key(passphrase, kdf, Access::Full)?;
        self.key_name = name.clone();
        self.backend.delete(Kind::Key, &old).map_err(backend_error)?;
        Ok(name)
    }

    /// Checks every key object's name against its content. For `verify`.
    pub fn check_key_objects(&self) -> Result<usize> {
        let infos = self.backend.list(Kind::Key).map_err(backend_error)?;
        for info in &infos {
            let bytes = self.backend.get(Kind::Key, &info.name).map_err(backend_error)?;
            if hex::encode(crate::crypto::sha256(&bytes)) != info.name {
                return Err(Error::corrupt(
                    format!("key keys/{}", info.name),
                    "content does not match its name (sha256)",
                ));
            }
            serde_json::from_slice::<KeyFile>(&bytes)
                .map_err(|e| Error::corrupt(format!("key keys/{}", info.name), e.to_string()))?;
        }
        Ok(infos.len())
    }
}

//! An open repository: a backend plus the keys that read and write it.
//!
//! Owns the write order that makes snapshots atomic (packs, then the index
//! naming them, then the manifest) and the checks on every object read:
//! names, authentication, chunk ids, size limits.

mod chunks;
mod keys;
pub mod lock;
mod snapshots;
#[cfg(test)]
mod write_only_tests;

pub use chunks::ChunkCheck;
use keys::new_key_file;
pub use keys::KeyInfo;
use keys::Secret;

use crate::backend::{Backend, BackendError, Kind};
use crate::crypto::{CryptoError, KdfParams, Keys, MasterKey, Role};
use crate::engine::chunker::ChunkerParams;
use crate::error::{Error, Result};
use crate::format::codec;
use crate::format::encoding::Id;
use crate::format::{self, Config, Index, IndexFile, PackEntry, FORMAT_VERSION};
use std::sync::Arc;

/// Metadata objects (indexes, manifests) may not decompress past this.
const METADATA_LIMIT: usize = 1 << 30;

pub struct Repository {
    backend: Arc<dyn Backend>,
    config: Config,
    keys: Keys,
    /// The master key (or a write-only key's material), kept (zeroized on
    /// drop) to wrap it under new passphrases.
    secret: Secret,
    /// The key object this repository was opened with.
    key_name: String,
    /// An index loaded again because a pack had gone (a prune repacked it
    /// while this process read): shared by every later miss.
    reloaded: std::sync::Mutex<Option<Arc<Index>>>,
}

pub(crate) fn backend_error(e: BackendError) -> Error {
    match e {
        BackendError::NotFound { path } => Error::NotFound { object: path },
        BackendError::Truncated { .. } => Error::corrupt("pack", e.to_string()),
        other => Error::Backend(other),
    }
}

impl Repository {
    /// Creates a repository. Fails if one (a `config`) is already there.
    pub fn init(backend: Arc<dyn Backend>, passphrase: &[u8], kdf: KdfParams) -> Result<Repository> {
        match backend.get(Kind::Config, "config") {
            Ok(_) => return Err(Error::RepositoryExists { location: backend.location() }),
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(backend_error(e)),
        }
        // Never beside a repository whose config was lost, nor inside one
        // (its snapshots/ or data/ would then hold our objects) or around one.
        if backend.holds_anything().map_err(backend_error)? {
            return Err(Error::Refused(format!(
                "{} holds objects but no repository config: refusing to create a repository there \
                 (a repository whose config was lost, or other data); use an empty location",
                backend.location()
            )));
        }
        if let Some(outer) = backend.enclosing_repository().map_err(backend_error)? {
            return Err(Error::Refused(format!(
                "{} lies inside the repository at {outer}: repositories must not nest",
                backend.location()
            )));
        }
        let config = Config {
            version: FORMAT_VERSION,
            id: Id::random(),
            chunker: ChunkerParams::default(),
            pack_size: format::DEFAULT_PACK_SIZE,
        };
        backend.create().map_err(backend_error)?;
        let master = MasterKey::generate();
        let (name, bytes) = new_key_file(&master, &config, passphrase, kdf, format::Access::Full)?;
        // The key before the config: a config is what marks a repository, and
        // it must never exist without a key to open it.
        backend.put(Kind::Key, &name, &bytes).map_err(backend_error)?;
        let config_bytes = serde_json::to_vec_pretty(&config).map_err(|e| Error::Internal(e.to_string()))?;
        backend.put(Kind::Config, "config", &config_bytes).map_err(backend_error)?;
        let secret = Secret::Full(master);
        let keys = secret.subkeys(&config);
        Ok(Repository { backend, config, keys, secret, key_name: name, reloaded: Default::default() })
    }

    /// Opens a repository with a passphrase, trying every key object.
    pub fn open(backend: Arc<dyn Backend>, passphrase: &[u8]) -> Result<Repository> {
        let config_bytes = match backend.get(Kind::Config, "config") {
            Ok(b) => b,
            Err(e) if e.is_not_found() => return Err(Error::NoRepository { location: backend.location() }),
            Err(e) => return Err(backend_error(e)),
        };
        let config = Config::parse(&config_bytes)?;
        let mut first_corrupt = None;
        let key_file = keys::KeyFileSecret::parse(passphrase);
        let (secret, names): (&[u8], Vec<String>) = match &key_file {
            // The key object it names, without a listing: one GET.
            Some(k) => (&k.secret, vec![k.key.clone()]),
            None => (passphrase, backend.list(Kind::Key).map_err(backend_error)?.into_iter().map(|i| i.name).collect()),
        };
        for name in names {
            match Self::try_key(&*backend, &config, &name, secret, key_file.is_some()) {
                Ok(Some(secret)) => {
                    let keys = secret.subkeys(&config);
                    return Ok(Repository {
                        backend,
                        config,
                        keys,
                        secret,
                        key_name: name,
                        reloaded: Default::default(),
                    });
                }
                Ok(None) => {}
                // A key file whose key object was removed: that key is gone.
                Err(Error::NotFound { .. }) if key_file.is_some() => {}
                Err(e) => {
                    first_corrupt.get_or_insert(e);
                }
            }
        }
        Err(first_corrupt.unwrap_or(Error::WrongPassphrase { location: backend.location() }))
    }

    /// The key object this repository was opened with.
    pub fn key_name(&self) -> &str {
        &self.key_name
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Opened with a write-only key: it can back up, and read nothing but
    /// indexes and locks.
    pub fn is_write_only(&self) -> bool {
        self.keys.is_write_only()
    }

    /// The error for what a write-only key cannot do (`what`: "restore", ...).
    pub fn write_only_error(&self, what: &str) -> Error {
        Error::WriteOnly { key: self.key_name[..12.min(self.key_name.len())].to_string(), what: what.to_string() }
    }

    /// A stored object's failure to open: corrupt, or beyond a write-only key.
    pub(crate) fn open_error(&self, object: &str, e: CryptoError) -> Error {
        match e {
            CryptoError::WriteOnly => self.write_only_error(&format!("read {object}")),
            other => Error::corrupt(object, other.to_string()),
        }
    }

    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// Same repository and keys, another backend (e.g. a dry-run wrapper).
    pub fn with_backend(&self, backend: Arc<dyn Backend>) -> Repository {
        Repository {
            backend,
            config: self.config.clone(),
            keys: self.keys.clone(),
            secret: self.secret.clone(),
            key_name: self.key_name.clone(),
            reloaded: Default::default(),
        }
    }

    pub fn put_pack(&self, id: &Id, bytes: &[u8]) -> Result<()> {
        self.backend.put(Kind::Pack, &id.to_hex(), bytes).map_err(backend_error)
    }

    pub fn save_index(&self, packs: Vec<PackEntry>) -> Result<Id> {
        let file = IndexFile { version: self.config.version, packs };
        self.save_sealed(Kind::Index, Role::Index, &file)
    }

    pub fn load_index_file(&self, id: &Id) -> Result<IndexFile> {
        let file: IndexFile = self.load_sealed(Kind::Index, Role::Index, id, "index")?;
        Error::check_version(|| format!("index {id}"), file.version, self.config.version)?;
        Ok(file)
    }

    /// Deletes an object; one that is gone already (another process deleted
    /// it meanwhile) is no error.
    pub fn delete_object(&self, kind: Kind, name: &str) -> Result<()> {
        match self.backend.delete(kind, name) {
            Err(e) if !e.is_not_found() => Err(backend_error(e)),
            _ => Ok(()),
        }
    }

    /// `delete_object`, except that an object Object Lock still retains is
    /// left as it is: Ok(Some(until)) then. A dry run deletes nothing and
    /// asks the store the same, so it reports what the run would keep.
    pub fn delete_unless_retained(
        &self,
        kind: Kind,
        name: &str,
        dry_run: bool,
    ) -> Result<Option<std::time::SystemTime>> {
        if dry_run {
            return self.retained(kind, name);
        }
        match self.backend.delete(kind, name) {
            Err(BackendError::Retained { until, .. }) => Ok(Some(until)),
            Err(e) if !e.is_not_found() => Err(backend_error(e)),
            _ => Ok(None),
        }
    }

    /// Until when Object Lock retains the object, if that is later than now.
    pub fn retained(&self, kind: Kind, name: &str) -> Result<Option<std::time::SystemTime>> {
        let now = std::time::SystemTime::now();
        Ok(self.backend.retained_until(kind, name).map_err(backend_error)?.filter(|u| *u > now))
    }

    /// The stored packs, by id (foreign names ignored), with their sizes and
    /// times as the listing gives them.
    pub fn list_packs(&self) -> Result<Vec<(Id, crate::backend::ObjectInfo)>> {
        let listed = self.backend.list(Kind::Pack).map_err(backend_error)?;
        Ok(listed.into_iter().filter_map(|o| Id::from_hex(&o.name).map(|id| (id, o))).collect())
    }

    /// The stored packs' sizes, by id.
    pub fn stored_pack_sizes(&self) -> Result<std::collections::HashMap<Id, u64>> {
        Ok(self.list_packs()?.into_iter().map(|(id, o)| (id, o.size)).collect())
    }

    pub fn list_ids(&self, kind: Kind) -> Result<Vec<Id>> {
        let mut ids = Vec::new();
        for info in self.backend.list(kind).map_err(backend_error)? {
            // Foreign names are ignored, not trusted: only ids are objects.
            if let Some(id) = Id::from_hex(&info.name) {
                ids.push(id);
            }
        }
        Ok(ids)
    }

    /// Every index merged.
    /// Every index merged. An index file that vanishes between the listing
    /// and its read was replaced by a prune, whose new index was written
    /// first: the listing is taken again.
    pub fn load_index(&self) -> Result<Index> {
        let mut attempt = 0;
        'again: loop {
            attempt += 1;
            let mut index = Index::default();
            for id in self.list_ids(Kind::Index)? {
                match self.load_index_file(&id) {
                    Ok(file) => file.packs.iter().for_each(|p| index.add_pack(p)),
                    Err(Error::NotFound { .. }) if attempt < 4 => continue 'again,
                    Err(e) => return Err(e),
                }
            }
            return Ok(index);
        }
    }

    // Sealed JSON objects: indexes, manifests.

    fn save_sealed<T: serde::Serialize>(&self, kind: Kind, role: Role, value: &T) -> Result<Id> {
        // Each form is dropped once the next exists: a large tree's manifest
        // is tens of MiB of JSON.
        let payload = {
            let json = serde_json::to_vec(value).map_err(|e| Error::Internal(e.to_string()))?;
            codec::encode(&json, 3)
        };
        let id = Id::random();
        let sealed = self.keys.seal(role, &id.0, &payload);
        self.backend.put(kind, &id.to_hex(), &sealed).map_err(backend_error)?;
        Ok(id)
    }

    fn load_sealed<T: serde::de::DeserializeOwned>(&self, kind: Kind, role: Role, id: &Id, what: &str) -> Result<T> {
        let object = format!("{what} {id}");
        let sealed = self.backend.get(kind, &id.to_hex()).map_err(|e| match e {
            BackendError::NotFound { .. } => Error::NotFound { object: object.clone() },
            other => backend_error(other),
        })?;
        let payload = self.keys.open(role, &id.0, &sealed).map_err(|e| self.open_error(&object, e))?;
        drop(sealed);
        let json = codec::decode(&payload, METADATA_LIMIT).map_err(|e| Error::corrupt(&object, e.to_string()))?;
        drop(payload);
        serde_json::from_slice(&json).map_err(|e| Error::corrupt(&object, format!("invalid JSON: {e}")))
    }
}

//! An open repository: a backend plus the keys that read and write it.
//!
//! Owns the write order that makes snapshots atomic (packs, then the index
//! naming them, then the manifest) and the checks on every object read:
//! names, authentication, chunk ids, size limits.

use crate::backend::{Backend, BackendError, Kind};
use crate::chunker::ChunkerParams;
use crate::compression;
use crate::crypto::{HashAlgo, KdfParams, Keys, MasterKey, Role};
use crate::encoding::Id;
use crate::error::{Error, Result};
use crate::format::{self, Config, Index, IndexFile, KeyFile, PackEntry, FORMAT_VERSION};
use crate::manifest::{Manifest, SnapshotInfo};
use crate::pipeline::BufferPool;
use std::sync::Arc;

/// Metadata objects (indexes, manifests) may not decompress past this.
const METADATA_LIMIT: usize = 1 << 30;

/// How much of a chunk is checked when it is read. The AEAD tag, always: it
/// proves that a holder of the key sealed these bytes for this chunk id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkCheck {
    /// The tag only: for reads whose whole result is checked against the
    /// manifest's digest (BLAKE3; SHA-256 in version 1) before anyone sees it
    /// (a restored file is named only then), which catches a wrong chunk too.
    Tag,
    /// Also recompute the chunk's id from its plaintext (keyed BLAKE3;
    /// HMAC-SHA256 in version 1): where data leaves coffer chunk by chunk
    /// (into pg_restore), in `verify`, `prune` and `backup --force`.
    Content,
}

pub struct Repository {
    backend: Arc<dyn Backend>,
    config: Config,
    keys: Keys,
    /// Kept (zeroized on drop) to wrap it under new passphrases.
    master: MasterKey,
    /// The key object this repository was opened with.
    key_name: String,
    /// An index loaded again because a pack had gone (a prune repacked it
    /// while this process read): shared by every later miss.
    reloaded: std::sync::Mutex<Option<Arc<Index>>>,
}

/// A key object, as `key list` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyInfo {
    pub name: String,
    pub created: chrono::DateTime<chrono::Utc>,
    pub host: String,
    /// The key this process opened the repository with.
    pub current: bool,
}

pub(crate) fn backend_error(e: BackendError) -> Error {
    match e {
        BackendError::NotFound { path } => Error::NotFound { object: path },
        BackendError::Truncated { .. } => Error::corrupt("pack", e.to_string()),
        other => Error::Backend(other.to_string()),
    }
}

fn new_key_file(master: &MasterKey, config: &Config, passphrase: &[u8], kdf: KdfParams) -> Result<(String, Vec<u8>)> {
    let kek = kdf.derive(passphrase).map_err(|e| Error::InvalidInput(e.to_string()))?;
    let key = KeyFile {
        version: config.version,
        created: chrono::Utc::now(),
        host: crate::hostname(),
        wrapped: master.wrap(&kek, &config.id.0),
        kdf,
    };
    let bytes = serde_json::to_vec_pretty(&key).map_err(|e| Error::InvalidInput(e.to_string()))?;
    Ok((hex::encode(format::sha256(&bytes)), bytes))
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
            return Err(Error::InvalidInput(format!(
                "{} holds objects but no repository config: refusing to create a repository there \
                 (a repository whose config was lost, or other data); use an empty location",
                backend.location()
            )));
        }
        if let Some(outer) = backend.enclosing_repository().map_err(backend_error)? {
            return Err(Error::InvalidInput(format!(
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
        let (name, bytes) = new_key_file(&master, &config, passphrase, kdf)?;
        // The key before the config: a config is what marks a repository, and
        // it must never exist without a key to open it.
        backend.put(Kind::Key, &name, &bytes).map_err(backend_error)?;
        let config_bytes = serde_json::to_vec_pretty(&config).map_err(|e| Error::InvalidInput(e.to_string()))?;
        backend.put(Kind::Config, "config", &config_bytes).map_err(backend_error)?;
        let keys = master.subkeys(&config.id.0, HashAlgo::of_version(config.version));
        Ok(Repository { backend, config, keys, master, key_name: name, reloaded: Default::default() })
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
        for info in backend.list(Kind::Key).map_err(backend_error)? {
            match Self::try_key(&*backend, &config, &info.name, passphrase) {
                Ok(Some(master)) => {
                    let keys = master.subkeys(&config.id.0, HashAlgo::of_version(config.version));
                    return Ok(Repository {
                        backend,
                        config,
                        keys,
                        master,
                        key_name: info.name,
                        reloaded: Default::default(),
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    first_corrupt.get_or_insert(e);
                }
            }
        }
        Err(first_corrupt.unwrap_or(Error::WrongPassphrase { location: backend.location() }))
    }

    /// `Ok(None)`: a sound key that this passphrase does not open.
    fn try_key(backend: &dyn Backend, config: &Config, name: &str, passphrase: &[u8]) -> Result<Option<MasterKey>> {
        let object = format!("key keys/{name}");
        let bytes = backend.get(Kind::Key, name).map_err(backend_error)?;
        if hex::encode(format::sha256(&bytes)) != name {
            return Err(Error::corrupt(object, "content does not match its name (sha256)"));
        }
        let key: KeyFile = serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(&object, e.to_string()))?;
        Error::check_version(|| object.clone(), key.version, config.version)?;
        if key.kdf.is_excessive() {
            let p = &key.kdf;
            return Err(Error::ExcessiveKdf {
                object,
                params: format!("m={}KiB t={} p={}", p.memory_kib, p.iterations, p.parallelism),
            });
        }
        let kek = key.kdf.derive(passphrase).map_err(|e| Error::corrupt(&object, e.to_string()))?;
        Ok(MasterKey::unwrap(&kek, &config.id.0, &key.wrapped).ok())
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

    pub fn location(&self) -> String {
        self.backend.location()
    }

    /// Same repository and keys, another backend (e.g. a dry-run wrapper).
    pub fn with_backend(&self, backend: Arc<dyn Backend>) -> Repository {
        Repository {
            backend,
            config: self.config.clone(),
            keys: self.keys.clone(),
            master: self.master.clone(),
            key_name: self.key_name.clone(),
            reloaded: Default::default(),
        }
    }

    // ---- chunks ----

    /// Compresses and seals one chunk for a pack, into `out` (replacing what
    /// it held: the backup pipeline reuses its buffers).
    pub fn seal_chunk(&self, id: &Id, data: &[u8], level: i32, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&[0; crate::crypto::NONCE_LEN]);
        compression::encode_into(data, level, out);
        self.keys.seal_in_place(Role::Chunk, &id.0, out);
    }

    /// Opens a sealed chunk and checks that its content has the id it was
    /// asked for by; `pack` names the object in errors.
    pub fn open_chunk(&self, id: &Id, sealed: &[u8], pack: &Id) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        self.open_chunk_into(id, &mut sealed.to_vec(), pack, ChunkCheck::Content, &mut data)?;
        Ok(data)
    }

    /// `open_chunk` without copies: decrypts `sealed` in place and
    /// decompresses into `out`.
    pub fn open_chunk_into(
        &self,
        id: &Id,
        sealed: &mut [u8],
        pack: &Id,
        check: ChunkCheck,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let object = || format!("pack {pack}");
        let payload = self
            .keys
            .open_in_place(Role::Chunk, &id.0, sealed)
            .map_err(|e| Error::corrupt(object(), format!("chunk {}: {e}", id.short())))?;
        compression::decode_into(payload, self.config.chunker.max_size as usize, out)
            .map_err(|e| Error::corrupt(object(), format!("chunk {}: {e}", id.short())))?;
        if check == ChunkCheck::Content && self.keys.chunk_id(out) != id.0 {
            return Err(Error::corrupt(object(), format!("chunk {} does not match its id", id.short())));
        }
        Ok(())
    }

    /// Fetches one chunk through the index, in buffers from `pool` (the
    /// restore pipelines'): the result is one, for the caller to give back.
    pub fn read_chunk(&self, index: &Index, id: &Id, check: ChunkCheck, pool: &BufferPool) -> Result<Vec<u8>> {
        let (mut sealed, mut data) = (pool.take(), pool.take());
        let read = self.read_chunk_into(index, id, check, &mut sealed, &mut data);
        pool.give(sealed);
        read.map(|()| data)
    }

    /// `read_chunk` into `out`, with `scratch` for the sealed bytes. The
    /// plaintext must be the size the index gives it: restores write each
    /// chunk at the offset those sizes add up to.
    fn read_chunk_into(
        &self,
        index: &Index,
        id: &Id,
        check: ChunkCheck,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let (mut first_error, mut all_missing) = (None, true);
        for (pack, loc) in index.locations(id) {
            match self.read_chunk_at(id, &pack, loc, check, scratch, out) {
                Ok(()) => return Ok(()),
                // Another copy may be whole (stored again after this pack was lost).
                Err(e @ Error::Corrupt { .. }) => {
                    all_missing &= matches!(&e, Error::Corrupt { reason, .. } if reason == "missing");
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        let Some(first_error) = first_error else {
            return Err(Error::corrupt("index", format!("chunk {} is in no pack", id.short())));
        };
        if !all_missing {
            return Err(first_error);
        }
        // Every copy's pack is gone: a prune may have repacked the chunk since
        // this process loaded its index. The index prune wrote says where.
        let fresh = self.reloaded_index(id)?;
        for (pack, loc) in fresh.locations(id) {
            if self.read_chunk_at(id, &pack, loc, check, scratch, out).is_ok() {
                return Ok(());
            }
        }
        if fresh.contains(id) {
            return Err(first_error);
        }
        Err(Error::Vanished {
            object: format!("chunk {}", id.short()),
            reason: "its pack was deleted and no index holds it now (its snapshot was forgotten and pruned?)".into(),
        })
    }

    /// The index as it is now: loaded after a pack went missing, and kept
    /// for later misses while it knows the chunk asked for.
    fn reloaded_index(&self, id: &Id) -> Result<Arc<Index>> {
        let mut cached = self.reloaded.lock().map_err(|_| Error::InvalidInput("index lock poisoned".into()))?;
        if let Some(c) = cached.as_ref().filter(|c| c.contains(id)) {
            return Ok(c.clone());
        }
        let fresh = Arc::new(self.load_index()?);
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    fn read_chunk_at(
        &self,
        id: &Id,
        pack: &Id,
        loc: crate::format::ChunkLocation,
        check: ChunkCheck,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.backend
            .get_range_into(Kind::Pack, &pack.to_hex(), loc.offset as u64, loc.length as u64, scratch)
            .map_err(|e| match e {
                BackendError::NotFound { .. } => Error::corrupt(format!("pack {pack}"), "missing"),
                BackendError::Truncated { .. } => Error::corrupt(format!("pack {pack}"), "truncated"),
                other => backend_error(other),
            })?;
        self.open_chunk_into(id, scratch, pack, check, out)?;
        if out.len() != loc.size as usize {
            return Err(Error::corrupt(
                format!("pack {pack}"),
                format!("chunk {} is not its indexed size", id.short()),
            ));
        }
        Ok(())
    }

    pub fn put_pack(&self, id: &Id, bytes: &[u8]) -> Result<()> {
        self.backend.put(Kind::Pack, &id.to_hex(), bytes).map_err(backend_error)
    }

    // ---- indexes ----

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

    // ---- snapshots ----

    /// Writes a manifest: the commit point of a backup. Call only once every
    /// pack and index it refers to is stored.
    pub fn save_snapshot(&self, manifest: &Manifest) -> Result<Id> {
        self.save_sealed(Kind::Snapshot, Role::Snapshot, manifest)
    }

    pub fn load_snapshot(&self, id: &Id) -> Result<Manifest> {
        let m: Manifest = self.load_sealed(Kind::Snapshot, Role::Snapshot, id, "snapshot")?;
        Error::check_version(|| format!("snapshot {id}"), m.version, self.config.version)?;
        Ok(m)
    }

    /// A snapshot's header: its manifest without the entries.
    pub fn load_snapshot_info(&self, id: &Id) -> Result<SnapshotInfo> {
        let m: SnapshotInfo = self.load_sealed(Kind::Snapshot, Role::Snapshot, id, "snapshot")?;
        Error::check_version(|| format!("snapshot {id}"), m.version, self.config.version)?;
        Ok(m)
    }

    /// The readable snapshots' headers, oldest first (one forgotten since
    /// the listing is skipped), and the snapshots that cannot be read: one
    /// damaged manifest must not stop listing, backups or forget.
    #[allow(clippy::type_complexity)]
    pub fn list_snapshots_checked(&self) -> Result<(Vec<(Id, SnapshotInfo)>, Vec<(Id, Error)>)> {
        let (mut out, mut bad) = (Vec::new(), Vec::new());
        for id in self.list_ids(Kind::Snapshot)? {
            match self.load_snapshot_info(&id) {
                Ok(m) => out.push((id, m)),
                Err(Error::NotFound { .. }) => {}
                Err(e @ (Error::Corrupt { .. } | Error::UnsupportedVersion { .. })) => bad.push((id, e)),
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.1.time.cmp(&b.1.time).then(a.0.cmp(&b.0)));
        Ok((out, bad))
    }

    /// The readable snapshots' headers, oldest first (`list_snapshots_checked`).
    pub fn list_snapshots(&self) -> Result<Vec<(Id, SnapshotInfo)>> {
        Ok(self.list_snapshots_checked()?.0)
    }

    /// The newest snapshot having every one of `tags`, if any.
    pub fn latest(&self, tags: &[String]) -> Result<Option<(Id, SnapshotInfo)>> {
        Ok(self.list_snapshots()?.into_iter().rev().find(|(_, m)| m.has_tags(tags)))
    }

    /// Resolves `latest`, a full id or a unique id prefix; `latest` honours
    /// `tags` (every tag must be present).
    pub fn find_snapshot(&self, query: &str, tags: &[String]) -> Result<Id> {
        if query == "latest" {
            return self.latest(tags)?.map(|(id, _)| id).ok_or_else(|| Error::SnapshotNotFound { query: query.into() });
        }
        let q = query.to_ascii_lowercase();
        if q.is_empty() || !q.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::SnapshotNotFound { query: query.into() });
        }
        let matches: Vec<Id> =
            self.list_ids(Kind::Snapshot)?.into_iter().filter(|id| id.to_hex().starts_with(&q)).collect();
        match matches.len() {
            0 => Err(Error::SnapshotNotFound { query: query.into() }),
            1 => Ok(matches[0]),
            n => Err(Error::AmbiguousSnapshot { query: query.into(), count: n }),
        }
    }

    // ---- sealed JSON objects ----

    fn save_sealed<T: serde::Serialize>(&self, kind: Kind, role: Role, value: &T) -> Result<Id> {
        // Each form is dropped once the next exists: a large tree's manifest
        // is tens of MiB of JSON.
        let payload = {
            let json = serde_json::to_vec(value).map_err(|e| Error::InvalidInput(e.to_string()))?;
            compression::encode(&json, 3)
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
        let payload = self.keys.open(role, &id.0, &sealed).map_err(|e| Error::corrupt(&object, e.to_string()))?;
        drop(sealed);
        let json = compression::decode(&payload, METADATA_LIMIT).map_err(|e| Error::corrupt(&object, e.to_string()))?;
        drop(payload);
        serde_json::from_slice(&json).map_err(|e| Error::corrupt(&object, format!("invalid JSON: {e}")))
    }

    // ---- keys ----

    /// Every key object, oldest first.
    pub fn list_keys(&self) -> Result<Vec<KeyInfo>> {
        let mut out = Vec::new();
        for info in self.backend.list(Kind::Key).map_err(backend_error)? {
            let bytes = self.backend.get(Kind::Key, &info.name).map_err(backend_error)?;
            let key: KeyFile = serde_json::from_slice(&bytes)
                .map_err(|e| Error::corrupt(format!("key keys/{}", info.name), e.to_string()))?;
            out.push(KeyInfo {
                current: info.name == self.key_name,
                name: info.name,
                created: key.created,
                host: key.host,
            });
        }
        out.sort_by(|a, b| a.created.cmp(&b.created).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    /// Wraps the master key under another passphrase: one new key object,
    /// no data rewritten. Returns its name.
    pub fn add_key(&self, passphrase: &[u8], kdf: KdfParams) -> Result<String> {
        let (name, bytes) = new_key_file(&self.master, &self.config, passphrase, kdf)?;
        self.backend.put(Kind::Key, &name, &bytes).map_err(backend_error)?;
        Ok(name)
    }

    /// Removes a key object by name or unique prefix. The key in use and the
    /// last key are refused: a repository must always keep a way in.
    pub fn remove_key(&self, query: &str) -> Result<String> {
        let keys = self.list_keys()?;
        let matches: Vec<&KeyInfo> = keys.iter().filter(|k| k.name.starts_with(query) && !query.is_empty()).collect();
        let key = match matches.as_slice() {
            [k] => *k,
            [] => return Err(Error::NotFound { object: format!("key {query}") }),
            _ => return Err(Error::InvalidInput(format!("key prefix {query:?} is ambiguous"))),
        };
        if keys.len() == 1 {
            return Err(Error::InvalidInput("refusing to remove the repository's last key".into()));
        }
        if key.current {
            return Err(Error::InvalidInput(
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
        let name = self.add_key(passphrase, kdf)?;
        self.key_name = name.clone();
        self.backend.delete(Kind::Key, &old).map_err(backend_error)?;
        Ok(name)
    }

    /// Checks every key object's name against its content. For `verify`.
    pub fn check_key_objects(&self) -> Result<usize> {
        let infos = self.backend.list(Kind::Key).map_err(backend_error)?;
        for info in &infos {
            let bytes = self.backend.get(Kind::Key, &info.name).map_err(backend_error)?;
            if hex::encode(format::sha256(&bytes)) != info.name {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{BackendResult, Local, ObjectInfo};
    use crate::manifest::Manifest;

    /// A local backend whose snapshot listing names one more manifest than
    /// exists: what a reader sees when a forget deletes it between its list
    /// and its get.
    struct Forgotten(Local);

    impl Backend for Forgotten {
        fn location(&self) -> String {
            self.0.location()
        }
        fn create(&self) -> BackendResult<()> {
            self.0.create()
        }
        fn put(&self, kind: Kind, name: &str, data: &[u8]) -> BackendResult<()> {
            self.0.put(kind, name, data)
        }
        fn get(&self, kind: Kind, name: &str) -> BackendResult<Vec<u8>> {
            self.0.get(kind, name)
        }
        fn get_range(&self, kind: Kind, name: &str, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
            self.0.get_range(kind, name, offset, length)
        }
        fn open(&self, kind: Kind, name: &str) -> BackendResult<Box<dyn std::io::Read + Send>> {
            self.0.open(kind, name)
        }
        fn list(&self, kind: Kind) -> BackendResult<Vec<ObjectInfo>> {
            let mut v = self.0.list(kind)?;
            if kind == Kind::Snapshot {
                v.push(ObjectInfo { name: Id::random().to_hex(), size: 100, modified: None });
            }
            Ok(v)
        }
        fn delete(&self, kind: Kind, name: &str) -> BackendResult<()> {
            self.0.delete(kind, name)
        }
    }

    #[test]
    fn a_snapshot_forgotten_between_list_and_get_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let kdf = KdfParams::with_cost(256, 1, 1);
        let plain = Repository::init(Arc::new(Local::new(dir.path())), b"pw", kdf).unwrap();
        let m = Manifest {
            version: plain.config().version,
            time: chrono::Utc::now(),
            host: "h".into(),
            tags: vec![],
            tool: "test".into(),
            parent: None,
            sources: vec![],
            summary: Default::default(),
            warnings: vec![],
        };
        let saved = plain.save_snapshot(&m).unwrap();
        let repo = Repository::open(Arc::new(Forgotten(Local::new(dir.path()))), b"pw").unwrap();
        let (list, unreadable) = repo.list_snapshots_checked().unwrap();
        assert_eq!(list.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![saved]);
        assert!(unreadable.is_empty());
        assert_eq!(repo.find_snapshot("latest", &[]).unwrap(), saved);
    }
}

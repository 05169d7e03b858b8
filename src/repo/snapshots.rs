//! The snapshot catalog: saving and loading manifests, listing them, and
//! resolving `latest`, an id or a prefix.

use super::Repository;
use crate::backend::Kind;
use crate::crypto::Role;
use crate::error::{Error, Result};
use crate::format::encoding::Id;
use crate::format::manifest::{Manifest, SnapshotInfo};

impl Repository {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, BackendResult, Local, ObjectInfo};
    use crate::crypto::KdfParams;
    use crate::format::manifest::Manifest;
    use std::sync::Arc;

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
            original: None,
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

//! Storage backends: whole, immutable objects named by (kind, name).
//!
//! A backend moves opaque bytes. It knows nothing of encryption or formats;
//! those live in `repository`. Wrappers stack on top (see `DryRun`).

mod dry_run;
mod local;
mod metered;
#[cfg(feature = "s3")]
mod s3;

pub use dry_run::DryRun;
pub use local::Local;
pub use metered::{Metered, Requests};
#[cfg(feature = "s3")]
pub use s3::{Retention, S3Options, S3};

use std::io::Read;

/// The object kinds and the folder (or S3 key prefix) each lives under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Config,
    Key,
    Pack,
    Index,
    Snapshot,
    Lock,
    /// WAL archive: names are `<stanza>/<file>`, one folder per cluster.
    Wal,
}

impl Kind {
    pub fn dir(self) -> &'static str {
        match self {
            Kind::Config => "",
            Kind::Key => "keys",
            Kind::Pack => "data",
            Kind::Index => "index",
            Kind::Snapshot => "snapshots",
            Kind::Lock => "locks",
            Kind::Wal => "wal",
        }
    }

    /// The object's path relative to the repository root. Packs fan out over
    /// 256 folders by their first two hex digits, as restic does.
    pub fn object_path(self, name: &str) -> String {
        match self {
            Kind::Config => name.to_string(),
            Kind::Pack => format!("data/{}/{}", name.get(..2).unwrap_or("00"), name),
            other => format!("{}/{}", other.dir(), name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub name: String,
    pub size: u64,
    /// When it was written, where the backend says (prune's grace period).
    pub modified: Option<std::time::SystemTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{path} not found")]
    NotFound { path: String },
    #[error("{path} is truncated: wanted bytes {offset}..{end}, object has {size}")]
    Truncated { path: String, offset: u64, end: u64, size: u64 },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// S3 Object Lock retains it: it may not be deleted before `until`.
    #[error("{path} is retained by Object Lock until {}", humantime::format_rfc3339_seconds(*until))]
    Retained { path: String, until: std::time::SystemTime },
    #[error("{0}")]
    Other(String),
}

impl BackendError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, BackendError::NotFound { .. })
    }
}

pub type BackendResult<T> = Result<T, BackendError>;

/// Contract (tested for every backend in `tests/`): `put` is atomic (an
/// object is either absent or complete), `get` of a missing object is
/// `NotFound`, `get_range` past the end is `Truncated`, `list` of an empty
/// kind is empty, and `delete` of a missing object is `NotFound`.
pub trait Backend: Send + Sync {
    /// Where this backend stores things, for messages (never a secret).
    fn location(&self) -> String;
    /// Prepares empty storage for a new repository.
    fn create(&self) -> BackendResult<()>;
    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> BackendResult<()>;
    fn get(&self, kind: Kind, name: &str) -> BackendResult<Vec<u8>>;
    fn get_range(&self, kind: Kind, name: &str, offset: u64, length: u64) -> BackendResult<Vec<u8>>;
    /// `get_range` into `buf` (replacing what it held), for callers that
    /// reuse their buffers.
    fn get_range_into(&self, kind: Kind, name: &str, offset: u64, length: u64, buf: &mut Vec<u8>) -> BackendResult<()> {
        *buf = self.get_range(kind, name, offset, length)?;
        Ok(())
    }
    /// A streaming read of a whole object.
    fn open(&self, kind: Kind, name: &str) -> BackendResult<Box<dyn Read + Send>>;
    fn list(&self, kind: Kind) -> BackendResult<Vec<ObjectInfo>>;
    /// The objects of `kind` under `folder/` (one WAL stanza), named as
    /// `list` names them: one stanza's listing costs what it holds, not the
    /// whole archive's.
    fn list_under(&self, kind: Kind, folder: &str) -> BackendResult<Vec<ObjectInfo>> {
        let prefix = format!("{folder}/");
        Ok(self.list(kind)?.into_iter().filter(|o| o.name.starts_with(&prefix)).collect())
    }
    fn delete(&self, kind: Kind, name: &str) -> BackendResult<()>;
    /// Does anything at all lie at this location (files in the folder,
    /// objects under the prefix)? `init` writes only where nothing does.
    fn holds_anything(&self) -> BackendResult<bool> {
        for kind in [Kind::Key, Kind::Pack, Kind::Index, Kind::Snapshot, Kind::Lock, Kind::Wal] {
            if !self.list(kind)?.is_empty() {
                return Ok(true);
            }
        }
        Ok(false)
    }
    /// The location of a repository whose layout this one lies inside (a
    /// folder or prefix above it holding a repository's `config`).
    fn enclosing_repository(&self) -> BackendResult<Option<String>> {
        Ok(None)
    }
    /// The bucket's versioning status ("Enabled", "Suspended"), where the
    /// backend has versions and can tell; None elsewhere.
    fn versioning(&self) -> Option<String> {
        None
    }
    /// Until when Object Lock retains the object (None: it does not, or the
    /// backend has no such thing). `delete` of a retained object is
    /// `Retained`, whatever the bucket would do.
    fn retained_until(&self, _kind: Kind, _name: &str) -> BackendResult<Option<std::time::SystemTime>> {
        Ok(None)
    }
    /// Aborts the unfinished multipart uploads under the repository that
    /// were started more than `age` ago (an upload whose CreateMultipartUpload
    /// answer was lost stays open, and billed, forever). Returns how many.
    fn abort_uploads_older_than(&self, _age: std::time::Duration) -> BackendResult<usize> {
        Ok(0)
    }
    /// Keys with an unfinished multipart upload (S3); none elsewhere.
    fn incomplete_uploads(&self) -> BackendResult<Vec<String>> {
        Ok(Vec::new())
    }
    /// The requests a `put` of `size` bytes makes (S3: one, or a multipart
    /// upload's parts plus its start and end). For metering and estimates.
    fn put_requests(&self, _size: u64) -> u64 {
        1
    }
    /// Reads worth having in flight at once: a remote store answers each
    /// after a round trip, so restores fetch with this many workers even
    /// on few cores (S3: 16, by default).
    fn read_parallelism(&self) -> usize {
        1
    }
    /// The requests a `list` returning `listed` objects makes (S3: a page
    /// per 1000 keys, one at least).
    fn list_requests(&self, _listed: usize) -> u64 {
        1
    }
    /// The HEAD requests a `delete` makes before its DELETE (S3: one, to
    /// tell a missing object); billed as GETs.
    fn heads_per_delete(&self) -> u64 {
        0
    }
}

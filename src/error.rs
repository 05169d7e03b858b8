//! The core's typed errors: the cases a caller must tell apart (exit codes, hints).
//! Messages are lowercase, name the object or path at fault, and never carry a secret.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no coffer repository at {location}")]
    NoRepository { location: String },

    #[error("a repository already exists at {location}")]
    RepositoryExists { location: String },

    #[error("wrong passphrase: no key in {location} opens with it")]
    WrongPassphrase { location: String },

    /// Authentication, checksum or structure failure of a stored object.
    #[error("{object} is corrupt or was tampered with: {reason}")]
    Corrupt { object: String, reason: String },

    #[error("{object} has format version {version}, this coffer reads versions 1 to {supported}")]
    UnsupportedVersion { object: String, version: u32, supported: u32 },

    #[error("{object}: key derivation parameters {params} exceed the allowed maximum")]
    ExcessiveKdf { object: String, params: String },

    #[error("object {object} not found")]
    NotFound { object: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("storage backend: {0}")]
    Backend(String),

    /// A manifest asked for something restore must never do.
    #[error("snapshot {snapshot} holds an unsafe entry {path:?}: {reason}")]
    UnsafeEntry { snapshot: String, path: String, reason: String },

    #[error("restore target {path}: {reason}")]
    Target { path: PathBuf, reason: String },

    #[error("no snapshot matches {query:?}")]
    SnapshotNotFound { query: String },

    #[error("snapshot prefix {query:?} is ambiguous ({count} snapshots match)")]
    AmbiguousSnapshot { query: String, count: usize },

    #[error("invalid glob {pattern:?}: {reason}")]
    InvalidPattern { pattern: String, reason: String },

    #[error("{0}")]
    InvalidInput(String),

    /// Another process holds a conflicting lock (exit code 11).
    #[error("repository {location} is locked: {holder}")]
    Locked { location: String, holder: String },

    #[error("{source_name} failed: {message}")]
    SourceFailed { source_name: String, message: String },

    /// What a reader needed was removed while it read (a prune beside it).
    #[error("{object} was removed while this command read it (a prune ran meanwhile): {reason}")]
    Vanished { object: String, reason: String },
}

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), source }
    }

    pub fn corrupt(object: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupt { object: object.into(), reason: reason.into() }
    }

    /// `Ok` when an object's format version is one this build reads (1 to `supported`).
    pub fn check_version(object: impl FnOnce() -> String, version: u32, supported: u32) -> Result<()> {
        if (1..=supported).contains(&version) {
            Ok(())
        } else {
            Err(Error::UnsupportedVersion { object: object(), version, supported })
        }
    }
}

//! The core's typed errors: the cases a caller must tell apart (exit codes, hints).
//! Messages are lowercase, name the object or path at fault, and never carry a secret.

use std::path::{Path, PathBuf};

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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

    /// A write-only key was used for what needs a full key.
    #[error("key {key} is write-only: it can back up but cannot {what}; use a full key (passphrase or key file)")]
    WriteOnly { key: String, what: String },

    #[error("object {object} not found")]
    NotFound { object: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The storage failed (the cause is kept: an I/O error, an S3 answer).
    #[error("storage backend: {0}")]
    Backend(#[from] crate::backend::BackendError),

    /// A manifest asked for something restore must never do.
    #[error("snapshot {snapshot} holds an unsafe entry {path:?}: {reason}")]
    UnsafeEntry { snapshot: String, path: String, reason: String },

    #[error("restore target {path}: {reason}")]
    Target { path: PathBuf, reason: String },

    #[error("snapshot {snapshot} holds no path {path:?}")]
    NoSuchPath { snapshot: String, path: String },

    /// A restore that would restore nothing.
    #[error("nothing to restore from snapshot {snapshot}: {reason}")]
    NothingSelected { snapshot: String, reason: String },

    #[error("no snapshot matches {query:?}")]
    SnapshotNotFound { query: String },

    #[error("snapshot prefix {query:?} is ambiguous ({count} snapshots match)")]
    AmbiguousSnapshot { query: String, count: usize },

    #[error("invalid glob {pattern:?}: {reason}")]
    InvalidPattern { pattern: String, reason: String },

    /// Options that contradict each other or cannot be carried out as given.
    #[error("{0}")]
    InvalidOptions(String),

    /// The snapshot does not hold the dump asked for, or more than one fits.
    #[error("{0}")]
    Dump(DumpChoice),

    /// A restore drill's check file.
    #[error("check file: {0}")]
    CheckFile(String),

    /// Refused, to keep the repository whole or reachable (its last key, a
    /// location holding other data).
    #[error("{0}")]
    Refused(String),

    /// A fault inside coffer (a worker thread gone, a lock poisoned): a bug.
    #[error("internal error: {0}")]
    Internal(String),

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

/// Why no single dump of a snapshot answers a restore or a drill; the CLI
/// adds the flag that fixes each.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DumpChoice {
    /// The snapshot holds no PostgreSQL dump.
    NoDumps,
    /// The globals were asked for; the snapshot was taken without them.
    NoGlobals,
    NoSuchDatabase {
        name: String,
        available: String,
    },
    /// No database was named and only the globals dump is there.
    OnlyGlobals,
    /// No database was named and several are there.
    Several {
        available: String,
    },
    /// A file receives one dump, and several were selected.
    OneForAFile,
    /// Schema and table filters apply to a database dump restored into a server.
    FiltersNeedOneDatabase,
    /// The raw archive is written whole; filters would be ignored.
    FiltersOnAFile,
    /// A drill restores a database, not the globals.
    DrillOfGlobals,
    /// The connection names no database to dump.
    NoDatabaseToDump,
}

impl std::fmt::Display for DumpChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DumpChoice::NoDumps => write!(f, "the snapshot holds no PostgreSQL dump"),
            DumpChoice::NoGlobals => write!(f, "the snapshot has no globals dump (roles, tablespaces)"),
            DumpChoice::NoSuchDatabase { name, available } => {
                write!(f, "the snapshot has no dump of database {name:?} (it has: {available})")
            }
            DumpChoice::OnlyGlobals => write!(f, "the snapshot holds only the globals dump"),
            DumpChoice::Several { available } => write!(f, "the snapshot has several database dumps ({available})"),
            DumpChoice::OneForAFile => write!(f, "a file receives one dump, and several were selected"),
            DumpChoice::FiltersNeedOneDatabase => {
                write!(f, "schema and table filters pick objects of one database dump")
            }
            DumpChoice::FiltersOnAFile => {
                write!(f, "the raw archive is written whole: schema and table filters do not apply to it")
            }
            DumpChoice::DrillOfGlobals => write!(f, "a drill restores a database dump, not the globals"),
            DumpChoice::NoDatabaseToDump => write!(f, "no database to dump"),
        }
    }
}

//! coffer: encrypted, deduplicating backup and restore of PostgreSQL dumps
//! and file trees, to a local directory or S3.
//!
//! The library holds all logic and knows nothing of the command line; the
//! `coffer` binary (`src/main.rs`, `src/cli/`) parses, prints and picks exit
//! codes. Modules are private; the public API is the `pub use` list below.

mod atomic_file;
mod backend;
mod backup;
mod chunker;
mod compression;
mod crypto;
mod drill;
mod encoding;
mod error;
mod filter;
mod forget;
mod format;
mod lock;
mod manifest;
mod pg;
mod pipeline;
mod prune;
mod repair;
mod repository;
mod restore;
mod restore_pg;
mod source;
mod target;
mod verify;

pub use backend::{Backend, BackendError, DryRun, Kind, Local, ObjectInfo, S3Options, S3};
pub use backup::{backup, BackupOptions, BackupSummary, NoProgress, PgSources, Progress};
pub use chunker::ChunkerParams;
pub use crypto::{HashAlgo, KdfParams};
pub use drill::{drill, DrillOptions, DrillReport};
pub use encoding::{Id, RawPath};
pub use error::{Error, Result};
pub use forget::{apply_policy, forget, ForgetGroup, ForgetOptions, ForgetSummary, KeepPolicy};
pub use format::{Config, FORMAT_VERSION};
pub use lock::{list_locks, unlock, Lock, LockInfo};
pub use manifest::{
    DumpKind, DumpSource, Entry, EntryKind, Manifest, SnapshotInfo, Source, SourceInfo, SourceKind, Summary, TreeSource,
};
pub use pg::{PgConnection, Timeouts as PgTimeouts, Toc, TocEntry};
pub use pipeline::default_workers;
pub use prune::{prune, PruneOptions, PruneSummary};
pub use repair::{repair, RepairOptions, RepairSummary, RepairedSnapshot};
pub use repository::{KeyInfo, Repository};
pub use restore::{restore, RestoreOptions, RestoreSummary};
pub use restore_pg::{restore_databases, DbRestoreOptions, DbRestoreSummary, DbRestored, DbTarget};
pub use verify::{verify, ReadData, VerifyOptions, VerifySummary};

/// Variables that hold secrets coffer reads (its passphrases, URLs that may
/// carry a password, the S3 secret): no child process needs them.
const SECRET_VARIABLES: &[&str] = &[
    "COFFER_PASSWORD",
    "COFFER_NEW_PASSWORD",
    "COFFER_PG_URL",
    "COFFER_PG_TARGET",
    "COFFER_PG_SCRATCH",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
];

/// Takes the secrets of coffer's environment out of a child's.
pub fn hide_secrets_from(c: &mut std::process::Command) {
    for v in SECRET_VARIABLES {
        c.env_remove(v);
    }
}

/// This machine's name, recorded in manifests and key objects.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Ownership is restored only when running as root (as tar and restic do).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Does a process with this pid exist on this machine? (For locks and
/// upload records left by a process that died.)
pub(crate) fn process_exists(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only asks whether the process exists; EPERM
    // means it exists but belongs to someone else.
    let signalled = unsafe { libc::kill(pid as libc::pid_t, 0) == 0 };
    signalled || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

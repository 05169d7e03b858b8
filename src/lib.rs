//! coffer: encrypted, deduplicating backup and restore of PostgreSQL dumps
//! and file trees, to a local directory or S3.
//!
//! The library holds all logic and knows nothing of the command line; the
//! `coffer` binary (`src/main.rs`, `src/cli/`) parses, prints and picks exit
//! codes. Modules are private; the public API is the `pub use` list below.

#![forbid(unsafe_code)]

mod backend;
mod crypto;
mod engine;
mod error;
mod format;
#[doc(hidden)]
pub mod fuzz;
mod ops;
mod pg;
#[cfg(test)]
mod properties;
mod repo;
mod source;

pub use backend::{Backend, BackendError, DryRun, Kind, Local, Metered, ObjectInfo, Requests};
#[cfg(feature = "s3")]
pub use backend::{Retention, S3Options, S3};
pub use crypto::{HashAlgo, KdfParams};
pub use engine::chunker::ChunkerParams;
pub use engine::owner;
pub use engine::pipeline::default_workers;
pub use error::{DumpChoice, Error, Result};
pub use format::encoding::{Id, RawPath};
pub use format::manifest::{
    DumpKind, DumpSource, Entry, EntryKind, Manifest, PgBase, SnapshotInfo, Source, SourceInfo, SourceKind,
    StreamSource, Summary, TreeSource,
};
pub use format::{Access, Config, FORMAT_VERSION};
pub use ops::backup::{backup, BackupOptions, BackupSummary, BaseWal, CommandSource, PgBaseSource, PgSources};
pub use ops::browse::{
    diff, dump_file, dump_stream, find, list, stats, stored_path, Change, Diff, DumpChange, EntryChange, Found,
    FoundEntry, SourceStats, Stats,
};
pub use ops::copy::{copy, CopiedSnapshot, CopyOptions, CopySummary};
pub use ops::drill::{drill, DrillOptions, DrillReport};
pub use ops::drill_pitr::{drill_pitr, PitrDrillOptions, PitrDrillReport, PitrTable};
pub use ops::estimate::{Cost, Estimate, Prices};
pub use ops::forget::{apply_policy, forget, ForgetGroup, ForgetOptions, ForgetSummary, KeepPolicy};
pub use ops::progress::{NoProgress, Progress};
pub use ops::prune::{estimate_prune, prune, prune_with, PruneOptions, PruneSummary};
pub use ops::repair::{repair, RepairOptions, RepairSummary, RepairedSnapshot};
pub use ops::restore::{estimate_restore, restore, restore_with, RestoreOptions, RestoreSummary};
pub use ops::restore_base::{
    find_base, restore_base, shell_quote, timeline_number, BaseRestoreOptions, BaseRestoreSummary, RecoveryTarget,
};
pub use ops::restore_pg::{
    estimate_databases, restore_databases, DbRestoreOptions, DbRestoreSummary, DbRestored, DbTarget,
};
pub use ops::verify::{estimate_verify, verify, verify_with, ReadData, VerifyOptions, VerifySummary};
pub use ops::wal::{wal_fetch, wal_push, WalFetchSummary, WalOptions, WalPushSummary};
pub use pg::{PgConnection, Timeouts as PgTimeouts, Toc, TocEntry};
pub use repo::lock::{list_locks, unlock, Lock, LockInfo};
pub use repo::{KeyInfo, Repository};

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

/// coffer's folder in this user's cache ($XDG_CACHE_HOME/coffer, else
/// ~/.cache/coffer): copy maps, write-only backups' parents, open uploads.
/// None without either variable (cron's `env -i`).
pub fn cache_dir() -> Option<std::path::PathBuf> {
    let base =
        std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()).map(std::path::PathBuf::from).or_else(|| {
            std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| std::path::PathBuf::from(h).join(".cache"))
        })?;
    Some(base.join("coffer"))
}

/// Writes a file of coffer's cache whole or not at all (a rename), making its folder.
pub(crate) fn write_cache_file(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// This machine's name, recorded in manifests and key objects.
pub fn hostname() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// Ownership is restored only when running as root (as tar and restic do).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Does a process with this pid exist on this machine? (For locks and
/// upload records left by a process that died.)
pub(crate) fn process_exists(pid: u32) -> bool {
    // Signal 0 only asks; EPERM means it exists but belongs to someone else.
    let Some(pid) = i32::try_from(pid).ok().and_then(rustix::process::Pid::from_raw) else { return false };
    !matches!(rustix::process::test_kill_process(pid), Err(rustix::io::Errno::SRCH))
}

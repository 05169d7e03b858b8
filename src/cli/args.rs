//! The command line's grammar: global flags, the subcommands, and the
//! argument groups several commands share. Each command's own arguments live
//! beside its run, in `commands/`.

use crate::cli::commands::{
    backup, completions, copy, diff, drill, dump, find, forget, init, key, ls, prune, repair, restore, show, snapshots,
    stats, unlock, verify, wal,
};
use clap::{Args, Parser, Subcommand};
use coffer::KdfParams;
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "coffer",
    version = version(),
    about = "Encrypted, deduplicating backups of PostgreSQL and file trees",
    after_help = "Examples:
  coffer -r /srv/backup init
  coffer -r /srv/backup backup /etc /home --pg postgres://backup@localhost/app
  coffer -r /srv/backup snapshots
  coffer -r /srv/backup restore latest --target /tmp/restored --include 'etc/**'
  coffer --profile nightly backup     (settings from /etc/coffer/coffer.toml)

The passphrase comes from COFFER_PASSWORD_FILE, COFFER_PASSWORD_COMMAND or COFFER_PASSWORD
(never a flag). Exit codes: 0 success, 1 failure (nothing committed), 2 usage, 3 backup saved
without some unreadable files, 4 done but the report was lost, 10 no repository, 11 locked,
12 wrong passphrase."
)]
pub struct Cli {
    /// Repository: a local directory, or s3://bucket/prefix.
    #[arg(short = 'r', long = "repo", env = "COFFER_REPOSITORY", global = true, help_heading = "Global options")]
    pub repo: Option<String>,
    #[command(flatten)]
    pub s3: S3Args,
    /// Print one JSON document on stdout (logs and warnings go to stderr).
    #[arg(long, global = true, help_heading = "Global options")]
    pub json: bool,
    /// Print nothing but errors and warnings.
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,
    /// Log what happens on stderr (repository, key, parent snapshot, timings).
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub verbose: bool,
    /// Take settings from this profile of the configuration file.
    #[arg(long, global = true, help_heading = "Global options", env = "COFFER_PROFILE", value_name = "NAME")]
    pub profile: Option<String>,
    /// The configuration file (default: /etc/coffer/coffer.toml, ~/.config/coffer/coffer.toml).
    #[arg(long, global = true, help_heading = "Global options", env = "COFFER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Write a Prometheus textfile-collector file at the end of backup, forget, prune, verify and drill.
    #[arg(long, global = true, help_heading = "Global options", env = "COFFER_METRICS_FILE", value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,
    /// Prices per request and per GiB (JSON) for --estimate to put a cost on what it counts.
    #[arg(long, global = true, help_heading = "Global options", env = "COFFER_PRICE_FILE", value_name = "FILE")]
    pub price_file: Option<PathBuf>,
    /// From the profile: the passphrase file when no COFFER_PASSWORD* is set.
    #[arg(skip)]
    pub password_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// S3 settings; credentials come from the AWS chain (AWS_ACCESS_KEY_ID /
/// AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance metadata), never a flag.
#[derive(Args, Clone)]
pub struct S3Args {
    /// S3 endpoint for a non-AWS store (e.g. http://127.0.0.1:3900).
    #[arg(long, global = true, help_heading = "S3 options", env = "COFFER_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// Path-style addressing (endpoint/bucket/key): Garage, MinIO, most self-hosted stores.
    #[arg(long, global = true, help_heading = "S3 options", env = "COFFER_S3_PATH_STYLE")]
    pub s3_path_style: bool,
    /// Region (default: AWS_REGION / profile, else us-east-1).
    #[arg(long, global = true, help_heading = "S3 options", env = "COFFER_S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,
    /// AWS credentials file (INI, as ~/.aws/credentials) to take the keys from, before any
    /// AWS_* variable: for commands PostgreSQL or cron run with an environment of their own.
    #[arg(long, global = true, help_heading = "S3 options", env = "COFFER_S3_CREDENTIALS_FILE", value_name = "FILE")]
    pub s3_credentials_file: Option<std::path::PathBuf>,
    /// The section of --s3-credentials-file to use [default: default].
    #[arg(long, global = true, help_heading = "S3 options", env = "COFFER_S3_PROFILE", value_name = "NAME")]
    pub s3_profile: Option<String>,
    /// S3 Object Lock: keep every pack, index, manifest and WAL file written undeletable for this
    /// long (e.g. 30d; the bucket must have Object Lock enabled). forget and prune leave retained
    /// objects for a later run.
    #[arg(long, global = true, help_heading = "S3 options", env = "COFFER_S3_RETENTION", value_name = "AGE", value_parser = humantime::parse_duration)]
    pub retention: Option<std::time::Duration>,
    /// GOVERNANCE (deletable by a user with s3:BypassGovernanceRetention) or COMPLIANCE (by nobody).
    #[arg(long, global = true, help_heading = "S3 options", env = "COFFER_S3_RETENTION_MODE", value_name = "MODE", value_parser = ["governance", "compliance"], requires = "retention")]
    pub retention_mode: Option<String>,
    /// Storage class for new objects (e.g. STANDARD_IA).
    #[arg(long, global = true, help_heading = "S3 options", env = "COFFER_S3_STORAGE_CLASS", value_name = "CLASS")]
    pub storage_class: Option<String>,
    /// Server-side encryption: AES256 or aws:kms.
    #[arg(long, global = true, help_heading = "S3 options", env = "COFFER_S3_SSE", value_name = "MODE")]
    pub s3_sse: Option<String>,
    /// KMS key for --s3-sse aws:kms.
    #[arg(long, global = true, help_heading = "S3 options", env = "COFFER_S3_SSE_KMS_KEY_ID", value_name = "ID")]
    pub s3_sse_kms_key_id: Option<String>,
    /// Multipart part size in MiB (at least 5; objects this small go up in one PUT).
    #[arg(long, global = true, help_heading = "S3 options", env = "COFFER_S3_PART_SIZE_MIB", default_value_t = 8, value_parser = clap::value_parser!(u64).range(5..=5120))]
    pub s3_part_size_mib: u64,
    /// Parts of one upload in flight at once.
    #[arg(long, global = true, help_heading = "S3 options", env = "COFFER_S3_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub s3_concurrency: u64,
    /// Attempts per request on 5xx, throttling and connection errors.
    #[arg(long, global = true, help_heading = "S3 options", env = "COFFER_S3_MAX_ATTEMPTS", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub s3_max_attempts: u32,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a repository.
    Init(init::InitArgs),
    /// Back up file trees into a new snapshot.
    Backup(backup::BackupArgs),
    /// List snapshots, oldest first.
    Snapshots(snapshots::SnapshotsArgs),
    /// Show a snapshot's manifest: sources, entries, sizes, timings.
    Show(show::ShowArgs),
    /// List a snapshot's folders, files and databases without restoring.
    Ls(ls::LsArgs),
    /// What changed from one snapshot to another.
    Diff(diff::DiffArgs),
    /// Which snapshots hold a path matching a glob, newest first.
    Find(find::FindArgs),
    /// Sizes: logical, deduplicated, stored; per source.
    Stats(stats::StatsArgs),
    /// Write one file of a snapshot to standard output, checked.
    Dump(dump::DumpArgs),
    /// Restore a snapshot, or part of it, into a directory.
    Restore(restore::RestoreArgs),
    /// Check the repository's integrity.
    Verify(verify::VerifyArgs),
    /// Copy snapshots (their files, dumps, base backups and WAL) into a second repository.
    Copy(copy::CopyArgs),
    /// Restore drill: restore a database into a scratch database, check it, drop it, time it.
    Drill(drill::DrillArgs),
    /// PostgreSQL's archive_command: store one WAL file in the archive.
    WalPush(wal::WalPushArgs),
    /// PostgreSQL's restore_command: write one archived WAL file (exit 1: not archived).
    WalFetch(wal::WalFetchArgs),
    /// Forget snapshots by a retention policy (their data stays until prune).
    Forget(forget::ForgetArgs),
    /// Manage the passphrases that open the repository.
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Reclaim the space no snapshot uses (takes an exclusive lock).
    Prune(prune::PruneArgs),
    /// After a loss: rebuild the index from the packs, rewrite snapshots without the files lost (exclusive lock).
    Repair(repair::RepairArgs),
    /// Remove stale locks (with --all, every lock).
    Unlock(unlock::UnlockArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the manual page, or write every page into a folder.
    Man(completions::ManArgs),
}

/// `coffer --version`: the release, the repository format it writes, and the commit.
pub fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        format!(
            "{} (repository format {}, commit {})",
            env!("CARGO_PKG_VERSION"),
            coffer::FORMAT_VERSION,
            env!("COFFER_COMMIT")
        )
    })
}

/// Where PostgreSQL is. A password belongs in PGPASSFILE / ~/.pgpass or in
/// COFFER_PG_URL, not in a URL on the command line (visible in `ps`).
#[derive(Args, Clone)]
pub struct PgArgs {
    /// Directory holding pg_dump, pg_restore and psql (default: PATH).
    #[arg(long, help_heading = "PostgreSQL options", value_name = "DIR", env = "COFFER_PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,
    /// Longest wait to connect to a server (unless PGCONNECT_TIMEOUT or the URL sets one).
    #[arg(long, help_heading = "PostgreSQL options", value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub pg_connect_timeout: std::time::Duration,
    /// Longest wait for a table's lock while dumping (pg_dump --lock-wait-timeout).
    #[arg(long, help_heading = "PostgreSQL options", value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub pg_lock_wait_timeout: std::time::Duration,
}

/// Key derivation cost of a new key: RFC 9106's recommendation unless a
/// test asks for a cheap one (hidden flags).
#[derive(Args)]
pub struct KdfArgs {
    /// Argon2id memory in KiB (default: RFC 9106's 64 MiB). For tests only.
    #[arg(long, hide = true)]
    pub kdf_memory_kib: Option<u32>,
    /// Argon2id iterations (default 3). For tests only.
    #[arg(long, hide = true)]
    pub kdf_iterations: Option<u32>,
}

impl KdfArgs {
    pub fn params(&self) -> KdfParams {
        let recommended = KdfParams::recommended();
        match (self.kdf_memory_kib, self.kdf_iterations) {
            (None, None) => recommended,
            (m, t) => KdfParams::with_cost(
                m.unwrap_or(recommended.memory_kib),
                t.unwrap_or(recommended.iterations),
                if m.is_some() { 1 } else { recommended.parallelism },
            ),
        }
    }
}

pub fn parse_percent(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.trim_end_matches('%').parse().map_err(|_| format!("{s:?} is not a percentage"))?;
    if v > 0.0 && v <= 100.0 {
        Ok(v)
    } else {
        Err(format!("{s} is not in (0, 100]"))
    }
}

/// `--estimate`, on the commands whose requests and downloads cost money.
#[derive(Args, Clone, Copy)]
pub struct EstimateArgs {
    /// Count the requests by type and the bytes to download and upload (with
    /// --price-file, the money), and do nothing else.
    #[arg(long)]
    pub estimate: bool,
}

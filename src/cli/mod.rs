//! The command line: clap structs converted into the library's `*Options`,
//! results printed as text or one JSON document, errors mapped to exit codes.
//! The only code that reads the environment, prints, or exits.

/// A line on stderr, with control characters in it (from file names,
/// database names, server messages) escaped: a hostile name cannot rewrite
/// the operator's terminal.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stderr(), "{}", crate::cli::output::terminal_safe(&line, true));
    }};
}

mod output;
mod passphrase;
mod profile;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use coffer::{Backend, Error, Id, KdfParams, Local, ReadData, Repository};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit codes (restic's numbers where they overlap). Documented in README.md.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const PARTIAL: u8 = 3;
    pub const NO_REPOSITORY: u8 = 10;
    pub const LOCKED: u8 = 11;
    pub const WRONG_PASSPHRASE: u8 = 12;
}

#[derive(Parser)]
#[command(name = "coffer", version, about = "Encrypted, deduplicating backups of PostgreSQL and file trees")]
struct Cli {
    /// Repository: a local directory, or s3://bucket/prefix.
    #[arg(short = 'r', long = "repo", env = "COFFER_REPOSITORY", global = true)]
    repo: Option<String>,
    #[command(flatten)]
    s3: S3Args,
    /// Print one JSON document on stdout (logs and warnings go to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Print nothing but errors and warnings.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Log what happens on stderr (repository, key, parent snapshot, timings).
    #[arg(short, long, global = true)]
    verbose: bool,
    /// Take settings from this profile of the configuration file.
    #[arg(long, global = true, env = "COFFER_PROFILE", value_name = "NAME")]
    profile: Option<String>,
    /// The configuration file (default: /etc/coffer/coffer.toml, ~/.config/coffer/coffer.toml).
    #[arg(long, global = true, env = "COFFER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// From the profile: the passphrase file when no COFFER_PASSWORD* is set.
    #[arg(skip)]
    password_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

/// S3 settings; credentials come from the AWS chain (AWS_ACCESS_KEY_ID /
/// AWS_SECRET_ACCESS_KEY, AWS_PROFILE, instance metadata), never a flag.
#[derive(Args)]
struct S3Args {
    /// S3 endpoint for a non-AWS store (e.g. http://127.0.0.1:3900).
    #[arg(long, global = true, env = "COFFER_S3_ENDPOINT", value_name = "URL")]
    s3_endpoint: Option<String>,
    /// Path-style addressing (endpoint/bucket/key): Garage, MinIO, most self-hosted stores.
    #[arg(long, global = true, env = "COFFER_S3_PATH_STYLE")]
    s3_path_style: bool,
    /// Region (default: AWS_REGION / profile, else us-east-1).
    #[arg(long, global = true, env = "COFFER_S3_REGION", value_name = "REGION")]
    s3_region: Option<String>,
    /// Storage class for new objects (e.g. STANDARD_IA).
    #[arg(long, global = true, env = "COFFER_S3_STORAGE_CLASS", value_name = "CLASS")]
    storage_class: Option<String>,
    /// Server-side encryption: AES256 or aws:kms.
    #[arg(long, global = true, env = "COFFER_S3_SSE", value_name = "MODE")]
    s3_sse: Option<String>,
    /// KMS key for --s3-sse aws:kms.
    #[arg(long, global = true, env = "COFFER_S3_SSE_KMS_KEY_ID", value_name = "ID")]
    s3_sse_kms_key_id: Option<String>,
    /// Multipart part size in MiB (at least 5; objects this small go up in one PUT).
    #[arg(long, global = true, env = "COFFER_S3_PART_SIZE_MIB", default_value_t = 8, value_parser = clap::value_parser!(u64).range(5..=5120))]
    s3_part_size_mib: u64,
    /// Parts of one upload in flight at once.
    #[arg(long, global = true, env = "COFFER_S3_CONCURRENCY", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=64))]
    s3_concurrency: u64,
    /// Attempts per request on 5xx, throttling and connection errors.
    #[arg(long, global = true, env = "COFFER_S3_MAX_ATTEMPTS", default_value_t = 6, value_parser = clap::value_parser!(u32).range(1..=100))]
    s3_max_attempts: u32,
}

#[derive(Subcommand)]
enum Command {
    /// Create a repository.
    Init(InitArgs),
    /// Back up file trees into a new snapshot.
    Backup(BackupArgs),
    /// List snapshots, oldest first.
    Snapshots(SnapshotsArgs),
    /// Show a snapshot's manifest: sources, entries, sizes, timings.
    Show(ShowArgs),
    /// Restore a snapshot, or part of it, into a directory.
    Restore(RestoreArgs),
    /// Check the repository's integrity.
    Verify(VerifyArgs),
    /// Restore drill: restore a database into a scratch database, check it, drop it, time it.
    Drill(DrillArgs),
    /// Forget snapshots by a retention policy (their data stays until prune).
    Forget(ForgetArgs),
    /// Manage the passphrases that open the repository.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Reclaim the space no snapshot uses (takes an exclusive lock).
    Prune(PruneArgs),
    /// After a loss: rebuild the index from the packs, rewrite snapshots without the files lost (exclusive lock).
    Repair(RepairArgs),
    /// Remove stale locks (with --all, every lock).
    Unlock {
        /// Remove every lock, not only stale ones.
        #[arg(long)]
        all: bool,
    },
}

#[derive(Args)]
struct PruneArgs {
    /// Report what would be deleted and repacked; change nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Repack a pack once more than this percentage of it is unused.
    #[arg(long, value_name = "PCT", default_value = "20", value_parser = parse_percent)]
    max_unused: f64,
    /// Leave packs and indexes younger than this as they are (a lagging
    /// listing may not show the snapshot using them yet).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    grace: std::time::Duration,
    /// Abort unfinished multipart uploads (S3) started longer ago than this.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    abort_uploads_after: std::time::Duration,
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  coffer repair --dry-run      # what would change\n  coffer repair --read-data    # also find packs damaged in place"
)]
struct RepairArgs {
    /// Report what would change; write and delete nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Read and check every pack, not only those the index does not describe.
    #[arg(long)]
    read_data: bool,
}

#[derive(Args)]
struct ForgetArgs {
    /// Snapshots to forget by id or unique prefix (instead of a keep policy);
    /// a damaged manifest can be forgotten so.
    snapshots: Vec<String>,
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_last: u32,
    /// Keep the newest snapshot of each of the last N hours that have one (UTC).
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_hourly: u32,
    /// ... of each of the last N days.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_daily: u32,
    /// ... of each of the last N ISO weeks.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_weekly: u32,
    /// ... of each of the last N months.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_monthly: u32,
    /// ... of each of the last N years.
    #[arg(long, value_name = "N", default_value_t = 0)]
    keep_yearly: u32,
    /// Keep every snapshot with this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    keep_tag: Vec<String>,
    /// Only consider snapshots with this tag (repeatable: all must match).
    #[arg(long)]
    tag: Vec<String>,
    /// Only consider snapshots of this host.
    #[arg(long)]
    host: Option<String>,
    /// Report what would be forgotten; delete nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Prune afterwards (reclaim the space of forgotten snapshots).
    #[arg(long)]
    prune: bool,
}

/// Where PostgreSQL is. A password belongs in PGPASSFILE / ~/.pgpass or in
/// COFFER_PG_URL, not in a URL on the command line (visible in `ps`).
#[derive(Args, Clone)]
struct PgArgs {
    /// Directory holding pg_dump, pg_restore and psql (default: PATH).
    #[arg(long, value_name = "DIR", env = "COFFER_PG_BIN_DIR")]
    pg_bin_dir: Option<PathBuf>,
    /// Longest wait to connect to a server (unless PGCONNECT_TIMEOUT or the URL sets one).
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pg_connect_timeout: std::time::Duration,
    /// Longest wait for a table's lock while dumping (pg_dump --lock-wait-timeout).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pg_lock_wait_timeout: std::time::Duration,
}

/// Key derivation cost of a new key: RFC 9106's recommendation unless a
/// test asks for a cheap one (hidden flags).
#[derive(Args)]
struct KdfArgs {
    /// Argon2id memory in KiB (default: RFC 9106's 64 MiB). For tests only.
    #[arg(long, hide = true)]
    kdf_memory_kib: Option<u32>,
    /// Argon2id iterations (default 3). For tests only.
    #[arg(long, hide = true)]
    kdf_iterations: Option<u32>,
}

impl KdfArgs {
    fn params(&self) -> KdfParams {
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

#[derive(Args)]
struct InitArgs {
    #[command(flatten)]
    kdf: KdfArgs,
}

#[derive(Subcommand)]
enum KeyCommand {
    /// List the repository's keys (passphrases).
    List,
    /// Add a passphrase (read from COFFER_NEW_PASSWORD_FILE / _COMMAND / COFFER_NEW_PASSWORD or a prompt).
    Add(KdfArgs),
    /// Change the passphrase in use: add the new key, then remove the old one.
    Passwd(KdfArgs),
    /// Remove a key by id or unique prefix (not the one in use, never the last).
    Remove {
        /// Key id or prefix, as `key list` shows it.
        key: String,
    },
}

#[derive(Args)]
struct BackupArgs {
    /// Files and directories to back up.
    paths: Vec<PathBuf>,
    /// PostgreSQL server (postgres://user@host:port/db); empty: the libpq environment.
    #[arg(long, value_name = "URL", env = "COFFER_PG_URL", hide_env_values = true)]
    pg: Option<String>,
    /// Database to dump (repeatable; default: the one in --pg).
    #[arg(long, value_name = "NAME")]
    db: Vec<String>,
    /// Dump every database, plus roles and tablespaces (pg_dumpall --globals-only).
    #[arg(long, conflicts_with = "db")]
    pg_all: bool,
    #[command(flatten)]
    pg_tools: PgArgs,
    /// Leave out paths matching GLOB (a pattern without '/' matches any name).
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Do not descend into other file systems.
    #[arg(short = 'x', long)]
    one_file_system: bool,
    /// Tag the snapshot (repeatable).
    #[arg(long)]
    tag: Vec<String>,
    /// Host name recorded in the snapshot (default: this machine's).
    #[arg(long)]
    host: Option<String>,
    /// Read and chunk everything, report what would be added, write nothing.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// Re-read every file, even those unchanged since the parent snapshot.
    #[arg(long)]
    force: bool,
    /// zstd level for new chunks.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    compression: i32,
}

#[derive(Args)]
struct SnapshotsArgs {
    /// Only snapshots with this tag (repeatable: all must match).
    #[arg(long)]
    tag: Vec<String>,
}

#[derive(Args)]
struct ShowArgs {
    /// Snapshot id, unique id prefix, or "latest".
    snapshot: String,
    /// With "latest": the newest snapshot having these tags.
    #[arg(long)]
    tag: Vec<String>,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["target", "pg_target", "to_file"])))]
struct RestoreArgs {
    /// Snapshot id, unique id prefix, or "latest".
    snapshot: String,
    /// Directory to restore files into (created if missing).
    #[arg(long, short = 't')]
    target: Option<PathBuf>,
    /// PostgreSQL to restore a database into (postgres://user@host:port/db).
    #[arg(long, value_name = "URL", env = "COFFER_PG_TARGET", hide_env_values = true)]
    pg_target: Option<String>,
    /// Write the raw pg_dump archive to FILE (for pg_restore by hand).
    #[arg(long, value_name = "FILE")]
    to_file: Option<PathBuf>,
    /// Which database dump of the snapshot.
    #[arg(long, value_name = "NAME")]
    db: Option<String>,
    /// Every dump of the snapshot: roles first, then each database (created when missing).
    #[arg(long, conflicts_with_all = ["db", "to_file"])]
    all: bool,
    /// The globals dump alone (roles, tablespaces), through psql.
    #[arg(long, conflicts_with_all = ["db", "all"])]
    globals: bool,
    /// With --to-file: replace FILE if it exists.
    #[arg(long)]
    force: bool,
    /// Restore only this schema (repeatable).
    #[arg(long, value_name = "S")]
    schema: Vec<String>,
    /// Restore only this table (repeatable).
    #[arg(long, value_name = "T")]
    table: Vec<String>,
    /// Create the archived database (--pg-target then names a maintenance database).
    #[arg(long)]
    create: bool,
    /// Drop objects before recreating them.
    #[arg(long)]
    clean: bool,
    /// Do not restore object ownership.
    #[arg(long)]
    no_owner: bool,
    /// pg_restore parallel jobs (the archive is first written to a temporary file).
    #[arg(long, default_value_t = 1)]
    jobs: u32,
    #[command(flatten)]
    pg_tools: PgArgs,
    /// Restore only paths matching GLOB, and everything below them.
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// Leave out paths matching GLOB, and everything below them.
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    /// Fetch, decrypt and check everything, report what would be written.
    #[arg(short = 'n', long)]
    dry_run: bool,
    /// With "latest": the newest snapshot having these tags.
    #[arg(long)]
    tag: Vec<String>,
}

#[derive(Args)]
struct DrillArgs {
    /// Snapshot id, unique id prefix, or "latest".
    snapshot: String,
    /// Server for the scratch database (postgres://user@host:port/postgres).
    #[arg(long, value_name = "URL", env = "COFFER_PG_SCRATCH", hide_env_values = true)]
    pg_scratch: String,
    /// Which database dump of the snapshot.
    #[arg(long, value_name = "NAME")]
    db: Option<String>,
    /// SQL queries separated by ';', each of which must return true.
    #[arg(long, value_name = "FILE")]
    check_sql: Option<PathBuf>,
    /// pg_restore parallel jobs.
    #[arg(long, default_value_t = 2)]
    jobs: u32,
    /// Longest each check (and each table's row count) may run on the scratch server.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    check_timeout: std::time::Duration,
    /// With "latest": the newest snapshot having these tags.
    #[arg(long)]
    tag: Vec<String>,
    #[command(flatten)]
    pg_tools: PgArgs,
}

#[derive(Args)]
struct VerifyArgs {
    /// Check only this snapshot and the packs it uses.
    snapshot: Option<String>,
    /// Download and check every pack.
    #[arg(long, conflicts_with = "read_data_subset")]
    read_data: bool,
    /// Download and check this percentage of packs, chosen at random.
    #[arg(long, value_name = "PCT", value_parser = parse_percent)]
    read_data_subset: Option<f64>,
    /// Fail when the newest snapshot is older than this (e.g. 26h, 2d).
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    max_age: Option<std::time::Duration>,
    /// With --max-age: the newest snapshot having these tags.
    #[arg(long, requires = "max_age")]
    tag: Vec<String>,
}

fn parse_percent(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.trim_end_matches('%').parse().map_err(|_| format!("{s:?} is not a percentage"))?;
    if v > 0.0 && v <= 100.0 {
        Ok(v)
    } else {
        Err(format!("{s} is not in (0, 100]"))
    }
}

/// A usage error found after parsing (exit code 2).
#[derive(Debug)]
struct Usage(String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

pub fn main() -> ExitCode {
    let mut cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match apply_profile(&mut cli).and_then(|()| run(&cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            errln!("coffer: error: {}", one_line(&e));
            if let Some(hint) = hint(&e) {
                errln!("coffer: hint: {hint}");
            }
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

fn core_error(e: &anyhow::Error) -> Option<&Error> {
    e.chain().find_map(|c| c.downcast_ref::<Error>())
}

fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<Usage>().is_some() {
        return exit::USAGE;
    }
    match core_error(e) {
        Some(Error::NoRepository { .. }) => exit::NO_REPOSITORY,
        Some(Error::WrongPassphrase { .. }) => exit::WRONG_PASSPHRASE,
        Some(Error::Locked { .. }) => exit::LOCKED,
        _ => exit::FAILURE,
    }
}

fn hint(e: &anyhow::Error) -> Option<&'static str> {
    match core_error(e)? {
        Error::WrongPassphrase { .. } => Some("check COFFER_PASSWORD_FILE / COFFER_PASSWORD_COMMAND / COFFER_PASSWORD"),
        Error::NoRepository { .. } => Some("create one with `coffer init -r REPO`, or check -r / COFFER_REPOSITORY"),
        Error::Corrupt { .. } => Some("run `coffer verify --read-data` to list every damaged object"),
        Error::Vanished { .. } => Some("nothing is damaged: run the command again"),
        Error::Locked { .. } => {
            Some("wait for it to finish; a lock whose process died is ignored, `coffer unlock` removes stale ones")
        }
        Error::SourceFailed { message, .. } if message.contains("lock wait timeout") => Some(
            "another session holds a lock on a table; find it in pg_locks, or wait longer with --pg-lock-wait-timeout",
        ),
        Error::SourceFailed { message, .. } if message.contains("row-level security") => {
            Some("the backup role must bypass row-level security: ALTER ROLE ... BYPASSRLS (docs/OPERATIONS.md)")
        }
        Error::SourceFailed { message, .. } if message.contains("timeout expired") => {
            Some("the server did not answer in time: check the host and port, or raise --pg-connect-timeout")
        }
        _ => None,
    }
}

/// Fills in, from `--profile`, whatever the command line left out.
fn apply_profile(cli: &mut Cli) -> Result<()> {
    let Some(name) = cli.profile.clone() else { return Ok(()) };
    let p = profile::load(cli.config.as_deref(), &name)?;
    cli.repo = cli.repo.take().or(p.repository);
    cli.password_file = p.password_file;
    let s3 = &mut cli.s3;
    s3.s3_endpoint = s3.s3_endpoint.take().or(p.s3_endpoint);
    s3.s3_region = s3.s3_region.take().or(p.s3_region);
    s3.storage_class = s3.storage_class.take().or(p.storage_class);
    s3.s3_path_style |= p.s3_path_style;
    match &mut cli.command {
        Command::Backup(a) => {
            if a.paths.is_empty() && a.pg.is_none() && a.db.is_empty() && !a.pg_all {
                a.paths = p.paths;
                a.pg = p.pg;
                a.db = p.databases;
                a.pg_all = p.pg_all;
            }
            a.exclude.extend(p.exclude);
            if a.tag.is_empty() {
                a.tag = p.tags;
            }
            a.host = a.host.take().or(p.host);
            a.one_file_system |= p.one_file_system;
            a.pg_tools.pg_bin_dir = a.pg_tools.pg_bin_dir.take().or(p.pg_bin_dir);
        }
        Command::Forget(a) => {
            let none_given = [a.keep_last, a.keep_hourly, a.keep_daily, a.keep_weekly, a.keep_monthly, a.keep_yearly]
                .iter()
                .all(|n| *n == 0)
                && a.keep_tag.is_empty();
            if none_given {
                a.keep_last = p.keep_last.unwrap_or(0);
                a.keep_hourly = p.keep_hourly.unwrap_or(0);
                a.keep_daily = p.keep_daily.unwrap_or(0);
                a.keep_weekly = p.keep_weekly.unwrap_or(0);
                a.keep_monthly = p.keep_monthly.unwrap_or(0);
                a.keep_yearly = p.keep_yearly.unwrap_or(0);
                a.keep_tag = p.keep_tags;
            }
            // A profile's forget only considers that profile's snapshots.
            if a.tag.is_empty() {
                a.tag = p.tags;
            }
            a.host = a.host.take().or(p.host);
        }
        _ => {}
    }
    Ok(())
}

/// `env` is the variable clap also reads the URL from: a URL that did not
/// come from it came from the command line.
fn pg_connection(url: Option<&str>, tools: &PgArgs, flag: &str, env: &str) -> Result<coffer::PgConnection> {
    let conn = coffer::PgConnection::new(url, tools.pg_bin_dir.clone())
        .with_context(|| flag.to_string())?
        .with_timeouts(coffer::PgTimeouts {
            connect: tools.pg_connect_timeout,
            lock_wait: tools.pg_lock_wait_timeout,
            statement: None,
        });
    let from_env = url.is_some() && std::env::var(env).ok().as_deref() == url;
    if conn.has_password() && !from_env {
        errln!(
            "coffer: warning: the {flag} URL holds a password, visible to other users in ps; \
             use PGPASSFILE (~/.pgpass) or {env}"
        );
    }
    Ok(conn)
}

fn backend(cli: &Cli) -> Result<Arc<dyn Backend>> {
    let repo = cli.repo.as_deref().context("no repository given: use -r REPO or set COFFER_REPOSITORY")?;
    if repo.starts_with("s3://") {
        let a = &cli.s3;
        let opts = coffer::S3Options {
            endpoint: a.s3_endpoint.clone(),
            region: a.s3_region.clone(),
            path_style: a.s3_path_style,
            storage_class: a.storage_class.clone(),
            sse: a.s3_sse.clone(),
            sse_kms_key_id: a.s3_sse_kms_key_id.clone(),
            part_size: (a.s3_part_size_mib * 1024 * 1024) as usize,
            concurrency: a.s3_concurrency as usize,
            max_attempts: a.s3_max_attempts,
            static_credentials: None,
        };
        return Ok(Arc::new(coffer::S3::new(repo, opts)?));
    }
    Ok(Arc::new(Local::new(repo)))
}

fn open(cli: &Cli) -> Result<Repository> {
    let backend = backend(cli)?;
    let location = backend.location();
    // A missing repository is reported before asking for a passphrase.
    if matches!(backend.get(coffer::Kind::Config, "config"), Err(e) if e.is_not_found()) {
        return Err(Error::NoRepository { location }.into());
    }
    let pass = passphrase::read_or_file(cli.password_file.as_deref())?;
    let repo = Repository::open(backend, pass.as_bytes())?;
    if cli.verbose {
        errln!(
            "coffer: opened repository {} ({}) with key {}",
            repo.config().id.short(),
            repo.location(),
            &repo.key_name()[..12]
        );
    }
    Ok(repo)
}

fn run(cli: &Cli) -> Result<u8> {
    let out = output::Output { json: cli.json, quiet: cli.quiet };
    match &cli.command {
        Command::Init(a) => {
            let backend = backend(cli)?;
            let pass = passphrase::read(true)?;
            let repo = Repository::init(backend, pass.as_bytes(), a.kdf.params())?;
            out.init(&repo);
            Ok(exit::OK)
        }
        Command::Backup(a) => {
            if a.paths.is_empty() && a.pg.is_none() && a.db.is_empty() && !a.pg_all {
                return Err(
                    Usage("backup: nothing to back up: give PATHs, --pg/--db/--pg-all, or --profile".into()).into()
                );
            }
            let repo = open(cli)?;
            let postgres = if a.pg.is_some() || !a.db.is_empty() || a.pg_all {
                Some(coffer::PgSources {
                    connection: pg_connection(a.pg.as_deref(), &a.pg_tools, "--pg", "COFFER_PG_URL")?,
                    databases: a.db.clone(),
                    all: a.pg_all,
                })
            } else {
                None
            };
            let opts = coffer::BackupOptions {
                paths: a.paths.clone(),
                postgres,
                excludes: a.exclude.clone(),
                one_file_system: a.one_file_system,
                tags: a.tag.clone(),
                host: a.host.clone(),
                dry_run: a.dry_run,
                force: a.force,
                compression_level: a.compression,
                workers: coffer::default_workers(),
            };
            let bar = output::ProgressBar::new(!cli.json && !cli.quiet && std::io::stderr().is_terminal());
            let summary = coffer::backup(&repo, &opts, &bar)?;
            bar.finish();
            if cli.verbose {
                match &summary.parent {
                    Some(p) => errln!("coffer: parent snapshot {} (unchanged files were not re-read)", p.short()),
                    None => errln!("coffer: no parent snapshot: every file was read"),
                }
                errln!("coffer: backup took {:.2}s", summary.stats.duration_secs);
            }
            for u in &summary.unreadable {
                errln!("coffer: warning: could not read {u}");
            }
            for c in &summary.changed {
                errln!("coffer: warning: {c} changed while it was read");
            }
            for w in &summary.warnings {
                errln!("coffer: warning: {w}");
            }
            out.backup(&summary);
            Ok(if summary.unreadable.is_empty() { exit::OK } else { exit::PARTIAL })
        }
        Command::Snapshots(a) => {
            let repo = open(cli)?;
            let (list, unreadable) = repo.list_snapshots_checked()?;
            for (id, e) in &unreadable {
                errln!(
                    "coffer: warning: snapshot {} cannot be read ({e}); `coffer forget {}` removes it",
                    id.short(),
                    id.short()
                );
            }
            let list: Vec<_> = list.into_iter().filter(|(_, m)| m.has_tags(&a.tag)).collect();
            out.snapshots(&list);
            Ok(exit::OK)
        }
        Command::Show(a) => {
            let repo = open(cli)?;
            let id = repo.find_snapshot(&a.snapshot, &a.tag)?;
            let m = repo.load_snapshot(&id)?;
            out.show(&id, &m);
            Ok(exit::OK)
        }
        Command::Restore(a) => {
            let repo = open(cli)?;
            let id = repo.find_snapshot(&a.snapshot, &a.tag)?;
            let db_target = match (&a.pg_target, &a.to_file) {
                (Some(url), _) => Some(coffer::DbTarget::Server(pg_connection(
                    Some(url),
                    &a.pg_tools,
                    "--pg-target",
                    "COFFER_PG_TARGET",
                )?)),
                (None, Some(f)) => Some(coffer::DbTarget::File(f.clone())),
                (None, None) => None,
            };
            if let Some(target) = db_target {
                let opts = coffer::DbRestoreOptions {
                    database: a.db.clone(),
                    all: a.all,
                    globals: a.globals,
                    force: a.force,
                    target,
                    schemas: a.schema.clone(),
                    tables: a.table.clone(),
                    create: a.create,
                    clean: a.clean,
                    no_owner: a.no_owner,
                    jobs: a.jobs,
                    dry_run: a.dry_run,
                    workers: coffer::default_workers(),
                };
                let summary = coffer::restore_databases(&repo, &id, &opts)?;
                out.restore_databases(&summary);
                return Ok(exit::OK);
            }
            let target = a.target.clone().context("--target DIR is required to restore files")?;
            let opts = coffer::RestoreOptions {
                target: target.clone(),
                include: a.include.clone(),
                exclude: a.exclude.clone(),
                dry_run: a.dry_run,
                workers: coffer::default_workers(),
            };
            let summary = coffer::restore(&repo, &id, &opts)?;
            out.restore(&summary, &target);
            Ok(exit::OK)
        }
        Command::Verify(a) => {
            let repo = open(cli)?;
            let only: Option<Id> = a.snapshot.as_deref().map(|s| repo.find_snapshot(s, &[])).transpose()?;
            let read = match (a.read_data, a.read_data_subset) {
                (true, _) => ReadData::All,
                (false, Some(p)) => ReadData::Subset(p),
                _ => ReadData::None,
            };
            let opts = coffer::VerifyOptions { read_data: read, max_age: a.max_age, tags: a.tag.clone() };
            let summary = coffer::verify(&repo, only.as_ref(), &opts)?;
            for e in &summary.errors {
                errln!("coffer: error: {e}");
            }
            out.verify(&summary);
            Ok(if summary.errors.is_empty() { exit::OK } else { exit::FAILURE })
        }
        Command::Key(k) => {
            let mut repo = open(cli)?;
            match k {
                KeyCommand::List => out.keys(&repo.list_keys()?),
                KeyCommand::Add(kdf) => {
                    let pass = passphrase::read_from(&passphrase::NEW, true)?;
                    let name = repo.add_key(pass.as_bytes(), kdf.params())?;
                    out.key_changed("added", &name);
                }
                KeyCommand::Passwd(kdf) => {
                    let pass = passphrase::read_from(&passphrase::NEW, true)?;
                    let name = repo.change_passphrase(pass.as_bytes(), kdf.params())?;
                    out.key_changed("changed the passphrase; new key", &name);
                }
                KeyCommand::Remove { key } => {
                    let name = repo.remove_key(key)?;
                    out.key_changed("removed", &name);
                }
            }
            Ok(exit::OK)
        }
        Command::Forget(a) => {
            let repo = open(cli)?;
            let opts = coffer::ForgetOptions {
                policy: coffer::KeepPolicy {
                    last: a.keep_last,
                    hourly: a.keep_hourly,
                    daily: a.keep_daily,
                    weekly: a.keep_weekly,
                    monthly: a.keep_monthly,
                    yearly: a.keep_yearly,
                    tags: a.keep_tag.clone(),
                },
                ids: a.snapshots.iter().map(|s| repo.find_snapshot(s, &[])).collect::<coffer::Result<_>>()?,
                tags: a.tag.clone(),
                host: a.host.clone(),
                dry_run: a.dry_run,
            };
            let summary = coffer::forget(&repo, &opts)?;
            if a.prune {
                let pruned = coffer::prune(&repo, &coffer::PruneOptions { dry_run: a.dry_run, ..Default::default() })?;
                out.forget_and_prune(&summary, &pruned);
            } else {
                out.forget(&summary);
            }
            Ok(exit::OK)
        }
        Command::Prune(a) => {
            let repo = open(cli)?;
            let summary = coffer::prune(
                &repo,
                &coffer::PruneOptions {
                    dry_run: a.dry_run,
                    max_unused: a.max_unused / 100.0,
                    grace: a.grace,
                    abort_uploads_after: a.abort_uploads_after,
                },
            )?;
            out.prune(&summary);
            Ok(exit::OK)
        }
        Command::Repair(a) => {
            let repo = open(cli)?;
            let summary = coffer::repair(&repo, &coffer::RepairOptions { dry_run: a.dry_run, read_data: a.read_data })?;
            out.repair(&summary);
            Ok(exit::OK)
        }
        Command::Unlock { all } => {
            let repo = open(cli)?;
            let n = coffer::unlock(&repo, *all)?;
            out.unlocked(n);
            Ok(exit::OK)
        }
        Command::Drill(a) => {
            let repo = open(cli)?;
            let id = repo.find_snapshot(&a.snapshot, &a.tag)?;
            let check_sql = a
                .check_sql
                .as_ref()
                .map(|p| std::fs::read_to_string(p).with_context(|| format!("--check-sql {}", p.display())))
                .transpose()?;
            let opts = coffer::DrillOptions {
                scratch: pg_connection(Some(&a.pg_scratch), &a.pg_tools, "--pg-scratch", "COFFER_PG_SCRATCH")?,
                database: a.db.clone(),
                check_sql,
                jobs: a.jobs,
                check_timeout: a.check_timeout,
                workers: coffer::default_workers(),
            };
            let report = coffer::drill(&repo, &id, &opts)?;
            if let Some(e) = &report.error {
                errln!("coffer: drill failed: {e}");
            }
            out.drill(&report);
            Ok(if report.passed { exit::OK } else { exit::FAILURE })
        }
    }
}

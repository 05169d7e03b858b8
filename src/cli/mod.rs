//! The command line: clap structs converted into the library's `*Options`,
//! results printed as text or one JSON document, errors mapped to exit codes.
//! The only code that reads the environment, prints, or exits.

mod output;
mod passphrase;

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
    pub const WRONG_PASSPHRASE: u8 = 12;
}

#[derive(Parser)]
#[command(name = "coffer", version, about = "Encrypted, deduplicating backups of PostgreSQL and file trees")]
struct Cli {
    /// Repository: a local directory (or s3://bucket/prefix once supported).
    #[arg(short = 'r', long = "repo", env = "COFFER_REPOSITORY", global = true)]
    repo: Option<String>,
    /// Print one JSON document on stdout (logs and warnings go to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// Print nothing but errors and warnings.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
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
}

#[derive(Args)]
struct InitArgs {
    /// Argon2id memory in KiB (default: RFC 9106's 64 MiB). For tests only.
    #[arg(long, hide = true)]
    kdf_memory_kib: Option<u32>,
    /// Argon2id iterations (default 3). For tests only.
    #[arg(long, hide = true)]
    kdf_iterations: Option<u32>,
}

#[derive(Args)]
struct BackupArgs {
    /// Files and directories to back up.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
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
struct RestoreArgs {
    /// Snapshot id, unique id prefix, or "latest".
    snapshot: String,
    /// Directory to restore into (created if missing).
    #[arg(long, short = 't')]
    target: PathBuf,
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
struct VerifyArgs {
    /// Check only this snapshot and the packs it uses.
    snapshot: Option<String>,
    /// Download and check every pack.
    #[arg(long, conflicts_with = "read_data_subset")]
    read_data: bool,
    /// Download and check this percentage of packs, chosen at random.
    #[arg(long, value_name = "PCT", value_parser = parse_percent)]
    read_data_subset: Option<f64>,
}

fn parse_percent(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.trim_end_matches('%').parse().map_err(|_| format!("{s:?} is not a percentage"))?;
    if v > 0.0 && v <= 100.0 {
        Ok(v)
    } else {
        Err(format!("{s} is not in (0, 100]"))
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("coffer: error: {}", one_line(&e));
            if let Some(hint) = hint(&e) {
                eprintln!("coffer: hint: {hint}");
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
    match core_error(e) {
        Some(Error::NoRepository { .. }) => exit::NO_REPOSITORY,
        Some(Error::WrongPassphrase { .. }) => exit::WRONG_PASSPHRASE,
        _ => exit::FAILURE,
    }
}

fn hint(e: &anyhow::Error) -> Option<&'static str> {
    match core_error(e)? {
        Error::WrongPassphrase { .. } => Some("check COFFER_PASSWORD_FILE / COFFER_PASSWORD_COMMAND / COFFER_PASSWORD"),
        Error::NoRepository { .. } => Some("create one with `coffer init -r REPO`, or check -r / COFFER_REPOSITORY"),
        Error::Corrupt { .. } => Some("run `coffer verify --read-data` to list every damaged object"),
        _ => None,
    }
}

fn backend(cli: &Cli) -> Result<Arc<dyn Backend>> {
    let repo = cli.repo.as_deref().context("no repository given: use -r REPO or set COFFER_REPOSITORY")?;
    if repo.starts_with("s3://") {
        anyhow::bail!("repository {repo}: S3 repositories are not supported by this build yet");
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
    let pass = passphrase::read(false)?;
    Ok(Repository::open(backend, pass.as_bytes())?)
}

fn run(cli: &Cli) -> Result<u8> {
    let out = output::Output { json: cli.json, quiet: cli.quiet };
    match &cli.command {
        Command::Init(a) => {
            let backend = backend(cli)?;
            let pass = passphrase::read(true)?;
            let mut kdf = KdfParams::recommended();
            if let Some(m) = a.kdf_memory_kib {
                kdf = KdfParams::with_cost(m, a.kdf_iterations.unwrap_or(kdf.iterations), 1);
            } else if let Some(t) = a.kdf_iterations {
                kdf = KdfParams::with_cost(kdf.memory_kib, t, kdf.parallelism);
            }
            let repo = Repository::init(backend, pass.as_bytes(), kdf)?;
            out.init(&repo);
            Ok(exit::OK)
        }
        Command::Backup(a) => {
            let repo = open(cli)?;
            let opts = coffer::BackupOptions {
                paths: a.paths.clone(),
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
            for u in &summary.unreadable {
                eprintln!("coffer: warning: could not read {u}");
            }
            for c in &summary.changed {
                eprintln!("coffer: warning: {c} changed while it was read");
            }
            out.backup(&summary);
            Ok(if summary.unreadable.is_empty() { exit::OK } else { exit::PARTIAL })
        }
        Command::Snapshots(a) => {
            let repo = open(cli)?;
            let list: Vec<_> = repo
                .list_snapshots()?
                .into_iter()
                .filter(|(_, m)| a.tag.iter().all(|t| m.tags.contains(t)))
                .collect();
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
            let opts = coffer::RestoreOptions {
                target: a.target.clone(),
                include: a.include.clone(),
                exclude: a.exclude.clone(),
                dry_run: a.dry_run,
                workers: coffer::default_workers(),
            };
            let summary = coffer::restore(&repo, &id, &opts)?;
            out.restore(&summary, &a.target);
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
            let summary = coffer::verify(&repo, only.as_ref(), read)?;
            for e in &summary.errors {
                eprintln!("coffer: error: {e}");
            }
            out.verify(&summary);
            Ok(if summary.errors.is_empty() { exit::OK } else { exit::FAILURE })
        }
    }
}

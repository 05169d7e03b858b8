//! What every command needs from the global flags: the backend, the
//! repository opened with the passphrase, PostgreSQL connections.

use crate::cli::args::{Cli, PgArgs};
use crate::cli::passphrase;
use crate::cli::Usage;
use anyhow::{Context, Result};
use coffer::{Backend, Error, Local, Repository};
use std::sync::Arc;

/// `env` is the variable clap also reads the URL from: a URL that did not
/// come from it came from the command line.
pub fn pg_connection(url: Option<&str>, tools: &PgArgs, flag: &str, env: &str) -> Result<coffer::PgConnection> {
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

pub fn backend(cli: &Cli) -> Result<Arc<dyn Backend>> {
    let repo = cli
        .repo
        .as_deref()
        .ok_or_else(|| Usage("no repository given: use -r REPO, COFFER_REPOSITORY or a --profile".into()))?;
    backend_at(repo, &cli.s3)
}

/// The backend of repository `repo` (a folder, or s3://), with these S3 settings.
pub fn backend_at(repo: &str, a: &crate::cli::args::S3Args) -> Result<Arc<dyn Backend>> {
    if repo.starts_with("s3://") {
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
            credentials_file: a.s3_credentials_file.clone(),
            credentials_profile: a.s3_profile.clone(),
            retention: a.retention.map(|period| coffer::Retention {
                mode: a.retention_mode.as_deref().unwrap_or("governance").to_uppercase(),
                period,
            }),
        };
        return Ok(Arc::new(coffer::S3::new(repo, opts)?));
    }
    if a.retention.is_some() {
        return Err(Usage(format!("--retention: {repo} is a folder; Object Lock retention is for S3 buckets")).into());
    }
    Ok(Arc::new(Local::new(repo)))
}

/// Every request this process made to the repository: counted for
/// `--estimate` (its planning) and for `--verbose` (the last line).
static METER: std::sync::OnceLock<Arc<coffer::Metered>> = std::sync::OnceLock::new();

/// What the repository opened by `open` was asked so far (nothing before it is).
pub fn requests_made() -> Option<coffer::Requests> {
    METER.get().map(|m| m.made())
}

/// Opens the repository -r names with a full key: a write-only key is
/// refused before anything is read.
pub fn open(cli: &Cli) -> Result<Repository> {
    open_with(cli, backend(cli)?)
}

/// `open` of this backend of the repository -r names.
pub fn open_with(cli: &Cli, backend: Arc<dyn Backend>) -> Result<Repository> {
    let repo = open_any(cli, backend)?;
    if repo.is_write_only() {
        return Err(repo.write_only_error(&format!("run `coffer {}`", command_name(cli))).into());
    }
    Ok(repo)
}

/// `open`, where a write-only key will do (`backup`, `wal-push`).
pub fn open_for_writing(cli: &Cli) -> Result<Repository> {
    open_any(cli, backend(cli)?)
}

/// The subcommand's name, as typed.
fn command_name(cli: &Cli) -> &'static str {
    use crate::cli::args::Command as C;
    match &cli.command {
        C::Init(_) => "init",
        C::Backup(_) => "backup",
        C::Snapshots(_) => "snapshots",
        C::Show(_) => "show",
        C::Ls(_) => "ls",
        C::Diff(_) => "diff",
        C::Find(_) => "find",
        C::Stats(_) => "stats",
        C::Dump(_) => "dump",
        C::Restore(_) => "restore",
        C::Verify(_) => "verify",
        C::Copy(_) => "copy",
        C::Drill(_) => "drill",
        C::WalPush(_) => "wal-push",
        C::WalFetch(_) => "wal-fetch",
        C::Forget(_) => "forget",
        C::Key(_) => "key",
        C::Prune(_) => "prune",
        C::Repair(_) => "repair",
        C::Unlock(_) => "unlock",
        C::Completions(_) => "completions",
        C::Man(_) => "man",
    }
}

fn open_any(cli: &Cli, backend: Arc<dyn Backend>) -> Result<Repository> {
    let meter = Arc::new(coffer::Metered::new(backend));
    // One repository per process; a second `open` is metered on its own.
    let backend: Arc<dyn Backend> = match METER.set(meter.clone()) {
        Ok(()) => meter,
        Err(m) => m,
    };
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

/// `--estimate`: plans the command (those requests are measured), prints
/// what it and the work would cost, and does nothing else.
pub fn estimate(
    cli: &Cli,
    out: &crate::cli::output::Output,
    plan: impl FnOnce() -> coffer::Result<coffer::Estimate>,
) -> Result<u8> {
    // A bad price file is a wrong setting (exit 2), found before any planning.
    let prices = cli
        .price_file
        .as_deref()
        .map(|p| coffer::Prices::load(p).map(|x| (x, p)).map_err(|e| Usage(e.to_string())))
        .transpose()?;
    let mut e = plan()?;
    e.planning = requests_made().unwrap_or_default();
    out.estimate(&e, prices.as_ref().map(|(p, path)| (p, *path)));
    Ok(crate::cli::exit::OK)
}

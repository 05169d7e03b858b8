//! `coffer backup`: Back up file trees and PostgreSQL databases into a new snapshot.

use crate::cli::args::{Cli, PgArgs};
use crate::cli::context::{open_for_writing, pg_connection};
use crate::cli::output::{self, Output};
use crate::cli::{exit, Usage};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
#[command(after_help = "Examples:
  coffer backup /etc /srv/app --exclude '*.tmp' --tag nightly
  coffer backup --pg postgres://backup@db1/shop              one database, streamed from pg_dump
  coffer backup --pg postgres://backup@db1/postgres --pg-all  every database, and roles
  coffer backup --pg-base postgres://replicator@db1 --wait-for-wal   a physical base backup
  coffer backup --files-from paths.txt --exclude-if-present .nobackup --dry-run
  coffer backup --profile nightly --quiet --json             as the cron job runs it")]
pub struct BackupArgs {
    /// Files and directories to back up.
    pub paths: Vec<PathBuf>,
    /// PostgreSQL server (postgres://user@host:port/db); empty: the libpq environment.
    #[arg(long, value_name = "URL", env = "COFFER_PG_URL", hide_env_values = true)]
    pub pg: Option<String>,
    /// Database to dump (repeatable; default: the one in --pg).
    #[arg(long, value_name = "NAME")]
    pub db: Vec<String>,
    /// Dump every database, plus roles and tablespaces (pg_dumpall --globals-only).
    #[arg(long, conflicts_with = "db")]
    pub pg_all: bool,
    /// Take a physical base backup of this server (pg_basebackup over a replication connection):
    /// its data directory's files, stored as the tree pg-base/<stanza>; its WAL comes from the
    /// archive (wal-push). Empty: the libpq environment.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub pg_base: Option<String>,
    /// The base backup's WAL folder in the archive, as wal-push's --stanza [default: the
    /// cluster's system identifier].
    #[arg(long, requires = "pg_base")]
    pub stanza: Option<String>,
    /// Write the snapshot only once this repository holds the base backup's WAL, waiting up to
    /// DURATION for it; without, the snapshot is written at once and missing WAL is reported
    /// (exit 3).
    #[arg(long, value_name = "DURATION", num_args = 0..=1, default_missing_value = "5m",
          value_parser = humantime::parse_duration, requires = "pg_base")]
    pub wait_for_wal: Option<std::time::Duration>,
    /// How long the server may wait at the end of a base backup for its WAL to be archived
    /// (it finishes only then) before the backup fails.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    pub archive_wait: std::time::Duration,
    #[command(flatten)]
    pub pg_tools: PgArgs,
    /// Leave out paths matching GLOB (a pattern without '/' matches any name).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Leave out the patterns listed in FILE, one per line ('#' comments; repeatable).
    #[arg(long, value_name = "FILE")]
    pub exclude_file: Vec<PathBuf>,
    /// Leave out every folder holding a file named NAME (e.g. .nobackup, CACHEDIR.TAG; repeatable).
    #[arg(long, value_name = "NAME")]
    pub exclude_if_present: Vec<String>,
    /// Store the standard output of CMD (run by sh -c; e.g. 'mysqldump shop'): the backup fails and
    /// commits nothing if it exits non-zero. Repeatable; each is named by --stdin-filename, in order.
    #[arg(long, value_name = "CMD")]
    pub stdin_from_command: Vec<String>,
    /// The name each --stdin-from-command output is stored under (default: stdin, stdin-2, ...).
    #[arg(long, value_name = "NAME")]
    pub stdin_filename: Vec<String>,
    /// Back up the paths listed in FILE too, one per line ('#' comments; repeatable).
    #[arg(long, value_name = "FILE")]
    pub files_from: Vec<PathBuf>,
    /// Do not descend into other file systems.
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Tag the snapshot (repeatable).
    #[arg(long)]
    pub tag: Vec<String>,
    /// Host name recorded in the snapshot (default: this machine's).
    #[arg(long)]
    pub host: Option<String>,
    /// Read and chunk everything, report what would be added, write nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Re-read every file, even those unchanged since the parent snapshot.
    #[arg(long)]
    pub force: bool,
    /// zstd level for new chunks.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub compression: i32,
}

/// The lines of a list file that say something: not blank, not a `#` comment.
/// A path may hold any byte but a newline, as a stored path may.
fn list_file(flag: &str, path: &std::path::Path) -> Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).map_err(|e| Usage(format!("{flag} {}: {e}", path.display())))?;
    Ok(bytes
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace) && !l.starts_with(b"#"))
        .map(<[u8]>::to_vec)
        .collect())
}

pub fn run(cli: &Cli, a: &BackupArgs, out: &Output) -> Result<u8> {
    use std::os::unix::ffi::OsStrExt;
    let mut paths = a.paths.clone();
    for f in &a.files_from {
        let listed = list_file("--files-from", f)?;
        if listed.is_empty() {
            return Err(Usage(format!("--files-from {}: the file lists no path", f.display())).into());
        }
        paths.extend(listed.iter().map(|l| PathBuf::from(std::ffi::OsStr::from_bytes(l))));
    }
    let mut excludes = a.exclude.clone();
    for f in &a.exclude_file {
        for l in list_file("--exclude-file", f)? {
            let pattern = String::from_utf8(l)
                .map_err(|_| Usage(format!("--exclude-file {}: a pattern is not UTF-8", f.display())))?;
            excludes.push(pattern.trim().to_string());
        }
    }
    if let Some(bad) = a.exclude_if_present.iter().find(|m| m.is_empty() || m.contains('/')) {
        return Err(Usage(format!("--exclude-if-present {bad:?}: give a file name, without '/'")).into());
    }
    if a.stdin_filename.len() > a.stdin_from_command.len() {
        return Err(Usage("--stdin-filename names more streams than --stdin-from-command gives".into()).into());
    }
    let commands: Vec<coffer::CommandSource> = a
        .stdin_from_command
        .iter()
        .enumerate()
        .map(|(i, command)| coffer::CommandSource {
            name: a.stdin_filename.get(i).cloned().unwrap_or_else(|| match i {
                0 => "stdin".to_string(),
                n => format!("stdin-{}", n + 1),
            }),
            command: command.clone(),
        })
        .collect();
    if paths.is_empty() && a.pg.is_none() && a.db.is_empty() && !a.pg_all && commands.is_empty() && a.pg_base.is_none()
    {
        return Err(Usage(
            "backup: nothing to back up: give PATHs, --pg/--db/--pg-all, --pg-base, --stdin-from-command, or --profile"
                .into(),
        )
        .into());
    }
    let repo = open_for_writing(cli)?;
    let postgres = if a.pg.is_some() || !a.db.is_empty() || a.pg_all {
        Some(coffer::PgSources {
            connection: pg_connection(a.pg.as_deref(), &a.pg_tools, "--pg", "COFFER_PG_URL")?,
            databases: a.db.clone(),
            all: a.pg_all,
        })
    } else {
        None
    };
    let pg_base = match &a.pg_base {
        Some(url) => Some(coffer::PgBaseSource {
            connection: pg_connection(Some(url.as_str()), &a.pg_tools, "--pg-base", "COFFER_PG_URL")?,
            stanza: a.stanza.clone(),
            archive_wait: a.archive_wait,
            wait_for_wal: a.wait_for_wal,
        }),
        None => None,
    };
    let opts = coffer::BackupOptions {
        pg_base,
        paths,
        postgres,
        excludes,
        exclude_if_present: a.exclude_if_present.clone(),
        commands,
        one_file_system: a.one_file_system,
        tags: a.tag.clone(),
        host: a.host.clone(),
        dry_run: a.dry_run,
        force: a.force,
        compression_level: a.compression,
        workers: coffer::default_workers(),
    };
    let bar = output::ProgressBar::for_terminal(out);
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
    let wal_missing = summary.pg_base.as_ref().is_some_and(|b| !b.missing.is_empty());
    if let Some(b) = summary.pg_base.as_ref().filter(|_| wal_missing) {
        errln!(
            "coffer: warning: the base backup's WAL {}..{} is not all in this repository yet (stanza {}, first missing {}): \
             it cannot be restored until it is; --wait-for-wal waits for it",
            b.start_wal,
            b.stop_wal,
            b.stanza,
            b.missing[0]
        );
    }
    crate::cli::metrics::backup(&summary);
    out.backup(&summary);
    Ok(if summary.unreadable.is_empty() && !wal_missing { exit::OK } else { exit::PARTIAL })
}

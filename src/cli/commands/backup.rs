//! `coffer backup`: Back up file trees and PostgreSQL databases into a new snapshot.

use crate::cli::args::{Cli, PgArgs};
use crate::cli::context::{open, pg_connection};
use crate::cli::output::{self, Output};
use crate::cli::{exit, Usage};
use anyhow::Result;
use clap::Args;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args)]
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
    #[command(flatten)]
    pub pg_tools: PgArgs,
    /// Leave out paths matching GLOB (a pattern without '/' matches any name).
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
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

pub fn run(cli: &Cli, a: &BackupArgs, out: &Output) -> Result<u8> {
    if a.paths.is_empty() && a.pg.is_none() && a.db.is_empty() && !a.pg_all {
        return Err(Usage("backup: nothing to back up: give PATHs, --pg/--db/--pg-all, or --profile".into()).into());
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

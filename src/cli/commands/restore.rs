//! `coffer restore`: Restore a snapshot, or part of it: files into a directory, dumps into a server or a file.

use crate::cli::args::{Cli, EstimateArgs, PgArgs};
use crate::cli::context::{estimate, open, pg_connection};
use crate::cli::exit;
use crate::cli::output::Output;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
#[command(after_help = "Examples:
  coffer restore latest --target /tmp/restore --dry-run      check everything, write nothing
  coffer restore latest --target /tmp/restore --include 'srv/app/config'
  coffer restore latest --db shop --pg-target postgres://admin@scratch/shop_copy
  coffer restore latest --db shop --pg-target postgres://admin@db1/shop --table app.orders --clean
  coffer restore latest --db shop --to-file shop.pgc         the raw archive, for pg_restore
  coffer restore latest --target /tmp/r --include 'srv/app' --estimate   requests and bytes, first")]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["target", "pg_target", "to_file"])))]
pub struct RestoreArgs {
    /// Snapshot id, unique id prefix, or "latest".
    pub snapshot: String,
    /// Directory to restore files into (created if missing).
    #[arg(long, short = 't')]
    pub target: Option<PathBuf>,
    /// PostgreSQL to restore a database into (postgres://user@host:port/db).
    #[arg(long, value_name = "URL", env = "COFFER_PG_TARGET", hide_env_values = true)]
    pub pg_target: Option<String>,
    /// Write the raw pg_dump archive to FILE (for pg_restore by hand).
    #[arg(long, value_name = "FILE")]
    pub to_file: Option<PathBuf>,
    /// Which database dump of the snapshot.
    #[arg(long, value_name = "NAME")]
    pub db: Option<String>,
    /// Every dump of the snapshot: roles first, then each database (created when missing).
    #[arg(long, conflicts_with_all = ["db", "to_file"])]
    pub all: bool,
    /// The globals dump alone (roles, tablespaces), through psql.
    #[arg(long, conflicts_with_all = ["db", "all"])]
    pub globals: bool,
    /// With --to-file: replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
    /// Restore only this schema (repeatable).
    #[arg(long, value_name = "S")]
    pub schema: Vec<String>,
    /// Restore only this table (repeatable).
    #[arg(long, value_name = "T")]
    pub table: Vec<String>,
    /// Create the archived database (--pg-target then names a maintenance database).
    #[arg(long)]
    pub create: bool,
    /// Drop objects before recreating them.
    #[arg(long)]
    pub clean: bool,
    /// Do not restore object ownership.
    #[arg(long)]
    pub no_owner: bool,
    /// pg_restore parallel jobs (the archive is first written to a temporary file).
    #[arg(long, default_value_t = 1)]
    pub jobs: u32,
    #[command(flatten)]
    pub pg_tools: PgArgs,
    /// Restore only paths matching GLOB, and everything below them.
    #[arg(long, value_name = "GLOB")]
    pub include: Vec<String>,
    /// Leave out paths matching GLOB, and everything below them.
    #[arg(long, value_name = "GLOB")]
    pub exclude: Vec<String>,
    /// Fetch, decrypt and check everything, report what would be written.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// With "latest": the newest snapshot having these tags.
    #[arg(long)]
    pub tag: Vec<String>,
    #[command(flatten)]
    pub estimate: EstimateArgs,
}

pub fn run(cli: &Cli, a: &RestoreArgs, out: &Output) -> Result<u8> {
    let repo = open(cli)?;
    let id = repo.find_snapshot(&a.snapshot, &a.tag)?;
    let db_target = match (&a.pg_target, &a.to_file) {
        (Some(url), _) => {
            Some(coffer::DbTarget::Server(pg_connection(Some(url), &a.pg_tools, "--pg-target", "COFFER_PG_TARGET")?))
        }
        (None, Some(f)) => Some(coffer::DbTarget::File(f.clone())),
        (None, None) => None,
    };
    if let Some(target) = db_target {
        let bar = std::sync::Arc::new(crate::cli::output::ProgressBar::for_terminal(out));
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
            progress: Some(bar.clone()),
        };
        if a.estimate.estimate {
            return estimate(cli, out, || coffer::estimate_databases(&repo, &id, &opts));
        }
        let summary = coffer::restore_databases(&repo, &id, &opts);
        bar.finish();
        let summary = summary?;
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
    if a.estimate.estimate {
        return estimate(cli, out, || coffer::estimate_restore(&repo, &id, &opts));
    }
    let bar = crate::cli::output::ProgressBar::for_terminal(out);
    let summary = coffer::restore_with(&repo, &id, &opts, &bar)?;
    bar.finish();
    out.restore(&summary, &target);
    Ok(exit::OK)
}

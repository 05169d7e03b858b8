//! `coffer drill`: Restore drill: a snapshot's database into a scratch database, checked, dropped,
//! timed; with `--pitr`, a base backup and its WAL into a throwaway server, recovered to a moment.

use crate::cli::args::{Cli, PgArgs};
use crate::cli::context::{open, pg_connection};
use crate::cli::exit;
use crate::cli::output::Output;
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
#[command(after_help = "Examples:
  coffer drill latest --db shop --pg-scratch postgres://admin@scratch-db/postgres
  coffer drill latest --profile nightly --db shop --pg-scratch postgres://drill@scratch-db/postgres \\
      --check-sql /etc/coffer/shop-checks.sql --json
  coffer drill --pitr --pg-scratch-dir /var/tmp --target-time '2026-12-03 06:00:00+00' \\
      --check-sql /etc/coffer/shop-checks.sql --db shop --json")]
pub struct DrillArgs {
    /// Snapshot id, unique id prefix, or "latest" (with --pitr: default the newest base backup
    /// that ended before --target-time, or the newest).
    pub snapshot: Option<String>,
    /// Server for the scratch database (postgres://user@host:port/postgres).
    #[arg(
        long,
        value_name = "URL",
        env = "COFFER_PG_SCRATCH",
        hide_env_values = true,
        required_unless_present = "pitr",
        conflicts_with = "pitr"
    )]
    pub pg_scratch: Option<String>,
    /// Point-in-time recovery drill: restore the base backup into a folder under --pg-scratch-dir,
    /// start a throwaway server on it (Unix socket only), replay the archived WAL to the target,
    /// read every table and run the checks, then stop it and delete the folder.
    #[arg(long, requires = "pg_scratch_dir")]
    pub pitr: bool,
    /// Where the PITR drill makes its scratch folder (room for the whole data directory; the
    /// server's user must be able to enter it).
    #[arg(long, value_name = "DIR", requires = "pitr")]
    pub pg_scratch_dir: Option<PathBuf>,
    #[command(flatten)]
    pub recovery: crate::cli::commands::restore::RecoveryArgs,
    /// The role the PITR drill's checks connect as (a superuser of the cluster).
    #[arg(long, value_name = "ROLE", default_value = "postgres", requires = "pitr")]
    pub pg_user: String,
    /// Longest the PITR drill's server may take to start and replay the WAL.
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub replay_timeout: std::time::Duration,
    /// Which database dump of the snapshot (with --pitr: the database the checks run in,
    /// default postgres).
    #[arg(long, value_name = "NAME")]
    pub db: Option<String>,
    /// SQL queries separated by ';', each of which must return true.
    #[arg(long, value_name = "FILE")]
    pub check_sql: Option<PathBuf>,
    /// pg_restore parallel jobs.
    #[arg(long, default_value_t = 2)]
    pub jobs: u32,
    /// Longest each check (and each table's row count) may run on the scratch server.
    #[arg(long, value_name = "DURATION", default_value = "10m", value_parser = humantime::parse_duration)]
    pub check_timeout: std::time::Duration,
    /// With "latest": the newest snapshot having these tags.
    #[arg(long)]
    pub tag: Vec<String>,
    #[command(flatten)]
    pub pg_tools: PgArgs,
}

pub fn run(cli: &Cli, a: &DrillArgs, out: &Output) -> Result<u8> {
    if let Some(flag) = a.recovery.first_given().filter(|_| !a.pitr) {
        return Err(crate::cli::Usage(format!("drill: {flag} is only for drill --pitr")).into());
    }
    let check_sql = a
        .check_sql
        .as_ref()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("--check-sql {}", p.display())))
        .transpose()?;
    let repo = open(cli)?;
    if a.pitr {
        return run_pitr(cli, a, out, &repo, check_sql);
    }
    let snapshot = a
        .snapshot
        .as_deref()
        .ok_or_else(|| crate::cli::Usage("drill: give a SNAPSHOT: an id, a unique id prefix, or \"latest\"".into()))?;
    let id = repo.find_snapshot(snapshot, &a.tag)?;
    let bar = std::sync::Arc::new(crate::cli::output::ProgressBar::for_terminal(out));
    let opts = coffer::DrillOptions {
        scratch: pg_connection(a.pg_scratch.as_deref(), &a.pg_tools, "--pg-scratch", "COFFER_PG_SCRATCH")?,
        database: a.db.clone(),
        check_sql,
        jobs: a.jobs,
        check_timeout: a.check_timeout,
        workers: coffer::default_workers(),
        progress: Some(bar.clone()),
    };
    let report = coffer::drill(&repo, &id, &opts);
    bar.finish();
    let report = report?;
    if let Some(e) = &report.error {
        errln!("coffer: drill failed: {e}");
    }
    crate::cli::metrics::drill(&report);
    out.drill(&report);
    Ok(if report.passed { exit::OK } else { exit::FAILURE })
}

fn run_pitr(
    cli: &Cli,
    a: &DrillArgs,
    out: &Output,
    repo: &coffer::Repository,
    check_sql: Option<String>,
) -> Result<u8> {
    let (id, stanza) = a.recovery.pick_base(repo, a.snapshot.as_deref(), &a.tag)?;
    let opts = coffer::PitrDrillOptions {
        scratch_dir: a.pg_scratch_dir.clone().context("--pg-scratch-dir DIR is required")?,
        recovery: a.recovery.target(None),
        restore_command: a.recovery.restore_command(cli, "drill --pitr", &stanza)?,
        stanza: a.recovery.stanza.clone(),
        server_bin_dir: a.pg_tools.pg_bin_dir.clone(),
        user: a.pg_user.clone(),
        database: a.db.clone().unwrap_or_else(|| "postgres".into()),
        check_sql,
        check_timeout: a.check_timeout,
        replay_timeout: a.replay_timeout,
        workers: coffer::default_workers(),
    };
    let report = coffer::drill_pitr(repo, &id, &opts)?;
    if let Some(e) = &report.error {
        errln!("coffer: drill failed: {e}");
    }
    crate::cli::metrics::drill_pitr(&report);
    out.drill_pitr(&report);
    Ok(if report.passed { exit::OK } else { exit::FAILURE })
}

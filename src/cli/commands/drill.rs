//! `coffer drill`: Restore drill: a snapshot's database into a scratch database, checked, dropped, timed.

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
      --check-sql /etc/coffer/shop-checks.sql --json")]
pub struct DrillArgs {
    /// Snapshot id, unique id prefix, or "latest".
    pub snapshot: String,
    /// Server for the scratch database (postgres://user@host:port/postgres).
    #[arg(long, value_name = "URL", env = "COFFER_PG_SCRATCH", hide_env_values = true)]
    pub pg_scratch: String,
    /// Which database dump of the snapshot.
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
    let repo = open(cli)?;
    let id = repo.find_snapshot(&a.snapshot, &a.tag)?;
    let check_sql = a
        .check_sql
        .as_ref()
        .map(|p| std::fs::read_to_string(p).with_context(|| format!("--check-sql {}", p.display())))
        .transpose()?;
    let bar = std::sync::Arc::new(crate::cli::output::ProgressBar::for_terminal(out));
    let opts = coffer::DrillOptions {
        scratch: pg_connection(Some(&a.pg_scratch), &a.pg_tools, "--pg-scratch", "COFFER_PG_SCRATCH")?,
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

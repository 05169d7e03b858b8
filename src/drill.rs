//! Restore drill: prove that a snapshot's database restores, without touching
//! production. Restore into a fresh scratch database, check every table of
//! the archive exists (with row counts), run the operator's check queries,
//! drop the scratch database whatever happened, and report the time of each
//! phase: the restore-time figure an operator needs.

use crate::encoding::Id;
use crate::error::{Error, Result};
use crate::manifest::DumpKind;
use crate::postgres::{quote_ident, run_captured, PgConnection};
use crate::repository::Repository;
use crate::restore_pg::{dump_to_temp_file, select_dumps};
use std::time::Instant;

pub struct DrillOptions {
    /// A server where a scratch database may be created and dropped; the
    /// URL's database is only used to connect (e.g. `postgres`).
    pub scratch: PgConnection,
    /// Which database dump; None: the only one.
    pub database: Option<String>,
    /// SQL queries, separated by `;`, each of which must return true.
    pub check_sql: Option<String>,
    pub jobs: u32,
    pub workers: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TableCount {
    pub schema: String,
    pub table: String,
    pub rows: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckResult {
    pub query: String,
    pub passed: bool,
    pub output: String,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct DrillReport {
    pub snapshot: String,
    pub database: String,
    pub scratch_database: String,
    pub passed: bool,
    /// Why the drill failed, if it did.
    pub error: Option<String>,
    pub bytes: u64,
    pub download_secs: f64,
    pub restore_secs: f64,
    pub check_secs: f64,
    pub total_secs: f64,
    pub tables: Vec<TableCount>,
    pub checks: Vec<CheckResult>,
    /// The scratch database was dropped afterwards.
    pub dropped: bool,
}

pub fn drill(repo: &Repository, snapshot: &Id, opts: &DrillOptions) -> Result<DrillReport> {
    let started = Instant::now();
    let manifest = repo.load_snapshot(snapshot)?;
    let dump = select_dumps(&manifest, opts.database.as_deref(), false)?[0];
    if dump.kind != DumpKind::Database {
        return Err(Error::InvalidInput("a drill restores a database dump, not the globals".into()));
    }
    let scratch_name = format!("coffer_drill_{}", Id::random().short());
    let mut report = DrillReport {
        snapshot: snapshot.to_hex(),
        database: dump.name.clone(),
        scratch_database: scratch_name.clone(),
        bytes: dump.size,
        ..Default::default()
    };
    opts.scratch.query(&format!("CREATE DATABASE {}", quote_ident(&scratch_name)))?;

    let outcome = run_phases(repo, snapshot, dump, opts, &scratch_name, &mut report);

    // Dropped whatever happened above.
    let dropped = opts.scratch.query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&scratch_name)));
    report.dropped = dropped.is_ok();
    report.passed = outcome.is_ok() && report.checks.iter().all(|c| c.passed) && report.dropped;
    report.error = match (outcome, dropped) {
        (Err(e), _) => Some(e.to_string()),
        (Ok(()), Err(e)) => Some(format!("dropping scratch database {scratch_name}: {e}")),
        (Ok(()), Ok(_)) => report.checks.iter().find(|c| !c.passed).map(|c| format!("check failed: {}", c.query)),
    };
    report.total_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

fn run_phases(
    repo: &Repository,
    snapshot: &Id,
    dump: &crate::manifest::DumpSource,
    opts: &DrillOptions,
    scratch_name: &str,
    report: &mut DrillReport,
) -> Result<()> {
    // Download: fetch, decrypt, check, into a seekable file (pg_restore -j).
    let t = Instant::now();
    let index = repo.load_index()?;
    let (tmp, _) = dump_to_temp_file(repo, &index, snapshot, dump, opts.workers)?;
    report.download_secs = t.elapsed().as_secs_f64();

    // Restore. Owners and grants are left out: the scratch server need not
    // have the production roles, and the drill is about the data.
    let t = Instant::now();
    let target = opts.scratch.with_database(scratch_name);
    let mut cmd = target.tool_for_db("pg_restore");
    cmd.args(["--no-owner", "--no-privileges", "--exit-on-error"]);
    cmd.arg(format!("--jobs={}", opts.jobs.max(1))).arg(tmp.path_for_others());
    run_captured(cmd, &format!("pg_restore into scratch database {scratch_name}"))?;
    report.restore_secs = t.elapsed().as_secs_f64();

    // Checks: every table of the archive exists; row counts; operator queries.
    let t = Instant::now();
    let tables: Vec<(String, String)> = dump
        .toc
        .iter()
        .filter(|e| e.desc == "TABLE")
        .map(|e| (e.schema.clone().unwrap_or_else(|| "public".into()), e.name.clone()))
        .collect();
    if !tables.is_empty() {
        let sql = tables
            .iter()
            .enumerate()
            .map(|(i, (s, n))| format!("SELECT {i}, count(*) FROM {}.{}", quote_ident(s), quote_ident(n)))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let out = target.query(&sql)?;
        for line in out.lines().filter(|l| !l.is_empty()) {
            let (i, rows) =
                line.split_once('|').ok_or_else(|| Error::InvalidInput(format!("unexpected psql output {line:?}")))?;
            let i: usize = i.parse().map_err(|_| Error::InvalidInput(format!("unexpected psql output {line:?}")))?;
            let (schema, table) = tables.get(i).cloned().unwrap_or_default();
            report.tables.push(TableCount { schema, table, rows: rows.trim().parse().unwrap_or(0) });
        }
    }
    if let Some(sql) = &opts.check_sql {
        for query in sql.split(';').map(str::trim).filter(|q| !q.is_empty() && !q.starts_with("--")) {
            let result = target.query(query);
            let (passed, output) = match result {
                Ok(o) => (o.trim() == "t", o.trim().to_string()),
                Err(e) => (false, e.to_string()),
            };
            report.checks.push(CheckResult { query: query.to_string(), passed, output });
        }
    }
    report.check_secs = t.elapsed().as_secs_f64();
    Ok(())
}

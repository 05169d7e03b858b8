//! Restore drill: prove that a snapshot's database restores, without touching
//! production. Restore into a fresh scratch database, compare every table's
//! rows with what the dump held, run the operator's check queries, drop the
//! scratch database whatever happened (a SIGTERM or SIGINT included), and
//! report the time of each phase: the restore-time figure an operator needs.
//!
//! A drill passes only on evidence: every check ran and returned true, every
//! table's count matched, and something was checked at all.

use crate::error::{DumpChoice, Error, Result};
use crate::format::encoding::Id;
use crate::format::manifest::{DumpKind, DumpSource};
use crate::ops::restore_pg::{dump_to_temp_file, read_toc, select_dumps};
use crate::pg::archive::Archive;
use crate::pg::{quote_ident, sql, PgConnection};
use crate::repo::Repository;
use std::sync::Mutex;
use std::time::Instant;

pub struct DrillOptions {
    /// A server where a scratch database may be created and dropped; the
    /// URL's database is only used to connect (e.g. `postgres`).
    pub scratch: PgConnection,
    /// Which database dump; None: the only one.
    pub database: Option<String>,
    /// An SQL script of queries, each of which must return true.
    pub check_sql: Option<String>,
    pub jobs: u32,
    /// Longest each check query and each table's row count may run.
    pub check_timeout: std::time::Duration,
    pub workers: usize,
    /// Told each chunk of the dump as it is downloaded (the CLI's progress line).
    pub progress: Option<std::sync::Arc<dyn crate::ops::progress::Progress + Send>>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct TableCount {
    pub schema: String,
    pub table: String,
    pub rows: u64,
    /// The rows the dump holds (None: not counted in this snapshot).
    pub expected: Option<u64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct CheckResult {
    pub query: String,
    /// Its first line in the check file.
    pub line: usize,
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
    /// Tables whose row count was compared with the dump's.
    pub tables_compared: usize,
    pub checks: Vec<CheckResult>,
    /// Checks run (all of the file's statements, when it parsed).
    pub checks_run: usize,
    /// What the drill does not restore, said plainly: owners and grants
    /// always, policies naming roles the scratch server lacks.
    pub skipped: Vec<String>,
    /// Scratch databases of earlier drills still on the server.
    pub leftovers: Vec<String>,
    /// The scratch database was dropped afterwards.
    pub dropped: bool,
}

/// The scratch databases of the drills in progress (one per drill; a
/// library caller may run several), for the signal handler.
static SCRATCH: Mutex<Vec<(PgConnection, String)>> = Mutex::new(Vec::new());

/// Cleans up every drill in `list` when the process is told to stop
/// (SIGTERM from `timeout` or systemd, SIGINT, SIGHUP), then exits as the
/// signal would have: a drill cut short never leaves its scratch behind.
/// The list is held while `clean` runs: each drill's own clean-up (and
/// another drill's handler) waits for it, then finds its entry gone.
pub(crate) fn watch_signals<T: Send + 'static>(
    list: &'static Mutex<Vec<T>>,
    clean: fn(T, i32),
) -> Result<signal_hook::iterator::Handle> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])
        .map_err(|e| Error::Internal(format!("cannot watch for signals: {e}")))?;
    let handle = signals.handle();
    std::thread::spawn(move || {
        if let Some(sig) = signals.forever().next() {
            if let Ok(mut active) = list.lock() {
                for entry in active.drain(..) {
                    clean(entry, sig);
                }
                std::process::exit(128 + sig);
            }
            std::process::exit(128 + sig);
        }
    });
    Ok(handle)
}

/// A dump drill's clean-up on a signal: its scratch database dropped.
fn drop_on_signal((conn, name): (PgConnection, String), sig: i32) {
    match conn.query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&name))) {
        Ok(_) => eprintln!("coffer: drill stopped by signal {sig}; scratch database {name} dropped"),
        Err(e) => eprintln!("coffer: drill stopped by signal {sig}; dropping {name} failed: {e}"),
    }
}

pub fn drill(repo: &Repository, snapshot: &Id, opts: &DrillOptions) -> Result<DrillReport> {
    let started = Instant::now();
    let manifest = repo.load_snapshot(snapshot)?;
    let dump = select_dumps(&manifest, opts.database.as_deref(), false, false)?[0];
    if dump.kind != DumpKind::Database {
        return Err(Error::Dump(DumpChoice::DrillOfGlobals));
    }
    let checks = parse_checks(opts.check_sql.as_deref())?;
    let scratch_name = format!("coffer_drill_{}", Id::random().short());
    let mut report = DrillReport {
        snapshot: snapshot.to_hex(),
        database: dump.name.clone(),
        scratch_database: scratch_name.clone(),
        bytes: dump.size,
        ..Default::default()
    };
    report.leftovers = opts
        .scratch
        .query_column("SELECT datname FROM pg_database WHERE datname LIKE 'coffer\\_drill\\_%' ORDER BY 1")?;

    let signals = watch_signals(&SCRATCH, drop_on_signal)?;
    if let Ok(mut g) = SCRATCH.lock() {
        g.push((opts.scratch.clone(), scratch_name.clone()));
    }
    let outcome = opts
        .scratch
        .query(&format!("CREATE DATABASE {}", quote_ident(&scratch_name)))
        .and_then(|_| run_phases(repo, snapshot, dump, opts, &checks, &scratch_name, &mut report));

    // Dropped whatever happened above (unless a signal is dropping it now).
    if !take_entry(&SCRATCH, |(_, name)| *name == scratch_name) {
        await_signal_exit();
    }
    let dropped = opts.scratch.query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(&scratch_name)));
    signals.close();
    report.dropped = dropped.is_ok();
    report.error = match (outcome, dropped) {
        (Err(e), _) => Some(e.to_string()),
        (Ok(()), Err(e)) => Some(format!("dropping scratch database {scratch_name}: {e}")),
        (Ok(()), Ok(_)) => verdict(&report),
    };
    report.passed = report.error.is_none();
    report.total_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Removes this drill's entry from a signal handler's list; false when the
/// handler took it (it is cleaning up, and will exit the process).
pub(crate) fn take_entry<T>(list: &Mutex<Vec<T>>, mine: impl Fn(&T) -> bool) -> bool {
    match list.lock() {
        Ok(mut g) => match g.iter().position(mine) {
            Some(i) => {
                g.remove(i);
                true
            }
            None => false,
        },
        // A handler that panicked holding it cleans up nothing: this drill does.
        Err(_) => true,
    }
}

/// Waits for the signal handler that took over the clean-up to finish it
/// and exit the process: returning would report (and exit with) the
/// failure the signal caused before the clean-up is done.
pub(crate) fn await_signal_exit() -> ! {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// The queries of a check file. One that yields no check is a mistake,
/// found before any work.
pub(crate) fn parse_checks(text: Option<&str>) -> Result<Vec<sql::Statement>> {
    let Some(text) = text else { return Ok(Vec::new()) };
    let st = sql::statements(text).map_err(|e| Error::CheckFile(e.to_string()))?;
    if st.is_empty() && !text.trim().is_empty() {
        return Err(Error::CheckFile("it holds no SQL statement (only comments or blanks)".into()));
    }
    Ok(st)
}

/// Runs each check (a query that must return true) on `target`.
pub(crate) fn run_checks(
    target: &PgConnection,
    checks: &[sql::Statement],
    progress: Option<&(dyn crate::ops::progress::Progress + Send)>,
) -> Vec<CheckResult> {
    let mut results = Vec::new();
    for st in checks {
        let (passed, output) = match target.query(&st.text) {
            Ok(o) => (o.trim() == "t", o.trim().to_string()),
            Err(e) => (false, e.to_string()),
        };
        results.push(CheckResult { query: st.text.clone(), line: st.line, passed, output });
        if let Some(p) = progress {
            p.item_done();
        }
    }
    results
}

/// Why a drill whose phases all ran still fails, if it does.
fn verdict(r: &DrillReport) -> Option<String> {
    if let Some(c) = r.checks.iter().find(|c| !c.passed) {
        return Some(format!("check failed at line {}: {} (returned {:?})", c.line, c.query, c.output));
    }
    if let Some(t) = r.tables.iter().find(|t| t.expected.is_some_and(|n| n != t.rows)) {
        return Some(format!(
            "table {}.{} has {} rows after the restore, the dump holds {}",
            t.schema,
            t.table,
            t.rows,
            t.expected.unwrap_or_default()
        ));
    }
    if r.tables.is_empty() && r.checks_run == 0 {
        return Some("nothing was checked: the dump holds no table and no --check-sql was given".into());
    }
    None
}

fn run_phases(
    repo: &Repository,
    snapshot: &Id,
    dump: &DumpSource,
    opts: &DrillOptions,
    checks: &[sql::Statement],
    scratch_name: &str,
    report: &mut DrillReport,
) -> Result<()> {
    // Download: fetch, decrypt, check, into a seekable file (pg_restore -j).
    let t = Instant::now();
    let index = repo.load_index()?;
    let archive = read_toc(repo, &index, snapshot, dump)?;
    let fetch = crate::ops::stream::Fetch::new(opts.workers, opts.progress.as_deref());
    let (tmp, _) = dump_to_temp_file(repo, &index, snapshot, dump, fetch)?;
    report.download_secs = t.elapsed().as_secs_f64();

    // Restore. Owners and grants are left out: the scratch server need not
    // have the production roles, and the drill is about the data. Policies
    // naming a role the scratch server lacks cannot be created: left out too.
    let t = Instant::now();
    if let Some(p) = &opts.progress {
        p.phase("pg_restore into the scratch database");
    }
    let roles = opts.scratch.query_column("SELECT rolname FROM pg_roles")?;
    let (ids, skipped) = restorable(&archive, &roles);
    report.skipped.push("owners and privileges (restored with --no-owner --no-privileges)".into());
    report.skipped.extend(skipped);
    let list = crate::ops::restore_pg::list_file(&ids)?;
    let target = opts.scratch.with_database(scratch_name);
    let mut cmd = target.tool_for_db("pg_restore");
    cmd.args(["--no-owner", "--no-privileges", "--exit-on-error"]);
    cmd.arg(format!("--use-list={}", list.path_for_others().display()));
    cmd.arg(format!("--jobs={}", opts.jobs.max(1))).arg(tmp.path_for_others());
    target.run(cmd, &format!("pg_restore into scratch database {scratch_name}"))?;
    report.restore_secs = t.elapsed().as_secs_f64();

    // Checks: every table's rows against the dump's; the operator's queries,
    // each within the check timeout (a query that never ends fails the drill).
    let t = Instant::now();
    let target =
        target.clone().with_timeouts(crate::pg::Timeouts { statement: Some(opts.check_timeout), ..target.timeouts() });
    let progress = opts.progress.as_deref();
    if let Some(p) = progress {
        // The row counts are one query; then each check.
        p.start("checks", 1 + checks.len() as u64, 0);
    }
    count_rows(dump, &target, report)?;
    if let Some(p) = progress {
        p.item_done();
    }
    report.checks = run_checks(&target, checks, progress);
    report.checks_run = report.checks.len();
    report.check_secs = t.elapsed().as_secs_f64();
    Ok(())
}

/// Every entry but policies that name roles missing on the scratch server
/// (and what depends on them), with a line for each left out.
fn restorable(archive: &Archive, roles: &[String]) -> (Vec<u32>, Vec<String>) {
    let mut skip = std::collections::HashSet::new();
    let mut said = Vec::new();
    for e in archive.entries.iter().filter(|e| e.desc == "POLICY") {
        let missing: Vec<String> = sql::policy_roles(&e.defn)
            .into_iter()
            .filter(|r| {
                !roles.contains(r) && !["public", "current_user", "session_user", "current_role"].contains(&r.as_str())
            })
            .collect();
        if !missing.is_empty() {
            skip.insert(e.id);
            said.push(format!(
                "policy {} in schema {}: role{} {} not on the scratch server",
                e.tag,
                e.namespace.as_deref().unwrap_or("-"),
                if missing.len() == 1 { "" } else { "s" },
                missing.join(", ")
            ));
        }
    }
    let ids = archive.entries.iter().filter(|e| !skip.contains(&e.id) && !e.deps.iter().any(|d| skip.contains(d)));
    (ids.map(|e| e.id).collect(), said)
}

/// The rows of each `(schema, table)` (`ONLY`: a partition's rows are its
/// own), in one query, in the order given: every table counted, or an error.
pub(crate) fn count_each(target: &PgConnection, tables: &[(String, String)]) -> Result<Vec<u64>> {
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let sql = tables
        .iter()
        .enumerate()
        .map(|(i, (s, n))| format!("SELECT {i}, count(*) FROM ONLY {}.{}", quote_ident(s), quote_ident(n)))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let out = target.query(&sql)?;
    let unexpected =
        |line: &str| Error::SourceFailed { source_name: "psql".into(), message: format!("unexpected output {line:?}") };
    let mut counts: Vec<Option<u64>> = vec![None; tables.len()];
    for line in out.lines().filter(|l| !l.is_empty()) {
        let (i, rows) = line.split_once('|').ok_or_else(|| unexpected(line))?;
        let i: usize = i.parse().map_err(|_| unexpected(line))?;
        let slot = counts.get_mut(i).ok_or_else(|| unexpected(line))?;
        *slot = Some(rows.trim().parse().map_err(|_| unexpected(line))?);
    }
    counts.into_iter().map(|c| c.ok_or_else(|| unexpected("(a table's count is missing)"))).collect()
}

/// Counts each restored table's rows (`ONLY`: a partition's rows are its
/// own entry) and sets what the dump holds beside it.
fn count_rows(dump: &DumpSource, target: &PgConnection, report: &mut DrillReport) -> Result<()> {
    let data: Vec<_> = dump.toc.iter().filter(|e| e.desc == "TABLE DATA").collect();
    // Snapshots taken before coffer counted rows: every table, no comparison.
    let tables: Vec<(String, String, Option<u64>)> = if data.iter().any(|e| e.rows.is_some()) {
        data.iter().map(|e| (e.schema.clone().unwrap_or_else(|| "public".into()), e.name.clone(), e.rows)).collect()
    } else {
        dump.toc
            .iter()
            .filter(|e| e.desc == "TABLE")
            .map(|e| (e.schema.clone().unwrap_or_else(|| "public".into()), e.name.clone(), None))
            .collect()
    };
    let names: Vec<(String, String)> = tables.iter().map(|(s, n, _)| (s.clone(), n.clone())).collect();
    for ((schema, table, expected), rows) in tables.into_iter().zip(count_each(target, &names)?) {
        report.tables.push(TableCount { schema, table, rows, expected });
    }
    report.tables_compared = report.tables.iter().filter(|t| t.expected.is_some()).count();
    Ok(())
}

//! `drill --pitr`: prove that a base backup and the archived WAL after it
//! bring the cluster back to a moment. Restore the base backup into a
//! scratch folder, start a throwaway server on it (the recovery settings
//! of `restore --pg-base`, archiving off), wait until recovery reached the
//! target and the server promoted, read every table of every database and
//! run the operator's checks, then stop the server and delete the folder
//! whatever happened (a SIGTERM or SIGINT included). Each phase is timed:
//! files, WAL replay, checks — the recovery-time figure.
//!
//! The scratch server listens on a Unix socket only, in a folder only its
//! user (and root) can enter, with `trust` authentication for that socket:
//! it holds production's data, so no TCP port is opened for it.

use crate::error::{Error, Result};
use crate::format::encoding::Id;
use crate::ops::drill::{count_each, parse_checks, run_checks, CheckResult};
use crate::ops::restore_base::{restore_base, BaseRestoreOptions, RecoveryTarget};
use crate::pg::{PgConnection, Timeouts};
use crate::repo::Repository;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct PitrDrillOptions {
    /// A folder in which the drill makes (and removes) its own.
    pub scratch_dir: PathBuf,
    /// Where recovery stops; the action is always promote (the checks
    /// need a server that answers, and nothing is archived from it).
    pub recovery: RecoveryTarget,
    /// The restore_command the scratch server runs (`coffer wal-fetch ...`).
    pub restore_command: String,
    /// Which base backup of the snapshot, when it holds several.
    pub stanza: Option<String>,
    /// The folder of the server binaries (`postgres`, `psql`); None: the
    /// base backup's major version under /usr/lib/postgresql, else PATH.
    pub server_bin_dir: Option<PathBuf>,
    /// The role the checks connect as (a superuser of the cluster).
    pub user: String,
    /// The database the check queries run in.
    pub database: String,
    pub check_sql: Option<String>,
    pub check_timeout: Duration,
    /// Longest the server may take to start and replay the WAL.
    pub replay_timeout: Duration,
    pub workers: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PitrTable {
    pub database: String,
    pub schema: String,
    pub table: String,
    pub rows: u64,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PitrDrillReport {
    pub snapshot: String,
    pub stanza: String,
    /// The recovery target, as the settings say it (None: the end of the WAL).
    pub target: Option<String>,
    pub passed: bool,
    pub error: Option<String>,
    pub files: u64,
    pub bytes: u64,
    pub files_secs: f64,
    pub replay_secs: f64,
    pub check_secs: f64,
    pub total_secs: f64,
    /// The server's own words on where recovery stopped ("recovery stopping
    /// before commit of transaction ...").
    pub recovery_stop: Option<String>,
    /// The time of the last transaction replayed.
    pub recovered_to: Option<String>,
    /// Every table of every database, read to the end.
    pub tables: Vec<PitrTable>,
    pub databases: Vec<String>,
    pub checks: Vec<CheckResult>,
    pub checks_run: usize,
    /// The scratch folder, and whether it is gone.
    pub scratch: PathBuf,
    pub cleaned_up: bool,
}

/// The server (pid, 0 until it runs) and folder of each drill in
/// progress, for the signal handler.
static ACTIVE: Mutex<Vec<(u32, PathBuf)>> = Mutex::new(Vec::new());

fn stop_server(pid: u32) {
    // Immediate shutdown: the cluster is thrown away.
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::QUIT);
    }
}

/// A PITR drill's clean-up on a signal: its server stopped, its folder removed.
fn remove_on_signal((pid, dir): (u32, PathBuf), sig: i32) {
    stop_server(pid);
    // The server's files go once it has let go of them.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dir.join("data/postmaster.pid").exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => eprintln!("coffer: drill stopped by signal {sig}; {} removed", dir.display()),
        Err(e) => eprintln!("coffer: drill stopped by signal {sig}; removing {}: {e}", dir.display()),
    }
}

pub fn drill_pitr(repo: &Repository, snapshot: &Id, opts: &PitrDrillOptions) -> Result<PitrDrillReport> {
    let started = Instant::now();
    let checks = parse_checks(opts.check_sql.as_deref())?;
    let bad_dir = |e: std::io::Error| Error::io(&opts.scratch_dir, e);
    let meta = std::fs::metadata(&opts.scratch_dir).map_err(bad_dir)?;
    if !meta.is_dir() {
        return Err(Error::Target { path: opts.scratch_dir.clone(), reason: "is not a folder".into() });
    }
    let dir = opts.scratch_dir.join(format!("coffer-pitr-{}", Id::random().short()));
    let mut report = PitrDrillReport { snapshot: snapshot.to_hex(), scratch: dir.clone(), ..Default::default() };
    std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
    let signals = crate::ops::drill::watch_signals(&ACTIVE, remove_on_signal)?;
    if let Ok(mut g) = ACTIVE.lock() {
        g.push((0, dir.clone()));
    }
    let mut server: Option<Child> = None;
    let outcome = run_phases(repo, snapshot, opts, &checks, &dir, &mut server, &mut report);

    // Stopped and removed whatever happened above (unless a signal handler is at it).
    if !crate::ops::drill::take_entry(&ACTIVE, |(_, d)| *d == dir) {
        crate::ops::drill::await_signal_exit();
    }
    if let Some(mut child) = server.take() {
        stop_server(child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let removed = std::fs::remove_dir_all(&dir);
    signals.close();
    report.cleaned_up = removed.is_ok() && !dir.exists();
    report.error = match (outcome, removed) {
        (Err(e), _) => Some(e.to_string()),
        (Ok(()), Err(e)) => Some(format!("removing the scratch folder {}: {e}", dir.display())),
        (Ok(()), Ok(())) => verdict(&report),
    };
    report.passed = report.error.is_none();
    report.total_secs = started.elapsed().as_secs_f64();
    Ok(report)
}

/// Why a drill whose phases all ran still fails, if it does.
fn verdict(r: &PitrDrillReport) -> Option<String> {
    if let Some(c) = r.checks.iter().find(|c| !c.passed) {
        return Some(format!("check failed at line {}: {} (returned {:?})", c.line, c.query, c.output));
    }
    if r.tables.is_empty() && r.checks_run == 0 {
        return Some("nothing was checked: the recovered cluster holds no table and no --check-sql was given".into());
    }
    None
}

fn run_phases(
    repo: &Repository,
    snapshot: &Id,
    opts: &PitrDrillOptions,
    checks: &[crate::pg::sql::Statement],
    dir: &Path,
    server: &mut Option<Child>,
    report: &mut PitrDrillReport,
) -> Result<()> {
    // Files: the base backup, with recovery settings that never archive.
    let t = Instant::now();
    let data = dir.join("data");
    let recovery = RecoveryTarget { action: Some("promote".into()), ..opts.recovery.clone() };
    let restored = restore_base(
        repo,
        snapshot,
        &BaseRestoreOptions {
            target: data.clone(),
            recovery,
            restore_command: opts.restore_command.clone(),
            stanza: opts.stanza.clone(),
            no_archive: true,
            dry_run: false,
            workers: opts.workers,
        },
    )?;
    report.stanza = restored.stanza.clone();
    report.files = restored.files;
    report.bytes = restored.bytes;
    report.target = restored
        .settings
        .iter()
        .find(|(k, _)| {
            k.starts_with("recovery_target_") && k != "recovery_target_action" && k != "recovery_target_timeline"
        })
        .map(|(k, v)| format!("{k} = {v}"));
    report.files_secs = t.elapsed().as_secs_f64();

    // Replay: a server of the base backup's major version, on a socket only.
    let t = Instant::now();
    let version =
        std::fs::read_to_string(data.join("PG_VERSION")).map_err(|e| Error::io(data.join("PG_VERSION"), e))?;
    let bin = server_bin_dir(opts.server_bin_dir.as_deref(), version.trim())?;
    let run = dir.join("run");
    std::fs::create_dir(&run).map_err(|e| Error::io(&run, e))?;
    let hba = run.join("pg_hba.conf");
    std::fs::write(&hba, "local all all trust\n").map_err(|e| Error::io(&hba, e))?;
    // A data directory whose postgresql.conf lives elsewhere (Debian) gets
    // an empty one: the server needs a file, the drill needs none of its settings.
    let conf = data.join("postgresql.conf");
    if !conf.exists() {
        std::fs::write(&conf, "# written by coffer drill --pitr\n").map_err(|e| Error::io(&conf, e))?;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let owner = std::fs::metadata(data.join("PG_VERSION")).map_err(|e| Error::io(&data, e))?;
    let (uid, gid) = (owner.uid(), owner.gid());
    for p in [dir, run.as_path(), hba.as_path(), conf.as_path()] {
        if crate::is_root() {
            std::os::unix::fs::chown(p, Some(uid), Some(gid)).map_err(|e| Error::io(p, e))?;
        }
    }
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).map_err(|e| Error::io(&run, e))?;
    let port = free_port()?;
    let log_path = dir.join("server.log");
    let log = std::fs::File::create(&log_path).map_err(|e| Error::io(&log_path, e))?;
    let log_err = log.try_clone().map_err(|e| Error::io(&log_path, e))?;
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D").arg(&data);
    let run_s = run.to_string_lossy().into_owned();
    let hba_s = hba.to_string_lossy().into_owned();
    for setting in [
        format!("port={port}"),
        "listen_addresses=".into(),
        format!("unix_socket_directories={run_s}"),
        format!("hba_file={hba_s}"),
        "archive_mode=off".into(),
        "recovery_target_action=promote".into(),
        "hot_standby=on".into(),
        "ssl=off".into(),
        "logging_collector=off".into(),
        "log_destination=stderr".into(),
    ] {
        cmd.arg("-c").arg(setting);
    }
    // Nothing of coffer's environment (secrets) reaches the server and the
    // restore_command it runs: that command names its own key file.
    cmd.env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin").env("LC_ALL", "C");
    cmd.stdin(Stdio::null()).stdout(log).stderr(log_err).current_dir(&run);
    if crate::is_root() {
        use std::os::unix::process::CommandExt;
        cmd.uid(uid).gid(gid);
    }
    // Spawned and recorded under the lock the signal handler cleans up
    // under: a signal meanwhile waits for the pid, then stops the server.
    let mut active = ACTIVE.lock().map_err(|_| Error::Internal("the drills' clean-up list is poisoned".into()))?;
    let Some(slot) = active.iter_mut().find(|(_, d)| d == dir) else {
        return Err(Error::Internal("the drill was stopped by a signal before its server started".into()));
    };
    let child = cmd.spawn().map_err(|e| Error::SourceFailed {
        source_name: bin.join("postgres").display().to_string(),
        message: format!("cannot start the scratch server: {e}"),
    })?;
    slot.0 = child.id();
    drop(active);
    let child = server.insert(child);
    let url = format!(
        "postgresql:///{}?host={}&port={port}&user={}",
        percent_encoding::utf8_percent_encode(&opts.database, percent_encoding::NON_ALPHANUMERIC),
        percent_encoding::utf8_percent_encode(&run_s, percent_encoding::NON_ALPHANUMERIC),
        percent_encoding::utf8_percent_encode(&opts.user, percent_encoding::NON_ALPHANUMERIC),
    );
    let conn = PgConnection::new(Some(&url), Some(bin.clone()))?.with_timeouts(Timeouts {
        connect: Duration::from_secs(5),
        statement: Some(opts.check_timeout),
        ..Timeouts::default()
    });
    wait_promoted(child, &conn, &log_path, opts.replay_timeout)?;
    let server_log = std::fs::read_to_string(&log_path).unwrap_or_default();
    report.recovery_stop =
        server_log.lines().find(|l| l.contains("recovery stopping")).map(|l| after_level(l).to_string());
    let last = conn.query("SELECT pg_last_xact_replay_timestamp()")?;
    report.recovered_to = Some(last.trim().to_string()).filter(|t| !t.is_empty());
    report.replay_secs = t.elapsed().as_secs_f64();

    // Checks: every table of every database read to its end; the operator's queries.
    let t = Instant::now();
    report.databases =
        conn.query_column("SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1")?;
    for db in report.databases.clone() {
        count_tables(&conn.with_database(&db), &db, report)?;
    }
    report.checks = run_checks(&conn, checks, None);
    report.checks_run = report.checks.len();
    report.check_secs = t.elapsed().as_secs_f64();
    Ok(())
}

/// Counts the rows of every user table of `db` (reading each to its end).
fn count_tables(conn: &PgConnection, db: &str, report: &mut PitrDrillReport) -> Result<()> {
    let tables = conn.query(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
         AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2",
    )?;
    let tables: Vec<(String, String)> =
        tables.lines().filter_map(|l| l.split_once('|')).map(|(s, t)| (s.to_string(), t.to_string())).collect();
    for ((schema, table), rows) in tables.iter().cloned().zip(count_each(conn, &tables)?) {
        report.tables.push(PitrTable { database: db.to_string(), schema, table, rows });
    }
    Ok(())
}

/// Waits until the server answers and has left recovery; fails when it
/// stops (recovery failed: its log says why) or the time is up.
fn wait_promoted(child: &mut Child, conn: &PgConnection, log: &Path, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    let failed = |what: String| {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        let reason: Vec<&str> =
            text.lines().filter(|l| l.contains("FATAL") || l.contains("PANIC")).map(after_level).collect();
        let reason = match reason.as_slice() {
            [] => text.lines().rev().take(3).collect::<Vec<_>>().join(" / "),
            r => r.join(" / "),
        };
        Error::SourceFailed { source_name: "the scratch server".into(), message: format!("{what}: {reason}") }
    };
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(failed(format!("stopped during recovery ({status})")));
        }
        if let Ok(out) = conn.query("SELECT pg_is_in_recovery()") {
            if out.trim() == "f" {
                return Ok(());
            }
        }
        if Instant::now() >= deadline {
            return Err(failed(format!(
                "recovery did not finish within --replay-timeout {}",
                humantime::format_duration(timeout)
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A server log line from its message on ("FATAL:  recovery ended ...").
fn after_level(line: &str) -> &str {
    ["FATAL:", "PANIC:", "LOG:", "ERROR:"]
        .iter()
        .find_map(|lvl| line.find(lvl).map(|i| line[i..].trim()))
        .unwrap_or(line.trim())
}

/// The folder holding `postgres` for this major version.
fn server_bin_dir(given: Option<&Path>, version: &str) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = match given {
        Some(d) => vec![d.to_path_buf()],
        None => {
            let mut c = vec![PathBuf::from(format!("/usr/lib/postgresql/{version}/bin"))];
            if let Some(path) = std::env::var_os("PATH") {
                c.extend(std::env::split_paths(&path));
            }
            c
        }
    };
    candidates.into_iter().find(|d| d.join("postgres").is_file()).ok_or_else(|| {
        Error::InvalidOptions(format!(
            "no PostgreSQL {version} server binary (postgres) {}: give --pg-bin-dir, the folder holding postgres and psql",
            match given {
                Some(d) => format!("in {}", d.display()),
                None => format!("in /usr/lib/postgresql/{version}/bin or PATH"),
            }
        ))
    })
}

/// A port number for the socket's name; nothing listens on it over TCP.
fn free_port() -> Result<u16> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| Error::Internal(format!("cannot pick a port for the scratch server: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_line_is_read_from_its_level_on() {
        assert_eq!(
            after_level(
                "2026-12-03 10:00:00 UTC [12] FATAL:  recovery ended before configured recovery target was reached"
            ),
            "FATAL:  recovery ended before configured recovery target was reached"
        );
        assert_eq!(after_level("plain"), "plain");
    }

    #[test]
    fn a_missing_server_binary_names_the_folder_tried() {
        let d = tempfile::tempdir().unwrap();
        let e = server_bin_dir(Some(d.path()), "15").unwrap_err().to_string();
        assert!(e.contains(&d.path().display().to_string()) && e.contains("--pg-bin-dir"), "{e}");
    }
}

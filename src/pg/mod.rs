//! PostgreSQL client tools: connection settings, and running pg_dump,
//! pg_dumpall, pg_restore and psql.
//!
//! SECURITY: a password in a connection URL is taken out of the URL and
//! handed to the tools as PGPASSWORD in their environment: it never appears
//! on a command line (visible in `ps`), in a manifest or in an error. The
//! tools run with `-w` (never prompt), so a cron job cannot hang on a prompt.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use zeroize::Zeroizing;

pub mod archive;
pub mod base;
pub mod select;
pub mod sql;
pub mod tool;
pub mod wal;

pub use tool::{Running, TocLister};

#[derive(Clone)]
pub struct PgConnection {
    /// Without its password. None: the libpq environment alone (PGHOST, ...).
    url: Option<url::Url>,
    password: Option<Zeroizing<String>>,
    /// The database when there is no URL (`with_database` on the libpq environment).
    env_database: Option<String>,
    bin_dir: Option<PathBuf>,
    timeouts: Timeouts,
    /// A physical replication connection (`replication=true`): base backups.
    replication: bool,
}

/// Bounds on waits for a server: nothing waits forever.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting (libpq's connect_timeout), unless the URL or PGCONNECT_TIMEOUT sets one.
    pub connect: std::time::Duration,
    /// pg_dump's wait for each table's lock (`--lock-wait-timeout`): a table
    /// held by an ACCESS EXCLUSIVE lock fails the dump instead of stalling it.
    pub lock_wait: std::time::Duration,
    /// Longest a single statement may run (the server's statement_timeout),
    /// for sessions that run the operator's queries (drill checks); none
    /// for dumps and restores, whose statements take as long as the data.
    pub statement: Option<std::time::Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: std::time::Duration::from_secs(30),
            lock_wait: std::time::Duration::from_secs(300),
            statement: None,
        }
    }
}

/// Bounds the lock waits of a tool whose own settings cannot (pg_restore
/// resets lock_timeout to 0 from the archive's preamble): its sessions carry
/// `app` as application_name, and every second those waiting for a lock for
/// longer than the connection's lock wait timeout are cancelled (PostgreSQL
/// 14 and later: `pg_locks.waitstart`). Stops when dropped.
pub struct LockWatch {
    pub app: String,
    limit: std::time::Duration,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    fired: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl LockWatch {
    pub fn start(conn: &PgConnection) -> LockWatch {
        use std::sync::atomic::Ordering;
        let app = format!("coffer-{:016x}", rand::random::<u64>());
        let limit = conn.timeouts.lock_wait;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let fired = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let sql = format!(
            "SELECT pg_cancel_backend(l.pid) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
             WHERE NOT l.granted AND a.application_name = '{app}' AND l.waitstart < now() - interval '{} milliseconds'",
            limit.as_millis()
        );
        let (conn, stop_flag, fired_flag) = (conn.clone(), stop.clone(), fired.clone());
        let handle = std::thread::spawn(move || {
            while !stop_flag.load(Ordering::Relaxed) {
                for _ in 0..10 {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    if stop_flag.load(Ordering::Relaxed) {
                        return;
                    }
                }
                // A failed poll (an older server, a connection limit) changes nothing.
                if conn.query(&sql).is_ok_and(|out| out.contains('t')) {
                    fired_flag.store(true, Ordering::Relaxed);
                }
            }
        });
        LockWatch { app, limit, stop, fired, handle: Some(handle) }
    }

    /// Stops watching, and gives the tool's error, saying so when this
    /// watch stopped a lock wait (a poll still running is waited for: the
    /// tool may exit before the poll that cancelled it returns).
    pub fn finish<T>(mut self, result: Result<T>) -> Result<T> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        result.map_err(|e| self.explain(e))
    }

    fn explain(&self, e: Error) -> Error {
        if !self.fired.load(std::sync::atomic::Ordering::Relaxed) {
            return e;
        }
        let wait = humantime::format_duration(self.limit);
        match e {
            Error::SourceFailed { source_name, message } => Error::SourceFailed {
                source_name,
                message: format!("{message}; it waited for a table locked longer than the lock wait timeout of {wait}"),
            },
            other => other,
        }
    }
}

impl Drop for LockWatch {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// PGOPTIONS for a tool: the caller's, plus a lock_timeout (psql sessions:
/// globals, queries, drill checks) and a statement_timeout where asked, each
/// unless the caller's PGOPTIONS sets it already. (pg_restore resets both to
/// 0 from the archive's preamble: its lock waits are not bounded this way.)
fn session_options(existing: Option<&str>, timeouts: &Timeouts) -> String {
    let mut options = existing.unwrap_or_default().to_string();
    let mut add = |name: &str, d: std::time::Duration| {
        if !options.contains(name) {
            options = format!("{options} -c {name}={}", d.as_millis().max(1)).trim_start().to_string();
        }
    };
    add("lock_timeout", timeouts.lock_wait);
    if let Some(d) = timeouts.statement {
        add("statement_timeout", d);
    }
    options
}

/// Connection parameters that carry a secret libpq can take only as a
/// parameter (on a command line, visible in `ps`): refused in a URL.
const SECRET_PARAMETERS: &[&str] = &["sslpassword"];

impl PgConnection {
    /// `url`: `postgres://user[:password]@host:port/db?params`, or None for
    /// the libpq environment. `bin_dir`: where pg_dump & co. live (else PATH).
    pub fn new(url: Option<&str>, bin_dir: Option<PathBuf>) -> Result<PgConnection> {
        let url = match url.filter(|u| !u.is_empty()) {
            None => None,
            Some(u) => {
                // The error must not echo the URL: it may hold a password.
                let mut parsed = url::Url::parse(u)
                    .map_err(|e| Error::InvalidOptions(format!("PostgreSQL URL is not a valid URL: {e}")))?;
                if !matches!(parsed.scheme(), "postgres" | "postgresql") {
                    return Err(Error::InvalidOptions(format!(
                        "PostgreSQL URL must start with postgres:// or postgresql://, not {}://",
                        parsed.scheme()
                    )));
                }
                let mut password = parsed
                    .password()
                    .map(|p| Zeroizing::new(percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned()));
                let _ = parsed.set_password(None);
                // `?password=` goes the way of `user:password@`: into PGPASSWORD.
                // (libpq lets the query parameter win over the user info.)
                let mut kept: Vec<(String, String)> = Vec::new();
                for (k, v) in parsed.query_pairs() {
                    if k == "password" {
                        password = Some(Zeroizing::new(v.into_owned()));
                    } else if SECRET_PARAMETERS.contains(&k.as_ref()) {
                        return Err(Error::InvalidOptions(format!(
                            "PostgreSQL URL: the {k} parameter would be visible on pg_dump's command line; \
                             put it in a service file (PGSERVICEFILE) instead"
                        )));
                    } else {
                        kept.push((k.into_owned(), v.into_owned()));
                    }
                }
                if kept.is_empty() {
                    parsed.set_query(None);
                } else {
                    parsed.query_pairs_mut().clear().extend_pairs(kept);
                }
                Some((parsed, password))
            }
        };
        Ok(match url {
            Some((u, password)) => PgConnection {
                url: Some(u),
                password,
                env_database: None,
                bin_dir,
                timeouts: Timeouts::default(),
                replication: false,
            },
            None => PgConnection {
                url: None,
                password: None,
                env_database: None,
                bin_dir,
                timeouts: Timeouts::default(),
                replication: false,
            },
        })
    }

    pub fn with_timeouts(mut self, timeouts: Timeouts) -> PgConnection {
        self.timeouts = timeouts;
        self
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    pub fn has_password(&self) -> bool {
        self.password.is_some()
    }

    /// For messages and manifests: never holds the password.
    pub fn display(&self) -> String {
        match &self.url {
            Some(u) => u.to_string(),
            None => "(libpq environment)".into(),
        }
    }

    /// The database this connection names: `with_database`'s, the URL's
    /// (percent-decoded, as libpq reads it), or PGDATABASE's.
    pub fn database(&self) -> Option<String> {
        match &self.url {
            Some(u) => Some(percent_encoding::percent_decode_str(u.path().trim_start_matches('/')))
                .map(|d| d.decode_utf8_lossy().into_owned())
                .filter(|d| !d.is_empty()),
            None => self.env_database.clone(),
        }
        .or_else(|| std::env::var("PGDATABASE").ok().filter(|d| !d.is_empty()))
    }

    /// The same server, another database.
    pub fn with_database(&self, db: &str) -> PgConnection {
        let mut c = self.clone();
        match &mut c.url {
            Some(u) => u.set_path(&format!("/{}", url_escape(db))),
            // libpq environment: pass the database by name alone.
            None => c.env_database = Some(db.to_string()),
        }
        c
    }

    /// The same server through a physical replication connection, as
    /// pg_basebackup makes (for IDENTIFY_SYSTEM and SHOW).
    pub fn replication(&self) -> PgConnection {
        PgConnection { replication: true, ..self.clone() }
    }

    /// The value of `--dbname` for the tools, or None to let libpq decide.
    /// A bare name is passed as a connection string (`dbname='...'`): libpq
    /// would take a name holding `=`, or one starting with `postgres://`, for one.
    fn dbname(&self) -> Option<String> {
        match (&self.url, self.replication) {
            (Some(u), false) => Some(u.to_string()),
            (Some(u), true) => {
                let mut u = u.clone();
                u.query_pairs_mut().append_pair("replication", "true");
                Some(u.to_string())
            }
            (None, false) => self.env_database.as_ref().map(|d| format!("dbname={}", conninfo_quote(d))),
            (None, true) => Some("replication=true".into()),
        }
    }

    fn program(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        }
    }

    /// The error for a tool that could not be started, naming the path tried.
    pub fn cannot_run(&self, program: &std::ffi::OsStr, e: std::io::Error) -> Error {
        let program = std::path::Path::new(program);
        let name = program.file_name().unwrap_or(program.as_os_str()).to_string_lossy().into_owned();
        let place = match &self.bin_dir {
            Some(_) => format!("{} (from the PostgreSQL bin directory set)", program.display()),
            None => format!("{name} (searched in PATH)"),
        };
        Error::SourceFailed { source_name: name, message: format!("cannot run {place}: {e}") }
    }

    pub fn tool(&self, name: &str) -> Command {
        let mut c = Command::new(self.program(name));
        // Nothing of coffer's own: its secrets, and settings no tool reads.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("COFFER_") {
                c.env_remove(k);
            }
        }
        crate::hide_secrets_from(&mut c);
        if let Some(p) = &self.password {
            c.env("PGPASSWORD", p.as_str());
        }
        let url_sets_it = self.url.as_ref().is_some_and(|u| u.query_pairs().any(|(k, _)| k == "connect_timeout"));
        if !url_sets_it && std::env::var_os("PGCONNECT_TIMEOUT").is_none() {
            c.env("PGCONNECT_TIMEOUT", self.timeouts.connect.as_secs().max(2).to_string());
        }
        let existing = std::env::var("PGOPTIONS").ok();
        c.env("PGOPTIONS", session_options(existing.as_deref(), &self.timeouts));
        c.stdin(Stdio::null());
        c
    }

    /// A tool with `-w` and `--dbname` set.
    pub fn tool_for_db(&self, name: &str) -> Command {
        let mut c = self.tool(name);
        c.arg("-w");
        if let Some(db) = self.dbname() {
            c.arg(format!("--dbname={db}"));
        }
        c
    }

    /// Runs one SQL command with psql; returns its unaligned, tuples-only output.
    pub fn query(&self, sql: &str) -> Result<String> {
        let mut c = self.tool_for_db("psql");
        c.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        self.run(c, &format!("psql on {}", self.display()))
    }

    /// A one-column query's values, exactly (a value may hold a newline).
    pub fn query_column(&self, sql: &str) -> Result<Vec<String>> {
        let mut c = self.tool_for_db("psql");
        c.args(["-X", "-A", "-t", "-q", "-0", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        let out = self.run(c, &format!("psql on {}", self.display()))?;
        Ok(out.split('\0').filter(|v| !v.is_empty()).map(str::to_string).collect())
    }

    /// Every database a backup of the whole cluster includes.
    pub fn list_databases(&self) -> Result<Vec<String>> {
        self.query_column("SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname")
    }

    pub fn server_version(&self) -> Result<String> {
        Ok(self.query("SHOW server_version")?.trim().to_string())
    }

    pub fn tool_version(&self, name: &str) -> Result<String> {
        let mut c = self.tool(name);
        c.arg("--version");
        Ok(self.run(c, name)?.trim().to_string())
    }
}

/// A value in a libpq connection string: single-quoted, `\\` and `'` escaped.
fn conninfo_quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn url_escape(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// An SQL identifier, quoted.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// An SQL string literal, quoted.
pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// An object of a database dump, from the archive's table of contents
/// (`archive::Entry` without its SQL), as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TocEntry {
    /// The archive's dump id.
    pub id: u32,
    /// SCHEMA, TABLE, TABLE DATA, SEQUENCE SET, FUNCTION, ...
    pub desc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub name: String,
    pub owner: String,
    /// Dump ids this entry depends on (absent in snapshots before coffer read archives itself).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<u32>,
    /// A TABLE DATA entry's rows, counted in the archive (absent: not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// A TABLE DATA entry's COPY text in bytes, what restoring it sends
    /// the server (absent: not counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
}

impl TocEntry {
    /// `rows` and `bytes`: its data's, where the archive's reader counted them.
    pub fn from_archive(e: &archive::Entry, rows: Option<u64>, bytes: Option<u64>) -> TocEntry {
        TocEntry {
            id: e.id,
            desc: e.desc.clone(),
            schema: e.namespace.clone(),
            name: e.tag.clone(),
            owner: e.owner.clone().unwrap_or_default(),
            deps: e.deps.clone(),
            rows,
            bytes,
        }
    }
}

/// The manifest's record of an archive: versions and entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Toc {
    pub server_version: String,
    pub pg_dump_version: String,
    pub entries: Vec<TocEntry>,
}

impl Toc {
    pub fn of(a: &archive::Archive) -> Toc {
        Toc {
            server_version: a.header.server_version.clone(),
            pg_dump_version: a.header.pg_dump_version.clone(),
            entries: a
                .entries
                .iter()
                .map(|e| TocEntry::from_archive(e, a.rows.get(&e.id).copied(), a.data_bytes.get(&e.id).copied()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_leave_the_url() {
        let c = PgConnection::new(Some("postgres://alice:s%40cret@db.example:5433/app?sslmode=require"), None).unwrap();
        assert_eq!(c.display(), "postgres://alice@db.example:5433/app?sslmode=require");
        assert_eq!(c.password.as_deref().map(|s| s.as_str()), Some("s@cret"));
        assert_eq!(c.database().as_deref(), Some("app"));
        let other = c.with_database("other db");
        assert_eq!(other.display(), "postgres://alice@db.example:5433/other%20db?sslmode=require");
        let err = PgConnection::new(Some("mysql://root:hunter2@x/y"), None).err().unwrap().to_string();
        assert!(!err.contains("hunter2"));
    }
}

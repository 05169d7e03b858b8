//! PostgreSQL client tools: connection settings, and running pg_dump,
//! pg_dumpall, pg_restore and psql.
//!
//! SECURITY: a password in a connection URL is taken out of the URL and
//! handed to the tools as PGPASSWORD in their environment: it never appears
//! on a command line (visible in `ps`), in a manifest or in an error. The
//! tools run with `-w` (never prompt), so a cron job cannot hang on a prompt.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use zeroize::Zeroizing;

#[derive(Clone)]
pub struct PgConnection {
    /// Without its password. None: the libpq environment alone (PGHOST, ...).
    url: Option<url::Url>,
    password: Option<Zeroizing<String>>,
    /// The database when there is no URL (`with_database` on the libpq environment).
    env_database: Option<String>,
    bin_dir: Option<PathBuf>,
}

impl PgConnection {
    /// `url`: `postgres://user[:password]@host:port/db?params`, or None for
    /// the libpq environment. `bin_dir`: where pg_dump & co. live (else PATH).
    pub fn new(url: Option<&str>, bin_dir: Option<PathBuf>) -> Result<PgConnection> {
        let url = match url.filter(|u| !u.is_empty()) {
            None => None,
            Some(u) => {
                // The error must not echo the URL: it may hold a password.
                let mut parsed = url::Url::parse(u)
                    .map_err(|e| Error::InvalidInput(format!("PostgreSQL URL is not a valid URL: {e}")))?;
                if !matches!(parsed.scheme(), "postgres" | "postgresql") {
                    return Err(Error::InvalidInput(format!(
                        "PostgreSQL URL must start with postgres:// or postgresql://, not {}://",
                        parsed.scheme()
                    )));
                }
                let password = parsed
                    .password()
                    .map(|p| Zeroizing::new(percent_encoding::percent_decode_str(p).decode_utf8_lossy().into_owned()));
                let _ = parsed.set_password(None);
                Some((parsed, password))
            }
        };
        Ok(match url {
            Some((u, password)) => PgConnection { url: Some(u), password, env_database: None, bin_dir },
            None => PgConnection { url: None, password: None, env_database: None, bin_dir },
        })
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

    /// The database named by the URL (or PGDATABASE), if any.
    pub fn database(&self) -> Option<String> {
        self.url
            .as_ref()
            .map(|u| u.path().trim_start_matches('/').to_string())
            .filter(|d| !d.is_empty())
            .or_else(|| std::env::var("PGDATABASE").ok())
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

    /// The value of `--dbname` for the tools, or None to let libpq decide.
    fn dbname(&self) -> Option<String> {
        match &self.url {
            Some(u) => Some(u.to_string()),
            None => self.env_database.clone(),
        }
    }

    pub fn tool(&self, name: &str) -> Command {
        let program = match &self.bin_dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        };
        let mut c = Command::new(program);
        if let Some(p) = &self.password {
            c.env("PGPASSWORD", p.as_str());
        }
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
        let out = run_captured(c, "psql")?;
        Ok(out)
    }

    /// Every database a backup of the whole cluster includes.
    pub fn list_databases(&self) -> Result<Vec<String>> {
        let out =
            self.query("SELECT datname FROM pg_database WHERE NOT datistemplate AND datallowconn ORDER BY datname")?;
        Ok(out.lines().map(str::to_string).filter(|l| !l.is_empty()).collect())
    }

    pub fn server_version(&self) -> Result<String> {
        Ok(self.query("SHOW server_version")?.trim().to_string())
    }

    pub fn tool_version(&self, name: &str) -> Result<String> {
        let mut c = self.tool(name);
        c.arg("--version");
        Ok(run_captured(c, name)?.trim().to_string())
    }
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

/// Runs a command to completion; stdout on success, stderr in the error.
pub fn run_captured(mut c: Command, what: &str) -> Result<String> {
    let out = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::SourceFailed { source_name: what.into(), message: format!("cannot run: {e}") })?;
    if !out.status.success() {
        return Err(Error::SourceFailed {
            source_name: what.into(),
            message: tail(&String::from_utf8_lossy(&out.stderr), out.status),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The useful end of a tool's stderr, on one line, with how it exited.
pub fn tail(stderr: &str, status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    // The tools' error lines say what went wrong; the SQL context after
    // them does not. Fall back to the last lines.
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("error:") || l.contains("ERROR:") || l.contains("FATAL:"))
        .take(2)
        .collect();
    let text = if errors.is_empty() { lines[lines.len().saturating_sub(3)..].join(" / ") } else { errors.join(" / ") };
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    };
    if text.is_empty() {
        how
    } else {
        format!("{text} ({how})")
    }
}

/// Collects a child's stderr on a thread (so a full pipe never blocks it).
pub struct StderrCollector(Option<std::thread::JoinHandle<String>>);

impl StderrCollector {
    pub fn start(child: &mut Child) -> StderrCollector {
        let handle = child.stderr.take().map(|mut err| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                // Keep at most 1 MiB: enough for any error message.
                let _ = (&mut err).take(1 << 20).read_to_end(&mut buf);
                let _ = std::io::copy(&mut err, &mut std::io::sink());
                String::from_utf8_lossy(&buf).into_owned()
            })
        });
        StderrCollector(handle)
    }

    pub fn finish(self) -> String {
        self.0.and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

/// `pg_restore --list` fed a stream as it goes by: it reads the archive's
/// head (the table of contents) and may exit before the stream ends, which
/// only ends the feeding. Proves the stream parses as an archive.
pub struct TocLister {
    child: Child,
    stdin: Option<ChildStdin>,
    out: Option<std::thread::JoinHandle<String>>,
    err: StderrCollector,
}

impl TocLister {
    /// `filters`: pg_restore selection flags (`--schema=S`, `--table=T`).
    pub fn start(conn: &PgConnection, filters: &[String]) -> Result<TocLister> {
        let mut child = conn
            .tool("pg_restore")
            .arg("--list")
            .args(filters)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::SourceFailed {
                source_name: "pg_restore --list".into(),
                message: format!("cannot run: {e}"),
            })?;
        let stdin = child.stdin.take();
        // Read its output on a thread: a long listing must not block it.
        let out = child.stdout.take().map(|mut o| {
            std::thread::spawn(move || {
                let mut s = String::new();
                let _ = o.read_to_string(&mut s);
                s
            })
        });
        let err = StderrCollector::start(&mut child);
        Ok(TocLister { child, stdin, out, err })
    }

    pub fn feed(&mut self, data: &[u8]) {
        if let Some(s) = self.stdin.as_mut() {
            if data.is_empty() || s.write_all(data).is_err() {
                self.stdin = None;
            }
        }
    }

    /// Ends the stream and returns the listing; `what` names the dump in errors.
    pub fn finish(mut self, what: &str) -> Result<Toc> {
        drop(self.stdin.take());
        let status =
            self.child.wait().map_err(|e| Error::SourceFailed { source_name: what.into(), message: e.to_string() })?;
        let listing = self.out.take().and_then(|h| h.join().ok()).unwrap_or_default();
        let err_text = self.err.finish();
        if !status.success() {
            return Err(Error::SourceFailed {
                source_name: what.into(),
                message: format!("the dump does not parse as an archive: {}", tail(&err_text, status)),
            });
        }
        Ok(parse_toc(&listing))
    }

    /// Stops it without waiting for the stream's end.
    pub fn abort(mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One line of `pg_restore --list`: an object in the archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TocEntry {
    pub id: u32,
    /// SCHEMA, TABLE, TABLE DATA, SEQUENCE SET, FUNCTION, ...
    pub desc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    pub name: String,
    pub owner: String,
}

/// What `pg_restore --list` says of an archive.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toc {
    pub server_version: String,
    pub pg_dump_version: String,
    pub entries: Vec<TocEntry>,
}

/// Object kinds whose names are more than one word; the longest match wins.
const MULTI_WORD_DESCS: &[&str] = &[
    "MATERIALIZED VIEW DATA",
    "SEQUENCE OWNED BY",
    "TEXT SEARCH CONFIGURATION",
    "TEXT SEARCH DICTIONARY",
    "TEXT SEARCH PARSER",
    "TEXT SEARCH TEMPLATE",
    "FOREIGN DATA WRAPPER",
    "MATERIALIZED VIEW",
    "PUBLICATION TABLE",
    "PUBLICATION TABLES IN SCHEMA",
    "CHECK CONSTRAINT",
    "DEFAULT ACL",
    "EVENT TRIGGER",
    "FK CONSTRAINT",
    "FOREIGN TABLE",
    "INDEX ATTACH",
    "LARGE OBJECT",
    "ROW SECURITY",
    "SEQUENCE SET",
    "TABLE ATTACH",
    "TABLE DATA",
    "USER MAPPING",
    "ACCESS METHOD",
    "OPERATOR CLASS",
    "OPERATOR FAMILY",
    "SHELL TYPE",
    "DATABASE PROPERTIES",
];

/// Parses `pg_restore --list` output.
pub fn parse_toc(listing: &str) -> Toc {
    let mut toc = Toc::default();
    for line in listing.lines() {
        if let Some(rest) = line.strip_prefix(";     Dumped from database version: ") {
            toc.server_version = rest.trim().to_string();
        } else if let Some(rest) = line.strip_prefix(";     Dumped by pg_dump version: ") {
            toc.pg_dump_version = rest.trim().to_string();
        } else if let Some(e) = parse_toc_line(line) {
            toc.entries.push(e);
        }
    }
    toc
}

fn parse_toc_line(line: &str) -> Option<TocEntry> {
    if line.starts_with(';') || line.trim().is_empty() {
        return None;
    }
    let (id, rest) = line.split_once("; ")?;
    let id: u32 = id.trim().parse().ok()?;
    // "<tableoid> <oid> <desc> <schema> <tag...> <owner>"
    let mut parts = rest.splitn(3, ' ');
    let _tableoid = parts.next()?;
    let _oid = parts.next()?;
    let rest = parts.next()?;
    let desc = MULTI_WORD_DESCS
        .iter()
        .filter(|d| rest.starts_with(*d) && rest[d.len()..].starts_with(' '))
        .max_by_key(|d| d.len())
        .map(|d| d.to_string())
        .unwrap_or_else(|| rest.split(' ').next().unwrap_or_default().to_string());
    let rest = rest[desc.len()..].trim_start();
    let (schema, rest) = rest.split_once(' ')?;
    let (name, owner) = rest.rsplit_once(' ').unwrap_or((rest, ""));
    Some(TocEntry {
        id,
        desc,
        schema: (schema != "-").then(|| schema.to_string()),
        name: name.to_string(),
        owner: owner.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = ";
; Archive created at 2026-11-23 11:04:32 UTC
;     dbname: t1
;     Dumped from database version: 15.18 (Debian 15.18-0+deb12u1)
;     Dumped by pg_dump version: 15.18 (Debian 15.18-0+deb12u1)
;
; Selected TOC Entries:
;
6; 2615 16407 SCHEMA - s2 postgres
217; 1259 16391 TABLE public pgbench_accounts postgres
3363; 0 16391 TABLE DATA public pgbench_accounts postgres
3216; 2606 16406 CONSTRAINT public pgbench_accounts pgbench_accounts_pkey postgres
230; 1255 16500 FUNCTION app add(integer, integer) alice
3400; 0 0 SEQUENCE SET app order_seq bob
3500; 2613 16600 LARGE OBJECT - 16600 postgres
";

    #[test]
    fn toc_listing_parses() {
        let toc = parse_toc(LISTING);
        assert_eq!(toc.server_version, "15.18 (Debian 15.18-0+deb12u1)");
        assert_eq!(toc.entries.len(), 7);
        let e = &toc.entries;
        assert_eq!((e[0].desc.as_str(), e[0].schema.as_deref(), e[0].name.as_str()), ("SCHEMA", None, "s2"));
        assert_eq!((e[2].desc.as_str(), e[2].name.as_str()), ("TABLE DATA", "pgbench_accounts"));
        assert_eq!(e[3].name, "pgbench_accounts pgbench_accounts_pkey");
        assert_eq!((e[4].name.as_str(), e[4].owner.as_str()), ("add(integer, integer)", "alice"));
        assert_eq!((e[5].desc.as_str(), e[5].schema.as_deref()), ("SEQUENCE SET", Some("app")));
        assert_eq!(e[6].desc, "LARGE OBJECT");
    }

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

//! Throwaway PostgreSQL clusters for tests: initdb into a temp dir, our own
//! port on 127.0.0.1, run as the `postgres` user when the tests run as root.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub const PG_PASSWORD: &str = "pg-test-secret";

/// Where initdb & co. are: COFFER_TEST_PG_BIN, Debian's layout, or PATH.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("COFFER_TEST_PG_BIN") {
        return PathBuf::from(d);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").exists()).collect()
        })
        .unwrap_or_default();
    versions.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    versions.pop().unwrap_or_else(|| {
        let out = Command::new("sh").args(["-c", "command -v initdb"]).output().expect("sh");
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(!p.is_empty(), "PostgreSQL server binaries not found: run `make test`, which installs them");
        Path::new(&p).parent().unwrap().to_path_buf()
    })
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

fn as_postgres(program: &Path) -> Command {
    if coffer::is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn encode(db: &str) -> String {
    percent_encoding::utf8_percent_encode(db, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn check(mut c: Command, what: &str) -> String {
    let out = c.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Gives `path` (and what is under it) to the postgres user when the tests run as root.
pub fn chown_postgres(path: &Path) {
    if coffer::is_root() {
        let mut c = Command::new("chown");
        c.args(["-R", "postgres:"]).arg(path);
        check(c, "chown");
    }
}

/// A temporary folder the server's user owns (for a data directory and its log).
pub fn scratch_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("coffer-pg-").tempdir().unwrap();
    chown_postgres(dir.path());
    dir
}

impl Cluster {
    pub fn start() -> Cluster {
        Cluster::start_with(|_| String::new())
    }

    /// A cluster whose postgresql.conf ends with `conf(its folder)`
    /// (archiving settings that name paths in it).
    pub fn start_with(conf: impl FnOnce(&Path) -> String) -> Cluster {
        let bin = bin_dir();
        let dir = scratch_dir();
        let pwfile = dir.path().join("pw");
        std::fs::write(&pwfile, PG_PASSWORD).unwrap();
        chown_postgres(&pwfile);
        let data = dir.path().join("data");
        let mut c = as_postgres(&bin.join("initdb"));
        c.arg("-D").arg(&data).args([
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ]);
        c.arg(format!("--pwfile={}", pwfile.display()));
        check(c, "initdb");
        let extra = conf(dir.path());
        if !extra.is_empty() {
            use std::io::Write;
            let mut f = std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).unwrap();
            writeln!(f, "\n{extra}").unwrap();
        }
        Cluster::run(dir)
    }

    /// Starts the server on the data directory `dir/data` that is already
    /// there (a restored one): its own port and socket, log in `dir/log`.
    pub fn run(dir: tempfile::TempDir) -> Cluster {
        let bin = bin_dir();
        let data = dir.path().join("data");
        // Retry on a port another process grabbed meanwhile.
        for attempt in 0..5 {
            let port = free_port();
            let mut c = as_postgres(&bin.join("pg_ctl"));
            c.arg("-D").arg(&data).arg("-l").arg(dir.path().join("log")).args(["-w", "-t", "60", "-o"]);
            c.arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
                dir.path().display()
            ));
            c.arg("start");
            let out = c.output().unwrap();
            if out.status.success() {
                return Cluster { dir, port };
            }
            assert!(
                attempt < 4,
                "pg_ctl start failed: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(dir.path().join("log")).unwrap_or_default()
            );
        }
        unreachable!()
    }

    /// A URL for database `db` (any name: percent-encoded).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{}", self.port, encode(db))
    }

    pub fn url_with_password(&self, db: &str) -> String {
        format!("postgres://postgres:{PG_PASSWORD}@127.0.0.1:{}/{}", self.port, encode(db))
    }

    /// The libpq environment that reaches this server (for `--pg ''` and `--db` alone).
    pub fn libpq_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PGHOST", "127.0.0.1".into()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", "postgres".into()),
            ("PGPASSWORD", PG_PASSWORD.into()),
        ]
    }

    fn tool(&self, name: &str) -> Command {
        let mut c = Command::new(bin_dir().join(name));
        c.env("PGPASSWORD", PG_PASSWORD);
        c
    }

    pub fn psql(&self, db: &str, sql: &str) -> String {
        let mut c = self.tool("psql");
        c.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", &self.url(db), "-c", sql]);
        check(c, &format!("psql {sql}"))
    }

    pub fn psql_file(&self, db: &str, file: &Path) {
        let mut c = self.tool("psql");
        c.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &self.url(db), "-f"]).arg(file);
        check(c, "psql -f");
    }

    pub fn create_db(&self, db: &str) {
        self.psql("postgres", &format!("CREATE DATABASE \"{}\"", db.replace('"', "\"\"")));
    }

    /// A database with the fixture schema and a pgbench table set of `scale`.
    pub fn create_sample_db(&self, db: &str, scale: u32) {
        self.create_db(db);
        let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/postgres/sample.sql");
        self.psql_file(db, &fixture);
        if scale > 0 {
            let mut c = self.tool("pgbench");
            c.args([
                "-i",
                "-q",
                "-s",
                &scale.to_string(),
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                db,
            ]);
            check(c, "pgbench -i");
        }
    }

    /// `schema.table` of every user table, sorted, one per line.
    pub fn user_tables(&self, db: &str) -> String {
        self.psql(db, "SELECT schemaname || '.' || tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1")
    }

    pub fn databases(&self) -> Vec<String> {
        self.psql("postgres", "SELECT datname FROM pg_database ORDER BY 1").lines().map(String::from).collect()
    }

    /// The plain-SQL dump of a database, for comparing two databases.
    /// `\restrict` lines carry a random key per dump and are left out.
    pub fn plain_dump(&self, db: &str) -> String {
        let mut c = self.tool("pg_dump");
        c.args(["--no-owner", "-d", &self.url(db)]);
        check(c, "pg_dump plain")
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The plain-SQL dump of one table (its definition and rows).
    pub fn table_dump(&self, db: &str, table: &str) -> String {
        let mut c = self.tool("pg_dump");
        c.args(["--no-owner", "-t", table, "-d", &self.url(db)]);
        check(c, "pg_dump -t")
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A program of the server's bin folder, with the password in its environment.
    pub fn program(&self, name: &str) -> Command {
        self.tool(name)
    }

    fn stop(&self) {
        let mut c = as_postgres(&bin_dir().join("pg_ctl"));
        c.arg("-D").arg(self.dir.path().join("data")).args(["-m", "immediate", "stop"]);
        let _ = c.output();
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop();
    }
}

static SHARED: OnceLock<Cluster> = OnceLock::new();

/// The cluster every test may share (each uses its own databases).
pub fn shared() -> &'static Cluster {
    SHARED.get_or_init(|| {
        let c = Cluster::start();
        // Statics are never dropped: stop the server when the tests exit.
        // SAFETY: registering a plain extern "C" function.
        unsafe { libc::atexit(stop_shared) };
        c
    })
}

extern "C" fn stop_shared() {
    if let Some(c) = SHARED.get() {
        c.stop();
        let _ = std::fs::remove_dir_all(c.dir.path());
    }
}

/// A database name unique within this test run.
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}_{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// A directory for COFFER_PG_BIN_DIR: the real client tools, but `tool` is
/// a shell script around the real one (`$REAL`).
pub fn wrapped_tool(env: &super::Env, tool: &str, script: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let wrap = env.path("bin");
    std::fs::create_dir_all(&wrap).unwrap();
    let real = bin_dir();
    for other in ["pg_dump", "pg_restore", "psql", "pg_dumpall"].into_iter().filter(|t| *t != tool) {
        std::os::unix::fs::symlink(real.join(other), wrap.join(other)).unwrap();
    }
    let script = format!("#!/bin/sh\nREAL='{}'\n{script}\n", real.join(tool).display());
    std::fs::write(wrap.join(tool), script).unwrap();
    std::fs::set_permissions(wrap.join(tool), std::fs::Permissions::from_mode(0o755)).unwrap();
    wrap
}

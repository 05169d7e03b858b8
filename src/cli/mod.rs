//! The command line: clap structs (`args`, and each command's own in
//! `commands/`) converted into the library's `*Options`, results printed as
//! text or one JSON document (`output`), errors mapped to exit codes and
//! hints here. The only code that reads the environment, prints, or exits.

/// A line on stderr, with control characters in it (from file names,
/// database names, server messages) escaped: a hostile name cannot rewrite
/// the operator's terminal.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stderr(), "{}", crate::cli::output::terminal_safe(&line, true));
    }};
}

mod args;
mod commands;
mod context;
mod metrics;
pub mod output;
mod passphrase;
mod profile;

use anyhow::Result;
use args::{Cli, Command};
use clap::Parser;
use coffer::{DumpChoice, Error};
use std::process::ExitCode;

/// Exit codes (restic's numbers where they overlap). Documented in README.md.
pub mod exit {
    pub const OK: u8 = 0;
    pub const FAILURE: u8 = 1;
    pub const USAGE: u8 = 2;
    pub const PARTIAL: u8 = 3;
    /// The command did its work, but its report could not be written to stdout.
    pub const OUTPUT: u8 = 4;
    pub const NO_REPOSITORY: u8 = 10;
    pub const LOCKED: u8 = 11;
    pub const WRONG_PASSPHRASE: u8 = 12;
    /// wal-fetch could not tell whether the archive holds the file: above
    /// 125, PostgreSQL stops the recovery instead of taking it as the end.
    pub const WAL_FETCH_FAILED: u8 = 126;
}

/// A usage error found after parsing (exit code 2).
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

pub fn main() -> ExitCode {
    let mut cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // --help and --version are not errors.
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            if code != exit::OK && std::env::args_os().any(|a| a == "--json") {
                let first = e.to_string();
                let message = first.lines().next().unwrap_or_default().trim_start_matches("error: ");
                output::json_error("usage", message, None, code);
            }
            return ExitCode::from(code);
        }
    };
    let started = std::time::Instant::now();
    let result = profile::apply(&mut cli).and_then(|()| run(&cli));
    let (mut code, kind) = match &result {
        Ok(code) => (*code, None),
        Err(e) => {
            let code = match &cli.command {
                Command::WalFetch(_) => commands::wal::fetch_exit_code(e),
                _ => exit_code(e),
            };
            let (message, hint) = (one_line(e), hint(e));
            // wal-fetch's "not archived" is how recovery finds the end of
            // the WAL, asked on every start: not an error in the server's log.
            let normal_end = matches!(cli.command, Command::WalFetch(_)) && code == exit::FAILURE;
            errln!("coffer: {}{message}", if normal_end { "" } else { "error: " });
            if let Some(hint) = hint {
                errln!("coffer: hint: {hint}");
            }
            if cli.json {
                output::json_error(error_kind(e), &message, hint, code);
            }
            (code, Some(error_kind(e)))
        }
    };
    if let Some(r) = context::requests_made().filter(|_| cli.verbose) {
        errln!(
            "coffer: requests made: GET {}, LIST {}, PUT {}, DELETE {}; downloaded {} B ({}), uploaded {} B ({})",
            r.get,
            r.list,
            r.put,
            r.delete,
            r.download_bytes,
            output::bytes(r.download_bytes),
            r.upload_bytes,
            output::bytes(r.upload_bytes)
        );
    }
    if let (Some(path), Some(command)) = (&cli.metrics_file, metrics_command(&cli.command)) {
        if let Err(e) = metrics::write(path, command, code, kind, started.elapsed().as_secs_f64()) {
            errln!("coffer: error: {}", one_line(&e));
            if code == exit::OK {
                code = exit::OUTPUT;
            }
        }
    }
    if result.is_ok() {
        if let Some(why) = output::stdout_error() {
            // What was done stands; the message says so, as the report is lost.
            if !why.is_empty() {
                errln!("coffer: error: the command completed, but its report was lost: {why}");
            }
            code = exit::OUTPUT;
        }
    }
    ExitCode::from(code)
}

/// The commands `--metrics-file` reports on, by the name the file labels
/// them with. A dry run changes and proves nothing: it leaves the file alone.
fn metrics_command(c: &Command) -> Option<&'static str> {
    Some(match c {
        Command::Backup(a) if !a.dry_run => "backup",
        Command::Forget(a) if !a.dry_run => "forget",
        Command::Prune(a) if !a.dry_run && !a.estimate.estimate => "prune",
        Command::Verify(a) if !a.estimate.estimate => "verify",
        Command::Drill(a) if a.pitr => "drill_pitr",
        Command::Drill(_) => "drill",
        _ => return None,
    })
}

/// A stable name for what went wrong, for scripts reading `--json` errors.
fn error_kind(e: &anyhow::Error) -> &'static str {
    if e.downcast_ref::<Usage>().is_some() {
        return "usage";
    }
    match core_error(e) {
        Some(Error::NoRepository { .. }) => "no_repository",
        Some(Error::RepositoryExists { .. }) => "repository_exists",
        Some(Error::WrongPassphrase { .. }) => "wrong_passphrase",
        Some(Error::Locked { .. }) => "locked",
        Some(Error::Corrupt { .. } | Error::UnsafeEntry { .. }) => "corrupt",
        Some(Error::UnsupportedVersion { .. }) => "unsupported_version",
        Some(Error::Vanished { .. }) => "vanished",
        Some(Error::SourceFailed { .. }) => "source_failed",
        Some(Error::Backend(_)) => "backend",
        Some(Error::Io { .. }) => "io",
        Some(Error::Target { .. }) => "target",
        Some(
            Error::SnapshotNotFound { .. }
            | Error::AmbiguousSnapshot { .. }
            | Error::NoSuchPath { .. }
            | Error::NothingSelected { .. }
            | Error::NotFound { .. },
        ) => "not_found",
        Some(Error::InvalidOptions(_) | Error::InvalidPattern { .. } | Error::Dump(_) | Error::CheckFile(_)) => {
            "invalid_options"
        }
        Some(Error::Refused(_)) => "refused",
        Some(Error::WriteOnly { .. }) => "write_only",
        Some(Error::Internal(_)) => "internal",
        _ => "failure",
    }
}

/// The error and its causes on one line.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

fn core_error(e: &anyhow::Error) -> Option<&Error> {
    e.chain().find_map(|c| c.downcast_ref::<Error>())
}

fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<Usage>().is_some() {
        return exit::USAGE;
    }
    match core_error(e) {
        Some(Error::NoRepository { .. }) => exit::NO_REPOSITORY,
        Some(Error::WrongPassphrase { .. }) => exit::WRONG_PASSPHRASE,
        Some(Error::Locked { .. }) => exit::LOCKED,
        _ => exit::FAILURE,
    }
}

/// The context `copy` gives errors opening its destination.
pub const DESTINATION: &str = "the destination repository";

fn hint(e: &anyhow::Error) -> Option<&'static str> {
    match core_error(e)? {
        // copy's destination names its own variables (the error says which repository).
        Error::WrongPassphrase { .. } if e.chain().any(|c| c.to_string() == DESTINATION) => {
            Some("check COFFER_TO_PASSWORD_FILE / COFFER_TO_PASSWORD_COMMAND / COFFER_TO_PASSWORD, or the --to-profile's password_file")
        }
        Error::WrongPassphrase { .. } => Some("check COFFER_PASSWORD_FILE / COFFER_PASSWORD_COMMAND / COFFER_PASSWORD"),
        Error::NoRepository { .. } => Some("create one with `coffer init -r REPO`, or check -r / COFFER_REPOSITORY"),
        Error::Corrupt { .. } => Some("run `coffer verify --read-data` to list every damaged object"),
        Error::Vanished { .. } => Some("nothing is damaged: run the command again"),
        Error::Locked { .. } => {
            Some("wait for it to finish; a lock whose process died is ignored, `coffer unlock` removes stale ones")
        }
        Error::SourceFailed { message, .. } if message.contains("lock wait timeout") => Some(
            "another session holds a lock on a table; find it in pg_locks, or wait longer with --pg-lock-wait-timeout",
        ),
        Error::SourceFailed { message, .. } if message.contains("permission denied for large object") => Some(
            "pg_read_all_data does not cover large objects: GRANT SELECT ON LARGE OBJECT to the backup role (docs/OPERATIONS.md)",
        ),
        Error::SourceFailed { message, .. } if message.contains("row-level security") => {
            Some("the backup role must bypass row-level security: ALTER ROLE ... BYPASSRLS (docs/OPERATIONS.md)")
        }
        Error::SourceFailed { message, .. } if message.contains("timeout expired") => {
            Some("the server did not answer in time: check the host and port, or raise --pg-connect-timeout")
        }
        Error::NothingSelected { reason, .. } if reason.contains("database dump") => {
            Some("restore its databases with --pg-target URL or --to-file FILE")
        }
        Error::NothingSelected { .. } => {
            Some("`coffer ls SNAPSHOT -R` lists the stored paths (without a leading /) that --include matches")
        }
        Error::Dump(choice) => dump_hint(choice),
        Error::CheckFile(_) => Some("--check-sql names a file of SQL queries separated by ';', each returning true"),
        _ => None,
    }
}

/// The flag that picks the dump a command needs (the library names none).
fn dump_hint(choice: &DumpChoice) -> Option<&'static str> {
    Some(match choice {
        DumpChoice::NoGlobals => "the snapshot was not taken with --pg-all, which keeps roles and tablespaces",
        DumpChoice::NoSuchDatabase { .. } => "`coffer show SNAPSHOT` lists the snapshot's dumps",
        DumpChoice::OnlyGlobals => "restore it with --globals",
        DumpChoice::Several { .. } => "choose one with --db NAME, or --all",
        DumpChoice::OneForAFile => "--to-file writes one dump: choose it with --db NAME",
        DumpChoice::FiltersNeedOneDatabase => "--schema and --table pick objects of one database: give --db NAME",
        DumpChoice::FiltersOnAFile => {
            "--to-file writes the whole archive: --schema and --table apply to --pg-target (or to pg_restore)"
        }
        DumpChoice::NoDatabaseToDump => "give --db NAME, a database in the URL, or PGDATABASE",
        _ => return None,
    })
}

fn run(cli: &Cli) -> Result<u8> {
    let out = output::Output { json: cli.json, quiet: cli.quiet };
    match &cli.command {
        Command::Init(a) => commands::init::run(cli, a, &out),
        Command::Backup(a) => commands::backup::run(cli, a, &out),
        Command::Snapshots(a) => commands::snapshots::run(cli, a, &out),
        Command::Show(a) => commands::show::run(cli, a, &out),
        Command::Ls(a) => commands::ls::run(cli, a, &out),
        Command::Diff(a) => commands::diff::run(cli, a, &out),
        Command::Find(a) => commands::find::run(cli, a, &out),
        Command::Stats(a) => commands::stats::run(cli, a, &out),
        Command::Dump(a) => commands::dump::run(cli, a, &out),
        Command::Completions(a) => commands::completions::completions(a),
        Command::Man(a) => commands::completions::man(a),
        Command::Restore(a) => commands::restore::run(cli, a, &out),
        Command::Verify(a) => commands::verify::run(cli, a, &out),
        Command::Copy(a) => commands::copy::run(cli, a, &out),
        Command::Key(k) => commands::key::run(cli, k, &out),
        Command::Forget(a) => commands::forget::run(cli, a, &out),
        Command::Prune(a) => commands::prune::run(cli, a, &out),
        Command::Repair(a) => commands::repair::run(cli, a, &out),
        Command::Unlock(a) => commands::unlock::run(cli, a, &out),
        Command::Drill(a) => commands::drill::run(cli, a, &out),
        Command::WalPush(a) => commands::wal::push(cli, a, &out),
        Command::WalFetch(a) => commands::wal::fetch(cli, a, &out),
    }
}

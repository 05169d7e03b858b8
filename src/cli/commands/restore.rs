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
  coffer restore latest --target /tmp/r --include 'srv/app' --estimate   requests and bytes, first
  coffer restore --pg-base --target /srv/pg/restored --target-time '2026-12-03 14:02:00+00' --dry-run
  coffer restore latest --pg-base --target /srv/pg/restored --target-action promote")]
#[command(group(clap::ArgGroup::new("destination").required(true).args(["target", "pg_target", "to_file"])))]
pub struct RestoreArgs {
    /// Snapshot id, unique id prefix, or "latest" (with --pg-base --target-time: default the newest
    /// base backup that ended before it).
    pub snapshot: Option<String>,
    /// Restore the snapshot's base backup into the empty data directory --target, with recovery
    /// settings that replay the archived WAL (wal-fetch) to the target given, or to its end.
    #[arg(long, requires = "target", conflicts_with_all = ["pg_target", "to_file", "include", "exclude"])]
    pub pg_base: bool,
    /// What the server does at the target [default: pause, read-only, until
    /// `SELECT pg_wal_replay_resume()` promotes it].
    #[arg(long, value_name = "ACTION", requires = "pg_base", value_parser = ["promote", "pause", "shutdown"])]
    pub target_action: Option<String>,
    #[command(flatten)]
    pub recovery: RecoveryArgs,
    /// Write archive_mode = off: for a copy that must not archive into the cluster's stanza.
    #[arg(long, requires = "pg_base")]
    pub no_archive: bool,
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

/// Where a recovery stops and how its restore_command opens the
/// repository: `restore --pg-base` and `drill --pitr`.
#[derive(Args)]
pub struct RecoveryArgs {
    /// Recover to this moment (e.g. '2026-12-03 14:02:17+00', with its UTC offset).
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub target_time: Option<chrono::DateTime<chrono::Utc>>,
    /// Recover to this WAL position (e.g. 0/5000100).
    #[arg(long, value_name = "LSN")]
    pub target_lsn: Option<String>,
    /// Recover to the commit of this transaction id.
    #[arg(long, value_name = "XID")]
    pub target_xid: Option<String>,
    /// Recover to this restore point (pg_create_restore_point).
    #[arg(long, value_name = "NAME")]
    pub target_name: Option<String>,
    /// The timeline to follow: current, latest or a number [PostgreSQL's default: latest].
    #[arg(long, value_name = "TLI", value_parser = parse_timeline)]
    pub target_timeline: Option<String>,
    /// Which base backup, when the snapshot holds several (or to pick one by --target-time).
    #[arg(long)]
    pub stanza: Option<String>,
    /// The passphrase or key file the restore_command uses (default: COFFER_PASSWORD_FILE's, or
    /// the profile's); it must be readable by the server's user.
    #[arg(long, value_name = "FILE")]
    pub recovery_password_file: Option<PathBuf>,
}

impl RecoveryArgs {
    /// The first of these flags given, for "only with --pg-base" errors.
    pub fn first_given(&self) -> Option<&'static str> {
        [
            (self.target_time.is_some(), "--target-time"),
            (self.target_lsn.is_some(), "--target-lsn"),
            (self.target_xid.is_some(), "--target-xid"),
            (self.target_name.is_some(), "--target-name"),
            (self.target_timeline.is_some(), "--target-timeline"),
            (self.stanza.is_some(), "--stanza"),
            (self.recovery_password_file.is_some(), "--recovery-password-file"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
    }

    pub fn target(&self, action: Option<String>) -> coffer::RecoveryTarget {
        coffer::RecoveryTarget {
            time: self.target_time,
            lsn: self.target_lsn.clone(),
            xid: self.target_xid.clone(),
            name: self.target_name.clone(),
            action,
            timeline: self.target_timeline.clone(),
        }
    }

    /// The snapshot and stanza to recover from: the one named, else the
    /// newest base backup that ended before --target-time, else (`latest`
    /// allowed) the newest base backup.
    pub fn pick_base(
        &self,
        repo: &coffer::Repository,
        snapshot: Option<&str>,
        tags: &[String],
    ) -> Result<(coffer::Id, String)> {
        let id = match (snapshot, self.target_time) {
            (Some(s), _) => repo.find_snapshot(s, tags)?,
            (None, Some(t)) => coffer::find_base(repo, t, self.stanza.as_deref())?,
            (None, None) => coffer::find_base(repo, chrono::Utc::now(), self.stanza.as_deref())?,
        };
        let manifest = repo.load_snapshot_info(&id)?;
        let stanza = match manifest.pg_bases().find(|b| self.stanza.as_deref().is_none_or(|s| b.stanza == s)) {
            Some(b) => b.stanza.clone(),
            None => self.stanza.clone().unwrap_or_default(),
        };
        Ok((id, stanza))
    }

    /// The restore_command PostgreSQL will run: this coffer's `wal-fetch`,
    /// opening this repository by itself (a profile, or the repository and
    /// a passphrase file: never the passphrase itself).
    pub fn restore_command(&self, cli: &Cli, command: &str, stanza: &str) -> Result<String> {
        use coffer::shell_quote as q;
        let absolute = |p: &std::path::Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
        let exe = std::env::current_exe().context("the path of this coffer binary")?;
        let mut words: Vec<String> = Vec::new();
        let password_file =
            self.recovery_password_file.clone().or_else(|| std::env::var_os("COFFER_PASSWORD_FILE").map(PathBuf::from));
        match (&password_file, std::env::var("COFFER_PASSWORD_COMMAND")) {
            (Some(f), _) => words.push(format!("COFFER_PASSWORD_FILE={}", q(&absolute(f).to_string_lossy()))),
            (None, Ok(cmd)) => words.push(format!("COFFER_PASSWORD_COMMAND={}", q(&cmd))),
            (None, Err(_)) if cli.profile.is_some() && cli.password_file.is_some() => {}
            (None, Err(_)) => {
                return Err(crate::cli::Usage(format!(
                    "{command}: the restore_command PostgreSQL runs must open the repository by itself: give \
                     --recovery-password-file FILE (a key file from `coffer key add-file`, readable by the server's \
                     user), set COFFER_PASSWORD_FILE, or use a profile with a password_file"
                ))
                .into())
            }
        }
        words.push(q(&exe.to_string_lossy()));
        if let Some(p) = &cli.profile {
            words.push(format!("--profile={}", q(p)));
            if let Some(c) = &cli.config {
                words.push(format!("--config={}", q(&absolute(c).to_string_lossy())));
            }
        }
        words.push("wal-fetch".into());
        if let Some(r) = &cli.repo {
            let r = if r.contains("://") {
                r.clone()
            } else {
                absolute(std::path::Path::new(r)).to_string_lossy().into_owned()
            };
            words.push(format!("--repo={}", q(&r)));
        }
        words.push(format!("--stanza={}", q(stanza)));
        words.push("%f".into());
        words.push("%p".into());
        Ok(words.join(" "))
    }
}

/// A moment with its offset: RFC 3339, or as PostgreSQL prints one.
fn parse_timeline(s: &str) -> std::result::Result<String, String> {
    match matches!(s, "latest" | "current") || coffer::timeline_number(s).is_ok() {
        true => Ok(s.to_string()),
        false => Err("give current, latest or a timeline number (decimal, or hex after 0x)".into()),
    }
}

pub fn parse_time(s: &str) -> std::result::Result<chrono::DateTime<chrono::Utc>, String> {
    let s = s.trim();
    let parsed = chrono::DateTime::parse_from_rfc3339(s)
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .or_else(|_| chrono::DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f %#z"))
        .or_else(|_| chrono::DateTime::parse_from_str(&s.replace(" UTC", "+00"), "%Y-%m-%d %H:%M:%S%.f%#z"));
    parsed.map(|t| t.with_timezone(&chrono::Utc)).map_err(|_| {
        format!("{s:?} is not a moment with its UTC offset (e.g. 2026-12-03 14:02:17+00 or 2026-12-03T14:02:17Z)")
    })
}

fn run_base(cli: &Cli, a: &RestoreArgs, out: &Output, repo: &coffer::Repository) -> Result<u8> {
    let target = a.target.clone().context("--target DIR is required")?;
    let (id, stanza) = a.recovery.pick_base(repo, a.snapshot.as_deref(), &a.tag)?;
    let opts = coffer::BaseRestoreOptions {
        target: target.clone(),
        recovery: a.recovery.target(a.target_action.clone()),
        restore_command: a.recovery.restore_command(cli, "restore --pg-base", &stanza)?,
        stanza: a.recovery.stanza.clone(),
        no_archive: a.no_archive,
        dry_run: a.dry_run,
        workers: coffer::default_workers(),
    };
    let summary = coffer::restore_base(repo, &id, &opts)?;
    out.restore_base(&summary);
    Ok(exit::OK)
}

pub fn run(cli: &Cli, a: &RestoreArgs, out: &Output) -> Result<u8> {
    if let Some(flag) = a.recovery.first_given().filter(|_| !a.pg_base) {
        return Err(crate::cli::Usage(format!("restore: {flag} is only for restore --pg-base")).into());
    }
    let repo = open(cli)?;
    if a.pg_base {
        return run_base(cli, a, out, &repo);
    }
    let snapshot = a.snapshot.as_deref().ok_or_else(|| {
        crate::cli::Usage("restore: give a SNAPSHOT: an id, a unique id prefix, or \"latest\"".into())
    })?;
    let id = repo.find_snapshot(snapshot, &a.tag)?;
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
        base_root: None,
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

//! `coffer wal-push` and `coffer wal-fetch`: PostgreSQL's archive_command
//! and restore_command.

use crate::cli::args::Cli;
use crate::cli::context::{open, open_for_writing};
use crate::cli::exit;
use crate::cli::output::Output;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
#[command(after_help = "It runs once per WAL segment: give it a key file (`coffer key add-file`) as its password file,
which opens the repository without Argon2. Exit 0 only once the file is durably stored; the same
file pushed again with the same bytes is a success, with other bytes a failure.

Examples:
  # in postgresql.conf
  archive_command = '/usr/local/bin/coffer wal-push --profile db1 %p'
  archive_command = 'COFFER_PASSWORD_FILE=/etc/coffer/db1.key /usr/local/bin/coffer wal-push -r /srv/backup/coffer --quiet %p'")]
pub struct WalPushArgs {
    /// The WAL file (%p: relative to the data directory, where PostgreSQL runs the command).
    pub path: PathBuf,
    #[command(flatten)]
    pub wal: WalArgs,
}

#[derive(Args)]
#[command(after_help = "Exit 0: written to DEST (atomically). Exit 1: the archive does not hold it, which is how
recovery learns it reached the end of the archived WAL. Any other failure (repository
unreachable, an object that fails authentication, the wrong cluster) exits 126, which makes
PostgreSQL stop the recovery rather than end it early at the wrong point.

Examples:
  # in postgresql.conf, or the recovery settings
  restore_command = '/usr/local/bin/coffer wal-fetch --profile db1 %f %p'")]
pub struct WalFetchArgs {
    /// The WAL file's name (%f).
    pub name: String,
    /// Where to write it (%p).
    pub dest: PathBuf,
    #[command(flatten)]
    pub wal: WalArgs,
}

#[derive(Args)]
pub struct WalArgs {
    /// The cluster's folder in the archive [default: its system identifier, from the segment or
    /// the data directory's global/pg_control].
    #[arg(long, env = "COFFER_STANZA")]
    pub stanza: Option<String>,
    /// The data directory: the current one, where PostgreSQL runs the command.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub pg_data: PathBuf,
}

impl WalArgs {
    fn options(&self) -> coffer::WalOptions {
        coffer::WalOptions { stanza: self.stanza.clone(), data_dir: self.pg_data.clone() }
    }
}

pub fn push(cli: &Cli, a: &WalPushArgs, out: &Output) -> Result<u8> {
    let repo = open_for_writing(cli)?;
    let s = coffer::wal_push(&repo, &a.path, &a.wal.options())?;
    out.wal_pushed(&s);
    Ok(exit::OK)
}

/// Exit codes: see `fetch_exit_code`.
pub fn fetch(cli: &Cli, a: &WalFetchArgs, out: &Output) -> Result<u8> {
    let repo = open(cli)?;
    let s = coffer::wal_fetch(&repo, &a.name, &a.dest, &a.wal.options())?;
    out.wal_fetched(&s);
    Ok(exit::OK)
}

/// 1 when the archive does not hold the file (recovery's end); 126 for a
/// failure that says nothing of whether it does, so PostgreSQL stops the
/// recovery rather than promote at the wrong point.
pub fn fetch_exit_code(e: &anyhow::Error) -> u8 {
    match e.chain().find_map(|c| c.downcast_ref::<coffer::Error>()) {
        Some(coffer::Error::NotFound { .. }) => exit::FAILURE,
        _ => exit::WAL_FETCH_FAILED,
    }
}

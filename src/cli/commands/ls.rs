//! `coffer ls`: a snapshot's folders, files and databases, without restoring.

use crate::cli::args::Cli;
use crate::cli::context::open;
use crate::cli::exit;
use crate::cli::output::Output;
use anyhow::Result;
use clap::Args;
use coffer::DumpKind;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

#[derive(Args)]
#[command(after_help = "Examples:
  coffer ls latest                      the backed-up folders and databases
  coffer ls latest /etc -l              /etc's entries with mode, owner, size and time
  coffer ls 1a2b3c4d /home/alice -R     everything below /home/alice
  coffer ls latest --database app       the schemas, tables and rows of database app's dump")]
pub struct LsArgs {
    /// Snapshot id, unique id prefix, or "latest".
    pub snapshot: String,
    /// A folder (its entries) or a file, as backed up (default: the top).
    pub path: Option<OsString>,
    /// Everything below PATH, not only its entries.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Mode, owner, size and modification time of each entry.
    #[arg(short, long)]
    pub long: bool,
    /// The objects of this database's dump: schemas, tables (with rows), other objects.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["path", "recursive"])]
    pub database: Option<String>,
    /// With "latest": the newest snapshot having these tags.
    #[arg(long)]
    pub tag: Vec<String>,
}

pub fn run(cli: &Cli, a: &LsArgs, out: &Output) -> Result<u8> {
    let repo = open(cli)?;
    let id = repo.find_snapshot(&a.snapshot, &a.tag)?;
    let m = repo.load_snapshot(&id)?;
    if let Some(db) = &a.database {
        let dump = m
            .dumps()
            .find(|d| d.kind == DumpKind::Database && &d.name == db)
            .ok_or_else(|| coffer::Error::NoSuchPath { snapshot: id.short(), path: format!("database {db}") })?;
        out.ls_database(dump);
        return Ok(exit::OK);
    }
    let path = a.path.as_ref().map(|p| p.as_bytes()).unwrap_or_default();
    let entries = coffer::list(&m, &id, path, a.recursive)?;
    // Databases sit at the top, beside the backed-up folders.
    let top = coffer::stored_path(path).is_empty();
    let dumps: Vec<_> = if top { m.dumps().collect() } else { Vec::new() };
    let streams: Vec<_> = if top { m.streams().collect() } else { Vec::new() };
    out.ls(&entries, &dumps, &streams, a.long);
    Ok(exit::OK)
}

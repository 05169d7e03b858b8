//! `coffer dump`: one file of a snapshot to standard output, checked as a
//! restore checks it.

use crate::cli::args::Cli;
use crate::cli::context::open;
use crate::cli::exit;
use crate::cli::output::Output;
use anyhow::Result;
use clap::Args;
use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;

#[derive(Args)]
#[command(after_help = "Each chunk is authenticated before its bytes are written, and the whole file is checked
against the snapshot's checksum at its end: a file that fails exits 1 (with what was already
written said on stderr). A database dump goes to a file with `coffer restore --to-file`.

Examples:
  coffer dump latest /etc/fstab
  coffer dump latest --stream mysql-shop | mysql shop   what --stdin-from-command stored
  coffer dump 1a2b3c4d /home/alice/notes.txt > notes.txt")]
pub struct DumpArgs {
    /// Snapshot id, unique id prefix, or "latest".
    pub snapshot: String,
    /// The file, as backed up.
    #[arg(required_unless_present = "stream")]
    pub path: Option<OsString>,
    /// The output of a --stdin-from-command, by its name, instead of a file.
    #[arg(long, value_name = "NAME", conflicts_with = "path")]
    pub stream: Option<String>,
    /// With "latest": the newest snapshot having these tags.
    #[arg(long)]
    pub tag: Vec<String>,
}

pub fn run(cli: &Cli, a: &DumpArgs, _out: &Output) -> Result<u8> {
    let repo = open(cli)?;
    let id = repo.find_snapshot(&a.snapshot, &a.tag)?;
    let m = repo.load_snapshot(&id)?;
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    match (&a.stream, &a.path) {
        (Some(name), _) => coffer::dump_stream(&repo, &id, &m, name, coffer::default_workers(), &mut lock)?,
        (None, Some(path)) => coffer::dump_file(&repo, &id, &m, path.as_bytes(), coffer::default_workers(), &mut lock)?,
        (None, None) => return Err(crate::cli::Usage("dump: give a PATH or --stream NAME".into()).into()),
    };
    Ok(exit::OK)
}

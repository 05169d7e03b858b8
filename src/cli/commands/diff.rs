//! `coffer diff`: what changed from one snapshot to another.

use crate::cli::args::Cli;
use crate::cli::context::open;
use crate::cli::exit;
use crate::cli::output::Output;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
#[command(after_help = "Each line starts with + (added), - (removed), M (content changed), T (type changed) or
U (mode, owner or time only), as restic's diff does.

Examples:
  coffer diff 1a2b3c4d latest           what last night's backup changed against 1a2b3c4d
  coffer diff 1a2b3c4d 5e6f7a8b --json  the same as one JSON document")]
pub struct DiffArgs {
    /// The earlier snapshot: id, unique id prefix, or "latest".
    pub from: String,
    /// The later snapshot.
    pub to: String,
}

pub fn run(cli: &Cli, a: &DiffArgs, out: &Output) -> Result<u8> {
    let repo = open(cli)?;
    let (from, to) = (repo.find_snapshot(&a.from, &[])?, repo.find_snapshot(&a.to, &[])?);
    let (old, new) = (repo.load_snapshot(&from)?, repo.load_snapshot(&to)?);
    out.diff(&coffer::diff((&from, &old), (&to, &new)));
    Ok(exit::OK)
}

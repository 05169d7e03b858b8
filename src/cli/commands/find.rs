//! `coffer find`: which snapshots hold a path, newest first.

use crate::cli::args::Cli;
use crate::cli::context::open;
use crate::cli::exit;
use crate::cli::output::Output;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
#[command(after_help = "PATTERN is a glob as --include takes it: with a / it matches whole stored paths (no
leading /; * within a name, ** across folders), without one any name.

Examples:
  coffer find nginx.conf                     every snapshot holding a file of that name
  coffer find 'srv/app/**/*.yml' --snapshot latest
  coffer find '*.sql' --json")]
pub struct FindArgs {
    /// The glob.
    pub pattern: String,
    /// Search only this snapshot (repeatable; id, prefix or "latest").
    #[arg(long, value_name = "SNAPSHOT")]
    pub snapshot: Vec<String>,
}

pub fn run(cli: &Cli, a: &FindArgs, out: &Output) -> Result<u8> {
    let repo = open(cli)?;
    let only = a.snapshot.iter().map(|s| repo.find_snapshot(s, &[])).collect::<coffer::Result<Vec<_>>>()?;
    let found = coffer::find(&repo, &a.pattern, &only)?;
    out.find(&found);
    // Like grep: exit 1 when nothing matched, so a script can tell.
    Ok(if found.is_empty() { exit::FAILURE } else { exit::OK })
}

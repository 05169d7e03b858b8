//! `coffer show`: Show a snapshot's manifest.

use crate::cli::args::Cli;
use crate::cli::context::open;
use crate::cli::exit;
use crate::cli::output::Output;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
#[command(after_help = "Examples:
  coffer show latest
  coffer show latest --tag pre-migration --json")]
pub struct ShowArgs {
    /// Snapshot id, unique id prefix, or "latest".
    pub snapshot: String,
    /// With "latest": the newest snapshot having these tags.
    #[arg(long)]
    pub tag: Vec<String>,
}

pub fn run(cli: &Cli, a: &ShowArgs, out: &Output) -> Result<u8> {
    let repo = open(cli)?;
    let id = repo.find_snapshot(&a.snapshot, &a.tag)?;
    let m = repo.load_snapshot(&id)?;
    out.show(&id, &m);
    Ok(exit::OK)
}

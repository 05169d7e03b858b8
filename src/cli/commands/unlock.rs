//! `coffer unlock`: Remove stale locks (every lock with --all).

use crate::cli::args::Cli;
use crate::cli::context::open;
use crate::cli::exit;
use crate::cli::output::Output;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
#[command(after_help = "Examples:
  coffer unlock          stale locks only (a dead process, or 30 minutes without a refresh)
  coffer unlock --all    every lock: only when no coffer runs against the repository")]
pub struct UnlockArgs {
    /// Remove every lock, not only stale ones.
    #[arg(long)]
    pub all: bool,
}

pub fn run(cli: &Cli, a: &UnlockArgs, out: &Output) -> Result<u8> {
    let repo = open(cli)?;
    let n = coffer::unlock(&repo, a.all)?;
    out.unlocked(n);
    Ok(exit::OK)
}

//! `coffer stats`: what was backed up and what deduplication and compression made of it.

use crate::cli::args::Cli;
use crate::cli::context::open;
use crate::cli::exit;
use crate::cli::output::Output;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
#[command(after_help = "Examples:
  coffer stats              every snapshot: logical size, stored size, ratios, per source
  coffer stats latest --json")]
pub struct StatsArgs {
    /// One snapshot (id, prefix or "latest") instead of all.
    pub snapshot: Option<String>,
}

pub fn run(cli: &Cli, a: &StatsArgs, out: &Output) -> Result<u8> {
    let repo = open(cli)?;
    let only = a.snapshot.as_deref().map(|s| repo.find_snapshot(s, &[])).transpose()?;
    out.stats(&coffer::stats(&repo, only.as_ref())?);
    Ok(exit::OK)
}

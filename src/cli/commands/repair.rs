//! `coffer repair`: Rebuild the index from the packs after a loss; rewrite snapshots without what is gone.

use crate::cli::args::Cli;
use crate::cli::context::open;
use crate::cli::exit;
use crate::cli::output::Output;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
#[command(
    after_help = "Examples:\n  coffer repair --dry-run      # what would change\n  coffer repair --read-data    # also find packs damaged in place"
)]
pub struct RepairArgs {
    /// Report what would change; write and delete nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Read and check every pack, not only those the index does not describe.
    #[arg(long)]
    pub read_data: bool,
}

pub fn run(cli: &Cli, a: &RepairArgs, out: &Output) -> Result<u8> {
    let repo = open(cli)?;
    let summary = coffer::repair(&repo, &coffer::RepairOptions { dry_run: a.dry_run, read_data: a.read_data })?;
    out.repair(&summary);
    Ok(exit::OK)
}

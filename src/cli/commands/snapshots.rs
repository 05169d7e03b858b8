//! `coffer snapshots`: List snapshots, oldest first.

use crate::cli::args::Cli;
use crate::cli::context::open;
use crate::cli::exit;
use crate::cli::output::Output;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
#[command(after_help = "Examples:
  coffer snapshots
  coffer snapshots --tag nightly --json")]
pub struct SnapshotsArgs {
    /// Only snapshots with this tag (repeatable: all must match).
    #[arg(long)]
    pub tag: Vec<String>,
}

pub fn run(cli: &Cli, a: &SnapshotsArgs, out: &Output) -> Result<u8> {
    let repo = open(cli)?;
    let (list, unreadable) = repo.list_snapshots_checked()?;
    for (id, e) in &unreadable {
        errln!(
            "coffer: warning: snapshot {} cannot be read ({e}); `coffer forget {}` removes it",
            id.short(),
            id.short()
        );
    }
    let list: Vec<_> = list.into_iter().filter(|(_, m)| m.has_tags(&a.tag)).collect();
    out.snapshots(&list);
    Ok(exit::OK)
}

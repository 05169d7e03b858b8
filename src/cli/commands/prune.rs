//! `coffer prune`: Reclaim the space no snapshot uses.

use crate::cli::args::{parse_percent, Cli, EstimateArgs};
use crate::cli::context::{estimate, open};
use crate::cli::exit;
use crate::cli::output::Output;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
#[command(after_help = "Examples:
  coffer prune --dry-run
  coffer prune --max-unused 5
  coffer prune --estimate          the requests, downloads and uploads it would make")]
pub struct PruneArgs {
    /// Report what would be deleted and repacked; change nothing.
    #[arg(short = 'n', long, conflicts_with = "estimate")]
    pub dry_run: bool,
    /// Repack a pack once more than this percentage of it is unused.
    #[arg(long, value_name = "PCT", default_value = "20", value_parser = parse_percent)]
    pub max_unused: f64,
    /// Leave packs and indexes younger than this as they are (a lagging
    /// listing may not show the snapshot using them yet).
    #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = humantime::parse_duration)]
    pub grace: std::time::Duration,
    /// Abort unfinished multipart uploads (S3) started longer ago than this.
    #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub abort_uploads_after: std::time::Duration,
    #[command(flatten)]
    pub estimate: EstimateArgs,
}

pub fn run(cli: &Cli, a: &PruneArgs, out: &Output) -> Result<u8> {
    let repo = open(cli)?;
    let opts = coffer::PruneOptions {
        dry_run: a.dry_run,
        max_unused: a.max_unused / 100.0,
        grace: a.grace,
        abort_uploads_after: a.abort_uploads_after,
    };
    if a.estimate.estimate {
        return estimate(cli, out, || coffer::estimate_prune(&repo, &opts));
    }
    let bar = crate::cli::output::ProgressBar::for_terminal(out);
    let summary = coffer::prune_with(&repo, &opts, &bar)?;
    bar.finish();
    crate::cli::metrics::prune(&summary);
    out.prune(&summary);
    Ok(exit::OK)
}

//! `coffer forget`: Forget snapshots by a retention policy or by id, and prune afterwards on request.

use crate::cli::args::Cli;
use crate::cli::context::open;
use crate::cli::exit;
use crate::cli::output::Output;
use crate::cli::Usage;
use anyhow::Result;
use clap::Args;

#[derive(Args)]
#[command(after_help = "Examples:
  coffer forget --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run
  coffer forget --profile nightly --prune           the profile's keep_* rules, then prune
  coffer forget 1a2b3c4d                            this one snapshot")]
pub struct ForgetArgs {
    /// Snapshots to forget by id or unique prefix (instead of a keep policy);
    /// a damaged manifest can be forgotten so.
    pub snapshots: Vec<String>,
    /// Keep the N newest snapshots.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_last: u32,
    /// Keep the newest snapshot of each of the last N hours that have one (UTC).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_hourly: u32,
    /// ... of each of the last N days.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_daily: u32,
    /// ... of each of the last N ISO weeks.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_weekly: u32,
    /// ... of each of the last N months.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_monthly: u32,
    /// ... of each of the last N years.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub keep_yearly: u32,
    /// Keep every snapshot with this tag (repeatable).
    #[arg(long, value_name = "TAG")]
    pub keep_tag: Vec<String>,
    /// Only consider snapshots with this tag (repeatable: all must match).
    #[arg(long)]
    pub tag: Vec<String>,
    /// Only consider snapshots of this host.
    #[arg(long)]
    pub host: Option<String>,
    /// Report what would be forgotten; delete nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Prune afterwards (reclaim the space of forgotten snapshots).
    #[arg(long)]
    pub prune: bool,
}

pub fn run(cli: &Cli, a: &ForgetArgs, out: &Output) -> Result<u8> {
    let policy_given = a.keep_last + a.keep_hourly + a.keep_daily + a.keep_weekly + a.keep_monthly + a.keep_yearly > 0
        || !a.keep_tag.is_empty();
    match (a.snapshots.is_empty(), policy_given) {
        (true, false) => {
            return Err(Usage(
                "forget: no keep policy given (--keep-last, --keep-daily, ...) and no snapshots named: \
                 refusing to forget every snapshot"
                    .into(),
            )
            .into())
        }
        (false, true) => return Err(Usage("forget: give snapshots to forget or a keep policy, not both".into()).into()),
        _ => {}
    }
    let repo = open(cli)?;
    let opts = coffer::ForgetOptions {
        policy: coffer::KeepPolicy {
            last: a.keep_last,
            hourly: a.keep_hourly,
            daily: a.keep_daily,
            weekly: a.keep_weekly,
            monthly: a.keep_monthly,
            yearly: a.keep_yearly,
            tags: a.keep_tag.clone(),
        },
        ids: a.snapshots.iter().map(|s| repo.find_snapshot(s, &[])).collect::<coffer::Result<_>>()?,
        tags: a.tag.clone(),
        host: a.host.clone(),
        dry_run: a.dry_run,
    };
    let summary = coffer::forget(&repo, &opts)?;
    crate::cli::metrics::forget(&summary);
    if a.prune {
        let pruned = coffer::prune(&repo, &coffer::PruneOptions { dry_run: a.dry_run, ..Default::default() })?;
        crate::cli::metrics::prune(&pruned);
        out.forget_and_prune(&summary, &pruned);
    } else {
        out.forget(&summary);
    }
    Ok(exit::OK)
}

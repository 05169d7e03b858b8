//! `coffer verify`: Check the repository's integrity (and, with --max-age, its freshness).

use crate::cli::args::{parse_percent, Cli, EstimateArgs};
use crate::cli::context::{estimate, open};
use crate::cli::exit;
use crate::cli::output::Output;
use anyhow::Result;
use clap::Args;
use coffer::{Id, ReadData};

#[derive(Args)]
#[command(after_help = "Examples:
  coffer verify                                  keys, indexes, manifests, packs present
  coffer verify --read-data-subset 5             and 5 % of the data read back
  coffer verify --max-age 26h --tag nightly      fail when last night's backup is missing
  coffer verify --max-age 26h --max-wal-age 5m   and when WAL archiving stalled (the RPO alarm)
  coffer verify --read-data --estimate           what reading it all back would download")]
pub struct VerifyArgs {
    /// Check only this snapshot and the packs it uses.
    pub snapshot: Option<String>,
    /// Download and check every pack.
    #[arg(long, conflicts_with = "read_data_subset")]
    pub read_data: bool,
    /// Download and check this percentage of packs, chosen at random.
    #[arg(long, value_name = "PCT", value_parser = parse_percent)]
    pub read_data_subset: Option<f64>,
    /// Fail when the newest snapshot (or any stanza's newest archived WAL) is older than this (e.g. 26h, 2d).
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    pub max_age: Option<std::time::Duration>,
    /// Fail when any stanza's newest archived WAL is older than this (e.g. 5m): the RPO alarm.
    #[arg(long, value_name = "AGE", value_parser = humantime::parse_duration)]
    pub max_wal_age: Option<std::time::Duration>,
    /// With --max-age: the newest snapshot having these tags.
    #[arg(long, requires = "max_age")]
    pub tag: Vec<String>,
    #[command(flatten)]
    pub estimate: EstimateArgs,
}

pub fn run(cli: &Cli, a: &VerifyArgs, out: &Output) -> Result<u8> {
    let repo = open(cli)?;
    let only: Option<Id> = a.snapshot.as_deref().map(|s| repo.find_snapshot(s, &[])).transpose()?;
    let read = match (a.read_data, a.read_data_subset) {
        (true, _) => ReadData::All,
        (false, Some(p)) => ReadData::Subset(p),
        _ => ReadData::None,
    };
    let opts = coffer::VerifyOptions {
        read_data: read,
        max_age: a.max_age,
        max_wal_age: a.max_wal_age,
        retention: cli.s3.retention,
        tags: a.tag.clone(),
    };
    if a.estimate.estimate {
        return estimate(cli, out, || coffer::estimate_verify(&repo, only.as_ref(), &opts));
    }
    let bar = crate::cli::output::ProgressBar::for_terminal(out);
    let summary = coffer::verify_with(&repo, only.as_ref(), &opts, &bar)?;
    bar.finish();
    for e in &summary.errors {
        errln!("coffer: error: {e}");
    }
    crate::cli::metrics::verify(&summary);
    out.verify(&summary);
    Ok(if summary.errors.is_empty() { exit::OK } else { exit::FAILURE })
}

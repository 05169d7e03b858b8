//! Named profiles from a configuration file, so that a crontab line is just
//! `coffer backup --profile nightly && coffer forget --profile nightly --prune`.
//!
//! A profile fills in what the command line left out; a flag given on the
//! command line always wins. Only the CLI reads this file: the core gets
//! plain options as from flags.

use crate::cli::args::{Cli, Command};
use crate::cli::commands::wal;
use crate::cli::Usage;
use anyhow::Result;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub repository: Option<String>,
    /// Passphrase file, used when no COFFER_PASSWORD* variable is set.
    pub password_file: Option<PathBuf>,
    /// `--metrics-file`, unless the command line gives one.
    pub metrics_file: Option<PathBuf>,
    /// `--price-file`, unless the command line gives one.
    pub price_file: Option<PathBuf>,
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub exclude_if_present: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub host: Option<String>,
    #[serde(default)]
    pub one_file_system: bool,
    pub pg: Option<String>,
    #[serde(default)]
    pub databases: Vec<String>,
    #[serde(default)]
    pub pg_all: bool,
    pub pg_bin_dir: Option<PathBuf>,
    /// wal-push / wal-fetch: the cluster's folder in the WAL archive.
    pub stanza: Option<String>,
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    #[serde(default)]
    pub s3_path_style: bool,
    /// An AWS credentials file for this profile's bucket (wal-push and
    /// wal-fetch run in PostgreSQL's environment, not a login's).
    pub s3_credentials_file: Option<PathBuf>,
    pub s3_profile: Option<String>,
    /// Object Lock retention of what is written (`30d`), and its mode.
    #[serde(default, with = "humantime_serde_opt")]
    pub retention: Option<std::time::Duration>,
    pub retention_mode: Option<String>,
    pub storage_class: Option<String>,
    pub keep_last: Option<u32>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    #[serde(default)]
    pub keep_tags: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    profile: BTreeMap<String, Profile>,
}

/// `--config`, else COFFER_CONFIG (clap reads it), else the first of
/// /etc/coffer/coffer.toml and ~/.config/coffer/coffer.toml that exists.
fn locate(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = explicit {
        return Some(p.to_path_buf());
    }
    let mut candidates = vec![PathBuf::from("/etc/coffer/coffer.toml")];
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    if let Some(h) = config_home {
        candidates.push(h.join("coffer/coffer.toml"));
    }
    candidates.into_iter().find(|p| p.exists())
}

/// A profile that is not there, or a file that does not parse, is a usage
/// error (exit 2): the command line names what does not exist.
pub fn load(explicit: Option<&Path>, name: &str) -> Result<Profile> {
    let Some(path) = locate(explicit) else {
        return Err(Usage(format!(
            "--profile {name}: no configuration file (give --config FILE or COFFER_CONFIG, or create /etc/coffer/coffer.toml)"
        ))
        .into());
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Usage(format!("--profile {name}: configuration file {}: {e}", path.display())))?;
    let mut file: ConfigFile = toml::from_str(&text)
        .map_err(|e| Usage(format!("configuration file {}: {}", path.display(), e.message().trim())))?;
    file.profile
        .remove(name)
        .ok_or_else(|| Usage(format!("configuration file {} has no [profile.{name}]", path.display())).into())
}

/// Fills in, from `--profile`, whatever the command line left out.
pub fn apply(cli: &mut Cli) -> Result<()> {
    let Some(name) = cli.profile.clone() else { return Ok(()) };
    let p = load(cli.config.as_deref(), &name)?;
    cli.repo = cli.repo.take().or(p.repository);
    cli.password_file = p.password_file;
    cli.metrics_file = cli.metrics_file.take().or(p.metrics_file);
    cli.price_file = cli.price_file.take().or(p.price_file);
    let s3 = &mut cli.s3;
    s3.s3_endpoint = s3.s3_endpoint.take().or(p.s3_endpoint);
    s3.s3_region = s3.s3_region.take().or(p.s3_region);
    s3.storage_class = s3.storage_class.take().or(p.storage_class);
    s3.s3_path_style |= p.s3_path_style;
    s3.s3_credentials_file = s3.s3_credentials_file.take().or(p.s3_credentials_file);
    s3.s3_profile = s3.s3_profile.take().or(p.s3_profile);
    s3.retention = s3.retention.take().or(p.retention);
    s3.retention_mode = s3.retention_mode.take().or(p.retention_mode);
    match &mut cli.command {
        Command::Backup(a) => {
            if a.paths.is_empty() && a.pg.is_none() && a.db.is_empty() && !a.pg_all {
                a.paths = p.paths;
                a.pg = p.pg;
                a.db = p.databases;
                a.pg_all = p.pg_all;
            }
            a.exclude.extend(p.exclude);
            a.exclude_if_present.extend(p.exclude_if_present);
            if a.tag.is_empty() {
                a.tag = p.tags;
            }
            a.host = a.host.take().or(p.host);
            a.one_file_system |= p.one_file_system;
            a.pg_tools.pg_bin_dir = a.pg_tools.pg_bin_dir.take().or(p.pg_bin_dir);
            if a.pg_base.is_some() {
                a.stanza = a.stanza.take().or(p.stanza.clone());
            }
        }
        Command::Forget(a) => {
            let none_given = [a.keep_last, a.keep_hourly, a.keep_daily, a.keep_weekly, a.keep_monthly, a.keep_yearly]
                .iter()
                .all(|n| *n == 0)
                && a.keep_tag.is_empty();
            if none_given {
                a.keep_last = p.keep_last.unwrap_or(0);
                a.keep_hourly = p.keep_hourly.unwrap_or(0);
                a.keep_daily = p.keep_daily.unwrap_or(0);
                a.keep_weekly = p.keep_weekly.unwrap_or(0);
                a.keep_monthly = p.keep_monthly.unwrap_or(0);
                a.keep_yearly = p.keep_yearly.unwrap_or(0);
                a.keep_tag = p.keep_tags;
            }
            // A profile's forget only considers that profile's snapshots.
            if a.tag.is_empty() {
                a.tag = p.tags;
            }
            a.host = a.host.take().or(p.host);
        }
        Command::WalPush(wal::WalPushArgs { wal: w, .. }) | Command::WalFetch(wal::WalFetchArgs { wal: w, .. }) => {
            w.stanza = w.stanza.take().or(p.stanza);
        }
        _ => {}
    }
    Ok(())
}

/// `retention = "30d"`: a duration as the command line takes it.
mod humantime_serde_opt {
    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<std::time::Duration>, D::Error> {
        use serde::Deserialize;
        let text: Option<String> = Option::deserialize(d)?;
        text.map(|t| humantime::parse_duration(&t).map_err(|e| serde::de::Error::custom(format!("{t:?}: {e}"))))
            .transpose()
    }
}

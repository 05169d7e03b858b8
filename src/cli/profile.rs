//! Named profiles from a configuration file, so that a crontab line is just
//! `coffer backup --profile nightly && coffer forget --profile nightly --prune`.
//!
//! A profile fills in what the command line left out; a flag given on the
//! command line always wins. Only the CLI reads this file: the core gets
//! plain options as from flags.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub repository: Option<String>,
    /// Passphrase file, used when no COFFER_PASSWORD* variable is set.
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub paths: Vec<PathBuf>,
    #[serde(default)]
    pub exclude: Vec<String>,
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
    pub s3_endpoint: Option<String>,
    pub s3_region: Option<String>,
    #[serde(default)]
    pub s3_path_style: bool,
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

pub fn load(explicit: Option<&Path>, name: &str) -> Result<Profile> {
    let Some(path) = locate(explicit) else {
        bail!("--profile {name}: no configuration file (give --config FILE or COFFER_CONFIG, or create /etc/coffer/coffer.toml)");
    };
    let text = std::fs::read_to_string(&path).with_context(|| format!("configuration file {}", path.display()))?;
    let mut file: ConfigFile =
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("configuration file {}: {}", path.display(), e.message()))?;
    file.profile.remove(name).with_context(|| format!("configuration file {} has no [profile.{name}]", path.display()))
}

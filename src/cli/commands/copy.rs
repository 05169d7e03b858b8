//! `coffer copy`: snapshots into a second repository (the offsite copy).

use crate::cli::args::Cli;
use crate::cli::context::{backend_at, open_with};
use crate::cli::output::Output;
use crate::cli::{exit, passphrase, Usage};
use anyhow::{Context, Result};
use clap::Args;

#[derive(Args)]
#[command(after_help = "Examples:
  coffer copy latest --to s3://offsite/db1        last night's snapshot offsite
  coffer copy --to-profile offsite                every snapshot not copied yet, into the profile's repository
  coffer copy --tag nightly --to-profile offsite --dry-run
                                                  what would be copied, and its size

The destination's passphrase comes from COFFER_TO_PASSWORD_FILE (or _COMMAND, or
COFFER_TO_PASSWORD), else from the --to-profile's password_file, else a prompt.")]
pub struct CopyArgs {
    /// Snapshots to copy: ids, unique id prefixes, or "latest" [default: every snapshot].
    pub snapshots: Vec<String>,
    /// Only snapshots with these tags (with "latest": the newest of them).
    #[arg(long)]
    pub tag: Vec<String>,
    /// The destination repository: a folder or s3://BUCKET/PREFIX (the S3 options apply to it too).
    #[arg(long, value_name = "REPO", env = "COFFER_TO_REPOSITORY", required_unless_present = "to_profile")]
    pub to: Option<String>,
    /// The destination as a profile of the configuration file: its repository, password_file and
    /// S3 settings.
    #[arg(long, value_name = "NAME", conflicts_with = "to")]
    pub to_profile: Option<String>,
    /// Read everything and say what would be copied, and its size; store nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(cli: &Cli, a: &CopyArgs, out: &Output) -> Result<u8> {
    // --retention is for what copy writes: the destination.
    let mut source_s3 = cli.s3.clone();
    source_s3.retention = None;
    let location = cli
        .repo
        .as_deref()
        .ok_or_else(|| Usage("copy: no source repository: use -r REPO, COFFER_REPOSITORY or a --profile".into()))?;
    let from = open_with(cli, backend_at(location, &source_s3)?)?;
    let to = open_destination(cli, a)?;
    let mut ids = Vec::new();
    if a.snapshots.is_empty() {
        ids.extend(from.list_snapshots()?.into_iter().filter(|(_, info)| info.has_tags(&a.tag)).map(|(id, _)| id));
        if ids.is_empty() {
            let tags = if a.tag.is_empty() { String::new() } else { format!(" with tags {}", a.tag.join(", ")) };
            return Err(Usage(format!("copy: {} holds no snapshot{tags}: nothing to copy", from.location())).into());
        }
    } else {
        for s in &a.snapshots {
            let id = from.find_snapshot(s, &a.tag)?;
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
    }
    let opts = coffer::CopyOptions { snapshots: ids, dry_run: a.dry_run, compression_level: 3 };
    let summary = coffer::copy(&from, &to, &opts)?;
    out.copy(&summary);
    Ok(exit::OK)
}

/// The destination: `--to` with the global S3 settings, or `--to-profile`
/// with its own over them; its passphrase from COFFER_TO_PASSWORD*, else
/// the profile's password_file.
fn open_destination(cli: &Cli, a: &CopyArgs) -> Result<coffer::Repository> {
    let mut s3 = cli.s3.clone();
    let (location, password_file) = match (&a.to, &a.to_profile) {
        (Some(to), _) => (to.clone(), None),
        (None, Some(name)) => {
            let p = crate::cli::profile::load(cli.config.as_deref(), name)?;
            s3.s3_endpoint = p.s3_endpoint.or(s3.s3_endpoint);
            s3.s3_region = p.s3_region.or(s3.s3_region);
            s3.s3_path_style |= p.s3_path_style;
            s3.s3_credentials_file = p.s3_credentials_file.or(s3.s3_credentials_file);
            s3.s3_profile = p.s3_profile.or(s3.s3_profile);
            s3.storage_class = p.storage_class.or(s3.storage_class);
            s3.retention = p.retention.or(s3.retention);
            s3.retention_mode = p.retention_mode.or(s3.retention_mode);
            let repo =
                p.repository.ok_or_else(|| Usage(format!("--to-profile {name}: the profile names no repository")))?;
            (repo, p.password_file)
        }
        (None, None) => return Err(Usage("copy: give --to REPO or --to-profile NAME".into()).into()),
    };
    let backend = backend_at(&location, &s3)?;
    if matches!(backend.get(coffer::Kind::Config, "config"), Err(e) if e.is_not_found()) {
        return Err(anyhow::Error::from(coffer::Error::NoRepository { location: backend.location() })
            .context(crate::cli::DESTINATION));
    }
    let pass = passphrase::read_or_file_from(&passphrase::DESTINATION, password_file.as_deref())
        .context(crate::cli::DESTINATION)?;
    let to = coffer::Repository::open(backend, pass.as_bytes()).context(crate::cli::DESTINATION)?;
    if to.is_write_only() {
        // copy reads the destination's manifests to skip what it holds already.
        return Err(anyhow::Error::from(to.write_only_error("be the destination of `coffer copy`"))
            .context(crate::cli::DESTINATION));
    }
    Ok(to)
}

//! `coffer init`: Create a repository: its config and a first key.

use crate::cli::args::{Cli, KdfArgs};
use crate::cli::context::backend;
use crate::cli::output::Output;
use crate::cli::{exit, passphrase};
use anyhow::Result;
use clap::Args;
use coffer::Repository;

#[derive(Args)]
#[command(after_help = "Examples:
  COFFER_PASSWORD_FILE=/etc/coffer/passphrase coffer init -r /srv/backup/coffer
  coffer init -r s3://acme-backups/db1 --s3-endpoint http://127.0.0.1:3900 --s3-path-style")]
pub struct InitArgs {
    #[command(flatten)]
    pub kdf: KdfArgs,
}

pub fn run(cli: &Cli, a: &InitArgs, out: &Output) -> Result<u8> {
    let backend = backend(cli)?;
    let pass = passphrase::read(true)?;
    let repo = Repository::init(backend, pass.as_bytes(), a.kdf.params())?;
    out.init(&repo);
    Ok(exit::OK)
}

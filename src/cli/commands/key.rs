//! `coffer key`: Manage the passphrases (key objects) that open the repository.

use crate::cli::args::{Cli, KdfArgs};
use crate::cli::context::open;
use crate::cli::output::Output;
use crate::cli::{exit, passphrase};
use anyhow::Result;
use clap::Subcommand;

#[derive(Subcommand)]
#[command(after_help = "Examples:
  COFFER_NEW_PASSWORD_FILE=/root/ops-passphrase coffer key add
  coffer key list
  COFFER_NEW_PASSWORD_FILE=/etc/coffer/passphrase.new coffer key passwd
  coffer key remove 3f2a9c")]
pub enum KeyCommand {
    /// List the repository's keys (passphrases).
    List,
    /// Add a passphrase (read from COFFER_NEW_PASSWORD_FILE / _COMMAND / COFFER_NEW_PASSWORD or a prompt).
    Add(KdfArgs),
    /// Change the passphrase in use: add the new key, then remove the old one.
    Passwd(KdfArgs),
    /// Remove a key by id or unique prefix (not the one in use, never the last).
    Remove {
        /// Key id or prefix, as `key list` shows it.
        key: String,
    },
}

pub fn run(cli: &Cli, k: &KeyCommand, out: &Output) -> Result<u8> {
    let mut repo = open(cli)?;
    match k {
        KeyCommand::List => out.keys(&repo.list_keys()?),
        KeyCommand::Add(kdf) => {
            let pass = passphrase::read_from(&passphrase::NEW, true)?;
            let name = repo.add_key(pass.as_bytes(), kdf.params())?;
            out.key_changed("added", &name);
        }
        KeyCommand::Passwd(kdf) => {
            let pass = passphrase::read_from(&passphrase::NEW, true)?;
            let name = repo.change_passphrase(pass.as_bytes(), kdf.params())?;
            out.key_changed("changed the passphrase; new key", &name);
        }
        KeyCommand::Remove { key } => {
            let name = repo.remove_key(key)?;
            out.key_changed("removed", &name);
        }
    }
    Ok(exit::OK)
}

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
  coffer key remove 3f2a9c
  coffer key add-file /etc/coffer/db1.key && chown postgres /etc/coffer/db1.key
  coffer key add-file --write-only /etc/coffer/backup-only.key")]
pub enum KeyCommand {
    /// List the repository's keys (passphrases).
    List,
    /// Add a passphrase (read from COFFER_NEW_PASSWORD_FILE / _COMMAND / COFFER_NEW_PASSWORD or a prompt).
    Add(AddArgs),
    /// Change the passphrase in use: add the new key, then remove the old one.
    Passwd(KdfArgs),
    /// Make a key file: a random secret in FILE (mode 600, never overwritten) that opens the
    /// repository without Argon2, for wal-push. Use it as COFFER_PASSWORD_FILE or password_file.
    AddFile {
        /// Where to write it; must not exist.
        file: std::path::PathBuf,
        #[command(flatten)]
        access: AccessArgs,
    },
    /// Remove a key by id or unique prefix (not the one in use, never the last).
    Remove {
        /// Key id or prefix, as `key list` shows it.
        key: String,
    },
}

#[derive(clap::Args)]
pub struct AddArgs {
    #[command(flatten)]
    access: AccessArgs,
    #[command(flatten)]
    kdf: KdfArgs,
}

#[derive(clap::Args)]
pub struct AccessArgs {
    /// A key that can only back up: it seals new snapshots to the repository's public key and
    /// cannot read any chunk, manifest or dump, not even those it wrote (format 3 repositories).
    #[arg(long)]
    write_only: bool,
}

impl AccessArgs {
    fn access(&self) -> coffer::Access {
        if self.write_only {
            coffer::Access::WriteOnly
        } else {
            coffer::Access::Full
        }
    }
}

pub fn run(cli: &Cli, k: &KeyCommand, out: &Output) -> Result<u8> {
    let mut repo = open(cli)?;
    match k {
        KeyCommand::List => out.keys(&repo.list_keys()?),
        KeyCommand::Add(a) => {
            let pass = passphrase::read_from(&passphrase::NEW, true)?;
            let name = repo.add_key(pass.as_bytes(), a.kdf.params(), a.access.access())?;
            out.key_changed(if a.access.write_only { "added write-only key" } else { "added" }, &name);
        }
        KeyCommand::Passwd(kdf) => {
            let pass = passphrase::read_from(&passphrase::NEW, true)?;
            let name = repo.change_passphrase(pass.as_bytes(), kdf.params())?;
            out.key_changed("changed the passphrase; new key", &name);
        }
        KeyCommand::AddFile { file, access } => {
            let mut written = false;
            let added = repo.add_key_file(access.access(), |text| {
                write_new_secret(file, text).map_err(|e| coffer::Error::io(file, e))?;
                written = true;
                Ok(())
            });
            match added {
                Ok(name) => {
                    let what = if access.write_only { "write-only key" } else { "key" };
                    out.key_changed(&format!("wrote key file {}; added {what}", file.display()), &name)
                }
                Err(e) => {
                    if written {
                        let _ = std::fs::remove_file(file);
                    }
                    return Err(e.into());
                }
            }
        }
        KeyCommand::Remove { key } => {
            let name = repo.remove_key(key)?;
            out.key_changed("removed", &name);
        }
    }
    Ok(exit::OK)
}

/// Writes a secret to a file that must not exist yet, readable by its owner only, synced.
fn write_new_secret(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

//! Where the passphrase comes from: COFFER_PASSWORD_FILE, then
//! COFFER_PASSWORD_COMMAND, then COFFER_PASSWORD, then a prompt on a TTY.
//! Never a command-line argument; never echoed, logged or put in an error.

use anyhow::{bail, Context, Result};
use std::io::IsTerminal;
use zeroize::Zeroizing;

/// Where one passphrase is read from: a prefix of environment variables
/// (`{prefix}_FILE`, `{prefix}_COMMAND`, `{prefix}`) and a prompt.
pub struct Source {
    pub prefix: &'static str,
    pub prompt: &'static str,
}

/// The repository's passphrase.
pub const CURRENT: Source = Source { prefix: "COFFER_PASSWORD", prompt: "passphrase" };
/// A passphrase for a new key (`key add`, `key passwd`).
pub const NEW: Source = Source { prefix: "COFFER_NEW_PASSWORD", prompt: "new passphrase" };

pub fn read(confirm: bool) -> Result<Zeroizing<String>> {
    read_from(&CURRENT, confirm)
}

/// The repository's passphrase; `profile_file` (a profile's password_file)
/// is used when no COFFER_PASSWORD* variable is set.
pub fn read_or_file(profile_file: Option<&std::path::Path>) -> Result<Zeroizing<String>> {
    let env_given = ["COFFER_PASSWORD_FILE", "COFFER_PASSWORD_COMMAND", "COFFER_PASSWORD"]
        .iter()
        .any(|v| std::env::var_os(v).is_some());
    match profile_file {
        Some(path) if !env_given => {
            let text = Zeroizing::new(
                std::fs::read_to_string(path)
                    .with_context(|| format!("profile password_file {}: cannot read the file", path.display()))?,
            );
            let pass = Zeroizing::new(strip_newline(&text).to_string());
            if pass.is_empty() {
                bail!("profile password_file {}: the passphrase is empty", path.display());
            }
            Ok(pass)
        }
        _ => read(false),
    }
}

pub fn read_from(source: &Source, confirm: bool) -> Result<Zeroizing<String>> {
    let (file_var, command_var, plain_var) =
        (format!("{}_FILE", source.prefix), format!("{}_COMMAND", source.prefix), source.prefix);
    let pass = if let Some(path) = std::env::var_os(&file_var) {
        let text = Zeroizing::new(
            std::fs::read_to_string(&path)
                .with_context(|| format!("{file_var}={}: cannot read the file", path.to_string_lossy()))?,
        );
        Zeroizing::new(strip_newline(&text).to_string())
    } else if let Some(cmd) = std::env::var_os(&command_var) {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .with_context(|| format!("{command_var}: cannot run sh"))?;
        let text = Zeroizing::new(String::from_utf8(out.stdout).unwrap_or_default());
        if !out.status.success() {
            bail!("{command_var} failed ({})", out.status);
        }
        Zeroizing::new(strip_newline(&text).to_string())
    } else if let Ok(p) = std::env::var(plain_var) {
        Zeroizing::new(p)
    } else if std::io::stdin().is_terminal() {
        let prompt = source.prompt;
        let p = Zeroizing::new(rpassword::prompt_password(format!("{prompt}: ")).context("reading the passphrase")?);
        if confirm {
            let again = Zeroizing::new(
                rpassword::prompt_password(format!("{prompt} again: ")).context("reading the passphrase")?,
            );
            if *again != *p {
                bail!("the two passphrases differ");
            }
        }
        p
    } else {
        bail!(
            "no {}: set {file_var} (recommended for cron), {command_var} or {plain_var}, or run on a terminal",
            source.prompt
        );
    };
    if pass.is_empty() {
        bail!("the passphrase is empty");
    }
    Ok(pass)
}

fn strip_newline(s: &str) -> &str {
    s.strip_suffix("\r\n").or_else(|| s.strip_suffix('\n')).unwrap_or(s)
}

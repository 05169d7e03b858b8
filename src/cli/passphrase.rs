//! Where the passphrase comes from: COFFER_PASSWORD_FILE, then
//! COFFER_PASSWORD_COMMAND, then COFFER_PASSWORD, then a prompt on a TTY.
//! Never a command-line argument; never echoed, logged or put in an error.

use anyhow::{bail, Context, Result};
use std::io::IsTerminal;
use zeroize::Zeroizing;

pub fn read(confirm: bool) -> Result<Zeroizing<String>> {
    let pass = if let Some(path) = std::env::var_os("COFFER_PASSWORD_FILE") {
        let text = Zeroizing::new(
            std::fs::read_to_string(&path)
                .with_context(|| format!("COFFER_PASSWORD_FILE={}: cannot read the file", path.to_string_lossy()))?,
        );
        Zeroizing::new(strip_newline(&text).to_string())
    } else if let Some(cmd) = std::env::var_os("COFFER_PASSWORD_COMMAND") {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("COFFER_PASSWORD_COMMAND: cannot run sh")?;
        let text = Zeroizing::new(String::from_utf8(out.stdout).unwrap_or_default());
        if !out.status.success() {
            bail!("COFFER_PASSWORD_COMMAND failed ({})", out.status);
        }
        Zeroizing::new(strip_newline(&text).to_string())
    } else if let Ok(p) = std::env::var("COFFER_PASSWORD") {
        Zeroizing::new(p)
    } else if std::io::stdin().is_terminal() {
        let p = Zeroizing::new(rpassword::prompt_password("passphrase: ").context("reading the passphrase")?);
        if confirm {
            let again = Zeroizing::new(rpassword::prompt_password("passphrase again: ").context("reading the passphrase")?);
            if *again != *p {
                bail!("the two passphrases differ");
            }
        }
        p
    } else {
        bail!(
            "no passphrase: set COFFER_PASSWORD_FILE (recommended for cron), COFFER_PASSWORD_COMMAND or \
             COFFER_PASSWORD, or run on a terminal"
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

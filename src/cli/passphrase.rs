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
/// The destination repository's (`copy --to`).
pub const DESTINATION: Source = Source { prefix: "COFFER_TO_PASSWORD", prompt: "destination passphrase" };
/// A passphrase for a new key (`key add`, `key passwd`).
pub const NEW: Source = Source { prefix: "COFFER_NEW_PASSWORD", prompt: "new passphrase" };

pub fn read(confirm: bool) -> Result<Zeroizing<String>> {
    read_from(&CURRENT, confirm)
}

/// The repository's passphrase; `profile_file` (a profile's password_file)
/// is used when no COFFER_PASSWORD* variable is set.
pub fn read_or_file(profile_file: Option<&std::path::Path>) -> Result<Zeroizing<String>> {
    read_or_file_from(&CURRENT, profile_file)
}

/// `read_or_file` for the passphrase `source` names.
pub fn read_or_file_from(source: &Source, profile_file: Option<&std::path::Path>) -> Result<Zeroizing<String>> {
    let p = source.prefix;
    let env_given =
        [format!("{p}_FILE"), format!("{p}_COMMAND"), p.to_string()].iter().any(|v| std::env::var_os(v).is_some());
    match profile_file {
        Some(path) if !env_given => {
            let text = read_secret_file(path)
                .with_context(|| format!("profile password_file {}: cannot read the file", path.display()))?;
            let pass = Zeroizing::new(strip_newline(&text).to_string());
            if pass.is_empty() {
                bail!("profile password_file {}: the passphrase is empty", path.display());
            }
            Ok(pass)
        }
        _ => read_from(source, false),
    }
}

pub fn read_from(source: &Source, confirm: bool) -> Result<Zeroizing<String>> {
    let (file_var, command_var, plain_var) =
        (format!("{}_FILE", source.prefix), format!("{}_COMMAND", source.prefix), source.prefix);
    let pass = if let Some(path) = std::env::var_os(&file_var) {
        let text = read_secret_file(std::path::Path::new(&path))
            .with_context(|| format!("{file_var}={}: cannot read the file", path.to_string_lossy()))?;
        Zeroizing::new(strip_newline(&text).to_string())
    } else if let Some(cmd) = std::env::var_os(&command_var) {
        let text = run_command(&command_var, &cmd)?;
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

/// A passphrase file's text. Only a regular file: reading a FIFO (or a
/// device) would wait for a writer forever, so it is opened without
/// blocking and refused.
fn read_secret_file(path: &std::path::Path) -> std::io::Result<Zeroizing<String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file (a FIFO or device could block forever)",
        ));
    }
    let mut text = Zeroizing::new(String::new());
    (&file).read_to_string(&mut text)?;
    Ok(text)
}

/// How long a password command may take, unless `{var}_TIMEOUT` says.
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs a password command (`sh -c`) and returns what it printed, within a
/// time limit: one that hangs is killed (with everything it started, when
/// there is no terminal to prompt on), and one that exits while a child of
/// its own keeps its output open is not waited for.
fn run_command(var: &str, cmd: &std::ffi::OsStr) -> Result<Zeroizing<String>> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let timeout_var = format!("{var}_TIMEOUT");
    let timeout = match std::env::var(&timeout_var) {
        Ok(t) => humantime::parse_duration(&t).with_context(|| format!("{timeout_var}={t}: not a duration"))?,
        Err(_) => COMMAND_TIMEOUT,
    };
    let mut c = std::process::Command::new("sh");
    c.arg("-c")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    // It prints a passphrase: it need not see the others, nor the database's.
    coffer::hide_secrets_from(&mut c);
    c.env_remove("PGPASSWORD");
    // Its own process group, so a timeout kills what it started too; not on
    // a terminal, where a prompt (pinentry) must stay in the foreground.
    let own_group = !std::io::stdin().is_terminal();
    if own_group {
        c.process_group(0);
    }
    let mut child = c.spawn().with_context(|| format!("{var}: cannot run sh"))?;
    let mut stdout = child.stdout.take().context("the command's output")?;
    let (tx, rx) = std::sync::mpsc::channel::<Zeroizing<Vec<u8>>>();
    std::thread::spawn(move || {
        let mut buf = Zeroizing::new(vec![0u8; 4096]);
        while let Ok(n @ 1..) = stdout.read(&mut buf) {
            if tx.send(Zeroizing::new(buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    let mut out = Zeroizing::new(Vec::new());
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        while let Ok(chunk) = rx.try_recv() {
            out.extend_from_slice(&chunk);
        }
        if let Some(status) = child.try_wait().with_context(|| format!("{var}: waiting for it"))? {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            if own_group {
                if let Some(group) = rustix::process::Pid::from_raw(child.id() as i32) {
                    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                }
            }
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "{var} did not finish within {} and was killed ({timeout_var} sets the limit)",
                humantime::format_duration(timeout)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    // What it printed before it exited is in the pipe already.
    let settle = std::time::Instant::now() + std::time::Duration::from_millis(200);
    while let Ok(chunk) = rx.recv_timeout(settle.saturating_duration_since(std::time::Instant::now())) {
        out.extend_from_slice(&chunk);
    }
    if !status.success() {
        bail!("{var} failed ({status})");
    }
    match String::from_utf8(std::mem::take(&mut *out)) {
        Ok(text) => Ok(Zeroizing::new(text)),
        Err(e) => {
            drop(Zeroizing::new(e.into_bytes()));
            bail!("{var} printed bytes that are not UTF-8")
        }
    }
}

fn strip_newline(s: &str) -> &str {
    s.strip_suffix("\r\n").or_else(|| s.strip_suffix('\n')).unwrap_or(s)
}

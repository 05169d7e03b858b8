//! `coffer completions` and `coffer man`: shell completions and manual pages
//! generated from the command line's own definition, so they never drift.

use crate::cli::args::Cli;
use crate::cli::exit;
use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use std::path::PathBuf;

#[derive(Args)]
#[command(after_help = "Examples:
  coffer completions bash > /etc/bash_completion.d/coffer
  coffer completions zsh > /usr/local/share/zsh/site-functions/_coffer
  coffer completions fish > ~/.config/fish/completions/coffer.fish")]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: clap_complete::Shell,
}

#[derive(Args)]
#[command(after_help = "Examples:
  coffer man | man -l -                 read coffer(1)
  coffer man --dir /usr/local/share/man/man1   install coffer.1 and one page per command")]
pub struct ManArgs {
    /// Write coffer.1 and a page per command (coffer-backup.1, ...) into DIR
    /// instead of coffer(1) to stdout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn completions(a: &CompletionsArgs) -> Result<u8> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(a.shell, &mut cmd, "coffer", &mut out);
    write_stdout(&out)?;
    Ok(exit::OK)
}

pub fn man(a: &ManArgs) -> Result<u8> {
    let cmd = Cli::command();
    let Some(dir) = &a.dir else {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut out).context("rendering coffer(1)")?;
        write_stdout(&out)?;
        return Ok(exit::OK);
    };
    std::fs::create_dir_all(dir).with_context(|| format!("{}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir).with_context(|| format!("writing manual pages into {}", dir.display()))?;
    Ok(exit::OK)
}

fn write_stdout(bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(bytes).and_then(|()| out.flush()).context("cannot write to standard output")
}

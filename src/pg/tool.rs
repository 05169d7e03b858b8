//! Running PostgreSQL's client tools: the one place that spawns them,
//! collects their stderr on a thread (so a full pipe never blocks one), and
//! turns how they exited into one error naming what ran.

use super::PgConnection;
use crate::engine::child::{tail, StderrCollector};
use crate::error::{Error, Result};
use std::io::{Read, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};

/// A tool that was started; `what` names it (and its target) in errors.
pub struct Running {
    child: Child,
    err: StderrCollector,
    what: String,
}

/// How a tool ended: its status and the start of its stderr.
pub struct Exit {
    pub status: ExitStatus,
    pub stderr: String,
}

/// The error for a tool run that failed.
pub fn failed(what: impl Into<String>, message: impl Into<String>) -> Error {
    Error::SourceFailed { source_name: what.into(), message: message.into() }
}

impl Running {
    /// Starts `cmd` (made by `PgConnection::tool`) with its stderr collected;
    /// stdin and stdout are as the caller set them.
    pub fn spawn(conn: &PgConnection, mut cmd: Command, what: impl Into<String>) -> Result<Running> {
        let mut child = cmd.stderr(Stdio::piped()).spawn().map_err(|e| conn.cannot_run(cmd.get_program(), e))?;
        let err = StderrCollector::start(&mut child);
        Ok(Running { child, err, what: what.into() })
    }

    pub fn what(&self) -> &str {
        &self.what
    }

    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    pub fn take_stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Stops the tool, e.g. before it sees the end of an input that failed.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    pub fn wait(mut self) -> Result<Exit> {
        let status = self.child.wait().map_err(|e| failed(&self.what, format!("waiting for it: {e}")))?;
        Ok(Exit { status, stderr: self.err.finish() })
    }

    /// Waits; its stderr when it exited 0, the error naming it otherwise.
    pub fn finish(self) -> Result<String> {
        let what = self.what.clone();
        self.wait()?.check(&what)
    }
}

impl Exit {
    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// The useful end of its stderr, on one line, with how it exited.
    pub fn summary(&self) -> String {
        tail(&self.stderr, self.status)
    }

    pub fn check(self, what: &str) -> Result<String> {
        if self.success() {
            Ok(self.stderr)
        } else {
            Err(failed(what, self.summary()))
        }
    }
}

impl PgConnection {
    /// Runs a tool to completion; its stdout on success.
    pub fn run(&self, mut cmd: Command, what: &str) -> Result<String> {
        cmd.stdout(Stdio::piped());
        let mut running = Running::spawn(self, cmd, what)?;
        let mut out = Vec::new();
        if let Some(mut stdout) = running.take_stdout() {
            // stderr drains on its own thread, so reading stdout to its end cannot deadlock.
            stdout.read_to_end(&mut out).map_err(|e| failed(what, format!("reading its output: {e}")))?;
        }
        running.finish()?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

/// `pg_restore --list` fed a stream as it goes by: it reads the archive's
/// head (the table of contents) and may exit before the stream ends, which
/// only ends the feeding. Proves that this pg_restore reads the archive.
pub struct TocLister {
    running: Running,
    stdin: Option<ChildStdin>,
}

impl TocLister {
    /// `what` names the dump in errors.
    pub fn start(conn: &PgConnection, what: &str) -> Result<TocLister> {
        let mut cmd = conn.tool("pg_restore");
        cmd.arg("--list").stdin(Stdio::piped()).stdout(Stdio::null());
        let mut running = Running::spawn(conn, cmd, what)?;
        let stdin = running.take_stdin();
        Ok(TocLister { running, stdin })
    }

    pub fn feed(&mut self, data: &[u8]) {
        if let Some(s) = self.stdin.as_mut() {
            if data.is_empty() || s.write_all(data).is_err() {
                self.stdin = None;
            }
        }
    }

    /// Ends the stream.
    pub fn finish(mut self) -> Result<()> {
        drop(self.stdin.take());
        let what = self.running.what().to_string();
        let exit = self.running.wait()?;
        if !exit.success() {
            return Err(failed(what, format!("pg_restore cannot read the archive: {}", exit.summary())));
        }
        Ok(())
    }

    /// Stops it without waiting for the stream's end.
    pub fn abort(mut self) {
        drop(self.stdin.take());
        self.running.kill();
        let _ = self.running.wait();
    }
}

//! A child process's stderr, collected on a thread (so a full pipe never
//! blocks it) and summarised on one line with how it exited: for
//! PostgreSQL's tools (`pg::tool`) and a backup's `--stdin-from-command`.

use std::io::Read;
use std::process::{Child, ExitStatus};

/// The useful end of a tool's stderr, on one line, with how it exited.
pub fn tail(stderr: &str, status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    // The tools' error lines say what went wrong; the SQL context after
    // them does not. Fall back to the last lines.
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("error:") || l.contains("ERROR:") || l.contains("FATAL:"))
        .take(2)
        .collect();
    let text = if errors.is_empty() { lines[lines.len().saturating_sub(3)..].join(" / ") } else { errors.join(" / ") };
    let how = match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("killed by signal {s}"),
        _ => "unknown status".into(),
    };
    if text.is_empty() {
        how
    } else {
        format!("{text} ({how})")
    }
}

/// Collects a child's stderr on a thread.
pub struct StderrCollector(Option<std::thread::JoinHandle<String>>);

impl StderrCollector {
    pub fn start(child: &mut Child) -> StderrCollector {
        let handle = child.stderr.take().map(|mut err| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                // Keep at most 1 MiB: enough for any error message.
                let _ = (&mut err).take(1 << 20).read_to_end(&mut buf);
                let _ = std::io::copy(&mut err, &mut std::io::sink());
                String::from_utf8_lossy(&buf).into_owned()
            })
        });
        StderrCollector(handle)
    }

    pub fn finish(self) -> String {
        self.0.and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

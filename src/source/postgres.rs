//! PostgreSQL source: streams `pg_dump --format=custom --compress=0` (or
//! `pg_dumpall --globals-only`) through the chunker with bounded memory.
//!
//! The stream is read as it goes by (`pg::archive::Scanner`): the manifest
//! records the archive's table of contents, with each table's rows, so a
//! partial restore can pick objects and a drill can check counts; a dump
//! that is not one whole archive, or that names another database than the
//! one asked for, fails the backup. A pg_dump that exits non-zero or is
//! killed fails the backup with its stderr: the producer returns an error,
//! so no manifest is ever written.

use super::SourceItem;
use crate::crypto::{HashAlgo, HashingReader};
use crate::engine::chunker::{Chunker, ChunkerParams};
use crate::engine::pipeline::BufferPool;
use crate::error::{Error, Result};
use crate::format::manifest::{DumpKind, DumpSource};
use crate::pg::archive::Scanner;
use crate::pg::tool::{failed, Running};
use crate::pg::{PgConnection, Toc};
use std::io::Read;
use std::process::Stdio;
use std::time::Instant;

/// Dumps one database (or the globals) and emits its stream.
pub fn dump(
    conn: &PgConnection,
    kind: DumpKind,
    chunker: ChunkerParams,
    algo: HashAlgo,
    on_bytes: &(dyn Fn(u64) + Sync),
    buffers: &BufferPool,
    emit: &mut dyn FnMut(SourceItem) -> Result<()>,
) -> Result<()> {
    let started = Instant::now();
    let (tool, name, format) = match kind {
        DumpKind::Database => {
            let db = conn.database().ok_or(Error::Dump(crate::error::DumpChoice::NoDatabaseToDump))?;
            ("pg_dump", db, "custom")
        }
        DumpKind::Globals => ("pg_dumpall", "globals".to_string(), "plain"),
    };
    let what = match kind {
        DumpKind::Database => format!("pg_dump of database {name:?} on {}", conn.display()),
        DumpKind::Globals => format!("pg_dumpall --globals-only on {}", conn.display()),
    };
    let pg_dump_version = conn.tool_version(tool)?;

    let mut cmd = conn.tool_for_db(tool);
    match kind {
        // -Z0: pg_dump's zlib is far slower than coffer's zstd, and
        // uncompressed dumps deduplicate night to night.
        DumpKind::Database => cmd
            .args(["--format=custom", "--compress=0"])
            .arg(format!("--lock-wait-timeout={}", conn.timeouts().lock_wait.as_millis().max(1))),
        DumpKind::Globals => cmd.arg("--globals-only"),
    };
    cmd.stdout(Stdio::piped());
    let mut tool = Running::spawn(conn, cmd, what.clone())?;
    let stdout = tool.take_stdout().ok_or_else(|| Error::Internal(format!("{what}: stdout is not piped")))?;
    widen_pipe(&stdout);

    let mut scanner = match kind {
        DumpKind::Database => Some(Scanner::new()),
        DumpKind::Globals => None,
    };

    let skeleton = DumpSource {
        name: name.clone(),
        kind,
        server: conn.display(),
        server_version: String::new(),
        pg_dump_version: pg_dump_version.clone(),
        format: format.to_string(),
        size: 0,
        sha256: None,
        blake3: None,
        chunks: Vec::new(),
        toc: Vec::new(),
        duration_secs: 0.0,
    };
    emit(SourceItem::DumpStart(skeleton))?;

    let mut reader = HashingReader::new(Scanning { inner: stdout, scanner: scanner.as_mut() }, algo);
    let split = Chunker::new(chunker).split(
        &mut reader,
        |chunk| {
            on_bytes(chunk.len() as u64);
            emit(SourceItem::Chunk(buffers.copy_of(chunk)))
        },
        |e| failed(&what, format!("reading its output: {e}")),
    );
    let HashingReader { hasher, bytes, .. } = reader;
    if split.is_err() {
        // Stop pg_dump rather than leave it blocked on a full pipe.
        tool.kill();
    }
    let exit = tool.wait()?;
    split?;
    if !exit.success() {
        let mut message = exit.summary();
        // pg_dump bounds its wait for each table's lock with a statement timeout.
        if kind == DumpKind::Database && exit.stderr.contains("canceling statement due to statement timeout") {
            message.push_str(&format!(
                "; a table stayed locked longer than the lock wait timeout of {}",
                humantime::format_duration(conn.timeouts().lock_wait)
            ));
        }
        return Err(failed(what, message));
    }
    let toc = match scanner {
        Some(s) => {
            let archive = s
                .finish()
                .map_err(|e| failed(&what, format!("its output is not a whole custom-format archive: {e}")))?;
            // What was dumped must be what the manifest will call it.
            if archive.header.dbname != name {
                return Err(failed(
                    what,
                    format!(
                        "the archive is of database {:?}, not {name:?}: nothing is stored under the wrong name",
                        archive.header.dbname
                    ),
                ));
            }
            Toc::of(&archive)
        }
        None => Toc::default(),
    };
    let server_version = match kind {
        DumpKind::Database => toc.server_version.clone(),
        DumpKind::Globals => conn.server_version().unwrap_or_default(),
    };
    emit(SourceItem::DumpEnd {
        algo,
        digest: hasher.finalize(),
        size: bytes,
        server_version,
        toc: toc.entries,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

/// A 1 MiB pipe (Linux's default unprivileged maximum) instead of 64 KiB:
/// pg_dump and coffer then wake each other 16 times less often. Best effort.
fn widen_pipe(pipe: &std::process::ChildStdout) {
    let _ = rustix::pipe::fcntl_setpipe_size(pipe, 1 << 20);
}

/// A reader that feeds what passes through it to the archive scanner.
struct Scanning<'a, R: Read> {
    inner: R,
    scanner: Option<&'a mut Scanner>,
}

impl<R: Read> Read for Scanning<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(s) = self.scanner.as_mut() {
            // A stream that is not an archive fails at once, not after gigabytes.
            s.feed(&buf[..n]).map_err(|e| std::io::Error::other(format!("not a custom-format archive: {e}")))?;
        }
        Ok(n)
    }
}

//! Any other dump (mysqldump, redis-cli --rdb -, ...): the standard output
//! of a command run by `sh -c`, streamed through the chunker with bounded
//! memory. A command that exits non-zero, or is killed, fails the backup
//! with its stderr, exactly as a failed pg_dump does: the producer returns
//! an error, so no manifest is ever written.

use super::SourceItem;
use crate::crypto::{HashAlgo, HashingReader};
use crate::engine::child::{tail, StderrCollector};
use crate::engine::chunker::{Chunker, ChunkerParams};
use crate::engine::pipeline::BufferPool;
use crate::error::{Error, Result};
use crate::format::manifest::StreamSource;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs `command` and emits its output as the stream `name`.
pub fn run(
    name: &str,
    command: &str,
    chunker: ChunkerParams,
    algo: HashAlgo,
    on_bytes: &(dyn Fn(u64) + Sync),
    buffers: &BufferPool,
    emit: &mut dyn FnMut(SourceItem) -> Result<()>,
) -> Result<()> {
    let started = Instant::now();
    let what = format!("command {command:?} (stream {name})");
    let failed = |message: String| Error::SourceFailed { source_name: what.clone(), message };
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(command).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // None of coffer's secrets reach the command.
    crate::hide_secrets_from(&mut cmd);
    let mut child = cmd.spawn().map_err(|e| failed(format!("cannot run /bin/sh: {e}")))?;
    let stderr = StderrCollector::start(&mut child);
    let stdout = child.stdout.take().ok_or_else(|| Error::Internal(format!("{what}: stdout is not piped")))?;
    emit(SourceItem::StreamStart(StreamSource {
        name: name.to_string(),
        command: command.to_string(),
        size: 0,
        sha256: None,
        blake3: None,
        chunks: Vec::new(),
        duration_secs: 0.0,
    }))?;
    let mut reader = HashingReader::new(stdout, algo);
    let split = Chunker::new(chunker).split(
        &mut reader,
        |chunk| {
            on_bytes(chunk.len() as u64);
            emit(SourceItem::Chunk(buffers.copy_of(chunk)))
        },
        |e| failed(format!("reading its output: {e}")),
    );
    if split.is_err() {
        // Stop it rather than leave it blocked on a full pipe.
        let _ = child.kill();
    }
    let status = child.wait().map_err(|e| failed(format!("waiting for it: {e}")))?;
    let err_text = stderr.finish();
    split?;
    if !status.success() {
        return Err(failed(tail(&err_text, status)));
    }
    let HashingReader { hasher, bytes, .. } = reader;
    emit(SourceItem::StreamEnd {
        algo,
        digest: hasher.finalize(),
        size: bytes,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

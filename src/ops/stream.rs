//! A stream of chunks read in order, authenticated, checked whole against
//! its digest: a database dump fed to pg_restore or written to a file, or
//! one file's bytes (`coffer dump`).

use crate::crypto::HashAlgo;
use crate::engine::atomic_file::Turns;
use crate::engine::pipeline::{self, BufferPool};
use crate::error::{Error, Result};
use crate::format::encoding::Id;
use crate::format::Index;
use crate::ops::progress::{NoProgress, Progress};
use crate::repo::{ChunkCheck, Repository};

/// Where a stream goes.
pub enum Out<'a> {
    /// In order, chunk by chunk (pg_restore's or psql's stdin, `pg_restore
    /// --list`, stdout). Each chunk's id is checked (keyed hash), as the
    /// receiver uses the data before the stream's end.
    Stream(&'a mut dyn FnMut(&[u8]) -> Result<()>),
    /// Into an empty file, its space reserved first (`preallocate`), each
    /// chunk at its offset, written by the workers one at a time. Nothing may
    /// use the file before `run` returns Ok, so the tag check per chunk and
    /// the digest of the whole suffice.
    File(&'a std::fs::File, &'a std::path::Path),
}

/// How a stream is read: by how many workers, and who is told of each chunk.
#[derive(Clone, Copy)]
pub struct Fetch<'a> {
    pub workers: usize,
    pub progress: &'a dyn Progress,
}

impl<'a> Fetch<'a> {
    pub fn new(workers: usize, progress: Option<&'a (dyn Progress + Send)>) -> Fetch<'a> {
        match progress {
            Some(p) => Fetch { workers, progress: p },
            None => Fetch { workers, progress: &NoProgress },
        }
    }
}

/// What a stream is, from a manifest.
pub struct Stream<'a> {
    /// Names it in errors ("dump of app in snapshot 1a2b3c4d").
    pub object: &'a str,
    pub chunks: &'a [Id],
    pub size: u64,
    pub algo: HashAlgo,
    /// Hex, as the manifest records it.
    pub digest: &'a str,
}

impl Stream<'_> {
    /// Streams the bytes into `out`, then checks the whole against the
    /// digest and size. Returns the chunks read.
    pub fn run(
        &self,
        repo: &Repository,
        index: &Index,
        workers: usize,
        progress: &dyn Progress,
        out: Out<'_>,
    ) -> Result<u64> {
        let object = self.object;
        let algo = self.algo;
        let (mut stream, file, check) = match out {
            Out::Stream(sink) => (Some(sink), None, ChunkCheck::Content),
            Out::File(file, path) => {
                crate::engine::atomic_file::preallocate(file, self.size).map_err(|e| Error::io(path, e))?;
                (None, Some((file, path)), ChunkCheck::Tag)
            }
        };
        // Each chunk's offset, from the (authenticated) index's sizes;
        // read_chunk refuses a chunk whose plaintext differs from its size.
        let (placed, total) = index
            .offsets(self.chunks)
            .map_err(|c| Error::corrupt(object, format!("chunk {} is in no pack", c.short())))?;
        if total != self.size {
            return Err(Error::corrupt(object, format!("its chunks add up to {total} bytes, not its {}", self.size)));
        }
        progress.start("chunks", self.chunks.len() as u64, self.size);
        let mut chunks = 0u64;
        // As a file restore: more reads in flight for a remote store.
        let cpu = workers;
        let workers = workers.max(repo.backend().read_parallelism());
        let window = (cpu * 4).max(workers);
        let buffers = BufferPool::new(window + workers * 2);
        let turns = Turns::default();
        // The digest runs on a thread of its own, behind the writes, so the two
        // overlap.
        let hash = |hash_rx: crossbeam_channel::Receiver<Vec<u8>>| {
            let (mut hasher, mut size) = (algo.hasher(), 0u64);
            for data in hash_rx {
                hasher.update(&data);
                size += data.len() as u64;
                buffers.give(data);
            }
            Ok((hasher.finalize(), size))
        };
        let ((), (digest, size)) = pipeline::with_helper(4, hash, |hash_tx| {
            pipeline::run(
                workers,
                window,
                |emitter| placed.iter().try_for_each(|p| emitter.emit(*p)),
                |(id, offset)| {
                    let data = repo.read_chunk(index, &id, check, &buffers)?;
                    if let Some((file, path)) = file {
                        turns.write_at(file, &data, offset, false).map_err(|e| Error::io(path, e))?;
                    }
                    Ok(data)
                },
                |data| {
                    chunks += 1;
                    progress.bytes_done(data.len() as u64);
                    progress.item_done();
                    if let Some(sink) = stream.as_mut() {
                        sink(&data)?;
                    }
                    hash_tx.send(data).map_err(|_| Error::Internal("hasher stopped".into()))
                },
            )
        })?;
        if hex::encode(digest) != self.digest || size != self.size {
            let reason = format!("restored stream does not match the manifest's {}", algo.name());
            return Err(Error::corrupt(object, reason));
        }
        Ok(chunks)
    }
}

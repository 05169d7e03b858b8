//! Sources: where backup data comes from. Each turns its input into a
//! stream of `SourceItem`s for the backup pipeline; none touches the
//! repository.

pub mod command;
pub mod pg_base;
pub mod postgres;
pub mod tree;

use crate::crypto::HashAlgo;
use crate::format::encoding::RawPath;
use crate::format::manifest::{DumpSource, Entry};

/// What a source emits, in order.
pub enum SourceItem {
    /// A source begins (its path as stored).
    Begin(RawPath),
    /// A complete entry with no content to read (dir, symlink, or a file
    /// reused from the parent snapshot with its chunk list).
    Entry(Entry),
    /// A file begins; its `Chunk`s follow, then `FileEnd` or `FileFailed`.
    FileStart(Entry),
    Chunk(Vec<u8>),
    FileEnd {
        algo: HashAlgo,
        digest: [u8; 32],
        size: u64,
        changed: bool,
    },
    /// The file begun last could not be read to its end; drop it.
    FileFailed,
    /// Something could not be read; listed in the summary (exit code 3).
    Unreadable(String),
    /// A command's output begins; its `Chunk`s follow, then `StreamEnd`.
    StreamStart(crate::format::manifest::StreamSource),
    StreamEnd {
        algo: HashAlgo,
        digest: [u8; 32],
        size: u64,
        duration_secs: f64,
    },
    /// A base backup's tree (begun by `Begin`) is complete: its facts.
    PgBaseEnd(Box<crate::format::manifest::PgBase>),
    /// A database dump begins; its `Chunk`s follow, then `DumpEnd`.
    DumpStart(DumpSource),
    DumpEnd {
        algo: HashAlgo,
        digest: [u8; 32],
        size: u64,
        server_version: String,
        toc: Vec<crate::pg::TocEntry>,
        duration_secs: f64,
    },
}

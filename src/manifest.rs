//! The snapshot manifest: what a snapshot holds, as JSON inside an encrypted
//! `snapshots/<id>` object. Its presence is what makes a snapshot exist.
//!
//! Restore treats a manifest as hostile input: `validate` checks every path
//! before anything is written.

use crate::encoding::{Id, RawPath};
use serde::{Deserialize, Serialize};

pub const MANIFEST_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub time: chrono::DateTime<chrono::Utc>,
    pub host: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The coffer version that wrote it.
    pub tool: String,
    #[serde(default)]
    pub parent: Option<Id>,
    pub sources: Vec<Source>,
    pub summary: Summary,
    /// Files that could not be read or changed while being read.
    #[serde(default)]
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Source {
    Tree(TreeSource),
    Postgres(DumpSource),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DumpKind {
    /// `pg_dump --format=custom --compress=0` of one database.
    Database,
    /// `pg_dumpall --globals-only`: roles and tablespaces, plain SQL.
    Globals,
}

/// One PostgreSQL dump stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DumpSource {
    /// The database name; "globals" for the globals dump.
    pub name: String,
    pub kind: DumpKind,
    /// The connection it was taken from, without password.
    pub server: String,
    pub server_version: String,
    pub pg_dump_version: String,
    /// "custom" (pg_restore archive) or "plain" (SQL).
    pub format: String,
    pub size: u64,
    /// SHA-256 of the whole stream, hex.
    pub sha256: String,
    pub chunks: Vec<Id>,
    /// The archive's table of contents (custom format only).
    #[serde(default)]
    pub toc: Vec<crate::postgres::TocEntry>,
    pub duration_secs: f64,
}

/// A backed-up path: its entries in walk order (a directory before its
/// contents), paths relative and `/`-separated, as given on the command line
/// without a leading `/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeSource {
    pub path: RawPath,
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub path: RawPath,
    pub kind: EntryKind,
    /// Permission bits, including setuid/setgid/sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Change time and inode at backup: the next backup re-reads a file
    /// only when size, mtime, ctime or inode differ.
    #[serde(default)]
    pub ctime_ns: i64,
    #[serde(default)]
    pub inode: u64,
    #[serde(default)]
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<RawPath>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<Id>,
    /// SHA-256 of the file's content, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The file changed while it was read; its content may be inconsistent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changed: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    #[serde(default)]
    pub databases: u64,
    /// Bytes read from the sources.
    pub bytes: u64,
    /// Chunks and bytes (before compression) not already in the repository.
    pub new_chunks: u64,
    pub new_bytes: u64,
    /// Bytes added to the repository (packs, after compression and encryption).
    pub stored_bytes: u64,
    pub duration_secs: f64,
}

impl Manifest {
    /// File-tree entries of every tree source.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.sources.iter().flat_map(|s| match s {
            Source::Tree(t) => t.entries.iter(),
            Source::Postgres(_) => [].iter(),
        })
    }

    pub fn dumps(&self) -> impl Iterator<Item = &DumpSource> {
        self.sources.iter().filter_map(|s| match s {
            Source::Postgres(d) => Some(d),
            Source::Tree(_) => None,
        })
    }

    pub fn chunk_ids(&self) -> impl Iterator<Item = &Id> {
        self.entries().flat_map(|e| e.chunks.iter()).chain(self.dumps().flat_map(|d| d.chunks.iter()))
    }

    /// Does it carry every one of these tags?
    pub fn has_tags(&self, tags: &[String]) -> bool {
        tags.iter().all(|t| self.tags.contains(t))
    }

    /// The names of its sources: tree paths, and `pg:NAME` for dumps.
    /// Snapshots of the same host and source names form a group (parent
    /// lookup, retention).
    pub fn source_names(&self) -> Vec<String> {
        self.sources
            .iter()
            .map(|s| match s {
                Source::Tree(t) => t.path.display(),
                Source::Postgres(d) => format!("pg:{}", d.name),
            })
            .collect()
    }

    /// Checks everything restore relies on; `Err` names the first bad entry.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for d in self.dumps() {
            if d.sha256.len() != 64 || !d.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err((d.name.clone(), "dump without a valid checksum".into()));
            }
        }
        for e in self.entries() {
            let shown = e.path.display();
            check_relative_path(&e.path.0).map_err(|r| (shown.clone(), r))?;
            match e.kind {
                EntryKind::Symlink if e.target.as_ref().is_none_or(|t| t.0.is_empty()) => {
                    return Err((shown, "symlink without a target".into()));
                }
                EntryKind::File if e.sha256.is_none() => {
                    return Err((shown, "file without a checksum".into()));
                }
                EntryKind::Dir | EntryKind::Symlink if !e.chunks.is_empty() => {
                    return Err((shown, "non-file entry with content".into()));
                }
                _ => {}
            }
            if let Some(t) = &e.target {
                if t.0.contains(&0) {
                    return Err((shown, "symlink target holds a NUL byte".into()));
                }
            }
        }
        Ok(())
    }
}

/// A stored path must be relative, `/`-separated, with no empty, `.` or `..`
/// component and no NUL byte: it can then only name a place inside the target.
pub fn check_relative_path(p: &[u8]) -> Result<(), String> {
    if p.is_empty() {
        return Err("empty path".into());
    }
    if p[0] == b'/' {
        return Err("absolute path".into());
    }
    if p.contains(&0) {
        return Err("NUL byte in path".into());
    }
    for comp in p.split(|&b| b == b'/') {
        match comp {
            b"" => return Err("empty path component".into()),
            b"." => return Err("'.' component".into()),
            b".." => return Err("'..' component escapes the target".into()),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused() {
        for bad in [&b"../x"[..], b"/etc/passwd", b"a/../../b", b"a//b", b"./a", b"a/.", b"", b"a\0b", b"a/"] {
            assert!(check_relative_path(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        for good in [&b"a"[..], b"a/b/c", b"..a", b"a..", b".hidden/x", &[0xff, b'/', 0xfe]] {
            assert!(check_relative_path(good).is_ok(), "{:?}", String::from_utf8_lossy(good));
        }
    }
}

//! Looking inside snapshots without restoring: a folder's listing (`ls`),
//! what changed between two snapshots (`diff`), one file's bytes (`dump`).
//! Each reads the manifests it names, and `dump` the file's chunks: nothing
//! else of the repository.

use crate::error::{Error, Result};
use crate::format::encoding::Id;
use crate::format::manifest::{DumpSource, Entry, EntryKind, Manifest};
use crate::repo::Repository;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// A stored path as given on a command line: without leading or trailing
/// `/` (stored paths have neither), "" for the top.
pub fn stored_path(given: &[u8]) -> &[u8] {
    let start = given.iter().position(|&b| b != b'/').unwrap_or(given.len());
    let end = given.iter().rposition(|&b| b != b'/').map_or(start, |i| i + 1);
    &given[start..end.max(start)]
}

fn parent(path: &[u8]) -> &[u8] {
    path.iter().rposition(|&b| b == b'/').map_or(&[][..], |i| &path[..i])
}

fn below(path: &[u8], dir: &[u8]) -> bool {
    dir.is_empty() || (path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/')
}

/// The entries `ls` shows for `dir`, in walk order: its children, or with
/// `recursive` everything below it; a `dir` that names a file or a symlink
/// shows that entry. Above the backed-up paths (the top, or `home` for a
/// backup of `/home/alice`), the folders backed up are its children.
pub fn list<'m>(manifest: &'m Manifest, snapshot: &Id, dir: &[u8], recursive: bool) -> Result<Vec<&'m Entry>> {
    let dir = stored_path(dir);
    if let Some(e) = manifest.entries().find(|e| e.path.0 == dir) {
        if e.kind != EntryKind::Dir {
            return Ok(vec![e]);
        }
    }
    let paths: HashSet<&[u8]> = manifest.entries().map(|e| e.path.0.as_slice()).collect();
    let under: Vec<&Entry> = manifest.entries().filter(|e| below(&e.path.0, dir)).collect();
    // The top exists even in a snapshot of databases alone.
    if under.is_empty() && !paths.contains(dir) && !dir.is_empty() {
        return Err(Error::NoSuchPath { snapshot: snapshot.short(), path: String::from_utf8_lossy(dir).into_owned() });
    }
    if recursive {
        return Ok(under);
    }
    // A child's parent is `dir`, or is no entry at all (a backed-up folder
    // seen from above it).
    Ok(under
        .into_iter()
        .filter(|e| {
            let p = parent(&e.path.0);
            p == dir || (!paths.contains(p) && !under_entry(&paths, p, dir))
        })
        .collect())
}

/// Is some folder between `dir` (exclusive) and `p` (inclusive) an entry?
fn under_entry(paths: &HashSet<&[u8]>, mut p: &[u8], dir: &[u8]) -> bool {
    while p.len() > dir.len() {
        if paths.contains(p) {
            return true;
        }
        p = parent(p);
    }
    false
}

/// How an entry differs between two snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    /// Its content (or a symlink's target) differs.
    Modified,
    /// A file in one, a folder or symlink in the other.
    Type,
    /// Only mode, owner or modification time differ.
    Metadata,
}

impl Change {
    /// restic's letters: `+`, `-`, `M`, `T`, `U`.
    pub fn letter(self) -> char {
        match self {
            Change::Added => '+',
            Change::Removed => '-',
            Change::Modified => 'M',
            Change::Type => 'T',
            Change::Metadata => 'U',
        }
    }
}

#[derive(Debug, Serialize)]
pub struct EntryChange {
    pub change: Change,
    pub path: String,
    pub kind: EntryKind,
    /// Sizes in the first and the second snapshot (absent where it is not).
    pub old_size: Option<u64>,
    pub new_size: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct DumpChange {
    pub change: Change,
    pub name: String,
    pub old_size: Option<u64>,
    pub new_size: Option<u64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Diff {
    pub from: String,
    pub to: String,
    pub entries: Vec<EntryChange>,
    pub databases: Vec<DumpChange>,
    /// Bytes of the files added or modified, as the second snapshot has them.
    pub bytes_added: u64,
    pub bytes_removed: u64,
}

fn entry_change(old: &Entry, new: &Entry) -> Option<Change> {
    if old.kind != new.kind {
        return Some(Change::Type);
    }
    if old.size != new.size || old.digest() != new.digest() || old.chunks != new.chunks || old.target != new.target {
        return Some(Change::Modified);
    }
    if old.mode != new.mode || old.uid != new.uid || old.gid != new.gid || old.mtime_ns != new.mtime_ns {
        return Some(Change::Metadata);
    }
    None
}

fn dump_key(d: &DumpSource) -> (String, crate::format::manifest::DumpKind) {
    (d.name.clone(), d.kind)
}

/// What changed from snapshot `a` to snapshot `b`: entries in `b`'s walk
/// order, then those only `a` has; databases whose dump differs.
pub fn diff(a: (&Id, &Manifest), b: (&Id, &Manifest)) -> Diff {
    let (old, new) = (a.1, b.1);
    let mut out = Diff { from: a.0.to_hex(), to: b.0.to_hex(), ..Default::default() };
    let before: HashMap<&[u8], &Entry> = old.entries().map(|e| (e.path.0.as_slice(), e)).collect();
    let mut seen = HashSet::new();
    let size = |e: &Entry| (e.kind == EntryKind::File).then_some(e.size);
    for e in new.entries() {
        seen.insert(e.path.0.as_slice());
        let change = match before.get(e.path.0.as_slice()) {
            None => Some(Change::Added),
            Some(o) => entry_change(o, e),
        };
        let Some(change) = change else { continue };
        let o = before.get(e.path.0.as_slice());
        if matches!(change, Change::Added | Change::Modified | Change::Type) {
            out.bytes_added += size(e).unwrap_or(0);
        }
        out.entries.push(EntryChange {
            change,
            path: e.path.display(),
            kind: e.kind,
            old_size: o.and_then(|o| size(o)),
            new_size: size(e),
        });
    }
    for e in old.entries().filter(|e| !seen.contains(e.path.0.as_slice())) {
        out.bytes_removed += size(e).unwrap_or(0);
        out.entries.push(EntryChange {
            change: Change::Removed,
            path: e.path.display(),
            kind: e.kind,
            old_size: size(e),
            new_size: None,
        });
    }
    let dumps_before: HashMap<_, &DumpSource> = old.dumps().map(|d| (dump_key(d), d)).collect();
    let mut dumps_seen = HashSet::new();
    for d in new.dumps() {
        dumps_seen.insert(dump_key(d));
        let change = match dumps_before.get(&dump_key(d)) {
            None => Some(Change::Added),
            Some(o) if o.digest() != d.digest() || o.size != d.size => Some(Change::Modified),
            Some(_) => None,
        };
        if let Some(change) = change {
            let old_size = dumps_before.get(&dump_key(d)).map(|o| o.size);
            out.databases.push(DumpChange { change, name: d.name.clone(), old_size, new_size: Some(d.size) });
        }
    }
    for d in old.dumps().filter(|d| !dumps_seen.contains(&dump_key(d))) {
        out.databases.push(DumpChange {
            change: Change::Removed,
            name: d.name.clone(),
            old_size: Some(d.size),
            new_size: None,
        });
    }
    out
}

/// Writes one file's bytes of a snapshot to `out`, in order, each chunk
/// checked before it is written (its keyed id) and the whole file against
/// the manifest's digest at its end. A file that fails the check has had
/// its earlier bytes written already: the error says so. Returns the bytes.
pub fn dump_file(
    repo: &Repository,
    snapshot: &Id,
    manifest: &Manifest,
    path: &[u8],
    workers: usize,
    out: &mut dyn std::io::Write,
) -> Result<u64> {
    let path = stored_path(path);
    let shown = String::from_utf8_lossy(path).into_owned();
    let e = manifest
        .entries()
        .find(|e| e.path.0 == path)
        .ok_or_else(|| Error::NoSuchPath { snapshot: snapshot.short(), path: shown.clone() })?;
    if e.kind != EntryKind::File {
        return Err(Error::InvalidOptions(format!(
            "{shown} in snapshot {} is a {}, not a file",
            snapshot.short(),
            match e.kind {
                EntryKind::Dir => "folder",
                _ => "symlink",
            }
        )));
    }
    let (algo, digest) = e.digest().ok_or_else(|| {
        Error::corrupt(format!("snapshot {}", snapshot.short()), format!("{shown} has no valid checksum"))
    })?;
    let index = repo.load_index()?;
    let object = format!("file {shown} of snapshot {}", snapshot.short());
    let stream = crate::ops::stream::Stream { object: &object, chunks: &e.chunks, size: e.size, algo, digest };
    let mut written = 0u64;
    stream
        .run(
            repo,
            &index,
            workers,
            crate::ops::stream::Out::Stream(&mut |data| {
                out.write_all(data).map_err(|err| Error::io("standard output", err))?;
                written += data.len() as u64;
                Ok(())
            }),
        )
        .map_err(|err| match (&err, written) {
            (Error::Corrupt { object, reason }, n) if n > 0 => Error::Corrupt {
                object: object.clone(),
                reason: format!("{reason}; {n} bytes of it were already written out"),
            },
            _ => err,
        })?;
    out.flush().map_err(|err| Error::io("standard output", err))?;
    Ok(e.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_paths_lose_their_slashes() {
        assert_eq!(stored_path(b"/home/a/"), b"home/a");
        assert_eq!(stored_path(b"home"), b"home");
        assert_eq!(stored_path(b"/"), b"");
        assert_eq!(stored_path(b""), b"");
        assert_eq!(stored_path(b"//x//"), b"x");
    }

    #[test]
    fn below_is_by_component() {
        assert!(below(b"a/b", b"a"));
        assert!(!below(b"ab", b"a"));
        assert!(!below(b"a", b"a"));
        assert!(below(b"a", b""));
    }
}

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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_base64: Option<String>,
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
    /// Commands' outputs (`--stdin-from-command`) that changed.
    pub streams: Vec<DumpChange>,
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
            path_base64: e.path.base64_unless_utf8(),
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
            path_base64: e.path.base64_unless_utf8(),
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
    // Streams (`--stdin-from-command`) likewise, by name.
    let streams_before: HashMap<&str, &crate::format::manifest::StreamSource> =
        old.streams().map(|c| (c.name.as_str(), c)).collect();
    for c in new.streams() {
        let change = match streams_before.get(c.name.as_str()) {
            None => Some(Change::Added),
            Some(o) if o.digest() != c.digest() || o.size != c.size => Some(Change::Modified),
            Some(_) => None,
        };
        if let Some(change) = change {
            let old_size = streams_before.get(c.name.as_str()).map(|o| o.size);
            out.streams.push(DumpChange { change, name: c.name.clone(), old_size, new_size: Some(c.size) });
        }
    }
    for c in old.streams().filter(|c| !new.streams().any(|n| n.name == c.name)) {
        out.streams.push(DumpChange {
            change: Change::Removed,
            name: c.name.clone(),
            old_size: Some(c.size),
            new_size: None,
        });
    }
    out
}

/// A path a snapshot holds that matched `find`'s pattern.
#[derive(Debug, Serialize)]
pub struct FoundEntry {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_base64: Option<String>,
    pub kind: EntryKind,
    pub size: u64,
    pub mtime_ns: i64,
}

/// One snapshot's matches.
#[derive(Debug, Serialize)]
pub struct Found {
    pub snapshot: String,
    pub time: chrono::DateTime<chrono::Utc>,
    pub host: String,
    pub entries: Vec<FoundEntry>,
}

/// Which snapshots hold a path matching `pattern` (a glob as `--include`
/// takes it: with a `/` it matches whole stored paths, without one any
/// name), newest first; `only` limits the search to those snapshots. One
/// manifest is held at a time, and of it only the matches.
pub fn find(repo: &Repository, pattern: &str, only: &[Id]) -> Result<Vec<Found>> {
    let patterns = crate::engine::filter::Patterns::new(&[pattern.to_string()])?;
    let mut snapshots = repo.list_snapshots()?;
    snapshots.reverse();
    let mut out = Vec::new();
    for (id, info) in snapshots {
        if !only.is_empty() && !only.contains(&id) {
            continue;
        }
        let manifest = repo.load_snapshot(&id)?;
        let entries: Vec<FoundEntry> = manifest
            .entries()
            .filter(|e| patterns.matches(&e.path.0))
            .map(|e| FoundEntry {
                path: e.path.display(),
                path_base64: e.path.base64_unless_utf8(),
                kind: e.kind,
                size: e.size,
                mtime_ns: e.mtime_ns,
            })
            .collect();
        if !entries.is_empty() {
            out.push(Found { snapshot: id.to_hex(), time: info.time, host: info.host, entries });
        }
    }
    Ok(out)
}

/// Sizes of one source (a backed-up path, or `pg:NAME` for a dump) across
/// the snapshots counted.
#[derive(Debug, Default, Serialize)]
pub struct SourceStats {
    pub name: String,
    /// Snapshots holding it.
    pub snapshots: usize,
    pub files: u64,
    /// Bytes as backed up, every snapshot's counted.
    pub logical_bytes: u64,
    pub chunks: u64,
    /// Its distinct chunks, their bytes before and after compression and encryption.
    pub unique_chunks: u64,
    pub unique_bytes: u64,
    pub stored_bytes: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub snapshots: usize,
    pub logical_bytes: u64,
    pub unique_chunks: u64,
    pub unique_bytes: u64,
    /// What those chunks take in the packs (a chunk shared by two sources counts once here).
    pub stored_bytes: u64,
    /// logical / unique: what deduplication saves.
    pub dedup_ratio: f64,
    /// unique / stored: what compression saves (after encryption's overhead).
    pub compression_ratio: f64,
    /// Every pack stored, including data no snapshot uses until prune.
    pub repository_bytes: u64,
    pub sources: Vec<SourceStats>,
}

/// Sizes of one snapshot (or, with `only` None, of all), per source: what
/// was backed up, what deduplication and compression made of it. Reads the
/// index and each manifest counted, one at a time.
pub fn stats(repo: &Repository, only: Option<&Id>) -> Result<Stats> {
    let index = repo.load_index()?;
    let ids: Vec<Id> = match only {
        Some(id) => vec![*id],
        None => repo.list_snapshots()?.into_iter().map(|(id, _)| id).collect(),
    };
    let mut out = Stats { snapshots: ids.len(), ..Default::default() };
    let mut all = HashSet::new();
    let mut per: BTreeMapStats = Default::default();
    for id in &ids {
        let m = repo.load_snapshot(id)?;
        for source in &m.sources {
            let (name, files, bytes, chunks): (String, u64, u64, Vec<&Id>) = match source {
                crate::format::manifest::Source::Tree(t) => {
                    let files = t.entries.iter().filter(|e| e.kind == EntryKind::File);
                    let (n, b) = files.clone().fold((0, 0), |(n, b), e| (n + 1, b + e.size));
                    (t.path.display(), n, b, files.flat_map(|e| e.chunks.iter()).collect())
                }
                crate::format::manifest::Source::Postgres(d) => {
                    (format!("pg:{}", d.name), 0, d.size, d.chunks.iter().collect())
                }
                crate::format::manifest::Source::Stream(c) => {
                    (format!("stream:{}", c.name), 0, c.size, c.chunks.iter().collect())
                }
            };
            let (st, seen) = per
                .entry(name.clone())
                .or_insert_with(|| (SourceStats { name: name.clone(), ..Default::default() }, HashSet::new()));
            st.snapshots += 1;
            st.files += files;
            st.logical_bytes += bytes;
            out.logical_bytes += bytes;
            for c in chunks {
                st.chunks += 1;
                let Some((_, loc)) = index.get(c) else {
                    return Err(Error::corrupt(
                        format!("snapshot {}", id.short()),
                        format!("chunk {} is in no pack", c.short()),
                    ));
                };
                if seen.insert(*c) {
                    st.unique_chunks += 1;
                    st.unique_bytes += u64::from(loc.size);
                    st.stored_bytes += u64::from(loc.length);
                }
                if all.insert(*c) {
                    out.unique_chunks += 1;
                    out.unique_bytes += u64::from(loc.size);
                    out.stored_bytes += u64::from(loc.length);
                }
            }
        }
    }
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    out.dedup_ratio = ratio(out.logical_bytes, out.unique_bytes);
    out.compression_ratio = ratio(out.unique_bytes, out.stored_bytes);
    out.repository_bytes = index.packs().iter().map(|(_, size)| size).sum();
    out.sources = per.into_values().map(|(s, _)| s).collect();
    Ok(out)
}

type BTreeMapStats = std::collections::BTreeMap<String, (SourceStats, HashSet<Id>)>;

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
            e.kind.name()
        )));
    }
    let (algo, digest) = e.digest().ok_or_else(|| {
        Error::corrupt(format!("snapshot {}", snapshot.short()), format!("{shown} has no valid checksum"))
    })?;
    let index = repo.load_index()?;
    let object = format!("file {shown} of snapshot {}", snapshot.short());
    let stream = crate::ops::stream::Stream { object: &object, chunks: &e.chunks, size: e.size, algo, digest };
    write_checked(&stream, repo, &index, workers, out)?;
    Ok(e.size)
}

/// Writes the output of a `--stdin-from-command` to `out`, checked as
/// `dump_file` checks a file. Returns the bytes.
pub fn dump_stream(
    repo: &Repository,
    snapshot: &Id,
    manifest: &Manifest,
    name: &str,
    workers: usize,
    out: &mut dyn std::io::Write,
) -> Result<u64> {
    let c = manifest
        .streams()
        .find(|c| c.name == name)
        .ok_or_else(|| Error::NoSuchPath { snapshot: snapshot.short(), path: format!("stream {name}") })?;
    let object = format!("stream {name} of snapshot {}", snapshot.short());
    let (algo, digest) =
        c.digest().ok_or_else(|| Error::corrupt(object.clone(), "the manifest gives no valid checksum"))?;
    let index = repo.load_index()?;
    let stream = crate::ops::stream::Stream { object: &object, chunks: &c.chunks, size: c.size, algo, digest };
    write_checked(&stream, repo, &index, workers, out)?;
    Ok(c.size)
}

/// Streams `stream` into `out`; a failed check names how much was written already.
fn write_checked(
    stream: &crate::ops::stream::Stream<'_>,
    repo: &Repository,
    index: &crate::format::Index,
    workers: usize,
    out: &mut dyn std::io::Write,
) -> Result<()> {
    let mut written = 0u64;
    stream
        .run(
            repo,
            index,
            workers,
            &crate::ops::progress::NoProgress,
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
    out.flush().map_err(|err| Error::io("standard output", err))
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

//! The snapshot manifest: what a snapshot holds, as JSON inside an encrypted
//! `snapshots/<id>` object. Its presence is what makes a snapshot exist.
//!
//! Restore treats a manifest as hostile input: `validate` checks every path
//! before anything is written.

use crate::crypto::HashAlgo;
use crate::format::encoding::{Id, RawPath};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The repository's format version; it decides the digest algorithm.
    pub version: u32,
    pub time: chrono::DateTime<chrono::Utc>,
    pub host: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The coffer version that wrote it.
    pub tool: String,
    #[serde(default)]
    pub parent: Option<Id>,
    /// Set by `copy`: the snapshot this one copies, in the repository it
    /// was first made in (a copy of a copy names the first). A later copy
    /// into the same repository skips a snapshot whose original is there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original: Option<Id>,
    pub sources: Vec<Source>,
    pub summary: Summary,
    /// Files that could not be read or changed while being read.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// A manifest without its entries, chunk lists and warnings' text: what
/// listing, `latest`, parent lookup and retention need. Read from the same
/// JSON, whose entries are skipped as they are parsed, so going through every
/// snapshot of a large tree holds one small header at a time, not every
/// manifest (200,000 files make a manifest of about 200 MiB in memory).
#[derive(Debug, Clone, Deserialize)]
pub struct SnapshotInfo {
    pub version: u32,
    pub time: chrono::DateTime<chrono::Utc>,
    pub host: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub parent: Option<Id>,
    #[serde(default)]
    pub original: Option<Id>,
    pub sources: Vec<SourceInfo>,
    pub summary: Summary,
    /// How many warnings the manifest lists.
    #[serde(default, rename = "warnings", deserialize_with = "count_items")]
    pub warning_count: usize,
}

/// A source's kind and name, without its contents.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceInfo {
    #[serde(rename = "type")]
    pub kind: SourceKind,
    /// A tree's path.
    #[serde(default)]
    pub path: Option<RawPath>,
    /// A dump's database name.
    #[serde(default)]
    pub name: Option<String>,
    /// A base backup's facts (a tree source taken by `backup --pg-base`).
    #[serde(default)]
    pub pg_base: Option<PgBase>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Tree,
    Postgres,
    Stream,
}

fn count_items<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    struct Count;
    impl<'de> serde::de::Visitor<'de> for Count {
        type Value = usize;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<usize, A::Error> {
            let mut n = 0;
            while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                n += 1;
            }
            Ok(n)
        }
    }
    d.deserialize_seq(Count)
}

impl SnapshotInfo {
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
            .map(|s| match s.kind {
                SourceKind::Tree => s.path.as_ref().map(RawPath::display).unwrap_or_default(),
                SourceKind::Postgres => format!("pg:{}", s.name.as_deref().unwrap_or_default()),
                SourceKind::Stream => format!("stream:{}", s.name.as_deref().unwrap_or_default()),
            })
            .collect()
    }

    /// The paths of its tree sources (not base backups'), in order.
    pub fn tree_paths(&self) -> impl Iterator<Item = &RawPath> {
        self.sources
            .iter()
            .filter(|s| s.kind == SourceKind::Tree && s.pg_base.is_none())
            .filter_map(|s| s.path.as_ref())
    }

    /// Its base backups' facts.
    pub fn pg_bases(&self) -> impl Iterator<Item = &PgBase> {
        self.sources.iter().filter_map(|s| s.pg_base.as_ref())
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Source {
    Tree(TreeSource),
    Postgres(DumpSource),
    Stream(StreamSource),
}

// Read by hand: serde's derived form of an internally tagged enum holds the
// whole source (every entry, as generic values, at several times the memory
// of the entries themselves) before it looks at `type`. Writers put `type`
// first, so the rest of the object can go straight into its kind.
impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(SourceVisitor)
    }
}

/// The source of this kind in the rest of the object.
fn source_of<'de, D: serde::Deserializer<'de>>(kind: SourceKind, rest: D) -> Result<Source, D::Error> {
    match kind {
        SourceKind::Tree => TreeSource::deserialize(rest).map(Source::Tree),
        SourceKind::Postgres => DumpSource::deserialize(rest).map(Source::Postgres),
        SourceKind::Stream => StreamSource::deserialize(rest).map(Source::Stream),
    }
}

struct SourceVisitor;

impl<'de> serde::de::Visitor<'de> for SourceVisitor {
    type Value = Source;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a source object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Source, A::Error> {
        use serde::de::{value::MapAccessDeserializer, Error};
        let first: Option<String> = map.next_key()?;
        if first.as_deref() == Some("type") {
            let kind = map.next_value()?;
            return source_of(kind, MapAccessDeserializer::new(map));
        }
        // `type` further on (a hand-edited manifest): hold the object, then read it.
        let mut object = serde_json::Map::new();
        if let Some(key) = first {
            object.insert(key, map.next_value()?);
        }
        while let Some((k, v)) = map.next_entry::<String, serde_json::Value>()? {
            object.insert(k, v);
        }
        let kind = object.remove("type").ok_or_else(|| A::Error::missing_field("type"))?;
        let kind = SourceKind::deserialize(kind).map_err(A::Error::custom)?;
        source_of(kind, serde_json::Value::Object(object)).map_err(A::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// The whole stream's digest, hex: `sha256` in version 1, `blake3` from
    /// version 2 (see `digest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    pub chunks: Vec<Id>,
    /// The archive's table of contents (custom format only).
    #[serde(default)]
    pub toc: Vec<crate::pg::TocEntry>,
    pub duration_secs: f64,
}

/// The standard output of a command (`backup --stdin-from-command`): any
/// other dump (mysqldump, redis-cli --rdb -), stored under a name.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamSource {
    pub name: String,
    /// The command line, as given to `sh -c`: recorded and shown, so it must
    /// hold no secret (the README says where passwords go instead).
    pub command: String,
    pub size: u64,
    /// The stream's digest, hex, of the manifest version's algorithm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    pub chunks: Vec<Id>,
    pub duration_secs: f64,
}

/// A backed-up path: its entries in walk order (a directory before its
/// contents), paths relative and `/`-separated, as given on the command line
/// without a leading `/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TreeSource {
    pub path: RawPath,
    /// Set when the tree is a PostgreSQL data directory taken by `backup
    /// --pg-base` (its path is then `pg-base/<stanza>`, not a local path).
    /// Written before `entries`, so listing reads it without them; readers
    /// that predate it see a tree of the data directory's files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_base: Option<PgBase>,
    pub entries: Vec<Entry>,
}

/// A physical base backup: what a restore to a moment needs besides its
/// files (docs/FORMAT.md §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PgBase {
    /// The connection it was taken from, without password.
    pub server: String,
    /// The major version (`PG_VERSION`).
    pub server_version: String,
    /// Decimal (beyond what JSON readers keep exact as a number).
    pub system_identifier: String,
    /// Where its WAL is archived: `wal/<stanza>/`.
    pub stanza: String,
    pub timeline: u32,
    /// The WAL from `start_lsn` to `stop_lsn` makes the files consistent:
    /// segments `start_wal` to `stop_wal` of `timeline`.
    pub start_lsn: String,
    pub stop_lsn: String,
    pub start_wal: String,
    pub stop_wal: String,
    pub wal_segment_size: u32,
    pub start_time: chrono::DateTime<chrono::Utc>,
    pub stop_time: chrono::DateTime<chrono::Utc>,
    pub label: String,
    pub duration_secs: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A named pipe, a Unix socket, a device node: no content, recreated
    /// by a restore (devices only by root), as tar and restic do.
    Fifo,
    Socket,
    #[serde(rename = "chardev")]
    CharDevice,
    #[serde(rename = "blockdev")]
    BlockDevice,
}

impl EntryKind {
    /// A kind whose entries have no content, no target and no digest.
    pub fn is_special(self) -> bool {
        matches!(self, EntryKind::Fifo | EntryKind::Socket | EntryKind::CharDevice | EntryKind::BlockDevice)
    }

    pub fn is_device(self) -> bool {
        matches!(self, EntryKind::CharDevice | EntryKind::BlockDevice)
    }

    /// For messages.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::File => "file",
            EntryKind::Dir => "folder",
            EntryKind::Symlink => "symlink",
            EntryKind::Fifo => "named pipe",
            EntryKind::Socket => "socket",
            EntryKind::CharDevice => "character device",
            EntryKind::BlockDevice => "block device",
        }
    }
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
    /// The content's digest, hex: `sha256` in version 1, `blake3` from
    /// version 2 (see `digest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// The file changed while it was read; its content may be inconsistent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub changed: bool,
    /// The file had holes (fewer blocks than its size needs): restore leaves
    /// its all-zero chunks as holes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sparse: bool,
    /// Another name of the same file: the path of an earlier file entry of
    /// this snapshot. The entry still lists its own chunks and digest (a
    /// restore without that entry writes it as a file of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardlink: Option<RawPath>,
    /// A device node's device number (`st_rdev`); absent for everything else.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rdev: u64,
    /// The file's number of names at backup, not stored: tells the backup
    /// which files a later entry may name as `hardlink`.
    #[serde(skip)]
    pub nlink: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Named pipes, sockets and device nodes.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub specials: u64,
    #[serde(default)]
    pub databases: u64,
    /// Commands' outputs (`backup --stdin-from-command`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub streams: u64,
    /// Bytes read from the sources.
    pub bytes: u64,
    /// Chunks and bytes (before compression) not already in the repository.
    pub new_chunks: u64,
    pub new_bytes: u64,
    /// Bytes added to the repository (packs, after compression and encryption).
    pub stored_bytes: u64,
    pub duration_secs: f64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A recorded content digest: its algorithm (named by its field) and hex.
/// Exactly one of the two fields must be set.
fn digest_of<'a>(sha256: &'a Option<String>, blake3: &'a Option<String>) -> Option<(HashAlgo, &'a str)> {
    match (sha256, blake3) {
        (Some(h), None) => Some((HashAlgo::Sha256, h)),
        (None, Some(h)) => Some((HashAlgo::Blake3, h)),
        _ => None,
    }
}

fn digest_fields(algo: HashAlgo, hex: String) -> (Option<String>, Option<String>) {
    match algo {
        HashAlgo::Sha256 => (Some(hex), None),
        HashAlgo::Blake3 => (None, Some(hex)),
    }
}

/// `digest()` and `set_digest()` for each type that records a content
/// digest in the two fields (files, dumps, streams): one implementation.
macro_rules! digest_accessors {
    ($($t:ty),*) => {$(
        impl $t {
            pub fn digest(&self) -> Option<(HashAlgo, &str)> {
                digest_of(&self.sha256, &self.blake3)
            }

            pub fn set_digest(&mut self, algo: HashAlgo, digest: [u8; 32]) {
                (self.sha256, self.blake3) = digest_fields(algo, hex::encode(digest));
            }
        }
    )*};
}

digest_accessors!(Entry, DumpSource, StreamSource);

fn is_digest_hex(h: &str) -> bool {
    h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Manifest {
    /// File-tree entries of every tree source.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.sources.iter().flat_map(|s| match s {
            Source::Tree(t) => t.entries.iter(),
            Source::Postgres(_) | Source::Stream(_) => [].iter(),
        })
    }

    pub fn dumps(&self) -> impl Iterator<Item = &DumpSource> {
        self.sources.iter().filter_map(|s| match s {
            Source::Postgres(d) => Some(d),
            _ => None,
        })
    }

    /// The base backups (`backup --pg-base`), each with its tree.
    pub fn pg_bases(&self) -> impl Iterator<Item = (&TreeSource, &PgBase)> {
        self.sources.iter().filter_map(|s| match s {
            Source::Tree(t) => t.pg_base.as_ref().map(|b| (t, b)),
            _ => None,
        })
    }

    pub fn streams(&self) -> impl Iterator<Item = &StreamSource> {
        self.sources.iter().filter_map(|s| match s {
            Source::Stream(c) => Some(c),
            _ => None,
        })
    }

    /// Every chunk the snapshot uses (prune keeps exactly these): files', dumps' and streams'.
    pub fn chunk_ids(&self) -> impl Iterator<Item = &Id> {
        self.entries()
            .flat_map(|e| e.chunks.iter())
            .chain(self.dumps().flat_map(|d| d.chunks.iter()))
            .chain(self.streams().flat_map(|c| c.chunks.iter()))
    }

    /// Checks everything restore relies on; `Err` names the first bad entry.
    pub fn validate(&self) -> Result<(), (String, String)> {
        // Digests are of the manifest version's algorithm, never another.
        let algo = HashAlgo::of_version(self.version);
        let valid = |d: Option<(HashAlgo, &str)>| d.is_some_and(|(a, h)| a == algo && is_digest_hex(h));
        for d in self.dumps() {
            if !valid(d.digest()) {
                return Err((d.name.clone(), format!("dump without a valid {} checksum", algo.name())));
            }
        }
        let mut streams = HashSet::new();
        for c in self.streams() {
            if !valid(c.digest()) {
                return Err((c.name.clone(), format!("stream without a valid {} checksum", algo.name())));
            }
            if !streams.insert(c.name.as_str()) {
                return Err((c.name.clone(), "stream listed twice".into()));
            }
        }
        for e in self.entries() {
            let shown = e.path.display();
            check_relative_path(&e.path.0).map_err(|r| (shown.clone(), r))?;
            match e.kind {
                EntryKind::Symlink if e.target.as_ref().is_none_or(|t| t.0.is_empty()) => {
                    return Err((shown, "symlink without a target".into()));
                }
                EntryKind::File if !valid(e.digest()) => {
                    return Err((shown, format!("file without a valid {} checksum", algo.name())));
                }
                k if k != EntryKind::File && e.digest().is_some() => {
                    return Err((shown, "non-file entry with a checksum".into()));
                }
                k if k != EntryKind::File && !e.chunks.is_empty() => {
                    return Err((shown, "non-file entry with content".into()));
                }
                k if k.is_special() && e.target.is_some() => {
                    return Err((shown, format!("{} with a link target", k.name())));
                }
                k if !k.is_device() && e.rdev != 0 => {
                    return Err((shown, format!("{} with a device number", k.name())));
                }
                _ => {}
            }
            if let Some(t) = &e.target {
                if t.0.contains(&0) {
                    return Err((shown, "symlink target holds a NUL byte".into()));
                }
            }
        }
        self.check_paths_are_a_tree()?;
        self.check_hardlinks()?;
        let mut dumps = HashSet::new();
        for d in self.dumps() {
            if !dumps.insert((d.kind, d.name.as_str())) {
                return Err((d.name.clone(), "dump listed twice".into()));
            }
        }
        Ok(())
    }

    /// A hard link names an earlier file entry (not itself a link) with the
    /// same content: a restore links to what it has already checked.
    fn check_hardlinks(&self) -> Result<(), (String, String)> {
        let mut files: HashMap<&[u8], &Entry> = HashMap::new();
        for e in self.entries() {
            if let Some(first) = &e.hardlink {
                let ok = e.kind == EntryKind::File
                    && files
                        .get(first.0.as_slice())
                        .is_some_and(|f| f.hardlink.is_none() && f.digest() == e.digest() && f.size == e.size);
                if !ok {
                    let reason =
                        format!("is a hard link to {}, which is no earlier file of the same content", first.display());
                    return Err((e.path.display(), reason));
                }
            }
            if e.kind == EntryKind::File {
                files.insert(&e.path.0, e);
            }
        }
        Ok(())
    }

    /// Each path once, and nothing below a file or a symlink: a restore would
    /// otherwise replace one entry with another silently, or find a file
    /// where it needs a directory after writing half the tree.
    fn check_paths_are_a_tree(&self) -> Result<(), (String, String)> {
        let mut kinds: HashMap<&[u8], EntryKind> = HashMap::new();
        for e in self.entries() {
            if kinds.insert(&e.path.0, e.kind).is_some() {
                return Err((e.path.display(), "listed twice".into()));
            }
        }
        for e in self.entries() {
            let mut p = &e.path.0[..];
            while let Some(slash) = p.iter().rposition(|&b| b == b'/') {
                p = &p[..slash];
                match kinds.get(p) {
                    // That directory's own ancestors are checked with it.
                    Some(EntryKind::Dir) => break,
                    Some(kind) => {
                        let what = if *kind == EntryKind::Symlink { "symlink" } else { "file" };
                        let reason = format!("is inside {}, which is a {what}", RawPath(p.to_vec()).display());
                        return Err((e.path.display(), reason));
                    }
                    None => {}
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

    fn manifest(version: u32, file: Entry) -> Manifest {
        Manifest {
            version,
            time: chrono::Utc::now(),
            host: "h".into(),
            tags: vec![],
            tool: "t".into(),
            parent: None,
            original: None,
            sources: vec![Source::Tree(TreeSource {
                path: RawPath(b"src".to_vec()),
                pg_base: None,
                entries: vec![file],
            })],
            summary: Summary::default(),
            warnings: vec![],
        }
    }

    fn entry(path: &str, kind: EntryKind) -> Entry {
        let mut e = Entry {
            path: RawPath(path.as_bytes().to_vec()),
            kind,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime_ns: 0,
            ctime_ns: 0,
            inode: 0,
            size: 0,
            target: (kind == EntryKind::Symlink).then(|| RawPath(b"/elsewhere".to_vec())),
            chunks: vec![],
            sha256: None,
            blake3: None,
            changed: false,
            sparse: false,
            hardlink: None,
            rdev: 0,
            nlink: 1,
        };
        if kind == EntryKind::File {
            e.set_digest(HashAlgo::Blake3, [1; 32]);
        }
        e
    }

    fn tree(entries: &[(&str, EntryKind)]) -> Result<(), (String, String)> {
        let mut m = manifest(2, entry("src", EntryKind::Dir));
        let Source::Tree(t) = &mut m.sources[0] else { unreachable!() };
        t.entries.extend(entries.iter().map(|(p, k)| entry(p, *k)));
        m.validate()
    }

    #[test]
    fn a_hard_link_names_an_earlier_file_of_the_same_content() {
        let with_link = |first: &str, digest: u8, before: bool| {
            let mut m = manifest(2, entry("src", EntryKind::Dir));
            let Source::Tree(t) = &mut m.sources[0] else { unreachable!() };
            let mut link = entry("src/b", EntryKind::File);
            link.hardlink = Some(RawPath(first.as_bytes().to_vec()));
            link.set_digest(HashAlgo::Blake3, [digest; 32]);
            let a = entry("src/a", EntryKind::File);
            t.entries.extend(if before { [a, link] } else { [link, a] });
            m.validate()
        };
        assert_eq!(with_link("src/a", 1, true), Ok(()));
        for (first, digest, before) in
            [("src/missing", 1, true), ("src/a", 2, true), ("src/a", 1, false), ("src", 1, true)]
        {
            let err = with_link(first, digest, before).unwrap_err();
            assert_eq!(err.0, "src/b", "{first} {digest} {before}");
            assert!(err.1.contains("is a hard link to"), "{}", err.1);
        }
    }

    #[test]
    fn paths_must_form_a_tree() {
        use EntryKind::*;
        assert_eq!(tree(&[("src/d", Dir), ("src/d/f", File), ("src/l", Symlink), ("src/f", File)]), Ok(()));
        // A listed directory's parent need not be listed (a partial tree).
        assert_eq!(tree(&[("other/deep/f", File)]), Ok(()));
        let twice = tree(&[("src/f", File), ("src/f", File)]).unwrap_err();
        assert_eq!(twice, ("src/f".into(), "listed twice".into()));
        assert!(tree(&[("src/d", Dir), ("src/d", File)]).is_err(), "a directory and a file");
        let below_link = tree(&[("src/l", Symlink), ("src/l/x", Dir), ("src/l/x/f", File)]).unwrap_err();
        assert_eq!(below_link, ("src/l/x".into(), "is inside src/l, which is a symlink".into()));
        let below_file = tree(&[("src/f", File), ("src/f/a/b", File)]).unwrap_err();
        assert_eq!(below_file, ("src/f/a/b".into(), "is inside src/f, which is a file".into()));
    }

    #[test]
    fn sources_read_back_whichever_key_comes_first_and_headers_skip_the_entries() {
        let mut m = manifest(2, entry("src/a", EntryKind::File));
        m.warnings = vec!["one".into(), "two".into()];
        let json = serde_json::to_string(&m).unwrap();
        assert!(json.contains(r#""sources":[{"type":"tree","#), "{json}");
        let back: Manifest = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        // A hand-edited manifest may put "type" anywhere.
        let moved = json.replace(r#"{"type":"tree","path":"src","#, r#"{"path":"src","type":"tree","#);
        assert_ne!(moved, json);
        let back: Manifest = serde_json::from_str(&moved).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
        let bad = json.replace(r#""type":"tree""#, r#""type":"tape""#);
        assert!(serde_json::from_str::<Manifest>(&bad).unwrap_err().to_string().contains("tape"));
        let untyped = json.replace(r#""type":"tree","#, "");
        assert!(serde_json::from_str::<Manifest>(&untyped).unwrap_err().to_string().contains("missing field `type`"));

        let info: SnapshotInfo = serde_json::from_str(&json).unwrap();
        assert_eq!(info.source_names(), vec!["src".to_string()]);
        assert_eq!(info.tree_paths().collect::<Vec<_>>(), vec![&RawPath(b"src".to_vec())]);
        assert_eq!(info.warning_count, 2);
        assert_eq!((info.host.as_str(), info.version), ("h", 2));
    }

    #[test]
    fn a_dump_listed_twice_is_refused() {
        let dump = |kind, name: &str| {
            let mut d = DumpSource {
                name: name.into(),
                kind,
                server: String::new(),
                server_version: String::new(),
                pg_dump_version: String::new(),
                format: "custom".into(),
                size: 0,
                sha256: None,
                blake3: None,
                chunks: vec![],
                toc: vec![],
                duration_secs: 0.0,
            };
            d.set_digest(HashAlgo::Blake3, [2; 32]);
            Source::Postgres(d)
        };
        let mut m = manifest(2, entry("src", EntryKind::Dir));
        m.sources.push(dump(DumpKind::Globals, "globals"));
        m.sources.push(dump(DumpKind::Database, "globals"));
        assert_eq!(m.validate(), Ok(()));
        m.sources.push(dump(DumpKind::Database, "globals"));
        assert_eq!(m.validate(), Err(("globals".into(), "dump listed twice".into())));
    }

    #[test]
    fn digests_must_be_of_the_manifest_versions_algorithm() {
        let mut file = entry("src/a", EntryKind::File);
        (file.size, file.sha256, file.blake3) = (1, None, None);
        assert!(manifest(2, file.clone()).validate().is_err(), "a file without a digest");
        file.set_digest(HashAlgo::Blake3, [1; 32]);
        assert!(manifest(2, file.clone()).validate().is_ok());
        assert!(manifest(1, file.clone()).validate().is_err(), "blake3 in a version-1 manifest");
        file.set_digest(HashAlgo::Sha256, [1; 32]);
        assert_eq!(file.blake3, None);
        assert!(manifest(1, file.clone()).validate().is_ok());
        let err = manifest(2, file.clone()).validate().unwrap_err();
        assert!(err.1.contains("blake3"), "{err:?}");
        file.blake3 = Some("ab".repeat(32));
        assert!(manifest(1, file.clone()).validate().is_err(), "two digests");
        (file.sha256, file.blake3) = (None, Some("zz".repeat(32)));
        assert!(manifest(2, file).validate().is_err(), "a digest that is not hex");
    }
}

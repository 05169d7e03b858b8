//! File-tree source: walks paths depth-first in name order, never following
//! symlinks, and streams each regular file through the chunker.

use super::SourceItem;
use crate::crypto::{HashAlgo, HashingReader};
use crate::engine::chunker::{Chunker, ChunkerParams};
use crate::engine::filter::Patterns;
use crate::engine::pipeline::BufferPool;
use crate::error::{Error, Result};
use crate::format::encoding::RawPath;
use crate::format::manifest::{Entry, EntryKind};
use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

pub struct TreeOptions<'a> {
    pub excludes: &'a Patterns,
    /// Marker names (`.nobackup`, `CACHEDIR.TAG`): a folder holding one is left out.
    pub exclude_if_present: &'a [String],
    pub one_file_system: bool,
    pub chunker: ChunkerParams,
    /// Files of the parent snapshot by path: unchanged ones are not re-read.
    pub parent: Option<&'a HashMap<RawPath, Entry>>,
    /// Is this chunk still stored? (A parent's chunk list is reused only then.)
    pub chunk_known: &'a (dyn Fn(&crate::format::encoding::Id) -> bool + Sync),
    pub on_bytes: &'a (dyn Fn(u64) + Sync),
    /// Where each chunk's buffer comes from.
    pub buffers: &'a BufferPool,
    /// The repository's digest algorithm.
    pub algo: HashAlgo,
}

/// The path a source is stored under: as given, lexically normalised, without
/// a leading `/`. A path with `..` is made absolute first, so a stored path
/// never holds `..`.
pub fn stored_root(path: &Path) -> Result<RawPath> {
    let path = if path.components().any(|c| c == Component::ParentDir) {
        fs::canonicalize(path).map_err(|e| Error::io(path, e))?
    } else {
        path.to_path_buf()
    };
    let parts: Vec<&[u8]> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(s) => Some(s.as_bytes()),
            _ => None,
        })
        .collect();
    Ok(RawPath(parts.join(&b'/')))
}

fn join(parent: &RawPath, name: &[u8]) -> RawPath {
    if parent.0.is_empty() {
        return RawPath(name.to_vec());
    }
    let mut p = parent.0.clone();
    p.push(b'/');
    p.extend_from_slice(name);
    RawPath(p)
}

fn entry_from(path: RawPath, kind: EntryKind, m: &Metadata) -> Entry {
    Entry {
        path,
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
        inode: m.ino(),
        size: if kind == EntryKind::File { m.len() } else { 0 },
        target: None,
        chunks: Vec::new(),
        sha256: None,
        blake3: None,
        changed: false,
        // Fewer 512-byte blocks than the size needs: it has holes.
        sparse: kind == EntryKind::File && m.blocks().saturating_mul(512) < m.len(),
        hardlink: None,
        rdev: if kind.is_device() { m.rdev() } else { 0 },
        nlink: m.nlink(),
    }
}

/// What the walk finds: a path with its `lstat`, or a part it cannot read.
enum Step {
    Node { fs_path: PathBuf, path: RawPath, meta: Metadata },
    Unreadable(String),
}

/// Depth-first in name order, never following symlinks; excluded paths are
/// pruned, and with `one_file_system` so are the contents of folders on
/// another filesystem than the root's (the folders themselves are visited).
/// A folder is visited before its contents. An explicit stack keeps deep
/// trees off the call stack.
struct Walker<'a> {
    stack: Vec<(PathBuf, RawPath, Metadata)>,
    /// The folder just visited, whose contents are listed on the next step.
    expand: Option<(PathBuf, RawPath)>,
    errors: std::collections::VecDeque<String>,
    excludes: &'a Patterns,
    markers: &'a [String],
    one_file_system: bool,
    root_dev: u64,
}

impl<'a> Walker<'a> {
    fn new(
        root: &Path,
        stored: RawPath,
        excludes: &'a Patterns,
        markers: &'a [String],
        one_file_system: bool,
    ) -> Result<Walker<'a>> {
        let meta = fs::symlink_metadata(root).map_err(|e| Error::io(root, e))?;
        Ok(Walker {
            root_dev: meta.dev(),
            stack: vec![(root.to_path_buf(), stored, meta)],
            expand: None,
            errors: Default::default(),
            excludes,
            markers,
            one_file_system,
        })
    }

    fn list(&mut self, fs_path: PathBuf, path: RawPath) {
        let mut children = match fs::read_dir(&fs_path) {
            Ok(rd) => rd.filter_map(|e| e.ok()).map(|e| e.file_name()).collect::<Vec<_>>(),
            Err(e) => return self.errors.push_back(format!("{}: {e}", fs_path.display())),
        };
        children.sort();
        // Reverse, so that popping the stack visits names in order.
        for name in children.into_iter().rev() {
            let child_path = join(&path, name.as_bytes());
            if self.excludes.matches(&child_path.0) {
                continue;
            }
            let child_fs = fs_path.join(&name);
            match fs::symlink_metadata(&child_fs) {
                Ok(m) if m.is_dir() && self.marked(&child_fs) => {}
                Ok(m) => self.stack.push((child_fs, child_path, m)),
                Err(e) => self.errors.push_back(format!("{}: {e}", child_fs.display())),
            }
        }
    }
}

impl Walker<'_> {
    /// Does the folder hold one of the marker files (a symlink counts)?
    fn marked(&self, dir: &Path) -> bool {
        self.markers.iter().any(|m| fs::symlink_metadata(dir.join(m)).is_ok())
    }
}

impl Iterator for Walker<'_> {
    type Item = Step;

    fn next(&mut self) -> Option<Step> {
        if let Some((fs_path, path)) = self.expand.take() {
            self.list(fs_path, path);
        }
        if let Some(message) = self.errors.pop_front() {
            return Some(Step::Unreadable(message));
        }
        let (fs_path, path, meta) = self.stack.pop()?;
        if meta.is_dir() && !(self.one_file_system && meta.dev() != self.root_dev) {
            self.expand = Some((fs_path.clone(), path.clone()));
        }
        Some(Step::Node { fs_path, path, meta })
    }
}

/// Walks one source path, emitting its items.
pub fn walk(root: &Path, opts: &TreeOptions<'_>, emit: &mut dyn FnMut(SourceItem) -> Result<()>) -> Result<()> {
    let stored = stored_root(root)?;
    let walker = Walker::new(root, stored.clone(), opts.excludes, opts.exclude_if_present, opts.one_file_system)?;
    emit(SourceItem::Begin(stored))?;
    let mut chunker = Chunker::new(opts.chunker);
    // The first name seen of each file with several: later names are stored as its hard links.
    let mut names: HashMap<(u64, u64), RawPath> = HashMap::new();
    for step in walker {
        let (fs_path, path, meta) = match step {
            Step::Node { fs_path, path, meta } => (fs_path, path, meta),
            Step::Unreadable(message) => {
                emit(SourceItem::Unreadable(message))?;
                continue;
            }
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            // The root "/" has an empty stored path and no entry of its own.
            if !path.0.is_empty() {
                emit(SourceItem::Entry(entry_from(path, EntryKind::Dir, &meta)))?;
            }
        } else if ft.is_symlink() {
            match fs::read_link(&fs_path) {
                Ok(target) => {
                    let mut e = entry_from(path, EntryKind::Symlink, &meta);
                    e.target = Some(RawPath(target.as_os_str().as_bytes().to_vec()));
                    emit(SourceItem::Entry(e))?;
                }
                Err(e) => emit(SourceItem::Unreadable(format!("{}: {e}", fs_path.display())))?,
            }
        } else if ft.is_file() {
            let first = match meta.nlink() > 1 {
                true => match names.entry((meta.dev(), meta.ino())) {
                    std::collections::hash_map::Entry::Occupied(o) => Some(o.get().clone()),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(path.clone());
                        None
                    }
                },
                false => None,
            };
            read_file(&fs_path, path, &meta, first, opts, &mut chunker, emit)?;
        } else {
            use std::os::unix::fs::FileTypeExt;
            let kind = if ft.is_fifo() {
                EntryKind::Fifo
            } else if ft.is_socket() {
                EntryKind::Socket
            } else if ft.is_char_device() {
                EntryKind::CharDevice
            } else if ft.is_block_device() {
                EntryKind::BlockDevice
            } else {
                emit(SourceItem::Unreadable(format!("{}: a file of unknown type, skipped", fs_path.display())))?;
                continue;
            };
            emit(SourceItem::Entry(entry_from(path, kind, &meta)))?;
        }
    }
    Ok(())
}

/// Files and bytes below `root` as `walk` would see them (for an ETA).
/// Unreadable parts are skipped silently: `walk` reports them.
pub fn scan(root: &Path, excludes: &Patterns, markers: &[String], one_file_system: bool) -> (u64, u64) {
    let walker = stored_root(root).and_then(|stored| Walker::new(root, stored, excludes, markers, one_file_system));
    let Ok(walker) = walker else {
        return (0, 0);
    };
    let (mut files, mut bytes) = (0, 0);
    for step in walker {
        if let Step::Node { meta, .. } = step {
            if meta.is_file() {
                files += 1;
                bytes += meta.len();
            }
        }
    }
    (files, bytes)
}

fn unchanged(a: &Metadata, b: &Metadata) -> bool {
    a.len() == b.len()
        && a.mtime() == b.mtime()
        && a.mtime_nsec() == b.mtime_nsec()
        && a.ctime() == b.ctime()
        && a.ctime_nsec() == b.ctime_nsec()
        && a.ino() == b.ino()
}

fn read_file(
    fs_path: &Path,
    path: RawPath,
    meta: &Metadata,
    hardlink: Option<RawPath>,
    opts: &TreeOptions<'_>,
    chunker: &mut Chunker,
    emit: &mut dyn FnMut(SourceItem) -> Result<()>,
) -> Result<()> {
    let mut entry = entry_from(path, EntryKind::File, meta);
    entry.hardlink = hardlink;
    if let Some(old) = opts.parent.and_then(|p| p.get(&entry.path)) {
        let same = old.kind == EntryKind::File
            && !old.changed
            && old.size == entry.size
            && old.mtime_ns == entry.mtime_ns
            && old.ctime_ns == entry.ctime_ns
            && old.inode == entry.inode
            && old.chunks.iter().all(|c| (opts.chunk_known)(c));
        if same {
            entry.chunks = old.chunks.clone();
            (entry.sha256, entry.blake3) = (old.sha256.clone(), old.blake3.clone());
            (opts.on_bytes)(entry.size);
            return emit(SourceItem::Entry(entry));
        }
    }
    // The path was a regular file at lstat time. If it has been swapped
    // since: O_NOFOLLOW refuses a symlink, and O_NONBLOCK makes opening a
    // FIFO (which would wait for a writer forever) return at once, so the
    // descriptor can be checked and the file skipped. Reads of a regular
    // file ignore O_NONBLOCK.
    let opened = fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(fs_path);
    let file = match opened {
        Ok(f) => f,
        Err(e) => return emit(SourceItem::Unreadable(format!("{}: {e}", fs_path.display()))),
    };
    let before = match file.metadata() {
        Ok(m) if m.is_file() => m,
        Ok(_) => {
            let what =
                "is no longer a regular file (replaced by a FIFO, socket or device while the backup ran); skipped";
            return emit(SourceItem::Unreadable(format!("{}: {what}", fs_path.display())));
        }
        Err(e) => return emit(SourceItem::Unreadable(format!("{}: {e}", fs_path.display()))),
    };
    let entry = Entry { hardlink: entry.hardlink, ..entry_from(entry.path, EntryKind::File, &before) };
    emit(SourceItem::FileStart(entry))?;

    let mut reader = HashingReader::new(&file, opts.algo);
    let mut read_error = None;
    let result = chunker.split(
        &mut reader,
        |chunk| {
            (opts.on_bytes)(chunk.len() as u64);
            emit(SourceItem::Chunk(opts.buffers.copy_of(chunk)))
        },
        |e| {
            read_error = Some(format!("{}: {e}", fs_path.display()));
            Error::io(fs_path, e)
        },
    );
    match (result, read_error) {
        (Ok(()), _) => {}
        (Err(_), Some(message)) => {
            emit(SourceItem::FileFailed)?;
            return emit(SourceItem::Unreadable(message));
        }
        (Err(e), None) => return Err(e),
    }
    let after = file.metadata().map_err(|e| Error::io(fs_path, e))?;
    let changed = !unchanged(&before, &after) || reader.bytes != before.len();
    emit(SourceItem::FileEnd { algo: opts.algo, digest: reader.hasher.finalize(), size: reader.bytes, changed })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_roots_are_relative_and_normalised() {
        assert_eq!(stored_root(Path::new("/etc/ssh/")).unwrap().0, b"etc/ssh");
        assert_eq!(stored_root(Path::new("./a//b")).unwrap().0, b"a/b");
        assert_eq!(stored_root(Path::new("/")).unwrap().0, b"");
        let up = stored_root(Path::new("..")).unwrap();
        assert!(!up.0.windows(2).any(|w| w == b".."));
    }
}

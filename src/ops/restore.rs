//! Restore a snapshot (or the part of it a glob selects) into a directory.
//!
//! The manifest is hostile input: every path is validated before anything is
//! written, nothing is written through a symlink (the target is walked by
//! directory descriptors, `target.rs`), files are written without a name
//! (`AtomicFile`) and get theirs only after their digest matched the
//! manifest. Directories come first, symlinks last, and directory
//! metadata is applied at the end (deepest first) so that a read-only
//! directory does not block its own contents.

use crate::backend::Requests;
use crate::crypto::{ContentHasher, HashAlgo};
use crate::engine::atomic_file::{AtomicFile, Turns};
use crate::engine::filter::Selection;
use crate::engine::pipeline::{self, BufferPool};
use crate::engine::target::{Dir, Target};
use crate::error::{Error, Result};
use crate::format::encoding::Id;
use crate::format::manifest::{Entry, EntryKind, Manifest};
use crate::format::Index;
use crate::ops::estimate::Estimate;
use crate::repo::{ChunkCheck, Repository};
use rustix::fs::{AtFlags, Mode, OFlags, Timestamps};
use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub target: PathBuf,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub dry_run: bool,
    pub workers: usize,
    /// Restore this tree alone (a base backup's, `pg-base/<stanza>`), its
    /// contents straight into the target: the target is the data directory.
    pub base_root: Option<crate::format::encoding::RawPath>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreSummary {
    pub snapshot: String,
    pub dry_run: bool,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Named pipes, sockets and device nodes made.
    pub specials: u64,
    /// Entries a restore may not make (a device node, by anyone but root): each with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_restored: Vec<String>,
    pub bytes: u64,
    pub chunks_checked: u64,
    /// Paths under the target that existed and were (or would be) replaced.
    pub overwritten: Vec<String>,
    pub duration_secs: f64,
}

/// One file being restored: created (without a name, `AtomicFile`) by the
/// producer, written at offsets by the workers, checked and moved into place
/// by the consumer.
struct Restoring<'a> {
    entry: &'a Entry,
    /// For messages; the file is named through `file`'s folder descriptor.
    path: PathBuf,
    name: OsString,
    file: Option<AtomicFile>,
    turns: Turns,
}

/// One chunk of a file (none for an empty file). A file has no start and
/// end items of its own: most files are one chunk, and three items each
/// would cost three hand-overs and fill the window with markers.
struct Job<'a> {
    file: Arc<Restoring<'a>>,
    chunk: Option<(Id, u64)>,
    last: bool,
}

struct Fetched<'a> {
    file: Arc<Restoring<'a>>,
    data: Option<Vec<u8>>,
    last: bool,
}

pub fn restore(repo: &Repository, snapshot: &Id, opts: &RestoreOptions) -> Result<RestoreSummary> {
    restore_with(repo, snapshot, opts, &crate::ops::progress::NoProgress)
}

/// `restore`, reporting each file and its bytes to `progress`.
pub fn restore_with(
    repo: &Repository,
    snapshot: &Id,
    opts: &RestoreOptions,
    progress: &dyn crate::ops::progress::Progress,
) -> Result<RestoreSummary> {
    let started = Instant::now();
    let (manifest, selection, index) = load(repo, snapshot, opts)?;
    let plan = RestorePlan::new(&manifest, snapshot, &index, &selection)?;

    let mut summary = RestoreSummary { snapshot: snapshot.to_hex(), dry_run: opts.dry_run, ..Default::default() };
    let mut dirs = Target::open(&opts.target, opts.dry_run)?;
    let owner = crate::is_root();
    for e in &plan.dirs {
        dirs.dir(&components(&e.path.0))?;
        summary.dirs += 1;
    }
    let total: u64 = plan.files.iter().map(|(e, _)| e.size).sum();
    progress.start("files", plan.files.len() as u64, total);
    let inodes = write_files(repo, &index, &plan, &mut dirs, opts, progress, &mut summary)?;
    link_files(&plan, &mut dirs, &inodes, opts, &mut summary)?;
    make_symlinks(&plan, &mut dirs, opts, owner, &mut summary)?;
    make_specials(&plan, &mut dirs, opts, owner, &mut summary)?;
    // Folders' modes and times last: writing into them changed their times.
    if !opts.dry_run {
        for e in plan.dirs.iter().rev() {
            let dir = dirs.dir(&components(&e.path.0))?;
            apply_dir_metadata(&dir, e, owner).map_err(|err| Error::io(&dir.path, err.into()))?;
        }
    }
    summary.duration_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// What a restore plans from: the (validated) manifest, the selection, the index.
fn load(repo: &Repository, snapshot: &Id, opts: &RestoreOptions) -> Result<(Manifest, Selection, Index)> {
    let mut manifest = repo.load_snapshot(snapshot)?;
    manifest.validate().map_err(|(path, reason)| Error::UnsafeEntry { snapshot: snapshot.to_hex(), path, reason })?;
    if let Some(root) = &opts.base_root {
        manifest = rooted_at(manifest, root)
            .ok_or_else(|| Error::NoSuchPath { snapshot: snapshot.short(), path: root.display() })?;
        manifest.validate().map_err(|(path, reason)| Error::UnsafeEntry {
            snapshot: snapshot.to_hex(),
            path,
            reason,
        })?;
    }
    let selection = Selection::new(&opts.include, &opts.exclude)?;
    Ok((manifest, selection, repo.load_index()?))
}

/// The manifest with the tree at `root` alone, its entries' paths relative
/// to it (the root's own entry dropped: the target stands for it).
fn rooted_at(mut manifest: Manifest, root: &crate::format::encoding::RawPath) -> Option<Manifest> {
    use crate::format::manifest::Source;
    let mut tree = manifest.sources.into_iter().find_map(|s| match s {
        Source::Tree(t) if &t.path == root => Some(t),
        _ => None,
    })?;
    let prefix = [root.0.as_slice(), b"/"].concat();
    tree.entries.retain_mut(|e| match e.path.0.strip_prefix(prefix.as_slice()) {
        Some(rest) => {
            e.path.0 = rest.to_vec();
            e.hardlink = e.hardlink.take().and_then(|h| {
                h.0.strip_prefix(prefix.as_slice()).map(|r| crate::format::encoding::RawPath(r.to_vec()))
            });
            true
        }
        None => false,
    });
    manifest.sources = vec![Source::Tree(tree)];
    Some(manifest)
}

/// What `restore` would fetch, planned as it plans: one ranged GET per
/// chunk of each file it writes (links, symlinks and folders fetch nothing).
pub fn estimate_restore(repo: &Repository, snapshot: &Id, opts: &RestoreOptions) -> Result<Estimate> {
    let (manifest, selection, index) = load(repo, snapshot, opts)?;
    let plan = RestorePlan::new(&manifest, snapshot, &index, &selection)?;
    let mut work = Requests::default();
    for (_, chunks) in &plan.files {
        for (id, _) in chunks {
            // The plan found every chunk in the index.
            if let Some((_, loc)) = index.get(id) {
                work.add_get(loc.length as u64);
            }
        }
    }
    let mut estimate = Estimate::new(format!("restore of snapshot {}", snapshot.short()), work);
    if !opts.dry_run {
        estimate.local_write_bytes = plan.files.iter().map(|(e, _)| e.size).sum();
    }
    Ok(estimate)
}

/// What a restore will write, worked out from the manifest and the index
/// before the first byte is written: every chunk is indexed, each file's
/// chunks add up to its size, and each chunk has its offset.
struct RestorePlan<'m> {
    dirs: Vec<&'m Entry>,
    /// Files written from their chunks: each chunk with its offset.
    files: Vec<(&'m Entry, Vec<(Id, u64)>)>,
    /// Hard links whose first name is restored too: linked to it.
    links: Vec<&'m Entry>,
    /// The first names those links will name.
    link_targets: HashSet<&'m [u8]>,
    symlinks: Vec<&'m Entry>,
    /// Named pipes, sockets, device nodes.
    specials: Vec<&'m Entry>,
    /// The manifest's digest algorithm.
    algo: HashAlgo,
}

impl<'m> RestorePlan<'m> {
    fn new(manifest: &'m Manifest, snapshot: &Id, index: &Index, selection: &Selection) -> Result<RestorePlan<'m>> {
        // Restoring nothing is not a success: say why there is nothing.
        if manifest.entries().next().is_none() {
            let reason = match manifest.dumps().count() {
                0 => "it holds no files or folders".to_string(),
                n => format!("it holds no files or folders, only {n} database dump(s)"),
            };
            return Err(Error::NothingSelected { snapshot: snapshot.short(), reason });
        }
        let selected: Vec<&Entry> = manifest.entries().filter(|e| selection.selects(&e.path.0)).collect();
        if selected.is_empty() {
            return Err(Error::NothingSelected {
                snapshot: snapshot.short(),
                reason: "no stored path matches the include and exclude patterns".into(),
            });
        }
        // A hard link whose first name is restored too is linked to it once it
        // is in place; otherwise it is written as a file of its own.
        let selected_paths: HashSet<&[u8]> = selected.iter().map(|e| e.path.0.as_slice()).collect();
        let linked = |e: &Entry| e.hardlink.as_ref().is_some_and(|first| selected_paths.contains(first.0.as_slice()));
        let (links, files): (Vec<&Entry>, Vec<&Entry>) =
            selected.iter().copied().filter(|e| e.kind == EntryKind::File).partition(|e| linked(e));
        let link_targets = links.iter().filter_map(|e| e.hardlink.as_ref()).map(|p| p.0.as_slice()).collect();
        let mut planned = Vec::with_capacity(files.len());
        for e in files {
            planned.push((e, chunk_offsets(e, snapshot, index)?));
        }
        // Links and symlinks have no content, but their chunks (none) are
        // checked the same way: a manifest is hostile input.
        for e in selected.iter().filter(|e| e.kind != EntryKind::File) {
            chunk_offsets(e, snapshot, index)?;
        }
        Ok(RestorePlan {
            dirs: selected.iter().copied().filter(|e| e.kind == EntryKind::Dir).collect(),
            files: planned,
            links,
            link_targets,
            symlinks: selected.iter().copied().filter(|e| e.kind == EntryKind::Symlink).collect(),
            specials: selected.iter().copied().filter(|e| e.kind.is_special()).collect(),
            algo: HashAlgo::of_version(manifest.version),
        })
    }
}

/// Each chunk of a file at its offset. Every chunk must be indexed, and
/// their indexed sizes must add up to the file's: the workers write each
/// chunk at the offset those sizes give.
fn chunk_offsets(e: &Entry, snapshot: &Id, index: &Index) -> Result<Vec<(Id, u64)>> {
    let (out, size) = index.offsets(&e.chunks).map_err(|c| {
        Error::corrupt(
            format!("snapshot {snapshot}"),
            format!("chunk {} of {} is in no pack", c.short(), e.path.display()),
        )
    })?;
    if e.kind == EntryKind::File && size != e.size {
        return Err(Error::corrupt(
            format!("snapshot {snapshot}"),
            format!("the chunks of {} add up to {size} bytes, not its {}", e.path.display(), e.size),
        ));
    }
    Ok(out)
}

/// Writes every file of the plan through the pipeline: the producer creates
/// each file and the workers write its chunks at their offsets; the consumer
/// hashes them in order and names each file once it checks. Returns the
/// inodes of the files hard links will name.
fn write_files(
    repo: &Repository,
    index: &Index,
    plan: &RestorePlan<'_>,
    dirs: &mut Target,
    opts: &RestoreOptions,
    progress: &dyn crate::ops::progress::Progress,
    summary: &mut RestoreSummary,
) -> Result<HashMap<Vec<u8>, u64>> {
    let owner = crate::is_root();
    // Twice the backup's window: most restored files are one small chunk,
    // and a worker held up on a large one should not leave the other idle
    // (an A/B in docs/BENCHMARKS.md, "Measurements in the code's choices").
    // Each item in flight holds one chunk; each worker also a sealed one.
    // A remote store's round trips want more reads in flight than there
    // are cores; the window grows less, so memory stays near the local case.
    let workers = opts.workers.max(repo.backend().read_parallelism());
    let window = (opts.workers * 8).max(workers);
    let buffers = BufferPool::new(window + workers * 2);
    // The producer creates each file and the workers write its chunks at
    // their offsets, so the writing is spread over the cores; the consumer
    // sees the chunks in order, hashes them and finishes each file.
    let overwritten = &mut summary.overwritten;
    let algo = plan.algo;
    let mut checker = FileChecker {
        owner,
        algo,
        hasher: algo.hasher(),
        size: 0,
        buffers: &buffers,
        link_targets: &plan.link_targets,
        inodes: HashMap::new(),
    };
    let (mut files_done, mut bytes_done, mut chunks_done) = (0u64, 0u64, 0u64);
    pipeline::run(
        workers,
        window,
        |emitter| {
            for (e, chunks) in &plan.files {
                let file = Arc::new(start_file(dirs, e, overwritten)?);
                let Some((last, rest)) = chunks.split_last() else {
                    emitter.emit(Job { file, chunk: None, last: true })?;
                    continue;
                };
                for c in rest {
                    emitter.emit(Job { file: file.clone(), chunk: Some(*c), last: false })?;
                }
                // The last piece takes the producer's reference along, so the
                // consumer holds the only one when it finishes the file.
                emitter.emit(Job { file, chunk: Some(*last), last: true })?;
            }
            Ok(())
        },
        |Job { file, chunk, last }| {
            let Some((id, offset)) = chunk else {
                return Ok(Fetched { file, data: None, last });
            };
            // Every file is checked whole (its digest) before it is moved
            // into place, so the tag check per chunk is enough here;
            // read_chunk checks the indexed size the offset relies on.
            let data = repo.read_chunk(index, &id, ChunkCheck::Tag, &buffers)?;
            if let Some(f) = &file.file {
                file.turns
                    .write_at(f.as_file(), &data, offset, file.entry.sparse)
                    .map_err(|err| Error::io(&file.path, err))?;
            }
            Ok(Fetched { file, data: Some(data), last })
        },
        |Fetched { file, data, last }| {
            if let Some(data) = data {
                chunks_done += 1;
                progress.bytes_done(data.len() as u64);
                checker.add(data);
            }
            if last {
                // The file's earlier pieces, consumed in order, dropped their
                // references: this one is the last.
                bytes_done += checker.finish(file)?;
                files_done += 1;
                progress.item_done();
            }
            Ok(())
        },
    )?;
    summary.files += files_done;
    summary.bytes += bytes_done;
    summary.chunks_checked += chunks_done;
    Ok(checker.inodes)
}

/// Links each hard link to its first name, once that is the very file this
/// restore wrote and checked.
fn link_files(
    plan: &RestorePlan<'_>,
    dirs: &mut Target,
    inodes: &HashMap<Vec<u8>, u64>,
    opts: &RestoreOptions,
    summary: &mut RestoreSummary,
) -> Result<()> {
    for e in &plan.links {
        let first = e.hardlink.as_ref().expect("partitioned on it");
        let (dir, name) = dirs.parent_of(&e.path.0)?;
        let path = dir.path.join(OsStr::from_bytes(name));
        if dirs.replaces(&dir, name)? {
            summary.overwritten.push(path.display().to_string());
        }
        summary.files += 1;
        summary.bytes += e.size;
        let Some(fd) = dir.fd.as_ref().filter(|_| !opts.dry_run) else { continue };
        // The first name must still be the file this restore wrote and checked.
        let (first_dir, first_name) = dirs.parent_of(&first.0)?;
        let first_path = first_dir.path.join(OsStr::from_bytes(first_name));
        let opened = first_dir.fd.as_ref().map(|d| {
            rustix::fs::openat(
                &**d,
                OsStr::from_bytes(first_name),
                OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
        });
        let same = |fd: &std::os::fd::OwnedFd| {
            rustix::fs::fstat(fd).is_ok_and(|st| Some(&st.st_ino) == inodes.get(first.0.as_slice()))
        };
        let source = match opened {
            Some(Ok(f)) if same(&f) => f,
            _ => {
                return Err(Error::Target {
                    path: first_path,
                    reason: format!("is no longer the file restored there; not linking {} to it", path.display()),
                })
            }
        };
        crate::engine::atomic_file::link_as(&source, fd, OsStr::from_bytes(name))
            .map_err(|err| Error::io(&path, err))?;
    }

    Ok(())
}

/// Makes each named pipe, socket and (as root) device node under a
/// temporary name, sets its owner, mode and times, then renames it into
/// place. A device node needs root: otherwise it is listed as not restored.
fn make_specials(
    plan: &RestorePlan<'_>,
    dirs: &mut Target,
    opts: &RestoreOptions,
    owner: bool,
    summary: &mut RestoreSummary,
) -> Result<()> {
    use rustix::fs::FileType;
    for e in &plan.specials {
        let (dir, name) = dirs.parent_of(&e.path.0)?;
        let path = dir.path.join(OsStr::from_bytes(name));
        if e.kind.is_device() && !owner {
            summary.not_restored.push(format!("{}: a {}, which only root may make", path.display(), e.kind.name()));
            continue;
        }
        if dirs.replaces(&dir, name)? {
            summary.overwritten.push(path.display().to_string());
        }
        summary.specials += 1;
        let Some(fd) = &dir.fd.as_ref().filter(|_| !opts.dry_run) else { continue };
        let kind = match e.kind {
            EntryKind::Fifo => FileType::Fifo,
            EntryKind::Socket => FileType::Socket,
            EntryKind::CharDevice => FileType::CharacterDevice,
            _ => FileType::BlockDevice,
        };
        let tmp = crate::engine::atomic_file::temporary_name();
        let mode = Mode::from_raw_mode(file_mode(e, owner));
        // With the umask cleared, mknod gives the recorded mode exactly; no
        // chmod by name afterwards, which would follow a symlink swapped in
        // for the new node. Nothing else creates files meanwhile (the files
        // are done), and the umask is put back at once.
        let umask = rustix::process::umask(Mode::empty());
        let made = rustix::fs::mknodat(&***fd, &tmp, kind, mode, e.rdev);
        rustix::process::umask(umask);
        made.map_err(|err| Error::io(&path, err.into()))?;
        settle(fd, &tmp, name, e, owner).map_err(|err| Error::io(&path, err.into()))?;
    }
    Ok(())
}

/// Makes each symlink under a temporary name, sets its owner and times
/// without following it, then renames it into place.
fn make_symlinks(
    plan: &RestorePlan<'_>,
    dirs: &mut Target,
    opts: &RestoreOptions,
    owner: bool,
    summary: &mut RestoreSummary,
) -> Result<()> {
    for e in &plan.symlinks {
        let (dir, name) = dirs.parent_of(&e.path.0)?;
        let path = dir.path.join(OsStr::from_bytes(name));
        if dirs.replaces(&dir, name)? {
            summary.overwritten.push(path.display().to_string());
        }
        summary.symlinks += 1;
        let Some(fd) = &dir.fd.as_ref().filter(|_| !opts.dry_run) else { continue };
        let link_target = OsStr::from_bytes(&e.target.as_ref().expect("validated: symlinks have targets").0);
        let tmp = crate::engine::atomic_file::temporary_name();
        rustix::fs::symlinkat(link_target, &***fd, &tmp).map_err(|err| Error::io(&path, err.into()))?;
        settle(fd, &tmp, name, e, owner).map_err(|err| Error::io(&path, err.into()))?;
    }

    Ok(())
}

/// A node just made under the temporary name `tmp` (a symlink, a pipe, a
/// device): its owner and times set without following it, then renamed to
/// `name`; removed again if any of that fails.
fn settle(fd: &OwnedFd, tmp: &OsStr, name: &[u8], e: &Entry, owner: bool) -> rustix::io::Result<()> {
    let finish = || -> rustix::io::Result<()> {
        if owner {
            rustix::fs::chownat(fd, tmp, Some(uid(e.uid)), Some(gid(e.gid)), AtFlags::SYMLINK_NOFOLLOW)?;
        }
        rustix::fs::utimensat(fd, tmp, &times(e.mtime_ns), AtFlags::SYMLINK_NOFOLLOW)?;
        rustix::fs::renameat(fd, tmp, fd, OsStr::from_bytes(name))
    };
    finish().inspect_err(|_| {
        let _ = rustix::fs::unlinkat(fd, tmp, AtFlags::empty());
    })
}

fn components(rel: &[u8]) -> Vec<&[u8]> {
    rel.split(|&b| b == b'/').collect()
}

fn uid(raw: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(raw)
}

fn gid(raw: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(raw)
}

/// Access and modification time, both the entry's mtime.
fn times(ns: i64) -> Timestamps {
    let t = rustix::fs::Timespec { tv_sec: ns.div_euclid(1_000_000_000), tv_nsec: ns.rem_euclid(1_000_000_000) as _ };
    Timestamps { last_access: t, last_modification: t }
}

/// A folder's owner, mode and times, through its descriptor.
fn apply_dir_metadata(dir: &Dir, e: &Entry, owner: bool) -> rustix::io::Result<()> {
    let Some(fd) = &dir.fd else { return Ok(()) };
    if owner {
        rustix::fs::fchown(&**fd, Some(uid(e.uid)), Some(gid(e.gid)))?;
    }
    rustix::fs::fchmod(&**fd, Mode::from_raw_mode(e.mode & 0o7777))?;
    rustix::fs::futimens(&**fd, &times(e.mtime_ns))
}

/// The mode a restored file gets. Not as root, the file belongs to whoever
/// restores it: setuid and setgid are kept only where that user (group) is
/// the one recorded, as tar does, so a restore never makes a set-id program
/// of someone else's.
fn file_mode(e: &Entry, owner: bool) -> u32 {
    let mut mode = e.mode & 0o7777;
    if !owner {
        if e.uid != rustix::process::geteuid().as_raw() {
            mode &= !0o4000;
        }
        if e.gid != rustix::process::getegid().as_raw() {
            mode &= !0o2000;
        }
    }
    mode
}

/// Resolves a file's place under the target and, unless this is a dry run,
/// creates it, without a name yet, in the folder it will end up in.
fn start_file<'a>(dirs: &mut Target, e: &'a Entry, overwritten: &mut Vec<String>) -> Result<Restoring<'a>> {
    let (dir, name) = dirs.parent_of(&e.path.0)?;
    let path = dir.path.join(OsStr::from_bytes(name));
    if dirs.replaces(&dir, name)? {
        overwritten.push(path.display().to_string());
    }
    let file = match &dir.fd {
        _ if dirs.dry_run() => None,
        None => None,
        Some(fd) => {
            let file = AtomicFile::new_at(fd.clone(), &dir.path).map_err(|e| Error::io(&dir.path, e))?;
            if e.sparse {
                // Its size, without the blocks: the holes stay holes.
                file.as_file().set_len(e.size).map_err(|err| Error::io(&path, err))?;
            } else if e.chunks.len() > 1 {
                // One call more per file: worth it only where there are several writes.
                crate::engine::atomic_file::preallocate(file.as_file(), e.size).map_err(|err| Error::io(&path, err))?;
            }
            Some(file)
        }
    };
    Ok(Restoring { entry: e, path, name: OsStr::from_bytes(name).into(), file, turns: Turns::default() })
}

/// Hashes each file's chunks in order and, at the file's end, checks it
/// against the manifest's digest and finishes it (owner, mode, times, rename).
struct FileChecker<'p> {
    owner: bool,
    algo: HashAlgo,
    hasher: ContentHasher,
    size: u64,
    buffers: &'p BufferPool,
    /// Files that hard links will name, and the inodes they were restored as.
    link_targets: &'p HashSet<&'p [u8]>,
    inodes: HashMap<Vec<u8>, u64>,
}

impl FileChecker<'_> {
    fn add(&mut self, data: Vec<u8>) {
        self.hasher.update(&data);
        self.size += data.len() as u64;
        self.buffers.give(data);
    }

    /// Checks and finishes `cur`, whose chunks were all added. Returns its size.
    fn finish(&mut self, cur: Arc<Restoring<'_>>) -> Result<u64> {
        let digest = hex::encode(std::mem::replace(&mut self.hasher, self.algo.hasher()).finalize());
        let size = std::mem::take(&mut self.size);
        let e = cur.entry;
        if e.digest() != Some((self.algo, &digest)) || size != e.size {
            return Err(Error::corrupt(
                format!("file {}", e.path.display()),
                format!("restored content does not match the manifest's {}", self.algo.name()),
            ));
        }
        // Every job holding the file was consumed before its end arrived.
        let restoring = Arc::into_inner(cur).ok_or_else(|| Error::Internal("a file is still being written".into()))?;
        let (path, Some(tmp)) = (restoring.path, restoring.file) else {
            return Ok(size); // a dry run
        };
        let finish = || -> std::io::Result<()> {
            let f = tmp.as_file();
            if self.owner {
                rustix::fs::fchown(f, Some(uid(e.uid)), Some(gid(e.gid)))?;
            }
            rustix::fs::fchmod(f, Mode::from_raw_mode(file_mode(e, self.owner)))?;
            rustix::fs::futimens(f, &times(e.mtime_ns))?;
            if self.link_targets.contains(e.path.0.as_slice()) {
                self.inodes.insert(e.path.0.clone(), rustix::fs::fstat(f)?.st_ino);
            }
            tmp.persist(&restoring.name)?;
            Ok(())
        };
        finish().map_err(|err| Error::io(&path, err))?;
        Ok(size)
    }
}

//! Restore a snapshot (or the part of it a glob selects) into a directory.
//!
//! The manifest is hostile input: every path is validated before anything is
//! written, nothing is written through a symlink, files are written under a
//! temporary name and renamed into place only after their SHA-256 matched
//! the manifest. Directories come first, symlinks last, and directory
//! metadata is applied at the end (deepest first) so that a read-only
//! directory does not block its own contents.

use crate::encoding::Id;
use crate::error::{Error, Result};
use crate::filter::Selection;
use crate::manifest::{Entry, EntryKind};
use crate::pipeline::{self, BufferPool};
use crate::repository::{ChunkCheck, Repository};
use sha2::{Digest, Sha256};
use std::ffi::OsStr;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub target: PathBuf,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub dry_run: bool,
    pub workers: usize,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RestoreSummary {
    pub snapshot: String,
    pub dry_run: bool,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub chunks_checked: u64,
    /// Paths under the target that existed and were (or would be) replaced.
    pub overwritten: Vec<String>,
    pub duration_secs: f64,
}

enum Job<'a> {
    Start(&'a Entry),
    Chunk(Id),
    End,
}

enum Fetched<'a> {
    Start(&'a Entry),
    Data(Vec<u8>),
    End,
}

pub fn restore(repo: &Repository, snapshot: &Id, opts: &RestoreOptions) -> Result<RestoreSummary> {
    let started = Instant::now();
    let manifest = repo.load_snapshot(snapshot)?;
    manifest.validate().map_err(|(path, reason)| Error::UnsafeEntry { snapshot: snapshot.to_hex(), path, reason })?;
    let selection = Selection::new(&opts.include, &opts.exclude)?;
    let selected: Vec<&Entry> = manifest.entries().filter(|e| selection.selects(&e.path.0)).collect();

    // Every chunk must be findable before the first byte is written.
    let index = repo.load_index()?;
    for e in &selected {
        if let Some(missing) = e.chunks.iter().find(|c| !index.contains(c)) {
            return Err(Error::corrupt(
                format!("snapshot {snapshot}"),
                format!("chunk {} of {} is in no pack", missing.short(), e.path.display()),
            ));
        }
    }

    let mut summary = RestoreSummary { snapshot: snapshot.to_hex(), dry_run: opts.dry_run, ..Default::default() };
    let target = &opts.target;
    if !opts.dry_run {
        fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    }
    let owner = crate::is_root();

    for e in selected.iter().filter(|e| e.kind == EntryKind::Dir) {
        let path = resolve(target, &e.path.0, !opts.dry_run)?;
        match fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::Target { path, reason: "is a symlink; refusing to restore through it".into() })
            }
            Ok(_) => return Err(Error::Target { path, reason: "exists and is not a directory".into() }),
            Err(_) if opts.dry_run => {}
            Err(_) => fs::create_dir(&path).map_err(|err| Error::io(&path, err))?,
        }
        summary.dirs += 1;
    }

    let files: Vec<&Entry> = selected.iter().copied().filter(|e| e.kind == EntryKind::File).collect();
    let window = opts.workers * 4;
    // Each item in flight holds one chunk; each worker also a sealed one.
    let buffers = BufferPool::new(window + opts.workers * 2);
    let summary_ref = &mut summary;
    let finish = |finish_rx| finish_files(finish_rx, owner, &buffers);
    let ((), (files_done, bytes_done)) = pipeline::with_helper(8, finish, |finish_tx| {
        let mut writer =
            FileWriter { target, dry_run: opts.dry_run, current: None, summary: summary_ref, finisher: finish_tx };
        pipeline::run(
            opts.workers,
            window,
            |emitter| {
                for e in &files {
                    emitter.emit(Job::Start(e))?;
                    for c in &e.chunks {
                        emitter.emit(Job::Chunk(*c))?;
                    }
                    emitter.emit(Job::End)?;
                }
                Ok(())
            },
            |job| {
                Ok(match job {
                    Job::Start(e) => Fetched::Start(e),
                    // Every file is checked whole (sha256) before it is renamed
                    // into place, so the tag check per chunk is enough here.
                    Job::Chunk(id) => Fetched::Data(repo.read_chunk(&index, &id, ChunkCheck::Tag, &buffers)?),
                    Job::End => Fetched::End,
                })
            },
            |fetched| writer.consume(fetched),
        )
    })?;
    summary.files += files_done;
    summary.bytes += bytes_done;

    for e in selected.iter().filter(|e| e.kind == EntryKind::Symlink) {
        let path = resolve(target, &e.path.0, !opts.dry_run)?;
        if let Ok(m) = fs::symlink_metadata(&path) {
            if m.is_dir() {
                return Err(Error::Target { path, reason: "exists and is a directory".into() });
            }
            summary.overwritten.push(path.display().to_string());
        }
        summary.symlinks += 1;
        if opts.dry_run {
            continue;
        }
        let dir = path.parent().unwrap_or(target);
        let tmp = dir.join(format!(".coffer-{}.tmp", Id::random().short()));
        let link_target = OsStr::from_bytes(&e.target.as_ref().expect("validated: symlinks have targets").0);
        std::os::unix::fs::symlink(link_target, &tmp).map_err(|err| Error::io(&tmp, err))?;
        let finish = || -> std::io::Result<()> {
            if owner {
                std::os::unix::fs::lchown(&tmp, Some(e.uid), Some(e.gid))?;
            }
            let t = file_time(e.mtime_ns);
            filetime::set_symlink_file_times(&tmp, t, t)?;
            fs::rename(&tmp, &path)
        };
        if let Err(err) = finish() {
            let _ = fs::remove_file(&tmp);
            return Err(Error::io(&path, err));
        }
    }

    if !opts.dry_run {
        for e in selected.iter().rev().filter(|e| e.kind == EntryKind::Dir) {
            let path = resolve(target, &e.path.0, false)?;
            apply_dir_metadata(&path, e, owner).map_err(|err| Error::io(&path, err))?;
        }
    }
    summary.duration_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

fn file_time(ns: i64) -> filetime::FileTime {
    filetime::FileTime::from_unix_time(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32)
}

fn apply_dir_metadata(path: &Path, e: &Entry, owner: bool) -> std::io::Result<()> {
    let m = fs::symlink_metadata(path)?;
    if !m.is_dir() {
        return Err(std::io::Error::other("is no longer a directory"));
    }
    if owner {
        std::os::unix::fs::lchown(path, Some(e.uid), Some(e.gid))?;
    }
    fs::set_permissions(path, fs::Permissions::from_mode(e.mode))?;
    let t = file_time(e.mtime_ns);
    filetime::set_file_times(path, t, t)
}

/// The place of a stored path under the target. Every existing ancestor must
/// be a real directory (a symlink there could point anywhere); missing ones
/// are created when `create` is set. The path itself is not checked here.
fn resolve(target: &Path, rel: &[u8], create: bool) -> Result<PathBuf> {
    let mut cur = target.to_path_buf();
    let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
    let (last, parents) = comps.split_last().expect("validated paths are not empty");
    let mut missing = false;
    for comp in parents {
        cur.push(OsStr::from_bytes(comp));
        if missing {
            continue;
        }
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::Target { path: cur, reason: "is a symlink; refusing to restore through it".into() });
            }
            Ok(_) => return Err(Error::Target { path: cur, reason: "exists and is not a directory".into() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if create {
                    fs::create_dir(&cur).map_err(|err| Error::io(&cur, err))?;
                } else {
                    missing = true;
                }
            }
            Err(e) => return Err(Error::io(&cur, e)),
        }
    }
    cur.push(OsStr::from_bytes(last));
    Ok(cur)
}

struct Current<'a> {
    entry: &'a Entry,
    path: PathBuf,
    file: Option<tempfile::NamedTempFile>,
}

/// What the writer hands on, in order, to the thread that hashes and
/// finishes files.
enum ToFinish<'a> {
    Data(Vec<u8>),
    End(Current<'a>),
}

/// Creates each file under a temporary name and writes its chunks; checking
/// and finishing it (sha256, owner, mode, times, rename into place) happen
/// on another thread (`finish_files`), so hashing overlaps with writing.
struct FileWriter<'s, 'a> {
    target: &'a Path,
    dry_run: bool,
    current: Option<Current<'a>>,
    summary: &'s mut RestoreSummary,
    finisher: crossbeam_channel::Sender<ToFinish<'a>>,
}

impl<'a> FileWriter<'_, 'a> {
    fn consume(&mut self, f: Fetched<'a>) -> Result<()> {
        match f {
            Fetched::Start(entry) => {
                let path = resolve(self.target, &entry.path.0, !self.dry_run)?;
                if let Ok(m) = fs::symlink_metadata(&path) {
                    if m.is_dir() {
                        return Err(Error::Target { path, reason: "exists and is a directory".into() });
                    }
                    self.summary.overwritten.push(path.display().to_string());
                }
                let file = if self.dry_run {
                    None
                } else {
                    let dir = path.parent().unwrap_or(self.target);
                    Some(
                        tempfile::Builder::new()
                            .prefix(".coffer-")
                            .suffix(".tmp")
                            .tempfile_in(dir)
                            .map_err(|e| Error::io(dir, e))?,
                    )
                };
                self.current = Some(Current { entry, path, file });
            }
            Fetched::Data(data) => {
                let cur = self.current.as_mut().expect("data follows a start");
                self.summary.chunks_checked += 1;
                if let Some(f) = cur.file.as_mut() {
                    f.write_all(&data).map_err(|e| Error::io(&cur.path, e))?;
                }
                self.hand_on(ToFinish::Data(data))?;
            }
            Fetched::End => {
                let cur = self.current.take().expect("end follows a start");
                self.hand_on(ToFinish::End(cur))?;
            }
        }
        Ok(())
    }

    fn hand_on(&self, item: ToFinish<'a>) -> Result<()> {
        // A closed channel means the finisher failed; its error is returned.
        self.finisher.send(item).map_err(|_| Error::InvalidInput("file finisher stopped".into()))
    }
}

/// Hashes each file's chunks in order and, when the file's end arrives,
/// checks it against the manifest and finishes it; returns files and bytes.
fn finish_files(
    rx: crossbeam_channel::Receiver<ToFinish<'_>>,
    owner: bool,
    buffers: &BufferPool,
) -> Result<(u64, u64)> {
    let (mut files, mut bytes) = (0u64, 0u64);
    let (mut hasher, mut size) = (Sha256::new(), 0u64);
    for item in rx {
        let cur = match item {
            ToFinish::Data(data) => {
                hasher.update(&data);
                size += data.len() as u64;
                buffers.give(data);
                continue;
            }
            ToFinish::End(cur) => cur,
        };
        let digest = hex::encode(std::mem::take(&mut hasher).finalize());
        let e = cur.entry;
        if Some(&digest) != e.sha256.as_ref() || size != e.size {
            return Err(Error::corrupt(
                format!("file {}", e.path.display()),
                "restored content does not match the manifest's sha256",
            ));
        }
        files += 1;
        bytes += std::mem::take(&mut size);
        if let Some(tmp) = cur.file {
            let finish = || -> std::io::Result<()> {
                let f = tmp.as_file();
                if owner {
                    std::os::unix::fs::fchown(f, Some(e.uid), Some(e.gid))?;
                }
                f.set_permissions(fs::Permissions::from_mode(e.mode))?;
                let t = file_time(e.mtime_ns);
                filetime::set_file_handle_times(f, Some(t), Some(t))?;
                tmp.persist(&cur.path).map_err(|p| p.error)?;
                Ok(())
            };
            finish().map_err(|err| Error::io(&cur.path, err))?;
        }
    }
    Ok((files, bytes))
}

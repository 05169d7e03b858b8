//! The restore target, walked by directory descriptors.
//!
//! A restore running as root into a folder another user can write to must
//! never write outside it, even when that user swaps a folder for a symlink
//! while the restore runs. So no path below the target is ever resolved
//! whole: each folder is opened from its parent's descriptor with
//! `O_NOFOLLOW | O_DIRECTORY` (a symlink there fails the restore), files are
//! created in and named through their folder's descriptor, and ownership,
//! modes and times are set through descriptors or with `AT_SYMLINK_NOFOLLOW`.
//! A folder swapped after it was opened only moves the open folder
//! elsewhere; what is written still lands in it.
//!
//! Entries come depth first, so the folders of the current path are kept
//! open as a stack (a few descriptors, not one per folder); each file being
//! written keeps its own folder open until it is named.

use crate::error::{Error, Result};
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An open folder of the target; `fd` is None for one missing in a dry run.
pub struct Dir {
    pub fd: Option<Arc<OwnedFd>>,
    pub path: PathBuf,
    /// Made by this restore: nothing can be in it that the restore did not put there.
    created: bool,
}

pub struct Target {
    root: Arc<Dir>,
    dry_run: bool,
    /// The folders of the last path resolved, outermost first, with their names.
    stack: Vec<(Vec<u8>, Arc<Dir>)>,
    /// Folders this restore made (relative paths), so a folder entered again
    /// later is still known to hold only what the restore put there.
    created: HashSet<Vec<u8>>,
}

fn refuse(path: &Path, reason: &str) -> Error {
    Error::Target { path: path.into(), reason: reason.into() }
}

/// What stands at `name` in `dir`, not following a symlink; None when nothing.
fn lookup(dir: &OwnedFd, name: &[u8], path: &Path) -> Result<Option<rustix::fs::Stat>> {
    match rustix::fs::statat(dir, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(Error::io(path, e.into())),
    }
}

fn kind(st: &rustix::fs::Stat) -> rustix::fs::FileType {
    rustix::fs::FileType::from_raw_mode(st.st_mode)
}

impl Target {
    /// The target folder, created when missing (unless this is a dry run).
    pub fn open(root: &Path, dry_run: bool) -> Result<Target> {
        if !dry_run {
            std::fs::create_dir_all(root).map_err(|e| Error::io(root, e))?;
        }
        let fd = match crate::engine::atomic_file::open_dir(root) {
            Ok(fd) => Some(Arc::new(fd)),
            Err(e) if dry_run && e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(root, e)),
        };
        let root = Arc::new(Dir { created: fd.is_none(), fd, path: root.into() });
        Ok(Target { root, dry_run, stack: Vec::new(), created: HashSet::new() })
    }

    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// The folder at the relative path `rel` (components, validated),
    /// every folder on the way opened (or made) as `ensure` does.
    pub fn dir(&mut self, rel: &[&[u8]]) -> Result<Arc<Dir>> {
        let keep = self.stack.iter().zip(rel).take_while(|((name, _), comp)| name.as_slice() == **comp).count();
        self.stack.truncate(keep);
        for depth in keep..rel.len() {
            let parent = self.stack.last().map_or(&self.root, |(_, d)| d).clone();
            let child = self.enter(&parent, &rel[..=depth])?;
            self.stack.push((rel[depth].to_vec(), Arc::new(child)));
        }
        Ok(self.stack.last().map_or(&self.root, |(_, d)| d).clone())
    }

    /// The folder holding entry `rel` (a relative path) and the entry's name.
    pub fn parent_of<'p>(&mut self, rel: &'p [u8]) -> Result<(Arc<Dir>, &'p [u8])> {
        let comps: Vec<&[u8]> = rel.split(|&b| b == b'/').collect();
        let (name, parents) = comps.split_last().expect("validated paths are not empty");
        Ok((self.dir(parents)?, name))
    }

    /// Opens (or makes) the last folder of `rel` in `parent`: a real folder,
    /// never a symlink, even one swapped in after it was looked at.
    fn enter(&mut self, parent: &Dir, rel: &[&[u8]]) -> Result<Dir> {
        let name = rel[rel.len() - 1];
        let path = parent.path.join(OsStr::from_bytes(name));
        let Some(pfd) = &parent.fd else {
            return Ok(Dir { fd: None, path, created: true });
        };
        let joined = rel.join(&b'/');
        let mut created = self.created.contains(&joined);
        // In a folder this restore made, only what it made can be there.
        let found = if parent.created && !created { None } else { lookup(pfd, name, &path)? };
        match found.as_ref().map(kind) {
            Some(rustix::fs::FileType::Directory) => {}
            Some(rustix::fs::FileType::Symlink) => {
                return Err(refuse(&path, "is a symlink; refusing to restore through it"))
            }
            Some(_) => return Err(refuse(&path, "exists and is not a directory")),
            None if self.dry_run => return Ok(Dir { fd: None, path, created: true }),
            None => {
                // Private until the end of the restore, when its own mode is set.
                match rustix::fs::mkdirat(&**pfd, OsStr::from_bytes(name), Mode::from_raw_mode(0o700)) {
                    Ok(()) => {
                        created = true;
                        self.created.insert(joined);
                    }
                    Err(Errno::EXIST) => {} // made meanwhile: opened (and checked) below
                    Err(e) => return Err(Error::io(&path, e.into())),
                }
            }
        }
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat(&**pfd, OsStr::from_bytes(name), flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP | Errno::NOTDIR) => {
                return Err(refuse(
                    &path,
                    "was replaced by a symlink or a file while restoring; refusing to restore through it",
                ))
            }
            Err(e) => return Err(Error::io(&path, e.into())),
        };
        Ok(Dir { fd: Some(Arc::new(fd)), path, created })
    }

    /// Whether an entry restored as `name` in `dir` replaces something there
    /// (never a folder: that is refused). Not looked up in a folder this
    /// restore made.
    pub fn replaces(&self, dir: &Dir, name: &[u8]) -> Result<bool> {
        let Some(fd) = dir.fd.as_ref().filter(|_| !dir.created) else { return Ok(false) };
        let path = dir.path.join(OsStr::from_bytes(name));
        match lookup(fd, name, &path)? {
            Some(st) if kind(&st) == rustix::fs::FileType::Directory => Err(refuse(&path, "exists and is a directory")),
            found => Ok(found.is_some()),
        }
    }
}

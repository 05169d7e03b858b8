//! Files that get their name only once they are complete.
//!
//! A new file is an unnamed inode in its directory (`O_TMPFILE`), written,
//! then linked under its name; an existing file there is replaced by a rename,
//! so it is never missing or half-written. A process killed half-way leaves
//! nothing behind, not even a temporary name. Where the filesystem has no
//! `O_TMPFILE` (or `/proc` is not mounted), a hidden temporary name and a
//! rename do the same, but a crash leaves that name behind.
//!
//! A scratch file (`scratch`) is one that never gets a name: another process
//! opens it through this one's `/proc/PID/fd` entry while this one holds it.

use rustix::fs::{AtFlags, Mode, OFlags, CWD};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub struct AtomicFile {
    inner: Inner,
    /// The directory it is made in, held open: the name is given there even
    /// if the directory's path is meanwhile made to lead elsewhere.
    dir: Arc<OwnedFd>,
    dir_path: PathBuf,
}

enum Inner {
    Unnamed(File),
    /// A hidden temporary name, removed on drop unless persisted.
    Named {
        file: File,
        name: OsString,
        persisted: bool,
    },
}

/// A directory, opened to create files in (never through a final symlink).
pub fn open_dir(dir: &Path) -> io::Result<OwnedFd> {
    Ok(rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

/// A hidden name for an object about to be renamed into place.
pub fn temporary_name() -> OsString {
    OsString::from(format!(".coffer-{:016x}.tmp", rand::random::<u64>()))
}

impl AtomicFile {
    /// An empty file (mode 0600) in `dir`, without a name yet.
    pub fn new_in(dir: &Path) -> io::Result<AtomicFile> {
        Self::new_at(Arc::new(open_dir(dir)?), dir)
    }

    /// The same in an open directory (`dir_path` for messages and
    /// `path_for_others` only).
    pub fn new_at(dir: Arc<OwnedFd>, dir_path: &Path) -> io::Result<AtomicFile> {
        if proc_fd_works() {
            let flags = OFlags::RDWR | OFlags::TMPFILE | OFlags::CLOEXEC;
            match rustix::fs::openat(&*dir, ".", flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => {
                    return Ok(AtomicFile { inner: Inner::Unnamed(File::from(fd)), dir, dir_path: dir_path.into() })
                }
                // The filesystem (or kernel) has no O_TMPFILE: fall back.
                Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Self::named_at(dir, dir_path)
    }

    fn named_at(dir: Arc<OwnedFd>, dir_path: &Path) -> io::Result<AtomicFile> {
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        loop {
            let name = temporary_name();
            match rustix::fs::openat(&*dir, &name, flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => {
                    let inner = Inner::Named { file: File::from(fd), name, persisted: false };
                    return Ok(AtomicFile { inner, dir, dir_path: dir_path.into() });
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Where another process of this user can open the file while this
    /// one holds it open: its `/proc/PID/fd` entry, or its temporary name.
    pub fn path_for_others(&self) -> PathBuf {
        match &self.inner {
            Inner::Unnamed(f) => PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), f.as_raw_fd())),
            Inner::Named { name, .. } => self.dir_path.join(name),
        }
    }

    pub fn as_file(&self) -> &File {
        match &self.inner {
            Inner::Unnamed(f) | Inner::Named { file: f, .. } => f,
        }
    }

    /// Gives the file its name, `name` in the directory it was made in,
    /// replacing whatever file is there. Not fsynced: callers that need it
    /// durable sync the file before and the directory after.
    pub fn persist(mut self, name: &OsStr) -> io::Result<()> {
        let dir = self.dir.clone();
        let file = match &mut self.inner {
            Inner::Named { name: tmp, persisted, .. } => {
                rustix::fs::renameat(&*dir, &*tmp, &*dir, name)?;
                *persisted = true;
                return Ok(());
            }
            Inner::Unnamed(f) => f,
        };
        link_as(file, &dir, name)
    }

    /// `persist` under the last component of `path` (in the directory the
    /// file was made in).
    pub fn persist_path(self, path: &Path) -> io::Result<()> {
        let name = path.file_name().ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
        self.persist(name)
    }
}

/// Gives the open file `file` the name `name` in `dir` (one more name, if it
/// has one already), replacing whatever file is there in one step.
pub fn link_as(file: &impl AsRawFd, dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let proc = format!("/proc/self/fd/{}", file.as_raw_fd());
    match rustix::fs::linkat(CWD, &proc, dir, name, AtFlags::SYMLINK_FOLLOW) {
        Err(Errno::EXIST) => {
            // Replace in one step: a temporary name, then a rename over.
            let tmp = temporary_name();
            rustix::fs::linkat(CWD, &proc, dir, &tmp, AtFlags::SYMLINK_FOLLOW)?;
            rustix::fs::renameat(dir, &tmp, dir, name).map_err(|e| {
                let _ = rustix::fs::unlinkat(dir, &tmp, AtFlags::empty());
                e.into()
            })
        }
        other => Ok(other?),
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Inner::Named { name, persisted: false, .. } = &self.inner {
            let _ = rustix::fs::unlinkat(&*self.dir, name, AtFlags::empty());
        }
    }
}

/// An empty scratch file in the temporary directory (`TMPDIR`), never to be
/// named (it is gone when dropped): a process killed while it exists leaves
/// nothing behind.
pub fn scratch() -> io::Result<AtomicFile> {
    AtomicFile::new_in(&std::env::temp_dir())
}

/// Reserves the disk space of a file about to be written with `len` bytes
/// (its size becomes `len`). A restore that cannot fit fails at once instead
/// of after gigabytes, and the writes skip ext4's delayed allocation
/// (docs/BENCHMARKS.md, "Measurements in the code's choices"). Where the filesystem cannot, nothing is
/// reserved and the writes allocate as they go.
pub fn preallocate(file: &File, len: u64) -> io::Result<()> {
    if len == 0 || i64::try_from(len).is_err() {
        return Ok(()); // nothing to reserve, or more than a file can hold (the writes will say)
    }
    match rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, len) {
        Ok(()) | Err(rustix::io::Errno::OPNOTSUPP | rustix::io::Errno::NOSYS) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Is `/proc/self/fd` there to link an unnamed file by?
fn proc_fd_works() -> bool {
    static WORKS: OnceLock<bool> = OnceLock::new();
    *WORKS.get_or_init(|| Path::new("/proc/self/fd").is_dir())
}

/// Writes at offsets into one file from several workers, one at a time:
/// buffered writes to one file serialize on its inode lock anyway, where a
/// waiting thread spins; on this mutex it sleeps instead (docs/BENCHMARKS.md,
/// "Measurements in the code's choices").
#[derive(Default)]
pub struct Turns(std::sync::Mutex<()>);

impl Turns {
    /// Writes `data` at `offset`; with `sparse`, its all-zero blocks are
    /// left as holes (the file must already have its size).
    pub fn write_at(&self, file: &File, data: &[u8], offset: u64, sparse: bool) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let _turn = self.0.lock();
        match sparse {
            true => write_leaving_holes(file, data, offset),
            false => file.write_all_at(data, offset),
        }
    }
}

/// Writes `data` at `offset` but for its all-zero blocks (4 KiB, aligned in
/// the file), which stay holes: the file already has its size, so they read
/// as zeros.
fn write_leaving_holes(file: &File, data: &[u8], offset: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    const BLOCK: u64 = 4096;
    let mut at = 0usize;
    while at < data.len() {
        // From here to the next block boundary of the file.
        let end = (((offset + at as u64) / BLOCK + 1) * BLOCK - offset).min(data.len() as u64) as usize;
        let (start, zero) = (at, data[at..end].iter().all(|&b| b == 0));
        at = end;
        if zero {
            continue;
        }
        // Extend the run over the following blocks that hold data.
        while at < data.len() {
            let next = (at as u64 + BLOCK).min(data.len() as u64) as usize;
            if data[at..next].iter().all(|&b| b == 0) {
                break;
            }
            at = next;
        }
        file.write_all_at(&data[start..at], offset + start as u64)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    fn named_in(dir: &Path) -> io::Result<AtomicFile> {
        AtomicFile::named_at(Arc::new(open_dir(dir)?), dir)
    }

    fn both_kinds(dir: &Path) -> [AtomicFile; 2] {
        [AtomicFile::new_in(dir).unwrap(), named_in(dir).unwrap()]
    }

    #[test]
    fn a_file_has_no_name_until_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let f = AtomicFile::new_in(dir.path()).unwrap();
        f.as_file().write_all(b"data").unwrap();
        if matches!(f.inner, Inner::Unnamed(_)) {
            assert_eq!(names(dir.path()), Vec::<String>::new());
        }
        f.persist(OsStr::new("a")).unwrap();
        assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"data");
        assert_eq!(names(dir.path()), vec!["a".to_string()]);
    }

    #[test]
    fn preallocated_files_have_their_size_and_refuse_what_cannot_fit() {
        let dir = tempfile::tempdir().unwrap();
        let f = AtomicFile::new_in(dir.path()).unwrap();
        preallocate(f.as_file(), 0).unwrap();
        preallocate(f.as_file(), 3 << 20).unwrap();
        if f.as_file().metadata().unwrap().len() == 0 {
            return; // a filesystem without fallocate: nothing reserved, as documented
        }
        assert_eq!(f.as_file().metadata().unwrap().len(), 3 << 20);
        // Far more than any test machine's disk: refused before a byte is written.
        let err = preallocate(f.as_file(), 1 << 60).unwrap_err();
        assert!(matches!(err.raw_os_error(), Some(libc::ENOSPC | libc::EFBIG)), "{err}");
    }

    #[test]
    fn another_process_reads_the_file_at_path_for_others() {
        let dir = tempfile::tempdir().unwrap();
        for f in both_kinds(dir.path()) {
            f.as_file().write_all(b"staged dump").unwrap();
            let out = std::process::Command::new("cat").arg(f.path_for_others()).output().unwrap();
            assert_eq!(out.stdout, b"staged dump", "{}", String::from_utf8_lossy(&out.stderr));
        }
    }

    #[test]
    fn dropped_unpersisted_files_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for f in both_kinds(dir.path()) {
            f.as_file().write_all(b"half").unwrap();
        }
        assert_eq!(names(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn persist_replaces_an_existing_file_and_leaves_no_temporary_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a");
        let kinds: [fn(&Path) -> io::Result<AtomicFile>; 2] = [AtomicFile::new_in, named_in];
        for (i, make) in kinds.into_iter().enumerate() {
            let f = make(dir.path()).unwrap();
            fs::write(&path, b"old").unwrap();
            f.as_file().write_all(format!("new {i}").as_bytes()).unwrap();
            f.persist(OsStr::new("a")).unwrap();
            assert_eq!(fs::read_to_string(&path).unwrap(), format!("new {i}"));
            assert_eq!(names(dir.path()), vec!["a".to_string()]);
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
}

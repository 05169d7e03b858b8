//! The embedded default: a repository in a local directory. Writes go to a
//! hidden temporary file, are fsynced, then renamed into place, so a crash
//! never leaves a partial object under a real name.

use super::{Backend, BackendError, BackendResult, Kind, ObjectInfo};
use crate::engine::atomic_file::AtomicFile;
use crate::engine::owner;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

pub struct Local {
    root: PathBuf,
    /// The repository folder's owner, when coffer runs as root and the
    /// folder belongs to someone else (`owner`).
    owner: std::sync::OnceLock<Option<(u32, u32)>>,
}

impl Local {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Local { root: root.into(), owner: std::sync::OnceLock::new() }
    }

    /// Run as root in a repository that belongs to another user (the cron
    /// job's), what coffer creates gets that user as owner: otherwise a
    /// root-run `key passwd` or emergency backup would leave objects the
    /// job cannot read. Ownership that cannot be given fails the write,
    /// naming the object: a repository half its owner's is a failure in waiting.
    fn owner(&self) -> Option<(u32, u32)> {
        *self.owner.get_or_init(|| owner::foreign(&self.root))
    }

    /// Gives `path` (a folder or object coffer just made) the repository's owner.
    fn adopt(&self, path: &Path, file: Option<&File>) -> BackendResult<()> {
        let Some((uid, gid)) = self.owner() else { return Ok(()) };
        let done = match file {
            Some(f) => owner::give(f, (uid, gid)),
            None => owner::give_path(path, (uid, gid)),
        };
        done.map_err(|e| BackendError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other(format!(
                "cannot give it the repository's owner {uid}:{gid} (coffer runs as root): {e}"
            )),
        })
    }

    /// `create_dir_all`, each folder made below the repository's given its owner.
    fn make_dirs(&self, dir: &Path) -> BackendResult<()> {
        fs::create_dir_all(dir).map_err(|e| Self::io(dir, e))?;
        if self.owner().is_some() {
            let mut d = dir;
            while d != self.root && d.starts_with(&self.root) {
                self.adopt(d, None)?;
                match d.parent() {
                    Some(p) => d = p,
                    None => break,
                }
            }
        }
        Ok(())
    }

    fn path(&self, kind: Kind, name: &str) -> PathBuf {
        self.root.join(kind.object_path(name))
    }

    fn io(path: &Path, e: std::io::Error) -> BackendError {
        if e.kind() == std::io::ErrorKind::NotFound {
            BackendError::NotFound { path: path.display().to_string() }
        } else {
            BackendError::Io { path: path.display().to_string(), source: e }
        }
    }
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Backend for Local {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn create(&self) -> BackendResult<()> {
        for dir in ["keys", "data", "index", "snapshots", "locks"] {
            self.make_dirs(&self.root.join(dir))?;
        }
        Ok(())
    }

    fn holds_anything(&self) -> BackendResult<bool> {
        match fs::read_dir(&self.root) {
            Ok(mut entries) => Ok(entries.next().is_some()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Self::io(&self.root, e)),
        }
    }

    fn enclosing_repository(&self) -> BackendResult<Option<String>> {
        let root = std::path::absolute(&self.root).map_err(|e| Self::io(&self.root, e))?;
        Ok(root
            .ancestors()
            .skip(1)
            .find(|a| a.join("config").is_file() && a.join("keys").is_dir())
            .map(|a| a.display().to_string()))
    }

    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> BackendResult<()> {
        let path = self.path(kind, name);
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        self.make_dirs(&dir)?;
        // Named only once written and synced; where a temporary name is
        // needed (no O_TMPFILE) it is a dot-file, which `list` skips.
        let tmp = AtomicFile::new_in(&dir).map_err(|e| Self::io(&dir, e))?;
        self.adopt(&path, Some(tmp.as_file()))?;
        tmp.as_file().write_all(data).map_err(|e| Self::io(&path, e))?;
        tmp.as_file().sync_all().map_err(|e| Self::io(&path, e))?;
        tmp.persist_path(&path).map_err(|e| Self::io(&path, e))?;
        sync_dir(&dir).map_err(|e| Self::io(&dir, e))?;
        Ok(())
    }

    fn get(&self, kind: Kind, name: &str) -> BackendResult<Vec<u8>> {
        let path = self.path(kind, name);
        fs::read(&path).map_err(|e| Self::io(&path, e))
    }

    fn get_range(&self, kind: Kind, name: &str, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        let mut buf = Vec::new();
        self.get_range_into(kind, name, offset, length, &mut buf)?;
        Ok(buf)
    }

    fn get_range_into(&self, kind: Kind, name: &str, offset: u64, length: u64, buf: &mut Vec<u8>) -> BackendResult<()> {
        let path = self.path(kind, name);
        let mut f = File::open(&path).map_err(|e| Self::io(&path, e))?;
        let size = f.metadata().map_err(|e| Self::io(&path, e))?.len();
        let end = offset.saturating_add(length);
        if end > size {
            return Err(BackendError::Truncated { path: path.display().to_string(), offset, end, size });
        }
        f.seek(SeekFrom::Start(offset)).map_err(|e| Self::io(&path, e))?;
        // read_to_end reads a File straight into the spare capacity: no
        // zero-filling first.
        buf.clear();
        buf.reserve(length as usize);
        let n = f.take(length).read_to_end(buf).map_err(|e| Self::io(&path, e))?;
        if n as u64 != length {
            return Err(BackendError::Truncated {
                path: path.display().to_string(),
                offset,
                end,
                size: offset + n as u64,
            });
        }
        Ok(())
    }

    fn open(&self, kind: Kind, name: &str) -> BackendResult<Box<dyn Read + Send>> {
        let path = self.path(kind, name);
        let f = File::open(&path).map_err(|e| Self::io(&path, e))?;
        Ok(Box::new(std::io::BufReader::with_capacity(1 << 20, f)))
    }

    fn list(&self, kind: Kind) -> BackendResult<Vec<ObjectInfo>> {
        self.list_in(kind, None)
    }

    fn list_under(&self, kind: Kind, folder: &str) -> BackendResult<Vec<ObjectInfo>> {
        match kind {
            Kind::Wal if !folder.is_empty() && !folder.contains(['/', '.']) => self.list_in(kind, Some(folder)),
            _ => Ok(self.list(kind)?.into_iter().filter(|o| o.name.starts_with(&format!("{folder}/"))).collect()),
        }
    }

    fn delete(&self, kind: Kind, name: &str) -> BackendResult<()> {
        let path = self.path(kind, name);
        fs::remove_file(&path).map_err(|e| Self::io(&path, e))
    }
}

impl Local {
    /// `list`, or (`folder`) one WAL stanza's folder only.
    fn list_in(&self, kind: Kind, folder: Option<&str>) -> BackendResult<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        let base = self.root.join(kind.dir());
        let mut dirs = vec![base.clone()];
        if let Some(f) = folder {
            dirs = vec![base.join(f)];
        } else if kind == Kind::Pack || kind == Kind::Wal {
            dirs.clear();
            match fs::read_dir(&base) {
                Ok(rd) => {
                    for e in rd {
                        let e = e.map_err(|e| Self::io(&base, e))?;
                        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                            dirs.push(e.path());
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Self::io(&base, e)),
            }
        }
        for dir in dirs {
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Self::io(&dir, e)),
            };
            for e in rd {
                let e = e.map_err(|e| Self::io(&dir, e))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let meta = e.metadata().map_err(|err| Self::io(&e.path(), err))?;
                if name.starts_with('.') || !meta.is_file() {
                    continue;
                }
                // A pack is where its name puts it (data/<first two digits>/):
                // one moved elsewhere cannot be read by name, so it is not listed
                // (verify then reports it missing).
                if kind == Kind::Pack && dir.file_name().and_then(|d| d.to_str()) != name.get(..2) {
                    continue;
                }
                let name = match (kind, dir.file_name().and_then(|d| d.to_str())) {
                    (Kind::Wal, Some(stanza)) => format!("{stanza}/{name}"),
                    _ => name,
                };
                out.push(ObjectInfo { name, size: meta.len(), modified: meta.modified().ok() });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

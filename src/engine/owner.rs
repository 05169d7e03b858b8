//! Files coffer makes, as root, in a folder that belongs to someone else
//! (the cron job's repository, its metrics folder) get that folder's owner:
//! otherwise one root run leaves files the job can no longer replace.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// The owner (uid, gid) files made in `dir` should get: None unless coffer
/// runs as root and `dir` is not root's.
pub fn foreign(dir: &Path) -> Option<(u32, u32)> {
    if !crate::is_root() {
        return None;
    }
    let m = std::fs::metadata(dir).ok()?;
    (m.uid() != 0 || m.gid() != 0).then_some((m.uid(), m.gid()))
}

/// Gives an open file the owner `ids`.
pub fn give(file: &File, (uid, gid): (u32, u32)) -> std::io::Result<()> {
    rustix::fs::fchown(file, Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)))?;
    Ok(())
}

/// Gives a path (not followed if a symlink) the owner `ids`, unless it has it.
pub fn give_path(path: &Path, (uid, gid): (u32, u32)) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.uid() == uid && m.gid() == gid => Ok(()),
        _ => Ok(rustix::fs::chown(path, Some(rustix::fs::Uid::from_raw(uid)), Some(rustix::fs::Gid::from_raw(gid)))?),
    }
}

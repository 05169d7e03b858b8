//! A write-only backup's parent snapshot. Its key cannot open the
//! repository's manifests, so each run keeps its own snapshot's file entries
//! on this host, in `<cache>/parents/<repository id>-<sources digest>`,
//! sealed with the index key (what any key of the repository reads), for the
//! next run to skip unchanged files by. The entries only say which chunks a
//! file had; each is still looked up in the index before it is reused.

use crate::crypto::{sha256, Role};
use crate::format::codec;
use crate::format::encoding::{Id, RawPath};
use crate::format::manifest::{Entry, EntryKind, Manifest, Source};
use crate::repo::Repository;
use std::collections::HashMap;
use std::path::PathBuf;

#[derive(serde::Serialize, serde::Deserialize)]
struct Cached {
    snapshot: Id,
    files: Vec<Entry>,
}

/// The cache holds at most this much (a 5-million-file tree's entries).
const LIMIT: usize = 4 << 30;

/// The cache file of these sources and the id its seal is bound to.
fn place(repo: &Repository, host: &str, roots: &[RawPath]) -> Option<(PathBuf, [u8; 32])> {
    let mut key = host.as_bytes().to_vec();
    for r in roots {
        key.push(0);
        key.extend_from_slice(&r.0);
    }
    let digest = sha256(&key);
    let name = format!("{}-{}", repo.config().id.to_hex(), hex::encode(&digest[..16]));
    Some((crate::cache_dir()?.join("parents").join(name), digest))
}

/// The last snapshot this host wrote of these sources with a write-only key,
/// while the repository still lists it; with why there is none, if there
/// should have been (the warning the backup reports).
pub fn load(repo: &Repository, host: &str, roots: &[RawPath]) -> (Option<Id>, HashMap<RawPath, Entry>, Option<String>) {
    let none = |why: Option<String>| (None, HashMap::new(), why);
    if roots.is_empty() {
        return none(None);
    }
    let Some((path, bind)) = place(repo, host, roots) else {
        return none(Some(
            "no cache folder (neither XDG_CACHE_HOME nor HOME is set): a write-only key keeps its parent \
             snapshot there, so every file was read"
                .into(),
        ));
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return none(None),
        Err(e) => return none(Some(format!("{}: {e}: every file was read", path.display()))),
    };
    let cached = repo
        .keys()
        .open(Role::StatCache, &bind, &bytes)
        .map_err(|e| e.to_string())
        .and_then(|p| codec::decode(&p, LIMIT).map_err(|e| e.to_string()))
        .and_then(|json| serde_json::from_slice::<Cached>(&json).map_err(|e| e.to_string()));
    let cached = match cached {
        Ok(c) => c,
        Err(e) => return none(Some(format!("{} is not readable ({e}): every file was read", path.display()))),
    };
    // A snapshot forgotten since is no parent (its chunks may be pruned;
    // they would be looked up anyway).
    match repo.list_ids(crate::backend::Kind::Snapshot) {
        Ok(ids) if ids.contains(&cached.snapshot) => {}
        _ => return none(None),
    }
    let files = cached.files.into_iter().map(|mut e| (std::mem::take(&mut e.path), e)).collect();
    (Some(cached.snapshot), files, None)
}

/// Keeps `manifest`'s file entries as the next run's parent; a warning if
/// it cannot (the next run then reads every file).
pub fn save(repo: &Repository, host: &str, roots: &[RawPath], snapshot: Id, manifest: &Manifest) -> Option<String> {
    if roots.is_empty() {
        return None;
    }
    let (path, bind) = place(repo, host, roots)?;
    let files: Vec<Entry> = manifest
        .sources
        .iter()
        .filter_map(|s| match s {
            Source::Tree(t) if t.pg_base.is_none() => Some(&t.entries),
            _ => None,
        })
        .flatten()
        .filter(|e| e.kind == EntryKind::File)
        .cloned()
        .collect();
    let json = match serde_json::to_vec(&Cached { snapshot, files }) {
        Ok(j) => j,
        Err(e) => return Some(format!("parent cache: {e}")),
    };
    let sealed = repo.keys().seal(Role::StatCache, &bind, &codec::encode(&json, 3));
    crate::write_cache_file(&path, &sealed)
        .err()
        .map(|e| format!("{}: {e}: the next backup will read every file", path.display()))
}

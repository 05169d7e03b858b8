//! Prune: reclaim the space no snapshot uses. Under an exclusive lock:
//! packs no snapshot needs are deleted, packs mostly unused are repacked
//! (their used chunks copied, still sealed, into new packs), and one new
//! index replaces the old ones.
//!
//! It stops before deleting anything at the first doubt: a manifest or
//! index that does not read, a used chunk that is in no stored pack, a
//! chunk that does not decrypt while being copied. Order: new packs, the new
//! index, then old indexes deleted, then old packs deleted; a crash at any
//! point leaves a readable repository (at worst unindexed packs, which the
//! next prune deletes).

use crate::backend::Kind;
use crate::error::{Error, Result};
use crate::format::encoding::Id;
use crate::format::{ChunkEntry, PackEntry, PackWriter};
use crate::repo::lock::Lock;
use crate::repo::{backend_error, Repository};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone)]
pub struct PruneOptions {
    pub dry_run: bool,
    /// Repack a pack once more than this fraction of it is unused.
    pub max_unused: f64,
    /// Packs and indexes written less than this long ago are left as they
    /// are: a listing that lags (S3 stores have) may not show yet the
    /// snapshot that uses them, and an interrupted backup's packs may still be
    /// reused.
    pub grace: std::time::Duration,
    /// Abort unfinished multipart uploads started longer ago than this.
    pub abort_uploads_after: std::time::Duration,
}

/// `PruneOptions::grace` unless told otherwise.
pub const DEFAULT_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            dry_run: false,
            max_unused: 0.2,
            grace: DEFAULT_GRACE,
            abort_uploads_after: std::time::Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PruneSummary {
    pub dry_run: bool,
    pub packs_before: usize,
    pub bytes_before: u64,
    pub packs_deleted: usize,
    pub packs_repacked: usize,
    /// Stored packs no index names (left by interrupted backups).
    pub packs_unindexed: usize,
    /// Packs the index named that were missing or truncated; the new index
    /// leaves them out (their chunks had other copies).
    pub packs_lost: usize,
    /// Packs left as they are because they (or their index) are younger
    /// than the grace period.
    pub packs_in_grace: usize,
    /// The bucket keeps old versions ("Enabled" or "Suspended"): what prune
    /// deletes becomes a noncurrent version, still stored and billed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket_versioning: Option<String>,
    /// Unfinished multipart uploads aborted (older than `abort_uploads_after`).
    pub uploads_aborted: usize,
    pub packs_written: usize,
    pub bytes_reclaimed: u64,
    pub bytes_after: u64,
    pub indexes_replaced: usize,
    pub stale_locks_ignored: usize,
}

pub fn prune(repo: &Repository, opts: &PruneOptions) -> Result<PruneSummary> {
    // A dry run changes nothing, so it need not stop backups.
    let lock = Lock::acquire(repo, !opts.dry_run)?;
    let mut s = PruneSummary { dry_run: opts.dry_run, stale_locks_ignored: lock.stale_ignored, ..Default::default() };

    let mut used: HashSet<Id> = HashSet::new();
    for id in repo.list_ids(Kind::Snapshot)? {
        match repo.load_snapshot(&id) {
            Ok(m) => used.extend(m.chunk_ids().copied()),
            // Forgotten since the listing: its data is not needed.
            Err(Error::NotFound { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let now = std::time::SystemTime::now();
    // Unknown times count as young: nothing is deleted on a guess.
    let young = |o: &crate::backend::ObjectInfo| {
        o.modified.is_none_or(|t| now.duration_since(t).unwrap_or_default() < opts.grace)
    };
    let index_objects: Vec<(Id, bool)> = repo
        .backend()
        .list(Kind::Index)
        .map_err(backend_error)?
        .iter()
        .filter_map(|o| Id::from_hex(&o.name).map(|id| (id, young(o))))
        .collect();
    let index_ids: Vec<Id> = index_objects.iter().map(|(id, _)| *id).collect();
    let mut packs: HashMap<Id, PackEntry> = HashMap::new();
    // Packs a young index names: kept whole, whatever the listed snapshots use.
    let mut protected: HashSet<Id> = HashSet::new();
    for (id, is_young) in &index_objects {
        for p in repo.load_index_file(id)?.packs {
            if *is_young {
                protected.insert(p.id);
            }
            packs.entry(p.id).or_insert(p);
        }
    }
    let pack_objects = repo.backend().list(Kind::Pack).map_err(backend_error)?;
    let young_packs: HashSet<Id> =
        pack_objects.iter().filter(|o| young(o)).filter_map(|o| Id::from_hex(&o.name)).collect();
    let stored: HashMap<Id, u64> =
        pack_objects.into_iter().filter_map(|o| Id::from_hex(&o.name).map(|id| (id, o.size))).collect();
    s.packs_before = stored.len();
    s.bytes_before = stored.values().sum();

    // Each used chunk is kept in one stored pack, preferring the pack that
    // keeps the most used bytes (so duplicates do not pin two packs).
    let used_bytes =
        |p: &PackEntry| p.chunks.iter().filter(|c| used.contains(&c.id)).map(|c| c.length as u64).sum::<u64>();
    // A pack indexed but missing, or stored at another size (truncated), holds
    // nothing prune can keep: its chunks must have another copy, and the new
    // index leaves it out.
    let lost: Vec<Id> = packs.values().filter(|p| stored.get(&p.id) != Some(&p.size)).map(|p| p.id).collect();
    s.packs_lost = lost.len();
    let mut order: Vec<&PackEntry> = packs.values().filter(|p| stored.get(&p.id) == Some(&p.size)).collect();
    order.sort_by_key(|p| (std::cmp::Reverse(used_bytes(p)), p.id));
    let mut holder: HashMap<Id, Id> = HashMap::new();
    for p in &order {
        for c in &p.chunks {
            if used.contains(&c.id) {
                holder.entry(c.id).or_insert(p.id);
            }
        }
    }
    if let Some(missing) = used.iter().find(|c| !holder.contains_key(c)) {
        return Err(Error::corrupt(
            repo.location(),
            format!(
                "chunk {} is used by a snapshot but is in no stored pack; prune stopped, nothing deleted (run verify)",
                missing.short()
            ),
        ));
    }

    let mut keep: Vec<&PackEntry> = Vec::new();
    let mut repack: Vec<&PackEntry> = Vec::new();
    let mut delete: Vec<Id> = Vec::new();
    for p in &order {
        let held: u64 = p.chunks.iter().filter(|c| holder.get(&c.id) == Some(&p.id)).map(|c| c.length as u64).sum();
        if protected.contains(&p.id) {
            s.packs_in_grace += 1;
            keep.push(p);
        } else if held == 0 {
            delete.push(p.id);
        } else if (p.size - held) as f64 > opts.max_unused * p.size as f64 {
            repack.push(p);
        } else {
            keep.push(p);
        }
    }
    // Not indexed, or indexed at another size: no index will name it again.
    let (unindexed, young_unindexed): (Vec<Id>, Vec<Id>) = stored
        .iter()
        .filter(|(id, size)| packs.get(id).is_none_or(|p| p.size != **size))
        .map(|(id, _)| *id)
        .partition(|id| !young_packs.contains(id));
    s.packs_in_grace += young_unindexed.len();
    s.packs_unindexed = unindexed.len();
    s.packs_deleted = delete.len();
    s.packs_repacked = repack.len();

    // The index after prune: kept packs (all their chunks), plus new packs.
    let mut new_index: Vec<PackEntry> = keep.iter().map(|p| (*p).clone()).collect();
    let pack_size = repo.config().pack_size as usize;
    let mut writer = PackWriter::with_capacity(pack_size);
    let mut written: Vec<(Id, Vec<u8>)> = Vec::new();
    for p in &repack {
        let bytes = repo.backend().get(Kind::Pack, &p.id.to_hex()).map_err(backend_error)?;
        for c in p.chunks.iter().filter(|c| holder.get(&c.id) == Some(&p.id)) {
            let sealed = slice(&bytes, c, &p.id)?;
            // Never copy damage into a new pack.
            repo.open_chunk(&c.id, sealed, &p.id)?;
            writer.add(c.id, sealed, c.size);
            if writer.len() >= pack_size {
                let full = std::mem::replace(&mut writer, PackWriter::with_capacity(pack_size));
                let (bytes, entry) = full.finish(repo.keys());
                written.push((entry.id, bytes));
                new_index.push(entry);
                flush(repo, opts, &mut written, &mut s)?;
            }
        }
    }
    if !writer.is_empty() {
        let (bytes, entry) = writer.finish(repo.keys());
        written.push((entry.id, bytes));
        new_index.push(entry);
        flush(repo, opts, &mut written, &mut s)?;
    }

    let reclaimed: u64 = delete
        .iter()
        .chain(repack.iter().map(|p| &p.id))
        .chain(unindexed.iter())
        .map(|id| stored.get(id).copied().unwrap_or(0))
        .sum();
    let new_bytes: u64 = new_index.iter().filter(|p| !stored.contains_key(&p.id)).map(|p| p.size).sum();
    s.bytes_after = s.bytes_before - reclaimed + new_bytes;
    s.bytes_reclaimed = s.bytes_before.saturating_sub(s.bytes_after);
    s.indexes_replaced = index_ids.len();
    s.bucket_versioning = repo.backend().versioning();
    if !opts.dry_run {
        s.uploads_aborted = repo.backend().abort_uploads_older_than(opts.abort_uploads_after).map_err(backend_error)?;
    }
    let nothing_to_do = delete.is_empty() && repack.is_empty() && unindexed.is_empty() && lost.is_empty();
    if opts.dry_run || nothing_to_do {
        drop(lock);
        return Ok(s);
    }

    repo.save_index(new_index)?;
    for id in &index_ids {
        repo.backend().delete(Kind::Index, &id.to_hex()).map_err(backend_error)?;
    }
    for id in delete.iter().chain(repack.iter().map(|p| &p.id)).chain(unindexed.iter()) {
        repo.delete_object(Kind::Pack, &id.to_hex())?;
    }
    drop(lock);
    Ok(s)
}

fn slice<'a>(pack: &'a [u8], c: &ChunkEntry, pack_id: &Id) -> Result<&'a [u8]> {
    let (start, end) = (c.offset as usize, c.offset as usize + c.length as usize);
    pack.get(start..end).ok_or_else(|| {
        Error::corrupt(format!("pack {pack_id}"), format!("chunk {} lies past the pack's end", c.id.short()))
    })
}

/// Stores the packs written so far (none in a dry run).
fn flush(repo: &Repository, opts: &PruneOptions, written: &mut Vec<(Id, Vec<u8>)>, s: &mut PruneSummary) -> Result<()> {
    for (id, bytes) in written.drain(..) {
        s.packs_written += 1;
        if !opts.dry_run {
            repo.put_pack(&id, &bytes)?;
        }
    }
    Ok(())
}

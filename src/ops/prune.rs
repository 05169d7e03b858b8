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

use crate::backend::{Kind, ObjectInfo, Requests};
use crate::error::{Error, Result};
use crate::format::encoding::Id;
use crate::format::{self, ChunkEntry, PackEntry, PackWriter};
use crate::ops::estimate::Estimate;
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
    /// Archived WAL files no kept base backup needs (older than the oldest
    /// one's start, per stanza), deleted, and their stored bytes.
    pub wal_deleted: usize,
    pub wal_bytes_reclaimed: u64,
    /// Objects prune would delete that S3 Object Lock still retains: left
    /// as they are (indexes and packs they name kept whole), for a later run.
    pub retained_objects: usize,
    pub retained_bytes: u64,
    /// When the last of them may go.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retained_until: Option<chrono::DateTime<chrono::Utc>>,
}

impl PruneSummary {
    fn retained(&mut self, size: u64, until: std::time::SystemTime) {
        self.retained_objects += 1;
        self.retained_bytes += size;
        let until = chrono::DateTime::<chrono::Utc>::from(until);
        self.retained_until = Some(self.retained_until.map_or(until, |u| u.max(until)));
    }
}

pub fn prune(repo: &Repository, opts: &PruneOptions) -> Result<PruneSummary> {
    prune_with(repo, opts, &crate::ops::progress::NoProgress)
}

/// `prune`, reporting the manifests read and the packs repacked to `progress`.
pub fn prune_with(
    repo: &Repository,
    opts: &PruneOptions,
    progress: &dyn crate::ops::progress::Progress,
) -> Result<PruneSummary> {
    // A dry run changes nothing, so it need not stop backups.
    let lock = Lock::acquire(repo, !opts.dry_run)?;
    let mut s = PruneSummary { dry_run: opts.dry_run, stale_locks_ignored: lock.stale_ignored, ..Default::default() };
    let inventory = Inventory::take(repo, opts.grace, progress, &mut s)?;
    let mut plan = PrunePlan::new(&inventory, opts.max_unused).map_err(|missing| unstored(repo, &missing))?;
    plan.hold_retained(repo, &inventory, &mut s)?;
    execute(repo, opts, &inventory, &plan, progress, &mut s)?;
    prune_wal(repo, opts, &inventory.bases, &mut s)?;
    drop(lock);
    Ok(s)
}

/// Deletes the archived WAL no kept base backup needs. Oldest first, so
/// that an interrupted prune leaves the archive continuous.
fn prune_wal(
    repo: &Repository,
    opts: &PruneOptions,
    bases: &[crate::format::manifest::PgBase],
    s: &mut PruneSummary,
) -> Result<()> {
    if bases.is_empty() {
        return Ok(());
    }
    let listing = repo.backend().list(Kind::Wal).map_err(backend_error)?;
    let mut unneeded = crate::ops::wal::unneeded(&listing, bases);
    unneeded.sort_by(|a, b| a.name.cmp(&b.name));
    for o in unneeded {
        match repo.delete_unless_retained(Kind::Wal, &o.name, opts.dry_run)? {
            Some(until) => s.retained(o.size, until),
            None => {
                s.wal_deleted += 1;
                s.wal_bytes_reclaimed += o.size;
            }
        }
    }
    Ok(())
}

/// What `prune` would cost, planned as it plans (under a lock, every
/// manifest and index read, the packs listed): the packs it repacks
/// downloaded whole, the new packs and index uploaded, the old ones deleted.
pub fn estimate_prune(repo: &Repository, opts: &PruneOptions) -> Result<Estimate> {
    // Shared, as a dry run's: planning changes nothing. It costs the same
    // requests as prune's exclusive one.
    let lock = Lock::acquire(repo, false)?;
    let inventory = Inventory::take(repo, opts.grace, &crate::ops::progress::NoProgress, &mut PruneSummary::default())?;
    let plan = PrunePlan::new(&inventory, opts.max_unused).map_err(|missing| unstored(repo, &missing))?;
    drop(lock);
    let backend = repo.backend();
    let mut work = Requests::default();
    // The bucket's versioning is asked, and old unfinished uploads listed.
    work.get += 1;
    work.list += 1;
    if plan.nothing_to_do() {
        return Ok(Estimate::new("prune", work));
    }
    let pack_size = repo.config().pack_size as u64;
    let mut new_packs: Vec<(u64, u64)> = Vec::new();
    let (mut bytes, mut chunks) = (0u64, 0u64);
    for (p, held) in &plan.repack {
        work.add_get(p.size);
        // As execute fills its writer: a pack is cut once it reaches the pack size.
        for c in held {
            bytes += c.length as u64;
            chunks += 1;
            if bytes >= pack_size {
                new_packs.push((bytes, chunks));
                (bytes, chunks) = (0, 0);
            }
        }
    }
    if chunks > 0 {
        new_packs.push((bytes, chunks));
    }
    let block = repo.keys().pack_key_block().map_or(0, |b| b.len() as u64);
    for (bytes, chunks) in new_packs {
        let size = format::pack_size(bytes, chunks, block);
        work.put += backend.put_requests(size);
        work.upload_bytes += size;
    }
    // One index replaces the old ones: about their size, scaled to the chunks it keeps.
    let indexed: u64 = inventory.packs.values().map(|p| p.chunks.len() as u64).sum();
    let kept: u64 = plan.keep.iter().map(|p| p.chunks.len() as u64).sum::<u64>()
        + plan.repack.iter().map(|(_, held)| held.len() as u64).sum::<u64>();
    let index_bytes = (inventory.index_bytes as f64 * kept as f64 / indexed.max(1) as f64) as u64;
    work.put += backend.put_requests(index_bytes);
    work.upload_bytes += index_bytes;
    let deletes = (inventory.index_ids.len() + plan.removed().count()) as u64;
    work.delete += deletes;
    work.get += deletes * backend.heads_per_delete();
    let mut estimate = Estimate::new("prune", work);
    estimate.approximate.push("the new index's size is estimated from the old ones'".into());
    Ok(estimate)
}

fn unstored(repo: &Repository, missing: &Id) -> Error {
    Error::corrupt(
        repo.location(),
        format!(
            "chunk {} is used by a snapshot but is in no stored pack; prune stopped, nothing deleted (run verify)",
            missing.short()
        ),
    )
}

/// What the repository holds, as prune sees it: the chunks snapshots use,
/// every indexed pack, the stored packs, and which of them are young.
pub struct Inventory {
    used: HashSet<Id>,
    /// The base backups of the snapshots kept: the WAL they need stays.
    bases: Vec<crate::format::manifest::PgBase>,
    /// Every pack an index names (the first entry seen for each).
    packs: HashMap<Id, PackEntry>,
    /// Packs a young index names: kept whole, whatever the listed snapshots use.
    protected: HashSet<Id>,
    /// Stored packs: id -> size.
    stored: HashMap<Id, u64>,
    young_packs: HashSet<Id>,
    index_ids: Vec<Id>,
    /// Indexes Object Lock retains: not deleted, and every pack they name
    /// kept (with the index's retention, for the report).
    retained_indexes: HashSet<Id>,
    retained_index_packs: HashMap<Id, std::time::SystemTime>,
    /// The indexes' stored size.
    index_bytes: u64,
}

impl Inventory {
    fn take(
        repo: &Repository,
        grace: std::time::Duration,
        progress: &dyn crate::ops::progress::Progress,
        s: &mut PruneSummary,
    ) -> Result<Inventory> {
        let mut used: HashSet<Id> = HashSet::new();
        let mut bases = Vec::new();
        let snapshots = repo.list_ids(Kind::Snapshot)?;
        progress.start("snapshots", snapshots.len() as u64, 0);
        for id in snapshots {
            progress.item_done();
            match repo.load_snapshot(&id) {
                Ok(m) => {
                    used.extend(m.chunk_ids().copied());
                    bases.extend(m.pg_bases().map(|(_, b)| b.clone()));
                }
                // Forgotten since the listing: its data is not needed.
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let now = std::time::SystemTime::now();
        // Unknown times count as young: nothing is deleted on a guess.
        let young = |o: &ObjectInfo| o.modified.is_none_or(|t| now.duration_since(t).unwrap_or_default() < grace);
        let listed = repo.backend().list(Kind::Index).map_err(backend_error)?;
        let index_bytes = listed.iter().map(|o| o.size).sum();
        let index_objects: Vec<(Id, bool)> =
            listed.iter().filter_map(|o| Id::from_hex(&o.name).map(|id| (id, young(o)))).collect();
        let mut packs: HashMap<Id, PackEntry> = HashMap::new();
        let mut protected: HashSet<Id> = HashSet::new();
        let mut retained_indexes = HashSet::new();
        let mut retained_index_packs: HashMap<Id, std::time::SystemTime> = HashMap::new();
        for (id, is_young) in &index_objects {
            // An index that may not be deleted yet stays, so every pack it
            // names must stay too: a reader of it would miss them.
            let retained = repo.retained(Kind::Index, &id.to_hex())?;
            if let Some(until) = retained {
                let size = listed.iter().find(|o| o.name == id.to_hex()).map_or(0, |o| o.size);
                s.retained(size, until);
                retained_indexes.insert(*id);
            }
            for p in repo.load_index_file(id)?.packs {
                if *is_young {
                    protected.insert(p.id);
                }
                if let Some(until) = retained {
                    let e = retained_index_packs.entry(p.id).or_insert(until);
                    *e = (*e).max(until);
                }
                packs.entry(p.id).or_insert(p);
            }
        }
        let pack_objects = repo.list_packs()?;
        let young_packs = pack_objects.iter().filter(|(_, o)| young(o)).map(|(id, _)| *id).collect();
        let stored = pack_objects.into_iter().map(|(id, o)| (id, o.size)).collect();
        let index_ids = index_objects.iter().map(|(id, _)| *id).collect();
        Ok(Inventory {
            used,
            bases,
            packs,
            protected,
            stored,
            young_packs,
            index_ids,
            retained_indexes,
            retained_index_packs,
            index_bytes,
        })
    }
}

/// What prune will do, worked out from the inventory alone (no I/O).
#[derive(Debug, Default)]
pub struct PrunePlan {
    /// Stored packs that stay as they are (all their chunks stay indexed).
    keep: Vec<PackEntry>,
    /// Packs mostly unused: the chunks listed with each are copied out.
    repack: Vec<(PackEntry, Vec<ChunkEntry>)>,
    /// Stored packs no snapshot needs.
    delete: Vec<Id>,
    /// Stored packs no index names (or at another size), out of their grace.
    unindexed: Vec<Id>,
    /// Packs indexed but missing or truncated: the new index leaves them out.
    lost: usize,
    /// Packs left alone because they or their index are young.
    in_grace: usize,
}

impl PrunePlan {
    /// `Err(chunk)`: a chunk a snapshot uses is in no stored pack (nothing
    /// may be deleted then).
    pub fn new(inv: &Inventory, max_unused: f64) -> std::result::Result<PrunePlan, Id> {
        let used = &inv.used;
        let stored = &inv.stored;
        // Each used chunk is kept in one stored pack, preferring the pack that
        // keeps the most used bytes (so duplicates do not pin two packs).
        let used_bytes =
            |p: &PackEntry| p.chunks.iter().filter(|c| used.contains(&c.id)).map(|c| c.length as u64).sum::<u64>();
        // A pack indexed but missing, or stored at another size (truncated),
        // holds nothing prune can keep: its chunks must have another copy.
        let lost = inv.packs.values().filter(|p| stored.get(&p.id) != Some(&p.size)).count();
        let mut order: Vec<&PackEntry> = inv.packs.values().filter(|p| stored.get(&p.id) == Some(&p.size)).collect();
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
            return Err(*missing);
        }
        let mut plan = PrunePlan { lost, ..Default::default() };
        for p in order {
            let held: Vec<ChunkEntry> = p.chunks.iter().filter(|c| holder.get(&c.id) == Some(&p.id)).copied().collect();
            let held_bytes: u64 = held.iter().map(|c| c.length as u64).sum();
            if inv.protected.contains(&p.id) {
                plan.in_grace += 1;
                plan.keep.push(p.clone());
            } else if held.is_empty() {
                plan.delete.push(p.id);
            } else if (p.size - held_bytes) as f64 > max_unused * p.size as f64 {
                plan.repack.push((p.clone(), held));
            } else {
                plan.keep.push(p.clone());
            }
        }
        // Not indexed, or indexed at another size: no index will name it again.
        let (unindexed, young_unindexed): (Vec<Id>, Vec<Id>) = stored
            .iter()
            .filter(|(id, size)| inv.packs.get(id).is_none_or(|p| p.size != **size))
            .map(|(id, _)| *id)
            .partition(|id| !inv.young_packs.contains(id));
        plan.in_grace += young_unindexed.len();
        plan.unindexed = unindexed;
        Ok(plan)
    }

    /// Packs the plan would remove that Object Lock retains, or that an
    /// index it retains names, stay as they are (indexed, not repacked: a
    /// copy would only add to what is stored); a later prune removes them
    /// once their retention has passed.
    fn hold_retained(&mut self, repo: &Repository, inv: &Inventory, s: &mut PruneSummary) -> Result<()> {
        let mut held = HashSet::new();
        for id in self.removed() {
            let own = repo.retained(Kind::Pack, &id.to_hex())?;
            if let Some(until) = own.max(inv.retained_index_packs.get(id).copied()) {
                s.retained(inv.stored.get(id).copied().unwrap_or(0), until);
                held.insert(*id);
            }
        }
        if held.is_empty() {
            return Ok(());
        }
        for id in self.delete.iter().filter(|id| held.contains(id)) {
            if let Some(p) = inv.packs.get(id) {
                self.keep.push(p.clone());
            }
        }
        self.delete.retain(|id| !held.contains(id));
        for (p, _) in self.repack.iter().filter(|(p, _)| held.contains(&p.id)) {
            self.keep.push(p.clone());
        }
        self.repack.retain(|(p, _)| !held.contains(&p.id));
        self.unindexed.retain(|id| !held.contains(id));
        Ok(())
    }

    fn nothing_to_do(&self) -> bool {
        self.delete.is_empty() && self.repack.is_empty() && self.unindexed.is_empty() && self.lost == 0
    }

    /// Every stored pack the plan removes.
    fn removed(&self) -> impl Iterator<Item = &Id> {
        self.delete.iter().chain(self.repack.iter().map(|(p, _)| &p.id)).chain(self.unindexed.iter())
    }
}

/// Carries out a plan: new packs, the new index, old indexes deleted, old
/// packs deleted (a dry run counts and writes nothing).
fn execute(
    repo: &Repository,
    opts: &PruneOptions,
    inv: &Inventory,
    plan: &PrunePlan,
    progress: &dyn crate::ops::progress::Progress,
    s: &mut PruneSummary,
) -> Result<()> {
    s.packs_before = inv.stored.len();
    s.bytes_before = inv.stored.values().sum();
    s.packs_lost = plan.lost;
    s.packs_in_grace = plan.in_grace;
    s.packs_unindexed = plan.unindexed.len();
    s.packs_deleted = plan.delete.len();
    s.packs_repacked = plan.repack.len();

    // The index after prune: kept packs (all their chunks), plus new packs.
    let mut new_index: Vec<PackEntry> = plan.keep.clone();
    let pack_size = repo.config().pack_size as usize;
    let mut writer = PackWriter::with_capacity(pack_size);
    let mut written: Vec<(Id, Vec<u8>)> = Vec::new();
    if !plan.repack.is_empty() {
        progress.start("packs repacked", plan.repack.len() as u64, plan.repack.iter().map(|(p, _)| p.size).sum());
    }
    for (p, held) in &plan.repack {
        let bytes = repo.backend().get(Kind::Pack, &p.id.to_hex()).map_err(backend_error)?;
        progress.bytes_done(p.size);
        progress.item_done();
        for c in held {
            let sealed = slice(&bytes, c, &p.id)?;
            // Never copy damage into a new pack.
            let (sealed, _) = repo.carry_chunk(&c.id, sealed, &p.id, p.key.as_ref())?;
            writer.add(c.id, &sealed, c.size);
            if writer.len() >= pack_size {
                let full = std::mem::replace(&mut writer, PackWriter::with_capacity(pack_size));
                let (bytes, entry) = full.finish(repo.keys());
                written.push((entry.id, bytes));
                new_index.push(entry);
                flush(repo, opts, &mut written, s)?;
            }
        }
    }
    if !writer.is_empty() {
        let (bytes, entry) = writer.finish(repo.keys());
        written.push((entry.id, bytes));
        new_index.push(entry);
        flush(repo, opts, &mut written, s)?;
    }

    let reclaimed: u64 = plan.removed().map(|id| inv.stored.get(id).copied().unwrap_or(0)).sum();
    let new_bytes: u64 = new_index.iter().filter(|p| !inv.stored.contains_key(&p.id)).map(|p| p.size).sum();
    s.bytes_after = s.bytes_before - reclaimed + new_bytes;
    s.bytes_reclaimed = s.bytes_before.saturating_sub(s.bytes_after);
    s.indexes_replaced = inv.index_ids.len() - inv.retained_indexes.len();
    s.bucket_versioning = repo.backend().versioning();
    if !opts.dry_run {
        s.uploads_aborted = repo.backend().abort_uploads_older_than(opts.abort_uploads_after).map_err(backend_error)?;
    }
    if opts.dry_run || plan.nothing_to_do() {
        return Ok(());
    }

    repo.save_index(new_index)?;
    for id in inv.index_ids.iter().filter(|id| !inv.retained_indexes.contains(id)) {
        repo.backend().delete(Kind::Index, &id.to_hex()).map_err(backend_error)?;
    }
    for id in plan.removed() {
        repo.delete_object(Kind::Pack, &id.to_hex())?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(n: u8, offset: u32, length: u32) -> ChunkEntry {
        ChunkEntry { id: Id([n; 32]), offset, length, size: length }
    }

    fn pack(n: u8, chunks: Vec<ChunkEntry>) -> PackEntry {
        let size = chunks.iter().map(|c| c.length as u64).sum::<u64>() + 100;
        PackEntry { id: Id([200 + n; 32]), size, chunks, key: None }
    }

    fn inventory(packs: &[PackEntry], used: &[u8]) -> Inventory {
        Inventory {
            bases: Vec::new(),
            used: used.iter().map(|n| Id([*n; 32])).collect(),
            packs: packs.iter().map(|p| (p.id, p.clone())).collect(),
            protected: HashSet::new(),
            stored: packs.iter().map(|p| (p.id, p.size)).collect(),
            young_packs: HashSet::new(),
            index_ids: vec![Id([9; 32])],
            retained_indexes: HashSet::new(),
            retained_index_packs: HashMap::new(),
            index_bytes: 0,
        }
    }

    #[test]
    fn unused_packs_go_mostly_unused_ones_are_repacked_the_rest_stay() {
        let all_used = pack(0, vec![chunk(1, 0, 1000), chunk(2, 1000, 1000)]);
        let unused = pack(1, vec![chunk(3, 0, 1000)]);
        let sparse = pack(2, vec![chunk(4, 0, 100), chunk(5, 100, 5000)]);
        let plan =
            PrunePlan::new(&inventory(&[all_used.clone(), unused.clone(), sparse.clone()], &[1, 2, 4]), 0.2).unwrap();
        assert_eq!(plan.keep.iter().map(|p| p.id).collect::<Vec<_>>(), vec![all_used.id]);
        assert_eq!(plan.delete, vec![unused.id]);
        assert_eq!(plan.repack.len(), 1);
        assert_eq!(plan.repack[0].0.id, sparse.id);
        assert_eq!(plan.repack[0].1.iter().map(|c| c.id).collect::<Vec<_>>(), vec![Id([4; 32])]);
        assert!(!plan.nothing_to_do());
    }

    #[test]
    fn a_duplicated_chunk_is_held_by_one_pack_only() {
        // Chunk 1 is in both packs; the pack keeping more used bytes holds it,
        // and the other, left with nothing, is deleted.
        let big = pack(0, vec![chunk(1, 0, 1000), chunk(2, 1000, 1000)]);
        let small = pack(1, vec![chunk(1, 0, 1000)]);
        let plan = PrunePlan::new(&inventory(&[big.clone(), small.clone()], &[1, 2]), 0.2).unwrap();
        assert_eq!(plan.keep.iter().map(|p| p.id).collect::<Vec<_>>(), vec![big.id]);
        assert_eq!(plan.delete, vec![small.id]);
    }

    #[test]
    fn young_and_lost_packs_and_missing_chunks() {
        let a = pack(0, vec![chunk(1, 0, 1000)]);
        let b = pack(1, vec![chunk(2, 0, 1000)]);
        let mut inv = inventory(&[a.clone(), b.clone()], &[1]);
        // b is unused but its index is young: kept whole.
        inv.protected.insert(b.id);
        // A stored pack no index names, one young and one old.
        inv.stored.insert(Id([7; 32]), 500);
        inv.stored.insert(Id([8; 32]), 500);
        inv.young_packs.insert(Id([8; 32]));
        let plan = PrunePlan::new(&inv, 0.2).unwrap();
        assert!(plan.delete.is_empty());
        assert_eq!(plan.unindexed, vec![Id([7; 32])]);
        assert_eq!(plan.in_grace, 2);
        // a truncated: its chunk has no other copy, so nothing may be deleted.
        inv.stored.insert(a.id, a.size - 1);
        assert_eq!(PrunePlan::new(&inv, 0.2).unwrap_err(), Id([1; 32]));
    }
}

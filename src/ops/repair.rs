//! Repair: the way out after a pack or index is lost or damaged. Under an
//! exclusive lock, in two steps:
//!
//! 1. **Index.** Every stored pack is accounted for: one indexed at its
//!    stored size is trusted (read and checked with `read_data`), any other
//!    is read whole and checked against its name and its authenticated
//!    header. A sound pack goes into the new index as its header describes
//!    it; a damaged one gives up every chunk that still authenticates, copied
//!    (still sealed) into new packs, and is then deleted. An indexed pack that
//!    is not stored is left out. One new index replaces all the old ones
//!    (an index that does not open is replaced too: its packs were read).
//! 2. **Snapshots.** A file or dump whose chunks are not all in the new
//!    index is lost: each snapshot holding one is rewritten without it (same
//!    time, host, tags; a warning says what was removed), and the report
//!    names every such file. The next backup, whose parent no longer lists
//!    them, reads those files again and stores their chunks anew.
//!
//! Order: salvage packs, new index, old indexes deleted, damaged packs
//! deleted, then each rewritten manifest saved before its old one is deleted.
//! A crash at any point leaves a repository a second repair finishes.

use crate::backend::Kind;
use crate::error::{Error, Result};
use crate::format::encoding::Id;
use crate::format::manifest::{Manifest, Source};
use crate::format::{self, ChunkEntry, PackEntry, PackWriter};
use crate::repo::lock::Lock;
use crate::repo::{backend_error, Repository};
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Default)]
pub struct RepairOptions {
    /// Report what would change; write and delete nothing.
    pub dry_run: bool,
    /// Read every pack, not only those the index does not describe: finds
    /// packs damaged in place (same size, other bytes).
    pub read_data: bool,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RepairSummary {
    pub dry_run: bool,
    /// Stored packs, and how many of them were read whole.
    pub packs: usize,
    pub packs_read: usize,
    /// Stored packs no (readable) index named, now indexed.
    pub packs_adopted: usize,
    /// Indexed packs that are not stored.
    pub packs_lost: Vec<String>,
    /// Stored packs that failed their checks, each with what is wrong; they
    /// are deleted once their sound chunks are copied out.
    pub packs_damaged: Vec<String>,
    /// Chunks of damaged packs that still authenticate, copied into new packs.
    pub chunks_salvaged: usize,
    pub packs_written: usize,
    pub indexes_replaced: usize,
    /// Index objects that did not open (replaced: their packs were read).
    pub indexes_unreadable: Vec<String>,
    pub snapshots: usize,
    /// Snapshots rewritten without the files and dumps whose data is lost.
    pub snapshots_repaired: Vec<RepairedSnapshot>,
    /// Manifests that do not open: repair cannot tell what they held
    /// (`forget ID` deletes one).
    pub snapshots_unreadable: Vec<String>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RepairedSnapshot {
    pub snapshot: String,
    /// The rewritten manifest; none when nothing of the snapshot was left
    /// (it is deleted) or in a dry run.
    pub new_snapshot: Option<String>,
    /// Paths of the files removed, as in the manifest.
    pub files: Vec<String>,
    /// Names of the database dumps removed.
    pub databases: Vec<String>,
}

impl RepairSummary {
    /// Did repair find the repository sound as it was?
    pub fn is_clean(&self) -> bool {
        self.packs_adopted == 0
            && self.packs_lost.is_empty()
            && self.packs_damaged.is_empty()
            && self.indexes_unreadable.is_empty()
            && self.snapshots_repaired.is_empty()
    }
}

pub fn repair(repo: &Repository, opts: &RepairOptions) -> Result<RepairSummary> {
    // A dry run changes nothing, so it need not stop backups.
    let lock = Lock::acquire(repo, !opts.dry_run)?;
    let mut s = RepairSummary { dry_run: opts.dry_run, ..Default::default() };

    let index_ids = repo.list_ids(Kind::Index)?;
    let mut indexed: HashMap<Id, PackEntry> = HashMap::new();
    for id in &index_ids {
        match repo.load_index_file(id) {
            Ok(file) => {
                for p in file.packs {
                    indexed.entry(p.id).or_insert(p);
                }
            }
            Err(e @ (Error::Corrupt { .. } | Error::UnsupportedVersion { .. })) => {
                s.indexes_unreadable.push(e.to_string())
            }
            Err(e) => return Err(e),
        }
    }
    let mut stored: Vec<(Id, u64)> = repo.stored_pack_sizes()?.into_iter().collect();
    s.packs = stored.len();
    // Packs the index describes come first, so a damaged pack's chunks that
    // a sound pack also holds are not copied again.
    let described = |(id, size): &(Id, u64)| indexed.get(id).is_some_and(|p| p.size == *size);
    stored.sort_by_key(|p| (!described(p), p.0));

    let mut packs: Vec<PackEntry> = Vec::new();
    let mut have: HashSet<Id> = HashSet::new();
    let mut salvage = Salvage::new(repo, opts.dry_run);
    let mut damaged: Vec<Id> = Vec::new();
    for &(id, size) in &stored {
        let entry = indexed.get(&id);
        if !opts.read_data && described(&(id, size)) {
            let entry = entry.expect("described packs are indexed").clone();
            have.extend(entry.chunks.iter().map(|c| c.id));
            packs.push(entry);
            continue;
        }
        s.packs_read += 1;
        let bytes = match repo.backend().get(Kind::Pack, &id.to_hex()) {
            Ok(b) => b,
            Err(e) if e.is_not_found() => continue,
            Err(e) => return Err(backend_error(e)),
        };
        match format::read_pack_header(repo.keys(), &id, &bytes) {
            Ok(header) => {
                if entry.is_none() {
                    s.packs_adopted += 1;
                }
                have.extend(header.chunks.iter().map(|c| c.id));
                packs.push(header.entry(id, size));
            }
            Err(e) => {
                s.packs_damaged.push(e.to_string());
                damaged.push(id);
                // The authenticated header says where the chunks are; when it
                // is gone too (a truncated pack), the index does.
                let (key, chunks) = match format::parse_pack_header(repo.keys(), &id, &bytes) {
                    Ok(h) => (h.indexed_key(), h.chunks),
                    Err(_) => entry.map(|p| (p.key.clone(), p.chunks.clone())).unwrap_or_default(),
                };
                for c in &chunks {
                    if !have.contains(&c.id) && salvage.add(&id, &bytes, key.as_ref(), c)? {
                        have.insert(c.id);
                    }
                }
            }
        }
    }
    let (written, n) = salvage.finish()?;
    s.chunks_salvaged = n;
    s.packs_written = written.len();
    packs.extend(written);

    // An indexed pack the listing lacks may only be late in the listing
    // (an eventually consistent store): it is lost only if it cannot be read.
    let listed: HashSet<Id> = stored.iter().map(|p| p.0).collect();
    let mut unlisted: Vec<&PackEntry> = indexed.values().filter(|p| !listed.contains(&p.id)).collect();
    unlisted.sort_by_key(|p| p.id);
    for p in unlisted {
        match repo.backend().get_range(Kind::Pack, &p.id.to_hex(), 0, 1) {
            Ok(_) => {
                have.extend(p.chunks.iter().map(|c| c.id));
                packs.push(p.clone());
            }
            Err(e) if e.is_not_found() => s.packs_lost.push(p.id.to_hex()),
            Err(e) => return Err(backend_error(e)),
        }
    }

    let index_changed = s.packs_adopted > 0
        || !s.packs_lost.is_empty()
        || !damaged.is_empty()
        || !s.indexes_unreadable.is_empty()
        || packs.iter().any(|p| indexed.get(&p.id).is_some_and(|old| old.chunks != p.chunks));
    if index_changed && !opts.dry_run {
        repo.save_index(packs)?;
        for id in &index_ids {
            repo.delete_object(Kind::Index, &id.to_hex())?;
        }
        s.indexes_replaced = index_ids.len();
        for id in &damaged {
            repo.delete_object(Kind::Pack, &id.to_hex())?;
        }
    }

    for id in repo.list_ids(Kind::Snapshot)? {
        let mut m = match repo.load_snapshot(&id) {
            Ok(m) => m,
            // Forgotten since the listing.
            Err(Error::NotFound { .. }) => continue,
            Err(e @ (Error::Corrupt { .. } | Error::UnsupportedVersion { .. })) => {
                s.snapshots_unreadable.push(e.to_string());
                continue;
            }
            Err(e) => return Err(e),
        };
        s.snapshots += 1;
        let Some(mut repaired) = remove_lost(&mut m, &have) else { continue };
        repaired.snapshot = id.to_hex();
        if !opts.dry_run {
            if !m.sources.is_empty() {
                repaired.new_snapshot = Some(repo.save_snapshot(&m)?.to_hex());
            }
            repo.delete_object(Kind::Snapshot, &id.to_hex())?;
        }
        s.snapshots_repaired.push(repaired);
    }
    drop(lock);
    Ok(s)
}

/// Removes from `m` every file and dump with a chunk that `have` lacks, and
/// says so in its warnings; `None` when nothing is lost.
fn remove_lost(m: &mut Manifest, have: &HashSet<Id>) -> Option<RepairedSnapshot> {
    let whole = |chunks: &[Id]| chunks.iter().all(|c| have.contains(c));
    let mut r = RepairedSnapshot { snapshot: String::new(), new_snapshot: None, files: vec![], databases: vec![] };
    let mut bytes = 0;
    m.sources.retain_mut(|source| match source {
        Source::Tree(t) => {
            t.entries.retain(|e| {
                let keep = whole(&e.chunks);
                if !keep {
                    r.files.push(e.path.display());
                    bytes += e.size;
                }
                keep
            });
            true
        }
        Source::Postgres(d) => {
            let keep = whole(&d.chunks);
            if !keep {
                r.databases.push(d.name.clone());
                bytes += d.size;
            }
            keep
        }
        Source::Stream(c) => {
            let keep = whole(&c.chunks);
            if !keep {
                r.databases.push(format!("stream {}", c.name));
                bytes += c.size;
            }
            keep
        }
    });
    if r.files.is_empty() && r.databases.is_empty() {
        return None;
    }
    m.summary.files -= (r.files.len() as u64).min(m.summary.files);
    m.summary.bytes -= bytes.min(m.summary.bytes);
    let n = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    m.warnings.push(format!(
        "repair on {} removed {} and {} whose data was lost",
        chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
        n(r.files.len(), "file"),
        n(r.databases.len(), "database dump")
    ));
    Some(r)
}

/// New packs for the chunks that still authenticate in damaged packs.
struct Salvage<'a> {
    repo: &'a Repository,
    dry_run: bool,
    writer: PackWriter,
    written: Vec<PackEntry>,
    chunks: usize,
}

impl<'a> Salvage<'a> {
    fn new(repo: &'a Repository, dry_run: bool) -> Self {
        Salvage { repo, dry_run, writer: PackWriter::default(), written: Vec::new(), chunks: 0 }
    }

    /// Copies chunk `c` of `pack` when it opens and has its recorded size;
    /// `false` when it is damaged (or lies past the pack's end).
    fn add(&mut self, pack: &Id, bytes: &[u8], key: Option<&crate::crypto::KeyBlock>, c: &ChunkEntry) -> Result<bool> {
        let Some(sealed) = bytes.get(c.offset as usize..c.offset as usize + c.length as usize) else {
            return Ok(false);
        };
        let sealed = match self.repo.carry_chunk(&c.id, sealed, pack, key) {
            Ok((sealed, size)) if size == c.size as usize => sealed,
            _ => return Ok(false),
        };
        self.writer.add(c.id, &sealed, c.size);
        self.chunks += 1;
        if self.writer.len() >= self.repo.config().pack_size as usize {
            self.flush()?;
        }
        Ok(true)
    }

    fn flush(&mut self) -> Result<()> {
        let (bytes, entry) = std::mem::take(&mut self.writer).finish(self.repo.keys());
        if !self.dry_run {
            self.repo.put_pack(&entry.id, &bytes)?;
        }
        self.written.push(entry);
        Ok(())
    }

    fn finish(mut self) -> Result<(Vec<PackEntry>, usize)> {
        if !self.writer.is_empty() {
            self.flush()?;
        }
        Ok((self.written, self.chunks))
    }
}

//! `copy`: snapshots into a second repository, with its own keys and
//! backend (the offsite copy of the 3-2-1 rule).
//!
//! Chunk ids are keyed per repository, so each chunk a copied snapshot
//! uses is read from the source (its id checked), named with the
//! destination's id key, and stored only when the destination lacks it.
//! The destination's snapshot is written only once its data and index are
//! stored, and names the source snapshot as its `original`: a later run
//! skips it, so a second copy of the same snapshots transfers nothing. The
//! WAL the copied base backups need (their stanza, from the oldest one's
//! start on) goes first, file by file, skipping what is there.
//!
//! Both repositories are locked shared, as by a backup: no prune deletes
//! what is being read, or the packs written before their index.

use crate::crypto::HashAlgo;
use crate::engine::pipeline::BufferPool;
use crate::error::{Error, Result};
use crate::format::encoding::Id;
use crate::format::index::PackEntry;
use crate::format::manifest::{Manifest, PgBase, Source};
use crate::format::pack::PackWriter;
use crate::format::Index;
use crate::repo::lock::Lock;
use crate::repo::{ChunkCheck, Repository};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::Instant;

#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// The source snapshots, in the order to copy them.
    pub snapshots: Vec<Id>,
    /// Read and count everything, store nothing.
    pub dry_run: bool,
    /// The zstd level of the chunks stored.
    pub compression_level: i32,
}

#[derive(Debug, Clone, Serialize)]
pub struct CopiedSnapshot {
    /// The snapshot in the source repository.
    pub source: String,
    pub time: chrono::DateTime<chrono::Utc>,
    /// Its copy in the destination (None in a dry run).
    pub copy: Option<String>,
    /// It was there already (a copy of the same original): nothing read.
    pub already_copied: bool,
    pub chunks: u64,
    pub new_chunks: u64,
    pub new_bytes: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CopySummary {
    pub dry_run: bool,
    pub from: String,
    pub to: String,
    pub snapshots: Vec<CopiedSnapshot>,
    pub copied: u64,
    pub already_copied: u64,
    /// Chunks read from the source: those no earlier copy from this host
    /// named in the destination (see `load_map`).
    pub chunks_read: u64,
    /// Chunks and bytes (before compression) the destination lacked.
    pub new_chunks: u64,
    pub new_bytes: u64,
    /// Bytes of packs stored in the destination.
    pub stored_bytes: u64,
    /// WAL files (and stanza records) copied, their stored bytes, and those
    /// the destination held already.
    pub wal_files: u64,
    pub wal_bytes: u64,
    pub wal_present: u64,
    pub duration_secs: f64,
}

pub fn copy(from: &Repository, to: &Repository, opts: &CopyOptions) -> Result<CopySummary> {
    let started = Instant::now();
    if from.config().id == to.config().id {
        return Err(Error::InvalidOptions(format!(
            "copy: {} and {} are the same repository",
            from.location(),
            to.location()
        )));
    }
    // A chunk keeps its boundaries: the destination must take chunks as
    // large as the source made them.
    let (src_max, dst_max) = (from.config().chunker.max_size, to.config().chunker.max_size);
    if src_max > dst_max {
        return Err(Error::InvalidOptions(format!(
            "copy: the source's chunks are up to {src_max} bytes, more than {} takes ({dst_max}): \
             copy into a repository made with the default chunker",
            to.location()
        )));
    }
    let _locks = if opts.dry_run { None } else { Some((Lock::acquire(from, false)?, Lock::acquire(to, false)?)) };
    let mut summary =
        CopySummary { dry_run: opts.dry_run, from: from.location(), to: to.location(), ..CopySummary::default() };
    let mut there: HashMap<Id, Id> = HashMap::new();
    for (id, info) in to.list_snapshots()? {
        there.insert(info.original.unwrap_or(id), id);
    }
    let src_index = from.load_index()?;
    let mut writer = Writer::new(from, to, &src_index, opts)?;
    writer.mapped = load_map(from, to);
    // The WAL first: a base backup's copy exists only once the WAL it
    // needs is there (and WAL archived since an earlier copy goes along).
    let mut bases: Vec<PgBase> = Vec::new();
    for id in &opts.snapshots {
        bases.extend(from.load_snapshot_info(id)?.pg_bases().cloned());
    }
    copy_wal(from, to, &bases, opts.dry_run, &mut summary)?;
    for id in &opts.snapshots {
        let mut manifest = from.load_snapshot(id)?;
        let original = manifest.original.unwrap_or(*id);
        if let Some(copy) = there.get(&original) {
            summary.already_copied += 1;
            summary.snapshots.push(CopiedSnapshot {
                source: id.to_hex(),
                time: manifest.time,
                copy: Some(copy.to_hex()),
                already_copied: true,
                chunks: 0,
                new_chunks: 0,
                new_bytes: 0,
            });
            continue;
        }
        let before = (writer.new_chunks, writer.new_bytes, writer.chunks);
        writer.convert(&mut manifest)?;
        manifest.original = Some(original);
        // The parent is a snapshot of the source; the copy has none of its own.
        manifest.parent = None;
        manifest.version = to.config().version;
        // Its data and index first: a snapshot exists only once all of it is stored.
        writer.flush()?;
        writer.save_index()?;
        let copy = if opts.dry_run { None } else { Some(to.save_snapshot(&manifest)?) };
        if let Some(c) = copy {
            there.insert(original, c);
        }
        summary.copied += 1;
        summary.snapshots.push(CopiedSnapshot {
            source: id.to_hex(),
            time: manifest.time,
            copy: copy.map(|c| c.to_hex()),
            already_copied: false,
            chunks: writer.chunks - before.2,
            new_chunks: writer.new_chunks - before.0,
            new_bytes: writer.new_bytes - before.1,
        });
    }
    if !opts.dry_run && !opts.snapshots.is_empty() {
        save_map(from, to, &writer.mapped);
    }
    summary.chunks_read = writer.chunks_read;
    summary.new_chunks = writer.new_chunks;
    summary.new_bytes = writer.new_bytes;
    summary.stored_bytes = writer.stored_bytes;
    summary.duration_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// The WAL of each stanza a copied base backup belongs to, from the oldest
/// such base backup's start on (what prune would keep for them), with the
/// stanza's record; files the destination holds are left as they are.
fn copy_wal(from: &Repository, to: &Repository, bases: &[PgBase], dry_run: bool, s: &mut CopySummary) -> Result<()> {
    use crate::backend::Kind;
    let stanzas: std::collections::BTreeSet<&str> = bases.iter().map(|b| b.stanza.as_str()).collect();
    for stanza in stanzas {
        let listing = from.backend().list_under(Kind::Wal, stanza).map_err(crate::repo::backend_error)?;
        let before: HashSet<String> = crate::ops::wal::unneeded(&listing, bases).into_iter().map(|o| o.name).collect();
        let held: HashSet<String> = to
            .backend()
            .list_under(Kind::Wal, stanza)
            .map_err(crate::repo::backend_error)?
            .into_iter()
            .map(|o| o.name)
            .collect();
        for o in listing.iter().filter(|o| !before.contains(&o.name)) {
            if held.contains(&o.name) {
                s.wal_present += 1;
                continue;
            }
            s.wal_bytes += crate::ops::wal::copy_object(from, to, &o.name, dry_run)?;
            s.wal_files += 1;
        }
    }
    Ok(())
}

/// A source chunk, its destination id, and (when the destination lacks
/// it) its sealed bytes and plaintext size.
type Renamed = (Id, Id, Option<(Vec<u8>, u32)>);

/// Turns the source's chunks into the destination's, storing the ones it
/// lacks in packs of its size.
struct Writer<'a> {
    from: &'a Repository,
    to: &'a Repository,
    src_index: &'a Index,
    dst_index: Index,
    /// Source chunk id → destination chunk id, for chunks seen this run.
    mapped: HashMap<Id, Id>,
    /// Stored this run, not yet in `dst_index`.
    added: HashSet<Id>,
    pack: PackWriter,
    written: Vec<PackEntry>,
    buffers: BufferPool,
    dry_run: bool,
    level: i32,
    /// The digests are recomputed when the two repositories' format versions hash differently.
    rehash: Option<HashAlgo>,
    chunks: u64,
    chunks_read: u64,
    new_chunks: u64,
    new_bytes: u64,
    stored_bytes: u64,
}

impl<'a> Writer<'a> {
    fn new(from: &'a Repository, to: &'a Repository, src_index: &'a Index, opts: &CopyOptions) -> Result<Writer<'a>> {
        let (src_algo, dst_algo) =
            (HashAlgo::of_version(from.config().version), HashAlgo::of_version(to.config().version));
        Ok(Writer {
            from,
            to,
            src_index,
            dst_index: to.load_index()?,
            mapped: HashMap::new(),
            added: HashSet::new(),
            pack: PackWriter::default(),
            written: Vec::new(),
            buffers: BufferPool::new(2),
            dry_run: opts.dry_run,
            level: opts.compression_level,
            rehash: (src_algo != dst_algo).then_some(dst_algo),
            chunks: 0,
            chunks_read: 0,
            new_chunks: 0,
            new_bytes: 0,
            stored_bytes: 0,
        })
    }

    /// Every chunk list of the manifest, in the destination's ids (and,
    /// where the versions differ, every digest in the destination's algorithm).
    fn convert(&mut self, m: &mut Manifest) -> Result<()> {
        self.map_all(m)?;
        for source in &mut m.sources {
            match source {
                Source::Tree(t) => {
                    for e in &mut t.entries {
                        let digested = e.digest().is_some();
                        if let Some(d) = self.chunks_of(&mut e.chunks, digested)? {
                            e.set_digest(d.0, d.1);
                        }
                    }
                }
                Source::Postgres(d) => {
                    let digested = d.digest().is_some();
                    if let Some(h) = self.chunks_of(&mut d.chunks, digested)? {
                        d.set_digest(h.0, h.1);
                    }
                }
                Source::Stream(c) => {
                    let digested = c.digest().is_some();
                    if let Some(h) = self.chunks_of(&mut c.chunks, digested)? {
                        c.set_digest(h.0, h.1);
                    }
                }
            }
        }
        Ok(())
    }

    /// Renames one chunk list in place (every chunk is mapped by then);
    /// where the versions hash differently, the content's new digest.
    fn chunks_of(&mut self, chunks: &mut [Id], digested: bool) -> Result<Option<(HashAlgo, [u8; 32])>> {
        let algo = self.rehash.filter(|_| digested);
        let mut hasher = algo.map(HashAlgo::hasher);
        for id in chunks.iter_mut() {
            self.chunks += 1;
            if let Some(h) = hasher.as_mut() {
                // Read again, in the file's order, for the destination's digest.
                let data = self.from.read_chunk(self.src_index, id, ChunkCheck::Tag, &self.buffers)?;
                h.update(&data);
                self.buffers.give(data);
            }
            *id =
                *self.mapped.get(id).ok_or_else(|| Error::Internal(format!("chunk {} was not copied", id.short())))?;
        }
        Ok(algo.zip(hasher).map(|(a, h)| (a, h.finalize())))
    }

    /// Maps every chunk the manifest uses that this run has not seen, on
    /// the pipeline: workers read, check, rename and seal; this thread packs
    /// them in order.
    fn map_all(&mut self, m: &Manifest) -> Result<()> {
        // A chunk named before is read again only if the destination lost it since (a prune).
        let mut seen = HashSet::new();
        let held = |d: &Id| self.dst_index.contains(d) || self.added.contains(d);
        let todo: Vec<Id> =
            m.chunk_ids().filter(|id| !self.mapped.get(id).is_some_and(held) && seen.insert(**id)).copied().collect();
        self.chunks_read += todo.len() as u64;
        let workers = crate::engine::pipeline::default_workers().max(self.from.backend().read_parallelism());
        let pack_size = self.to.config().pack_size as usize;
        let Writer {
            from,
            to,
            src_index,
            dst_index,
            mapped,
            added,
            pack,
            written,
            buffers,
            dry_run,
            level,
            new_chunks,
            new_bytes,
            stored_bytes,
            ..
        } = self;
        let (from, to, src_index, dst_index, buffers, level) = (*from, *to, *src_index, &*dst_index, &*buffers, *level);
        crate::engine::pipeline::run(
            workers,
            workers * 4,
            |emitter| {
                for id in &todo {
                    emitter.emit(*id)?;
                }
                Ok(())
            },
            |id: Id| -> Result<Renamed> {
                let data = from.read_chunk(src_index, &id, ChunkCheck::Content, buffers)?;
                let dst = Id(to.keys().chunk_id(&data));
                let sealed = (!dst_index.contains(&dst)).then(|| {
                    let mut out = Vec::new();
                    to.seal_chunk(&dst, &data, level, &mut out);
                    (out, data.len() as u32)
                });
                buffers.give(data);
                Ok((id, dst, sealed))
            },
            |(id, dst, sealed)| {
                mapped.insert(id, dst);
                if let Some((bytes, size)) = sealed {
                    if added.insert(dst) {
                        pack.add(dst, &bytes, size);
                        *new_chunks += 1;
                        *new_bytes += u64::from(size);
                        if pack.len() >= pack_size {
                            store_pack(to, *dry_run, pack, written, stored_bytes)?;
                        }
                    }
                }
                Ok(())
            },
        )
    }

    /// Stores the pack being filled.
    fn flush(&mut self) -> Result<()> {
        store_pack(self.to, self.dry_run, &mut self.pack, &mut self.written, &mut self.stored_bytes)
    }

    /// One index for the packs stored since the last: written before the
    /// manifest that needs them.
    fn save_index(&mut self) -> Result<()> {
        if self.written.is_empty() {
            return Ok(());
        }
        let packs = std::mem::take(&mut self.written);
        for p in &packs {
            self.dst_index.add_pack(p);
            for c in &p.chunks {
                self.added.remove(&c.id);
            }
        }
        if !self.dry_run {
            self.to.save_index(packs)?;
        }
        Ok(())
    }
}

/// Stores the pack being filled (a dry run counts it only).
fn store_pack(
    to: &Repository,
    dry_run: bool,
    pack: &mut PackWriter,
    written: &mut Vec<PackEntry>,
    stored_bytes: &mut u64,
) -> Result<()> {
    if pack.is_empty() {
        return Ok(());
    }
    let (bytes, entry) = std::mem::take(pack).finish(to.keys());
    if !dry_run {
        to.put_pack(&entry.id, &bytes)?;
    }
    *stored_bytes += bytes.len() as u64;
    written.push(entry);
    Ok(())
}

/// Where this host keeps what earlier copies from `from` into `to` named
/// each chunk: `~/.cache/coffer/copy-maps/<source id>-<destination id>`.
fn map_path(from: &Repository, to: &Repository) -> Option<std::path::PathBuf> {
    Some(crate::cache_dir()?.join("copy-maps").join(format!(
        "{}-{}",
        from.config().id.to_hex(),
        to.config().id.to_hex()
    )))
}

/// The source chunk → destination chunk names earlier copies made, so
/// that a nightly copy reads only the chunks new since. Sealed with the
/// destination's metadata key: a file that is missing, from another
/// repository, or altered is ignored (everything is read again), never trusted.
fn load_map(from: &Repository, to: &Repository) -> HashMap<Id, Id> {
    let Some(bytes) = map_path(from, to).and_then(|p| std::fs::read(p).ok()) else { return HashMap::new() };
    let Ok(plain) = to.keys().open(crate::crypto::Role::CopyMap, &from.config().id.0, &bytes) else {
        return HashMap::new();
    };
    plain
        .chunks_exact(64)
        .map(|pair| {
            let (a, b) = pair.split_at(32);
            (Id(a.try_into().unwrap_or_default()), Id(b.try_into().unwrap_or_default()))
        })
        .collect()
}

/// Writes the names back (best effort: without it the next copy only reads more).
fn save_map(from: &Repository, to: &Repository, mapped: &HashMap<Id, Id>) {
    let Some(path) = map_path(from, to) else { return };
    let mut plain = Vec::with_capacity(mapped.len() * 64);
    for (a, b) in mapped {
        plain.extend_from_slice(&a.0);
        plain.extend_from_slice(&b.0);
    }
    let sealed = to.keys().seal(crate::crypto::Role::CopyMap, &from.config().id.0, &plain);
    let _ = crate::write_cache_file(&path, &sealed);
}

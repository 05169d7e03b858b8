//! Backup: sources -> chunks -> (parallel) id, dedup, compress, seal ->
//! packs -> index -> manifest. The manifest is written last, and only when
//! everything before it succeeded, so a snapshot exists only when complete.

use crate::backend::DryRun;
use crate::crypto::HashAlgo;
use crate::engine::filter::Patterns;
use crate::engine::pipeline::{self, Batcher, BufferPool};
use crate::error::{Error, Result};
use crate::format::encoding::{Id, RawPath};
use crate::format::manifest::{DumpKind, DumpSource, Entry, EntryKind, Manifest, Source, Summary, TreeSource};
use crate::format::{Index, PackEntry, PackWriter};
use crate::ops::progress::Progress;
use crate::pg::PgConnection;
use crate::repo::Repository;
use crate::source::{postgres, tree, SourceItem};
use crossbeam_channel::bounded;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// Which PostgreSQL databases to dump.
#[derive(Clone)]
pub struct PgSources {
    pub connection: PgConnection,
    /// Databases to dump; empty: the one the connection names.
    pub databases: Vec<String>,
    /// Every non-template database plus the globals (roles, tablespaces).
    pub all: bool,
}

#[derive(Clone)]
pub struct BackupOptions {
    pub paths: Vec<PathBuf>,
    pub postgres: Option<PgSources>,
    pub excludes: Vec<String>,
    /// Folders holding a file of one of these names are left out, contents and all.
    pub exclude_if_present: Vec<String>,
    pub one_file_system: bool,
    pub tags: Vec<String>,
    pub host: Option<String>,
    pub dry_run: bool,
    /// Re-read every file even when the parent snapshot has it unchanged.
    pub force: bool,
    pub compression_level: i32,
    pub workers: usize,
    /// Commands whose standard output is stored, each under its name.
    pub commands: Vec<CommandSource>,
    /// A physical base backup (`--pg-base`).
    pub pg_base: Option<PgBaseSource>,
}

/// `--pg-base`: the server, and how long to wait for its WAL.
#[derive(Clone)]
pub struct PgBaseSource {
    pub connection: PgConnection,
    /// The archive folder its WAL goes to (`wal/<stanza>/`); default its system identifier.
    pub stanza: Option<String>,
    /// How long the server may wait for its WAL to be archived before the
    /// backup fails (it finishes a backup only then).
    pub archive_wait: std::time::Duration,
    /// Wait this long for the backup's WAL to be in this repository; the
    /// snapshot is written only once it is. None: written at once, and a
    /// WAL range not archived here is reported.
    pub wait_for_wal: Option<std::time::Duration>,
}

/// `--stdin-from-command`: a command (run by `sh -c`) and the name its output is stored under.
#[derive(Debug, Clone)]
pub struct CommandSource {
    pub name: String,
    pub command: String,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            paths: Vec::new(),
            postgres: None,
            excludes: Vec::new(),
            exclude_if_present: Vec::new(),
            one_file_system: false,
            tags: Vec::new(),
            host: None,
            dry_run: false,
            force: false,
            compression_level: 3,
            workers: pipeline::default_workers(),
            commands: Vec::new(),
            pg_base: None,
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BackupSummary {
    /// None for a dry run.
    pub snapshot: Option<Id>,
    pub parent: Option<Id>,
    pub dry_run: bool,
    #[serde(flatten)]
    pub stats: Summary,
    /// Paths that could not be read (exit code 3).
    pub unreadable: Vec<String>,
    /// Files that changed while they were read.
    pub changed: Vec<String>,
    /// What went wrong around the backup without stopping it: packs the
    /// index names that are not stored as indexed (their chunks were stored
    /// again), lock objects that cannot be read.
    pub warnings: Vec<String>,
    /// The base backup's WAL, where one was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pg_base: Option<BaseWal>,
}

/// Whether a base backup's WAL is in the repository.
#[derive(Debug, Clone, serde::Serialize)]
pub struct BaseWal {
    pub stanza: String,
    pub start_wal: String,
    pub stop_wal: String,
    /// The segments of the range this repository does not hold (yet):
    /// until they are archived, the base backup cannot be restored.
    pub missing: Vec<String>,
}

enum Done {
    Pass(SourceItem),
    Chunk { id: Id, size: u32, sealed: Option<Vec<u8>> },
}

pub fn backup(repo: &Repository, opts: &BackupOptions, progress: &dyn Progress) -> Result<BackupSummary> {
    let started = Instant::now();
    let plan = BackupPlan::new(opts)?;
    let base = prepare(repo, opts, &plan, progress)?;
    execute(repo, opts, plan, base, progress, started)
}

/// What a backup will read, decided before anything is locked or read:
/// every option checked, source paths looked at, databases resolved (the
/// one server call, `--pg-all`'s listing, so a bad connection fails first).
pub struct BackupPlan {
    excludes: Patterns,
    host: String,
    /// Each source path as the manifest stores it.
    roots: Vec<RawPath>,
    dumps: Vec<(PgConnection, DumpKind)>,
    base: Option<PlannedBase>,
    /// Notes for the operator (a symlink given where a folder was meant).
    notes: Vec<String>,
}

impl BackupPlan {
    pub fn new(opts: &BackupOptions) -> Result<BackupPlan> {
        if opts.paths.is_empty() && opts.postgres.is_none() && opts.commands.is_empty() && opts.pg_base.is_none() {
            return Err(Error::InvalidOptions("nothing to back up: no paths, databases or commands given".into()));
        }
        for (i, c) in opts.commands.iter().enumerate() {
            if c.name.is_empty() || c.name.contains(['/', '\n']) {
                return Err(Error::InvalidOptions(format!("stream name {:?}: give a name without '/'", c.name)));
            }
            if c.command.trim().is_empty() {
                return Err(Error::InvalidOptions(format!("stream {}: the command is empty", c.name)));
            }
            if opts.commands[..i].iter().any(|o| o.name == c.name) {
                return Err(Error::InvalidOptions(format!("stream name {:?} is given twice", c.name)));
            }
        }
        // A missing source path is an error before anything starts: a cron job
        // with a typo must fail loudly, not commit an empty snapshot.
        let mut path_notes = Vec::new();
        for p in &opts.paths {
            let m = std::fs::symlink_metadata(p).map_err(|e| Error::io(p, e))?;
            // Links are never followed, a source path's no more than any other:
            // say so where the operator likely meant the folder.
            if m.file_type().is_symlink() && std::fs::metadata(p).is_ok_and(|t| t.is_dir()) {
                path_notes.push(format!(
                    "{} is a symlink to a directory: the link is backed up, not the directory (give {}/ for that)",
                    p.display(),
                    p.display()
                ));
            }
        }
        let excludes = Patterns::new(&opts.excludes)?;
        let host = opts.host.clone().unwrap_or_else(crate::hostname);
        let roots: Vec<RawPath> = opts.paths.iter().map(|p| tree::stored_root(p)).collect::<Result<_>>()?;
        check_overlap(&opts.paths, &roots)?;

        // Resolve the databases first: a bad connection fails before any work.
        let dumps = match &opts.postgres {
            None => Vec::new(),
            Some(pg) => resolve_dumps(pg)?,
        };
        let base = match &opts.pg_base {
            None => None,
            Some(b) => {
                let cluster = crate::source::pg_base::identify(&b.connection)?;
                let stanza = b.stanza.clone().unwrap_or_else(|| cluster.system_identifier.to_string());
                crate::ops::wal::check_stanza(&stanza)?;
                let root = RawPath(format!("pg-base/{stanza}").into_bytes());
                let mut all = roots.clone();
                all.push(root.clone());
                let mut paths = opts.paths.clone();
                paths.push(PathBuf::from(format!("--pg-base ({})", root.display())));
                check_overlap(&paths, &all)?;
                Some(PlannedBase { source: b.clone(), cluster, stanza, root })
            }
        };
        Ok(BackupPlan { excludes, host, roots, dumps, base, notes: path_notes })
    }
}

/// A base backup as planned: its server, the cluster it answered for, and
/// where its tree is stored (`pg-base/<stanza>`).
struct PlannedBase {
    source: PgBaseSource,
    cluster: crate::source::pg_base::Cluster,
    stanza: String,
    root: RawPath,
}

/// The dumps a backup takes: the globals and every database (`all`), the
/// databases named, or the connection's own.
fn resolve_dumps(pg: &PgSources) -> Result<Vec<(PgConnection, DumpKind)>> {
    let mut v = Vec::new();
    if pg.all {
        v.push((pg.connection.clone(), DumpKind::Globals));
        for db in pg.connection.list_databases()? {
            v.push((pg.connection.with_database(&db), DumpKind::Database));
        }
    } else if pg.databases.is_empty() {
        v.push((pg.connection.clone(), DumpKind::Database));
    } else {
        for (i, db) in pg.databases.iter().enumerate() {
            if pg.databases[..i].contains(db) {
                return Err(Error::InvalidOptions(format!("database {db:?} is given twice")));
            }
            v.push((pg.connection.with_database(db), DumpKind::Database));
        }
    }
    Ok(v)
}

/// A snapshot lists each path once (restore refuses one that does not), so
/// paths that overlap are a mistake to fix in the command or profile.
fn check_overlap(paths: &[PathBuf], roots: &[RawPath]) -> Result<()> {
    for (i, a) in roots.iter().enumerate() {
        for (j, b) in roots.iter().enumerate().skip(i + 1) {
            let (outer, inner) = if b.0.len() < a.0.len() { (j, i) } else { (i, j) };
            let (o, n) = (&roots[outer].0, &roots[inner].0);
            if o.is_empty() || n == o || (n.starts_with(o) && n[o.len()] == b'/') {
                return Err(Error::InvalidOptions(format!(
                    "backup paths overlap: {} is {} {}; give one of them",
                    paths[inner].display(),
                    if n == o { "the same as" } else { "inside" },
                    paths[outer].display()
                )));
            }
        }
    }
    Ok(())
}

/// What the backup starts from: its lock, the index (less what is not
/// stored, plus the packs a crashed backup left), the parent snapshot.
struct Base {
    /// Held until the snapshot is written (shared: prune waits for it).
    _lock: Option<crate::repo::lock::Lock>,
    index: Index,
    adopted: Vec<PackEntry>,
    parent_id: Option<Id>,
    parent_files: HashMap<RawPath, Entry>,
    warnings: Vec<String>,
}

fn prepare(repo: &Repository, opts: &BackupOptions, plan: &BackupPlan, progress: &dyn Progress) -> Result<Base> {
    if opts.force && repo.is_write_only() {
        return Err(repo.write_only_error("run `backup --force`, which reads back the chunks stored"));
    }
    // Shared: backups run side by side, but prune waits for all of them.
    let lock = if opts.dry_run { None } else { Some(crate::repo::lock::Lock::acquire(repo, false)?) };
    if progress.wants_total() && (!plan.dumps.is_empty() || !opts.commands.is_empty() || plan.base.is_some()) {
        // A dump's size is not known ahead: files and bytes are counted as they go.
        progress.start("files", 0, 0);
    } else if progress.wants_total() {
        let (mut files, mut bytes) = (0, 0);
        for p in &opts.paths {
            let (f, b) = tree::scan(p, &plan.excludes, &opts.exclude_if_present, opts.one_file_system);
            files += f;
            bytes += b;
        }
        progress.start("files", files, bytes);
    }
    let mut index = repo.load_index()?;
    // Deduplicate only against chunks whose packs are really there (one
    // listing): a pack lost, truncated or replaced is stored again, never
    // referred to by a new snapshot.
    let stored = repo.stored_pack_sizes()?;
    let mut repo_warnings: Vec<String> = lock.as_ref().map(|l| l.unreadable_ignored.clone()).unwrap_or_default();
    repo_warnings.extend(plan.notes.iter().cloned());
    repo_warnings.extend(
        index
            .drop_packs_not_stored(&stored)
            .into_iter()
            .map(|(id, why)| format!("pack {} is {why}: its chunks are stored again", id.to_hex())),
    );
    // Packs stored but in no index were left by an interrupted backup: their
    // chunks are reused (each pack read once, checked against its name) and
    // indexed with this backup's, instead of being uploaded again.
    let adopted = adopt_unindexed_packs(repo, &mut index, &stored, &mut repo_warnings)?;
    let (parent_id, parent_files) = if opts.force {
        (None, HashMap::new())
    } else if repo.is_write_only() {
        // Its key opens no manifest: the parent is the one this host keeps.
        let (id, files, why) = crate::ops::stat_cache::load(repo, &plan.host, &plan.roots);
        repo_warnings.extend(why);
        (id, files)
    } else {
        find_parent(repo, &plan.host, &plan.roots)?
    };

    Ok(Base { _lock: lock, index, adopted, parent_id, parent_files, warnings: repo_warnings })
}

/// Reads every source through the pipeline, stores what is new, then the
/// index and, last, the manifest.
fn execute(
    repo: &Repository,
    opts: &BackupOptions,
    plan: BackupPlan,
    base: Base,
    progress: &dyn Progress,
    started: Instant,
) -> Result<BackupSummary> {
    let BackupPlan { excludes, host, dumps, base: pg_base, roots, .. } = plan;
    let Base { _lock, index, adopted, parent_id, parent_files, warnings: repo_warnings } = base;
    let dry = opts.dry_run.then(|| Arc::new(DryRun::new(repo.backend().clone())));
    let dry_repo;
    let target: &Repository = match &dry {
        Some(d) => {
            dry_repo = repo.with_backend(d.clone());
            &dry_repo
        }
        None => repo,
    };

    let new_ids: RwLock<HashSet<Id>> = RwLock::new(HashSet::new());
    // With --force nothing stored is trusted blindly: each chunk the backup
    // would reuse is read back once (decrypted, its id recomputed), and one
    // that does not read (a pack damaged in place, which no listing shows)
    // is stored again; readers then fall back on the new copy.
    let damaged: RwLock<HashSet<Id>> = RwLock::new(HashSet::new());
    let readable: RwLock<HashSet<Id>> = RwLock::new(HashSet::new());
    let check_buffers = BufferPool::new(opts.workers * 2);
    let reusable = |id: &Id| {
        if !index.contains(id) {
            return false;
        }
        if !opts.force || readable.read().is_ok_and(|s| s.contains(id)) {
            return true;
        }
        if damaged.read().is_ok_and(|s| s.contains(id)) {
            return false;
        }
        let ok = match repo.read_chunk(&index, id, crate::repo::ChunkCheck::Content, &check_buffers) {
            Ok(data) => {
                check_buffers.give(data);
                true
            }
            Err(_) => false,
        };
        let set = if ok { &readable } else { &damaged };
        if let Ok(mut s) = set.write() {
            s.insert(*id);
        }
        ok
    };
    let known = |id: &Id| reusable(id) || new_ids.read().map(|s| s.contains(id)).unwrap_or(false);
    let pack_size = repo.config().pack_size as usize;
    let chunker = repo.config().chunker;
    let algo = HashAlgo::of_version(repo.config().version);
    let level = opts.compression_level;

    // Jobs in flight (each about a chunk's worth of data); the pool keeps as
    // many buffers plus two per worker, and frees what a window of small
    // files' batches holds beyond that.
    let window = opts.workers * 4;
    let buffers = BufferPool::new(window + opts.workers * 2);
    // One pack fills while the one before it is stored; their buffers go
    // round between the collector and the uploader.
    let (recycle_tx, recycle_rx) = bounded::<Vec<u8>>(2);
    let mut collector = Collector {
        index: &index,
        new_ids: &new_ids,
        damaged: &damaged,
        buffers: &buffers,
        pack: PackWriter::with_capacity(pack_size + chunker.max_size as usize),
        pack_size,
        pack_tx: None,
        recycled: recycle_rx,
        sources: Vec::new(),
        file: None,
        dump: None,
        stream: None,
        stats: Summary::default(),
        unreadable: Vec::new(),
        changed: Vec::new(),
        linkable: HashMap::new(),
    };

    // Sealing a pack's header and hashing it for its name happen on the
    // uploader's thread, off the collector's, which is on the pipeline's path.
    let upload = |pack_rx: crossbeam_channel::Receiver<PackWriter>| -> Result<(Vec<PackEntry>, u64)> {
        let (mut packs, mut stored) = (Vec::new(), 0u64);
        for pack in pack_rx {
            let (bytes, entry) = pack.finish(target.keys());
            target.put_pack(&entry.id, &bytes)?;
            stored += bytes.len() as u64;
            packs.push(entry);
            let _ = recycle_tx.try_send(bytes);
        }
        Ok((packs, stored))
    };
    let run_result = pipeline::with_helper(1, upload, |pack_tx| {
        collector.pack_tx = Some(pack_tx);
        let parent_ref = (!parent_files.is_empty()).then_some(&parent_files);
        let on_bytes = |n: u64| progress.bytes_done(n);
        let result = pipeline::run(
            opts.workers,
            window,
            |emitter| {
                let tree_opts = tree::TreeOptions {
                    excludes: &excludes,
                    exclude_if_present: &opts.exclude_if_present,
                    one_file_system: opts.one_file_system,
                    chunker,
                    parent: parent_ref,
                    chunk_known: &|id: &Id| index.contains(id),
                    on_bytes: &on_bytes,
                    buffers: &buffers,
                    algo,
                };
                // About a chunk's worth of small files per job.
                let mut batch = Batcher::new(emitter, chunker.avg_size as usize, 256);
                let weight = |item: &SourceItem| match item {
                    SourceItem::Chunk(data) => data.len(),
                    _ => 0,
                };
                for p in &opts.paths {
                    tree::walk(p, &tree_opts, &mut |item| {
                        // Files only: the total counts files.
                        if matches!(&item, SourceItem::FileStart(_))
                            || matches!(&item, SourceItem::Entry(e) if e.kind == EntryKind::File)
                        {
                            progress.item_done();
                        }
                        let w = weight(&item);
                        batch.push(item, w)
                    })?;
                }
                for (conn, kind) in &dumps {
                    postgres::dump(conn, *kind, chunker, algo, &on_bytes, &buffers, &mut |item| {
                        let w = weight(&item);
                        batch.push(item, w)
                    })?;
                }
                if let Some(b) = &pg_base {
                    let base_opts = crate::source::pg_base::BaseOptions {
                        root: b.root.clone(),
                        stanza: &b.stanza,
                        cluster: &b.cluster,
                        archive_wait: b.source.archive_wait,
                        chunker,
                        algo,
                        on_bytes: &on_bytes,
                        buffers: &buffers,
                    };
                    crate::source::pg_base::take(&b.source.connection, &base_opts, &mut |item| {
                        if matches!(&item, SourceItem::FileStart(_)) {
                            progress.item_done();
                        }
                        let w = weight(&item);
                        batch.push(item, w)
                    })?;
                }
                for c in &opts.commands {
                    crate::source::command::run(
                        &c.name,
                        &c.command,
                        chunker,
                        algo,
                        &on_bytes,
                        &buffers,
                        &mut |item| {
                            let w = weight(&item);
                            batch.push(item, w)
                        },
                    )?;
                }
                batch.flush()
            },
            |items: Vec<SourceItem>| {
                let mut done = Vec::with_capacity(items.len());
                for item in items {
                    done.push(match item {
                        SourceItem::Chunk(data) => {
                            let id = Id(repo.keys().chunk_id(&data));
                            // Known chunks skip compression and encryption:
                            // the nightly re-backup of unchanged data is
                            // nearly free.
                            let sealed = (!known(&id)).then(|| {
                                let mut out = buffers.take();
                                repo.seal_chunk(&id, &data, level, &mut out);
                                out
                            });
                            let size = data.len() as u32;
                            buffers.give(data);
                            Done::Chunk { id, size, sealed }
                        }
                        other => Done::Pass(other),
                    });
                }
                Ok(done)
            },
            |done: Vec<Done>| done.into_iter().try_for_each(|d| collector.consume(d)),
        )
        .and_then(|()| collector.flush_pack());
        // The uploader finishes once the collector's sender is gone.
        collector.pack_tx = None;
        result
    });
    let ((), (new_packs, stored_bytes)) = run_result?;

    let Collector { sources, mut stats, unreadable, changed, .. } = collector;
    stats.stored_bytes = stored_bytes;
    let mut new_packs = new_packs;
    new_packs.extend(adopted);
    if !new_packs.is_empty() {
        target.save_index(new_packs)?;
    }
    // A base backup is worth a snapshot once its WAL is archived: with
    // --wait-for-wal the snapshot waits for it; without, it is reported.
    let base_wal = match (
        &pg_base,
        sources.iter().find_map(|s| match s {
            Source::Tree(t) => t.pg_base.as_ref(),
            _ => None,
        }),
    ) {
        (Some(b), Some(facts)) => Some(wait_for_base_wal(repo, facts, b.source.wait_for_wal, progress)?),
        _ => None,
    };
    stats.duration_secs = started.elapsed().as_secs_f64();
    let mut warnings: Vec<String> = unreadable.iter().map(|u| format!("unreadable: {u}")).collect();
    warnings.extend(changed.iter().map(|c| format!("changed while read: {c}")));
    let manifest = Manifest {
        version: repo.config().version,
        time: chrono::Utc::now(),
        host,
        tags: opts.tags.clone(),
        tool: format!("coffer {}", env!("CARGO_PKG_VERSION")),
        parent: parent_id,
        original: None,
        sources,
        summary: stats.clone(),
        warnings,
    };
    let snapshot = target.save_snapshot(&manifest)?;
    let mut repo_warnings = repo_warnings;
    if repo.is_write_only() && !opts.dry_run {
        repo_warnings.extend(crate::ops::stat_cache::save(repo, &manifest.host, &roots, snapshot, &manifest));
    }
    Ok(BackupSummary {
        snapshot: (!opts.dry_run).then_some(snapshot),
        parent: parent_id,
        dry_run: opts.dry_run,
        stats,
        unreadable,
        changed,
        warnings: repo_warnings,
        pg_base: base_wal,
    })
}

/// Checks (and with `wait`, waits) until the repository holds the base
/// backup's WAL range; a range still incomplete after `wait` fails the backup.
fn wait_for_base_wal(
    repo: &Repository,
    facts: &crate::format::manifest::PgBase,
    wait: Option<std::time::Duration>,
    progress: &dyn Progress,
) -> Result<BaseWal> {
    let started = Instant::now();
    let mut said = false;
    loop {
        let missing = crate::ops::wal::missing_segments(repo, facts)?;
        let done = BaseWal {
            stanza: facts.stanza.clone(),
            start_wal: facts.start_wal.clone(),
            stop_wal: facts.stop_wal.clone(),
            missing,
        };
        let Some(limit) = wait else { return Ok(done) };
        if done.missing.is_empty() {
            return Ok(done);
        }
        if started.elapsed() >= limit {
            return Err(Error::Refused(format!(
                "the base backup's WAL is not in the repository after {}: segment {} of stanza {} is missing \
                 (is archive_command pushing into this repository and stanza?); no snapshot was written",
                humantime::format_duration(limit),
                done.missing[0],
                facts.stanza
            )));
        }
        if !said {
            progress.phase("waiting for the base backup's WAL to be archived");
            said = true;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
}

/// Reads the packs that are stored but in no index, adds their chunks to
/// `index` and returns their entries, for this backup's index. A pack that
/// does not read back whole is left for prune, with a warning.
fn adopt_unindexed_packs(
    repo: &Repository,
    index: &mut Index,
    stored: &HashMap<Id, u64>,
    warnings: &mut Vec<String>,
) -> Result<Vec<PackEntry>> {
    let indexed: HashSet<Id> = index.packs().iter().map(|(id, _)| *id).collect();
    let mut adopted = Vec::new();
    for (&id, &size) in stored.iter().filter(|(id, _)| !indexed.contains(id)) {
        let read = repo
            .backend()
            .get(crate::backend::Kind::Pack, &id.to_hex())
            .map_err(crate::repo::backend_error)
            .and_then(|bytes| crate::format::read_pack_header(repo.keys(), &id, &bytes));
        match read {
            Ok(header) => {
                let entry = header.entry(id, size);
                index.add_pack(&entry);
                adopted.push(entry);
            }
            Err(e) => warnings.push(format!("unindexed pack {} is not reused: {e}", id.to_hex())),
        }
    }
    Ok(adopted)
}

/// The newest snapshot of the same host and the same source paths; its file
/// entries let unchanged files be skipped without reading them.
fn find_parent(repo: &Repository, host: &str, roots: &[RawPath]) -> Result<(Option<Id>, HashMap<RawPath, Entry>)> {
    let snapshots = repo.list_snapshots()?;
    let candidates = snapshots
        .into_iter()
        .rev()
        .filter(|(_, m)| m.host == host && !roots.is_empty() && m.tree_paths().eq(roots.iter()));
    // Only the parent's manifest is loaded whole. One that a forget (here or
    // on another host) removed since the listing gives way to the next.
    let mut found = None;
    for (id, _) in candidates {
        match repo.load_snapshot(&id) {
            Ok(m) => {
                found = Some((id, m));
                break;
            }
            Err(Error::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        }
    }
    let Some((id, manifest)) = found else {
        return Ok((None, HashMap::new()));
    };
    let files = manifest
        .sources
        .into_iter()
        .flat_map(|s| match s {
            // A base backup's files never stand in for a path's.
            Source::Tree(t) if t.pg_base.is_none() => t.entries,
            _ => Vec::new(),
        })
        .filter(|e| e.kind == EntryKind::File)
        // The path moves into the key: the entry's own copy is never read.
        .map(|mut e| (std::mem::take(&mut e.path), e))
        .collect();
    Ok((Some(id), files))
}

/// The in-order end of the pipeline: assembles entries and packs.
struct Collector<'a> {
    index: &'a Index,
    new_ids: &'a RwLock<HashSet<Id>>,
    /// Indexed chunks that did not read back (--force): stored again.
    damaged: &'a RwLock<HashSet<Id>>,
    buffers: &'a BufferPool,
    pack: PackWriter,
    pack_size: usize,
    pack_tx: Option<crossbeam_channel::Sender<PackWriter>>,
    /// Buffers of stored packs, back from the uploader.
    recycled: crossbeam_channel::Receiver<Vec<u8>>,
    sources: Vec<Source>,
    /// The file or dump whose chunks are arriving.
    file: Option<Entry>,
    dump: Option<DumpSource>,
    stream: Option<crate::format::manifest::StreamSource>,
    stats: Summary,
    unreadable: Vec<String>,
    changed: Vec<String>,
    /// Files with several names stored so far: digest and size by path.
    linkable: HashMap<RawPath, (Option<String>, u64)>,
}

impl Collector<'_> {
    fn consume(&mut self, done: Done) -> Result<()> {
        match done {
            Done::Chunk { id, size, sealed } => {
                match (self.file.as_mut(), self.dump.as_mut(), self.stream.as_mut()) {
                    (Some(f), _, _) => f.chunks.push(id),
                    (None, Some(d), _) => d.chunks.push(id),
                    (None, None, Some(c)) => c.chunks.push(id),
                    (None, None, None) => return Err(Error::Internal("chunk outside a file, dump or stream".into())),
                }
                self.stats.bytes += size as u64;
                if let Some(sealed) = sealed {
                    let stored = self.index.contains(&id) && !self.damaged.read().is_ok_and(|s| s.contains(&id));
                    let fresh = !stored
                        && self.new_ids.write().map_err(|_| Error::Internal("lock poisoned".into()))?.insert(id);
                    if fresh {
                        self.pack.add(id, &sealed, size);
                        self.stats.new_chunks += 1;
                        self.stats.new_bytes += size as u64;
                    }
                    self.buffers.give(sealed);
                    if self.pack.len() >= self.pack_size {
                        self.flush_pack()?;
                    }
                }
            }
            Done::Pass(SourceItem::Begin(path)) => {
                self.sources.push(Source::Tree(TreeSource { path, pg_base: None, entries: Vec::new() }))
            }
            Done::Pass(SourceItem::DumpStart(d)) => self.dump = Some(d),
            Done::Pass(SourceItem::PgBaseEnd(facts)) => match self.sources.last_mut() {
                Some(Source::Tree(t)) => {
                    // Walk order, as a tree's: a folder before its contents, names in byte order.
                    t.entries.sort_by(|a, b| a.path.0.split(|&c| c == b'/').cmp(b.path.0.split(|&c| c == b'/')));
                    t.pg_base = Some(*facts);
                }
                _ => return Err(Error::Internal("base backup end outside its tree".into())),
            },
            Done::Pass(SourceItem::StreamStart(c)) => self.stream = Some(c),
            Done::Pass(SourceItem::StreamEnd { algo, digest, size, duration_secs }) => {
                let mut c = self.stream.take().ok_or_else(|| Error::Internal("stream end outside a stream".into()))?;
                c.set_digest(algo, digest);
                c.size = size;
                c.duration_secs = duration_secs;
                self.stats.streams += 1;
                self.sources.push(Source::Stream(c));
            }
            Done::Pass(SourceItem::DumpEnd { algo, digest, size, server_version, toc, duration_secs }) => {
                let mut d = self.dump.take().ok_or_else(|| Error::Internal("dump end outside a dump".into()))?;
                d.set_digest(algo, digest);
                d.size = size;
                d.server_version = server_version;
                d.toc = toc;
                d.duration_secs = duration_secs;
                self.stats.databases += 1;
                self.sources.push(Source::Postgres(d));
            }
            Done::Pass(SourceItem::Entry(e)) => {
                match e.kind {
                    EntryKind::File => {
                        self.stats.files += 1;
                        self.stats.bytes += e.size;
                    }
                    EntryKind::Dir => self.stats.dirs += 1,
                    EntryKind::Symlink => self.stats.symlinks += 1,
                    _ => self.stats.specials += 1,
                }
                self.push_entry(e)?;
            }
            Done::Pass(SourceItem::FileStart(e)) => self.file = Some(e),
            Done::Pass(SourceItem::FileEnd { algo, digest, size, changed }) => {
                let mut e = self.file.take().ok_or_else(|| Error::Internal("file end outside a file".into()))?;
                e.set_digest(algo, digest);
                e.size = size;
                e.changed = changed;
                if changed {
                    self.changed.push(e.path.display());
                }
                self.stats.files += 1;
                self.push_entry(e)?;
            }
            // The entry is dropped; chunks it already stored are harmless.
            Done::Pass(SourceItem::FileFailed) => self.file = None,
            Done::Pass(SourceItem::Unreadable(msg)) => self.unreadable.push(msg),
            Done::Pass(SourceItem::Chunk(_)) => {
                unreachable!("workers turn chunks into Done::Chunk")
            }
        }
        Ok(())
    }

    fn push_entry(&mut self, mut e: Entry) -> Result<()> {
        if e.kind == EntryKind::File {
            // A hard link is kept only to a name stored whole with the same
            // content (the first may have failed, or changed in between).
            if let Some(first) = &e.hardlink {
                let same = self
                    .linkable
                    .get(first)
                    .is_some_and(|(digest, size)| *size == e.size && digest.as_deref() == e.digest().map(|(_, h)| h));
                if !same {
                    e.hardlink = None;
                }
            } else if e.nlink > 1 {
                self.linkable.insert(e.path.clone(), (e.digest().map(|(_, h)| h.to_string()), e.size));
            }
        }
        match self.sources.last_mut() {
            Some(Source::Tree(t)) => {
                t.entries.push(e);
                Ok(())
            }
            _ => Err(Error::Internal("entry before its source".into())),
        }
    }

    fn flush_pack(&mut self) -> Result<()> {
        if self.pack.is_empty() {
            return Ok(());
        }
        let buf = self.recycled.try_recv().unwrap_or_else(|_| Vec::with_capacity(self.pack.capacity()));
        let pack = std::mem::replace(&mut self.pack, PackWriter::with_buffer(buf));
        let tx = self.pack_tx.as_ref().ok_or_else(|| Error::Internal("pack uploader is closed".into()))?;
        tx.send(pack).map_err(|_| Error::Internal("pack upload stopped".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overlap(paths: &[&str]) -> std::result::Result<(), String> {
        let paths: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
        let roots: Vec<RawPath> = paths.iter().map(|p| RawPath(p.to_string_lossy().as_bytes().to_vec())).collect();
        check_overlap(&paths, &roots).map_err(|e| e.to_string())
    }

    #[test]
    fn overlapping_paths_are_refused_and_siblings_are_not() {
        assert!(overlap(&["srv/app", "srv/application", "etc"]).is_ok());
        let e = overlap(&["srv/app", "srv/app/logs"]).unwrap_err();
        assert!(e.contains("srv/app/logs is inside srv/app"), "{e}");
        let e = overlap(&["srv/app/logs", "srv"]).unwrap_err();
        assert!(e.contains("srv/app/logs is inside srv"), "{e}");
        assert!(overlap(&["etc", "etc"]).unwrap_err().contains("the same as"));
        // The empty root (the file system's root) holds every other path.
        assert!(overlap(&["", "etc"]).is_err());
    }
}

//! Restore of PostgreSQL dumps: streamed into pg_restore (or psql for the
//! globals), written to a file for a manual pg_restore, or, in a dry run,
//! streamed into `pg_restore --list` to prove the archive parses and to
//! list what the filters would restore, touching no database.
//!
//! Every chunk is authenticated before it reaches pg_restore, and the whole
//! stream's digest is checked against the manifest at its end. A streamed
//! restore into an existing database runs in one transaction, so a stream
//! that fails half-way leaves the database as it was.

use crate::atomic_file::AtomicFile;
use crate::encoding::Id;
use crate::error::{Error, Result};
use crate::format::Index;
use crate::manifest::{DumpKind, DumpSource, Manifest};
use crate::pipeline::{self, BufferPool};
use crate::postgres::{quote_ident, quote_literal, tail, PgConnection, StderrCollector, TocEntry, TocLister};
use crate::repository::{ChunkCheck, Repository};
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Instant;

pub enum DbTarget {
    /// Restore into this server/database.
    Server(PgConnection),
    /// Write the raw dump to this file.
    File(PathBuf),
}

pub struct DbRestoreOptions {
    /// Which dump of the snapshot; None: the only database dump.
    pub database: Option<String>,
    /// Every dump: globals first, then each database (created when missing).
    pub all: bool,
    pub target: DbTarget,
    pub schemas: Vec<String>,
    pub tables: Vec<String>,
    /// pg_restore --create: create the archived database (connect to a maintenance database).
    pub create: bool,
    /// pg_restore --clean --if-exists: drop objects before recreating them.
    pub clean: bool,
    pub no_owner: bool,
    /// pg_restore -j; above 1 the dump is first written to a temporary file.
    pub jobs: u32,
    pub dry_run: bool,
    pub workers: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DbRestored {
    pub name: String,
    pub kind: DumpKind,
    pub target: String,
    pub bytes: u64,
    pub chunks_checked: u64,
    /// Dry run: the archive entries the filters select.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<TocEntry>,
    pub duration_secs: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DbRestoreSummary {
    pub snapshot: String,
    pub dry_run: bool,
    pub databases: Vec<DbRestored>,
    pub duration_secs: f64,
}

/// The dumps a restore or drill works on.
pub fn select_dumps<'m>(manifest: &'m Manifest, database: Option<&str>, all: bool) -> Result<Vec<&'m DumpSource>> {
    let dumps: Vec<&DumpSource> = manifest.dumps().collect();
    if dumps.is_empty() {
        return Err(Error::InvalidInput("the snapshot holds no PostgreSQL dump".into()));
    }
    if all {
        let mut v = dumps;
        v.sort_by_key(|d| d.kind != DumpKind::Globals);
        return Ok(v);
    }
    let names = || dumps.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ");
    match database {
        Some(name) => dumps.iter().find(|d| d.name == name).map(|d| vec![*d]).ok_or_else(|| {
            Error::InvalidInput(format!("the snapshot has no dump of database {name:?} (it has: {})", names()))
        }),
        None => {
            let dbs: Vec<&DumpSource> = dumps.iter().copied().filter(|d| d.kind == DumpKind::Database).collect();
            match dbs.len() {
                1 => Ok(dbs),
                _ => Err(Error::InvalidInput(format!(
                    "the snapshot has several dumps ({}): choose one with --db NAME, or --all",
                    names()
                ))),
            }
        }
    }
}

/// Where `stream_dump` puts a dump.
pub enum DumpOut<'a> {
    /// In order, chunk by chunk (pg_restore's or psql's stdin, `pg_restore
    /// --list`). Each chunk's id is checked (keyed hash), as the receiver uses the
    /// data before the stream's end.
    Stream(&'a mut dyn FnMut(&[u8]) -> Result<()>),
    /// Into an empty file, its space reserved first (`preallocate`), each
    /// chunk at its offset, written by the workers one at a time. Nothing may
    /// use the file before `stream_dump` returns Ok, so the tag check per
    /// chunk and the digest of the whole suffice.
    File(&'a std::fs::File, &'a std::path::Path),
}

/// Streams a dump's bytes, authenticated, into `out`, then checks the whole
/// stream against the manifest. Returns chunks read.
pub fn stream_dump(
    repo: &Repository,
    index: &Index,
    snapshot: &Id,
    dump: &DumpSource,
    workers: usize,
    out: DumpOut<'_>,
) -> Result<u64> {
    let object = || format!("dump of {} in snapshot {}", dump.name, snapshot.short());
    let (algo, want) = dump.digest().ok_or_else(|| Error::corrupt(object(), "the manifest gives no valid checksum"))?;
    let (mut stream, file, check) = match out {
        DumpOut::Stream(sink) => (Some(sink), None, ChunkCheck::Content),
        DumpOut::File(file, path) => {
            crate::atomic_file::preallocate(file, dump.size).map_err(|e| Error::io(path, e))?;
            (None, Some((file, path)), ChunkCheck::Tag)
        }
    };
    let mut chunks = 0u64;
    let window = workers * 4;
    let buffers = BufferPool::new(window + workers * 2);
    // Workers write one at a time: buffered writes to one file serialize on
    // its inode lock anyway, where a waiting thread spins (0.3-0.8 s of CPU
    // in a 2.4 GB restore on two cores); on this mutex it sleeps instead.
    let one_writer = std::sync::Mutex::new(());
    // The digest (BLAKE3 3.5-4.3 GB/s a core here, SHA-256 1.7) runs on a thread of
    // its own, behind the writes, so the two overlap.
    let hash = |hash_rx: crossbeam_channel::Receiver<Vec<u8>>| {
        let (mut hasher, mut size) = (algo.hasher(), 0u64);
        for data in hash_rx {
            hasher.update(&data);
            size += data.len() as u64;
            buffers.give(data);
        }
        Ok((hasher.finalize(), size))
    };
    let ((), (digest, size)) = pipeline::with_helper(4, hash, |hash_tx| {
        pipeline::run(
            workers,
            window,
            |emitter| {
                // Each chunk's offset, from the (authenticated) index's sizes;
                // read_chunk refuses a chunk whose plaintext differs from its size.
                let mut offset = 0u64;
                for c in &dump.chunks {
                    let (_, loc) = index
                        .get(c)
                        .ok_or_else(|| Error::corrupt(object(), format!("chunk {} is in no pack", c.short())))?;
                    emitter.emit((*c, offset))?;
                    offset += loc.size as u64;
                }
                Ok(())
            },
            |(id, offset)| {
                let data = repo.read_chunk(index, &id, check, &buffers)?;
                if let Some((file, path)) = file {
                    let _turn = one_writer.lock();
                    std::os::unix::fs::FileExt::write_all_at(file, &data, offset).map_err(|e| Error::io(path, e))?;
                }
                Ok(data)
            },
            |data| {
                chunks += 1;
                if let Some(sink) = stream.as_mut() {
                    sink(&data)?;
                }
                hash_tx.send(data).map_err(|_| Error::InvalidInput("hasher stopped".into()))
            },
        )
    })?;
    if hex::encode(digest) != want || size != dump.size {
        let reason = format!("restored stream does not match the manifest's {}", algo.name());
        return Err(Error::corrupt(object(), reason));
    }
    Ok(chunks)
}

/// Writes a dump, checked, to a scratch file in `TMPDIR`, for pg_restore
/// when it needs to seek (`--jobs`): pg_restore opens it at
/// `path_for_others`, and it has no name that a killed restore or drill
/// could leave behind. Returns the file and the chunks read.
pub fn dump_to_temp_file(
    repo: &Repository,
    index: &Index,
    snapshot: &Id,
    dump: &DumpSource,
    workers: usize,
) -> Result<(AtomicFile, u64)> {
    let dir = std::env::temp_dir();
    let tmp = crate::atomic_file::scratch().map_err(|e| Error::io(&dir, e))?;
    // Errors name the directory: the file has no name, and TMPDIR is the setting to change.
    let chunks = stream_dump(repo, index, snapshot, dump, workers, DumpOut::File(tmp.as_file(), &dir))?;
    Ok((tmp, chunks))
}

fn pipe_error(what: &str, e: std::io::Error) -> Error {
    Error::SourceFailed { source_name: what.into(), message: format!("writing to it: {e}") }
}

pub fn restore_databases(repo: &Repository, snapshot: &Id, opts: &DbRestoreOptions) -> Result<DbRestoreSummary> {
    let started = Instant::now();
    let manifest = repo.load_snapshot(snapshot)?;
    manifest.validate().map_err(|(path, reason)| Error::UnsafeEntry { snapshot: snapshot.to_hex(), path, reason })?;
    let dumps = select_dumps(&manifest, opts.database.as_deref(), opts.all)?;
    if matches!(opts.target, DbTarget::File(_)) && dumps.len() != 1 {
        return Err(Error::InvalidInput("--to-file writes one dump: choose it with --db NAME".into()));
    }
    let index = repo.load_index()?;
    // Every chunk must be findable before a database is touched.
    for d in &dumps {
        if let Some(missing) = d.chunks.iter().find(|c| !index.contains(c)) {
            return Err(Error::corrupt(
                format!("snapshot {snapshot}"),
                format!("chunk {} of the dump of {} is in no pack", missing.short(), d.name),
            ));
        }
    }
    let mut done = Vec::new();
    for dump in dumps {
        let t = Instant::now();
        let (target, chunks, objects) = if opts.dry_run {
            let (chunks, objects) = dry_run(repo, &index, snapshot, dump, opts)?;
            ("(dry run: nothing written)".to_string(), chunks, objects)
        } else {
            match &opts.target {
                DbTarget::File(path) => {
                    (path.display().to_string(), to_file(repo, &index, snapshot, dump, path, opts.workers)?, vec![])
                }
                DbTarget::Server(conn) => {
                    let (shown, chunks) = to_server(repo, &index, snapshot, dump, conn, opts)?;
                    (shown, chunks, vec![])
                }
            }
        };
        done.push(DbRestored {
            name: dump.name.clone(),
            kind: dump.kind,
            target,
            bytes: dump.size,
            chunks_checked: chunks,
            objects,
            duration_secs: t.elapsed().as_secs_f64(),
        });
    }
    Ok(DbRestoreSummary {
        snapshot: snapshot.to_hex(),
        dry_run: opts.dry_run,
        databases: done,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

fn filter_args(opts: &DbRestoreOptions) -> Vec<String> {
    let mut args = Vec::new();
    for s in &opts.schemas {
        args.push(format!("--schema={s}"));
    }
    for t in &opts.tables {
        args.push(format!("--table={t}"));
    }
    args
}

/// Streams the dump into `pg_restore --list`: proves it parses and lists
/// what the filters select. Touches no database.
fn dry_run(
    repo: &Repository,
    index: &Index,
    snapshot: &Id,
    dump: &DumpSource,
    opts: &DbRestoreOptions,
) -> Result<(u64, Vec<TocEntry>)> {
    if dump.kind == DumpKind::Globals {
        let chunks = stream_dump(repo, index, snapshot, dump, opts.workers, DumpOut::Stream(&mut |_| Ok(())))?;
        return Ok((chunks, vec![]));
    }
    let tools = match &opts.target {
        DbTarget::Server(c) => c.clone(),
        DbTarget::File(_) => PgConnection::new(None, None)?,
    };
    let mut lister = TocLister::start(&tools, &filter_args(opts))?;
    let chunks = stream_dump(
        repo,
        index,
        snapshot,
        dump,
        opts.workers,
        DumpOut::Stream(&mut |data| {
            lister.feed(data);
            Ok(())
        }),
    );
    let chunks = match chunks {
        Ok(c) => c,
        Err(e) => {
            lister.abort();
            return Err(e);
        }
    };
    let toc = lister.finish(&format!("pg_restore --list of the dump of {}", dump.name))?;
    Ok((chunks, toc.entries))
}

fn to_file(
    repo: &Repository,
    index: &Index,
    snapshot: &Id,
    dump: &DumpSource,
    path: &PathBuf,
    workers: usize,
) -> Result<u64> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = AtomicFile::new_in(&dir).map_err(|e| Error::io(&dir, e))?;
    let chunks = stream_dump(repo, index, snapshot, dump, workers, DumpOut::File(tmp.as_file(), path))?;
    // Named only once the checksum matched. Not fsynced, as restored files
    // are not (nor are restic's or borg's): the OS writes it back; `sync`
    // makes it durable at once (docs/OPERATIONS.md).
    tmp.persist(path).map_err(|e| Error::io(path, e))?;
    Ok(chunks)
}

fn to_server(
    repo: &Repository,
    index: &Index,
    snapshot: &Id,
    dump: &DumpSource,
    conn: &PgConnection,
    opts: &DbRestoreOptions,
) -> Result<(String, u64)> {
    if dump.kind == DumpKind::Globals {
        let mut cmd = conn.tool_for_db("psql");
        cmd.args(["-X", "-q", "-f", "-"]);
        let chunks = feed(repo, index, snapshot, dump, cmd, "psql (globals)", opts.workers)?;
        return Ok((conn.display(), chunks));
    }
    // With --all, a database that exists on the target is restored into;
    // one that does not is created from the archive.
    let (target, create) = if opts.all {
        let exists = !conn
            .query(&format!("SELECT 1 FROM pg_database WHERE datname = {}", quote_literal(&dump.name)))?
            .trim()
            .is_empty();
        if exists {
            (conn.with_database(&dump.name), false)
        } else {
            (conn.clone(), true)
        }
    } else {
        (conn.clone(), opts.create)
    };
    if !create {
        // pg_restore --schema restores the objects in a schema, not the
        // schema itself: create it, so a schema restores into an empty database.
        for schema in &opts.schemas {
            target.query(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema)))?;
        }
    }
    let mut cmd = target.tool_for_db("pg_restore");
    cmd.args(filter_args(opts));
    if create {
        cmd.arg("--create");
    }
    if opts.clean {
        cmd.args(["--clean", "--if-exists"]);
    }
    if opts.no_owner {
        cmd.arg("--no-owner");
    }
    let shown = if create { format!("{} (created from {})", dump.name, target.display()) } else { target.display() };
    if opts.jobs > 1 {
        // Parallel restore needs a seekable archive.
        let (tmp, chunks) = dump_to_temp_file(repo, index, snapshot, dump, opts.workers)?;
        cmd.arg(format!("--jobs={}", opts.jobs)).arg(tmp.path_for_others());
        crate::postgres::run_captured(cmd, &format!("pg_restore of {} into {}", dump.name, target.display()))?;
        return Ok((shown, chunks));
    }
    if !create {
        // One transaction: a stream that fails half-way changes nothing.
        cmd.arg("--single-transaction");
    }
    let chunks = feed(
        repo,
        index,
        snapshot,
        dump,
        cmd,
        &format!("pg_restore of {} into {}", dump.name, target.display()),
        opts.workers,
    )?;
    Ok((shown, chunks))
}

/// Streams a dump into a tool's stdin. If the stream fails, the tool is
/// killed before it sees end-of-input, so it cannot commit a partial restore.
fn feed(
    repo: &Repository,
    index: &Index,
    snapshot: &Id,
    dump: &DumpSource,
    mut cmd: std::process::Command,
    what: &str,
    workers: usize,
) -> Result<u64> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::SourceFailed { source_name: what.into(), message: format!("cannot run: {e}") })?;
    let err = StderrCollector::start(&mut child);
    let mut stdin = child.stdin.take();
    let streamed = stream_dump(
        repo,
        index,
        snapshot,
        dump,
        workers,
        DumpOut::Stream(&mut |data| {
            // pg_restore may stop reading once a filtered restore has all it
            // needs: keep checking the stream; its exit status decides.
            if let Some(s) = stdin.as_mut() {
                match s.write_all(data) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => stdin = None,
                    Err(e) => return Err(pipe_error(what, e)),
                }
            }
            Ok(())
        }),
    );
    if streamed.is_err() {
        let _ = child.kill();
    }
    drop(stdin);
    let status = child.wait().map_err(|e| Error::SourceFailed { source_name: what.into(), message: e.to_string() })?;
    let err_text = err.finish();
    match streamed {
        // The tool's own message says more than the broken pipe it caused.
        Err(Error::SourceFailed { .. }) if !status.success() => {
            Err(Error::SourceFailed { source_name: what.into(), message: tail(&err_text, status) })
        }
        Err(e) => Err(e),
        Ok(_) if !status.success() => {
            Err(Error::SourceFailed { source_name: what.into(), message: tail(&err_text, status) })
        }
        Ok(chunks) => Ok(chunks),
    }
}

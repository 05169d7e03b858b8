//! Restore of PostgreSQL dumps: streamed into pg_restore (or psql for the
//! globals), written to a file for a manual pg_restore, or, in a dry run,
//! streamed into `pg_restore --list` to prove the archive parses and to
//! list what the filters would restore, touching no database.
//!
//! Every chunk is authenticated before it reaches pg_restore, and the whole
//! stream's digest is checked against the manifest at its end. A streamed
//! restore into an existing database runs in one transaction, so a stream
//! that fails half-way leaves the database as it was.

use crate::backend::Requests;
use crate::engine::atomic_file::AtomicFile;
use crate::engine::pipeline::BufferPool;
use crate::error::{DumpChoice, Error, Result};
use crate::format::encoding::Id;
use crate::format::manifest::{DumpKind, DumpSource, Manifest};
use crate::format::Index;
use crate::ops::estimate::Estimate;
use crate::ops::stream::{Fetch, Out, Stream};
use crate::pg::archive::{Archive, Scanner};
use crate::pg::select::{select, Selection};
use crate::pg::tool::failed;
use crate::pg::{quote_literal, PgConnection, Running, TocEntry, TocLister};
use crate::repo::{ChunkCheck, Repository};
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
    /// Which database dump of the snapshot; None: the only one.
    pub database: Option<String>,
    /// Every dump: globals first, then each database (created when missing).
    pub all: bool,
    /// The globals dump (roles, tablespaces) alone.
    pub globals: bool,
    /// `--to-file` may replace an existing file.
    pub force: bool,
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
    /// Told each chunk of each dump as it is read (the CLI's progress line).
    pub progress: Option<std::sync::Arc<dyn crate::ops::progress::Progress + Send>>,
}

impl DbRestoreOptions {
    fn fetch(&self) -> Fetch<'_> {
        Fetch::new(self.workers, self.progress.as_deref())
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DbRestored {
    pub name: String,
    pub kind: DumpKind,
    pub target: String,
    pub bytes: u64,
    pub chunks_checked: u64,
    /// The archive entries restored (with --schema/--table, or in a dry
    /// run: what would be).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<TocEntry>,
    /// Rows of the table data restored, as counted in the archive at
    /// backup (None: not counted in this snapshot).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Bytes of table data restored (COPY text sent to the server), as
    /// counted in the archive at backup (None: not counted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_bytes: Option<u64>,
    /// What was not restored and why (a role that already exists, a
    /// foreign key to a table left out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<String>,
    pub duration_secs: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct DbRestoreSummary {
    pub snapshot: String,
    pub dry_run: bool,
    pub databases: Vec<DbRestored>,
    pub duration_secs: f64,
}

/// The dumps a restore or drill works on: `database` names a database
/// dump (never the globals, whatever it is called), `globals` the globals.
pub fn select_dumps<'m>(
    manifest: &'m Manifest,
    database: Option<&str>,
    all: bool,
    globals: bool,
) -> Result<Vec<&'m DumpSource>> {
    let dumps: Vec<&DumpSource> = manifest.dumps().collect();
    if dumps.is_empty() {
        return Err(Error::Dump(DumpChoice::NoDumps));
    }
    if all {
        let mut v = dumps;
        v.sort_by_key(|d| d.kind != DumpKind::Globals);
        return Ok(v);
    }
    let dbs: Vec<&DumpSource> = dumps.iter().copied().filter(|d| d.kind == DumpKind::Database).collect();
    let names = || dbs.iter().map(|d| format!("{:?}", d.name)).collect::<Vec<_>>().join(", ");
    if globals {
        return dumps
            .iter()
            .find(|d| d.kind == DumpKind::Globals)
            .map(|d| vec![*d])
            .ok_or(Error::Dump(DumpChoice::NoGlobals));
    }
    match database {
        Some(name) => dbs
            .iter()
            .find(|d| d.name == name)
            .map(|d| vec![*d])
            .ok_or_else(|| Error::Dump(DumpChoice::NoSuchDatabase { name: name.into(), available: names() })),
        None => match dbs.len() {
            1 => Ok(dbs),
            0 => Err(Error::Dump(DumpChoice::OnlyGlobals)),
            _ => Err(Error::Dump(DumpChoice::Several { available: names() })),
        },
    }
}

/// Reads a dump's archive head from the repository, chunk by chunk, until
/// its table of contents is complete: the names and dependencies a
/// partial restore selects from, straight from the archive.
pub fn read_toc(repo: &Repository, index: &Index, snapshot: &Id, dump: &DumpSource) -> Result<Archive> {
    let object = || format!("dump of {} in snapshot {}", dump.name, snapshot.short());
    let buffers = BufferPool::new(2);
    let mut scanner = Scanner::with_definitions();
    for c in &dump.chunks {
        let data = repo.read_chunk(index, c, ChunkCheck::Content, &buffers)?;
        scanner.feed(&data).map_err(|e| Error::corrupt(object(), format!("not a custom-format archive: {e}")))?;
        buffers.give(data);
        if scanner.toc_complete() {
            return Ok(scanner.archive().clone());
        }
    }
    Err(Error::corrupt(object(), "the archive ends inside its table of contents"))
}

/// The manifest's entries for a selection, and the rows and bytes of its
/// table data (None where the snapshot did not count them).
fn selected_objects(
    dump: &DumpSource,
    archive: &Archive,
    sel: &Selection,
) -> (Vec<TocEntry>, Option<u64>, Option<u64>) {
    let recorded: std::collections::HashMap<u32, &TocEntry> = dump.toc.iter().map(|e| (e.id, e)).collect();
    let objects: Vec<TocEntry> = archive
        .entries
        .iter()
        .filter(|e| sel.ids.contains(&e.id))
        .map(|e| {
            let r = recorded.get(&e.id);
            TocEntry::from_archive(e, r.and_then(|r| r.rows), r.and_then(|r| r.bytes))
        })
        .collect();
    let data: Vec<&TocEntry> = objects.iter().filter(|e| e.desc == "TABLE DATA").collect();
    let rows = data.iter().map(|e| e.rows).sum::<Option<u64>>();
    let bytes = data.iter().map(|e| e.bytes).sum::<Option<u64>>();
    (objects, rows, bytes)
}

fn describe_left_out(archive: &Archive, sel: &Selection) -> Vec<String> {
    archive
        .entries
        .iter()
        .filter(|e| sel.left_out.contains(&e.id))
        .map(|e| {
            format!(
                "{} {} in schema {}: it joins an object that is not restored",
                e.desc,
                e.tag,
                e.namespace.as_deref().unwrap_or("-")
            )
        })
        .collect()
}

/// Writes a pg_restore list file (`-L`) of these dump ids to a scratch file.
pub(crate) fn list_file(ids: &[u32]) -> Result<AtomicFile> {
    let dir = std::env::temp_dir();
    let f = crate::engine::atomic_file::scratch().map_err(|e| Error::io(&dir, e))?;
    let text: String = ids.iter().map(|id| format!("{id};\n")).collect();
    std::io::Write::write_all(&mut f.as_file(), text.as_bytes()).map_err(|e| Error::io(&dir, e))?;
    Ok(f)
}

/// Streams a dump's bytes, authenticated, into `out`, then checks the whole
/// stream against the manifest. Returns chunks read.
pub fn stream_dump(
    repo: &Repository,
    index: &Index,
    snapshot: &Id,
    dump: &DumpSource,
    fetch: Fetch<'_>,
    out: Out<'_>,
) -> Result<u64> {
    let object = format!("dump of {} in snapshot {}", dump.name, snapshot.short());
    let (algo, digest) =
        dump.digest().ok_or_else(|| Error::corrupt(object.clone(), "the manifest gives no valid checksum"))?;
    Stream { object: &object, chunks: &dump.chunks, size: dump.size, algo, digest }.run(
        repo,
        index,
        fetch.workers,
        fetch.progress,
        out,
    )
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
    fetch: Fetch<'_>,
) -> Result<(AtomicFile, u64)> {
    let dir = std::env::temp_dir();
    let tmp = crate::engine::atomic_file::scratch().map_err(|e| Error::io(&dir, e))?;
    // Errors name the directory: the file has no name, and TMPDIR is the setting to change.
    let chunks = stream_dump(repo, index, snapshot, dump, fetch, Out::File(tmp.as_file(), &dir))?;
    Ok((tmp, chunks))
}

fn pipe_error(what: &str, e: std::io::Error) -> Error {
    failed(what, format!("writing to it: {e}"))
}

pub fn restore_databases(repo: &Repository, snapshot: &Id, opts: &DbRestoreOptions) -> Result<DbRestoreSummary> {
    let started = Instant::now();
    let manifest = load_manifest(repo, snapshot)?;
    let dumps = plan(&manifest, opts)?;
    let index = repo.load_index()?;
    check_indexed(&dumps, &index, snapshot)?;
    let filtered = !opts.schemas.is_empty() || !opts.tables.is_empty();
    if let DbTarget::File(path) = &opts.target {
        if dumps.len() != 1 {
            return Err(Error::Dump(DumpChoice::OneForAFile));
        }
        if !opts.force && !opts.dry_run && std::fs::symlink_metadata(path).is_ok() {
            return Err(Error::Target { path: path.clone(), reason: "exists; give --force to replace it".into() });
        }
    }
    let mut done = Vec::new();
    for dump in dumps {
        let t = Instant::now();
        let mut r = DbRestored {
            name: dump.name.clone(),
            kind: dump.kind,
            target: String::new(),
            bytes: dump.size,
            chunks_checked: 0,
            objects: vec![],
            rows: None,
            data_bytes: None,
            skipped: vec![],
            duration_secs: 0.0,
        };
        if opts.dry_run {
            r.target = "(dry run: nothing written)".to_string();
            dry_run(repo, &index, snapshot, dump, opts, &mut r)?;
        } else {
            match &opts.target {
                DbTarget::File(path) => {
                    r.target = path.display().to_string();
                    r.chunks_checked = to_file(repo, &index, snapshot, dump, path, opts.fetch())?;
                }
                DbTarget::Server(conn) => to_server(repo, &index, snapshot, dump, conn, opts, &mut r)?,
            }
        }
        if dump.kind == DumpKind::Database && !filtered {
            let data = || dump.toc.iter().filter(|e| e.desc == "TABLE DATA");
            r.rows = data().map(|e| e.rows).sum();
            r.data_bytes = data().map(|e| e.bytes).sum();
        }
        r.duration_secs = t.elapsed().as_secs_f64();
        done.push(r);
    }
    Ok(DbRestoreSummary {
        snapshot: snapshot.to_hex(),
        dry_run: opts.dry_run,
        databases: done,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

fn load_manifest(repo: &Repository, snapshot: &Id) -> Result<Manifest> {
    let manifest = repo.load_snapshot(snapshot)?;
    manifest.validate().map_err(|(path, reason)| Error::UnsafeEntry { snapshot: snapshot.to_hex(), path, reason })?;
    Ok(manifest)
}

/// The dumps a database restore takes, once its options agree with them.
fn plan<'m>(manifest: &'m Manifest, opts: &DbRestoreOptions) -> Result<Vec<&'m DumpSource>> {
    let dumps = select_dumps(manifest, opts.database.as_deref(), opts.all, opts.globals)?;
    if let DbTarget::File(path) = &opts.target {
        if dumps.len() != 1 {
            return Err(Error::Dump(DumpChoice::OneForAFile));
        }
        if !opts.force && !opts.dry_run && std::fs::symlink_metadata(path).is_ok() {
            return Err(Error::Target { path: path.clone(), reason: "exists; give --force to replace it".into() });
        }
    }
    let filtered = !opts.schemas.is_empty() || !opts.tables.is_empty();
    if filtered && matches!(opts.target, DbTarget::File(_)) && !opts.dry_run {
        // The raw archive is written whole: a filter would be silently ignored.
        return Err(Error::Dump(DumpChoice::FiltersOnAFile));
    }
    if filtered && dumps.iter().any(|d| d.kind != DumpKind::Database) {
        return Err(Error::Dump(DumpChoice::FiltersNeedOneDatabase));
    }
    Ok(dumps)
}

/// Every chunk must be findable before a database is touched.
fn check_indexed(dumps: &[&DumpSource], index: &Index, snapshot: &Id) -> Result<()> {
    for d in dumps {
        if let Some(missing) = d.chunks.iter().find(|c| !index.contains(c)) {
            return Err(Error::corrupt(
                format!("snapshot {snapshot}"),
                format!("chunk {} of the dump of {} is in no pack", missing.short(), d.name),
            ));
        }
    }
    Ok(())
}

/// What `restore_databases` would fetch, planned as it plans: each dump
/// whole, once (a `--schema`/`--table` restore first reads the archive's
/// table of contents, here too: that is planning). Touches no database.
pub fn estimate_databases(repo: &Repository, snapshot: &Id, opts: &DbRestoreOptions) -> Result<Estimate> {
    let manifest = load_manifest(repo, snapshot)?;
    let dumps = plan(&manifest, opts)?;
    let index = repo.load_index()?;
    check_indexed(&dumps, &index, snapshot)?;
    let filtered = !opts.schemas.is_empty() || !opts.tables.is_empty();
    let mut work = Requests::default();
    let mut local_write_bytes = 0;
    for d in &dumps {
        if filtered && matches!(opts.target, DbTarget::Server(_)) && !opts.dry_run {
            read_toc(repo, &index, snapshot, d)?;
        }
        for (_, loc) in d.chunks.iter().filter_map(|c| index.get(c)) {
            work.add_get(loc.length as u64);
        }
        // The archive is written to a file: the one asked for, or a
        // temporary one for a parallel pg_restore.
        if !opts.dry_run && (matches!(opts.target, DbTarget::File(_)) || opts.jobs > 1) {
            local_write_bytes += d.size;
        }
    }
    let names: Vec<&str> = dumps.iter().map(|d| d.name.as_str()).collect();
    let operation = format!("restore of {} from snapshot {}", names.join(", "), snapshot.short());
    Ok(Estimate { local_write_bytes, ..Estimate::new(operation, work) })
}

/// What a `--schema`/`--table` restore selects in a dump's archive;
/// `schema_exists` asks the target. The objects, their rows and what was
/// left out go into the report.
fn select_into(
    dump: &DumpSource,
    archive: &Archive,
    opts: &DbRestoreOptions,
    schema_exists: &dyn Fn(&str) -> bool,
    r: &mut DbRestored,
) -> Result<Selection> {
    let sel = select(&archive.entries, &opts.schemas, &opts.tables, schema_exists)
        .map_err(|e| Error::InvalidOptions(format!("{e} (database {})", dump.name)))?;
    (r.objects, r.rows, r.data_bytes) = selected_objects(dump, archive, &sel);
    r.skipped = describe_left_out(archive, &sel);
    Ok(sel)
}

/// Streams the whole dump through coffer's archive reader (every block
/// checked) and `pg_restore --list` (this pg_restore reads it), and lists
/// what the filters select. Touches no database.
fn dry_run(
    repo: &Repository,
    index: &Index,
    snapshot: &Id,
    dump: &DumpSource,
    opts: &DbRestoreOptions,
    r: &mut DbRestored,
) -> Result<()> {
    if dump.kind == DumpKind::Globals {
        r.chunks_checked = stream_dump(repo, index, snapshot, dump, opts.fetch(), Out::Stream(&mut |_| Ok(())))?;
        return Ok(());
    }
    let filtered = !opts.schemas.is_empty() || !opts.tables.is_empty();
    let tools = match &opts.target {
        DbTarget::Server(c) => c.clone(),
        DbTarget::File(_) => PgConnection::new(None, None)?,
    };
    let mut lister = TocLister::start(&tools, &format!("pg_restore --list of the dump of {}", dump.name))?;
    let mut scanner = Scanner::new();
    let what = format!("dump of {} in snapshot {}", dump.name, snapshot.short());
    let chunks = stream_dump(
        repo,
        index,
        snapshot,
        dump,
        opts.fetch(),
        Out::Stream(&mut |data| {
            lister.feed(data);
            scanner.feed(data).map_err(|e| Error::corrupt(what.clone(), format!("not a custom-format archive: {e}")))
        }),
    );
    let chunks = match chunks {
        Ok(c) => c,
        Err(e) => {
            lister.abort();
            return Err(e);
        }
    };
    lister.finish()?;
    let archive = scanner.finish().map_err(|e| Error::corrupt(what, format!("not a whole archive: {e}")))?;
    r.chunks_checked = chunks;
    if filtered {
        // The schemas are listed as they would be created.
        select_into(dump, &archive, opts, &|_| false, r)?;
    } else {
        r.objects = crate::pg::Toc::of(&archive).entries;
    }
    Ok(())
}

fn to_file(
    repo: &Repository,
    index: &Index,
    snapshot: &Id,
    dump: &DumpSource,
    path: &PathBuf,
    fetch: Fetch<'_>,
) -> Result<u64> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = AtomicFile::new_in(&dir).map_err(|e| Error::io(&dir, e))?;
    let chunks = stream_dump(repo, index, snapshot, dump, fetch, Out::File(tmp.as_file(), path))?;
    // Named only once the checksum matched. Not fsynced, as restored files
    // are not (nor are restic's or borg's): the OS writes it back; `sync`
    // makes it durable at once (docs/OPERATIONS.md).
    tmp.persist_path(path).map_err(|e| Error::io(path, e))?;
    Ok(chunks)
}

fn to_server(
    repo: &Repository,
    index: &Index,
    snapshot: &Id,
    dump: &DumpSource,
    conn: &PgConnection,
    opts: &DbRestoreOptions,
    r: &mut DbRestored,
) -> Result<()> {
    if dump.kind == DumpKind::Globals {
        r.target = conn.display();
        let (chunks, skipped) = restore_globals(repo, index, snapshot, dump, conn, opts.fetch())?;
        r.chunks_checked = chunks;
        r.skipped = skipped;
        return Ok(());
    }
    // With --all, a database that exists on the target is restored into (in
    // one transaction); one that does not is created from the archive.
    let exists = || -> Result<bool> {
        let sql = format!("SELECT 1 FROM pg_database WHERE datname = {}", quote_literal(&dump.name));
        Ok(!conn.query(&sql)?.trim().is_empty())
    };
    let (target, create) = if opts.all {
        if exists()? {
            (conn.with_database(&dump.name), false)
        } else {
            (conn.clone(), true)
        }
    } else {
        (conn.clone(), opts.create)
    };
    // Only a database this restore creates may be dropped when it fails:
    // with --create onto one that exists, pg_restore fails and it stays.
    let ours = create && !exists()?;
    let mut cmd = target.tool_for_db("pg_restore");
    // The list file must outlive pg_restore, which opens it by its /proc path.
    let mut _keep_list = None;
    if !opts.schemas.is_empty() || !opts.tables.is_empty() {
        let existing: Vec<String> =
            if create { vec![] } else { target.query_column("SELECT nspname FROM pg_namespace")? };
        let archive = read_toc(repo, index, snapshot, dump)?;
        let sel = select_into(dump, &archive, opts, &|s| existing.iter().any(|e| e == s), r)?;
        let list = list_file(&sel.ids)?;
        cmd.arg(format!("--use-list={}", list.path_for_others().display()));
        _keep_list = Some(list);
    }
    if create {
        cmd.arg("--create");
    }
    if opts.clean {
        cmd.args(["--clean", "--if-exists"]);
    }
    if opts.no_owner {
        cmd.arg("--no-owner");
    }
    r.target = if create { format!("{} (created from {})", dump.name, target.display()) } else { target.display() };
    let what = format!("pg_restore of {} into {}", dump.name, target.display());
    let watch = crate::pg::LockWatch::start(&target);
    cmd.env("PGAPPNAME", &watch.app);
    let restored = if opts.jobs > 1 {
        // Parallel restore needs a seekable archive.
        dump_to_temp_file(repo, index, snapshot, dump, opts.fetch()).and_then(|(tmp, chunks)| {
            cmd.arg("--exit-on-error").arg(format!("--jobs={}", opts.jobs)).arg(tmp.path_for_others());
            target.run(cmd, &what).map(|_| chunks)
        })
    } else {
        if !create {
            // One transaction: a stream that fails half-way changes nothing.
            cmd.arg("--single-transaction");
        } else {
            cmd.arg("--exit-on-error");
        }
        feed(repo, index, snapshot, dump, &target, cmd, &what, opts.fetch())
    };
    match watch.finish(restored) {
        Ok(chunks) => {
            r.chunks_checked = chunks;
            Ok(())
        }
        Err(e) if ours => {
            // A database this restore created and could not fill is dropped,
            // so that a retry starts from scratch instead of restoring into half.
            let dropped =
                conn.query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", crate::pg::quote_ident(&dump.name)));
            let (object, cause) = match e {
                Error::SourceFailed { source_name, message } => (source_name, message),
                other => (what, other.to_string()),
            };
            let message = match dropped {
                Ok(_) => format!("{cause}; the database it created was dropped again"),
                Err(d) => format!("{cause}; and the half-restored database could not be dropped: {d}"),
            };
            Err(failed(object, message))
        }
        Err(e) => Err(e),
    }
}

/// The globals (plain SQL from pg_dumpall) through psql, each error
/// reported: a role or tablespace that already exists is skipped and
/// listed; any other error fails the restore (after psql ran to its end,
/// so every one is named).
fn restore_globals(
    repo: &Repository,
    index: &Index,
    snapshot: &Id,
    dump: &DumpSource,
    conn: &PgConnection,
    fetch: Fetch<'_>,
) -> Result<(u64, Vec<String>)> {
    let mut cmd = conn.tool_for_db("psql");
    // VERBOSITY=verbose puts each error's SQLSTATE in its message, whatever the server's language.
    cmd.args(["-X", "-q", "-v", "VERBOSITY=verbose", "-f", "-"]).env("LC_MESSAGES", "C");
    let what = format!("psql (globals) into {}", conn.display());
    let (chunks, stderr) = feed_collecting(repo, index, snapshot, dump, conn, cmd, &what, fetch)?;
    let (mut skipped, mut failed) = (Vec::new(), Vec::new());
    for line in stderr.lines() {
        let Some((_, msg)) = line.split_once("ERROR:") else { continue };
        let msg = msg.trim();
        let (code, text) = msg.split_once(": ").unwrap_or(("", msg));
        // 42710 duplicate_object, 42P04 duplicate_database: "already exists".
        if matches!(code, "42710" | "42P04") {
            skipped.push(text.to_string());
        } else {
            failed.push(format!("{code} {text}").trim().to_string());
        }
    }
    if !failed.is_empty() {
        return Err(Error::SourceFailed {
            source_name: what,
            message: format!(
                "{} statement{} failed: {}",
                failed.len(),
                if failed.len() == 1 { "" } else { "s" },
                failed.join("; ")
            ),
        });
    }
    Ok((chunks, skipped))
}

/// Streams a dump into a tool's stdin. If the stream fails, the tool is
/// killed before it sees end-of-input, so it cannot commit a partial restore.
#[allow(clippy::too_many_arguments)]
fn feed(
    repo: &Repository,
    index: &Index,
    snapshot: &Id,
    dump: &DumpSource,
    conn: &PgConnection,
    cmd: std::process::Command,
    what: &str,
    fetch: Fetch<'_>,
) -> Result<u64> {
    feed_collecting(repo, index, snapshot, dump, conn, cmd, what, fetch).map(|(chunks, _)| chunks)
}

/// `feed`, returning the tool's stderr as well when it succeeded.
#[allow(clippy::too_many_arguments)]
fn feed_collecting(
    repo: &Repository,
    index: &Index,
    snapshot: &Id,
    dump: &DumpSource,
    conn: &PgConnection,
    mut cmd: std::process::Command,
    what: &str,
    fetch: Fetch<'_>,
) -> Result<(u64, String)> {
    cmd.stdin(Stdio::piped()).stdout(Stdio::null());
    let mut tool = Running::spawn(conn, cmd, what)?;
    let mut stdin = tool.take_stdin();
    let streamed = stream_dump(
        repo,
        index,
        snapshot,
        dump,
        fetch,
        Out::Stream(&mut |data| {
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
        tool.kill();
    }
    drop(stdin);
    let exit = tool.wait()?;
    match streamed {
        // The tool's own message says more than the broken pipe it caused.
        Err(Error::SourceFailed { .. }) if !exit.success() => Err(failed(what, exit.summary())),
        Err(e) => Err(e),
        Ok(chunks) => Ok((chunks, exit.check(what)?)),
    }
}

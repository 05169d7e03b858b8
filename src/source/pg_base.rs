//! PostgreSQL base backup source: streams `pg_basebackup -Ft -D - -X none`
//! (a tar of the data directory on its stdout) and emits its members as the
//! entries of a tree, `pg-base/<stanza>`, so unchanged relation files and
//! unchanged parts of changed ones deduplicate night to night.
//!
//! Facts the restore needs are read as the tar goes by: the start from
//! `backup_label` (its first member), the system identifier from
//! `global/pg_control`, and the WAL range from the `backup_manifest`
//! pg_basebackup appends last. With `-X none` the server finishes a backup
//! only once its WAL is archived; it waits without bound when archiving
//! fails, so coffer bounds that wait and fails the backup, naming why.

use super::SourceItem;
use crate::crypto::{HashAlgo, HashingReader};
use crate::engine::chunker::{Chunker, ChunkerParams};
use crate::engine::pipeline::BufferPool;
use crate::error::{Error, Result};
use crate::format::encoding::RawPath;
use crate::format::manifest::{Entry, EntryKind, PgBase};
use crate::pg::base::{manifest_wal_ranges, BackupLabel, Lsn};
use crate::pg::tool::failed;
use crate::pg::PgConnection;
use std::io::{BufRead, Read};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The cluster a base backup is taken of, asked before it starts.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub system_identifier: u64,
    pub wal_segment_size: u32,
}

/// IDENTIFY_SYSTEM and the WAL segment size, over a replication connection:
/// the connection is proven, and the stanza known, before anything is read.
pub fn identify(conn: &PgConnection) -> Result<Cluster> {
    let repl = conn.replication();
    let what = format!("replication connection to {}", conn.display());
    let ident = repl.query("IDENTIFY_SYSTEM")?;
    let fields: Vec<&str> = ident.trim().split('|').collect();
    let bad = |why: String| failed(&what, why);
    let system_identifier = fields
        .first()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad(format!("IDENTIFY_SYSTEM answered {:?}", ident.trim())))?;
    let size = repl.query("SHOW wal_segment_size")?;
    let wal_segment_size = parse_size(size.trim())
        .filter(|n| n.is_power_of_two())
        .ok_or_else(|| bad(format!("wal_segment_size is {:?}", size.trim())))?;
    Ok(Cluster { system_identifier, wal_segment_size })
}

/// `16MB`, `1GB`, `512kB` as SHOW prints them.
fn parse_size(s: &str) -> Option<u32> {
    let digits = s.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let n: u64 = digits.parse().ok()?;
    let unit = match &s[digits.len()..] {
        "" | "B" => 1,
        "kB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        _ => return None,
    };
    u32::try_from(n * unit).ok()
}

pub struct BaseOptions<'a> {
    pub root: RawPath,
    pub stanza: &'a str,
    pub cluster: &'a Cluster,
    /// How long the server may wait for its WAL to be archived at the end.
    pub archive_wait: Duration,
    pub chunker: ChunkerParams,
    pub algo: HashAlgo,
    pub on_bytes: &'a (dyn Fn(u64) + Sync),
    pub buffers: &'a BufferPool,
}

/// What the tool's stderr told, as it went.
#[derive(Default)]
struct Told {
    text: String,
    /// When the server said it waits for its WAL to be archived.
    waiting_since: Option<Instant>,
}

/// Takes the base backup and emits it: `Begin`, the root folder and every
/// member, then `PgBaseEnd`. An error leaves no source (the backup fails).
pub fn take(conn: &PgConnection, opts: &BaseOptions<'_>, emit: &mut dyn FnMut(SourceItem) -> Result<()>) -> Result<()> {
    let started = Instant::now();
    let start_time = chrono::Utc::now();
    let what = format!("pg_basebackup of {}", conn.display());
    let mut cmd = conn.tool_for_db("pg_basebackup");
    // -X none: the WAL comes from the archive (and the server waits until
    // it is there); -c fast: start now, not at the next checkpoint.
    cmd.args(["-D", "-", "-Ft", "-X", "none", "-c", "fast", "--label", "coffer base backup"]);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| conn.cannot_run(cmd.get_program(), e))?;
    let pid = child.id();
    let told = Arc::new(Mutex::new(Told::default()));
    let stderr_thread = child.stderr.take().map(|err| {
        let told = told.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(err).lines().map_while(std::io::Result::ok) {
                let Ok(mut t) = told.lock() else { return };
                if line.contains("waiting for required WAL segments to be archived") {
                    t.waiting_since.get_or_insert_with(Instant::now);
                }
                if t.text.len() < 1 << 20 {
                    t.text.push_str(&line);
                    t.text.push('\n');
                }
            }
        })
    });
    // The server's wait for archiving, bounded: pg_basebackup is stopped.
    let done = Arc::new(AtomicBool::new(false));
    let gave_up = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (told, done, gave_up, limit) = (told.clone(), done.clone(), gave_up.clone(), opts.archive_wait);
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let since = told.lock().ok().and_then(|t| t.waiting_since);
                if since.is_some_and(|s| s.elapsed() > limit) {
                    gave_up.store(true, Ordering::Relaxed);
                    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                        let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
                    }
                    return;
                }
            }
        })
    };
    let stdout = child.stdout.take().ok_or_else(|| Error::Internal(format!("{what}: stdout is not piped")))?;
    let _ = rustix::pipe::fcntl_setpipe_size(&stdout, 1 << 20);

    let mut reader = Members::new(opts, emit);
    let read = reader.read_tar(stdout);
    if read.is_err() {
        let _ = child.kill();
    }
    let status = child.wait();
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    if let Some(h) = stderr_thread {
        let _ = h.join();
    }
    let told = std::mem::take(&mut *told.lock().map_err(|_| Error::Internal("lock poisoned".into()))?);
    if gave_up.load(Ordering::Relaxed) {
        return Err(failed(
            what,
            format!(
                "the server waited more than {} for the base backup's WAL to be archived: its archive_command \
                 is failing (see pg_stat_archiver and the server's log); no snapshot was written",
                humantime::format_duration(opts.archive_wait)
            ),
        ));
    }
    let status = status.map_err(|e| failed(&what, format!("waiting for it: {e}")))?;
    if !status.success() {
        return Err(failed(what, crate::engine::child::tail(&told.text, status)));
    }
    read.map_err(|e| match e {
        Error::InvalidOptions(m) => failed(&what, m),
        other => other,
    })?;
    let Members { label, system_identifier, version, manifest_tail, emit, .. } = reader;
    let label = label.ok_or_else(|| failed(&what, "its tar holds no backup_label"))?;
    let sysid = system_identifier.ok_or_else(|| failed(&what, "its tar holds no global/pg_control"))?;
    if sysid != opts.cluster.system_identifier {
        return Err(failed(
            what,
            format!(
                "the backup is of the cluster with system identifier {sysid}, not {} as asked before it began",
                opts.cluster.system_identifier
            ),
        ));
    }
    let ranges = manifest_wal_ranges(&manifest_tail).map_err(|e| failed(&what, e.to_string()))?;
    let last = ranges.last().ok_or_else(|| failed(&what, "its backup_manifest has no WAL range"))?;
    let stop = Lsn::parse(&last.end).ok_or_else(|| failed(&what, "its backup_manifest has an unreadable WAL range"))?;
    let seg = opts.cluster.wal_segment_size;
    // The WAL up to (not including) the stop position: a stop on a segment
    // boundary needs nothing of the next segment.
    let stop_wal = Lsn(stop.0.saturating_sub(1).max(label.start_lsn.0)).segment(last.timeline, seg);
    emit(SourceItem::PgBaseEnd(Box::new(PgBase {
        server: conn.display(),
        server_version: version.unwrap_or_default(),
        system_identifier: sysid.to_string(),
        stanza: opts.stanza.to_string(),
        timeline: last.timeline,
        start_lsn: label.start_lsn.to_string(),
        stop_lsn: stop.to_string(),
        start_wal: label.start_wal.clone(),
        stop_wal,
        wal_segment_size: seg,
        start_time,
        stop_time: chrono::Utc::now(),
        label: label.label,
        duration_secs: started.elapsed().as_secs_f64(),
    })))
}

/// Reads the tar's members into entries under the root.
struct Members<'a, 'e> {
    opts: &'a BaseOptions<'a>,
    emit: &'e mut dyn FnMut(SourceItem) -> Result<()>,
    label: Option<BackupLabel>,
    system_identifier: Option<u64>,
    version: Option<String>,
    /// The last 64 KiB of `backup_manifest`: its WAL range is near its end.
    manifest_tail: Vec<u8>,
}

const TAIL: usize = 64 << 10;

impl<'a, 'e> Members<'a, 'e> {
    fn new(opts: &'a BaseOptions<'a>, emit: &'e mut dyn FnMut(SourceItem) -> Result<()>) -> Self {
        Members { opts, emit, label: None, system_identifier: None, version: None, manifest_tail: Vec::new() }
    }

    fn read_tar(&mut self, stdout: impl Read) -> Result<()> {
        let bad = |why: String| Error::InvalidOptions(format!("its output is not a whole tar: {why}"));
        (self.emit)(SourceItem::Begin(self.opts.root.clone()))?;
        (self.emit)(SourceItem::Entry(member_entry(self.opts.root.clone(), EntryKind::Dir, 0o700, 0, 0, 0)))?;
        let mut archive = tar::Archive::new(stdout);
        let mut members = archive.entries().map_err(|e| bad(e.to_string()))?;
        for member in members.by_ref() {
            let mut member = member.map_err(|e| bad(e.to_string()))?;
            let name = member.path_bytes().into_owned();
            let rel = relative(&name)
                .ok_or_else(|| bad(format!("a member is named {:?}", String::from_utf8_lossy(&name))))?;
            let header = member.header();
            let mode = header.mode().map_err(|e| bad(e.to_string()))? & 0o7777;
            let uid = header.uid().map_err(|e| bad(e.to_string()))? as u32;
            let gid = header.gid().map_err(|e| bad(e.to_string()))? as u32;
            let mtime = header.mtime().map_err(|e| bad(e.to_string()))? as i64;
            let mut path = self.opts.root.0.clone();
            path.push(b'/');
            path.extend_from_slice(&rel);
            let path = RawPath(path);
            let entry = |kind| member_entry(path, kind, mode, uid, gid, mtime);
            match header.entry_type() {
                tar::EntryType::Directory => (self.emit)(SourceItem::Entry(entry(EntryKind::Dir)))?,
                tar::EntryType::Symlink => {
                    let target = member.link_name_bytes().ok_or_else(|| bad("a symlink without a target".into()))?;
                    let e = Entry { target: Some(RawPath(target.into_owned())), ..entry(EntryKind::Symlink) };
                    (self.emit)(SourceItem::Entry(e))?
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let e = Entry { size: member.size(), ..entry(EntryKind::File) };
                    self.file(&rel, e, &mut member)?
                }
                other => return Err(bad(format!("member {:?} is of type {other:?}", String::from_utf8_lossy(&rel)))),
            }
        }
        // Whatever follows the end-of-archive blocks (nothing, from
        // pg_basebackup) is read so the tool is never left blocked.
        let mut rest = archive.into_inner();
        std::io::copy(&mut rest, &mut std::io::sink()).map_err(|e| bad(e.to_string()))?;
        Ok(())
    }

    /// One file: its chunks, and what coffer reads of the few it knows.
    fn file(&mut self, rel: &[u8], entry: Entry, member: &mut impl Read) -> Result<()> {
        let opts = self.opts;
        (self.emit)(SourceItem::FileStart(entry))?;
        let watched = matches!(rel, b"backup_label" | b"global/pg_control" | b"PG_VERSION" | b"backup_manifest");
        let mut seen = Vec::new();
        let mut reader = HashingReader::new(member, opts.algo);
        let emit = &mut self.emit;
        Chunker::new(opts.chunker).split(
            &mut reader,
            |chunk| {
                if watched {
                    seen.extend_from_slice(chunk);
                    if rel == b"backup_manifest" && seen.len() > 2 * TAIL {
                        seen.drain(..seen.len() - TAIL);
                    }
                }
                (opts.on_bytes)(chunk.len() as u64);
                emit(SourceItem::Chunk(opts.buffers.copy_of(chunk)))
            },
            |e| Error::InvalidOptions(format!("its output is not a whole tar: {e}")),
        )?;
        match rel {
            b"backup_label" => self.label = Some(BackupLabel::parse(&String::from_utf8_lossy(&seen))?),
            b"global/pg_control" => {
                self.system_identifier = seen.get(..8).and_then(|b| b.try_into().ok()).map(u64::from_le_bytes)
            }
            b"PG_VERSION" => self.version = Some(String::from_utf8_lossy(&seen).trim().to_string()),
            b"backup_manifest" => self.manifest_tail = seen,
            _ => {}
        }
        (self.emit)(SourceItem::FileEnd {
            algo: opts.algo,
            digest: reader.hasher.finalize(),
            size: reader.bytes,
            changed: false,
        })
    }
}

fn member_entry(path: RawPath, kind: EntryKind, mode: u32, uid: u32, gid: u32, mtime: i64) -> Entry {
    Entry {
        path,
        kind,
        mode,
        uid,
        gid,
        mtime_ns: mtime.saturating_mul(1_000_000_000),
        ctime_ns: 0,
        inode: 0,
        size: 0,
        target: None,
        chunks: Vec::new(),
        sha256: None,
        blake3: None,
        changed: false,
        sparse: false,
        hardlink: None,
        rdev: 0,
        nlink: 1,
    }
}

/// A member's name as a relative path without `.`, `..` or empty parts
/// (tar writes folders with a trailing `/`); None if it is not one.
fn relative(name: &[u8]) -> Option<Vec<u8>> {
    let name = name.strip_prefix(b"./").unwrap_or(name);
    let name = name.strip_suffix(b"/").unwrap_or(name);
    let ok = !name.is_empty()
        && !name.contains(&0)
        && name.split(|&b| b == b'/').all(|c| !c.is_empty() && c != b"." && c != b"..");
    ok.then(|| name.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_member_names_are_read_strictly() {
        assert_eq!(parse_size("16MB"), Some(16 << 20));
        assert_eq!(parse_size("1GB"), Some(1 << 30));
        assert_eq!(parse_size("512kB"), Some(512 << 10));
        assert_eq!(parse_size("16 MB"), None);
        assert_eq!(relative(b"base/1/1234"), Some(b"base/1/1234".to_vec()));
        assert_eq!(relative(b"./pg_wal/"), Some(b"pg_wal".to_vec()));
        for bad in [&b""[..], b"/", b"../etc", b"a/../b", b"a//b", b"./"] {
            assert_eq!(relative(bad), None, "{bad:?}");
        }
    }
}

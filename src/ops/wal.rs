//! WAL archiving: `wal-push` is PostgreSQL's archive_command, `wal-fetch`
//! its restore_command. Each WAL file is one sealed object under
//! `wal/<stanza>/<name>` (docs/FORMAT.md §8b): no chunking, no index, so a
//! push costs a handful of requests and no index load, and a file is
//! either wholly stored or absent.

use crate::backend::{BackendError, Kind};
use crate::crypto::Role;
use crate::error::{Error, Result};
use crate::format::codec;
use crate::pg::base::{segment_name, segment_number};
use crate::pg::wal::{self, WalFile};
use crate::repo::{backend_error, Repository};
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// PostgreSQL's largest WAL segment (initdb --wal-segsize 1024); nothing
/// it archives is larger, so nothing larger is read into memory.
const MAX_WAL_FILE: u64 = 1 << 30;

#[derive(Debug, Clone, Default)]
pub struct WalOptions {
    /// The cluster's folder in the archive; default its system identifier.
    pub stanza: Option<String>,
    /// Where `global/pg_control` is (PostgreSQL runs archive_command and
    /// restore_command in the data directory): the cluster's identity for
    /// files that do not carry it (.history, .backup) and for wal-fetch.
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize)]
pub struct WalPushSummary {
    pub name: String,
    pub stanza: String,
    pub bytes: u64,
    pub stored_bytes: u64,
    /// The archive already held this file with these very bytes (a retry).
    pub already_archived: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct WalFetchSummary {
    pub name: String,
    pub stanza: String,
    pub bytes: u64,
}

/// `wal/<stanza>/cluster`: whose WAL the stanza holds.
#[derive(Debug, Serialize, Deserialize)]
struct ClusterRecord {
    /// Decimal (a u64 is beyond what JSON readers keep exact).
    system_identifier: String,
    created: chrono::DateTime<chrono::Utc>,
    host: String,
    /// Bytes per segment, from the first segment pushed (absent when the
    /// first file was a .history or .backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wal_segment_size: Option<u32>,
}

pub fn check_stanza(s: &str) -> Result<()> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidOptions(format!(
            "stanza {s:?}: 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'"
        )))
    }
}

/// The id bound into a WAL object's associated data: its stanza and name,
/// so no object can be served for another file or another cluster's.
fn object_id(object: &str) -> [u8; 32] {
    crate::crypto::sha256(format!("coffer wal {object}").as_bytes())
}

struct Stanza {
    name: String,
    /// The cluster the WAL at hand comes from, where it is known.
    system_id: Option<u64>,
}

fn stanza_for(opts: &WalOptions, system_id: Option<u64>) -> Result<Stanza> {
    let system_id = match system_id {
        Some(id) => Some(id),
        None => wal::data_dir_system_id(&opts.data_dir)?,
    };
    let name = match (&opts.stanza, system_id) {
        (Some(s), _) => s.clone(),
        (None, Some(id)) => id.to_string(),
        (None, None) => {
            return Err(Error::InvalidOptions(format!(
                "no stanza: give --stanza, or run in the data directory ({} has no global/pg_control)",
                opts.data_dir.display()
            )))
        }
    };
    check_stanza(&name)?;
    Ok(Stanza { name, system_id })
}

/// Checks that the stanza holds this cluster's WAL; on the first push,
/// records whose it is.
fn check_cluster(repo: &Repository, stanza: &Stanza, record_if_new: bool, seg_size: Option<u32>) -> Result<()> {
    let Some(mine) = stanza.system_id else { return Ok(()) };
    let object = format!("{}/cluster", stanza.name);
    let record = if repo.is_write_only() {
        // It cannot open the record: its tag says whose cluster it is.
        match stored_tag(repo, &object)? {
            Some(t) if t == cluster_tag(repo, &mine.to_string()) => return Ok(()),
            Some(_) => {
                return Err(Error::Refused(format!(
                    "stanza {} holds the WAL of another cluster, not this one's ({mine}): give each cluster its own --stanza",
                    stanza.name
                )))
            }
            None => None,
        }
    } else {
        read_small(repo, &object)?
    };
    match record {
        Some(bytes) => {
            let rec: ClusterRecord = serde_json::from_slice(&bytes)
                .map_err(|e| Error::corrupt(format!("WAL stanza record wal/{object}"), e.to_string()))?;
            if rec.system_identifier != mine.to_string() {
                return Err(Error::Refused(format!(
                    "stanza {} holds the WAL of the cluster with system identifier {}, not this one's ({mine}): give each cluster its own --stanza",
                    stanza.name, rec.system_identifier
                )));
            }
        }
        None if record_if_new => {
            let rec = ClusterRecord {
                system_identifier: mine.to_string(),
                created: chrono::Utc::now(),
                host: crate::hostname(),
                wal_segment_size: seg_size,
            };
            let json = serde_json::to_vec(&rec).map_err(|e| Error::Internal(e.to_string()))?;
            let tag = tagged(repo).then(|| cluster_tag(repo, &rec.system_identifier));
            put_sealed(repo, &object, &codec::encode(&json, 3), tag)?;
        }
        None => {}
    }
    Ok(())
}

/// Format 3: a WAL object starts with a 32-byte tag, the chunk-id key's
/// keyed BLAKE3 of the file (of "coffer wal cluster " and the system
/// identifier, for a stanza's record), bound into the object's associated
/// data. A write-only key, which opens no WAL, tells "the same file again"
/// and "another cluster's stanza" by it.
const TAG_LEN: usize = 32;
type Tag = [u8; TAG_LEN];

fn tagged(repo: &Repository) -> bool {
    repo.keys().has_key_blocks()
}

fn cluster_tag(repo: &Repository, system_identifier: &str) -> Tag {
    repo.keys().chunk_id(format!("coffer wal cluster {system_identifier}").as_bytes())
}

/// The tag of the file at `path`, read once more (a segment is in the page cache).
fn file_tag(repo: &Repository, path: &Path) -> Result<Tag> {
    let mut h = repo.keys().tag_hasher();
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    std::io::copy(&mut f, &mut h).map_err(|e| Error::io(path, e))?;
    Ok(*h.finalize().as_bytes())
}

/// A tag computed from what is written through it, where there is one to
/// compute (format 3): older formats' readers pay no hashing.
struct TagIf(Option<blake3::Hasher>);

impl TagIf {
    fn finish(&self) -> Option<Tag> {
        self.0.as_ref().map(|h| *h.finalize().as_bytes())
    }
}

impl Write for TagIf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Some(h) = &mut self.0 {
            h.update(buf);
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The associated id of `object` carrying `tag`.
fn bound_id(object: &str, tag: Option<&Tag>) -> Vec<u8> {
    let mut id = object_id(object).to_vec();
    id.extend_from_slice(tag.map_or(&[][..], |t| &t[..]));
    id
}

/// Seals and stores `payload` as `wal/<object>`; `tag` (format 3 only)
/// goes in front.
fn put_sealed(repo: &Repository, object: &str, payload: &[u8], tag: Option<Tag>) -> Result<u64> {
    if tagged(repo) != tag.is_some() {
        return Err(Error::Internal(format!("WAL object wal/{object}: a tag is format 3's, and only its")));
    }
    let sealed = repo.keys().seal(Role::Wal, &bound_id(object, tag.as_ref()), payload);
    let sealed = match tag {
        Some(t) => [&t[..], &sealed].concat(),
        None => sealed,
    };
    repo.backend().put(Kind::Wal, object, &sealed).map_err(backend_error)?;
    Ok(sealed.len() as u64)
}

/// The payload of `wal/<object>`, authenticated (still compressed); None if absent.
fn get_payload(repo: &Repository, object: &str) -> Result<Option<Vec<u8>>> {
    Ok(get_tagged(repo, object)?.map(|(payload, _)| payload))
}

/// `get_payload`, with the object's tag (format 3).
fn get_tagged(repo: &Repository, object: &str) -> Result<Option<(Vec<u8>, Option<Tag>)>> {
    let what = || format!("WAL object wal/{object}");
    let sealed = match repo.backend().get(Kind::Wal, object) {
        Ok(b) => b,
        Err(BackendError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(backend_error(e)),
    };
    let (tag, sealed) = if tagged(repo) {
        let (t, rest) = sealed.split_first_chunk::<TAG_LEN>().ok_or_else(|| Error::corrupt(what(), "too short"))?;
        (Some(*t), rest)
    } else {
        (None, &sealed[..])
    };
    let payload = repo
        .keys()
        .open(Role::Wal, &bound_id(object, tag.as_ref()), sealed)
        .map_err(|e| repo.open_error(&what(), e))?;
    Ok(Some((payload, tag)))
}

/// The stored tag of `wal/<object>` (format 3), without opening it: what a
/// write-only key compares. None if absent.
fn stored_tag(repo: &Repository, object: &str) -> Result<Option<Tag>> {
    let mut buf = Vec::with_capacity(TAG_LEN);
    match repo.backend().get_range_into(Kind::Wal, object, 0, TAG_LEN as u64, &mut buf) {
        Ok(()) => {}
        Err(BackendError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(backend_error(e)),
    }
    let tag: Tag =
        buf.as_slice().try_into().map_err(|_| Error::corrupt(format!("WAL object wal/{object}"), "too short"))?;
    Ok(Some(tag))
}

/// A small WAL object's bytes (a stanza record, a history file), or None.
pub fn read_small(repo: &Repository, object: &str) -> Result<Option<Vec<u8>>> {
    let Some(payload) = get_payload(repo, object)? else { return Ok(None) };
    let body = codec::decode(&payload, 1 << 20)
        .map_err(|e| Error::corrupt(format!("WAL object wal/{object}"), e.to_string()))?;
    Ok(Some(body))
}

/// Passes bytes on to `inner`, keeping the first `HEADER_LEN` of them (a
/// segment's page header) and counting all.
struct Head<W> {
    inner: W,
    head: Vec<u8>,
    len: u64,
}

impl<W: Write> Head<W> {
    fn new(inner: W) -> Self {
        Head { inner, head: Vec::with_capacity(wal::HEADER_LEN), len: 0 }
    }
}

impl<W: Write> Write for Head<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        let room = wal::HEADER_LEN.saturating_sub(self.head.len()).min(n);
        self.head.extend_from_slice(&buf[..room]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Compares what is written with a file's bytes, in order.
struct SameAs {
    file: std::io::BufReader<std::fs::File>,
    same: bool,
}

impl Write for SameAs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut mine = vec![0u8; buf.len()];
        if self.same && (self.file.read_exact(&mut mine).is_err() || mine != buf) {
            self.same = false;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decodes `wal/<object>`'s payload into `out`, checking a segment's header
/// against its name, its length and the stanza's cluster: the system
/// identifier it carries and the bytes written.
/// `dest` names where `out` writes, for its errors.
fn decode_checked(
    payload: &[u8],
    object: &str,
    system_id: Option<&str>,
    out: impl Write,
    dest: Option<&Path>,
) -> Result<u64> {
    let name = object.rsplit('/').next().unwrap_or(object);
    let corrupt = |why: String| Error::corrupt(format!("WAL object wal/{object}"), why);
    let mut head = Head::new(out);
    match codec::decode_stream(payload, MAX_WAL_FILE, &mut head) {
        Ok(_) => {}
        Err(codec::CodecError::Write(e)) => {
            return Err(match dest {
                Some(d) => Error::io(d, e),
                None => Error::Internal(format!("comparing WAL file {name}: {e}")),
            })
        }
        Err(e) => return Err(corrupt(e.to_string())),
    }
    if matches!(WalFile::of(name), Some(WalFile::Segment | WalFile::Partial)) {
        let (id, _) = wal::segment_header(&head.head, head.len, name).map_err(|e| corrupt(e.to_string()))?;
        if system_id.is_some_and(|mine| mine != id.to_string()) {
            return Err(corrupt(format!("it is from the cluster {id}, not the stanza's {}", system_id.unwrap_or("-"))));
        }
    }
    Ok(head.len)
}

/// Stores the WAL file at `path` under its name. Ok only once it is durably
/// stored; the same name with the same bytes again is Ok (PostgreSQL retries
/// after a crash), with other bytes it is refused.
pub fn wal_push(repo: &Repository, path: &Path, opts: &WalOptions) -> Result<WalPushSummary> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Error::InvalidOptions(format!("{}: not a WAL file name", path.display())))?
        .to_string();
    let kind = WalFile::check(&name)?;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_file() || meta.len() > MAX_WAL_FILE {
        return Err(Error::InvalidOptions(format!(
            "{}: not a WAL file (a regular file of at most 1 GiB)",
            path.display()
        )));
    }
    // The file is read twice (its header, then streamed through zstd), and
    // held only compressed: memory is the compressed segment, not the segment.
    let len = meta.len();
    let open = || std::fs::File::open(path).map_err(|e| Error::io(path, e));
    let header = match kind {
        WalFile::Segment | WalFile::Partial => {
            let mut head = vec![0u8; wal::HEADER_LEN.min(len as usize)];
            open()?.read_exact(&mut head).map_err(|e| Error::io(path, e))?;
            Some(wal::segment_header(&head, len, &name)?)
        }
        WalFile::History | WalFile::BackupLabel => None,
    };
    let stanza = stanza_for(opts, header.map(|h| h.0))?;
    check_cluster(repo, &stanza, true, header.map(|h| h.1))?;
    let tag = if tagged(repo) { Some(file_tag(repo, path)?) } else { None };
    let object = format!("{}/{name}", stanza.name);
    let summary = |stored_bytes, already_archived| WalPushSummary {
        name: name.clone(),
        stanza: stanza.name.clone(),
        bytes: len,
        stored_bytes,
        already_archived,
    };
    let same = if repo.is_write_only() {
        // It cannot open what is stored: the tags tell.
        stored_tag(repo, &object)?.map(|t| Some(t) == tag)
    } else if let Some(stored) = get_payload(repo, &object)? {
        let mut cmp = SameAs { file: std::io::BufReader::new(open()?), same: true };
        let n = decode_checked(&stored, &object, None, &mut cmp, None)?;
        Some(cmp.same && n == len)
    } else {
        None
    };
    match same {
        Some(true) => return Ok(summary(0, true)),
        Some(false) => {
            return Err(Error::Refused(format!(
            "WAL file {name} is already archived in stanza {} with other bytes: is another cluster archiving into it?",
            stanza.name
        )))
        }
        None => {}
    }
    let payload = codec::encode_stream(&mut open()?, len, 3).map_err(|e| Error::io(path, e))?;
    let stored = put_sealed(repo, &object, &payload, tag)?;
    Ok(summary(stored, false))
}

/// Writes the archived WAL file `name` to `dest`, atomically. Absent from
/// the archive: `Error::NotFound` (how recovery learns it reached the end).
pub fn wal_fetch(repo: &Repository, name: &str, dest: &Path, opts: &WalOptions) -> Result<WalFetchSummary> {
    WalFile::check(name)?;
    let stanza = stanza_for(opts, None)?;
    check_cluster(repo, &stanza, false, None)?;
    let object = format!("{}/{name}", stanza.name);
    let payload = get_payload(repo, &object)?
        .ok_or_else(|| Error::NotFound { object: format!("WAL file {name} in stanza {}", stanza.name) })?;
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Decoded into an unnamed file, named only once whole and checked.
    let file = crate::engine::atomic_file::AtomicFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    let mine = stanza.system_id.map(|id| id.to_string());
    let mut out = std::io::BufWriter::new(file.as_file());
    let bytes = decode_checked(&payload, &object, mine.as_deref(), &mut out, Some(dest))?;
    out.flush().map_err(|e| Error::io(dest, e))?;
    drop(out);
    file.as_file().sync_all().map_err(|e| Error::io(dest, e))?;
    file.persist_path(dest).map_err(|e| Error::io(dest, e))?;
    crate::engine::atomic_file::open_dir(dir)
        .and_then(|d| rustix::fs::fsync(&d).map_err(Into::into))
        .map_err(|e| Error::io(dir, e))?;
    Ok(WalFetchSummary { name: name.to_string(), stanza: stanza.name, bytes })
}

/// One stanza of the archive, as verify sees it.
#[derive(Debug, Clone, Serialize)]
pub struct StanzaReport {
    pub stanza: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_identifier: Option<String>,
    pub timelines: Vec<TimelineReport>,
    /// The WAL file archived last, and how long ago: the RPO figure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_age_secs: Option<f64>,
    /// Each missing stretch of segments, naming the first missing one.
    pub gaps: Vec<String>,
    /// Every WAL object (`stanza/name`) and its stored size: what
    /// `verify --read-data` reads.
    #[serde(skip)]
    pub objects: Vec<(String, u64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineReport {
    pub timeline: u32,
    pub first: String,
    pub last: String,
    pub segments: u64,
}

/// Every stanza's segments, per timeline, checked for continuity, and the
/// age of its newest WAL file. Lists `wal/` once; downloads the stanza
/// records (and, for a stanza whose record lacks the segment size, one
/// segment).
pub fn check_archive(repo: &Repository) -> Result<Vec<StanzaReport>> {
    use std::collections::BTreeMap;
    let mut stanzas: BTreeMap<String, Vec<crate::backend::ObjectInfo>> = BTreeMap::new();
    for o in repo.backend().list(Kind::Wal).map_err(backend_error)? {
        if let Some((stanza, file)) = o.name.split_once('/') {
            if check_stanza(stanza).is_ok() && !file.contains('/') {
                stanzas.entry(stanza.to_string()).or_default().push(o.clone());
            }
        }
    }
    let mut out = Vec::new();
    for (stanza, objects) in stanzas {
        let record: Option<ClusterRecord> = match read_small(repo, &format!("{stanza}/cluster"))? {
            Some(b) => Some(
                serde_json::from_slice(&b)
                    .map_err(|e| Error::corrupt(format!("WAL stanza record wal/{stanza}/cluster"), e.to_string()))?,
            ),
            None => None,
        };
        let file =
            |o: &crate::backend::ObjectInfo| o.name.split_once('/').map_or(String::new(), |(_, f)| f.to_string());
        let mut segments: Vec<String> =
            objects.iter().map(file).filter(|f| WalFile::of(f) == Some(WalFile::Segment)).collect();
        segments.sort();
        let seg_size = match record.as_ref().and_then(|r| r.wal_segment_size) {
            Some(n) => Some(n),
            None => match segments.first() {
                Some(first) => {
                    let object = format!("{stanza}/{first}");
                    let payload = get_payload(repo, &object)?
                        .ok_or_else(|| Error::NotFound { object: format!("WAL object wal/{object}") })?;
                    // A segment's size is its length.
                    Some(decode_checked(&payload, &object, None, std::io::sink(), None)? as u32)
                }
                None => None,
            },
        };
        // An unknown size counts as PostgreSQL's default, 16 MiB.
        let seg_size = seg_size.filter(|n| n.is_power_of_two()).unwrap_or(16 << 20);
        let mut timelines: Vec<TimelineReport> = Vec::new();
        let mut gaps = Vec::new();
        let mut prev: Option<(u32, u64, &str)> = None;
        for name in &segments {
            let Some((tli, no)) = segment_number(name, seg_size) else { continue };
            match prev {
                Some((t, p, pname)) if t == tli => {
                    if no != p + 1 {
                        let missing = segment_name(tli, p + 1, seg_size);
                        gaps.push(format!(
                            "stanza {stanza}: WAL segment {missing} is missing ({} segment{} missing between {pname} and {name})",
                            no - p - 1,
                            if no - p - 1 == 1 { "" } else { "s" }
                        ));
                    }
                    if let Some(t) = timelines.last_mut() {
                        t.last = name.clone();
                        t.segments += 1;
                    }
                }
                _ => timelines.push(TimelineReport {
                    timeline: tli,
                    first: name.clone(),
                    last: name.clone(),
                    segments: 1,
                }),
            }
            prev = Some((tli, no, name));
        }
        let newest = objects
            .iter()
            .filter(|o| WalFile::of(&file(o)).is_some())
            .filter_map(|o| o.modified.map(|m| (m, file(o))))
            .max();
        out.push(StanzaReport {
            stanza,
            system_identifier: record.map(|r| r.system_identifier),
            timelines,
            newest_age_secs: newest
                .as_ref()
                .map(|(m, _)| std::time::SystemTime::now().duration_since(*m).unwrap_or_default().as_secs_f64()),
            newest: newest.map(|(_, f)| f),
            gaps,
            objects: objects
                .iter()
                .filter(|o| WalFile::of(&file(o)).is_some())
                .map(|o| (o.name.clone(), o.size))
                .collect(),
        });
    }
    Ok(out)
}

/// The segments from a base backup's `start_wal` to its `stop_wal` that
/// the repository does not hold (one listing of its stanza).
pub fn missing_segments(repo: &Repository, base: &crate::format::manifest::PgBase) -> Result<Vec<String>> {
    let held: std::collections::HashSet<String> = repo
        .backend()
        .list_under(Kind::Wal, &base.stanza)
        .map_err(backend_error)?
        .into_iter()
        .map(|o| o.name)
        .collect();
    missing_in(&held, base)
}

/// `missing_segments` against a listing of `wal/` (`stanza/name` each).
pub fn missing_in(
    held: &std::collections::HashSet<String>,
    base: &crate::format::manifest::PgBase,
) -> Result<Vec<String>> {
    let seg = base.wal_segment_size;
    let bad = || {
        Error::corrupt(
            "the base backup's manifest",
            format!("unreadable WAL range {}..{}", base.start_wal, base.stop_wal),
        )
    };
    let (tli, first) = segment_number(&base.start_wal, seg).ok_or_else(bad)?;
    let (stop_tli, last) = segment_number(&base.stop_wal, seg).ok_or_else(bad)?;
    // The range crosses no timeline switch unless the backup ran on a
    // standby that was promoted meanwhile: then its stop timeline's.
    let mut missing = Vec::new();
    for no in first..=last.max(first) {
        let t = if no == last { stop_tli } else { tli };
        let name = segment_name(t, no, seg);
        if !held.contains(&format!("{}/{name}", base.stanza)) {
            missing.push(name);
        }
    }
    Ok(missing)
}

/// Copies `wal/<object>` (a WAL file or a stanza's record) from `from` into
/// `to`, sealed under `to`'s keys, once it reads back whole from `from`.
/// Returns its stored size (what it would be, in a dry run).
pub fn copy_object(from: &Repository, to: &Repository, object: &str, dry_run: bool) -> Result<u64> {
    let payload =
        get_payload(from, object)?.ok_or_else(|| Error::NotFound { object: format!("WAL object wal/{object}") })?;
    let name = object.rsplit('/').next().unwrap_or(object);
    // Read back whole, and (format 3) tagged under the destination's key.
    let tag = if WalFile::of(name).is_some() {
        let mut h = TagIf(tagged(to).then(|| to.keys().tag_hasher()));
        decode_checked(&payload, object, None, &mut h, None)?;
        h.finish()
    } else {
        let json = codec::decode(&payload, 1 << 20)
            .map_err(|e| Error::corrupt(format!("WAL object wal/{object}"), e.to_string()))?;
        if tagged(to) {
            let rec: ClusterRecord = serde_json::from_slice(&json)
                .map_err(|e| Error::corrupt(format!("WAL stanza record wal/{object}"), e.to_string()))?;
            Some(cluster_tag(to, &rec.system_identifier))
        } else {
            None
        }
    };
    if dry_run {
        return Ok((payload.len() + crate::crypto::SEAL_OVERHEAD) as u64);
    }
    put_sealed(to, object, &payload, tag)
}

/// Reads one WAL object back: it must authenticate, decode, and (a segment)
/// carry the stanza's system identifier and a whole segment. `object` is
/// `stanza/name`, as `check_archive` lists it.
pub fn check_object(repo: &Repository, object: &str, system_identifier: Option<&str>) -> Result<()> {
    let (payload, tag) =
        get_tagged(repo, object)?.ok_or_else(|| Error::NotFound { object: format!("WAL object wal/{object}") })?;
    let mut h = TagIf(tag.map(|_| repo.keys().tag_hasher()));
    decode_checked(&payload, object, system_identifier, &mut h, None)?;
    // Format 3: the tag a write-only key compares must be the file's.
    if tag != h.finish() {
        return Err(Error::corrupt(format!("WAL object wal/{object}"), "its tag is not its content's"));
    }
    Ok(())
}

/// The archived WAL no base backup of `bases` needs: in each stanza that
/// has one, the segments (and `.backup`, `.partial` files) before the
/// oldest one's start, whatever their timeline. History files stay (they
/// are tiny and tell recovery which timeline to follow), and so does all
/// of a stanza without a base backup: its WAL may be all there is.
pub fn unneeded(
    listing: &[crate::backend::ObjectInfo],
    bases: &[crate::format::manifest::PgBase],
) -> Vec<crate::backend::ObjectInfo> {
    let mut oldest: std::collections::HashMap<&str, (u64, u32)> = std::collections::HashMap::new();
    for b in bases {
        // A base whose range does not parse protects its whole stanza.
        let start = segment_number(&b.start_wal, b.wal_segment_size).map_or(0, |(_, no)| no);
        let e = oldest.entry(b.stanza.as_str()).or_insert((start, b.wal_segment_size));
        e.0 = e.0.min(start);
    }
    listing
        .iter()
        .filter(|o| {
            let Some((stanza, file)) = o.name.split_once('/') else { return false };
            let Some(&(first, seg)) = oldest.get(stanza) else { return false };
            let segment =
                file.get(..24).filter(|_| file.len() == 24 || file.ends_with(".backup") || file.ends_with(".partial"));
            segment.and_then(|n| segment_number(n, seg)).is_some_and(|(_, no)| no < first)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::manifest::PgBase;

    fn base(stanza: &str, start: &str) -> PgBase {
        PgBase {
            server: "s".into(),
            server_version: "15".into(),
            system_identifier: "1".into(),
            stanza: stanza.into(),
            timeline: 1,
            start_lsn: "0/0".into(),
            stop_lsn: "0/0".into(),
            start_wal: start.into(),
            stop_wal: start.into(),
            wal_segment_size: 16 << 20,
            start_time: chrono::Utc::now(),
            stop_time: chrono::Utc::now(),
            label: "l".into(),
            duration_secs: 0.0,
        }
    }

    #[test]
    fn only_wal_before_the_oldest_kept_base_backup_goes() {
        let o = |n: &str| crate::backend::ObjectInfo { name: n.into(), size: 1, modified: None };
        let listing = vec![
            o("db1/000000010000000000000001"),
            o("db1/000000010000000000000002.00000028.backup"),
            o("db1/000000010000000000000003"),
            o("db1/000000020000000000000002"),
            o("db1/00000002.history"),
            o("db1/000000010000000000000004"),
            o("db2/000000010000000000000001"),
        ];
        let bases = [base("db1", "000000010000000000000004"), base("db1", "000000010000000000000003")];
        let mut gone: Vec<String> = unneeded(&listing, &bases).into_iter().map(|o| o.name).collect();
        gone.sort();
        assert_eq!(
            gone,
            [
                "db1/000000010000000000000001",
                "db1/000000010000000000000002.00000028.backup",
                "db1/000000020000000000000002"
            ]
        );
        assert!(unneeded(&listing, &[]).is_empty(), "no base backup: all WAL stays");
    }
}

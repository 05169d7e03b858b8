//! Verify: proves a repository is readable and complete. Without
//! `read_data`: every key, index and manifest decrypts, every chunk a
//! snapshot needs is indexed, every indexed pack exists at its size. With it:
//! every pack (or a random subset) is downloaded, checked against its name,
//! and every chunk in it decrypted and checked against its id.

use crate::backend::{Kind, Requests};
use crate::error::{Error, Result};
use crate::format::encoding::Id;
use crate::format::{self, PackEntry};
use crate::ops::estimate::Estimate;
use crate::repo::{backend_error, Repository};
use rand::seq::SliceRandom;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    None,
    All,
    /// A percentage of packs, chosen at random.
    Subset(f64),
}

#[derive(Debug, Clone)]
pub struct VerifyOptions {
    pub read_data: ReadData,
    /// Fail when the newest snapshot (with `tags`) is older than this: the
    /// check that tells a cron job's silence from its success.
    pub max_age: Option<std::time::Duration>,
    /// Fail when any stanza's newest archived WAL is older than this: the
    /// RPO alarm, tighter than the base backups' --max-age.
    pub max_wal_age: Option<std::time::Duration>,
    /// The Object Lock retention every pack, index, manifest and WAL file
    /// should carry (`--retention`): one retained for less (or not at all)
    /// is an error. One HEAD per object.
    pub retention: Option<std::time::Duration>,
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VerifySummary {
    pub keys: usize,
    pub snapshots: usize,
    /// Base backups whose own WAL range is all archived.
    pub base_backups: usize,
    pub indexes: usize,
    pub packs: usize,
    pub packs_read: usize,
    /// Unfinished multipart uploads under the repository (S3): left by an
    /// interrupted upload, aborted by the next coffer run of the same host.
    pub incomplete_uploads: usize,
    pub chunks_checked: u64,
    /// The newest snapshot (with the tags asked for) and its age.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_snapshot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_age_secs: Option<f64>,
    /// The WAL archive, per stanza: continuity per timeline, newest file's age.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub wal: Vec<crate::ops::wal::StanzaReport>,
    /// WAL objects downloaded and checked (`--read-data`).
    pub wal_files_read: usize,
    /// Objects checked against `--retention`, and those retained for less.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_checked: Option<usize>,
    pub retention_short: usize,
    /// Every problem found, each naming its object. Empty means sound.
    pub errors: Vec<String>,
    pub duration_secs: f64,
}

pub fn verify(repo: &Repository, only: Option<&Id>, opts: &VerifyOptions) -> Result<VerifySummary> {
    verify_with(repo, only, opts, &crate::ops::progress::NoProgress)
}

/// `verify`, reporting the manifests checked and the packs read to `progress`.
pub fn verify_with(
    repo: &Repository,
    only: Option<&Id>,
    opts: &VerifyOptions,
    progress: &dyn crate::ops::progress::Progress,
) -> Result<VerifySummary> {
    // A prune beside verify replaces the indexes and deletes packs: what
    // looked missing then is checked again against the indexes as they are
    // now, and only what is still wrong is reported.
    let indexes = || -> Result<Vec<Id>> {
        let mut v = repo.list_ids(Kind::Index)?;
        v.sort();
        Ok(v)
    };
    let indexes_before = indexes()?;
    let first = verify_once(repo, only, opts, progress)?;
    if first.errors.is_empty() || indexes()? == indexes_before {
        return Ok(first);
    }
    verify_once(repo, only, opts, progress)
}

/// Which snapshots need which packs, to name those a bad pack breaks: for
/// each snapshot, the packs holding the only copy of one of its chunks, and
/// the (rare) sets of packs that hold copies of one chunk: a chunk with a
/// copy elsewhere survives the loss of one pack.
type Needs = (Id, HashSet<Id>, HashSet<Vec<Id>>);

/// What verify found before reading any pack, and the packs it will read.
struct Inspected {
    s: VerifySummary,
    packs: HashMap<Id, PackEntry>,
    needs: Vec<Needs>,
    bad: Vec<(Id, String)>,
    to_read: Vec<Id>,
    /// WAL objects to read: (stanza/name, stored size, the stanza's system identifier).
    wal_to_read: Vec<(String, u64, Option<String>)>,
}

fn verify_once(
    repo: &Repository,
    only: Option<&Id>,
    opts: &VerifyOptions,
    progress: &dyn crate::ops::progress::Progress,
) -> Result<VerifySummary> {
    let started = std::time::Instant::now();
    let Inspected { mut s, packs, needs, mut bad, to_read, wal_to_read } = inspect(repo, only, opts, progress)?;
    let to_read: Vec<&PackEntry> = to_read.iter().filter_map(|id| packs.get(id)).collect();
    if !to_read.is_empty() {
        progress.start("packs", to_read.len() as u64, to_read.iter().map(|p| p.size).sum());
    }
    for p in to_read {
        s.packs_read += 1;
        if let Err(e) = check_pack(repo, p, &mut s.chunks_checked) {
            bad.push((p.id, e.to_string()));
        }
        progress.bytes_done(p.size);
        progress.item_done();
    }
    if !wal_to_read.is_empty() {
        progress.start("WAL files", wal_to_read.len() as u64, wal_to_read.iter().map(|w| w.1).sum());
    }
    for (object, size, system_identifier) in &wal_to_read {
        s.wal_files_read += 1;
        if let Err(e) = crate::ops::wal::check_object(repo, object, system_identifier.as_deref()) {
            s.errors.push(e.to_string());
        }
        progress.bytes_done(*size);
        progress.item_done();
    }
    // Each bad pack with the snapshots it breaks.
    let bad_ids: HashSet<Id> = bad.iter().map(|(id, _)| *id).collect();
    bad.sort_by_key(|(id, _)| *id);
    for (pack, message) in bad {
        let broken: Vec<String> = needs
            .iter()
            .filter(|(_, only, copies)| {
                only.contains(&pack)
                    || copies.iter().any(|c| c.contains(&pack) && c.iter().all(|p| bad_ids.contains(p)))
            })
            .map(|(snap, _, _)| snap.short())
            .collect();
        s.errors.push(match broken.len() {
            0 => format!("{message} (no snapshot needs it alone)"),
            _ => format!(
                "{message}; it breaks snapshot{} {}",
                if broken.len() == 1 { "" } else { "s" },
                broken.join(", ")
            ),
        });
    }
    s.duration_secs = started.elapsed().as_secs_f64();
    Ok(s)
}

/// What `verify` would fetch, planned as it plans (keys, indexes and
/// manifests read, packs listed): with `--read-data`, one GET per pack it
/// reads, whole.
pub fn estimate_verify(repo: &Repository, only: Option<&Id>, opts: &VerifyOptions) -> Result<Estimate> {
    let i = inspect(repo, only, opts, &crate::ops::progress::NoProgress)?;
    // verify_with lists the indexes once more, to tell a prune beside it.
    let mut work = Requests { list: repo.backend().list_requests(i.s.indexes), ..Default::default() };
    for p in i.to_read.iter().filter_map(|id| i.packs.get(id)) {
        work.add_get(p.size);
    }
    for (_, size, _) in &i.wal_to_read {
        work.add_get(*size);
    }
    let operation = match only {
        Some(id) => format!("verify of snapshot {}", id.short()),
        None => "verify".to_string(),
    };
    let mut estimate = Estimate::new(operation, work);
    if let ReadData::Subset(pct) = opts.read_data {
        estimate.approximate.push(format!("{pct}% of the packs are chosen at random: the bytes vary from run to run"));
    }
    Ok(estimate)
}

/// Everything verify checks without reading a pack's contents.
fn inspect(
    repo: &Repository,
    only: Option<&Id>,
    opts: &VerifyOptions,
    progress: &dyn crate::ops::progress::Progress,
) -> Result<Inspected> {
    let read_data = opts.read_data;
    let mut s = VerifySummary::default();
    if let Some(max_age) = opts.max_age {
        check_freshness(repo, max_age, &opts.tags, &mut s)?;
    } else if let Some((id, m)) = repo.latest(&[])? {
        // The newest snapshot's age is reported (monitoring graphs it) even unchecked.
        s.newest_snapshot = Some(id.to_hex());
        s.newest_age_secs = Some((chrono::Utc::now() - m.time).to_std().unwrap_or_default().as_secs_f64());
    }
    if let (Some(period), None) = (opts.retention, only) {
        check_retention(repo, period, &mut s)?;
    }
    if only.is_none() {
        match crate::ops::wal::check_archive(repo) {
            Ok(stanzas) => {
                for st in &stanzas {
                    s.errors.extend(st.gaps.iter().cloned());
                    let (Some(age), Some(newest)) = (st.newest_age_secs, &st.newest) else { continue };
                    for (flag, max) in [("--max-age", opts.max_age), ("--max-wal-age", opts.max_wal_age)] {
                        if let Some(max) = max.filter(|m| age > m.as_secs_f64()) {
                            s.errors.push(format!(
                                "newest archived WAL of stanza {} ({newest}) is {} old, older than {flag} {}",
                                st.stanza,
                                hours(std::time::Duration::from_secs_f64(age)),
                                hours(max)
                            ));
                        }
                    }
                }
                s.wal = stanzas;
            }
            Err(e) => s.errors.push(e.to_string()),
        }
    }
    match repo.check_key_objects() {
        Ok(n) => s.keys = n,
        Err(e) => s.errors.push(e.to_string()),
    }

    s.incomplete_uploads = repo.backend().incomplete_uploads().map_err(backend_error)?.len();
    let mut packs: HashMap<Id, PackEntry> = HashMap::new();
    for id in repo.list_ids(Kind::Index)? {
        s.indexes += 1;
        match repo.load_index_file(&id) {
            Ok(file) => {
                for p in file.packs {
                    packs.entry(p.id).or_insert(p);
                }
            }
            // Replaced by a prune since the listing (its successor is listed next time).
            Err(e @ Error::NotFound { .. }) => s.errors.push(format!("{e} (replaced meanwhile?)")),
            Err(e) => s.errors.push(e.to_string()),
        }
    }
    // Every pack holding a copy of each chunk.
    let mut chunk_pack: HashMap<Id, Vec<Id>> = HashMap::new();
    for p in packs.values() {
        for c in &p.chunks {
            chunk_pack.entry(c.id).or_default().push(p.id);
        }
    }
    let mut needs: Vec<Needs> = Vec::new();

    let snapshot_ids = match only {
        Some(id) => vec![*id],
        None => repo.list_ids(Kind::Snapshot)?,
    };
    let mut needed_packs: Vec<Id> = Vec::new();
    let mut bases: Vec<(Id, crate::format::manifest::PgBase)> = Vec::new();
    progress.start("snapshots", snapshot_ids.len() as u64, 0);
    for id in &snapshot_ids {
        progress.item_done();
        s.snapshots += 1;
        match repo.load_snapshot(id) {
            Ok(m) => {
                if let Err((path, reason)) = m.validate() {
                    s.errors.push(format!("snapshot {id} holds an unsafe entry {path:?}: {reason}"));
                }
                let (mut only, mut copies) = (HashSet::new(), HashSet::new());
                for c in m.chunk_ids() {
                    match chunk_pack.get(c).map(Vec::as_slice) {
                        Some([p]) => {
                            only.insert(*p);
                        }
                        Some(ps) => {
                            copies.insert(ps.to_vec());
                        }
                        None => s.errors.push(format!("snapshot {id}: chunk {} is in no indexed pack", c.short())),
                    }
                }
                bases.extend(m.pg_bases().map(|(_, b)| (*id, b.clone())));
                needed_packs.extend(only.iter().copied().chain(copies.iter().flatten().copied()));
                needs.push((*id, only, copies));
            }
            // Forgotten since the listing (a forget running beside verify).
            Err(Error::NotFound { .. }) if only.is_none() => s.snapshots -= 1,
            Err(e) => s.errors.push(e.to_string()),
        }
    }
    needed_packs.sort();
    needed_packs.dedup();
    // Each base backup's own WAL range: without it, it cannot be restored
    // at all (the continuity after it is the archive check above).
    if !bases.is_empty() {
        let held: HashSet<String> = match &s.wal {
            w if !w.is_empty() => w.iter().flat_map(|st| st.objects.iter().map(|(o, _)| o.clone())).collect(),
            _ => repo.backend().list(Kind::Wal).map_err(backend_error)?.into_iter().map(|o| o.name).collect(),
        };
        for (id, b) in &bases {
            match crate::ops::wal::missing_in(&held, b) {
                Ok(missing) if !missing.is_empty() => s.errors.push(format!(
                    "snapshot {}: base backup pg-base/{} cannot be restored: WAL segment {} of its range {}..{} is \
                     not archived ({} missing)",
                    id.short(),
                    b.stanza,
                    missing[0],
                    b.start_wal,
                    b.stop_wal,
                    missing.len()
                )),
                Ok(_) => s.base_backups += 1,
                Err(e) => s.errors.push(format!("snapshot {}: {e}", id.short())),
            }
        }
    }

    let stored = repo.stored_pack_sizes()?;
    let mut bad: Vec<(Id, String)> = Vec::new();
    for p in packs.values() {
        match stored.get(&p.id) {
            None => bad.push((p.id, format!("pack {} is missing", p.id))),
            Some(&size) if size != p.size => bad.push((
                p.id,
                format!("pack {} is corrupt or was tampered with: size {size}, index says {}", p.id, p.size),
            )),
            Some(_) => {}
        }
    }
    s.packs = packs.len();

    let mut to_read: Vec<&PackEntry> = match only {
        Some(_) => needed_packs.iter().filter_map(|id| packs.get(id)).collect(),
        None => packs.values().collect(),
    };
    to_read.sort_by_key(|p| p.id);
    read_data.choose(&mut to_read);
    let to_read = to_read.iter().map(|p| p.id).collect();
    // WAL is read as packs are: all of it, or the same share at random.
    let mut wal_to_read: Vec<(String, u64, Option<String>)> = s
        .wal
        .iter()
        .flat_map(|st| st.objects.iter().map(|(o, size)| (o.clone(), *size, st.system_identifier.clone())))
        .collect();
    read_data.choose(&mut wal_to_read);
    Ok(Inspected { s, packs, needs, bad, to_read, wal_to_read })
}

impl ReadData {
    /// Keeps what this setting reads of `items`: none, all, or the share at random.
    fn choose<T>(self, items: &mut Vec<T>) {
        match self {
            ReadData::None => items.clear(),
            ReadData::All => {}
            ReadData::Subset(pct) => {
                let n = ((items.len() as f64) * pct / 100.0).ceil() as usize;
                items.shuffle(&mut rand::thread_rng());
                items.truncate(n.min(items.len()));
            }
        }
    }
}

fn check_freshness(
    repo: &Repository,
    max_age: std::time::Duration,
    tags: &[String],
    s: &mut VerifySummary,
) -> Result<()> {
    let wanted = if tags.is_empty() { String::new() } else { format!(" tagged {}", tags.join(",")) };
    let Some((id, m)) = repo.latest(tags)? else {
        s.errors.push(format!("no snapshot{wanted} at all (--max-age {})", hours(max_age)));
        return Ok(());
    };
    let age = (chrono::Utc::now() - m.time).to_std().unwrap_or_default();
    s.newest_snapshot = Some(id.to_hex());
    s.newest_age_secs = Some(age.as_secs_f64());
    if age > max_age {
        s.errors.push(format!(
            "newest snapshot{wanted} {} is {} old, older than --max-age {}",
            id.short(),
            hours(age),
            hours(max_age)
        ));
    }
    Ok(())
}

/// An age as people read it: "4m 10s" below two hours, "26.0h" above.
fn hours(d: std::time::Duration) -> String {
    if d.as_secs() < 7200 {
        humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string()
    } else {
        format!("{:.1}h", d.as_secs_f64() / 3600.0)
    }
}

fn check_pack(repo: &Repository, p: &PackEntry, checked: &mut u64) -> Result<()> {
    let object = format!("pack {}", p.id);
    let bytes = repo.backend().get(Kind::Pack, &p.id.to_hex()).map_err(backend_error)?;
    let header = format::read_pack_header(repo.keys(), &p.id, &bytes)?;
    let key = header.indexed_key();
    if header.chunks != p.chunks || key != p.key {
        return Err(Error::corrupt(object, "header disagrees with the index"));
    }
    for c in &header.chunks {
        let sealed = &bytes[c.offset as usize..(c.offset + c.length) as usize];
        let data = repo.open_chunk(&c.id, sealed, &p.id, key.as_ref())?;
        if data.len() != c.size as usize {
            return Err(Error::corrupt(&object, format!("chunk {} has the wrong size", c.id.short())));
        }
        *checked += 1;
    }
    Ok(())
}

/// Each pack, index, manifest and WAL file must be retained (S3 Object
/// Lock) until at least its write time plus `period`; the first few short
/// ones are named, all are counted.
fn check_retention(repo: &Repository, period: std::time::Duration, s: &mut VerifySummary) -> Result<()> {
    // The clocks of the writer and of the store may differ a little.
    let slack = std::time::Duration::from_secs(60);
    let mut checked = 0;
    for kind in [Kind::Pack, Kind::Index, Kind::Snapshot, Kind::Wal] {
        for o in repo.backend().list(kind).map_err(crate::repo::backend_error)? {
            checked += 1;
            let until = repo.backend().retained_until(kind, &o.name).map_err(crate::repo::backend_error)?;
            let wanted = o.modified.map(|m| m + period - slack.min(period));
            let short = match (until, wanted) {
                (None, _) => Some("not retained at all".to_string()),
                (Some(u), Some(w)) if u < w => {
                    Some(format!("retained only until {}", humantime::format_rfc3339_seconds(u)))
                }
                _ => None,
            };
            if let Some(why) = short {
                s.retention_short += 1;
                if s.retention_short <= 10 {
                    s.errors.push(format!(
                        "{}/{}: {why}, less than --retention {}",
                        kind.dir(),
                        o.name,
                        humantime::format_duration(period)
                    ));
                }
            }
        }
    }
    if s.retention_short > 10 {
        s.errors.push(format!("{} objects in all are retained for less than --retention", s.retention_short));
    }
    s.retention_checked = Some(checked);
    Ok(())
}

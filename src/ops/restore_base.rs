//! `restore --pg-base`: a base backup's files into an empty data directory,
//! with the recovery settings that replay archived WAL up to a target
//! (a time, an LSN, a transaction, a restore point) through `wal-fetch`.
//!
//! Everything that can be checked before writing is: the data directory is
//! new or empty, the base backup's own WAL range is archived, and a target
//! time is not before the base backup ended. A dry run also reads every
//! archived segment recovery would replay, from the base backup's start
//! along the followed timeline's history, checks that none is missing, and
//! writes nothing.

use crate::error::{Error, Result};
use crate::format::encoding::{Id, RawPath};
use crate::format::manifest::PgBase;
use crate::ops::restore::{restore_with, RestoreOptions, RestoreSummary};
use crate::repo::Repository;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where recovery stops, as PostgreSQL's recovery_target_* settings.
#[derive(Debug, Clone, Default)]
pub struct RecoveryTarget {
    pub time: Option<chrono::DateTime<chrono::Utc>>,
    pub lsn: Option<String>,
    pub xid: Option<String>,
    pub name: Option<String>,
    /// promote, pause or shutdown (recovery_target_action).
    pub action: Option<String>,
    /// current, latest or a number (recovery_target_timeline).
    pub timeline: Option<String>,
}

#[derive(Debug, Clone)]
pub struct BaseRestoreOptions {
    pub target: PathBuf,
    pub recovery: RecoveryTarget,
    /// The restore_command PostgreSQL runs (`coffer wal-fetch ... %f %p`),
    /// made by the caller, who knows how this repository was opened.
    pub restore_command: String,
    /// Which base backup of the snapshot, when it holds several.
    pub stanza: Option<String>,
    /// Write `archive_mode = off`: a copy must not archive into the
    /// production cluster's stanza.
    pub no_archive: bool,
    pub dry_run: bool,
    pub workers: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct BaseRestoreSummary {
    pub snapshot: String,
    pub dry_run: bool,
    pub stanza: String,
    pub target: PathBuf,
    pub files: u64,
    pub bytes: u64,
    pub start_wal: String,
    pub stop_wal: String,
    /// Dry run: the archived segments read back, from the start on, and the newest.
    pub wal_segments_checked: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub newest_wal: Option<String>,
    /// The settings written to postgresql.auto.conf, in order.
    pub settings: Vec<(String, String)>,
    pub duration_secs: f64,
}

/// The newest snapshot holding a base backup (of `stanza`, if given) that
/// ended at or before `before`.
pub fn find_base(repo: &Repository, before: chrono::DateTime<chrono::Utc>, stanza: Option<&str>) -> Result<Id> {
    let found = repo
        .list_snapshots()?
        .into_iter()
        .filter(|(_, m)| m.pg_bases().any(|b| b.stop_time <= before && stanza.is_none_or(|s| b.stanza == s)))
        .max_by_key(|(_, m)| m.pg_bases().map(|b| b.stop_time).max());
    found.map(|(id, _)| id).ok_or_else(|| Error::SnapshotNotFound {
        query: format!("a base backup that ended before {}", before.to_rfc3339()),
    })
}

pub fn restore_base(repo: &Repository, snapshot: &Id, opts: &BaseRestoreOptions) -> Result<BaseRestoreSummary> {
    let started = Instant::now();
    let manifest = repo.load_snapshot(snapshot)?;
    let bases: Vec<(RawPath, PgBase)> = manifest
        .pg_bases()
        .filter(|(_, b)| opts.stanza.as_deref().is_none_or(|s| b.stanza == s))
        .map(|(t, b)| (t.path.clone(), b.clone()))
        .collect();
    drop(manifest);
    let (root, base) = match bases.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(Error::NothingSelected {
                snapshot: snapshot.short(),
                reason: match &opts.stanza {
                    Some(s) => format!("it holds no base backup of stanza {s}"),
                    None => "it holds no base backup (backup --pg-base)".into(),
                },
            })
        }
        _ => {
            return Err(Error::InvalidOptions(format!(
                "snapshot {} holds several base backups: give --stanza",
                snapshot.short()
            )))
        }
    };
    if let Some(t) = opts.recovery.time {
        if t < base.stop_time {
            return Err(Error::InvalidOptions(format!(
                "the base backup in snapshot {} ended at {}, after the target time {}: it cannot be recovered to \
                 then; give an older snapshot (or none, to pick one)",
                snapshot.short(),
                base.stop_time.to_rfc3339(),
                t.to_rfc3339()
            )));
        }
    }
    if let Some(n) = opts.recovery.timeline.as_deref().filter(|t| !matches!(*t, "latest" | "current")) {
        timeline_number(n)?;
    }
    check_target(&opts.target)?;
    // Its own WAL range makes the files consistent: without it, nothing can start.
    let missing = crate::ops::wal::missing_segments(repo, &base)?;
    if let Some(first) = missing.first() {
        return Err(Error::Refused(format!(
            "the base backup in snapshot {} cannot be restored: WAL segment {first} of stanza {} (of its range {}..{}) \
             is not archived",
            snapshot.short(),
            base.stanza,
            base.start_wal,
            base.stop_wal
        )));
    }
    let (wal_segments_checked, newest_wal) =
        if opts.dry_run { check_wal_from(repo, &base, opts.recovery.timeline.as_deref())? } else { (0, None) };

    let files: RestoreSummary = restore_with(
        repo,
        snapshot,
        &RestoreOptions {
            target: opts.target.clone(),
            include: vec![],
            exclude: vec![],
            dry_run: opts.dry_run,
            workers: opts.workers,
            base_root: Some(root),
        },
        &crate::ops::progress::NoProgress,
    )?;
    let settings = settings(opts);
    if !opts.dry_run {
        write_recovery(&opts.target, snapshot, &settings)?;
    }
    Ok(BaseRestoreSummary {
        snapshot: snapshot.to_hex(),
        dry_run: opts.dry_run,
        stanza: base.stanza.clone(),
        target: opts.target.clone(),
        files: files.files,
        bytes: files.bytes,
        start_wal: base.start_wal,
        stop_wal: base.stop_wal,
        wal_segments_checked,
        newest_wal,
        settings,
        duration_secs: started.elapsed().as_secs_f64(),
    })
}

/// A data directory is restored into a new or empty folder only: never
/// over a cluster, running or not.
fn check_target(target: &Path) -> Result<()> {
    let refuse = |reason: String| Error::Target { path: target.to_path_buf(), reason };
    match std::fs::read_dir(target) {
        Ok(mut d) => {
            if d.next().is_some() {
                let running = target.join("postmaster.pid").exists();
                return Err(refuse(if running {
                    "it holds a running PostgreSQL (postmaster.pid): a base backup goes into a new or empty folder"
                        .into()
                } else {
                    "it is not empty: a base backup goes into a new or empty folder".into()
                }));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(target, e)),
    }
}

/// The timeline recovery follows, as PostgreSQL reads
/// recovery_target_timeline: `latest` (its default: the newest timeline
/// with an archived history file), `current` (the base backup's), or a
/// number (decimal or 0x hex).
fn followed_timeline(setting: Option<&str>, base_tli: u32, stanza: &crate::ops::wal::StanzaReport) -> Result<u32> {
    use crate::pg::wal::WalFile;
    match setting.unwrap_or("latest") {
        "latest" => Ok(stanza
            .objects
            .iter()
            .filter_map(|(o, _)| o.split_once('/').map(|(_, f)| f))
            .filter(|f| WalFile::of(f) == Some(WalFile::History))
            .filter_map(|f| u32::from_str_radix(&f[..8], 16).ok())
            .fold(base_tli, u32::max)),
        "current" => Ok(base_tli),
        n => timeline_number(n),
    }
}

/// A recovery_target_timeline number: decimal, or hex after `0x`.
pub fn timeline_number(n: &str) -> Result<u32> {
    n.strip_prefix("0x")
        .map_or_else(|| n.parse(), |hex| u32::from_str_radix(hex, 16))
        .ok()
        .filter(|t| *t > 0)
        .ok_or_else(|| {
            Error::InvalidOptions(format!("--target-timeline {n:?}: give current, latest or a timeline number"))
        })
}

/// Reads back every archived segment recovery will replay, from the base
/// backup's start along the followed timeline's history (its ancestors up
/// to each switch, then its own to the newest archived, with no gap);
/// a gap is an error naming the first missing segment. The count and the
/// newest.
fn check_wal_from(repo: &Repository, base: &PgBase, timeline: Option<&str>) -> Result<(u64, Option<String>)> {
    use crate::pg::base::{segment_name, segment_number, Lsn};
    use crate::pg::wal::{segments_along, timeline_path, TimelineSpan};
    let report = crate::ops::wal::check_archive(repo)?;
    let Some(stanza) = report.iter().find(|s| s.stanza == base.stanza) else {
        return Err(Error::NotFound { object: format!("WAL stanza wal/{}", base.stanza) });
    };
    let seg = base.wal_segment_size;
    let bad = || {
        Error::corrupt(
            "the base backup's manifest",
            format!("unreadable WAL range {}..{}", base.start_wal, base.stop_lsn),
        )
    };
    let (tli, first) = segment_number(&base.start_wal, seg).ok_or_else(bad)?;
    let stop = Lsn::parse(&base.stop_lsn).ok_or_else(bad)?;
    let followed = followed_timeline(timeline, tli, stanza)?;
    let path = if followed == tli {
        vec![TimelineSpan { timeline: tli, begin: Lsn(0), end: None }]
    } else {
        let history = format!("{followed:08X}.history");
        let text = crate::ops::wal::read_small(repo, &format!("{}/{history}", base.stanza))?.ok_or_else(|| {
            Error::Refused(format!(
                "timeline {followed} cannot be followed: its history file {history} is not archived in stanza {}",
                base.stanza
            ))
        })?;
        timeline_path(followed, &String::from_utf8_lossy(&text))?
    };
    let held: std::collections::BTreeSet<(u32, u64)> = stanza
        .objects
        .iter()
        .filter_map(|(o, _)| o.split_once('/').map(|(_, f)| f))
        .filter(|f| f.len() == 24)
        .filter_map(|f| segment_number(f, seg))
        .collect();
    let needed = segments_along(&path, tli, first, stop, seg, &held).map_err(|why| {
        Error::Refused(format!("stanza {}: {why}, which recovery from this base backup replays", base.stanza))
    })?;
    let sysid = Some(base.system_identifier.as_str());
    let names: Vec<String> = needed.iter().map(|&(t, no)| segment_name(t, no, seg)).collect();
    for f in &names {
        crate::ops::wal::check_object(repo, &format!("{}/{f}", base.stanza), sysid)?;
    }
    Ok((names.len() as u64, names.last().cloned()))
}

/// postgresql.conf's quoting: a value in single quotes, each quote doubled.
fn conf_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "''"))
}

fn settings(opts: &BaseRestoreOptions) -> Vec<(String, String)> {
    let r = &opts.recovery;
    let mut s = vec![("restore_command".to_string(), opts.restore_command.clone())];
    let mut add = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            s.push((k.to_string(), v));
        }
    };
    add("recovery_target_time", r.time.map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string()));
    add("recovery_target_lsn", r.lsn.clone());
    add("recovery_target_xid", r.xid.clone());
    add("recovery_target_name", r.name.clone());
    let any_target = r.time.is_some() || r.lsn.is_some() || r.xid.is_some() || r.name.is_some();
    // PostgreSQL's own default, said out loud: the server stops at the
    // target read-only, to be checked before it is promoted.
    add("recovery_target_action", any_target.then(|| r.action.clone().unwrap_or_else(|| "pause".into())));
    add("recovery_target_timeline", r.timeline.clone());
    if opts.no_archive {
        add("archive_mode", Some("off".into()));
    }
    s
}

/// Appends the settings to postgresql.auto.conf (read after
/// postgresql.conf, so they win) and creates recovery.signal.
fn write_recovery(target: &Path, snapshot: &Id, settings: &[(String, String)]) -> Result<()> {
    use std::io::Write;
    let conf = target.join("postgresql.auto.conf");
    let mut text = format!("\n# Recovery settings written by coffer restore --pg-base {}\n", snapshot.short());
    for (k, v) in settings {
        text.push_str(&format!("{k} = {}\n", conf_quote(v)));
    }
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(&conf).map_err(|e| Error::io(&conf, e))?;
    f.write_all(text.as_bytes()).and_then(|()| f.sync_all()).map_err(|e| Error::io(&conf, e))?;
    let signal = target.join("recovery.signal");
    std::fs::File::create(&signal).and_then(|f| f.sync_all()).map_err(|e| Error::io(&signal, e))?;
    // PostgreSQL refuses a data directory others can read; it and what
    // coffer wrote belong to the restored files' owner.
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::fs::set_permissions(target, std::fs::Permissions::from_mode(0o700)).map_err(|e| Error::io(target, e))?;
    if crate::is_root() {
        let owner = std::fs::metadata(target.join("PG_VERSION")).map_err(|e| Error::io(target, e))?;
        for p in [target.to_path_buf(), conf, signal] {
            std::os::unix::fs::chown(&p, Some(owner.uid()), Some(owner.gid())).map_err(|e| Error::io(&p, e))?;
        }
    }
    Ok(())
}

/// A word for `sh -c`, quoted only where it needs to be.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'-' | b'=' | b':' | b'%' | b'+' | b',')
        });
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_words_whole() {
        assert_eq!(shell_quote("/usr/bin/coffer"), "/usr/bin/coffer");
        assert_eq!(shell_quote("/srv/my repo"), "'/srv/my repo'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(conf_quote("a 'b'"), "'a ''b'''");
    }

    #[test]
    fn a_folder_with_anything_in_it_is_refused() {
        let d = tempfile::tempdir().unwrap();
        assert!(check_target(&d.path().join("new")).is_ok());
        assert!(check_target(d.path()).is_ok());
        std::fs::write(d.path().join("postmaster.pid"), "1").unwrap();
        assert!(check_target(d.path()).unwrap_err().to_string().contains("running PostgreSQL"));
    }
}

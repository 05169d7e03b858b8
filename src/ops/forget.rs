//! Retention: which snapshots a policy keeps, and forgetting the others.
//!
//! restic's semantics: snapshots are grouped by host and sources; in each
//! group, newest first, `last` keeps the N newest, and `hourly`, `daily`,
//! `weekly` (ISO weeks), `monthly`, `yearly` each keep the newest snapshot of
//! the N most recent hours/days/... that have one. A snapshot kept by any
//! rule, or carrying a `tags` tag, is kept. Buckets are in UTC.
//!
//! Forgetting deletes manifests only; the data they used stays until prune.

use crate::backend::Kind;
use crate::error::{Error, Result};
use crate::format::encoding::Id;
use crate::format::manifest::SnapshotInfo;
use crate::repo::Repository;
use chrono::{DateTime, Datelike, Timelike, Utc};

#[derive(Debug, Clone, Default)]
pub struct KeepPolicy {
    pub last: u32,
    pub hourly: u32,
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
    pub yearly: u32,
    /// Snapshots with any of these tags are kept.
    pub tags: Vec<String>,
}

impl KeepPolicy {
    pub fn is_empty(&self) -> bool {
        self.last + self.hourly + self.daily + self.weekly + self.monthly + self.yearly == 0 && self.tags.is_empty()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ForgetOptions {
    pub policy: KeepPolicy,
    /// Forget exactly these snapshots instead of applying a policy (one
    /// whose manifest is damaged, say: it need not be readable).
    pub ids: Vec<Id>,
    /// Only snapshots having all these tags are considered.
    pub tags: Vec<String>,
    /// Only snapshots of this host are considered.
    pub host: Option<String>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SnapshotRef {
    pub id: String,
    pub time: DateTime<Utc>,
    /// Why it is kept (`last`, `daily`, `tag`, ...); empty when removed.
    pub reasons: Vec<&'static str>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ForgetGroup {
    pub host: String,
    pub sources: Vec<String>,
    pub keep: Vec<SnapshotRef>,
    pub remove: Vec<SnapshotRef>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ForgetSummary {
    pub dry_run: bool,
    pub kept: usize,
    pub removed: usize,
    pub groups: Vec<ForgetGroup>,
    /// The snapshots forgotten by id.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub forgotten_ids: Vec<String>,
    /// Snapshots to forget that S3 Object Lock still retains: left listed,
    /// for a later forget once their retention has passed (`removed` does
    /// not count them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub retained: Vec<RetainedSnapshot>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct RetainedSnapshot {
    pub id: String,
    pub until: DateTime<Utc>,
}

/// Deletes the manifest of snapshot `id` unless Object Lock retains it (a
/// dry run asks the bucket the same): false, and it is listed, then.
fn forget_one(repo: &Repository, id: &str, dry_run: bool, summary: &mut ForgetSummary) -> Result<bool> {
    match repo.delete_unless_retained(Kind::Snapshot, id, dry_run)? {
        Some(until) => {
            summary.retained.push(RetainedSnapshot { id: id.to_string(), until: until.into() });
            Ok(false)
        }
        None => Ok(true),
    }
}

/// For each snapshot (newest first), the rules that keep it; empty: removed.
pub fn apply_policy(newest_first: &[(DateTime<Utc>, &[String])], policy: &KeepPolicy) -> Vec<Vec<&'static str>> {
    type Bucket = fn(&DateTime<Utc>, usize) -> i64;
    let rules: [(&'static str, u32, Bucket); 6] = [
        ("last", policy.last, |_, i| i as i64),
        ("hourly", policy.hourly, |t, _| ((t.year() as i64 * 1000 + t.ordinal() as i64) * 100) + t.hour() as i64),
        ("daily", policy.daily, |t, _| t.year() as i64 * 1000 + t.ordinal() as i64),
        ("weekly", policy.weekly, |t, _| {
            let w = t.iso_week();
            w.year() as i64 * 100 + w.week() as i64
        }),
        ("monthly", policy.monthly, |t, _| t.year() as i64 * 100 + t.month() as i64),
        ("yearly", policy.yearly, |t, _| t.year() as i64),
    ];
    let mut left: Vec<u32> = rules.iter().map(|r| r.1).collect();
    let mut last_bucket: Vec<Option<i64>> = vec![None; rules.len()];
    newest_first
        .iter()
        .enumerate()
        .map(|(i, (time, tags))| {
            let mut reasons = Vec::new();
            if policy.tags.iter().any(|t| tags.contains(t)) {
                reasons.push("tag");
            }
            for (r, (name, _, bucket)) in rules.iter().enumerate() {
                if left[r] == 0 {
                    continue;
                }
                let b = bucket(time, i);
                if last_bucket[r] != Some(b) {
                    last_bucket[r] = Some(b);
                    left[r] -= 1;
                    reasons.push(*name);
                }
            }
            reasons
        })
        .collect()
}

pub fn forget(repo: &Repository, opts: &ForgetOptions) -> Result<ForgetSummary> {
    if !opts.ids.is_empty() {
        if !opts.policy.is_empty() {
            return Err(Error::InvalidOptions("give snapshots to forget or a keep policy, not both".into()));
        }
        let _lock = if opts.dry_run { None } else { Some(crate::repo::lock::Lock::acquire(repo, false)?) };
        let mut summary = ForgetSummary { dry_run: opts.dry_run, ..ForgetSummary::default() };
        for id in &opts.ids {
            if forget_one(repo, &id.to_hex(), opts.dry_run, &mut summary)? {
                summary.forgotten_ids.push(id.to_hex());
                summary.removed += 1;
            }
        }
        return Ok(summary);
    }
    if opts.policy.is_empty() {
        return Err(Error::InvalidOptions(
            "no keep policy given (--keep-last, --keep-daily, ...): refusing to forget every snapshot".into(),
        ));
    }
    let _lock = if opts.dry_run { None } else { Some(crate::repo::lock::Lock::acquire(repo, false)?) };
    let mut snapshots: Vec<(Id, SnapshotInfo)> = repo
        .list_snapshots()?
        .into_iter()
        .filter(|(_, m)| m.has_tags(&opts.tags))
        .filter(|(_, m)| opts.host.as_ref().is_none_or(|h| &m.host == h))
        .collect();
    snapshots.reverse(); // newest first

    // (host, source names) -> its snapshots, newest first.
    type Group = ((String, Vec<String>), Vec<(Id, SnapshotInfo)>);
    let mut groups: Vec<Group> = Vec::new();
    for (id, m) in snapshots {
        let key = (m.host.clone(), m.source_names());
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => v.push((id, m)),
            None => groups.push((key, vec![(id, m)])),
        }
    }

    let mut summary = ForgetSummary { dry_run: opts.dry_run, ..ForgetSummary::default() };
    for ((host, sources), list) in groups {
        let input: Vec<(DateTime<Utc>, &[String])> = list.iter().map(|(_, m)| (m.time, m.tags.as_slice())).collect();
        let verdicts = apply_policy(&input, &opts.policy);
        let mut group = ForgetGroup { host, sources, keep: Vec::new(), remove: Vec::new() };
        for ((id, m), reasons) in list.iter().zip(verdicts) {
            let r = SnapshotRef { id: id.to_hex(), time: m.time, reasons };
            if r.reasons.is_empty() {
                group.remove.push(r);
            } else {
                group.keep.push(r);
            }
        }
        summary.kept += group.keep.len();
        for r in &group.remove {
            if forget_one(repo, &r.id, opts.dry_run, &mut summary)? {
                summary.removed += 1;
            }
        }
        summary.groups.push(group);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, 0, 0).unwrap()
    }

    #[test]
    fn weekly_buckets_are_iso_weeks_across_the_new_year() {
        // 2025-12-29 (Mon) .. 2026-01-04 (Sun) is ISO week 2026-W01.
        let none: &[String] = &[];
        let list = [(at(2026, 1, 4, 1), none), (at(2025, 12, 29, 1), none), (at(2025, 12, 28, 1), none)];
        let p = KeepPolicy { weekly: 5, ..Default::default() };
        let kept: Vec<bool> = apply_policy(&list, &p).iter().map(|r| !r.is_empty()).collect();
        assert_eq!(kept, [true, false, true]);
    }

    #[test]
    fn every_rule_keeps_the_newest_of_its_bucket() {
        let none: &[String] = &[];
        let list = [
            (at(2026, 3, 1, 5), none),
            (at(2026, 3, 1, 4), none),
            (at(2026, 2, 27, 4), none),
            (at(2025, 5, 1, 4), none),
        ];
        let p = KeepPolicy { yearly: 2, ..Default::default() };
        let kept: Vec<bool> = apply_policy(&list, &p).iter().map(|r| !r.is_empty()).collect();
        assert_eq!(kept, [true, false, false, true]);
        let p = KeepPolicy { hourly: 3, ..Default::default() };
        let kept: Vec<bool> = apply_policy(&list, &p).iter().map(|r| !r.is_empty()).collect();
        assert_eq!(kept, [true, true, true, false]);
        assert!(KeepPolicy::default().is_empty());
    }
}

//! Retention on a synthetic calendar, with the expected survivors worked out
//! by hand (not by the algorithm under test).

use crate::common::*;
use chrono::TimeZone;
use std::collections::BTreeSet;
use std::fs;
use std::sync::Arc;

/// Snapshots of one real backup, re-dated: label -> id.
fn calendar(env: &Env) -> Vec<(&'static str, coffer::Id)> {
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"data").unwrap();
    env.backup_json(&[&src], &[]);
    let repo = coffer::Repository::open(Arc::new(coffer::Local::new(env.repo())), PASSPHRASE.as_bytes()).unwrap();
    let original = repo.find_snapshot("latest", &[]).unwrap();
    let base = repo.load_snapshot(&original).unwrap();
    // 2026-01-01 is a Thursday; ISO week 2026-W01 is Dec 29 .. Jan 4.
    type Dated = (&'static str, (i32, u32, u32, u32), &'static [&'static str], &'static str);
    let dates: [Dated; 10] = [
        ("A", (2026, 1, 1, 2), &[], "db1"),
        ("B", (2026, 1, 2, 2), &[], "db1"),
        ("C", (2026, 1, 3, 2), &["keep"], "db1"),
        ("D", (2026, 1, 4, 2), &[], "db1"),
        ("E", (2026, 1, 5, 2), &[], "db1"),  // Monday, W02
        ("F", (2026, 1, 5, 14), &[], "db1"), // same day, later
        ("G", (2026, 1, 12, 2), &[], "db1"), // W03
        ("H", (2026, 2, 1, 2), &[], "db1"),  // Sunday, W05, February
        ("I", (2026, 2, 1, 3), &[], "db1"),
        ("X", (2026, 1, 1, 2), &[], "other-host"),
    ];
    let out = dates
        .iter()
        .map(|(label, (y, mo, d, h), tags, host)| {
            let mut m = base.clone();
            m.time = chrono::Utc.with_ymd_and_hms(*y, *mo, *d, *h, 0, 0).unwrap();
            m.tags = tags.iter().map(|t| t.to_string()).collect();
            m.host = host.to_string();
            (*label, repo.save_snapshot(&m).unwrap())
        })
        .collect();
    fs::remove_file(env.repo().join("snapshots").join(original.to_hex())).unwrap();
    out
}

fn kept(env: &Env, labels: &[(&'static str, coffer::Id)], policy: &[&str]) -> BTreeSet<&'static str> {
    let mut args = vec!["forget", "--dry-run", "--json"];
    args.extend_from_slice(policy);
    let j = env.coffer(&args).ok().json();
    assert_eq!(j["dry_run"], true);
    let ids: BTreeSet<String> = j["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["keep"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap().to_string()))
        .collect();
    labels.iter().filter(|(_, id)| ids.contains(&id.to_hex())).map(|(l, _)| *l).collect()
}

fn set(labels: &[&'static str]) -> BTreeSet<&'static str> {
    labels.iter().copied().collect()
}

#[test]
fn retention_keeps_exactly_the_expected_snapshots() {
    let env = Env::new();
    let labels = calendar(&env);
    // Newest first in db1's group: I H G F E D C B A. X is alone in its group.
    assert_eq!(kept(&env, &labels, &["--keep-daily", "3"]), set(&["I", "G", "F", "X"]));
    assert_eq!(
        kept(&env, &labels, &["--keep-last", "2", "--keep-weekly", "2", "--keep-monthly", "2"]),
        set(&["I", "H", "G", "X"])
    );
    assert_eq!(kept(&env, &labels, &["--keep-weekly", "4"]), set(&["I", "G", "F", "D", "X"]));
    assert_eq!(kept(&env, &labels, &["--keep-daily", "1", "--keep-tag", "keep"]), set(&["I", "C", "X"]));
    assert_eq!(kept(&env, &labels, &["--keep-hourly", "2"]), set(&["I", "H", "X"]));
    assert_eq!(kept(&env, &labels, &["--keep-yearly", "5"]), set(&["I", "X"]));
    // --host narrows what is considered: other hosts are untouched (not listed).
    let j = env.coffer(&["forget", "--dry-run", "--json", "--keep-last", "1", "--host", "other-host"]).ok().json();
    assert_eq!(j["groups"].as_array().unwrap().len(), 1);
    assert_eq!(j["removed"], 0);

    // An empty policy is refused rather than forgetting everything: a usage error (exit 2).
    let r = env.coffer(&["forget"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no keep policy"), "{}", r.stderr);

    // The real run deletes exactly the manifests the dry run listed, and
    // what is left still verifies and restores.
    let before = env.repo_state();
    assert_eq!(kept(&env, &labels, &["--keep-daily", "1", "--keep-tag", "keep"]), set(&["I", "C", "X"]));
    assert_eq!(before, env.repo_state(), "a dry run changed the repository");
    let j = env.coffer(&["forget", "--json", "--keep-daily", "1", "--keep-tag", "keep"]).ok().json();
    assert_eq!((j["kept"].as_u64(), j["removed"].as_u64()), (Some(3), Some(7)));
    let left: BTreeSet<String> =
        env.repo_file("snapshots").iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    let expected: BTreeSet<String> =
        labels.iter().filter(|(l, _)| ["I", "C", "X"].contains(l)).map(|(_, id)| id.to_hex()).collect();
    assert_eq!(left, expected);
    env.coffer(&["verify", "--read-data"]).ok();
    let target = env.path("out");
    env.coffer(&["restore", &labels[2].1.to_hex(), "--target", target.to_str().unwrap()]).ok();
    assert_eq!(fs::read(restored(&target, &env.path("src")).join("f")).unwrap(), b"data");
}

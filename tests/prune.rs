//! Prune reclaims forgotten space, never while a backup runs, and what is
//! left still restores and verifies.

use crate::common::*;
use std::fs;
use std::io::Read;
use std::time::{Duration, Instant};

#[test]
fn prune_reclaims_the_space_of_forgotten_snapshots() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let mib = 1024 * 1024;
    fs::write(src.join("a.bin"), pseudo_random(2 * mib, 1)).unwrap();
    fs::write(src.join("b.bin"), pseudo_random(6 * mib, 2)).unwrap();
    env.backup_json(&[&src], &[]); // pack 1: a + b
    fs::remove_file(src.join("b.bin")).unwrap();
    fs::write(src.join("c.bin"), pseudo_random(3 * mib, 3)).unwrap();
    env.backup_json(&[&src], &[]); // pack 2: c
    fs::remove_file(src.join("c.bin")).unwrap();
    fs::write(src.join("d.bin"), pseudo_random(mib, 4)).unwrap();
    env.backup_json(&[&src], &[]); // pack 3: d; the snapshot holds a + d
    let before = env.pack_bytes();

    env.coffer(&["forget", "--keep-last", "1"]).ok();
    // Dry run: the plan, and nothing changed.
    let state = env.repo_state();
    let dry = env.coffer(&["prune", "--grace", "0s", "--dry-run", "--json"]).ok().json();
    assert_eq!(state, env.repo_state(), "a dry run changed the repository");
    assert_eq!((dry["packs_deleted"].as_u64(), dry["packs_repacked"].as_u64()), (Some(1), Some(1)), "{dry}");

    let j = env.coffer(&["prune", "--grace", "0s", "--json"]).ok().json();
    assert_eq!(j["packs_deleted"], 1, "pack 2 (c only) is unused: {j}");
    assert_eq!(j["packs_repacked"], 1, "pack 1 is 75% unused (b): {j}");
    let after = env.pack_bytes();
    assert_eq!(after, j["bytes_after"].as_u64().unwrap());
    assert!(before - after > 8 * mib as u64, "reclaimed {} of {before}", before - after);
    assert!(after < 4 * mib as u64, "a (2 MiB) and d (1 MiB) remain: {after}");
    assert_eq!(env.repo_file("index").len(), 1, "one index replaces the old ones");

    env.coffer(&["verify", "--read-data"]).ok();
    let target = env.path("out");
    env.coffer(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&target, &src)));
    // A second prune has nothing left to do.
    let again = env.coffer(&["prune", "--grace", "0s", "--json"]).ok().json();
    assert_eq!(again["bytes_reclaimed"], 0);
}

fn big_source(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let mut urandom = fs::File::open("/dev/urandom").unwrap().take(256 * 1024 * 1024);
    let mut out = fs::File::create(src.join("big.bin")).unwrap();
    std::io::copy(&mut urandom, &mut out).unwrap();
    src
}

fn wait_for_lock(env: &Env, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while env.repo_file("locks").is_empty() {
        assert!(Instant::now() < deadline, "no lock appeared");
        assert!(child.try_wait().unwrap().is_none(), "backup ended before it was seen holding its lock");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn prune_and_repair_refuse_while_a_backup_holds_its_lock_in_any_pid_namespace() {
    let env = Env::new();
    let src = big_source(&env);
    let mut child = env.command().args(["backup", src.to_str().unwrap()]).spawn().unwrap();
    wait_for_lock(&env, &mut child);
    // Held still while prune runs, so it cannot finish and release its lock
    // first on a busy machine; a stopped process is still alive.
    let signal = |sig: &str| {
        let status = std::process::Command::new("kill").args([sig, &child.id().to_string()]).status().unwrap();
        assert!(status.success(), "kill {sig}");
    };
    signal("-STOP");
    let r = env.coffer(&["prune", "--grace", "0s"]);
    // repair rewrites the index and manifests: it waits for backups too.
    let repair = env.coffer(&["repair"]);
    // A prune in another PID namespace (a container sharing the host name)
    // cannot see the backup's pid: it must still take the lock for live.
    let other_namespace = coffer::is_root().then(|| {
        let mut c = env.command_through(&["unshare", "--pid", "--fork", "--"]);
        Run::from(c.args(["prune", "--grace", "0s"]).output().unwrap())
    });
    signal("-CONT");
    match other_namespace {
        Some(r) => {
            assert_eq!(r.code, 11, "a prune in another PID namespace: {}", r.stderr);
            assert!(r.stderr.contains("is locked"), "{}", r.stderr);
        }
        None => eprintln!("not root: the PID-namespace case (unshare --pid) is not tried here"),
    }
    assert_eq!(r.code, 11, "{}", r.stderr);
    assert!(r.stderr.contains("is locked") && r.stderr.contains("pid"), "{}", r.stderr);
    assert_eq!(repair.code, 11, "{}", repair.stderr);
    assert!(child.wait().unwrap().success(), "the backup must not be disturbed");
    assert!(env.repo_file("locks").is_empty(), "the backup released its lock");

    // Now prune runs, deletes nothing the snapshot needs, and all verifies.
    env.coffer(&["prune", "--grace", "0s"]).ok();
    env.coffer(&["verify", "--read-data"]).ok();
    let target = env.path("out");
    env.coffer(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&target, &src)));
}

#[test]
fn a_killed_backups_lock_is_stale_and_its_packs_are_reclaimed() {
    let env = Env::new();
    let src = big_source(&env);
    let mut child = env.command().args(["backup", src.to_str().unwrap()]).spawn().unwrap();
    wait_for_lock(&env, &mut child);
    while env.repo_file("data").is_empty() {
        assert!(child.try_wait().unwrap().is_none(), "backup finished before it could be killed");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(env.repo_file("locks").len(), 1, "a killed process leaves its lock");

    let j = env.coffer(&["prune", "--grace", "0s", "--json"]).ok().json();
    assert_eq!(j["stale_locks_ignored"], 1, "{j}");
    assert!(j["packs_unindexed"].as_u64().unwrap() >= 1, "{j}");
    assert!(env.repo_file("data").is_empty(), "the interrupted backup's packs are gone");
    let r = env.coffer(&["unlock", "--json"]).ok().json();
    assert_eq!(r["removed_locks"], 1);
    assert!(env.repo_file("locks").is_empty());
    env.backup_json(&[&src], &[]);
    env.coffer(&["verify", "--read-data"]).ok();
}

#[test]
fn prune_deletes_nothing_when_a_snapshots_data_is_missing() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), pseudo_random(1024 * 1024, 5)).unwrap();
    env.backup_json(&[&src], &[]);
    fs::write(src.join("b.bin"), pseudo_random(1024 * 1024, 6)).unwrap();
    env.backup_json(&[&src], &[]);
    env.coffer(&["forget", "--keep-last", "1"]).ok();
    // Damage: the first pack (a.bin, still used) disappears.
    let mut packs = env.repo_file("data");
    packs.sort_by_key(|p| fs::metadata(p).unwrap().modified().unwrap());
    fs::remove_file(&packs[0]).unwrap();
    let state = env.repo_state();
    let r = env.coffer(&["prune", "--grace", "0s"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("nothing deleted"), "{}", r.stderr);
    assert_eq!(state, env.repo_state(), "prune changed a damaged repository");
}

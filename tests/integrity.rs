//! One lost or damaged object damages only what uses it: backups after a
//! lost pack store its chunks again, listings skip (and report) a manifest
//! they cannot read, a garbage lock blocks nothing, a snapshot forgotten
//! between list and get is skipped, and init never writes over a repository.

use crate::common::*;
use std::fs;
use std::path::{Path, PathBuf};

fn tree(env: &Env) -> PathBuf {
    let src = env.path("src");
    make_rich_tree(&src);
    fs::write(src.join("big.bin"), pseudo_random(3 << 20, 7)).unwrap();
    src
}

fn restores_byte_for_byte(env: &Env, src: &Path, snapshot: &str) {
    let target = env.path(&format!("out-{snapshot}"));
    env.coffer(&["restore", snapshot, "--target", target.to_str().unwrap()]).ok();
    assert_eq!(describe(src), describe(&restored(&target, src)));
}

#[test]
fn a_backup_after_a_pack_was_lost_or_truncated_stores_its_chunks_again() {
    for damage in ["delete", "truncate"] {
        for force in [false, true] {
            let env = Env::new();
            let src = tree(&env);
            let first = env.backup_json(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
            for pack in env.repo_file("data") {
                match damage {
                    "delete" => fs::remove_file(&pack).unwrap(),
                    _ => {
                        let len = fs::metadata(&pack).unwrap().len();
                        fs::OpenOptions::new().write(true).open(&pack).unwrap().set_len(len / 2).unwrap();
                    }
                }
            }
            let extra: &[&str] = if force { &["--force"] } else { &[] };
            let mut args = vec!["backup", "--json"];
            args.extend(extra);
            args.push(src.to_str().unwrap());
            let r = env.coffer(&args).ok();
            assert!(r.stderr.contains("its chunks are stored again"), "{damage} {force}: {}", r.stderr);
            let j = r.json();
            assert!(j["new_bytes"].as_u64().unwrap() > 3 << 20, "{damage} {force}: {j}");
            restores_byte_for_byte(&env, &src, j["snapshot"].as_str().unwrap());
            // The first snapshot reads its chunks from their new copies; prune
            // then drops the lost pack from the index, and verify is clean.
            restores_byte_for_byte(&env, &src, &first);
            env.coffer(&["prune"]).ok();
            env.coffer(&["verify", "--read-data"]).ok();
        }
    }
}

/// A pack damaged in place (same size, a flipped byte) shows in no listing:
/// only reading finds it. `backup --force` reads back every chunk it would
/// reuse and stores again those that do not read; `repair --read-data`
/// then removes the damaged pack, and everything verifies.
#[test]
fn a_forced_backup_after_a_pack_was_damaged_in_place_stores_its_chunks_again() {
    let env = Env::new();
    let src = tree(&env);
    let first = env.backup_json(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    for pack in env.repo_file("data") {
        flip_byte(&pack, 0.3);
    }
    let j = env.backup_json(&[&src], &["--force"]);
    assert!(j["new_bytes"].as_u64().unwrap() > 0, "{j}");
    restores_byte_for_byte(&env, &src, j["snapshot"].as_str().unwrap());
    // The first snapshot reads the damaged chunk from its new copy.
    restores_byte_for_byte(&env, &src, &first);
    assert_eq!(env.coffer(&["verify", "--read-data"]).code, 1, "the damaged pack is still there");
    env.coffer(&["repair", "--read-data"]).ok();
    env.coffer(&["verify", "--read-data"]).ok();
    restores_byte_for_byte(&env, &src, &first);
}

#[test]
fn a_damaged_manifest_is_skipped_by_listing_backup_and_forget_and_can_be_forgotten() {
    let env = Env::new();
    let src = tree(&env);
    let first = env.backup_json(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    let second = env.backup_json(&[&src], &["--tag", "b"])["snapshot"].as_str().unwrap().to_string();
    flip_byte(&env.repo().join("snapshots").join(&first), 0.5);

    let r = env.coffer(&["snapshots", "--json"]).ok();
    let list = r.json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert!(r.stderr.contains(&first[..8]) && r.stderr.contains("cannot be read"), "{}", r.stderr);
    restores_byte_for_byte(&env, &src, "latest");
    let third = env.backup_json(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    env.coffer(&["forget", "--keep-last", "1"]).ok();
    // verify still says the manifest is damaged; forget by id removes it.
    assert_eq!(env.coffer(&["verify"]).code, 1);
    env.coffer(&["forget", &first]).ok();
    env.coffer(&["verify"]).ok();
    let ids = snapshot_ids(&env.coffer(&["snapshots", "--json"]).ok().json());
    assert_eq!(ids, vec![third], "second ({second}) forgotten by the policy");
}

#[test]
fn a_garbage_lock_blocks_no_backup_and_unlock_removes_it() {
    let env = Env::new();
    let src = tree(&env);
    let locks = env.repo().join("locks");
    fs::create_dir_all(&locks).unwrap();
    let garbage = locks.join("00".repeat(32));
    fs::write(&garbage, b"not a lock").unwrap();
    let r = env.coffer(&["backup", src.to_str().unwrap()]).ok();
    assert!(r.stderr.contains("cannot be read"), "{}", r.stderr);
    env.coffer(&["prune"]).ok();
    env.coffer(&["unlock"]).ok();
    assert!(!garbage.exists());
}

#[test]
fn init_never_writes_over_a_repository_or_inside_one() {
    let env = Env::new();
    let src = tree(&env);
    env.backup_json(&[&src], &[]);
    // The config lost: init must not start a second repository beside the old data.
    fs::remove_file(env.repo().join("config")).unwrap();
    let r = env.coffer(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("holds objects"), "{}", r.stderr);
    assert!(!env.repo().join("config").exists());

    // A repository inside another one, or one that contains another.
    let outer = Env::new();
    for inner in [outer.repo().join("snapshots"), outer.repo().join("sub/repo")] {
        let r = outer
            .command()
            .env("COFFER_REPOSITORY", &inner)
            .args(["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"])
            .output()
            .unwrap();
        let r: Run = r.into();
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains("inside the repository"), "{}", r.stderr);
    }
}

#[test]
fn a_backup_killed_half_way_is_resumed_from_the_packs_it_stored() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..6 {
        fs::write(src.join(format!("f{i}.bin")), pseudo_random(16 << 20, 100 + i)).unwrap();
    }
    let total: u64 = 6 * (16 << 20);
    let mut child = env.command().args(["backup", src.to_str().unwrap()]).spawn().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while env.repo_file("data").len() < 3 {
        assert!(std::time::Instant::now() < deadline, "the backup stored no packs");
        assert!(child.try_wait().unwrap().is_none(), "the backup finished before it could be killed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(env.repo_file("snapshots").is_empty());
    let stored_before: u64 = env.repo_file("data").iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    let j = env.backup_json(&[&src], &[]);
    let new = j["new_bytes"].as_u64().unwrap();
    assert!(new + stored_before * 9 / 10 <= total, "stored {new} again of {total}, {stored_before} were there: {j}");
    restores_byte_for_byte(&env, &src, j["snapshot"].as_str().unwrap());
    env.coffer(&["verify", "--read-data"]).ok();
}

#[test]
fn verify_names_the_snapshots_a_lost_or_misplaced_pack_breaks() {
    let env = Env::new();
    let a = env.path("a");
    let b = env.path("b");
    fs::create_dir_all(&a).unwrap();
    fs::create_dir_all(&b).unwrap();
    fs::write(a.join("x.bin"), pseudo_random(1 << 20, 11)).unwrap();
    let first = env.backup_json(&[&a], &[])["snapshot"].as_str().unwrap().to_string();
    fs::write(b.join("y.bin"), pseudo_random(1 << 20, 12)).unwrap();
    let second = env.backup_json(&[&b], &[])["snapshot"].as_str().unwrap().to_string();
    env.coffer(&["verify"]).ok();
    // Move the first snapshot's pack into the wrong folder: it cannot be read by name.
    let packs = env.repo_file("data");
    assert_eq!(packs.len(), 2);
    for p in &packs {
        let wrong = p.parent().unwrap().parent().unwrap().join("zz");
        fs::create_dir_all(&wrong).unwrap();
        let moved = wrong.join(p.file_name().unwrap());
        fs::rename(p, &moved).unwrap();
        let r = env.coffer(&["verify"]);
        fs::rename(&moved, p).unwrap();
        assert_eq!(r.code, 1);
        let (broken, fine) = if r.stderr.contains(&first[..8]) { (&first, &second) } else { (&second, &first) };
        assert!(r.stderr.contains("is missing; it breaks snapshot") && r.stderr.contains(&broken[..8]), "{}", r.stderr);
        assert!(!r.stderr.contains(&fine[..8]), "{}", r.stderr);
    }
    env.coffer(&["verify", "--read-data"]).ok();
}

//! `repair`: after a pack or index is lost or damaged, the index is rebuilt
//! from the stored packs, the sound chunks of a damaged pack are kept, the
//! snapshots are rewritten without (and naming) the files whose data is
//! gone, `verify --read-data` then passes, and the next backup stores those
//! files again.

use crate::common::pg::{self, Cluster, PG_PASSWORD};
use crate::common::*;
use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

fn packs(env: &Env) -> HashSet<PathBuf> {
    env.repo_file("data").into_iter().collect()
}

fn restore_to(env: &Env, snapshot: &str, name: &str) -> PathBuf {
    let target = env.path(name);
    env.coffer(&["restore", snapshot, "--target", target.to_str().unwrap()]).ok();
    target
}

fn ids(env: &Env) -> Vec<String> {
    snapshot_ids(&env.coffer(&["snapshots", "--json"]).ok().json())
}

fn path_in_manifest(p: &Path) -> String {
    p.to_str().unwrap().trim_start_matches('/').to_string()
}

#[test]
fn repair_after_a_lost_pack_names_the_lost_files_and_the_next_backup_stores_them_again() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), pseudo_random(1 << 20, 1)).unwrap();
    let first = env.backup_json(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    let first_tree = describe(&src);
    let first_packs = packs(&env);

    fs::write(src.join("b.bin"), pseudo_random(1 << 20, 2)).unwrap();
    fs::write(src.join("c.txt"), b"only in the second snapshot\n").unwrap();
    let second = env.backup_json(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    let new_packs: Vec<PathBuf> = packs(&env).difference(&first_packs).cloned().collect();
    assert_eq!(new_packs.len(), 1, "{new_packs:?}");
    fs::remove_file(&new_packs[0]).unwrap();
    assert_eq!(env.coffer(&["verify"]).code, 1);

    // A dry run names what would go and changes nothing.
    let before = env.repo_state();
    let dry = env.coffer(&["repair", "--dry-run", "--json"]).ok().json();
    assert_eq!(env.repo_state(), before, "a dry run changed the repository");
    assert_eq!(dry["packs_lost"].as_array().unwrap().len(), 1, "{dry}");
    let repaired = dry["snapshots_repaired"].as_array().unwrap();
    assert_eq!(repaired.len(), 1, "{dry}");
    assert_eq!(repaired[0]["snapshot"], second.as_str());
    let lost: HashSet<String> =
        repaired[0]["files"].as_array().unwrap().iter().map(|f| f.as_str().unwrap().to_string()).collect();
    let expected: HashSet<String> = ["b.bin", "c.txt"].iter().map(|f| path_in_manifest(&src.join(f))).collect();
    assert_eq!(lost, expected, "{dry}");

    let r = env.coffer(&["repair"]).ok();
    assert!(
        r.stderr.contains(&second[..8]) && r.stderr.contains("b.bin") && r.stderr.contains("c.txt"),
        "the lost files are named: {}",
        r.stderr
    );
    env.coffer(&["verify", "--read-data"]).ok();
    let ids = ids(&env);
    assert_eq!(ids.len(), 2, "{ids:?}");
    assert!(ids.contains(&first) && !ids.contains(&second), "{ids:?}");
    let rewritten = ids.iter().find(|id| **id != first).unwrap();
    let shown = env.coffer(&["show", rewritten, "--json"]).ok().json();
    assert!(shown["manifest"]["warnings"].to_string().contains("removed 2 files"), "{shown}");

    // The untouched snapshot restores whole; the rewritten one holds what was left.
    let one = restore_to(&env, &first, "out-first");
    assert_eq!(describe(&restored(&one, &src)), first_tree);
    let two = restored(&restore_to(&env, rewritten, "out-second"), &src);
    assert_eq!(fs::read(two.join("a.bin")).unwrap(), fs::read(src.join("a.bin")).unwrap());
    assert!(!two.join("b.bin").exists() && !two.join("c.txt").exists());

    // The next backup stores the lost files again, and everything is sound.
    let j = env.backup_json(&[&src], &[]);
    assert!(j["new_bytes"].as_u64().unwrap() >= 1 << 20, "{j}");
    let three = restore_to(&env, j["snapshot"].as_str().unwrap(), "out-third");
    assert_eq!(describe(&restored(&three, &src)), describe(&src));
    env.coffer(&["verify", "--read-data"]).ok();
    env.coffer(&["prune"]).ok();
    let again = env.coffer(&["repair"]).ok();
    assert!(again.stdout.contains("nothing to repair"), "{}", again.stdout);
}

#[test]
fn repair_keeps_the_sound_chunks_of_a_damaged_or_truncated_pack() {
    for damage in ["flip", "truncate"] {
        let env = Env::new();
        let src = env.path("src");
        fs::create_dir_all(&src).unwrap();
        for i in 0..20 {
            fs::write(src.join(format!("f{i:02}.bin")), pseudo_random(64 << 10, 10 + i)).unwrap();
        }
        env.backup_json(&[&src], &[]);
        let stored: Vec<PathBuf> = packs(&env).into_iter().collect();
        assert_eq!(stored.len(), 1);
        let pack = &stored[0];
        if damage == "flip" {
            flip_byte(pack, 0.5);
            // Same size: only reading the packs finds it.
            let r = env.coffer(&["repair"]).ok();
            assert!(r.stdout.contains("nothing to repair"), "{}", r.stdout);
        } else {
            let len = fs::metadata(pack).unwrap().len();
            fs::OpenOptions::new().write(true).open(pack).unwrap().set_len(len / 2).unwrap();
        }
        let r = env.coffer(&["repair", "--read-data", "--json"]).ok();
        let j = r.json();
        assert_eq!(j["packs_damaged"].as_array().unwrap().len(), 1, "{damage}: {j}");
        let lost = j["snapshots_repaired"][0]["files"].as_array().unwrap().len();
        let salvaged = j["chunks_salvaged"].as_u64().unwrap() as usize;
        match damage {
            "flip" => assert_eq!((lost, salvaged), (1, 19), "{j}"),
            _ => assert!((9..=11).contains(&lost) && lost + salvaged == 20, "{j}"),
        }
        assert!(!pack.exists(), "the damaged pack is deleted once its sound chunks are copied");
        env.coffer(&["verify", "--read-data"]).ok();

        // What was kept restores byte for byte; the next backup brings back the rest.
        let out = restored(&restore_to(&env, "latest", "out"), &src);
        let kept: Vec<_> = fs::read_dir(&out).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(kept.len(), 20 - lost, "{damage}");
        for name in kept {
            assert_eq!(fs::read(out.join(&name)).unwrap(), fs::read(src.join(&name)).unwrap());
        }
        let j = env.backup_json(&[&src], &[]);
        let again = restore_to(&env, j["snapshot"].as_str().unwrap(), "again");
        assert_eq!(describe(&restored(&again, &src)), describe(&src), "{damage}");
        env.coffer(&["verify", "--read-data"]).ok();
    }
}

#[test]
fn repair_rebuilds_lost_and_damaged_indexes_from_the_packs() {
    let env = Env::new();
    let a = env.path("a");
    make_rich_tree(&a);
    let first = env.backup_json(&[&a], &[])["snapshot"].as_str().unwrap().to_string();
    let b = env.path("b");
    fs::create_dir_all(&b).unwrap();
    fs::write(b.join("y.bin"), pseudo_random(2 << 20, 5)).unwrap();
    let second = env.backup_json(&[&b], &[])["snapshot"].as_str().unwrap().to_string();
    let indexes = env.repo_file("index");
    assert_eq!(indexes.len(), 2);
    fs::remove_file(&indexes[0]).unwrap();
    flip_byte(&indexes[1], 0.5);
    assert_eq!(env.coffer(&["verify"]).code, 1);

    let j = env.coffer(&["repair", "--json"]).ok().json();
    assert_eq!(j["packs_adopted"].as_u64().unwrap(), 2, "{j}");
    assert_eq!(j["indexes_unreadable"].as_array().unwrap().len(), 1, "{j}");
    assert!(j["snapshots_repaired"].as_array().unwrap().is_empty(), "nothing was lost: {j}");
    env.coffer(&["verify", "--read-data"]).ok();
    assert_eq!(describe(&restored(&restore_to(&env, &first, "out-a"), &a)), describe(&a));
    assert_eq!(describe(&restored(&restore_to(&env, &second, "out-b"), &b)), describe(&b));
}

#[test]
fn repair_deletes_a_snapshot_whose_only_dump_is_lost_and_names_the_database() {
    let cluster: &Cluster = pg::shared();
    let db = pg::unique("repair");
    cluster.create_sample_db(&db, 1);
    let env = Env::new();
    let mut c = env.command();
    c.env("PGPASSWORD", PG_PASSWORD).env("COFFER_PG_BIN_DIR", pg::bin_dir());
    let run: Run = c.args(["backup", "--json", "--pg", &cluster.url(&db)]).output().unwrap().into();
    let snapshot = run.ok().json()["snapshot"].as_str().unwrap().to_string();
    for p in packs(&env) {
        fs::remove_file(p).unwrap();
    }
    let r = env.coffer(&["repair", "--json"]).ok();
    let j = r.json();
    let repaired = &j["snapshots_repaired"][0];
    assert_eq!(repaired["snapshot"], snapshot.as_str(), "{j}");
    assert_eq!(repaired["databases"][0], db.as_str(), "{j}");
    assert!(repaired["new_snapshot"].is_null(), "{j}");
    assert!(ids(&env).is_empty());
    env.coffer(&["verify", "--read-data"]).ok();
}

#[test]
fn repair_on_s3_after_a_lost_pack_and_the_next_backup_restore_byte_for_byte() {
    use crate::common::place::Place;
    use coffer::Kind;
    let place = Place::garage();
    let src = place.env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), pseudo_random(1 << 20, 21)).unwrap();
    place.backup(&src);
    let before = place.names(Kind::Pack);
    fs::write(src.join("b.bin"), pseudo_random(1 << 20, 22)).unwrap();
    let second = place.backup(&src);
    let new: Vec<String> = place.names(Kind::Pack).into_iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(new.len(), 1);
    place.backend().delete(Kind::Pack, &new[0]).unwrap();

    let j = place.run(&["repair", "--json"]).ok().json();
    assert_eq!(j["packs_lost"][0], new[0].as_str(), "{j}");
    assert_eq!(j["snapshots_repaired"][0]["snapshot"], second.as_str(), "{j}");
    assert_eq!(j["snapshots_repaired"][0]["files"], serde_json::json!([path_in_manifest(&src.join("b.bin"))]), "{j}");
    place.run(&["verify", "--read-data"]).ok();
    let latest = place.backup(&src);
    let target = place.env.path("out");
    place.run(&["restore", &latest, "--target", target.to_str().unwrap()]).ok();
    assert_eq!(describe(&restored(&target, &src)), describe(&src));
    place.run(&["verify", "--read-data"]).ok();
}

//! Tampered and truncated objects are detected by verify and by restore,
//! and the error names the object.

use crate::common::*;
use std::fs;
use std::path::PathBuf;

fn setup() -> (Env, PathBuf) {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    env.backup_json(&[&src], &[]);
    env.coffer(&["verify", "--read-data"]).ok();
    (env, src)
}

fn name_of(p: &std::path::Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn restore_fails(env: &Env, must_name: &str) {
    let target = env.path("out");
    let r = env.coffer(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_ne!(r.code, 0, "restore succeeded on a damaged repository");
    assert!(r.stderr.contains(must_name), "restore error does not name {must_name}: {}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 2, "error + hint expected: {}", r.stderr);
    // Nothing that looks complete was left: no file under its final name has
    // wrong content (restore verifies before renaming).
    for p in walk_all(&target) {
        assert!(!p.to_string_lossy().contains(".coffer-"), "temp file left: {p:?}");
    }
}

fn verify_fails(env: &Env, must_name: &str) {
    let r = env.coffer(&["verify", "--read-data"]);
    assert_eq!(r.code, 1, "verify passed a damaged repository: {}", r.stdout);
    assert!(r.stderr.contains(must_name), "verify error does not name {must_name}: {}", r.stderr);
}

#[test]
fn a_flipped_byte_anywhere_in_a_pack_is_detected() {
    // Start, middle (chunk data), and end (header) of the pack.
    for at in [0.0, 0.5, 0.9999] {
        let (env, _) = setup();
        let pack = env.repo_file("data").pop().unwrap();
        flip_byte(&pack, at);
        verify_fails(&env, &name_of(&pack));
        if at < 0.99 {
            // The header is only read by verify; chunks are read by restore.
            restore_fails(&env, &name_of(&pack));
        }
    }
}

#[test]
fn a_truncated_pack_is_detected() {
    let (env, _) = setup();
    let pack = env.repo_file("data").pop().unwrap();
    let data = fs::read(&pack).unwrap();
    fs::write(&pack, &data[..data.len() / 2]).unwrap();
    verify_fails(&env, &name_of(&pack));
    restore_fails(&env, &name_of(&pack));
    // Even the quick verify (no data read) sees the size mismatch.
    let r = env.coffer(&["verify"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(&name_of(&pack)));
}

#[test]
fn a_flipped_byte_in_the_index_is_detected() {
    let (env, _) = setup();
    let index = env.repo_file("index").pop().unwrap();
    flip_byte(&index, 0.5);
    verify_fails(&env, &format!("index {}", name_of(&index)));
    restore_fails(&env, &format!("index {}", name_of(&index)));
}

#[test]
fn a_flipped_byte_in_the_manifest_is_detected() {
    let (env, _) = setup();
    let snap = env.repo_file("snapshots").pop().unwrap();
    flip_byte(&snap, 0.5);
    verify_fails(&env, &format!("snapshot {}", name_of(&snap)));
    let target = env.path("out");
    let r = env.coffer(&["restore", &name_of(&snap), "--target", target.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains(&format!("snapshot {}", name_of(&snap))), "{}", r.stderr);
    assert!(!target.exists());
}

#[test]
fn a_flipped_byte_in_the_key_is_detected() {
    let (env, _) = setup();
    let key = env.repo_file("keys").pop().unwrap();
    // In the wrapped key material, and in the KDF parameters.
    for at in [0.5, 0.9] {
        let original = fs::read(&key).unwrap();
        flip_byte(&key, at);
        let r = env.coffer(&["verify", "--read-data"]);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains(&format!("keys/{}", name_of(&key))), "{}", r.stderr);
        restore_fails(&env, &format!("keys/{}", name_of(&key)));
        fs::write(&key, original).unwrap();
    }
    env.coffer(&["verify", "--read-data"]).ok();
}

#[test]
fn a_swapped_snapshot_is_refused() {
    // Renaming one manifest onto another's id breaks the id binding.
    let (env, src) = setup();
    env.backup_json(&[&src], &["--force"]);
    let snaps = env.repo_file("snapshots");
    fs::copy(&snaps[0], &snaps[1]).unwrap();
    verify_fails(&env, &format!("snapshot {}", name_of(&snaps[1])));
}

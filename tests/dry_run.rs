//! Both dry runs write nothing.

use crate::common::*;
use std::fs;

#[test]
fn backup_dry_run_writes_nothing_and_reports_new_data() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    let before = env.repo_state();
    let j = env.backup_json(&[&src], &["--dry-run"]);
    assert_eq!(before, env.repo_state(), "the repository changed");
    assert!(j["snapshot"].is_null());
    assert_eq!(j["dry_run"], true);
    assert!(j["new_bytes"].as_u64().unwrap() > 3 * 1024 * 1024);
    assert!(j["stored_bytes"].as_u64().unwrap() > 0);

    // After a real backup, a dry run of the same data has nothing new to add.
    env.backup_json(&[&src], &[]);
    let before = env.repo_state();
    let j = env.backup_json(&[&src], &["--dry-run", "--force"]);
    assert_eq!(before, env.repo_state());
    assert_eq!(j["new_bytes"], 0);
    assert_eq!(j["files"], 9);
}

#[test]
fn restore_dry_run_writes_nothing_and_reports_overwrites() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    env.backup_json(&[&src], &[]);

    // Target absent: it stays absent.
    let target = env.path("out");
    let j = env.coffer(&["restore", "latest", "--target", target.to_str().unwrap(), "--dry-run", "--json"]).ok().json();
    assert!(!target.exists());
    assert_eq!(j["files"], 9);
    assert!(j["chunks_checked"].as_u64().unwrap() >= 4);
    assert_eq!(j["overwritten"].as_array().unwrap().len(), 0);

    // Target with an existing file: untouched, and reported.
    let root = restored(&target, &src);
    fs::create_dir_all(root.join("docs")).unwrap();
    fs::write(root.join("docs/readme.md"), b"local edit").unwrap();
    let before = describe(&target);
    let j = env.coffer(&["restore", "latest", "--target", target.to_str().unwrap(), "--dry-run", "--json"]).ok().json();
    assert_eq!(before, describe(&target));
    let over = j["overwritten"].as_array().unwrap();
    assert_eq!(over.len(), 1);
    assert!(over[0].as_str().unwrap().ends_with("docs/readme.md"));
}

#[test]
fn restore_dry_run_detects_a_damaged_pack() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    env.backup_json(&[&src], &[]);
    for pack in env.repo_file("data") {
        flip_byte(&pack, 0.3);
    }
    let target = env.path("out");
    let r = env.coffer(&["restore", "latest", "--target", target.to_str().unwrap(), "--dry-run"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("is corrupt or was tampered with"), "{}", r.stderr);
    assert!(!target.exists());
}

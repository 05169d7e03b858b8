//! Deduplication: unchanged data adds nothing; a one-byte change adds about one chunk.

use crate::common::*;
use std::fs;

#[test]
fn unchanged_data_adds_no_pack_bytes() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    let first = env.backup_json(&[&src], &[]);
    let packs = env.pack_bytes();
    assert!(packs > 3 * 1024 * 1024);

    // With the parent shortcut (files not re-read) and with --force (re-read,
    // deduplicated by chunk id), nothing new is stored.
    let second = env.backup_json(&[&src], &[]);
    assert_eq!(second["parent"], first["snapshot"]);
    let third = env.backup_json(&[&src], &["--force"]);
    for j in [&second, &third] {
        assert_eq!(j["new_chunks"], 0, "{j}");
        assert_eq!(j["stored_bytes"], 0);
        assert_eq!(j["bytes"], first["bytes"]);
    }
    assert_eq!(env.pack_bytes(), packs);
    assert_eq!(env.repo_file("snapshots").len(), 3);
}

#[test]
fn a_one_byte_change_in_a_large_file_adds_about_one_chunk() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let mut data = pseudo_random(24 * 1024 * 1024, 3);
    fs::write(src.join("large.bin"), &data).unwrap();
    let first = env.backup_json(&[&src], &[]);
    let chunks = first["new_chunks"].as_u64().unwrap();
    assert!(chunks >= 10, "expected many chunks, got {chunks}");

    data[13 * 1024 * 1024] ^= 1;
    fs::write(src.join("large.bin"), &data).unwrap();
    let second = env.backup_json(&[&src], &[]);
    let added = second["new_chunks"].as_u64().unwrap();
    assert!((1..=2).contains(&added), "a one-byte change added {added} chunks");
    assert!(second["new_bytes"].as_u64().unwrap() <= 16 * 1024 * 1024);

    let target = env.path("out");
    env.coffer(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(fs::read(restored(&target, &src).join("large.bin")).unwrap(), data);
}

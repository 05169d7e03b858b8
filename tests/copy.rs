//! `copy` between two local repositories: what it refuses, and that a
//! failure leaves no snapshot in the destination (tests/s3.rs copies to S3
//! and back; tests/wal.rs copies base backups with their WAL).

use crate::common::*;
use std::fs;

/// A second repository, with a passphrase of its own.
const OTHER: &str = "the destination's own passphrase";

fn other() -> Env {
    let env = Env::empty();
    let r: Run = env
        .command()
        .env("COFFER_PASSWORD", OTHER)
        .args(["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"])
        .output()
        .unwrap()
        .into();
    r.ok();
    env
}

fn copy(from: &Env, to: &Env, args: &[&str]) -> Run {
    from.command()
        .env("COFFER_TO_PASSWORD", OTHER)
        .args(["copy", "--to", to.repo().to_str().unwrap()])
        .args(args)
        .output()
        .unwrap()
        .into()
}

fn snapshots(env: &Env) -> usize {
    let r: Run = env.command().env("COFFER_PASSWORD", OTHER).args(["snapshots", "--json"]).output().unwrap().into();
    r.ok().json().as_array().unwrap().len()
}

#[test]
fn a_damaged_source_chunk_fails_the_copy_and_leaves_no_snapshot() {
    let from = Env::new();
    let src = from.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("data"), pseudo_random(2 << 20, 9)).unwrap();
    from.backup_json(&[&src], &[]);
    let to = other();
    let packs = from.repo_file("data");
    assert_eq!(packs.len(), 1);
    flip_byte(&packs[0], 0.3);
    let r = copy(&from, &to, &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let pack = packs[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(r.stderr.contains(&pack[..16]) && r.stderr.lines().count() <= 2, "{}", r.stderr);
    assert_eq!(snapshots(&to), 0);
}

#[test]
fn copy_refuses_what_it_cannot_do_and_names_it() {
    let from = Env::new();
    // Nothing to copy is not a success.
    let to = other();
    let r = copy(&from, &to, &[]);
    assert!(r.code == 2 && r.stderr.contains("holds no snapshot"), "{} {}", r.code, r.stderr);
    let src = from.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    from.backup_json(&[&src], &[]);
    // Into itself.
    let r: Run = from
        .command()
        .env("COFFER_TO_PASSWORD", PASSPHRASE)
        .args(["copy", "--to", from.repo().to_str().unwrap()])
        .output()
        .unwrap()
        .into();
    assert!(r.code != 0 && r.stderr.contains("are the same repository"), "{}", r.stderr);
    // A destination that is not a repository, and a wrong destination passphrase.
    let r = copy(&from, &Env::empty(), &[]);
    assert!(r.code != 0 && r.stderr.contains("destination repository: no coffer repository at"), "{}", r.stderr);
    let r: Run = from
        .command()
        .env("COFFER_TO_PASSWORD", "wrong")
        .args(["copy", "--to", to.repo().to_str().unwrap()])
        .output()
        .unwrap()
        .into();
    assert!(
        r.stderr.contains("destination repository: wrong passphrase") && r.stderr.contains("COFFER_TO_PASSWORD"),
        "{}",
        r.stderr
    );
    assert_eq!(snapshots(&to), 0);
    // Without a destination passphrase and no terminal: an error, no prompt.
    let r: Run = from.command().args(["copy", "--to", to.repo().to_str().unwrap()]).output().unwrap().into();
    assert!(r.code != 0 && r.stderr.contains("COFFER_TO_PASSWORD_FILE"), "{}", r.stderr);
    // A snapshot that is not there.
    let r = copy(&from, &to, &["feedbeef"]);
    assert!(r.code != 0 && r.stderr.contains("feedbeef"), "{}", r.stderr);
    // And what works: one snapshot, then nothing new.
    copy(&from, &to, &["latest"]).ok();
    let again = copy(&from, &to, &["latest", "--json"]).ok().json();
    assert_eq!(again["already_copied"], 1, "{again}");
    assert_eq!(snapshots(&to), 1);
}

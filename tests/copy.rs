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

/// A nightly copy reads only what changed: the copying host keeps the
/// chunk names earlier copies made (sealed, in its cache). An altered
/// record is ignored, not trusted, and a chunk the destination lost since
/// (a prune there) is read and stored again.
#[test]
fn a_second_copy_reads_only_the_chunks_new_since_and_distrusts_its_record() {
    let from = Env::new();
    let src = from.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big"), pseudo_random(6 << 20, 1)).unwrap();
    fs::write(src.join("small"), pseudo_random(2 << 20, 2)).unwrap();
    from.backup_json(&[&src], &[]);
    let to = other();
    let first = copy(&from, &to, &["--json"]).ok().json();
    let all = first["chunks_read"].as_u64().unwrap();
    assert!(all >= 4, "{first}");

    fs::write(src.join("small"), pseudo_random(2 << 20, 3)).unwrap();
    from.backup_json(&[&src], &[]);
    let second = copy(&from, &to, &["--json"]).ok().json();
    assert_eq!(second["copied"], 1, "{second}");
    let read = second["chunks_read"].as_u64().unwrap();
    assert!(read >= 1 && read < all, "read {read} of the snapshot's chunks again: {second}");
    let restore = |env: &Env, out: &str| {
        let target = env.path(out);
        let r: Run = env
            .command()
            .env("COFFER_PASSWORD", OTHER)
            .args(["restore", "latest", "--target", target.to_str().unwrap()])
            .output()
            .unwrap()
            .into();
        r.ok();
        assert_eq!(fs::read(src.join("small")).unwrap(), fs::read(restored(&target, &src).join("small")).unwrap());
        assert_eq!(fs::read(src.join("big")).unwrap(), fs::read(restored(&target, &src).join("big")).unwrap());
    };
    restore(&to, "one");

    // The record altered: ignored, everything is read, and the copy is right.
    let record = fs::read_dir(from.path("cache/coffer/copy-maps")).unwrap().next().unwrap().unwrap().path();
    flip_byte(&record, 0.5);
    fs::write(src.join("small"), pseudo_random(2 << 20, 4)).unwrap();
    from.backup_json(&[&src], &[]);
    let third = copy(&from, &to, &["--json"]).ok().json();
    assert_eq!(third["chunks_read"].as_u64(), Some(all), "{third}");
    restore(&to, "two");

    // The destination forgets and prunes everything: named chunks it lost are stored again.
    let in_to =
        |args: &[&str]| -> Run { to.command().env("COFFER_PASSWORD", OTHER).args(args).output().unwrap().into() };
    let ids = snapshot_ids(&in_to(&["snapshots", "--json"]).ok().json());
    let mut forget = vec!["forget"];
    forget.extend(ids.iter().map(String::as_str));
    in_to(&forget).ok();
    in_to(&["prune", "--grace", "0s"]).ok();
    let again = copy(&from, &to, &["latest", "--json"]).ok().json();
    assert!(again["new_chunks"].as_u64().unwrap() >= all, "{again}");
    in_to(&["verify", "--read-data"]).ok();
    restore(&to, "three");
}

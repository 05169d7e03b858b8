//! Write-only keys (format 3): a key for the backup host that adds
//! snapshots, deduplicating against what is stored, but opens nothing: not
//! the snapshots written before it, not the ones it writes itself.

use crate::common::*;
use std::fs;
use std::path::{Path, PathBuf};

/// A write-only key file of `env`'s repository, made with the full key.
fn add_write_only_key(env: &Env) -> PathBuf {
    let file = env.path("backup-only.key");
    let j = env.coffer(&["key", "add-file", "--write-only", file.to_str().unwrap(), "--json"]).ok().json();
    assert!(j["action"].as_str().unwrap().contains("write-only"), "{j}");
    file
}

/// `coffer ARGS` opened with the key file only.
fn with_key(env: &Env, key: &Path, args: &[&str]) -> Run {
    env.command().env_remove("COFFER_PASSWORD").env("COFFER_PASSWORD_FILE", key).args(args).output().unwrap().into()
}

#[test]
fn a_write_only_key_backs_up_deduplicates_and_its_snapshots_restore_with_the_full_key() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    fs::write(src.join("big.bin"), pseudo_random(3 << 20, 41)).unwrap();
    let full = env.backup_json(&[&src], &[]);
    let key = add_write_only_key(&env);
    let packs = env.pack_bytes();

    // Its first backup has no parent it can read, so it reads every file,
    // but stores none of the chunks the full key's backup stored.
    let first = with_key(&env, &key, &["backup", "--json", src.to_str().unwrap()]).ok().json();
    assert_eq!(first["new_chunks"], 0, "{first}");
    assert_eq!(first["stored_bytes"], 0, "{first}");
    assert_eq!(first["bytes"], full["bytes"]);
    assert_eq!(env.pack_bytes(), packs);

    // The next run's parent is the snapshot it wrote (kept on this host):
    // unchanged files are not read again.
    let second = with_key(&env, &key, &["backup", "--json", src.to_str().unwrap()]).ok().json();
    assert_eq!(second["parent"], first["snapshot"], "{second}");
    assert_eq!(second["new_chunks"], 0, "{second}");

    // New data: stored under the run's envelope; the full key restores it.
    fs::write(src.join("new.bin"), pseudo_random(2 << 20, 42)).unwrap();
    fs::write(src.join("big.bin"), pseudo_random(3 << 20, 43)).unwrap();
    let third = with_key(&env, &key, &["backup", "--json", src.to_str().unwrap()]).ok().json();
    assert_eq!(third["parent"], second["snapshot"]);
    assert!(third["new_chunks"].as_u64().unwrap() >= 2, "{third}");
    let added = env.pack_bytes() - packs;
    assert!(added > 5 << 20 && added < 6 << 20, "stored {added} bytes for 5 MiB of new data");
    let target = env.path("out");
    let snap = third["snapshot"].as_str().unwrap();
    env.coffer(&["restore", snap, "--target", target.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&target, &src)));
    env.coffer(&["verify", "--read-data"]).ok();

    // A database-like stream too (what --stdin-from-command stores).
    let dump =
        with_key(&env, &key, &["backup", "--json", "--stdin-from-command", "seq 1 100000", "--stdin-filename", "seq"])
            .ok()
            .json();
    let out = env.coffer(&["dump", dump["snapshot"].as_str().unwrap(), "--stream", "seq"]).ok();
    assert_eq!(out.stdout, (1..=100000).map(|n| format!("{n}\n")).collect::<String>());
}

/// Everything but `backup` is refused with the key before it reads, on one
/// line naming the key and what needs a full key; nothing is changed.
#[test]
fn a_write_only_key_is_refused_for_everything_that_reads_or_deletes() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    let key = add_write_only_key(&env);
    let snap = with_key(&env, &key, &["backup", "--json", src.to_str().unwrap()]).ok().json();
    let snap = snap["snapshot"].as_str().unwrap().to_string();
    let target = env.path("out");
    let t = target.to_str().unwrap();
    let before = env.repo_state();
    let other = env.path("other-repo");
    let cases: Vec<Vec<&str>> = vec![
        vec!["restore", &snap, "--target", t],
        vec!["restore", &snap, "--target", t, "--dry-run"],
        vec!["show", &snap],
        vec!["ls", &snap],
        vec!["snapshots"],
        vec!["verify"],
        vec!["verify", "--read-data"],
        vec!["prune"],
        vec!["forget", "--keep-last", "1"],
        vec!["drill", &snap, "--pg-scratch", "postgresql://127.0.0.1:1/postgres"],
        vec!["copy", "--to", other.to_str().unwrap()],
        vec!["dump", &snap, "src/a.txt"],
        vec!["key", "list"],
        vec!["key", "remove", "0"],
        vec!["backup", "--force", src.to_str().unwrap()],
    ];
    for args in cases {
        let r = with_key(&env, &key, &args);
        assert_ne!(r.code, 0, "{args:?} succeeded with a write-only key");
        let line = r.stderr.trim();
        assert_eq!(line.lines().filter(|l| l.starts_with("coffer: error")).count(), 1, "{args:?}: {line}");
        assert!(line.contains("is write-only") && line.contains("full key"), "{args:?}: {line}");
        assert!(!line.contains("corrupt"), "{args:?}: {line}");
        assert!(!target.exists(), "{args:?} wrote into the target");
    }
    assert_eq!(env.repo_state(), before, "a refused command changed the repository");
    // Nor is it a copy's destination key.
    let source = Env::new();
    source.backup_json(&[&src], &[]);
    let r: Run = source
        .command()
        .env("COFFER_TO_PASSWORD_FILE", &key)
        .args(["copy", "--to", env.repo().to_str().unwrap()])
        .output()
        .unwrap()
        .into();
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("is write-only") && r.stderr.contains("destination"), "{}", r.stderr);
    assert_eq!(env.repo_state(), before, "a refused copy changed the repository");
    // JSON errors name the kind for scripts.
    let r = with_key(&env, &key, &["snapshots", "--json"]);
    assert!(r.stdout.contains("write_only") || r.stderr.contains("write_only"), "{}{}", r.stdout, r.stderr);
}

/// Prune (with the full key) repacks a write-only backup's chunks under the
/// repository key: what stays restores and verifies.
#[test]
fn prune_repacks_a_write_only_backups_chunks_and_they_still_restore() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("keep.bin"), pseudo_random(2 << 20, 7)).unwrap();
    fs::write(src.join("drop.bin"), pseudo_random(2 << 20, 8)).unwrap();
    let key = add_write_only_key(&env);
    let wo = with_key(&env, &key, &["backup", "--json", src.to_str().unwrap()]).ok().json();
    fs::remove_file(src.join("drop.bin")).unwrap();
    let kept = env.backup_json(&[&src], &[]);
    assert_eq!(kept["new_chunks"], 0, "{kept}");
    env.coffer(&["forget", wo["snapshot"].as_str().unwrap()]).ok();
    let pruned = env.coffer(&["prune", "--grace", "0s", "--max-unused", "1", "--json"]).ok().json();
    assert!(pruned["packs_repacked"].as_u64().unwrap() >= 1, "{pruned}");
    env.coffer(&["verify", "--read-data"]).ok();
    let target = env.path("out");
    env.coffer(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&target, &src)));
}

#[test]
fn write_only_keys_need_format_3_and_key_list_names_them() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let env = Env::empty();
    crate::fixture_repo::copy_dir(&fixtures.join("repo-v2"), &env.repo());
    let file = env.path("wo.key");
    let r: Run = env
        .command()
        .env("COFFER_PASSWORD", "fixture-v2-passphrase")
        .args(["key", "add-file", "--write-only", file.to_str().unwrap()])
        .output()
        .unwrap()
        .into();
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("format 3") && r.stderr.contains("coffer copy"), "{}", r.stderr);
    assert!(!file.exists());

    // key list says which keys are write-only.
    let env = Env::new();
    add_write_only_key(&env);
    let keys = env.coffer(&["key", "list", "--json"]).ok().json();
    let access: Vec<&str> = keys.as_array().unwrap().iter().map(|k| k["access"].as_str().unwrap()).collect();
    assert_eq!(access, ["full", "write-only"], "{keys}");
}

/// The nightly database dump with a write-only key: the full key restores
/// it into a new database identical to the source.
#[test]
fn a_database_dumped_with_a_write_only_key_restores_with_the_full_key() {
    use crate::common::pg::{self, unique, PG_PASSWORD};
    let cluster = pg::shared();
    let env = Env::new();
    let key = add_write_only_key(&env);
    let db = unique("writeonly");
    cluster.create_sample_db(&db, 1);
    let pg = |c: &mut std::process::Command| {
        c.env("PGPASSWORD", PG_PASSWORD).env("COFFER_PG_BIN_DIR", pg::bin_dir());
    };
    let mut c = env.command();
    pg(&mut c);
    let r: Run = c
        .env_remove("COFFER_PASSWORD")
        .env("COFFER_PASSWORD_FILE", &key)
        .args(["backup", "--json", "--pg", &cluster.url(&db)])
        .output()
        .unwrap()
        .into();
    let j = r.ok().json();
    assert_eq!(j["databases"], 1, "{j}");
    let copy = unique("wo_restored");
    cluster.create_db(&copy);
    let mut c = env.command();
    pg(&mut c);
    let r: Run = c
        .args(["restore", j["snapshot"].as_str().unwrap(), "--pg-target", &cluster.url(&copy)])
        .output()
        .unwrap()
        .into();
    r.ok();
    assert_eq!(cluster.plain_dump(&db), cluster.plain_dump(&copy));
}

/// Repair (full key) over a write-only backup's packs: with the indexes
/// gone it indexes them again with their envelopes; with a pack damaged it
/// keeps each sound chunk, sealed anew under the repository key.
#[test]
fn repair_reads_and_salvages_a_write_only_backups_packs() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    for i in 0..20 {
        fs::write(src.join(format!("f{i:02}.bin")), pseudo_random(64 << 10, 60 + i)).unwrap();
    }
    let key = add_write_only_key(&env);
    let wo = with_key(&env, &key, &["backup", "--json", src.to_str().unwrap()]).ok().json();
    let snap = wo["snapshot"].as_str().unwrap();

    for index in env.repo_file("index") {
        fs::remove_file(index).unwrap();
    }
    let j = env.coffer(&["repair", "--json"]).ok().json();
    assert!(j["snapshots_repaired"].as_array().unwrap().is_empty(), "nothing was lost: {j}");
    let out = env.path("out");
    env.coffer(&["restore", snap, "--target", out.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&out, &src)));

    let packs = env.repo_file("data");
    assert_eq!(packs.len(), 1);
    flip_byte(&packs[0], 0.5);
    let j = env.coffer(&["repair", "--read-data", "--json"]).ok().json();
    assert_eq!(j["chunks_salvaged"], 19, "{j}");
    env.coffer(&["verify", "--read-data"]).ok();
    let again = env.path("again");
    env.coffer(&["restore", "latest", "--target", again.to_str().unwrap()]).ok();
    let kept = restored(&again, &src);
    let names: Vec<_> = fs::read_dir(&kept).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 19);
    for name in names {
        assert_eq!(fs::read(kept.join(&name)).unwrap(), fs::read(src.join(&name)).unwrap());
    }
}

/// A write-only backup's envelope altered in place: in its manifest, the
/// full key refuses the snapshot as corrupt; in a pack's key block,
/// `verify --read-data` names the pack.
#[test]
fn an_altered_envelope_is_refused_by_name() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), pseudo_random(1 << 20, 90)).unwrap();
    let key = add_write_only_key(&env);
    let j = with_key(&env, &key, &["backup", "--json", src.to_str().unwrap()]).ok().json();
    let snap = j["snapshot"].as_str().unwrap().to_string();

    // The snapshot: key block (5 bytes), then the envelope; flip in its sealed session key.
    let manifest = env.repo().join("snapshots").join(&snap);
    let good = fs::read(&manifest).unwrap();
    let mut bad = good.clone();
    bad[5 + 40] ^= 1;
    fs::write(&manifest, &bad).unwrap();
    let r = env.coffer(&["show", &snap]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains(&format!("snapshot {snap}")) && r.stderr.contains("corrupt"), "{}", r.stderr);
    fs::write(&manifest, &good).unwrap();

    // The pack: its key block's envelope, just after the chunks.
    let packs = env.repo_file("data");
    assert_eq!(packs.len(), 1);
    let bytes = fs::read(&packs[0]).unwrap();
    let tail = u32::from_le_bytes(bytes[bytes.len() - 4..].try_into().unwrap()) as usize;
    let block = bytes.len() - 4 - tail;
    assert_eq!(bytes[block], 1, "a scheme-1 (envelope) key block");
    let mut bad = bytes.clone();
    bad[block + 5 + 50] ^= 1;
    fs::write(&packs[0], &bad).unwrap();
    let r = env.coffer(&["verify", "--read-data"]);
    assert_ne!(r.code, 0);
    let name = packs[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(r.stderr.contains(&name) || r.stdout.contains(&name), "{}{}", r.stdout, r.stderr);
    // A restore reads each chunk's key from the index, as a damaged pack
    // header does not stop one either: the chunks still authenticate.
    let out = env.path("out");
    env.coffer(&["restore", &snap, "--target", out.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&out, &src)));
}

/// PostgreSQL's archive_command with a write-only key: it stores WAL it
/// cannot read back; a retry of the same file is a success and other bytes
/// under its name, or another cluster's WAL in its stanza, are refused, by
/// the tags it can compute; the full key fetches every byte.
#[test]
fn wal_push_with_a_write_only_key_archives_and_refuses_as_the_full_key_does() {
    let env = Env::new();
    let key = add_write_only_key(&env);
    let seg = wal_segment(4242, 1);
    let path = env.path("000000010000000000000001");
    fs::write(&path, &seg).unwrap();
    let push =
        |p: &Path, stanza: &str| with_key(&env, &key, &["wal-push", "--json", "--stanza", stanza, p.to_str().unwrap()]);
    let first = push(&path, "db1").ok().json();
    assert_eq!(first["already_archived"], false, "{first}");
    let again = push(&path, "db1").ok().json();
    assert_eq!(again["already_archived"], true, "{again}");

    let mut other = seg.clone();
    other[9000] ^= 0xff;
    fs::write(&path, &other).unwrap();
    let r = push(&path, "db1");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is already archived in stanza db1 with other bytes"), "{}", r.stderr);

    let foreign = wal_segment(777, 2);
    let next = env.path("000000010000000000000002");
    fs::write(&next, &foreign).unwrap();
    let r = push(&next, "db1");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("holds the WAL of another cluster"), "{}", r.stderr);
    // The full key says the same of the write-only key's record.
    let r = env.coffer(&["wal-push", "--stanza", "db1", next.to_str().unwrap()]);
    assert!(r.stderr.contains("holds the WAL of the cluster with system identifier 4242"), "{}", r.stderr);

    // wal-fetch is refused with the write-only key, and gives the bytes back with the full one.
    let out = env.path("RECOVERYXLOG");
    let r = with_key(&env, &key, &["wal-fetch", "--stanza", "db1", "000000010000000000000001", out.to_str().unwrap()]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("is write-only") && !out.exists(), "{}", r.stderr);
    env.coffer(&["wal-fetch", "--stanza", "db1", "000000010000000000000001", out.to_str().unwrap()]).ok();
    assert_eq!(fs::read(&out).unwrap(), seg);
    env.coffer(&["verify"]).ok();

    // The tag is authenticated: altered, the object no longer opens.
    let stored = env.repo().join("wal/db1/000000010000000000000001");
    let mut bytes = fs::read(&stored).unwrap();
    bytes[3] ^= 1;
    fs::write(&stored, &bytes).unwrap();
    let r = env.coffer(&["verify", "--read-data"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("wal/db1/000000010000000000000001"), "{}", r.stderr);
}

/// A key object claiming to be write-only in a format-2 repository (which
/// has no recipient to seal to) is refused as corrupt, never used.
#[test]
fn a_write_only_key_object_in_a_version_2_repository_is_refused() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let env = Env::empty();
    crate::fixture_repo::copy_dir(&fixtures.join("repo-v2"), &env.repo());
    let keys = env.repo().join("keys");
    let original = fs::read_dir(&keys).unwrap().next().unwrap().unwrap().path();
    let mut key: serde_json::Value = serde_json::from_slice(&fs::read(&original).unwrap()).unwrap();
    key["access"] = "write-only".into();
    let bytes = serde_json::to_vec(&key).unwrap();
    let name = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    fs::write(keys.join(&name), &bytes).unwrap();
    fs::remove_file(&original).unwrap();
    let r: Run =
        env.command().env("COFFER_PASSWORD", "fixture-v2-passphrase").args(["snapshots"]).output().unwrap().into();
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains(&name) && r.stderr.contains("corrupt") && r.stderr.contains("format 1 or 2"),
        "{}",
        r.stderr
    );
}

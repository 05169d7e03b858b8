//! Repositories written by format versions 1, 2 and 3 are committed under
//! fixtures/repo-v1, -v2 and -v3 and must stay readable by every later coffer.

use crate::common::*;
use std::fs;
use std::path::Path;

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// Content and link targets only: git does not keep mtimes or most modes.
fn contents(root: &Path) -> Vec<String> {
    walk_all(root)
        .iter()
        .map(|p| {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = fs::symlink_metadata(p).unwrap();
            if m.file_type().is_symlink() {
                format!("{rel} -> {}", fs::read_link(p).unwrap().display())
            } else if m.is_dir() {
                format!("{rel}/")
            } else {
                format!("{rel} = {:?}", fs::read(p).unwrap().len())
                    + &format!(" {}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(fs::read(p).unwrap())))
            }
        })
        .collect()
}

/// The committed repository of this format version restores and verifies;
/// backing up the same tree again finds every chunk stored (the chunker and
/// chunk ids are as they were), and what this coffer writes there is of that
/// version (its digest algorithm included).
fn fixture_restores_and_verifies(version: u32) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let env = Env::empty();
    // Work on a copy: the test must not touch the committed fixture.
    copy_dir(&fixtures.join(format!("repo-v{version}")), &env.repo());
    let passphrase = format!("fixture-v{version}-passphrase");
    let run = |args: &[&str]| -> Run {
        env.command().env("COFFER_PASSWORD", &passphrase).args(args).output().unwrap().into()
    };
    let list = run(&["snapshots", "--json"]).ok().json();
    // Version 3's also holds a write-only key's snapshot (below).
    assert_eq!(list.as_array().unwrap().len(), if version >= 3 { 2 } else { 1 });
    assert_eq!(list[0]["tags"][0], format!("v{version}"));
    run(&["verify", "--read-data"]).ok();
    let target = env.path("out");
    let tag = format!("v{version}");
    run(&["restore", "latest", "--tag", &tag, "--target", target.to_str().unwrap()]).ok();
    assert_eq!(contents(&fixtures.join("sample-tree")), contents(&target.join("fixtures/sample-tree")));

    let tree = fixtures.join("sample-tree");
    let backup = run(&["backup", "--json", tree.to_str().unwrap()]).ok().json();
    assert_eq!(backup["new_chunks"], 0, "{backup}");
    assert!(backup["files"].as_u64().unwrap() > 0, "{backup}");
    let config: serde_json::Value = serde_json::from_slice(&fs::read(env.repo().join("config")).unwrap()).unwrap();
    assert_eq!(config["version"], version);
    let repo =
        coffer::Repository::open(std::sync::Arc::new(coffer::Local::new(env.repo())), passphrase.as_bytes()).unwrap();
    let id = coffer::Id::from_hex(backup["snapshot"].as_str().unwrap()).unwrap();
    let m = repo.load_snapshot(&id).unwrap();
    assert_eq!(m.version, version);
    let files = || m.entries().filter(|e| e.kind == coffer::EntryKind::File);
    match version {
        1 => assert!(files().all(|e| e.sha256.is_some() && e.blake3.is_none())),
        _ => assert!(files().all(|e| e.blake3.is_some() && e.sha256.is_none())),
    }
    run(&["verify", "--read-data"]).ok();
    let again = env.path("again");
    run(&["restore", &id.to_hex(), "--target", again.to_str().unwrap()]).ok();
    let stored = tree.strip_prefix("/").unwrap();
    assert_eq!(contents(&tree), contents(&again.join(stored)));
}

/// Written by coffer 0.1.0 (HMAC-SHA256 chunk ids, SHA-256 digests); it
/// stays version 1 when this coffer writes to it.
#[test]
fn the_version_1_fixture_repository_restores_and_verifies() {
    fixture_restores_and_verifies(1);
}

/// Written when the manifest gained `sparse` and `hardlink` (keyed BLAKE3).
#[test]
fn the_version_2_fixture_repository_restores_and_verifies() {
    fixture_restores_and_verifies(2);
}

/// Written when write-only keys came (key blocks, X25519 envelopes): one
/// snapshot by the full key, one by the committed write-only key file, whose
/// stream sits in a pack sealed under that run's session key, and a WAL
/// file that key archived.
#[test]
fn the_version_3_fixture_repository_restores_and_verifies() {
    fixture_restores_and_verifies(3);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let env = Env::empty();
    copy_dir(&fixtures.join("repo-v3"), &env.repo());
    let out: Run = env
        .command()
        .env("COFFER_PASSWORD", "fixture-v3-passphrase")
        .args(["dump", "latest", "--tag", "v3-write-only", "--stream", "note"])
        .output()
        .unwrap()
        .into();
    assert_eq!(out.ok().stdout, "written by a write-only key\n");
    // A WAL file the write-only key archived (a tagged WAL object) comes back.
    let dest = env.path("00000002.history");
    let r: Run = env
        .command()
        .env("COFFER_PASSWORD", "fixture-v3-passphrase")
        .args(["wal-fetch", "--stanza", "fixture", "00000002.history", dest.to_str().unwrap()])
        .output()
        .unwrap()
        .into();
    r.ok();
    assert_eq!(fs::read_to_string(&dest).unwrap(), "1\t0/3000000\tno recovery target specified\n");
    // The committed write-only key still backs up, and reads nothing.
    let key = fixtures.join("repo-v3-write-only.key");
    let with_key = |args: &[&str]| -> Run {
        env.command()
            .env_remove("COFFER_PASSWORD")
            .env("COFFER_PASSWORD_FILE", &key)
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    let tree = fixtures.join("sample-tree");
    let j = with_key(&["backup", "--json", tree.to_str().unwrap()]).ok().json();
    assert_eq!(j["new_chunks"], 0, "{j}");
    assert!(with_key(&["snapshots"]).stderr.contains("is write-only"));
}

#[test]
fn a_new_repository_is_version_3_with_blake3_digests() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.txt"), b"hello world").unwrap();
    let backup = env.backup_json(&[&src], &[]);
    let config: serde_json::Value = serde_json::from_slice(&fs::read(env.repo().join("config")).unwrap()).unwrap();
    assert_eq!(config["version"], coffer::FORMAT_VERSION);
    assert_eq!(coffer::FORMAT_VERSION, 3);
    let repo =
        coffer::Repository::open(std::sync::Arc::new(coffer::Local::new(env.repo())), PASSPHRASE.as_bytes()).unwrap();
    let m = repo.load_snapshot(&coffer::Id::from_hex(backup["snapshot"].as_str().unwrap()).unwrap()).unwrap();
    let file = m.entries().find(|e| e.kind == coffer::EntryKind::File).unwrap();
    assert_eq!(file.blake3.as_deref(), Some(blake3::hash(b"hello world").to_hex().as_str()));
    assert_eq!(file.sha256, None);
}

/// `copy` out of the version-1 fixture into a new (version 3) repository:
/// the copy's digests are BLAKE3, its chunks renamed with the new key, and
/// it restores the same tree and verifies.
#[test]
fn the_version_1_fixture_copies_into_a_version_3_repository() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let old = Env::empty();
    copy_dir(&fixtures.join("repo-v1"), &old.repo());
    let new = Env::new();
    let r: Run = old
        .command()
        .env("COFFER_PASSWORD", "fixture-v1-passphrase")
        .env("COFFER_TO_PASSWORD", PASSPHRASE)
        .args(["copy", "--json", "--to", new.repo().to_str().unwrap()])
        .output()
        .unwrap()
        .into();
    let j = r.ok().json();
    assert_eq!(j["copied"], 1, "{j}");
    new.coffer(&["verify", "--read-data"]).ok();
    let target = new.path("out");
    new.coffer(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(contents(&fixtures.join("sample-tree")), contents(&target.join("fixtures/sample-tree")));
    let repo =
        coffer::Repository::open(std::sync::Arc::new(coffer::Local::new(new.repo())), PASSPHRASE.as_bytes()).unwrap();
    let id = repo.find_snapshot("latest", &[]).unwrap();
    let m = repo.load_snapshot(&id).unwrap();
    assert_eq!(m.version, coffer::FORMAT_VERSION);
    assert!(m
        .entries()
        .filter(|e| e.kind == coffer::EntryKind::File)
        .all(|e| e.blake3.is_some() && e.sha256.is_none()));
}

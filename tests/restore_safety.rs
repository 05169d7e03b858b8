//! Hostile manifests and hostile targets: nothing is written outside the target.

use crate::common::*;
use coffer::{EntryKind, RawPath, Repository, Source};
use std::fs;
use std::sync::Arc;

fn repo(env: &Env) -> Repository {
    Repository::open(Arc::new(coffer::Local::new(env.repo())), PASSPHRASE.as_bytes()).unwrap()
}

/// Backs up a small tree and returns a copy of its manifest to tamper with.
fn base(env: &Env) -> coffer::Manifest {
    let src = env.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("sub/file.txt"), b"payload").unwrap();
    env.backup_json(&[&src], &[]);
    let r = repo(env);
    let id = r.find_snapshot("latest", &[]).unwrap();
    r.load_snapshot(&id).unwrap()
}

fn with_entry_paths(mut m: coffer::Manifest, f: impl Fn(&mut Vec<coffer::Entry>)) -> coffer::Manifest {
    match &mut m.sources[0] {
        Source::Tree(t) => f(&mut t.entries),
        _ => panic!("expected a tree source"),
    }
    m
}

fn restore_refused(env: &Env, snapshot: &coffer::Id, must_say: &str) {
    let target = env.path("target");
    let r = env.coffer(&["restore", &snapshot.to_hex(), "--target", target.to_str().unwrap()]);
    assert_eq!(r.code, 1, "hostile restore succeeded: {}", r.stdout);
    assert!(r.stderr.contains(must_say), "{}", r.stderr);
}

#[test]
fn dot_dot_and_absolute_paths_are_refused_before_writing() {
    for bad in [&b"../escaped.txt"[..], b"/tmp/coffer-escaped.txt", b"a/../../escaped.txt"] {
        let env = Env::new();
        let m = base(&env);
        let m = with_entry_paths(m, |entries| {
            let file = entries.iter().find(|e| e.kind == EntryKind::File).unwrap().clone();
            entries.push(coffer::Entry { path: RawPath(bad.to_vec()), ..file });
        });
        let id = repo(&env).save_snapshot(&m).unwrap();
        restore_refused(&env, &id, "unsafe entry");
        assert!(!env.path("target").exists(), "restore wrote before refusing");
        assert!(!env.path("escaped.txt").exists());
        assert!(!std::path::Path::new("/tmp/coffer-escaped.txt").exists());
        // verify reports the same manifest as unsafe.
        let v = env.coffer(&["verify"]);
        assert_eq!(v.code, 1);
        assert!(v.stderr.contains("unsafe entry"), "{}", v.stderr);
    }
}

#[test]
fn a_symlink_in_the_manifest_cannot_redirect_a_file() {
    let env = Env::new();
    let outside = env.path("outside");
    fs::create_dir_all(&outside).unwrap();
    let m = base(&env);
    let m = with_entry_paths(m, |entries| {
        let file = entries.iter().find(|e| e.kind == EntryKind::File).unwrap().clone();
        let mut link = file.clone();
        link.kind = EntryKind::Symlink;
        link.path = RawPath(b"evil".to_vec());
        link.target = Some(RawPath(outside.to_str().unwrap().as_bytes().to_vec()));
        link.chunks.clear();
        (link.sha256, link.blake3) = (None, None);
        link.size = 0;
        entries.insert(0, link);
        entries.push(coffer::Entry { path: RawPath(b"evil/pwned.txt".to_vec()), ..file });
    });
    let id = repo(&env).save_snapshot(&m).unwrap();
    restore_refused(&env, &id, "evil");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "a file escaped through the symlink");
}

#[test]
fn a_path_listed_twice_or_below_a_file_is_refused_before_writing() {
    for (case, below) in [("twice", false), ("below a file", true)] {
        let env = Env::new();
        let m = base(&env);
        let m = with_entry_paths(m, |entries| {
            let file = entries.iter().find(|e| e.kind == EntryKind::File).unwrap().clone();
            let mut path = file.path.0.clone();
            if below {
                path.extend_from_slice(b"/inner.txt");
            }
            entries.push(coffer::Entry { path: RawPath(path), ..file });
        });
        let shown = m.entries().find(|e| e.kind == EntryKind::File).unwrap().path.display();
        let id = repo(&env).save_snapshot(&m).unwrap();
        restore_refused(&env, &id, "unsafe entry");
        let r = env.coffer(&["restore", &id.to_hex(), "--target", env.path("target").to_str().unwrap()]);
        let reason = if below { format!("is inside {shown}, which is a file") } else { "listed twice".into() };
        assert!(r.stderr.contains(&reason), "{case}: {}", r.stderr);
        assert!(!env.path("target").exists(), "{case}: restore wrote before refusing");
        let v = env.coffer(&["verify"]);
        assert_eq!(v.code, 1, "{case}: verify passed a manifest restore refuses");
        assert!(v.stderr.contains("unsafe entry"), "{case}: {}", v.stderr);
    }
}

#[test]
fn an_existing_symlink_in_the_target_is_not_followed() {
    let env = Env::new();
    let _ = base(&env);
    let src = env.path("src");
    let outside = env.path("outside");
    fs::create_dir_all(&outside).unwrap();
    let target = env.path("target");
    let root = restored(&target, &src);
    fs::create_dir_all(&root).unwrap();
    std::os::unix::fs::symlink(&outside, root.join("sub")).unwrap();
    let r = env.coffer(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("symlink"), "{}", r.stderr);
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "a file escaped through the symlink");
}

#[test]
fn a_manifest_whose_file_content_mismatches_is_refused_and_leaves_no_file() {
    let env = Env::new();
    let m = base(&env);
    let m = with_entry_paths(m, |entries| {
        for e in entries.iter_mut().filter(|e| e.kind == EntryKind::File) {
            e.blake3 = Some("00".repeat(32));
        }
    });
    let id = repo(&env).save_snapshot(&m).unwrap();
    restore_refused(&env, &id, "does not match the manifest's blake3");
    let files: Vec<_> = walk_all(&env.path("target")).into_iter().filter(|p| !p.is_dir()).collect();
    assert!(files.is_empty(), "a file that failed its check was left: {files:?}");
}

#[test]
fn a_restore_killed_while_writing_leaves_no_file_behind() {
    use std::time::{Duration, Instant};
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    // Incompressible, so that restoring it takes a while.
    fs::write(src.join("big.bin"), pseudo_random(96 << 20, 7)).unwrap();
    env.coffer(&["backup", src.to_str().unwrap()]).ok();

    let target = env.path("target");
    let mut child = env
        .command()
        .args(["restore", "latest", "--target", target.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Caught in the act: it holds a file open under the target.
    let fds = format!("/proc/{}/fd", child.id());
    let deadline = Instant::now() + Duration::from_secs(60);
    let writing = loop {
        let open_there = fs::read_dir(&fds)
            .map(|d| d.flatten().any(|e| fs::read_link(e.path()).is_ok_and(|l| l.starts_with(&target))))
            .unwrap_or(false);
        if open_there || child.try_wait().unwrap().is_some() || Instant::now() > deadline {
            break open_there;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    assert!(writing, "the restore was not caught writing");
    child.kill().unwrap();
    child.wait().unwrap();
    let left: Vec<_> = walk_all(&target).into_iter().filter(|p| !p.is_dir()).collect();
    assert!(left.is_empty(), "a killed restore left {left:?}");
}

#[test]
fn a_chunk_whose_plaintext_is_not_its_indexed_size_is_refused() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big.bin"), pseudo_random(4 << 20, 9)).unwrap();
    env.backup_json(&[&src], &[]);
    let r = repo(&env);
    let snapshot = r.find_snapshot("latest", &[]).unwrap();
    let old = r.list_ids(coffer::Kind::Index).unwrap();
    assert_eq!(old.len(), 1);
    // Two chunks of the file trade a byte: their sizes still add up to the
    // file's, so only the check of each chunk's size can catch it.
    let mut file = r.load_index_file(&old[0]).unwrap();
    let chunks = &mut file.packs[0].chunks;
    assert!(chunks.len() >= 2, "the file should span several chunks");
    chunks[0].size += 1;
    chunks[1].size -= 1;
    r.save_index(file.packs).unwrap();
    fs::remove_file(env.repo().join("index").join(old[0].to_hex())).unwrap();
    restore_refused(&env, &snapshot, "is not its indexed size");
    let files: Vec<_> = walk_all(&env.path("target")).into_iter().filter(|p| !p.is_dir()).collect();
    assert!(files.is_empty(), "a file that failed its check was left: {files:?}");
}

/// Root restores into a folder another user can write to (as /tmp/drill
/// would be), while that user renames each folder the restore made and puts
/// a symlink to another place in its stead: nothing ever lands there.
#[test]
fn a_restore_as_root_never_writes_outside_its_target_while_another_user_swaps_in_symlinks() {
    use std::os::unix::fs::PermissionsExt;
    if !coffer::is_root() {
        eprintln!("not root: the attack on a root restore is not tried here");
        return;
    }
    let env = Env::new();
    let src = env.path("src");
    for d in 0..40 {
        let dir = src.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..100 {
            fs::write(dir.join(format!("f{f:02}")), format!("file {f} of {d}")).unwrap();
        }
    }
    env.backup_json(&[&src], &[]);
    let rel = src.strip_prefix("/").unwrap();
    // The attacker (nobody) can reach the arena and the place it aims at.
    let open = |p: &std::path::Path, mode| fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
    open(env.dir.path(), 0o711);
    let arena = env.path("arena");
    let outside = env.path("outside");
    for p in [&arena, &outside] {
        fs::create_dir_all(p).unwrap();
        open(p, 0o777);
    }
    let rounds = 6;
    // The attacker's own folders down to where the restore makes its own.
    for r in 0..rounds {
        let mut p = arena.join(format!("r{r}"));
        fs::create_dir_all(p.join(rel)).unwrap();
        for comp in rel.components() {
            std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
            p.push(comp);
        }
        std::os::unix::fs::chown(&p, Some(65534), Some(65534)).unwrap();
    }
    // Fast (no process per swap, perl is on every Debian): each folder the
    // restore makes is swapped for a symlink within microseconds.
    let script = format!(
        "while (1) {{ for my $d (glob('{arena}/r*/{rel}/d[0-9][0-9]')) {{ \
         next if -l $d; rename($d, \"$d.x\") and symlink('{outside}', $d); }} }}",
        arena = arena.display(),
        rel = rel.display(),
        outside = outside.display()
    );
    let mut attacker = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--", "/usr/bin/perl", "-e", &script])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut swapped = 0;
    for r in 0..rounds {
        let target = arena.join(format!("r{r}"));
        // It may fail (a folder was swapped for a symlink) or complete: either way, only inside.
        let _ = env.coffer(&["restore", "latest", "--target", target.to_str().unwrap()]);
        let landed = walk_all(&outside);
        assert!(landed.is_empty(), "round {r}: written outside the target: {:?}", &landed[..landed.len().min(5)]);
        swapped += walk_all(&target).iter().filter(|p| p.extension().is_some_and(|e| e == "x")).count();
        if std::time::Instant::now() > deadline {
            break;
        }
    }
    attacker.kill().unwrap();
    attacker.wait().unwrap();
    assert!(swapped > 0, "the attacker never swapped a folder: the test proved nothing");
}

/// Restored by an ordinary user, a setuid or setgid file becomes that
/// user's: the bits are dropped (as tar does), never a set-id program of
/// someone else's; the rest of its mode stays.
#[test]
fn a_restore_by_an_ordinary_user_drops_setuid_and_setgid_bits_it_cannot_keep() {
    use std::os::unix::fs::PermissionsExt;
    if !coffer::is_root() {
        eprintln!("not root: cannot restore as another user here");
        return;
    }
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("tool"), b"#!/bin/sh\n").unwrap();
    fs::set_permissions(src.join("tool"), fs::Permissions::from_mode(0o6755)).unwrap();
    env.backup_json(&[&src], &[]);
    let status = std::process::Command::new("chmod").args(["-R", "a+rX"]).arg(env.repo()).status().unwrap();
    assert!(status.success());
    fs::set_permissions(env.dir.path(), fs::Permissions::from_mode(0o711)).unwrap();
    let target = env.path("out");
    fs::create_dir_all(&target).unwrap();
    fs::set_permissions(&target, fs::Permissions::from_mode(0o777)).unwrap();
    let mut c = env.command_through(&["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
    let r: Run = c.args(["restore", "latest", "--target"]).arg(&target).output().unwrap().into();
    r.ok();
    let mode = fs::metadata(restored(&target, &src).join("tool")).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755, "restored as nobody: {mode:o}");
}

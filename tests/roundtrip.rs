//! Byte-for-byte round trips and partial restores.

use crate::common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;

#[test]
fn every_entry_kind_round_trips_byte_for_byte() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    let summary = env.backup_json(&[&src], &["--tag", "test"]);
    assert_eq!(summary["unreadable"].as_array().unwrap().len(), 0);
    let id = summary["snapshot"].as_str().unwrap().to_string();

    let target = env.path("out");
    env.coffer(&["restore", &id[..8], "--target", target.to_str().unwrap()]).ok();
    let restored_root = restored(&target, &src);
    assert_eq!(describe(&src), describe(&restored_root));
    // The root directory itself keeps its metadata too.
    let (a, b) = (fs::metadata(&src).unwrap(), fs::metadata(&restored_root).unwrap());
    use std::os::unix::fs::MetadataExt;
    assert_eq!((a.mode(), a.mtime()), (b.mode(), b.mtime()));
    // No temporary files are left behind.
    assert!(walk_all(&target).iter().all(|p| !p.to_string_lossy().contains(".coffer-")));
    env.coffer(&["verify", "--read-data"]).ok();
}

#[test]
fn a_restore_over_a_partial_copy_reports_and_replaces_only_what_was_there() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    env.backup_json(&[&src], &[]);

    // An earlier, partial restore: one directory with an edited file and a
    // stray one; everything else (docs/deep/, private/, ...) is missing.
    let target = env.path("out");
    let root = restored(&target, &src);
    fs::create_dir_all(root.join("docs")).unwrap();
    fs::write(root.join("docs/readme.md"), b"local edit").unwrap();
    fs::write(root.join("docs/local-only.txt"), b"mine").unwrap();
    let j = env.coffer(&["restore", "latest", "--target", target.to_str().unwrap(), "--json"]).ok().json();
    let over: Vec<&str> = j["overwritten"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(over.len(), 1, "{over:?}");
    assert!(over[0].ends_with("docs/readme.md"), "{over:?}");

    // Every backed-up entry is restored (the directories created on the way
    // as much as the one that existed), and the stray file is left alone.
    let mut got = describe(&root);
    let stray = got.iter().position(|l| l.starts_with("docs/local-only.txt")).expect("the stray file is kept");
    got.remove(stray);
    assert_eq!(describe(&src), got);
}

#[test]
fn relative_paths_are_stored_as_given_and_latest_resolves() {
    let env = Env::new();
    make_rich_tree(&env.path("rel/tree"));
    let r = env.command().current_dir(env.dir.path()).args(["backup", "rel/tree"]).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let target = env.path("out");
    env.coffer(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(describe(&env.path("rel/tree")), describe(&target.join("rel/tree")));
}

#[test]
fn include_and_exclude_restore_exactly_the_matching_entries() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    env.backup_json(&[&src], &[]);
    let prefix = src.strip_prefix("/").unwrap().to_str().unwrap().to_string();

    let target = env.path("part");
    env.coffer(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--include",
        &format!("{prefix}/docs"),
        "--exclude",
        "*.bak",
    ])
    .ok();
    let root = restored(&target, &src);
    let mut got: Vec<String> = walk_all(&root.join("docs"))
        .iter()
        .map(|p| p.strip_prefix(&root).unwrap().to_string_lossy().into_owned())
        .collect();
    got.sort();
    assert_eq!(got, ["docs/deep", "docs/deep/deeper", "docs/deep/deeper/notes.txt", "docs/readme.md"]);
    // Nothing outside docs/ was restored (only the parent directories).
    let top: Vec<_> = fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(top, ["docs"]);
    assert_eq!(fs::read(root.join("docs/readme.md")).unwrap(), b"# hello\n");

    // A name pattern selects files anywhere in the tree.
    let t2 = env.path("part2");
    env.coffer(&["restore", "latest", "--target", t2.to_str().unwrap(), "--include", "*.txt"]).ok();
    let files: Vec<_> = walk_all(&t2).into_iter().filter(|p| p.is_file()).collect();
    assert_eq!(files.len(), 3, "{files:?}"); // notes.txt, secret.txt, the latin-1 .txt
}

#[test]
fn snapshots_show_and_json_parse() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    env.backup_json(&[&src], &["--tag", "nightly"]);
    env.backup_json(&[&src], &["--tag", "manual"]);
    let list = env.coffer(&["snapshots", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    let tagged = env.coffer(&["snapshots", "--json", "--tag", "nightly"]).ok().json();
    assert_eq!(tagged.as_array().unwrap().len(), 1);
    let show = env.coffer(&["show", "latest", "--json"]).ok().json();
    assert_eq!(show["manifest"]["tags"][0], "manual");
    assert!(show["manifest"]["sources"][0]["entries"].as_array().unwrap().len() > 10);
    let latest_nightly = env.coffer(&["show", "latest", "--tag", "nightly", "--json"]).ok().json();
    assert_eq!(latest_nightly["id"], tagged[0]["id"]);
    env.coffer(&["verify", "--json"]).ok().json();
    let missing = env.coffer(&["show", "deadbeef"]);
    assert_eq!(missing.code, 1);
    assert!(missing.stderr.contains("no snapshot matches \"deadbeef\""), "{}", missing.stderr);
}

#[test]
fn unreadable_files_are_listed_and_exit_3() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("ok.txt"), b"fine").unwrap();
    // A file its reader may not read; root reads anything, so as root the
    // backup runs as nobody, in a workspace that nobody owns.
    fs::write(src.join("secret"), b"not for you").unwrap();
    fs::set_permissions(src.join("secret"), fs::Permissions::from_mode(0o000)).unwrap();
    let mut c = if coffer::is_root() {
        let chown =
            std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(env.dir.path()).status().unwrap();
        assert!(chown.success());
        env.command_through(&["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"])
    } else {
        env.command()
    };
    let r: Run = c.args(["backup".as_ref(), "--json".as_ref(), src.as_os_str()]).output().unwrap().into();
    assert_eq!(r.code, 3, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["unreadable"].as_array().unwrap().len(), 1);
    assert!(r.stderr.contains("secret") && r.stderr.contains("ermission denied"), "{}", r.stderr);
    // The snapshot was committed with what could be read.
    assert!(j["snapshot"].is_string());
    assert_eq!(j["files"], 1);
}

/// Named pipes, sockets and (as root) device nodes are stored as entries
/// and made again by a restore, as tar and restic do: no warning, no exit 3.
#[test]
fn fifos_sockets_and_devices_are_stored_and_made_again() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("ok.txt"), b"fine").unwrap();
    let c = std::ffi::CString::new(src.join("pipe").to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o640) }, 0);
    let _listener = std::os::unix::net::UnixListener::bind(src.join("sock")).unwrap();
    // The same device as /dev/null (1, 3), where this runs as root with the
    // right to make devices (a container may lack CAP_MKNOD).
    let root = coffer::is_root()
        && std::process::Command::new("mknod").arg(src.join("null")).args(["c", "1", "3"]).status().unwrap().success();
    for p in walk_all(&src) {
        set_mtime(&p, 1_650_000_000, 0);
    }
    let r = env.coffer_os(&["backup".as_ref(), "--json".as_ref(), src.as_os_str()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.is_empty(), "no warning: {}", r.stderr);
    let ls = env.coffer(&["ls", "latest", src.to_str().unwrap(), "-l"]).ok().stdout;
    assert!(ls.lines().any(|l| l.starts_with("prw-r-----") && l.ends_with("/pipe")), "{ls}");
    assert!(ls.lines().any(|l| l.starts_with('s') && l.ends_with("/sock")), "{ls}");

    let target = env.path("out");
    let j = env.coffer(&["restore", "latest", "--target", target.to_str().unwrap(), "--json"]).ok().json();
    assert_eq!(j["specials"], if root { 3 } else { 2 });
    let out = restored(&target, &src);
    let pipe = fs::symlink_metadata(out.join("pipe")).unwrap();
    assert!(pipe.file_type().is_fifo());
    assert_eq!(pipe.mode() & 0o7777, 0o640, "the recorded mode, not the umask's");
    assert_eq!(pipe.mtime(), 1_650_000_000);
    assert!(fs::symlink_metadata(out.join("sock")).unwrap().file_type().is_socket());
    assert_eq!(fs::read(out.join("ok.txt")).unwrap(), b"fine");
    if root {
        let null = fs::symlink_metadata(out.join("null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), fs::symlink_metadata(src.join("null")).unwrap().rdev());
        // As anyone else, a device node is named as not restored; the rest is.
        let other = env.path("out-nobody");
        fs::create_dir_all(&other).unwrap();
        let chown =
            std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(env.dir.path()).status().unwrap();
        assert!(chown.success());
        let r: Run = env
            .command_through(&["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .args(["restore", "latest", "--json", "--target", other.to_str().unwrap()])
            .output()
            .unwrap()
            .into();
        assert_eq!(r.code, 0, "{}", r.stderr);
        let j = r.json();
        let not = j["not_restored"].as_array().unwrap();
        assert_eq!(not.len(), 1, "{j}");
        assert!(not[0].as_str().unwrap().contains("character device"), "{j}");
        assert!(r.stderr.contains("not restored") && r.stderr.contains("null"), "{}", r.stderr);
        assert!(fs::symlink_metadata(restored(&other, &src).join("pipe")).unwrap().file_type().is_fifo());
    }
}

#[test]
fn a_missing_source_path_fails_before_anything_is_written() {
    let env = Env::new();
    let before = env.repo_state();
    let r = env.coffer(&["backup", env.path("nope").to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("nope"), "{}", r.stderr);
    assert_eq!(before, env.repo_state());
}

#[test]
fn overlapping_source_paths_are_refused_before_anything_is_written() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    let before = env.repo_state();
    let (outer, inner) = (src.to_str().unwrap(), src.join("sub"));
    let same = format!("{outer}/./");
    for (paths, says) in [
        ([inner.to_str().unwrap(), outer], format!("{} is inside {outer}", inner.display())),
        ([outer, same.as_str()], format!("{same} is the same as {outer}")),
    ] {
        let r = env.coffer(&["backup", paths[0], paths[1]]);
        assert_eq!(r.code, 1, "{paths:?}: {}", r.stdout);
        assert!(r.stderr.contains(&says), "{paths:?}: {}", r.stderr);
        assert_eq!(before, env.repo_state());
    }
    // Siblings whose names share a prefix do not overlap.
    fs::create_dir_all(env.path("src2")).unwrap();
    let r = env.coffer(&["backup", outer, env.path("src2").to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn excludes_and_one_file_system_at_backup() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    let j = env.backup_json(&[&src], &["--exclude", "*.bak", "--exclude", "private", "-x"]);
    let show = env.coffer(&["show", j["snapshot"].as_str().unwrap(), "--json"]).ok().json();
    let paths: Vec<String> = show["manifest"]["sources"][0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().map(String::from).unwrap_or_default())
        .collect();
    assert!(!paths.iter().any(|p| p.ends_with(".bak") || p.contains("/private")), "{paths:?}");
    assert!(paths.iter().any(|p| p.ends_with("docs/readme.md")));
}

#[test]
fn a_file_changing_while_it_is_read_is_flagged() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let growing = src.join("growing.log");
    fs::write(&growing, pseudo_random(64 * 1024 * 1024, 9)).unwrap();
    fs::write(src.join("still.txt"), b"unchanged").unwrap();
    // Appends a byte every millisecond until the backup is done.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, growing) = (stop.clone(), growing.clone());
        std::thread::spawn(move || {
            use std::io::Write;
            let mut f = fs::OpenOptions::new().append(true).open(growing).unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                f.write_all(b"x").unwrap();
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        })
    };
    let r = env.coffer_os(&["backup".as_ref(), "--json".as_ref(), src.as_os_str()]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    let j = r.ok().json();
    let changed: Vec<String> =
        j["changed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(changed[0].ends_with("growing.log"));
    let show = env.coffer(&["show", "latest", "--json"]).ok().json();
    let entries = show["manifest"]["sources"][0]["entries"].as_array().unwrap().clone();
    let flagged: Vec<_> = entries.iter().filter(|e| e["changed"] == true).collect();
    assert_eq!(flagged.len(), 1);
    assert!(flagged[0]["path"].as_str().unwrap().ends_with("growing.log"));
    assert!(show["manifest"]["warnings"][0].as_str().unwrap().contains("changed while read"));
}

#[test]
fn one_file_system_does_not_descend_into_other_mounts() {
    let env = Env::new();
    let src = env.path("src");
    let inner = src.join("mnt");
    fs::create_dir_all(&inner).unwrap();
    fs::write(src.join("here.txt"), b"same fs").unwrap();
    let mounted = std::process::Command::new("mount").args(["-t", "tmpfs", "tmpfs"]).arg(&inner).output();
    if !matches!(&mounted, Ok(o) if o.status.success()) {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(inner.clone());
    fs::write(inner.join("other-fs.txt"), b"other fs").unwrap();

    let paths = |extra: &[&str]| -> Vec<String> {
        let j = env.backup_json(&[&src], extra);
        let show = env.coffer(&["show", j["snapshot"].as_str().unwrap(), "--json"]).ok().json();
        show["manifest"]["sources"][0]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_string())
            .collect()
    };
    let all = paths(&["--force"]);
    assert!(all.iter().any(|p| p.ends_with("mnt/other-fs.txt")), "{all:?}");
    let one = paths(&["--force", "--one-file-system"]);
    assert!(one.iter().any(|p| p.ends_with("/mnt")), "the mount point itself is kept: {one:?}");
    assert!(!one.iter().any(|p| p.ends_with("other-fs.txt")), "{one:?}");
    assert!(one.iter().any(|p| p.ends_with("here.txt")));
}

#[test]
fn verify_max_age_fails_when_the_newest_snapshot_is_stale() {
    let env = Env::new();
    let r = env.coffer(&["verify", "--max-age", "26h"]);
    assert_eq!(r.code, 1, "an empty repository is not fresh");
    assert!(r.stderr.contains("no snapshot at all"), "{}", r.stderr);

    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), b"a").unwrap();
    env.backup_json(&[&src], &["--tag", "nightly"]);
    env.coffer(&["verify", "--max-age", "26h"]).ok();

    // Age the snapshot by 30 hours: rewrite its manifest with an older time.
    let repo =
        coffer::Repository::open(std::sync::Arc::new(coffer::Local::new(env.repo())), PASSPHRASE.as_bytes()).unwrap();
    let id = repo.find_snapshot("latest", &[]).unwrap();
    let mut m = repo.load_snapshot(&id).unwrap();
    m.time -= chrono::Duration::hours(30);
    repo.save_snapshot(&m).unwrap();
    fs::remove_file(env.repo().join("snapshots").join(id.to_hex())).unwrap();

    let r = env.coffer(&["verify", "--max-age", "26h", "--tag", "nightly"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("tagged nightly") && r.stderr.contains("older than --max-age 26.0h"), "{}", r.stderr);
    let j = env.coffer(&["verify", "--max-age", "2d", "--json"]).ok().json();
    assert!(j["newest_age_secs"].as_f64().unwrap() > 29.0 * 3600.0);
    let r = env.coffer(&["verify", "--max-age", "2d", "--tag", "manual"]);
    assert_eq!(r.code, 1, "no snapshot with that tag");
}

#[test]
fn a_progress_line_on_a_terminal_and_none_without_one() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("big.bin"), pseudo_random(96 * 1024 * 1024, 21)).unwrap();
    fs::write(src.join("small.txt"), b"small").unwrap();

    // Without a terminal: the summary, no progress line.
    let r = env.coffer_os(&["backup".as_ref(), "-v".as_ref(), src.as_os_str()]).ok();
    assert!(!r.stderr.contains("ETA") && !r.stdout.contains("ETA"), "{}", r.stderr);
    assert!(r.stderr.contains("opened repository") && r.stderr.contains("no parent snapshot"), "-v logs: {}", r.stderr);

    // On a terminal (script gives coffer a pseudo-terminal): a bar, the
    // percentage, bytes and files of the totals, throughput, ETA.
    let cmd = format!("{} backup --force {}", bin(), src.display());
    let r: Run = {
        let mut c = std::process::Command::new("script");
        c.args(["-qec", &cmd, "/dev/null"])
            .env("COFFER_PASSWORD", PASSPHRASE)
            .env("COFFER_REPOSITORY", env.repo())
            .stdin(std::process::Stdio::null());
        c.output().unwrap().into()
    };
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains("/2 files") && r.stdout.contains("/96.00 MiB") && r.stdout.contains("ETA"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("100%") && !r.stdout.contains("3/2 files"), "{}", r.stdout);
    assert!(r.stdout.contains("snapshot") && r.stdout.contains("saved"));
}

#[test]
fn hard_links_come_back_as_links_and_sparse_files_with_their_holes() {
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt;
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(src.join("sub")).unwrap();
    fs::write(src.join("a.txt"), b"one file, three names").unwrap();
    fs::hard_link(src.join("a.txt"), src.join("b.txt")).unwrap();
    fs::hard_link(src.join("a.txt"), src.join("sub/c.txt")).unwrap();
    // 64 MiB with 1 MiB of data at its start and 1 MiB at 40 MiB: the rest is holes.
    let mut sparse = fs::File::create(src.join("sparse.img")).unwrap();
    sparse.write_all(&pseudo_random(1 << 20, 3)).unwrap();
    sparse.seek(SeekFrom::Start(40 << 20)).unwrap();
    sparse.write_all(&pseudo_random(1 << 20, 4)).unwrap();
    sparse.set_len(64 << 20).unwrap();
    drop(sparse);
    let allocated = |p: &std::path::Path| fs::metadata(p).unwrap().blocks() * 512;
    if allocated(&src.join("sparse.img")) >= 32 << 20 {
        eprintln!("this filesystem does not keep holes: the sparse half is not tried");
    }
    env.backup_json(&[&src], &[]);
    let j = env.coffer(&["show", "latest", "--json"]).ok().json();
    let entries = j["manifest"]["sources"][0]["entries"].as_array().unwrap().clone();
    let by_name = |n: &str| entries.iter().find(|e| e["path"].as_str().unwrap().ends_with(n)).unwrap().clone();
    assert!(by_name("/a.txt")["hardlink"].is_null());
    assert!(by_name("/b.txt")["hardlink"].as_str().unwrap().ends_with("/a.txt"));
    assert!(by_name("/sub/c.txt")["hardlink"].as_str().unwrap().ends_with("/a.txt"));

    let target = env.path("out");
    env.coffer(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    let out = restored(&target, &src);
    assert_eq!(describe(&out), describe(&src));
    let ino = |p: &str| fs::metadata(out.join(p)).unwrap().ino();
    assert_eq!((ino("a.txt"), ino("a.txt")), (ino("b.txt"), ino("sub/c.txt")), "one inode, three names");
    assert_eq!(fs::metadata(out.join("a.txt")).unwrap().nlink(), 3);
    let source_blocks = allocated(&src.join("sparse.img"));
    if source_blocks < 32 << 20 {
        assert!(by_name("/sparse.img")["sparse"] == true, "{}", by_name("/sparse.img"));
        let restored_blocks = allocated(&out.join("sparse.img"));
        assert!(restored_blocks <= source_blocks + (8 << 20), "restored fully allocated: {restored_blocks} bytes");
    }

    // A partial restore without the first name writes the link as a file of its own.
    let part = env.path("part");
    let include = format!("{}/b.txt", src.strip_prefix("/").unwrap().display());
    env.coffer(&["restore", "latest", "--target", part.to_str().unwrap(), "--include", &include]).ok();
    let b = restored(&part, &src).join("b.txt");
    assert_eq!(fs::read(&b).unwrap(), b"one file, three names");
    assert_eq!(fs::metadata(&b).unwrap().nlink(), 1);
}

#[test]
fn a_source_path_that_is_a_symlink_to_a_directory_says_so_and_a_slash_follows_it() {
    let env = Env::new();
    let real = env.path("real");
    fs::create_dir_all(&real).unwrap();
    fs::write(real.join("f.txt"), b"in the directory").unwrap();
    let link = env.path("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let r = env.coffer(&["backup", "--json", link.to_str().unwrap()]).ok();
    assert!(r.stderr.contains("is a symlink to a directory: the link is backed up"), "{}", r.stderr);
    assert_eq!(r.json()["files"], 0);
    let r = env.coffer(&["backup", "--json", &format!("{}/", link.display())]).ok();
    assert!(!r.stderr.contains("symlink to a directory"), "{}", r.stderr);
    assert_eq!(r.json()["files"], 1);
}

/// A report that does not reach its reader is not a success: with stdout on
/// a full disk (or a closed pipe) a command exits 4, says so, and what it
/// did stands (the snapshot is committed). Every command's report goes the
/// same way: `snapshots` and `verify` too.
#[test]
fn a_report_that_cannot_be_written_exits_4_and_what_was_done_stands() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    let full = || fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    for json in [true, false] {
        let mut c = env.command();
        c.arg("backup").arg(&src);
        if json {
            c.arg("--json");
        }
        let r: Run = c.stdout(full()).output().unwrap().into();
        assert_eq!(r.code, 4, "json {json}: {}", r.stderr);
        assert!(r.stderr.contains("the command completed, but its report was lost"), "{}", r.stderr);
        assert!(r.stderr.contains("standard output"), "{}", r.stderr);
    }
    let list = env.coffer(&["snapshots", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 2, "both backups were committed");
    for args in [&["snapshots"][..], &["verify", "--json"][..]] {
        let r: Run = env.command().args(args).stdout(full()).output().unwrap().into();
        assert_eq!(r.code, 4, "{args:?}: {}", r.stderr);
    }
    // And with stdout intact, the same commands exit 0.
    env.coffer(&["snapshots"]).ok();
}

/// "restored 0 files" is not a success: a selection that matches nothing
/// fails, names the snapshot, and creates nothing at the target.
#[test]
fn a_restore_that_selects_nothing_fails_and_writes_nothing() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    env.backup_json(&[&src], &[]);
    let target = env.path("out");
    for extra in
        [&["--include", "no/such/thing"][..], &["--include", "*.nomatch", "--dry-run"][..], &["--exclude", "**"][..]]
    {
        let mut args = vec!["restore", "latest", "--target", target.to_str().unwrap()];
        args.extend_from_slice(extra);
        let r = env.coffer(&args);
        assert_eq!(r.code, 1, "{extra:?}: {}", r.stderr);
        assert!(r.stderr.contains("nothing to restore from snapshot"), "{}", r.stderr);
        assert!(r.stderr.contains("coffer ls"), "the hint says how to see the stored paths: {}", r.stderr);
        assert!(!target.exists(), "{extra:?}: the target was created");
    }
    // A pattern as the snapshot stores it (no leading /) selects.
    let include = format!("{}/docs", src.strip_prefix("/").unwrap().display());
    let j = env
        .coffer(&["restore", "latest", "--target", target.to_str().unwrap(), "--include", &include, "--json"])
        .ok()
        .json();
    assert_eq!(j["files"], 3);
}

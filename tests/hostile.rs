//! Secrets stay secret and nothing waits forever: a `?password=` URL never
//! reaches a command line, a manifest or an error; children see none of
//! coffer's secrets; a source file swapped for a FIFO mid-backup is skipped.

use crate::common::pg::{self, unique, PG_PASSWORD};
use crate::common::place::{At, Place};
use crate::common::*;
use coffer::Kind;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

#[test]
fn a_file_swapped_for_a_fifo_mid_backup_is_skipped_and_the_backup_completes() {
    let place = Place::local();
    let src = place.env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), pseudo_random(64 << 20, 1)).unwrap();
    fs::write(src.join("b.txt"), b"a regular file when the walk saw it").unwrap();
    fs::write(src.join("c.txt"), b"still backed up").unwrap();

    // The first pack's upload waits; the pipeline's bounded buffers hold the
    // walk inside a.bin, after it listed the folder (b.txt a regular file).
    let (repo, reached, go_on) = place.paused(At::Put(Kind::Pack));
    let opts = coffer::BackupOptions { paths: vec![src.clone()], workers: 2, ..Default::default() };
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(coffer::backup(&repo, &opts, &coffer::NoProgress));
    });
    reached.recv().unwrap();
    fs::remove_file(src.join("b.txt")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(src.join("b.txt")).status().unwrap().success());
    go_on.send(()).unwrap();
    let s = done_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("the backup waits on the FIFO")
        .expect("the backup completes");
    assert_eq!(s.unreadable.len(), 1, "{:?}", s.unreadable);
    assert!(
        s.unreadable[0].contains("b.txt") && s.unreadable[0].contains("no longer a regular file"),
        "{:?}",
        s.unreadable
    );
    let target = place.env.path("out");
    let id = s.snapshot.unwrap().to_hex();
    place.run(&["restore", &id, "--target", target.to_str().unwrap()]).ok();
    let out = restored(&target, &src);
    assert_eq!(fs::read(out.join("a.bin")).unwrap(), fs::read(src.join("a.bin")).unwrap());
    assert_eq!(fs::read(out.join("c.txt")).unwrap(), b"still backed up");
    assert!(!out.join("b.txt").exists());
}

/// A COFFER_PG_BIN_DIR whose tools write their command line and environment
/// to `log`, then run the real tool.
fn spying_tools(env: &Env, log: &std::path::Path) -> std::path::PathBuf {
    let dir = env.path("spy-bin");
    fs::create_dir_all(&dir).unwrap();
    for tool in ["pg_dump", "pg_restore", "psql", "pg_dumpall"] {
        let script = format!(
            "#!/bin/sh\n{{ printf 'argv:'; printf ' %s' \"$0\" \"$@\"; echo; tr '\\0' '\\n' < /proc/$$/environ | sed 's/^/env: /'; }} >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            pg::bin_dir().join(tool).display()
        );
        fs::write(dir.join(tool), script).unwrap();
        fs::set_permissions(dir.join(tool), fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

#[test]
fn a_url_password_reaches_no_command_line_manifest_output_or_error() {
    // Its own server: tests on the shared one check that no drill's scratch
    // database is left there, and this test runs a drill.
    let cluster = &pg::Cluster::start();
    let db = unique("secret");
    cluster.create_db(&db);
    cluster.psql(&db, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2);");
    let env = Env::new();
    let log = env.path("spy.log");
    let tools = spying_tools(&env, &log);
    let with_password = |db: &str| {
        let u = cluster.url(db);
        format!("{u}?password={PG_PASSWORD}&application_name=coffer-test")
    };
    let aws_secret = "aws-secret-never-shown";
    let run = |args: &[&str], vars: &[(&str, String)]| -> Run {
        let mut c = env.command();
        c.env_remove("PGPASSWORD").env("COFFER_PG_BIN_DIR", &tools).env("AWS_SECRET_ACCESS_KEY", aws_secret);
        for (k, v) in vars {
            c.env(k, v);
        }
        c.args(args).output().unwrap().into()
    };
    let mut seen = String::new();
    let mut said = |r: &Run| {
        seen.push_str(&r.stdout);
        seen.push_str(&r.stderr);
    };

    let r = run(&["backup", "--json"], &[("COFFER_PG_URL", with_password(&db))]).ok();
    said(&r);
    let restored_db = unique("secret_restored");
    cluster.create_db(&restored_db);
    let r = run(&["restore", "latest", "--json"], &[("COFFER_PG_TARGET", with_password(&restored_db))]);
    let r = r.ok();
    said(&r);
    assert_eq!(cluster.psql(&restored_db, "SELECT sum(x) FROM t").trim(), "3");
    let r = run(&["drill", "latest", "--json"], &[("COFFER_PG_SCRATCH", with_password("postgres"))]).ok();
    said(&r);
    let r = run(&["show", "latest", "--json"], &[]).ok();
    said(&r);
    assert!(r.stdout.contains("application_name=coffer-test"), "other parameters are kept: {}", r.stdout);
    // A wrong password fails with pg_dump's message, and without the password.
    let wrong = cluster.url(&db) + "?password=wrong-password-not-shown";
    let r = run(&["backup", "--json"], &[("COFFER_PG_URL", wrong)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    said(&r);

    assert!(!seen.contains(PG_PASSWORD) && !seen.contains("wrong-password-not-shown"), "{seen}");
    assert!(!seen.contains(PASSPHRASE) && !seen.contains(aws_secret), "{seen}");
    let spied = fs::read_to_string(&log).unwrap();
    assert!(spied.contains("argv: ") && spied.contains("pg_dump") && spied.contains("pg_restore"), "{spied}");
    for line in spied.lines() {
        if line.starts_with("argv:") {
            assert!(!line.contains(PG_PASSWORD) && !line.contains("wrong-password"), "on a command line: {line}");
        } else {
            // The tools get the database password as PGPASSWORD, and nothing else of coffer's.
            assert!(!line.contains(PASSPHRASE) && !line.contains(aws_secret), "in a tool's environment: {line}");
            assert!(!line.starts_with("env: COFFER_"), "in a tool's environment: {line}");
        }
    }
    assert!(spied.contains(&format!("env: PGPASSWORD={PG_PASSWORD}")), "the tools get the password: {spied}");

    // sslpassword has no environment variable: refused, naming the parameter only.
    let r = run(&["backup"], &[("COFFER_PG_URL", cluster.url(&db) + "?sslpassword=key-secret")]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("sslpassword") && !r.stderr.contains("key-secret"), "{}", r.stderr);
}

#[test]
fn control_characters_in_names_are_shown_escaped_and_stored_exactly() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let evil: &[u8] = b"evil\x1b]0;owned\x07\nforged line\r\xe2\x80\xae.txt";
    fs::write(src.join(OsStr::from_bytes(evil)), b"x").unwrap();
    let r = env.coffer(&["backup", src.to_str().unwrap()]).ok();
    let show = env.coffer(&["show", "latest"]).ok();
    for out in [&r.stdout, &r.stderr, &show.stdout, &show.stderr] {
        assert!(!out.contains('\x1b') && !out.contains('\x07') && !out.contains('\r') && !out.contains('\u{202e}'));
    }
    assert!(show.stdout.contains("evil\\x1b]0;owned\\x07\\x0aforged line\\x0d\\u{202e}.txt"), "{}", show.stdout);
    assert!(!show.stdout.lines().any(|l| l.starts_with("forged line")), "{}", show.stdout);
    // JSON and the restored name stay exact.
    let j = env.coffer(&["show", "latest", "--json"]).ok().json();
    let paths: Vec<String> = j["manifest"]["sources"][0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert!(paths.iter().any(|p| p.as_bytes().ends_with(evil)), "{paths:?}");
    let target = env.path("out");
    env.coffer(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(fs::read(restored(&target, &src).join(OsStr::from_bytes(evil))).unwrap(), b"x");
    // An error naming such a path escapes it too.
    let missing = src.join(OsStr::from_bytes(b"gone\x1b[2J"));
    let r = env.coffer_os(&[OsStr::new("backup"), missing.as_os_str()]);
    assert_eq!(r.code, 1);
    assert!(!r.stderr.contains('\x1b') && r.stderr.contains("gone\\x1b[2J"), "{}", r.stderr);
}

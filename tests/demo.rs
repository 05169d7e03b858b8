//! `make demo` as the quick start runs it: scripts/demo.sh end to end, with
//! this build's binary and its folder in a temporary directory. Each claim
//! the demo prints is checked against what it did.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn the_demo_runs_and_what_it_says_is_true() {
    let env = Env::empty();
    // The throwaway server runs as the postgres user when this runs as root.
    std::fs::set_permissions(env.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let demo = env.path("demo");
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/demo.sh"))
        .env("COFFER_BIN", bin())
        .env("COFFER_DEMO_DIR", &demo)
        .env_remove("COFFER_REPOSITORY")
        .env_remove("COFFER_PASSWORD_FILE")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "demo failed:\n{stdout}\n{stderr}");

    // Two snapshots; the second, of unchanged sources, adds at most the one
    // chunk the note explains (the dump's header holds the time of the dump).
    let saved: Vec<&str> = stdout.lines().filter(|l| l.starts_with("snapshot ") && l.ends_with(" saved")).collect();
    assert_eq!(saved.len(), 2, "{stdout}");
    let added: Vec<&str> = stdout.lines().filter(|l| l.trim_start().starts_with("added ")).collect();
    let second = added.get(1).map(|l| l.trim_start()).unwrap_or_default();
    assert!(
        added.len() == 2 && (second.starts_with("added 1 new chunk,") || second.starts_with("added 0 new chunks,")),
        "{added:?}"
    );
    assert!(stdout.contains("at most one chunk is new"), "{stdout}");
    assert!(stdout.contains("partial restore matches the source byte for byte"), "{stdout}");
    assert!(stdout.contains("PASSED"), "the drill: {stdout}");

    // The part restored is the source's bytes, and the repository reads back.
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/sample-tree/docs");
    let restored = demo.join("restore-docs/fixtures/sample-tree/docs");
    assert_eq!(describe(&src), describe(&restored));
    let passphrase = demo.join("passphrase");
    let r = Command::new(bin())
        .args(["snapshots", "--json", "--repo"])
        .arg(demo.join("repo"))
        .env("COFFER_PASSWORD_FILE", &passphrase)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let j: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(j.as_array().map(|a| a.len()), Some(2), "{j}");
}

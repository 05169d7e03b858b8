//! A backup killed mid-way leaves no snapshot, and the next one succeeds.

use crate::common::*;
use std::fs;
use std::io::Read;
use std::time::{Duration, Instant};

#[test]
fn a_killed_backup_commits_no_snapshot_and_the_next_one_succeeds() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    // Incompressible, large enough for many 16 MiB packs.
    let mut urandom = fs::File::open("/dev/urandom").unwrap().take(192 * 1024 * 1024);
    let mut out = fs::File::create(src.join("big.bin")).unwrap();
    std::io::copy(&mut urandom, &mut out).unwrap();
    drop(out);

    let mut child = env.command().args(["backup", src.to_str().unwrap()]).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    // Kill as soon as the first pack is stored: mid-way by construction.
    while env.repo_file("data").is_empty() {
        assert!(Instant::now() < deadline, "no pack appeared");
        assert!(child.try_wait().unwrap().is_none(), "backup finished before it could be killed");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    assert!(env.repo_file("snapshots").is_empty(), "a killed backup left a snapshot");
    let list = env.coffer(&["snapshots", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 0);
    // Leftovers never confuse a reader.
    env.coffer(&["verify", "--read-data"]).ok();

    let j = env.backup_json(&[&src], &[]);
    assert!(j["snapshot"].is_string());
    env.coffer(&["verify", "--read-data"]).ok();
    let target = env.path("out");
    env.coffer(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&target, &src)));
}

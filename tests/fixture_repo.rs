//! A repository written by format version 1 is committed under
//! fixtures/repo-v1 and must stay readable by every later coffer.

use crate::common::*;
use std::fs;
use std::path::Path;

fn copy_dir(from: &Path, to: &Path) {
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

#[test]
fn the_version_1_fixture_repository_restores_and_verifies() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let env = Env::empty();
    // Work on a copy: the test must not touch the committed fixture.
    copy_dir(&fixtures.join("repo-v1"), &env.repo());
    let run = |args: &[&str]| -> Run {
        env.command().env("COFFER_PASSWORD", "fixture-v1-passphrase").args(args).output().unwrap().into()
    };
    let list = run(&["snapshots", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["tags"][0], "v1");
    run(&["verify", "--read-data"]).ok();
    let target = env.path("out");
    run(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(contents(&fixtures.join("sample-tree")), contents(&target.join("fixtures/sample-tree")));
}

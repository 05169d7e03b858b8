//! Names the commit in `coffer --version` (COFFER_COMMIT); "unknown" when
//! built outside a git checkout (a source tarball).

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=COFFER_COMMIT={commit}");
    // Again when HEAD moves: HEAD itself, and the branch it names.
    println!("cargo:rerun-if-changed=.git/HEAD");
    if let Ok(head) = std::fs::read_to_string(".git/HEAD") {
        if let Some(branch) = head.strip_prefix("ref: ") {
            println!("cargo:rerun-if-changed=.git/{}", branch.trim());
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}

//! Peak memory stays bounded by the pipeline, not by the input size.

use crate::common::*;
use std::fs;
use std::io::Read;

/// Runs a command and returns its exit code and peak RSS in KiB.
///
/// Not wait4 on a child of this process: spawn runs the child in this
/// process's address space until exec, and the kernel counts that (large,
/// shared with every other test) address space in the child's peak. A small
/// python process forks coffer instead, and reports its wait4 peak.
fn run_measured(cmd: std::process::Command) -> (i32, i64) {
    const MEASURE: &str = "import os, sys\n\
pid = os.fork()\n\
if pid == 0:\n    os.execvp(sys.argv[1], sys.argv[1:])\n\
_, status, ru = os.wait4(pid, 0)\n\
print(ru.ru_maxrss)\n\
sys.exit(os.waitstatus_to_exitcode(status))\n";
    let mut m = std::process::Command::new("python3");
    m.arg("-c").arg(MEASURE).arg(cmd.get_program()).args(cmd.get_args());
    copy_env(&cmd, &mut m);
    let out = m.stdin(std::process::Stdio::null()).stderr(std::process::Stdio::inherit()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rss: i64 =
        stdout.lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or_else(|| panic!("no RSS in {stdout:?}"));
    (out.status.code().unwrap_or(-1), rss)
}

#[test]
fn backup_and_restore_of_a_large_file_do_not_hold_it_in_memory() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    let size: u64 = 384 * 1024 * 1024;
    let mut urandom = fs::File::open("/dev/urandom").unwrap().take(size);
    let mut out = fs::File::create(src.join("large.bin")).unwrap();
    std::io::copy(&mut urandom, &mut out).unwrap();
    drop(out);

    let mut cmd = env.command();
    cmd.args(["backup", src.to_str().unwrap()]);
    let (code, rss_kib) = run_measured(cmd);
    assert_eq!(code, 0);
    eprintln!("backup of {} MiB: peak RSS {} MiB", size >> 20, rss_kib / 1024);
    assert!(rss_kib < 200 * 1024, "backup peak RSS {} MiB for a {} MiB file", rss_kib / 1024, size >> 20);

    let target = env.path("out");
    let mut cmd = env.command();
    cmd.args(["restore", "latest", "--target", target.to_str().unwrap()]);
    let (code, rss_kib) = run_measured(cmd);
    assert_eq!(code, 0);
    eprintln!("restore of {} MiB: peak RSS {} MiB", size >> 20, rss_kib / 1024);
    assert!(rss_kib < 200 * 1024, "restore peak RSS {} MiB", rss_kib / 1024);
    assert_eq!(fs::metadata(restored(&target, &src).join("large.bin")).unwrap().len(), size);
}

#[test]
fn listing_snapshots_holds_one_manifest_at_a_time() {
    let env = Env::new();
    let src = env.path("src");
    for d in 0..40 {
        let dir = src.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..500 {
            fs::write(dir.join(format!("f{f:03}")), format!("{d} {f}")).unwrap();
        }
    }
    for _ in 0..6 {
        env.coffer(&["backup", "-q", src.to_str().unwrap()]).ok();
    }
    let measure = |args: &[&str]| {
        let mut cmd = env.command();
        cmd.args(args).stdout(std::process::Stdio::null());
        let (code, rss_kib) = run_measured(cmd);
        assert_eq!(code, 0, "{args:?}");
        rss_kib
    };
    // One whole manifest of 20,000 files (named by its id: `latest` lists
    // them all), against six manifests' headers, and `latest` of six.
    let list = env.coffer(&["snapshots", "--json"]).ok().json();
    let id = list[0]["id"].as_str().unwrap().to_string();
    let one = measure(&["show", &id]);
    let listing = measure(&["snapshots"]);
    let latest = measure(&["show", "latest"]);
    assert!(listing < one, "listing 6 snapshots took {listing} KiB, one whole manifest {one} KiB");
    assert!(latest < one * 3 / 2, "show latest took {latest} KiB, show ID {one} KiB");
}

#[test]
fn a_small_address_space_is_enough() {
    // Under a 400 MiB address-space limit (a small VM without overcommit, or
    // `ulimit -v`), as when metadata decoding reserved 1 GiB up front and
    // every listing aborted.
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a"), pseudo_random(3 << 20, 5)).unwrap();
    let target = env.path("target");
    let limited = |args: &[&str]| -> Run {
        let coffer = env.command();
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c").arg("ulimit -v 409600 && exec \"$0\" \"$@\"").arg(coffer.get_program()).args(args);
        copy_env(&coffer, &mut cmd);
        cmd.stdin(std::process::Stdio::null()).output().unwrap().into()
    };
    limited(&["backup", "-q", src.to_str().unwrap()]).ok();
    limited(&["snapshots"]).ok();
    limited(&["restore", "-q", "latest", "--target", target.to_str().unwrap()]).ok();
    limited(&["verify", "-q", "--read-data"]).ok();
    assert_eq!(fs::read(restored(&target, &src).join("a")).unwrap(), pseudo_random(3 << 20, 5));
}

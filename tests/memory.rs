//! Peak memory stays bounded by the pipeline, not by the input size.

use crate::common::*;
use std::fs;
use std::io::Read;

/// Runs a command and returns its exit code and peak RSS in KiB (wait4).
fn run_measured(mut cmd: std::process::Command) -> (i32, i64) {
    // Reaped by wait4 below, which also reports its peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = cmd.stdout(std::process::Stdio::null()).spawn().unwrap();
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = child.id() as libc::pid_t;
    // SAFETY: waiting for our own child with valid out-pointers.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid);
    (libc::WEXITSTATUS(status), usage.ru_maxrss)
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

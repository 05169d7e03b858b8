//! Shared test helpers: a temp workspace, the built binary with a cheap KDF,
//! trees with every entry kind, and a tree comparison that checks bytes and
//! metadata.

#![allow(dead_code)]

pub mod docs;
pub mod garage;
pub mod moto;
pub mod pg;
pub mod place;
pub mod proxy;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const PASSPHRASE: &str = "correct horse battery staple";

pub struct Env {
    pub dir: tempfile::TempDir,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "coffer failed: {}\n{}", self.stderr, self.stdout);
        self
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_coffer")
}

impl Env {
    /// A workspace with an initialised repository at `repo/`.
    pub fn new() -> Env {
        let env = Env::empty();
        env.coffer(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]).ok();
        env
    }

    /// A workspace with no repository yet.
    pub fn empty() -> Env {
        Env { dir: tempfile::tempdir().expect("temp dir") }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn repo(&self) -> PathBuf {
        self.path("repo")
    }

    /// A command with the repository and passphrase set, stdin closed.
    pub fn command(&self) -> Command {
        let mut c = Command::new(bin());
        c.env_remove("COFFER_PASSWORD_FILE")
            .env_remove("COFFER_PASSWORD_COMMAND")
            .env("COFFER_PASSWORD", PASSPHRASE)
            .env("COFFER_REPOSITORY", self.repo())
            // Caches (copy's chunk names, S3 upload records) stay in the workspace.
            .env("XDG_CACHE_HOME", self.path("cache"))
            .stdin(Stdio::null());
        c
    }

    /// `coffer` run through `wrapper` (`unshare --pid --fork --`, `setpriv
    /// ...`), with the environment `command` sets; arguments follow.
    pub fn command_through(&self, wrapper: &[&str]) -> Command {
        let inner = self.command();
        let mut c = Command::new(wrapper[0]);
        c.args(&wrapper[1..]).arg(inner.get_program()).stdin(Stdio::null());
        copy_env(&inner, &mut c);
        c
    }

    pub fn coffer(&self, args: &[&str]) -> Run {
        self.command().args(args).output().expect("run coffer").into()
    }

    pub fn coffer_os(&self, args: &[&OsStr]) -> Run {
        self.command().args(args).output().expect("run coffer").into()
    }

    pub fn backup_json(&self, paths: &[&Path], extra: &[&str]) -> serde_json::Value {
        let mut args: Vec<&OsStr> = vec![OsStr::new("backup"), OsStr::new("--json")];
        args.extend(extra.iter().map(OsStr::new));
        args.extend(paths.iter().map(|p| p.as_os_str()));
        let r = self.coffer_os(&args).ok();
        r.json()
    }

    /// Every object file in the repository with its size and mtime.
    pub fn repo_state(&self) -> Vec<(PathBuf, u64, i64, i64)> {
        walk_files(&self.repo())
    }

    /// The bytes of every pack stored.
    pub fn pack_bytes(&self) -> u64 {
        self.repo_file("data").iter().map(|p| fs::metadata(p).unwrap().len()).sum()
    }

    pub fn repo_file(&self, kind_dir: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = walk_files(&self.repo().join(kind_dir)).into_iter().map(|t| t.0).collect();
        v.retain(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'));
        v
    }
}

pub fn walk_files(root: &Path) -> Vec<(PathBuf, u64, i64, i64)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = fs::symlink_metadata(&p) else { continue };
        if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        } else {
            out.push((p, m.len(), m.mtime(), m.mtime_nsec()));
        }
    }
    out.sort();
    out
}

/// Gives `to` the environment changes `from` makes.
pub fn copy_env(from: &Command, to: &mut Command) {
    for (k, v) in from.get_envs() {
        match v {
            Some(v) => to.env(k, v),
            None => to.env_remove(k),
        };
    }
}

/// Deterministic incompressible bytes (xorshift), fast enough for tests.
/// The ids a `snapshots --json` document lists, oldest first.
pub fn snapshot_ids(list: &serde_json::Value) -> Vec<String> {
    list.as_array().expect("a list of snapshots").iter().map(|s| s["id"].as_str().unwrap().to_string()).collect()
}

pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub fn set_mtime(p: &Path, secs: i64, nanos: u32) {
    let t = filetime::FileTime::from_unix_time(secs, nanos);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}

/// A tree with every entry kind coffer handles: nested dirs, empty dir,
/// empty file, one-byte file, a multi-chunk file, odd permissions, a
/// non-UTF-8 name, relative, absolute and dangling symlinks, set mtimes.
pub fn make_rich_tree(root: &Path) {
    fs::create_dir_all(root.join("docs/deep/deeper")).unwrap();
    fs::create_dir_all(root.join("empty-dir")).unwrap();
    fs::create_dir_all(root.join("private")).unwrap();
    fs::write(root.join("docs/readme.md"), b"# hello\n").unwrap();
    fs::write(root.join("docs/deep/deeper/notes.txt"), b"deep notes\n".repeat(100)).unwrap();
    fs::write(root.join("docs/report.bak"), b"old").unwrap();
    fs::write(root.join("empty-file"), b"").unwrap();
    fs::write(root.join("one-byte"), b"x").unwrap();
    fs::write(root.join("big.bin"), pseudo_random(3 * 1024 * 1024 + 17, 7)).unwrap();
    fs::write(root.join("private/secret.txt"), b"top secret").unwrap();
    fs::write(root.join("script.sh"), b"#!/bin/sh\necho hi\n").unwrap();
    let odd = root.join(OsStr::from_bytes(b"caf\xe9-latin1-\xff.txt"));
    fs::write(&odd, b"non-utf8 name").unwrap();
    std::os::unix::fs::symlink("docs/readme.md", root.join("link-relative")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", root.join("link-absolute")).unwrap();
    std::os::unix::fs::symlink("does/not/exist", root.join("link-dangling")).unwrap();
    fs::set_permissions(root.join("script.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(root.join("private/secret.txt"), fs::Permissions::from_mode(0o400)).unwrap();
    fs::set_permissions(root.join("one-byte"), fs::Permissions::from_mode(0o2640)).unwrap();
    fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    if coffer::is_root() {
        // Owners other than root, restored only when running as root.
        std::os::unix::fs::lchown(root.join("docs/readme.md"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::lchown(root.join("link-relative"), Some(4321), Some(8765)).unwrap();
        std::os::unix::fs::lchown(root.join("docs/deep"), Some(2222), Some(3333)).unwrap();
    }
    for (i, p) in walk_all(root).iter().enumerate() {
        set_mtime(p, 1_600_000_000 + i as i64 * 1000, 123_456_789);
    }
}

/// Every path below root (not root), directories before their contents.
pub fn walk_all(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(m) = fs::symlink_metadata(&p) else { continue };
        if p != root {
            out.push(p.clone());
        }
        if m.is_dir() {
            let mut children: Vec<_> = fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()).collect();
            children.sort();
            stack.extend(children.into_iter().rev());
        }
    }
    out
}

/// Describes a tree: per relative path, kind, mode, mtime, owner, content
/// or link target. Two trees are equal when their descriptions are.
pub fn describe(root: &Path) -> Vec<String> {
    walk_all(root)
        .iter()
        .map(|p| {
            let m = fs::symlink_metadata(p).unwrap();
            let rel = p.strip_prefix(root).unwrap();
            let rel = String::from_utf8_lossy(rel.as_os_str().as_bytes()).into_owned();
            let what = if m.file_type().is_symlink() {
                format!("link -> {}", fs::read_link(p).unwrap().display())
            } else if m.is_dir() {
                format!("dir mode={:o} mtime={}.{}", m.mode() & 0o7777, m.mtime(), m.mtime_nsec())
            } else {
                let data = fs::read(p).unwrap();
                use sha2::Digest;
                format!(
                    "file mode={:o} mtime={}.{} size={} sha256={}",
                    m.mode() & 0o7777,
                    m.mtime(),
                    m.mtime_nsec(),
                    data.len(),
                    hex::encode(sha2::Sha256::digest(&data))
                )
            };
            format!("{rel}: {what} uid={} gid={}", m.uid(), m.gid())
        })
        .collect()
}

/// Where a backed-up absolute path lands under a restore target.
pub fn restored(target: &Path, source: &Path) -> PathBuf {
    target.join(source.strip_prefix("/").unwrap())
}

pub fn flip_byte(p: &Path, at_fraction: f64) {
    let mut data = fs::read(p).unwrap();
    let i = ((data.len() as f64 * at_fraction) as usize).min(data.len() - 1);
    data[i] ^= 0x40;
    let perms = fs::metadata(p).unwrap().permissions();
    let mut w = perms.clone();
    w.set_mode(0o644);
    fs::set_permissions(p, w).unwrap();
    fs::write(p, data).unwrap();
    fs::set_permissions(p, perms).unwrap();
}

/// A 16 MiB WAL segment as PostgreSQL writes one: the long page header
/// (its system identifier and size), then `fill`.
pub fn wal_segment(sysid: u64, fill: u64) -> Vec<u8> {
    let mut seg = pseudo_random(16 << 20, fill);
    seg[..40].fill(0);
    seg[2] = 0x02;
    seg[24..32].copy_from_slice(&sysid.to_le_bytes());
    seg[32..36].copy_from_slice(&(16u32 << 20).to_le_bytes());
    seg
}

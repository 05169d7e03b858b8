//! Repository locks: backup and forget take a shared lock, prune an
//! exclusive one, so prune never deletes data a running backup is about to
//! reference. A lock is a sealed object under `locks/`; its holder rewrites
//! it every few minutes. A lock not refreshed for `STALE_AFTER`, or held by a
//! process of this host, boot and PID namespace that no longer exists, is
//! stale and ignored.
//!
//! Race-free without compare-and-swap: each side writes its own lock first,
//! then lists the others; of two that race, at least one sees the other and
//! backs off.

use crate::backend::{Backend, Kind};
use crate::crypto::{Keys, Role};
use crate::error::{Error, Result};
use crate::format::encoding::Id;
use crate::repo::{backend_error, Repository};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const STALE_AFTER: Duration = Duration::from_secs(30 * 60);
const REFRESH_EVERY: Duration = Duration::from_secs(5 * 60);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    pub exclusive: bool,
    pub host: String,
    pub pid: u32,
    pub created: DateTime<Utc>,
    pub refreshed: DateTime<Utc>,
    /// What makes `pid` mean one process: a pid is unique only within one
    /// boot and one PID namespace (containers sharing a host name do not
    /// share one), and is reused. Empty in locks of older coffers.
    #[serde(default)]
    pub boot_id: String,
    #[serde(default)]
    pub pid_ns: String,
    /// The process's start time (clock ticks after boot, /proc/PID/stat).
    #[serde(default)]
    pub start_ticks: u64,
}

/// This process's (boot id, PID namespace) and a process's start time, from /proc.
fn boot_and_namespace() -> (String, String) {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default().trim().to_string();
    let ns = std::fs::read_link("/proc/self/ns/pid").map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    (boot, ns)
}

fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counted after the command name's closing parenthesis (the
    // name may hold spaces): the 20th field from there.
    stat.rsplit_once(')')?.1.split_whitespace().nth(19)?.parse().ok()
}

impl LockInfo {
    /// Stale: not refreshed for `STALE_AFTER`, or held by a process this
    /// machine can tell is gone: same host, boot and PID namespace, and no
    /// process with that pid and start time. A lock from another namespace
    /// or boot is judged by its refreshes alone.
    pub fn is_stale(&self) -> bool {
        let age = (Utc::now() - self.refreshed).to_std().unwrap_or_default();
        if age > STALE_AFTER {
            return true;
        }
        if self.host != crate::hostname() {
            return false;
        }
        if self.boot_id.is_empty() {
            // A lock of a coffer that recorded no namespace: by host and pid.
            return !crate::process_exists(self.pid);
        }
        let (boot, ns) = boot_and_namespace();
        if self.boot_id != boot || self.pid_ns != ns {
            return false;
        }
        !crate::process_exists(self.pid) || start_ticks(self.pid).is_some_and(|t| t != self.start_ticks)
    }

    fn describe(&self) -> String {
        format!(
            "{} lock held by pid {} on {} since {}",
            if self.exclusive { "an exclusive" } else { "a" },
            self.pid,
            self.host,
            self.created.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

fn seal(keys: &Keys, id: &Id, info: &LockInfo) -> Result<Vec<u8>> {
    let json = serde_json::to_vec(info).map_err(|e| Error::Internal(e.to_string()))?;
    Ok(keys.seal(Role::Lock, &id.0, &json))
}

/// Every readable lock in the repository.
pub fn list_locks(repo: &Repository) -> Result<Vec<(Id, LockInfo)>> {
    Ok(scan_locks(repo)?.0)
}

/// The readable locks, and the lock objects that cannot be read (with why).
/// An unreadable object is no lock: every coffer process can read the locks
/// of its repository, so one it cannot is damage or garbage, and must block
/// nothing.
#[allow(clippy::type_complexity)]
fn scan_locks(repo: &Repository) -> Result<(Vec<(Id, LockInfo)>, Vec<(String, String)>)> {
    let (mut out, mut bad) = (Vec::new(), Vec::new());
    for info in repo.backend().list(Kind::Lock).map_err(backend_error)? {
        let Some(id) = Id::from_hex(&info.name) else {
            bad.push((info.name, "not a lock name".into()));
            continue;
        };
        let sealed = match repo.backend().get(Kind::Lock, &info.name) {
            Ok(s) => s,
            Err(e) if e.is_not_found() => continue, // released meanwhile
            Err(e) => return Err(backend_error(e)),
        };
        let parsed = repo
            .keys()
            .open(Role::Lock, &id.0, &sealed)
            .map_err(|e| e.to_string())
            .and_then(|json| serde_json::from_slice::<LockInfo>(&json).map_err(|e| e.to_string()));
        match parsed {
            Ok(l) => out.push((id, l)),
            Err(why) => bad.push((info.name, why)),
        }
    }
    Ok((out, bad))
}

/// Removes stale locks (or, with `all`, every lock) and every lock object
/// that cannot be read. Returns how many.
pub fn unlock(repo: &Repository, all: bool) -> Result<usize> {
    let (locks, unreadable) = scan_locks(repo)?;
    let doomed = locks
        .into_iter()
        .filter(|(_, info)| all || info.is_stale())
        .map(|(id, _)| id.to_hex())
        .chain(unreadable.into_iter().map(|(name, _)| name));
    let mut removed = 0;
    for name in doomed {
        match repo.backend().delete(Kind::Lock, &name) {
            Ok(()) => removed += 1,
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(backend_error(e)),
        }
    }
    Ok(removed)
}

/// A held lock; released (deleted) on drop.
pub struct Lock {
    backend: Arc<dyn Backend>,
    id: Id,
    stop: Arc<AtomicBool>,
    refresher: Option<std::thread::JoinHandle<()>>,
    /// Stale locks of others that were ignored, for the caller to report.
    pub stale_ignored: usize,
    /// Lock objects that cannot be read, ignored: "locks/NAME cannot be read: why".
    pub unreadable_ignored: Vec<String>,
}

impl Lock {
    pub fn acquire(repo: &Repository, exclusive: bool) -> Result<Lock> {
        let id = Id::random();
        let now = Utc::now();
        let (boot_id, pid_ns) = boot_and_namespace();
        let pid = std::process::id();
        let mut info = LockInfo {
            exclusive,
            host: crate::hostname(),
            pid,
            created: now,
            refreshed: now,
            boot_id,
            pid_ns,
            start_ticks: start_ticks(pid).unwrap_or(0),
        };
        let backend = repo.backend().clone();
        backend.put(Kind::Lock, &id.to_hex(), &seal(repo.keys(), &id, &info)?).map_err(backend_error)?;
        let mut lock = Lock {
            backend: backend.clone(),
            id,
            stop: Arc::new(AtomicBool::new(false)),
            refresher: None,
            stale_ignored: 0,
            unreadable_ignored: Vec::new(),
        };

        // Drop releases our lock object if we back off below.
        let (locks, unreadable) = scan_locks(repo)?;
        lock.unreadable_ignored = unreadable
            .into_iter()
            .map(|(name, why)| {
                format!("lock object locks/{name} cannot be read ({why}); ignored, `coffer unlock` removes it")
            })
            .collect();
        for (other, theirs) in locks {
            if other == id {
                continue;
            }
            if theirs.is_stale() {
                lock.stale_ignored += 1;
                continue;
            }
            if exclusive || theirs.exclusive {
                return Err(Error::Locked { location: repo.location(), holder: theirs.describe() });
            }
        }

        let (stop, keys) = (lock.stop.clone(), repo.keys().clone());
        lock.refresher = Some(std::thread::spawn(move || {
            let mut waited = Duration::ZERO;
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(200));
                waited += Duration::from_millis(200);
                if waited >= REFRESH_EVERY {
                    waited = Duration::ZERO;
                    info.refreshed = Utc::now();
                    if let Ok(sealed) = seal(&keys, &id, &info) {
                        let _ = backend.put(Kind::Lock, &id.to_hex(), &sealed);
                    }
                }
            }
        }));
        Ok(lock)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.refresher.take() {
            let _ = h.join();
        }
        let _ = self.backend.delete(Kind::Lock, &self.id.to_hex());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mine() -> LockInfo {
        let (boot_id, pid_ns) = boot_and_namespace();
        let pid = std::process::id();
        LockInfo {
            exclusive: false,
            host: crate::hostname(),
            pid,
            created: Utc::now(),
            refreshed: Utc::now(),
            boot_id,
            pid_ns,
            start_ticks: start_ticks(pid).unwrap(),
        }
    }

    #[test]
    fn a_pid_is_judged_only_within_its_boot_and_namespace() {
        assert!(!mine().is_stale(), "this live process");
        let gone = LockInfo { pid: 999_999_999, ..mine() };
        assert!(gone.is_stale(), "no such pid here");
        // The same host name in another PID namespace (a container with host
        // networking): its pid says nothing here, only refreshes count.
        let other_ns = LockInfo { pid_ns: "pid:[1]".into(), ..gone.clone() };
        assert!(!other_ns.is_stale());
        let other_boot = LockInfo { boot_id: "another".into(), ..gone.clone() };
        assert!(!other_boot.is_stale());
        // Our pid, but another process's start time: the pid was reused.
        let reused = LockInfo { start_ticks: mine().start_ticks + 1, ..mine() };
        assert!(reused.is_stale());
        let old = LockInfo { refreshed: Utc::now() - chrono::Duration::hours(1), ..other_ns };
        assert!(old.is_stale());
        // A lock of an older coffer: host and pid, as before.
        let legacy = LockInfo { boot_id: String::new(), pid_ns: String::new(), start_ticks: 0, ..gone };
        assert!(legacy.is_stale());
    }
}

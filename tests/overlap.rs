//! Readers overlapping a prune, made deterministic: a backend wrapper pauses
//! the reader at a chosen request while a real `coffer prune` runs.

use crate::common::garage;
use crate::common::*;
use coffer::{Backend, BackendError, Kind, Local, ObjectInfo};
use std::fs;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

type R<T> = Result<T, BackendError>;

/// A local backend with two faults a test can arm: pause the first request
/// of `pause.0` (a ranged read, or a listing when `pause.1`) until told to
/// go on, and leave `hidden` out of listings (a listing that lags).
struct Wrapped {
    inner: Box<dyn Backend>,
    pause: (Kind, bool),
    gate: Mutex<Option<(Sender<()>, Receiver<()>)>>,
    hidden: Option<String>,
}

impl Wrapped {
    fn around(inner: Box<dyn Backend>) -> Wrapped {
        Wrapped { inner, pause: (Kind::Pack, false), gate: Mutex::new(None), hidden: None }
    }

    fn wait(&self, kind: Kind, listing: bool) {
        if (kind, listing) != self.pause {
            return;
        }
        if let Some((reached, go_on)) = self.gate.lock().unwrap().take() {
            reached.send(()).unwrap();
            go_on.recv().unwrap();
        }
    }
}

impl Backend for Wrapped {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> R<()> {
        self.inner.create()
    }
    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> R<()> {
        self.inner.put(kind, name, data)
    }
    fn get(&self, kind: Kind, name: &str) -> R<Vec<u8>> {
        self.inner.get(kind, name)
    }
    fn get_range(&self, kind: Kind, name: &str, offset: u64, length: u64) -> R<Vec<u8>> {
        self.wait(kind, false);
        self.inner.get_range(kind, name, offset, length)
    }
    fn open(&self, kind: Kind, name: &str) -> R<Box<dyn std::io::Read + Send>> {
        self.inner.open(kind, name)
    }
    fn list(&self, kind: Kind) -> R<Vec<ObjectInfo>> {
        self.wait(kind, true);
        let mut v = self.inner.list(kind)?;
        v.retain(|o| Some(&o.name) != self.hidden.as_ref());
        Ok(v)
    }
    fn delete(&self, kind: Kind, name: &str) -> R<()> {
        self.inner.delete(kind, name)
    }
}

/// A repository on the local backend or on Garage, used through the CLI
/// (backups, forget, prune) and through the library (the paused reader).
struct Place {
    env: Env,
    repo: String,
    vars: Vec<(String, String)>,
}

impl Place {
    fn local() -> Place {
        let env = Env::new();
        let repo = env.repo().display().to_string();
        Place { env, repo, vars: vec![] }
    }

    fn garage() -> Place {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let g = garage::shared();
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let repo = format!("s3://{}/overlap-{}-{n}", g.get("GARAGE_TEST_BUCKET"), std::process::id());
        let p = Place { env: Env::empty(), repo, vars: g.env.clone() };
        p.run(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]).ok();
        p
    }

    fn run(&self, args: &[&str]) -> Run {
        let mut c = self.env.command();
        c.envs(self.vars.iter().map(|(k, v)| (k, v)))
            .env("COFFER_REPOSITORY", &self.repo)
            .env("XDG_CACHE_HOME", self.env.path("cache"));
        c.args(args).output().unwrap().into()
    }

    fn var(&self, k: &str) -> String {
        self.vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default()
    }

    fn backend(&self) -> Box<dyn Backend> {
        if !self.repo.starts_with("s3://") {
            return Box::new(Local::new(&self.repo));
        }
        let opts = coffer::S3Options {
            endpoint: Some(self.var("COFFER_S3_ENDPOINT")),
            region: Some(self.var("AWS_REGION")),
            path_style: true,
            static_credentials: Some((self.var("AWS_ACCESS_KEY_ID"), self.var("AWS_SECRET_ACCESS_KEY"))),
            ..Default::default()
        };
        Box::new(coffer::S3::new(&self.repo, opts).unwrap())
    }
}

/// Snapshot 1 holds a and b, snapshot 2 only b (same pack); snapshot 1 is
/// forgotten, so `prune --max-unused 1` repacks b's chunks and deletes the pack.
fn setup(place: &Place) -> (std::path::PathBuf, String) {
    let src = place.env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), pseudo_random(3 << 20, 1)).unwrap();
    fs::write(src.join("b.bin"), pseudo_random(3 << 20, 2)).unwrap();
    let backup = || {
        place.run(&["backup", "--json", src.to_str().unwrap()]).ok().json()["snapshot"].as_str().unwrap().to_string()
    };
    let first = backup();
    fs::remove_file(src.join("a.bin")).unwrap();
    let second = backup();
    place.run(&["forget", &first]).ok();
    (src, second)
}

fn paused(place: &Place, kind: Kind, on_list: bool) -> (coffer::Repository, Receiver<()>, Sender<()>) {
    let (reached_tx, reached_rx) = channel();
    let (go_tx, go_rx) = channel();
    let backend = Wrapped {
        pause: (kind, on_list),
        gate: Mutex::new(Some((reached_tx, go_rx))),
        ..Wrapped::around(place.backend())
    };
    let repo = coffer::Repository::open(Arc::new(backend), PASSPHRASE.as_bytes()).unwrap();
    (repo, reached_rx, go_tx)
}

fn prune_now(place: &Place) {
    let j = place.run(&["prune", "--max-unused", "1", "--grace", "0s", "--json"]).ok().json();
    assert_eq!((j["packs_repacked"].as_u64(), j["packs_deleted"].as_u64()), (Some(1), Some(0)), "{j}");
}

fn restore_overlapping_prune(place: Place) {
    let (src, second) = setup(&place);
    let (repo, reached, go_on) = paused(&place, Kind::Pack, false);
    let target = place.env.path("out");
    let opts =
        coffer::RestoreOptions { target: target.clone(), include: vec![], exclude: vec![], dry_run: false, workers: 2 };
    let id = repo.find_snapshot(&second, &[]).unwrap();
    let restore = std::thread::spawn(move || coffer::restore(&repo, &id, &opts).map(|_| ()));
    // The restore has loaded its index and asked for its first chunk: prune now.
    reached.recv().unwrap();
    prune_now(&place);
    go_on.send(()).unwrap();
    restore.join().unwrap().expect("the restore completes");
    assert_eq!(fs::read(src.join("b.bin")).unwrap(), fs::read(restored(&target, &src).join("b.bin")).unwrap());
}

fn verify_overlapping_prune(place: Place) {
    setup(&place);
    let (repo, reached, go_on) = paused(&place, Kind::Pack, true);
    let opts = coffer::VerifyOptions { read_data: coffer::ReadData::All, max_age: None, tags: vec![] };
    let verify = std::thread::spawn(move || coffer::verify(&repo, None, &opts));
    // verify has read the old indexes and is about to list the packs.
    reached.recv().unwrap();
    prune_now(&place);
    go_on.send(()).unwrap();
    let s = verify.join().unwrap().unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
}

#[test]
fn a_restore_that_overlaps_a_prune_completes_byte_for_byte() {
    restore_overlapping_prune(Place::local());
}

#[test]
fn a_restore_that_overlaps_a_prune_on_s3_completes_byte_for_byte() {
    restore_overlapping_prune(Place::garage());
}

#[test]
fn a_verify_that_overlaps_a_prune_reports_nothing_missing() {
    verify_overlapping_prune(Place::local());
}

#[test]
fn a_verify_that_overlaps_a_prune_on_s3_reports_nothing_missing() {
    verify_overlapping_prune(Place::garage());
}

fn prune_with_a_lagging_listing(place: Place) {
    let src = place.env.path("src");
    fs::create_dir_all(&src).unwrap();
    let backup = || {
        place.run(&["backup", "--json", src.to_str().unwrap()]).ok().json()["snapshot"].as_str().unwrap().to_string()
    };
    fs::write(src.join("old.bin"), pseudo_random(1 << 20, 3)).unwrap();
    let old = backup();
    fs::write(src.join("new.bin"), pseudo_random(2 << 20, 4)).unwrap();
    let new = backup();
    place.run(&["forget", &old]).ok();
    let lagging = |grace: std::time::Duration| {
        // A listing that lags: the newest snapshot is not listed yet.
        let backend = Wrapped { hidden: Some(new.clone()), ..Wrapped::around(place.backend()) };
        let repo = coffer::Repository::open(Arc::new(backend), PASSPHRASE.as_bytes()).unwrap();
        coffer::prune(&repo, &coffer::PruneOptions { max_unused: 0.01, grace, ..Default::default() }).unwrap()
    };
    // The default grace period: the packs of the snapshot the listing missed stay.
    let s = lagging(coffer::PruneOptions::default().grace);
    assert!(s.packs_in_grace >= 1, "{s:?}");
    let target = place.env.path("out");
    place.run(&["restore", &new, "--target", target.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&target, &src)));
    // Without one, that prune would have deleted them: the period is what protects it.
    lagging(std::time::Duration::ZERO);
    let r = place.run(&["restore", &new, "--target", place.env.path("out2").to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
}

#[test]
fn a_prune_whose_listing_lags_leaves_the_newest_snapshots_data_alone() {
    prune_with_a_lagging_listing(Place::local());
}

#[test]
fn a_prune_on_s3_whose_listing_lags_leaves_the_newest_snapshots_data_alone() {
    prune_with_a_lagging_listing(Place::garage());
}

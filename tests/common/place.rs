//! A repository on the local backend or on Garage, used through the CLI and
//! through the library, and a backend wrapper that makes overlaps and
//! crashes deterministic: pause at a chosen request, hide an object from
//! listings (a listing that lags), or die after the Nth write.

use super::{garage, Env, Run, PASSPHRASE};
use coffer::{Backend, BackendError, Kind, Local, ObjectInfo};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};

type R<T> = Result<T, BackendError>;

/// Where a wrapped backend pauses (the first such request only).
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum At {
    /// Before a ranged read of this kind.
    Read(Kind),
    /// Before a listing of this kind is taken.
    BeforeList(Kind),
    /// After a listing of this kind is taken, before it is returned.
    AfterList(Kind),
    /// Before an object of this kind is written.
    Put(Kind),
}

pub struct Wrapped {
    pub inner: Box<dyn Backend>,
    pub pause: Option<At>,
    pub gate: Mutex<Option<(Sender<()>, Receiver<()>)>>,
    /// Left out of every listing.
    pub hidden: Option<String>,
    /// Every write (put or delete) from this many on fails, as if the
    /// process had died there: nothing after it reaches the store.
    pub die_after: Option<usize>,
    pub writes: AtomicUsize,
}

impl Wrapped {
    pub fn around(inner: Box<dyn Backend>) -> Wrapped {
        Wrapped {
            inner,
            pause: None,
            gate: Mutex::new(None),
            hidden: None,
            die_after: None,
            writes: AtomicUsize::new(0),
        }
    }

    fn wait(&self, at: At) {
        if self.pause != Some(at) {
            return;
        }
        if let Some((reached, go_on)) = self.gate.lock().unwrap().take() {
            reached.send(()).unwrap();
            go_on.recv().unwrap();
        }
    }

    fn write(&self) -> R<()> {
        let n = self.writes.fetch_add(1, Ordering::SeqCst);
        match self.die_after {
            Some(limit) if n >= limit => {
                Err(BackendError::Other(format!("the test stopped this process at write {n}")))
            }
            _ => Ok(()),
        }
    }

    /// Writes that reached the store.
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst).min(self.die_after.unwrap_or(usize::MAX))
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
        self.wait(At::Put(kind));
        self.write()?;
        self.inner.put(kind, name, data)
    }
    fn get(&self, kind: Kind, name: &str) -> R<Vec<u8>> {
        self.inner.get(kind, name)
    }
    fn get_range(&self, kind: Kind, name: &str, offset: u64, length: u64) -> R<Vec<u8>> {
        self.wait(At::Read(kind));
        self.inner.get_range(kind, name, offset, length)
    }
    fn open(&self, kind: Kind, name: &str) -> R<Box<dyn std::io::Read + Send>> {
        self.inner.open(kind, name)
    }
    fn list(&self, kind: Kind) -> R<Vec<ObjectInfo>> {
        self.wait(At::BeforeList(kind));
        let mut v = self.inner.list(kind)?;
        v.retain(|o| Some(&o.name) != self.hidden.as_ref());
        self.wait(At::AfterList(kind));
        Ok(v)
    }
    fn delete(&self, kind: Kind, name: &str) -> R<()> {
        self.write()?;
        self.inner.delete(kind, name)
    }
}

/// A repository on the local backend or on Garage, used through the CLI
/// (backups, forget, prune) and through the library (the wrapped process).
pub struct Place {
    pub env: Env,
    pub repo: String,
    vars: Vec<(String, String)>,
}

impl Place {
    pub fn local() -> Place {
        let env = Env::new();
        let repo = env.repo().display().to_string();
        Place { env, repo, vars: vec![] }
    }

    pub fn garage() -> Place {
        static N: AtomicUsize = AtomicUsize::new(0);
        let g = garage::shared();
        let n = N.fetch_add(1, Ordering::SeqCst);
        let repo = format!("s3://{}/place-{}-{n}", g.get("GARAGE_TEST_BUCKET"), std::process::id());
        let p = Place { env: Env::empty(), repo, vars: g.env.clone() };
        p.run(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]).ok();
        p
    }

    pub fn command(&self) -> std::process::Command {
        let mut c = self.env.command();
        c.envs(self.vars.iter().map(|(k, v)| (k, v)))
            .env("COFFER_REPOSITORY", &self.repo)
            .env("XDG_CACHE_HOME", self.env.path("cache"));
        c
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.command().args(args).output().unwrap().into()
    }

    /// `coffer backup --json PATH`'s snapshot id.
    pub fn backup(&self, path: &std::path::Path) -> String {
        let j = self.run(&["backup", "--json", path.to_str().unwrap()]).ok().json();
        j["snapshot"].as_str().unwrap().to_string()
    }

    fn var(&self, k: &str) -> String {
        self.vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()).unwrap_or_default()
    }

    pub fn backend(&self) -> Box<dyn Backend> {
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

    /// The repository through `wrapped`.
    pub fn open(&self, wrapped: Wrapped) -> coffer::Repository {
        coffer::Repository::open(Arc::new(wrapped), PASSPHRASE.as_bytes()).unwrap()
    }

    /// The repository through a backend that pauses at `at`: the first
    /// receiver says it got there, the sender lets it go on.
    pub fn paused(&self, at: At) -> (coffer::Repository, Receiver<()>, Sender<()>) {
        let (reached_tx, reached_rx) = channel();
        let (go_tx, go_rx) = channel();
        let wrapped =
            Wrapped { pause: Some(at), gate: Mutex::new(Some((reached_tx, go_rx))), ..Wrapped::around(self.backend()) };
        (self.open(wrapped), reached_rx, go_tx)
    }

    /// Every object name of a kind.
    pub fn names(&self, kind: Kind) -> Vec<String> {
        let mut v: Vec<String> = self.backend().list(kind).unwrap().into_iter().map(|o| o.name).collect();
        v.sort();
        v
    }
}

//! A wrapper that counts the requests made through it, by type, and the
//! bytes each way: on S3, requests and egress are the bill. `--estimate`
//! measures with it what planning a command costs; `--verbose` reports what
//! a command made.

use super::{Backend, BackendResult, Kind, ObjectInfo};
use std::io::Read;
use std::sync::{Arc, Mutex};

/// Requests by type, in S3's terms (a LIST is one page of up to 1000 keys, a
/// multipart upload is its parts plus two), and the bytes each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Requests {
    pub get: u64,
    pub list: u64,
    pub put: u64,
    pub delete: u64,
    pub download_bytes: u64,
    pub upload_bytes: u64,
}

impl Requests {
    pub fn total(&self) -> u64 {
        self.get + self.list + self.put + self.delete
    }

    /// One GET of `bytes`.
    pub fn add_get(&mut self, bytes: u64) {
        self.get += 1;
        self.download_bytes += bytes;
    }
}

impl std::ops::Add for Requests {
    type Output = Requests;
    fn add(self, o: Requests) -> Requests {
        Requests {
            get: self.get + o.get,
            list: self.list + o.list,
            put: self.put + o.put,
            delete: self.delete + o.delete,
            download_bytes: self.download_bytes + o.download_bytes,
            upload_bytes: self.upload_bytes + o.upload_bytes,
        }
    }
}

/// Counts every call, failed ones too (a 404 is billed as well).
pub struct Metered {
    inner: Arc<dyn Backend>,
    made: Arc<Mutex<Requests>>,
}

impl Metered {
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        Metered { inner, made: Arc::default() }
    }

    /// What was made so far.
    pub fn made(&self) -> Requests {
        self.made.lock().map(|m| *m).unwrap_or_default()
    }

    fn count(&self, f: impl FnOnce(&mut Requests)) {
        count(&self.made, f)
    }
}

fn count(made: &Mutex<Requests>, f: impl FnOnce(&mut Requests)) {
    if let Ok(mut m) = made.lock() {
        f(&mut m);
    }
}

/// A streamed GET: its bytes are counted as they are read.
struct CountingReader {
    inner: Box<dyn Read + Send>,
    made: Arc<Mutex<Requests>>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        count(&self.made, |m| m.download_bytes += n as u64);
        Ok(n)
    }
}

impl Backend for Metered {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> BackendResult<()> {
        self.inner.create()
    }
    fn put(&self, kind: Kind, name: &str, data: &[u8]) -> BackendResult<()> {
        let requests = self.inner.put_requests(data.len() as u64);
        self.count(|m| {
            m.put += requests;
            m.upload_bytes += data.len() as u64;
        });
        self.inner.put(kind, name, data)
    }
    fn get(&self, kind: Kind, name: &str) -> BackendResult<Vec<u8>> {
        let got = self.inner.get(kind, name);
        self.count(|m| m.add_get(got.as_ref().map_or(0, |d| d.len() as u64)));
        got
    }
    fn get_range(&self, kind: Kind, name: &str, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        let got = self.inner.get_range(kind, name, offset, length);
        self.count(|m| m.add_get(got.as_ref().map_or(0, |d| d.len() as u64)));
        got
    }
    fn get_range_into(&self, kind: Kind, name: &str, offset: u64, length: u64, buf: &mut Vec<u8>) -> BackendResult<()> {
        let got = self.inner.get_range_into(kind, name, offset, length, buf);
        let bytes = if got.is_ok() { buf.len() as u64 } else { 0 };
        self.count(|m| m.add_get(bytes));
        got
    }
    fn open(&self, kind: Kind, name: &str) -> BackendResult<Box<dyn Read + Send>> {
        let reader = self.inner.open(kind, name);
        self.count(|m| m.get += 1);
        let made = self.made.clone();
        reader.map(|inner| Box::new(CountingReader { inner, made }) as Box<dyn Read + Send>)
    }
    fn list(&self, kind: Kind) -> BackendResult<Vec<ObjectInfo>> {
        let listed = self.inner.list(kind);
        let pages = self.inner.list_requests(listed.as_ref().map_or(0, Vec::len));
        self.count(|m| m.list += pages);
        listed
    }
    fn list_under(&self, kind: Kind, folder: &str) -> BackendResult<Vec<ObjectInfo>> {
        let listed = self.inner.list_under(kind, folder);
        let pages = self.inner.list_requests(listed.as_ref().map_or(0, Vec::len));
        self.count(|m| m.list += pages);
        listed
    }
    fn delete(&self, kind: Kind, name: &str) -> BackendResult<()> {
        let heads = self.inner.heads_per_delete();
        self.count(|m| {
            m.get += heads;
            m.delete += 1;
        });
        self.inner.delete(kind, name)
    }
    fn holds_anything(&self) -> BackendResult<bool> {
        self.inner.holds_anything()
    }
    fn enclosing_repository(&self) -> BackendResult<Option<String>> {
        self.inner.enclosing_repository()
    }
    fn versioning(&self) -> Option<String> {
        self.count(|m| m.get += 1);
        self.inner.versioning()
    }
    fn abort_uploads_older_than(&self, age: std::time::Duration) -> BackendResult<usize> {
        let aborted = self.inner.abort_uploads_older_than(age);
        self.count(|m| {
            m.list += 1;
            m.delete += *aborted.as_ref().unwrap_or(&0) as u64;
        });
        aborted
    }
    fn incomplete_uploads(&self) -> BackendResult<Vec<String>> {
        self.count(|m| m.list += 1);
        self.inner.incomplete_uploads()
    }
    fn put_requests(&self, size: u64) -> u64 {
        self.inner.put_requests(size)
    }
    fn retained_until(&self, kind: Kind, name: &str) -> BackendResult<Option<std::time::SystemTime>> {
        self.count(|m| m.get += self.inner.heads_per_delete());
        self.inner.retained_until(kind, name)
    }
    fn list_requests(&self, listed: usize) -> u64 {
        self.inner.list_requests(listed)
    }
    fn heads_per_delete(&self) -> u64 {
        self.inner.heads_per_delete()
    }
    fn read_parallelism(&self) -> usize {
        self.inner.read_parallelism()
    }
}

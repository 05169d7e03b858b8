//! A wrapper that reads through to the real backend and counts, then drops,
//! every write: what `backup --dry-run` runs on, so it cannot write by mistake.

use super::{Backend, BackendError, BackendResult, Kind, ObjectInfo};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub struct DryRun {
    inner: Arc<dyn Backend>,
    objects: AtomicU64,
    bytes: AtomicU64,
}

impl DryRun {
    pub fn new(inner: Arc<dyn Backend>) -> Self {
        DryRun { inner, objects: AtomicU64::new(0), bytes: AtomicU64::new(0) }
    }

    /// Objects and bytes that would have been written.
    pub fn dropped(&self) -> (u64, u64) {
        (self.objects.load(Ordering::Relaxed), self.bytes.load(Ordering::Relaxed))
    }
}

impl Backend for DryRun {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn create(&self) -> BackendResult<()> {
        Ok(())
    }
    fn put(&self, _kind: Kind, _name: &str, data: &[u8]) -> BackendResult<()> {
        self.objects.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    fn get(&self, kind: Kind, name: &str) -> BackendResult<Vec<u8>> {
        self.inner.get(kind, name)
    }
    fn get_range(&self, kind: Kind, name: &str, offset: u64, length: u64) -> BackendResult<Vec<u8>> {
        self.inner.get_range(kind, name, offset, length)
    }
    fn get_range_into(&self, kind: Kind, name: &str, offset: u64, length: u64, buf: &mut Vec<u8>) -> BackendResult<()> {
        self.inner.get_range_into(kind, name, offset, length, buf)
    }
    fn open(&self, kind: Kind, name: &str) -> BackendResult<Box<dyn Read + Send>> {
        self.inner.open(kind, name)
    }
    fn list(&self, kind: Kind) -> BackendResult<Vec<ObjectInfo>> {
        self.inner.list(kind)
    }
    fn list_under(&self, kind: Kind, folder: &str) -> BackendResult<Vec<ObjectInfo>> {
        self.inner.list_under(kind, folder)
    }
    fn read_parallelism(&self) -> usize {
        self.inner.read_parallelism()
    }
    fn retained_until(&self, kind: Kind, name: &str) -> BackendResult<Option<std::time::SystemTime>> {
        self.inner.retained_until(kind, name)
    }
    fn delete(&self, kind: Kind, name: &str) -> BackendResult<()> {
        // A dry run reports what Object Lock would keep, as the run would.
        match self.inner.retained_until(kind, name)? {
            Some(until) if until > std::time::SystemTime::now() => {
                Err(BackendError::Retained { path: format!("{} {name}", kind.dir()), until })
            }
            _ => Ok(()),
        }
    }
    fn incomplete_uploads(&self) -> BackendResult<Vec<String>> {
        self.inner.incomplete_uploads()
    }
}

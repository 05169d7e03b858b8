//! An ordered parallel map: one producer thread, N worker threads, and the
//! caller's thread as the in-order consumer. Backup and restore both run on
//! it, so reading, CPU work (hash, compress, encrypt) and writing overlap and
//! every core is busy.
//!
//! Memory is bounded by `window`: the producer needs a credit per item and
//! the consumer returns one only after it has taken an item in order, so at
//! most `window` items exist between the two, however large the input.

use crate::error::{Error, Result};
use crossbeam_channel::{bounded, unbounded, RecvTimeoutError};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Handed to the producer: `emit` blocks while the window is full and fails
/// once the pipeline was aborted (the producer should then return).
pub struct Emitter<'a, T> {
    credits: &'a crossbeam_channel::Receiver<()>,
    jobs: crossbeam_channel::Sender<(u64, T)>,
    next: u64,
    failed: &'a AtomicBool,
}

impl<T> Emitter<'_, T> {
    pub fn emit(&mut self, item: T) -> Result<()> {
        // Wait for a credit, but notice an abort elsewhere: a failed worker
        // means the consumer will never return the credits it holds.
        loop {
            if self.failed.load(Ordering::Relaxed) {
                return Err(aborted());
            }
            match self.credits.recv_timeout(POLL) {
                Ok(()) => break,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => return Err(aborted()),
            }
        }
        self.jobs.send((self.next, item)).map_err(|_| aborted())?;
        self.next += 1;
        Ok(())
    }
}

/// Groups items into batches, one pipeline job each: a job costs a few
/// thread wakeups, which dominate the work when files are a few KiB each.
/// A batch is sent once its items weigh `max_weight` (bytes, say) or number
/// `max_items`, so big items still travel alone and keep every worker busy.
pub struct Batcher<'e, 'a, T> {
    emitter: &'e mut Emitter<'a, Vec<T>>,
    items: Vec<T>,
    weight: usize,
    max_weight: usize,
    max_items: usize,
}

impl<'e, 'a, T> Batcher<'e, 'a, T> {
    pub fn new(emitter: &'e mut Emitter<'a, Vec<T>>, max_weight: usize, max_items: usize) -> Self {
        Batcher { emitter, items: Vec::new(), weight: 0, max_weight, max_items }
    }

    pub fn push(&mut self, item: T, weight: usize) -> Result<()> {
        self.items.push(item);
        self.weight += weight;
        if self.weight >= self.max_weight || self.items.len() >= self.max_items {
            self.flush()?;
        }
        Ok(())
    }

    /// Sends what is waiting; call at the end.
    pub fn flush(&mut self) -> Result<()> {
        if self.items.is_empty() {
            return Ok(());
        }
        self.weight = 0;
        self.emitter.emit(std::mem::take(&mut self.items))
    }
}

/// How often a blocked producer or consumer looks at the abort flag.
const POLL: std::time::Duration = std::time::Duration::from_millis(20);

fn aborted() -> Error {
    Error::Internal("pipeline aborted".into())
}

/// Runs `produce` -> `work` (in parallel) -> `consume` (in order). The first
/// error anywhere stops all three and is returned.
pub fn run<T, U, P, W, C>(workers: usize, window: usize, produce: P, work: W, mut consume: C) -> Result<()>
where
    T: Send,
    U: Send,
    P: FnOnce(&mut Emitter<'_, T>) -> Result<()> + Send,
    W: Fn(T) -> Result<U> + Sync,
    C: FnMut(U) -> Result<()>,
{
    let workers = workers.max(1);
    let window = window.max(workers);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    let record = |e: Error| {
        failed.store(true, Ordering::Relaxed);
        let mut slot = first_error.lock().unwrap_or_else(|p| p.into_inner());
        // Keep the root cause, not the "aborted" of those it stopped.
        if slot.is_none() {
            *slot = Some(e);
        }
    };

    let (credit_tx, credit_rx) = bounded::<()>(window);
    for _ in 0..window {
        credit_tx.send(()).expect("channel has room for the window");
    }
    let (job_tx, job_rx) = bounded::<(u64, T)>(window);
    let (done_tx, done_rx) = unbounded::<(u64, U)>();

    std::thread::scope(|s| {
        let (failed, record, credit_rx) = (&failed, &record, &credit_rx);
        s.spawn(move || {
            let mut emitter = Emitter { credits: credit_rx, jobs: job_tx, next: 0, failed };
            if let Err(e) = produce(&mut emitter) {
                record(e);
            }
        });
        for _ in 0..workers {
            let (job_rx, done_tx, work) = (job_rx.clone(), done_tx.clone(), &work);
            s.spawn(move || {
                for (seq, item) in job_rx.iter() {
                    if failed.load(Ordering::Relaxed) {
                        break;
                    }
                    match work(item) {
                        Ok(out) => {
                            if done_tx.send((seq, out)).is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            record(e);
                            break;
                        }
                    }
                }
            });
        }
        drop(job_rx);
        drop(done_tx);

        let mut pending = BTreeMap::new();
        let mut next = 0u64;
        'outer: loop {
            if failed.load(Ordering::Relaxed) {
                break;
            }
            let (seq, out) = match done_rx.recv_timeout(POLL) {
                Ok(v) => v,
                Err(RecvTimeoutError::Timeout) => continue,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            pending.insert(seq, out);
            while let Some(out) = pending.remove(&next) {
                next += 1;
                if let Err(e) = consume(out) {
                    record(e);
                    break 'outer;
                }
                let _ = credit_tx.send(());
            }
        }
        // Unblock a producer waiting for credit and workers waiting to send.
        drop(credit_tx);
        drop(done_rx);
    });

    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Runs `main` beside a helper thread that `main` feeds through a bounded
/// channel (the pack uploader, a hasher). When `main` returns, its sender is
/// gone, so the helper sees the channel close and finishes. The helper's
/// error comes first: it is the root cause of a send that failed in `main`.
pub fn with_helper<M: Send, H: Send, R>(
    bound: usize,
    helper: impl FnOnce(crossbeam_channel::Receiver<M>) -> Result<H> + Send,
    main: impl FnOnce(crossbeam_channel::Sender<M>) -> Result<R>,
) -> Result<(R, H)> {
    let (tx, rx) = bounded(bound);
    std::thread::scope(|s| {
        let helper = s.spawn(move || helper(rx));
        let done = main(tx);
        let helped = helper.join().unwrap_or_else(|_| Err(Error::Internal("helper thread panicked".into())));
        helped.and_then(|h| done.map(|r| (r, h)))
    })
}

/// Byte buffers handed back and forth between the stages, so that chunks do
/// not each cost an allocation: with glibc's mmap threshold pinned low (see
/// main.rs), every chunk-sized allocation would be a fresh mapping, and
/// faulting its pages in cost more than the memcpy itself. Holds at most
/// `keep` buffers, so memory stays bounded by the pipeline's window.
pub struct BufferPool {
    free: Mutex<Vec<Vec<u8>>>,
    keep: usize,
}

impl BufferPool {
    pub fn new(keep: usize) -> Self {
        BufferPool { free: Mutex::new(Vec::with_capacity(keep)), keep }
    }

    /// An empty buffer, recycled when one is free.
    pub fn take(&self) -> Vec<u8> {
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        free.pop().unwrap_or_default()
    }

    /// A recycled buffer holding a copy of `data`.
    pub fn copy_of(&self, data: &[u8]) -> Vec<u8> {
        let mut buf = self.take();
        buf.extend_from_slice(data);
        buf
    }

    pub fn give(&self, mut buf: Vec<u8>) {
        buf.clear();
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < self.keep {
            free.push(buf);
        }
    }
}

/// Worker threads for CPU-bound stages: one per core.
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

#[cfg(test)]
mod tests {
    // Stand-in failures: any error with a plain message, to see that the
    // pipeline returns the very error raised.
    use super::*;

    #[test]
    fn output_is_in_order_and_complete() {
        let mut got = Vec::new();
        run(
            4,
            8,
            |e| {
                for i in 0..1000u64 {
                    e.emit(i)?;
                }
                Ok(())
            },
            |i| {
                if i % 7 == 0 {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                }
                Ok(i * 2)
            },
            |v| {
                got.push(v);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, (0..1000u64).map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn errors_stop_everything_and_are_returned() {
        for fail_in in ["produce", "work", "consume"] {
            let r = run(
                2,
                4,
                |e| {
                    for i in 0..1_000_000u64 {
                        if fail_in == "produce" && i == 50 {
                            return Err(Error::InvalidOptions("produce failed".into()));
                        }
                        e.emit(i)?;
                    }
                    Ok(())
                },
                |i| {
                    if fail_in == "work" && i == 50 {
                        return Err(Error::InvalidOptions("work failed".into()));
                    }
                    Ok(i)
                },
                |i| {
                    if fail_in == "consume" && i == 50 {
                        return Err(Error::InvalidOptions("consume failed".into()));
                    }
                    Ok(())
                },
            );
            let msg = r.unwrap_err().to_string();
            assert_eq!(msg, format!("{fail_in} failed"));
        }
    }

    #[test]
    fn a_worker_failing_behind_later_items_does_not_hang() {
        // Item 3 fails slowly while later items finish: the consumer holds
        // them waiting for 3, the producer waits for credit. Both must stop.
        let r = run(
            2,
            4,
            |e| {
                for i in 0..100u64 {
                    e.emit(i)?;
                }
                Ok(())
            },
            |i| {
                if i == 3 {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    return Err(Error::InvalidOptions("slow failure".into()));
                }
                Ok(i)
            },
            |_| Ok(()),
        );
        assert_eq!(r.unwrap_err().to_string(), "slow failure");
    }

    #[test]
    fn batches_keep_order_and_close_on_weight_or_count() {
        let mut got: Vec<Vec<u32>> = Vec::new();
        run(
            2,
            4,
            |e| {
                let mut b = Batcher::new(e, 10, 3);
                for (i, w) in [(1, 1), (2, 1), (3, 1), (4, 12), (5, 1), (6, 1)] {
                    b.push(i, w)?;
                }
                b.flush()
            },
            Ok,
            |batch| {
                got.push(batch);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(got, vec![vec![1, 2, 3], vec![4], vec![5, 6]]);
    }

    #[test]
    fn a_helpers_error_comes_before_the_send_it_broke() {
        let r = with_helper(
            1,
            |rx: crossbeam_channel::Receiver<u32>| {
                rx.recv().ok();
                Err::<(), _>(Error::InvalidOptions("disk full".into()))
            },
            |tx| {
                for i in 0..100 {
                    tx.send(i).map_err(|_| Error::InvalidOptions("helper stopped".into()))?;
                }
                Ok(())
            },
        );
        assert_eq!(r.unwrap_err().to_string(), "disk full");
        let ok = with_helper(
            2,
            |rx: crossbeam_channel::Receiver<u32>| Ok(rx.iter().sum::<u32>()),
            |tx| (1..=4).try_for_each(|i| tx.send(i)).map_err(|_| Error::InvalidOptions("stopped".into())),
        );
        assert_eq!(ok.unwrap(), ((), 10));
    }

    #[test]
    fn the_pool_recycles_and_keeps_at_most_its_bound() {
        let pool = BufferPool::new(2);
        let a = pool.copy_of(b"hello");
        let ptr = a.as_ptr();
        pool.give(a);
        let b = pool.take();
        assert!(b.is_empty());
        assert_eq!(b.as_ptr(), ptr, "the same allocation comes back");
        pool.give(b);
        pool.give(vec![1]);
        pool.give(vec![2]);
        assert_eq!(pool.free.lock().unwrap().len(), 2);
    }

    #[test]
    fn in_flight_items_never_exceed_the_window() {
        use std::sync::atomic::AtomicUsize;
        let live = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        run(
            2,
            5,
            |e| {
                for i in 0..500u64 {
                    let n = live.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    e.emit(i)?;
                }
                Ok(())
            },
            Ok,
            |_| {
                live.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            },
        )
        .unwrap();
        // +1: the producer counts an item just before waiting for its credit.
        assert!(peak.load(Ordering::SeqCst) <= 6, "peak {}", peak.load(Ordering::SeqCst));
    }
}

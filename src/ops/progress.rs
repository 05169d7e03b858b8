//! What a person waiting sees: a long command says what it is about to do
//! (items and bytes) and reports each as it goes; the CLI draws the bar.

pub trait Progress: Sync {
    /// Does it want totals that cost work to find (a backup's pre-scan of the trees)?
    fn wants_total(&self) -> bool {
        false
    }
    /// A phase starts: `items` of `unit` ("files", "snapshots", "packs")
    /// holding `bytes`; 0 for what is not known ahead (a dump's size).
    fn start(&self, _unit: &'static str, _items: u64, _bytes: u64) {}
    /// A phase whose amount of work nobody can know ahead (a pg_restore
    /// run): its name, and the time it has taken.
    fn phase(&self, _what: &'static str) {}
    fn bytes_done(&self, _n: u64) {}
    fn item_done(&self) {}
}

/// For callers that show nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

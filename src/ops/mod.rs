//! One module per command: each takes its options, makes a plan, and runs it.
//! Commands use the repository (`repo`), the engine and the sources; they
//! print nothing (the CLI does).

pub mod backup;
pub mod browse;
pub mod copy;
pub mod drill;
pub mod drill_pitr;
pub mod estimate;
pub mod forget;
pub mod progress;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod restore_base;
pub mod restore_pg;
pub mod stat_cache;
pub mod stream;
pub mod verify;
pub mod wal;

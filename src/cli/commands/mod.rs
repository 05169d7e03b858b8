//! One file per command: its arguments, their conversion into the
//! library's options, and the run that prints the result.

pub mod backup;
pub mod completions;
pub mod copy;
pub mod diff;
pub mod drill;
pub mod dump;
pub mod find;
pub mod forget;
pub mod init;
pub mod key;
pub mod ls;
pub mod prune;
pub mod repair;
pub mod restore;
pub mod show;
pub mod snapshots;
pub mod stats;
pub mod unlock;
pub mod verify;
pub mod wal;

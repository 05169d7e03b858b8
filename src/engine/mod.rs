//! The machinery commands are built from, knowing nothing of any one
//! command: the ordered parallel pipeline, the chunker, files that get their
//! name only when complete, and their folder's owner, the restore target walked by descriptors, and
//! path filters.

pub mod atomic_file;
pub mod child;
pub mod chunker;
pub mod filter;
pub mod owner;
pub mod pipeline;
pub mod target;

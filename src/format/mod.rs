//! The repository's stored structures: the cleartext config, key objects,
//! pack files, indexes, manifests, and the codec and encodings they share.
//! docs/FORMAT.md is their spec; change both together. Parsers here treat
//! their input as hostile (they are fuzzed: see `crate::fuzz`).

pub mod codec;
pub mod config;
pub mod encoding;
pub mod index;
pub mod key;
pub mod manifest;
pub mod pack;

pub use config::Config;
pub use index::{ChunkEntry, ChunkLocation, Index, IndexFile, PackEntry};
pub use key::{Access, KeyFile};
pub use pack::{pack_size, parse_pack_header, read_pack_header, PackWriter};

/// The repository format `init` writes; this build reads and writes every
/// version from 1 up to it (a repository keeps the version it was made with).
pub const FORMAT_VERSION: u32 = 3;

/// Packs are closed once they reach this size (plus at most one chunk).
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;

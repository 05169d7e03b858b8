//! The repository's stored structures other than manifests: the cleartext
//! config, key objects, pack files and indexes. docs/FORMAT.md is their spec;
//! change both together.

use crate::chunker::ChunkerParams;
use crate::crypto::{KdfParams, Keys, Role};
use crate::encoding::Id;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// The repository format `init` writes; this build reads and writes every
/// version from 1 up to it (a repository keeps the version it was made with).
pub const FORMAT_VERSION: u32 = 2;

/// Packs are closed once they reach this size (plus at most one chunk).
pub const DEFAULT_PACK_SIZE: u32 = 16 * 1024 * 1024;

/// `config`: cleartext JSON, no secrets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub version: u32,
    pub id: Id,
    pub chunker: ChunkerParams,
    pub pack_size: u32,
}

impl Config {
    pub fn parse(bytes: &[u8]) -> Result<Config> {
        // Read the version alone first, so a future format gives a version
        // error rather than a confusing parse error.
        #[derive(Deserialize)]
        struct Version {
            version: u32,
        }
        let v: Version = serde_json::from_slice(bytes).map_err(|e| Error::corrupt("config", e.to_string()))?;
        Error::check_version(|| "config".into(), v.version, FORMAT_VERSION)?;
        let c: Config = serde_json::from_slice(bytes).map_err(|e| Error::corrupt("config", e.to_string()))?;
        c.chunker.validate().map_err(|e| Error::corrupt("config", e))?;
        if !(1024 * 1024..=1024 * 1024 * 1024).contains(&c.pack_size) {
            return Err(Error::corrupt("config", format!("pack size {} out of range", c.pack_size)));
        }
        Ok(c)
    }
}

/// `keys/<sha256 of the object>`: a master key wrapped under a passphrase.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct KeyFile {
    pub version: u32,
    pub created: chrono::DateTime<chrono::Utc>,
    pub host: String,
    pub kdf: KdfParams,
    #[serde(with = "crate::encoding::b64")]
    pub wrapped: Vec<u8>,
}

/// A chunk's place in a pack: `length` sealed bytes at `offset`, which
/// decrypt and decompress to `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    pub id: Id,
    pub offset: u32,
    pub length: u32,
    pub size: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PackEntry {
    pub id: Id,
    pub size: u64,
    pub chunks: Vec<ChunkEntry>,
}

/// Plaintext of an `index/<id>` object.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexFile {
    pub version: u32,
    pub packs: Vec<PackEntry>,
}

/// Builds a pack in memory: sealed chunks appended, then the sealed header
/// and its length. Its name is the SHA-256 of its bytes.
#[derive(Default)]
pub struct PackWriter {
    buf: Vec<u8>,
    chunks: Vec<ChunkEntry>,
}

/// Header record: chunk id (32 bytes) + sealed length (u32 LE) + plaintext size (u32 LE).
const HEADER_RECORD: usize = 40;

impl PackWriter {
    pub fn with_capacity(bytes: usize) -> Self {
        Self::with_buffer(Vec::with_capacity(bytes))
    }

    /// Writes into `buf` (cleared): the backup reuses stored packs' buffers.
    pub fn with_buffer(mut buf: Vec<u8>) -> Self {
        buf.clear();
        PackWriter { buf, chunks: Vec::new() }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    pub fn add(&mut self, id: Id, sealed: &[u8], size: u32) {
        let offset = self.buf.len() as u32;
        self.buf.extend_from_slice(sealed);
        self.chunks.push(ChunkEntry { id, offset, length: sealed.len() as u32, size });
    }

    /// Appends the header; returns the pack's bytes and its index entry.
    pub fn finish(mut self, keys: &Keys) -> (Vec<u8>, PackEntry) {
        let mut header = Vec::with_capacity(self.chunks.len() * HEADER_RECORD);
        for c in &self.chunks {
            header.extend_from_slice(&c.id.0);
            header.extend_from_slice(&c.length.to_le_bytes());
            header.extend_from_slice(&c.size.to_le_bytes());
        }
        let sealed = keys.seal(Role::PackHeader, b"", &header);
        self.buf.extend_from_slice(&sealed);
        self.buf.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
        let id = Id(sha256(&self.buf));
        let size = self.buf.len() as u64;
        (self.buf, PackEntry { id, size, chunks: self.chunks })
    }
}

/// Reads a whole pack's header, checking its name first. For `verify`.
pub fn read_pack_header(keys: &Keys, name: &Id, pack: &[u8]) -> Result<Vec<ChunkEntry>> {
    if sha256(pack) != name.0 {
        return Err(Error::corrupt(format!("pack {name}"), "content does not match its name (sha256)"));
    }
    parse_pack_header(keys, name, pack)
}

/// A pack's header, without checking the pack's name: what `repair` needs
/// to find the chunks that still authenticate in a damaged pack.
pub fn parse_pack_header(keys: &Keys, name: &Id, pack: &[u8]) -> Result<Vec<ChunkEntry>> {
    let object = format!("pack {}", name);
    let n = pack.len();
    if n < 4 {
        return Err(Error::corrupt(object, "too short to hold a header"));
    }
    let hlen = u32::from_le_bytes(pack[n - 4..].try_into().expect("4 bytes")) as usize;
    if hlen + 4 > n {
        return Err(Error::corrupt(object, "header length points outside the pack"));
    }
    let header_start = n - 4 - hlen;
    let header = keys
        .open(Role::PackHeader, b"", &pack[header_start..n - 4])
        .map_err(|e| Error::corrupt(object.clone(), format!("header: {e}")))?;
    if header.len() % HEADER_RECORD != 0 {
        return Err(Error::corrupt(object, "header has a partial record"));
    }
    let mut offset: u64 = 0;
    let mut out = Vec::with_capacity(header.len() / HEADER_RECORD);
    for rec in header.chunks_exact(HEADER_RECORD) {
        let id = Id(rec[..32].try_into().expect("32 bytes"));
        let length = u32::from_le_bytes(rec[32..36].try_into().expect("4 bytes"));
        let size = u32::from_le_bytes(rec[36..40].try_into().expect("4 bytes"));
        out.push(ChunkEntry { id, offset: offset as u32, length, size });
        offset += length as u64;
    }
    if offset != header_start as u64 {
        return Err(Error::corrupt(object, "header does not cover the pack's chunks"));
    }
    Ok(out)
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

/// Where a chunk lives, in memory.
#[derive(Debug, Clone, Copy)]
pub struct ChunkLocation {
    pub pack: u32,
    pub offset: u32,
    pub length: u32,
    pub size: u32,
}

/// All indexes merged: chunk id -> location. Packs are numbered to keep each
/// entry small (a 10 TiB repository holds ~10 million chunks).
#[derive(Default)]
pub struct Index {
    packs: Vec<(Id, u64)>,
    chunks: HashMap<Id, ChunkLocation>,
    /// Further copies of a chunk stored in more than one pack (a backup
    /// stored it again after its pack was lost): readers fall back on them.
    copies: HashMap<Id, Vec<ChunkLocation>>,
}

impl Index {
    pub fn add_pack(&mut self, pack: &PackEntry) {
        let n = self.packs.len() as u32;
        self.packs.push((pack.id, pack.size));
        for c in &pack.chunks {
            let loc = ChunkLocation { pack: n, offset: c.offset, length: c.length, size: c.size };
            match self.chunks.entry(c.id) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(loc);
                }
                std::collections::hash_map::Entry::Occupied(o) => {
                    if self.packs[o.get().pack as usize].0 != pack.id {
                        self.copies.entry(c.id).or_default().push(loc);
                    }
                }
            }
        }
    }

    pub fn get(&self, id: &Id) -> Option<(Id, ChunkLocation)> {
        self.chunks.get(id).map(|loc| (self.packs[loc.pack as usize].0, *loc))
    }

    /// Every stored copy of a chunk: the first one indexed, then the others.
    pub fn locations(&self, id: &Id) -> impl Iterator<Item = (Id, ChunkLocation)> + '_ {
        self.chunks
            .get(id)
            .into_iter()
            .chain(self.copies.get(id).into_iter().flatten())
            .map(|loc| (self.packs[loc.pack as usize].0, *loc))
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.chunks.contains_key(id)
    }

    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    pub fn packs(&self) -> &[(Id, u64)] {
        &self.packs
    }

    pub fn chunk_ids(&self) -> impl Iterator<Item = &Id> {
        self.chunks.keys()
    }

    /// Forgets every chunk of a pack that `stored` (the listing: pack id ->
    /// size) lacks or holds at another size than indexed (truncated,
    /// replaced), so that a backup stores those chunks again instead of
    /// referring to data that is gone. Returns the packs dropped, each with
    /// what is wrong.
    pub fn drop_packs_not_stored(&mut self, stored: &HashMap<Id, u64>) -> Vec<(Id, String)> {
        let bad: Vec<(u32, Id, String)> = self
            .packs
            .iter()
            .enumerate()
            .filter_map(|(n, (id, size))| match stored.get(id) {
                None => Some((n as u32, *id, "missing".to_string())),
                Some(s) if s != size => Some((n as u32, *id, format!("{s} bytes, indexed as {size}"))),
                Some(_) => None,
            })
            .collect();
        if !bad.is_empty() {
            let gone: std::collections::HashSet<u32> = bad.iter().map(|b| b.0).collect();
            for copies in self.copies.values_mut() {
                copies.retain(|loc| !gone.contains(&loc.pack));
            }
            // A chunk whose first copy is gone is still known through another.
            for (id, loc) in self.chunks.iter_mut() {
                if gone.contains(&loc.pack) {
                    if let Some(other) = self.copies.get_mut(id).and_then(|c| c.pop()) {
                        *loc = other;
                    }
                }
            }
            self.chunks.retain(|_, loc| !gone.contains(&loc.pack));
        }
        bad.into_iter().map(|(_, id, why)| (id, why)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn pack_header_round_trip_and_tamper() {
        let keys = MasterKey::generate().subkeys(b"r", crate::crypto::HashAlgo::Blake3);
        let mut w = PackWriter::default();
        let a = keys.seal(Role::Chunk, b"a", b"first");
        let b = keys.seal(Role::Chunk, b"b", b"second!");
        w.add(Id([1; 32]), &a, 5);
        w.add(Id([2; 32]), &b, 7);
        let (bytes, entry) = w.finish(&keys);
        assert_eq!(entry.id.0, sha256(&bytes));
        let chunks = read_pack_header(&keys, &entry.id, &bytes).unwrap();
        assert_eq!(chunks, entry.chunks);

        let mut bad = bytes.clone();
        bad[3] ^= 1;
        assert!(read_pack_header(&keys, &entry.id, &bad).is_err());
        assert!(read_pack_header(&keys, &entry.id, &bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn config_version_is_checked() {
        let c = Config {
            version: FORMAT_VERSION + 1,
            id: Id([0; 32]),
            chunker: ChunkerParams::default(),
            pack_size: DEFAULT_PACK_SIZE,
        };
        let bytes = serde_json::to_vec(&c).unwrap();
        assert!(matches!(Config::parse(&bytes), Err(Error::UnsupportedVersion { version: 3, .. })));
        assert!(matches!(Config::parse(b"{nope"), Err(Error::Corrupt { .. })));
    }
}

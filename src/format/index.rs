//! Index files (`index/<id>`: which chunks each pack holds, where) and the
//! in-memory index they merge into.

use crate::crypto::KeyBlock;
use crate::format::encoding::Id;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

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
    /// Format 3: the pack's key block, where it is not the repository's own
    /// (a write-only backup's envelope). Absent: the repository key.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "key_block")]
    pub key: Option<KeyBlock>,
}

/// A key block in an index: base64 of its bytes (FORMAT.md §4a).
mod key_block {
    use crate::crypto::KeyBlock;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Option<KeyBlock>, s: S) -> Result<S::Ok, S::Error> {
        match b {
            Some(b) => s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b.encode())),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<KeyBlock>, D::Error> {
        let Some(text) = Option::<String>::deserialize(d)? else { return Ok(None) };
        let bytes = base64::engine::general_purpose::STANDARD.decode(text).map_err(serde::de::Error::custom)?;
        let (block, n) = KeyBlock::parse(&bytes).map_err(serde::de::Error::custom)?;
        if n != bytes.len() {
            return Err(serde::de::Error::custom("trailing bytes after a key block"));
        }
        Ok(Some(block))
    }
}

/// Plaintext of an `index/<id>` object.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexFile {
    pub version: u32,
    pub packs: Vec<PackEntry>,
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
    /// The key block of each pack not sealed under the repository key
    /// (format 3's write-only backups), by pack number; shared by a run's packs.
    keys: HashMap<u32, std::sync::Arc<KeyBlock>>,
    last_key: Option<std::sync::Arc<KeyBlock>>,
}

impl Index {
    pub fn add_pack(&mut self, pack: &PackEntry) {
        let n = self.packs.len() as u32;
        self.packs.push((pack.id, pack.size));
        if let Some(block) = &pack.key {
            let shared = match &self.last_key {
                Some(k) if **k == *block => k.clone(),
                _ => std::sync::Arc::new(block.clone()),
            };
            self.last_key = Some(shared.clone());
            self.keys.insert(n, shared);
        }
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

    /// Each of a stream's chunks with its offset in the stream, from the
    /// indexed sizes, and the stream's length; `Err` names a chunk in no
    /// pack. A writer places each chunk at its offset, so the reader of a
    /// chunk must refuse one whose plaintext differs from its indexed size.
    pub fn offsets(&self, chunks: &[Id]) -> std::result::Result<(Vec<(Id, u64)>, u64), Id> {
        let mut offset = 0u64;
        let mut out = Vec::with_capacity(chunks.len());
        for c in chunks {
            let loc = self.chunks.get(c).ok_or(*c)?;
            out.push((*c, offset));
            offset += u64::from(loc.size);
        }
        Ok((out, offset))
    }

    /// Every stored copy of a chunk: the first one indexed, then the others.
    pub fn locations(&self, id: &Id) -> impl Iterator<Item = (Id, ChunkLocation)> + '_ {
        self.chunks
            .get(id)
            .into_iter()
            .chain(self.copies.get(id).into_iter().flatten())
            .map(|loc| (self.packs[loc.pack as usize].0, *loc))
    }

    /// The key block of pack number `pack` (a `ChunkLocation`'s), if not
    /// the repository's own.
    pub fn key_of(&self, pack: u32) -> Option<&KeyBlock> {
        self.keys.get(&pack).map(|k| &**k)
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

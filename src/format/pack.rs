//! Pack files: sealed chunks appended, then a sealed header listing them and
//! the header's length. A pack's name is the SHA-256 of its bytes.

use super::index::{ChunkEntry, PackEntry};
use crate::crypto::{sha256, KeyBlock, Keys, Role};
use crate::error::{Error, Result};
use crate::format::encoding::Id;

/// Builds a pack in memory: sealed chunks appended, then the sealed header
/// and its length. Its name is the SHA-256 of its bytes.
#[derive(Default, Clone)]
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
    pub fn finish(self, keys: &Keys) -> (Vec<u8>, PackEntry) {
        let block = keys.pack_key_block();
        self.finish_with(block, |aad, header| keys.seal_part(Role::PackHeader, aad, header))
    }

    /// `finish` with the header sealed by `seal(associated id, header)`
    /// (the test vectors' fixed nonce). Format 3 packs carry `block`, the
    /// chunks' key, before the header, which is bound to it.
    pub(crate) fn finish_with(
        mut self,
        block: Option<KeyBlock>,
        seal: impl FnOnce(&[u8], &[u8]) -> Vec<u8>,
    ) -> (Vec<u8>, PackEntry) {
        let mut header = Vec::with_capacity(self.chunks.len() * HEADER_RECORD);
        for c in &self.chunks {
            header.extend_from_slice(&c.id.0);
            header.extend_from_slice(&c.length.to_le_bytes());
            header.extend_from_slice(&c.size.to_le_bytes());
        }
        let block_bytes = block.as_ref().map(KeyBlock::encode).unwrap_or_default();
        let sealed = seal(&block_bytes, &header);
        self.buf.extend_from_slice(&block_bytes);
        self.buf.extend_from_slice(&sealed);
        self.buf.extend_from_slice(&((block_bytes.len() + sealed.len()) as u32).to_le_bytes());
        let id = Id(sha256(&self.buf));
        let size = self.buf.len() as u64;
        (self.buf, PackEntry { id, size, chunks: self.chunks, key: named_key(block) })
    }
}

/// The size of a pack holding `chunks` sealed chunks of `bytes` in all: the
/// chunks, the key block (`block_len` bytes, format 3), the sealed header
/// (a record per chunk), the header's length.
pub fn pack_size(bytes: u64, chunks: u64, block_len: u64) -> u64 {
    bytes + block_len + chunks * HEADER_RECORD as u64 + crate::crypto::SEAL_OVERHEAD as u64 + 4
}

/// What a pack's tail says: its chunks, and (format 3) the key they are
/// sealed under.
#[derive(Debug)]
pub struct PackHeader {
    pub chunks: Vec<ChunkEntry>,
    pub key: Option<KeyBlock>,
}

/// A pack's key block as its index entry names it: only where it is not
/// the repository's own key of generation 0.
fn named_key(block: Option<KeyBlock>) -> Option<KeyBlock> {
    block.filter(|b| *b != KeyBlock::DEFAULT)
}

impl PackHeader {
    /// Its key block as the pack's index entry names it.
    pub fn indexed_key(&self) -> Option<KeyBlock> {
        named_key(self.key.clone())
    }

    /// The pack's index entry.
    pub fn entry(self, id: Id, size: u64) -> PackEntry {
        PackEntry { id, size, chunks: self.chunks, key: named_key(self.key) }
    }
}

/// Reads a whole pack's header, checking its name first. For `verify`.
pub fn read_pack_header(keys: &Keys, name: &Id, pack: &[u8]) -> Result<PackHeader> {
    if sha256(pack) != name.0 {
        return Err(Error::corrupt(format!("pack {name}"), "content does not match its name (sha256)"));
    }
    parse_pack_header(keys, name, pack)
}

/// A pack's header, without checking the pack's name: what `repair` needs
/// to find the chunks that still authenticate in a damaged pack.
pub fn parse_pack_header(keys: &Keys, name: &Id, pack: &[u8]) -> Result<PackHeader> {
    let object = format!("pack {}", name);
    let n = pack.len();
    if n < 4 {
        return Err(Error::corrupt(object, "too short to hold a header"));
    }
    let hlen = u32::from_le_bytes(pack[n - 4..].try_into().expect("4 bytes")) as usize;
    if hlen + 4 > n {
        return Err(Error::corrupt(object, "header length points outside the pack"));
    }
    let tail_start = n - 4 - hlen;
    let (key, header_start) = if keys.has_key_blocks() {
        let (block, len) =
            KeyBlock::parse(&pack[tail_start..n - 4]).map_err(|e| Error::corrupt(object.clone(), e.to_string()))?;
        (Some(block), tail_start + len)
    } else {
        (None, tail_start)
    };
    let header = keys
        .open_part(Role::PackHeader, &pack[tail_start..header_start], &pack[header_start..n - 4])
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
    if offset != tail_start as u64 {
        return Err(Error::corrupt(object, "header does not cover the pack's chunks"));
    }
    Ok(PackHeader { chunks: out, key })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::MasterKey;

    #[test]
    fn pack_header_round_trip_and_tamper() {
        let master = MasterKey::generate();
        let write_only = master.write_only(b"r").subkeys(b"r", 3);
        for (keys, reader) in [
            (master.subkeys(b"r", 2), master.subkeys(b"r", 2)),
            (master.subkeys(b"r", 3), master.subkeys(b"r", 3)),
            (write_only.clone(), master.subkeys(b"r", 3)),
        ] {
            let mut w = PackWriter::default();
            let a = keys.seal_part(Role::Chunk, b"a", b"first");
            let b = keys.seal_part(Role::Chunk, b"b", b"second!");
            w.add(Id([1; 32]), &a, 5);
            w.add(Id([2; 32]), &b, 7);
            let (bytes, entry) = w.finish(&keys);
            assert_eq!(entry.id.0, sha256(&bytes));
            // What prune's estimate counts on.
            let block = keys.pack_key_block().map_or(0, |b| b.len() as u64);
            assert_eq!(pack_size((a.len() + b.len()) as u64, 2, block), bytes.len() as u64);
            // Any key of the repository reads the header, a write-only one too.
            for k in [&reader, &write_only] {
                if k.has_key_blocks() == keys.has_key_blocks() {
                    let header = read_pack_header(k, &entry.id, &bytes).unwrap();
                    assert_eq!(header.chunks, entry.chunks);
                    assert_eq!(header.indexed_key(), entry.key);
                }
            }
            // The chunks open with the full key only.
            let mut sealed = a.clone();
            let opened = reader.open_in_place(Role::Chunk, entry.key.as_ref(), b"a", &mut sealed).unwrap();
            assert_eq!(opened, b"first");
            if keys.is_write_only() {
                let mut sealed = a.clone();
                assert!(keys.open_in_place(Role::Chunk, entry.key.as_ref(), b"a", &mut sealed).is_err());
            }

            let mut bad = bytes.clone();
            bad[3] ^= 1;
            assert!(read_pack_header(&reader, &entry.id, &bad).is_err());
            assert!(read_pack_header(&reader, &entry.id, &bytes[..bytes.len() - 1]).is_err());
            // A key block altered in place: the header no longer opens.
            if keys.has_key_blocks() {
                let at = a.len() + b.len() + 1;
                let mut bad = bytes.clone();
                bad[at] ^= 1;
                assert!(parse_pack_header(&reader, &entry.id, &bad).is_err());
            }
        }
    }
}

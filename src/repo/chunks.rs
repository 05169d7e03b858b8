//! Chunk I/O: sealing a chunk for a pack, and reading one back through the
//! index, falling back on other copies and on the index a prune left.

use super::{backend_error, Repository};
use crate::backend::{BackendError, Kind};
use crate::crypto::{KeyBlock, Role};
use crate::engine::pipeline::BufferPool;
use crate::error::{Error, Result};
use crate::format::codec;
use crate::format::encoding::Id;
use crate::format::{ChunkLocation, Index};
use std::sync::Arc;

/// How much of a chunk is checked when it is read. The AEAD tag, always: it
/// proves that a holder of the key sealed these bytes for this chunk id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkCheck {
    /// The tag only: for reads whose whole result is checked against the
    /// manifest's digest (BLAKE3; SHA-256 in version 1) before anyone sees it
    /// (a restored file is named only then), which catches a wrong chunk too.
    Tag,
    /// Also recompute the chunk's id from its plaintext (keyed BLAKE3;
    /// HMAC-SHA256 in version 1): where data leaves coffer chunk by chunk
    /// (into pg_restore), in `verify`, `prune` and `backup --force`.
    Content,
}

impl Repository {
    /// Compresses and seals one chunk for a pack, into `out` (replacing what
    /// it held: the backup pipeline reuses its buffers).
    pub fn seal_chunk(&self, id: &Id, data: &[u8], level: i32, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&[0; crate::crypto::NONCE_LEN]);
        codec::encode_into(data, level, out);
        self.keys.seal_in_place(Role::Chunk, &id.0, out);
    }

    /// Opens a sealed chunk and checks that its content has the id it was
    /// asked for by; `pack` names the object in errors, `key` is its key
    /// block where not the repository's own.
    pub fn open_chunk(&self, id: &Id, sealed: &[u8], pack: &Id, key: Option<&KeyBlock>) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        self.open_chunk_into(id, &mut sealed.to_vec(), pack, key, ChunkCheck::Content, &mut data)?;
        Ok(data)
    }

    /// Chunk `id` of `pack` (key block `key`), checked, as it goes into a
    /// pack written now (prune, repair): its sealed bytes as they are when
    /// the new pack's key is the same, else sealed anew (a write-only
    /// backup's chunk moving under the repository key). With the plaintext's size.
    pub fn carry_chunk<'s>(
        &self,
        id: &Id,
        sealed: &'s [u8],
        pack: &Id,
        key: Option<&KeyBlock>,
    ) -> Result<(std::borrow::Cow<'s, [u8]>, usize)> {
        let data = self.open_chunk(id, sealed, pack, key)?;
        let same =
            key.unwrap_or(&KeyBlock::DEFAULT) == self.keys.pack_key_block().as_ref().unwrap_or(&KeyBlock::DEFAULT);
        if same {
            return Ok((std::borrow::Cow::Borrowed(sealed), data.len()));
        }
        let mut out = Vec::with_capacity(sealed.len());
        self.seal_chunk(id, &data, 3, &mut out);
        Ok((std::borrow::Cow::Owned(out), data.len()))
    }

    /// `open_chunk` without copies: decrypts `sealed` in place and
    /// decompresses into `out`.
    pub fn open_chunk_into(
        &self,
        id: &Id,
        sealed: &mut [u8],
        pack: &Id,
        key: Option<&KeyBlock>,
        check: ChunkCheck,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let object = || format!("pack {pack}");
        let payload = self.keys.open_in_place(Role::Chunk, key, &id.0, sealed).map_err(|e| match e {
            crate::crypto::CryptoError::WriteOnly => self.write_only_error("read chunks"),
            e => Error::corrupt(object(), format!("chunk {}: {e}", id.short())),
        })?;
        codec::decode_into(payload, self.config.chunker.max_size as usize, out)
            .map_err(|e| Error::corrupt(object(), format!("chunk {}: {e}", id.short())))?;
        if check == ChunkCheck::Content && self.keys.chunk_id(out) != id.0 {
            return Err(Error::corrupt(object(), format!("chunk {} does not match its id", id.short())));
        }
        Ok(())
    }

    /// Fetches one chunk through the index, in buffers from `pool` (the
    /// restore pipelines'): the result is one, for the caller to give back.
    pub fn read_chunk(&self, index: &Index, id: &Id, check: ChunkCheck, pool: &BufferPool) -> Result<Vec<u8>> {
        let (mut sealed, mut data) = (pool.take(), pool.take());
        let read = self.read_chunk_into(index, id, check, &mut sealed, &mut data);
        pool.give(sealed);
        read.map(|()| data)
    }

    /// `read_chunk` into `out`, with `scratch` for the sealed bytes. The
    /// plaintext must be the size the index gives it: restores write each
    /// chunk at the offset those sizes add up to.
    fn read_chunk_into(
        &self,
        index: &Index,
        id: &Id,
        check: ChunkCheck,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let (mut first_error, mut all_missing) = (None, true);
        for (pack, loc) in index.locations(id) {
            match self.read_chunk_at(id, &pack, index.key_of(loc.pack), loc, check, scratch, out) {
                Ok(()) => return Ok(()),
                // Another copy may be whole (stored again after this pack was lost).
                Err(e @ Error::Corrupt { .. }) => {
                    all_missing &= matches!(&e, Error::Corrupt { reason, .. } if reason == "missing");
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        let Some(first_error) = first_error else {
            return Err(Error::corrupt("index", format!("chunk {} is in no pack", id.short())));
        };
        if !all_missing {
            return Err(first_error);
        }
        // Every copy's pack is gone: a prune may have repacked the chunk since
        // this process loaded its index. The index prune wrote says where.
        let fresh = self.reloaded_index(id)?;
        for (pack, loc) in fresh.locations(id) {
            if self.read_chunk_at(id, &pack, fresh.key_of(loc.pack), loc, check, scratch, out).is_ok() {
                return Ok(());
            }
        }
        if fresh.contains(id) {
            return Err(first_error);
        }
        Err(Error::Vanished {
            object: format!("chunk {}", id.short()),
            reason: "its pack was deleted and no index holds it now (its snapshot was forgotten and pruned?)".into(),
        })
    }

    /// The index as it is now: loaded after a pack went missing, and kept
    /// for later misses while it knows the chunk asked for.
    fn reloaded_index(&self, id: &Id) -> Result<Arc<Index>> {
        let mut cached = self.reloaded.lock().map_err(|_| Error::Internal("index lock poisoned".into()))?;
        if let Some(c) = cached.as_ref().filter(|c| c.contains(id)) {
            return Ok(c.clone());
        }
        let fresh = Arc::new(self.load_index()?);
        *cached = Some(fresh.clone());
        Ok(fresh)
    }

    #[allow(clippy::too_many_arguments)]
    fn read_chunk_at(
        &self,
        id: &Id,
        pack: &Id,
        key: Option<&KeyBlock>,
        loc: ChunkLocation,
        check: ChunkCheck,
        scratch: &mut Vec<u8>,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        self.backend
            .get_range_into(Kind::Pack, &pack.to_hex(), loc.offset as u64, loc.length as u64, scratch)
            .map_err(|e| match e {
                BackendError::NotFound { .. } => Error::corrupt(format!("pack {pack}"), "missing"),
                BackendError::Truncated { .. } => Error::corrupt(format!("pack {pack}"), "truncated"),
                other => backend_error(other),
            })?;
        self.open_chunk_into(id, scratch, pack, key, check, out)?;
        if out.len() != loc.size as usize {
            return Err(Error::corrupt(
                format!("pack {pack}"),
                format!("chunk {} is not its indexed size", id.short()),
            ));
        }
        Ok(())
    }
}

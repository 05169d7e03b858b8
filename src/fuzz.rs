//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz), reached through
//! this hidden module as age does. Each hands arbitrary bytes to one parser of
//! what a repository (or pg_dump) gives coffer; each must refuse bad input
//! with an error, never panic, hang or allocate without bound.
//!
//! `make fuzz` runs each for a while; `make test` runs each briefly.

use crate::crypto::{Keys, MasterKey, Role};
use crate::format::encoding::Id;
use crate::format::manifest::{Manifest, SnapshotInfo};
use crate::format::{codec, parse_pack_header, read_pack_header, Config, Index, IndexFile, KeyFile};
use crate::pg::archive::Scanner;

/// Every target, by name: what `fuzz/` builds and `make fuzz` runs.
/// A fuzz target: bytes in, a panic only on a bug.
pub type Target = fn(&[u8]);

pub const TARGETS: &[(&str, Target)] = &[
    ("config", config),
    ("key_file", key_file),
    ("codec", codec),
    ("pack", pack),
    ("index", index),
    ("manifest", manifest),
    ("archive", archive),
    ("sql", sql),
];

fn keys() -> Keys {
    MasterKey::from_bytes([7; 32]).subkeys(&[9; 32], 2)
}

/// Format 3's: packs and objects start their tail with a key block.
fn keys_v3() -> Keys {
    MasterKey::from_bytes([7; 32]).subkeys(&[9; 32], 3)
}

/// The cleartext config, read before any key.
pub fn config(data: &[u8]) {
    let _ = Config::parse(data);
}

/// A key object's JSON and its KDF parameters' bounds (the KDF is not run:
/// bounded parameters are exactly what keeps it affordable).
pub fn key_file(data: &[u8]) {
    if let Ok(key) = serde_json::from_slice::<KeyFile>(data) {
        let _ = key.kdf.is_excessive();
    }
}

/// The payload codec, under a chunk's limit.
pub fn codec(data: &[u8]) {
    if let Ok(out) = codec::decode(data, 1 << 20) {
        assert!(out.len() <= 1 << 20, "the codec decoded past its limit");
    }
}

/// A pack: the first byte picks where the chunks end; the rest before it is
/// chunk bytes and after it the header's plaintext, sealed with a real key so
/// that the record parsing behind the AEAD is reached. The raw bytes are
/// tried as a pack too.
pub fn pack(data: &[u8]) {
    let keys = keys();
    let name = Id([0; 32]);
    let _ = read_pack_header(&keys, &name, data);
    // Format 3: the same bytes as a pack tail with a key block, and as a
    // sealed object (key block, then the sealed bytes).
    let v3 = keys_v3();
    let _ = parse_pack_header(&v3, &name, data);
    let _ = v3.open(Role::Snapshot, b"", data);
    let Some((&split, rest)) = data.split_first() else { return };
    let at = (split as usize * rest.len()) / 255;
    let (body, header) = rest.split_at(at.min(rest.len()));
    let mut pack = body.to_vec();
    let sealed = keys.seal_part(Role::PackHeader, b"", header);
    pack.extend_from_slice(&sealed);
    pack.extend_from_slice(&(sealed.len() as u32).to_le_bytes());
    if let Ok(header) = parse_pack_header(&keys, &name, &pack) {
        // What parsing accepts must lie inside the pack, in order.
        let mut end = 0u64;
        for c in &header.chunks {
            assert_eq!(c.offset as u64, end, "chunks are contiguous");
            end += c.length as u64;
        }
        assert_eq!(end, body.len() as u64, "chunks fill the bytes before the header");
    }
}

/// An index file's JSON, merged into an index, and a listing that lacks its packs.
pub fn index(data: &[u8]) {
    if let Ok(file) = serde_json::from_slice::<IndexFile>(data) {
        let mut index = Index::default();
        file.packs.iter().for_each(|p| index.add_pack(p));
        for p in &file.packs {
            for c in &p.chunks {
                assert!(index.contains(&c.id));
            }
        }
        let dropped = index.drop_packs_not_stored(&Default::default());
        assert!(file.packs.is_empty() || !dropped.is_empty());
        assert_eq!(index.chunk_count(), 0, "no chunk is left once no pack is stored");
    }
}

/// A manifest, as restore reads it: parsed, then validated; and its header
/// alone, as listings read it.
pub fn manifest(data: &[u8]) {
    let _ = serde_json::from_slice::<SnapshotInfo>(data);
    if let Ok(m) = serde_json::from_slice::<Manifest>(data) {
        if m.validate().is_ok() {
            // A validated manifest names only places inside the target.
            for e in m.entries() {
                assert!(crate::format::manifest::check_relative_path(&e.path.0).is_ok());
            }
        }
    }
}

/// pg_dump's custom-format archive, read as it streams by, in pieces whose
/// sizes the input's first byte sets (a boundary must not matter).
pub fn archive(data: &[u8]) {
    let Some((&step, rest)) = data.split_first() else { return };
    let step = step as usize + 1;
    let mut whole = Scanner::with_definitions();
    let mut pieces = Scanner::with_definitions();
    let a = whole.feed(rest).and_then(|()| whole.finish());
    let mut b = Ok(());
    for piece in rest.chunks(step) {
        b = pieces.feed(piece);
        if b.is_err() {
            break;
        }
    }
    let b = b.and_then(|()| pieces.finish());
    assert_eq!(a.is_ok(), b.is_ok(), "where the stream is cut does not change the verdict");
}

/// The SQL lexer that reads check files and policies.
pub fn sql(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = crate::pg::sql::statements(text);
        let _ = crate::pg::sql::qualified_name(text);
        let _ = crate::pg::sql::policy_roles(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each target takes the empty input, a few bytes, and a real object.
    #[test]
    fn a_data_chunk_length_of_minus_zero_reads_the_same_whole_or_cut() {
        // Found by the fuzzer: the fast path for rows refused a sign byte
        // over a zero length that the general parser reads as 0.
        archive(include_bytes!("../fuzz/seeds/archive/signed-zero-chunk-length"));
    }

    #[test]
    fn targets_take_odd_input() {
        for (name, target) in TARGETS {
            for input in [&b""[..], b"\0", b"{}", b"\xff\xff\xff\xff", b"PGDMP"] {
                target(input);
            }
            let _ = name;
        }
        let m = serde_json::json!({"version": 2, "time": "2026-01-01T00:00:00Z", "host": "h", "tags": [],
            "tool": "t", "parent": null, "sources": [], "summary": {}, "warnings": []});
        manifest(m.to_string().as_bytes());
    }
}

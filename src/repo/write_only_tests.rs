//! A write-only key opens nothing it must not: every stored chunk, pack and
//! manifest of a repository (written by the full key and by the write-only
//! key itself) is tried with every role and key block, and with each piece
//! of the write-only key's material used directly as an AES-256-GCM key.

use super::keys::Secret;
use super::Repository;
use crate::backend::{Backend, Kind, Local};
use crate::crypto::{KdfParams, KeyBlock, Role, NONCE_LEN, TAG_LEN};
use crate::error::Error;
use crate::format::Access;
use crate::ops::backup::{backup, BackupOptions};
use crate::ops::progress::NoProgress;
use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use std::sync::Arc;

const ROLES: [Role; 10] = [
    Role::Key,
    Role::Chunk,
    Role::PackHeader,
    Role::Index,
    Role::Snapshot,
    Role::Lock,
    Role::Wal,
    Role::CopyMap,
    Role::StatCache,
    Role::Envelope,
];

fn options(src: &std::path::Path) -> BackupOptions {
    BackupOptions { paths: vec![src.to_path_buf()], workers: 2, ..Default::default() }
}

/// Whether `key`, used directly as an AES-256-GCM key, opens `sealed`
/// (nonce || ciphertext || tag) under any role's associated data.
fn raw_key_opens(key: &[u8], id: &[u8], sealed: &[u8]) -> bool {
    let Ok(cipher) = Aes256Gcm::new_from_slice(key) else { return false };
    if sealed.len() < NONCE_LEN + TAG_LEN {
        return false;
    }
    ROLES.iter().any(|&role| {
        let mut body = sealed[NONCE_LEN..sealed.len() - TAG_LEN].to_vec();
        let nonce: [u8; NONCE_LEN] = sealed[..NONCE_LEN].try_into().unwrap();
        let tag: [u8; TAG_LEN] = sealed[sealed.len() - TAG_LEN..].try_into().unwrap();
        let aad = crate::crypto::associated_data_for_tests(role, id);
        cipher.decrypt_inout_detached(&Nonce::from(nonce), &aad, (&mut body[..]).into(), &Tag::from(tag)).is_ok()
    })
}

#[test]
fn no_chunk_or_manifest_opens_with_a_write_only_key() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), b"written by the full key").unwrap();
    std::fs::write(src.join("sub/b.bin"), vec![7u8; 300_000]).unwrap();
    let backend: Arc<dyn Backend> = Arc::new(Local::new(dir.path().join("repo")));
    let full = Repository::init(backend.clone(), b"full passphrase", KdfParams::with_cost(64, 1, 1)).unwrap();
    let full_snap = backup(&full, &options(&src), &NoProgress).unwrap().snapshot.unwrap();
    let mut key_text = String::new();
    full.add_key_file(Access::WriteOnly, |t| {
        key_text = t.to_string();
        Ok(())
    })
    .unwrap();
    let wo = Repository::open(backend.clone(), key_text.as_bytes()).unwrap();
    assert!(wo.is_write_only());
    std::fs::write(src.join("c.txt"), b"written by the write-only key").unwrap();
    let wo_snap = backup(&wo, &options(&src), &NoProgress).unwrap().snapshot.unwrap();
    // A second write-only run: its session key is another.
    std::fs::write(src.join("d.txt"), b"and again").unwrap();
    let wo_snap2 = backup(&wo, &options(&src), &NoProgress).unwrap().snapshot.unwrap();
    let Secret::WriteOnly(material) = &wo.secret else { panic!("a write-only key") };
    let material = material.material_for_tests();

    // Through the repository: every read of data is refused as write-only.
    for id in [full_snap, wo_snap, wo_snap2] {
        assert!(matches!(wo.load_snapshot(&id), Err(Error::WriteOnly { .. })), "snapshot {id}");
        assert!(full.load_snapshot(&id).is_ok(), "the full key opens snapshot {id}");
    }
    assert!(matches!(wo.list_snapshots(), Err(Error::WriteOnly { .. })));
    // Indexes, which deduplication needs, do open.
    let index = wo.load_index().unwrap();
    assert!(index.chunk_count() >= 4);

    // Directly: every object of every kind, every role, every key block, and
    // the material's three 32-byte parts as raw keys.
    let (mut chunks, mut envelopes) = (0, 0);
    for (pack, _) in wo.list_packs().unwrap() {
        let bytes = backend.get(Kind::Pack, &pack.to_hex()).unwrap();
        let header = crate::format::read_pack_header(wo.keys(), &pack, &bytes).unwrap();
        envelopes += usize::from(header.key.as_ref().is_some_and(KeyBlock::is_envelope));
        for c in &header.chunks {
            let sealed = &bytes[c.offset as usize..(c.offset + c.length) as usize];
            for role in ROLES {
                for block in [None, header.key.as_ref(), Some(&KeyBlock::DEFAULT)] {
                    let mut buf = sealed.to_vec();
                    assert!(wo.keys().open_in_place(role, block, &c.id.0, &mut buf).is_err(), "chunk {}", c.id);
                }
            }
            for part in material.chunks(32) {
                assert!(!raw_key_opens(part, &c.id.0, sealed), "a part of the write-only key opens chunk {}", c.id);
            }
            assert!(full.open_chunk(&c.id, sealed, &pack, header.key.as_ref()).is_ok());
            chunks += 1;
        }
    }
    assert!(chunks >= 4 && envelopes >= 2, "{chunks} chunks, {envelopes} envelope packs");
    for id in wo.list_ids(Kind::Snapshot).unwrap() {
        let sealed = backend.get(Kind::Snapshot, &id.to_hex()).unwrap();
        for role in ROLES {
            assert!(wo.keys().open(role, &id.0, &sealed).is_err(), "snapshot {id} as {role:?}");
        }
        let (block, n) = KeyBlock::parse(&sealed).unwrap();
        for part in material.chunks(32) {
            assert!(!raw_key_opens(part, &id.0, &sealed[n..]), "a part of the write-only key opens snapshot {id}");
        }
        assert!(full.keys().open(Role::Snapshot, &id.0, &sealed).is_ok(), "{block:?}");
    }
}

//! Known-answer test vectors: the bytes docs/FORMAT.md §12 lists, computed
//! by coffer's own code paths, so that the document and the code cannot drift
//! apart and a second implementation can check itself against both.

use super::*;
use crate::format::codec;
use crate::format::encoding::Id;
use crate::format::PackWriter;

/// The fixed inputs (FORMAT.md §12).
fn seq(start: u8) -> [u8; 32] {
    std::array::from_fn(|i| start + i as u8)
}
const PLAINTEXT: &[u8] = b"coffer test vector\n";
const PASSPHRASE: &[u8] = b"correct horse battery staple";

fn nonce(start: u8) -> [u8; NONCE_LEN] {
    std::array::from_fn(|i| start + i as u8)
}

/// Every vector, by the name FORMAT.md gives it, in hex.
fn vectors() -> Vec<(&'static str, String)> {
    let master = MasterKey::from_bytes(seq(0x00));
    let repository = seq(0x20);
    let mut v = Vec::new();
    let data_key = master.subkey(&repository, SUBKEY_DATA);
    let metadata_key = master.subkey(&repository, SUBKEY_METADATA);
    let id_key = master.subkey(&repository, SUBKEY_CHUNK_ID);
    v.push(("data key", hex::encode(*data_key)));
    v.push(("metadata key", hex::encode(*metadata_key)));
    v.push(("chunk-id key", hex::encode(*id_key)));

    let keys_v1 = master.subkeys(&repository, 1);
    let keys_v2 = master.subkeys(&repository, 2);
    v.push(("chunk id v1", hex::encode(keys_v1.chunk_id(PLAINTEXT))));
    let id = keys_v2.chunk_id(PLAINTEXT);
    v.push(("chunk id v2", hex::encode(id)));
    let digest = |algo: HashAlgo| {
        let mut h = algo.hasher();
        h.update(PLAINTEXT);
        hex::encode(h.finalize())
    };
    v.push(("digest v1", digest(HashAlgo::Sha256)));
    v.push(("digest v2", digest(HashAlgo::Blake3)));
    v.push(("aad chunk", hex::encode(associated_data(Role::Chunk, &id))));
    v.push(("aad pack-header", hex::encode(associated_data(Role::PackHeader, b""))));

    let payload = codec::encode(PLAINTEXT, 3);
    v.push(("payload", hex::encode(&payload)));
    let mut sealed = vec![0; NONCE_LEN];
    sealed.extend_from_slice(&payload);
    seal_in_place_with(keys_v2.cipher(Role::Chunk).expect("a full key"), Role::Chunk, &id, &mut sealed, nonce(0x40));
    v.push(("sealed chunk", hex::encode(&sealed)));

    let mut pack = PackWriter::default();
    pack.add(Id(id), &sealed, PLAINTEXT.len() as u32);
    let v3_pack = pack.clone();
    // The header sealed with a fixed nonce, so that its bytes are known.
    let finish = |pack: PackWriter, block: Option<KeyBlock>, keys: &Keys| {
        pack.finish_with(block, |aad, header| {
            let mut buf = vec![0; NONCE_LEN];
            buf.extend_from_slice(header);
            let cipher = keys.cipher(Role::PackHeader).expect("a full key");
            seal_in_place_with(cipher, Role::PackHeader, aad, &mut buf, nonce(0x50));
            buf
        })
    };
    let (bytes, entry) = finish(pack, None, &keys_v2);
    v.push(("pack", hex::encode(&bytes)));
    v.push(("pack name", entry.id.to_hex()));

    let kdf = KdfParams {
        algorithm: "argon2id".into(),
        memory_kib: 256,
        iterations: 2,
        parallelism: 1,
        salt: seq(0x60)[..16].to_vec(),
    };
    let kek = kdf.derive(PASSPHRASE).expect("valid parameters");
    v.push(("kek", hex::encode(*kek)));
    let mut wrapped = vec![0; NONCE_LEN];
    wrapped.extend_from_slice(&seq(0x00));
    seal_in_place_with(&Aes256Gcm::new((&*kek).into()), Role::Key, &repository, &mut wrapped, nonce(0x70));
    v.push(("wrapped", hex::encode(&wrapped)));

    // Format 3: the index key, the identity's public key, and the pack above
    // as format 3 writes it (a key block, the header under the index key).
    let keys_v3 = master.subkeys(&repository, 3);
    v.push(("index key v3", hex::encode(*master.subkey(&repository, SUBKEY_INDEX))));
    let identity = StaticSecret::from(*master.subkey(&repository, SUBKEY_IDENTITY));
    v.push(("recipient v3", hex::encode(PublicKey::from(&identity).as_bytes())));
    let (bytes, entry) = finish(v3_pack, Some(KeyBlock::DEFAULT), &keys_v3);
    v.push(("pack v3", hex::encode(&bytes)));
    v.push(("pack name v3", entry.id.to_hex()));
    v
}

/// The vectors exactly as FORMAT.md §12 prints them.
fn documented() -> Vec<(String, String)> {
    let doc = include_str!("../../docs/FORMAT.md");
    let section = doc.split("## 12. Test vectors").nth(1).expect("FORMAT.md has a section 12");
    let block = section.split("```").nth(1).expect("section 12 holds a code block");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        if let Some((name, value)) = line.split_once(':') {
            out.push((name.trim().to_string(), value.trim().to_string()));
        } else if let Some(last) = out.last_mut() {
            // A long value goes on over the next lines.
            last.1.push_str(line.trim());
        }
    }
    out
}

#[test]
fn the_code_computes_the_documented_vectors() {
    let computed = vectors();
    if std::env::var_os("COFFER_PRINT_VECTORS").is_some() {
        for (name, value) in &computed {
            println!("{name}: {value}");
        }
    }
    let documented = documented();
    let names: Vec<&str> = computed.iter().map(|(n, _)| *n).collect();
    let doc_names: Vec<&str> = documented.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(doc_names, names, "FORMAT.md §12 lists these vectors");
    for ((name, value), (_, doc)) in computed.iter().zip(&documented) {
        assert_eq!(value, doc, "vector {name:?}");
    }
}

#[test]
fn the_documented_objects_open() {
    let master = MasterKey::from_bytes(seq(0x00));
    let repository = seq(0x20);
    let keys = master.subkeys(&repository, 2);
    let doc: std::collections::HashMap<String, String> = documented().into_iter().collect();
    let bytes = |name: &str| hex::decode(&doc[name]).expect("hex");
    let id: [u8; 32] = bytes("chunk id v2").try_into().expect("32 bytes");
    let payload = keys.open(Role::Chunk, &id, &bytes("sealed chunk")).expect("the chunk opens");
    assert_eq!(codec::decode(&payload, 1 << 20).expect("decodes"), PLAINTEXT);
    let pack = bytes("pack");
    let name = Id::from_hex(&doc["pack name"]).expect("an id");
    let chunks = crate::format::read_pack_header(&keys, &name, &pack).expect("the pack reads").chunks;
    assert_eq!(chunks.len(), 1);
    let keys_v3 = master.subkeys(&repository, 3);
    let name_v3 = Id::from_hex(&doc["pack name v3"]).expect("an id");
    let header = crate::format::read_pack_header(&keys_v3, &name_v3, &bytes("pack v3")).expect("the v3 pack reads");
    assert_eq!((header.chunks, header.key), (chunks.clone(), Some(KeyBlock::DEFAULT)));
    assert_eq!((chunks[0].id.0, chunks[0].size), (id, PLAINTEXT.len() as u32));
    let kek: [u8; 32] = bytes("kek").try_into().expect("32 bytes");
    let unwrapped = MasterKey::unwrap(&kek, &repository, &bytes("wrapped")).expect("the key unwraps");
    assert_eq!(*unwrapped.0, seq(0x00));
}

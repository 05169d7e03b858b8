//! Per-core speed of the building blocks on this machine, on a sample of real
//! data: `cargo run --release --example primitives -- FILE [MiB]`.
//!
//! `make bench` prints these beside the end-to-end table, so the distance
//! between coffer's throughput and the hardware's limit is visible. Each
//! figure is one thread, over the first MiB (default 256) of FILE cut into
//! 1 MiB pieces (coffer's average chunk size).

use aes_gcm::aead::AeadInOut;
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: primitives FILE [MiB]");
        std::process::exit(2);
    };
    let mib: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(256);
    let mut data = Vec::new();
    let read = std::fs::File::open(&path).and_then(|f| f.take((mib << 20) as u64).read_to_end(&mut data));
    if let Err(e) = read {
        eprintln!("{path}: {e}");
        std::process::exit(1);
    }
    let pieces: Vec<&[u8]> = data.chunks(1 << 20).collect();
    let n = data.len() as f64;
    let rate = |secs: f64| n / secs / 1e6;
    println!("sample: {path}, {:.0} MB", n / 1e6);
    println!(
        "cpu features: aes-ni {}, pclmulqdq {}, sha-ni {}, avx2 {}",
        std::arch::is_x86_feature_detected!("aes"),
        std::arch::is_x86_feature_detected!("pclmulqdq"),
        std::arch::is_x86_feature_detected!("sha"),
        std::arch::is_x86_feature_detected!("avx2"),
    );

    let t = Instant::now();
    let mut h = Sha256::new();
    h.update(&data);
    std::hint::black_box(h.finalize());
    println!("sha256             {:7.0} MB/s", rate(t.elapsed().as_secs_f64()));

    let t = Instant::now();
    std::hint::black_box(blake3::hash(&data));
    println!("blake3             {:7.0} MB/s", rate(t.elapsed().as_secs_f64()));

    let t = Instant::now();
    for p in &pieces {
        std::hint::black_box(blake3::keyed_hash(&[7u8; 32], p));
    }
    println!("blake3 keyed 1 MiB {:7.0} MB/s", rate(t.elapsed().as_secs_f64()));

    let t = Instant::now();
    for p in &pieces {
        let mut m = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&[7u8; 32]).expect("any key length");
        m.update(p);
        std::hint::black_box(m.finalize());
    }
    println!("hmac-sha256        {:7.0} MB/s", rate(t.elapsed().as_secs_f64()));

    let cipher = Aes256Gcm::new_from_slice(&[9u8; 32]).expect("32-byte key");
    let mut buf = Vec::with_capacity(9 << 20);
    let t = Instant::now();
    for p in &pieces {
        buf.clear();
        buf.extend_from_slice(p);
        let tag = cipher.encrypt_inout_detached(&Nonce::from([1u8; 12]), b"aad", (&mut buf[..]).into());
        std::hint::black_box(tag.ok());
    }
    println!("aes-256-gcm seal   {:7.0} MB/s", rate(t.elapsed().as_secs_f64()));

    let t = Instant::now();
    let mut chunks = 0;
    for c in fastcdc::v2020::FastCDC::new(&data, 512 * 1024, 1024 * 1024, 8 * 1024 * 1024) {
        chunks += std::hint::black_box(c.length) / c.length.max(1);
    }
    println!("fastcdc (1 MiB)    {:7.0} MB/s ({chunks} chunks)", rate(t.elapsed().as_secs_f64()));

    for level in [-1, 1, 2, 3] {
        let mut compressor = zstd::bulk::Compressor::new(level).expect("zstd level");
        let mut out = vec![0u8; 9 << 20];
        let mut total = 0usize;
        let t = Instant::now();
        for p in &pieces {
            total += compressor.compress_to_buffer(p, &mut out).unwrap_or(p.len());
        }
        let secs = t.elapsed().as_secs_f64();
        let mut decompressor = zstd::bulk::Decompressor::new().expect("zstd");
        let compressed: Vec<Vec<u8>> =
            pieces.iter().map(|p| zstd::bulk::compress(p, level).unwrap_or_default()).collect();
        let t = Instant::now();
        for c in &compressed {
            let _ = decompressor.decompress_to_buffer(c, &mut out);
        }
        let dsecs = t.elapsed().as_secs_f64();
        println!(
            "zstd {level:>2} compress  {:7.0} MB/s, ratio {:.3}, decompress {:.0} MB/s",
            rate(secs),
            total as f64 / n,
            rate(dsecs)
        );
    }
}

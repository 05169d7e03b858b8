//! Property tests (proptest) for what pins the format and the data's fate:
//! the payload codec, stored paths, pack headers, the chunker and the
//! retention policy. Each states a rule that must hold for every input, not
//! only for the examples the unit tests beside each module pick.

use crate::crypto::{MasterKey, Role};
use crate::engine::chunker::{Chunker, ChunkerParams};
use crate::format::encoding::Id;
use crate::format::manifest::check_relative_path;
use crate::format::{codec, read_pack_header, PackWriter};
use crate::ops::forget::{apply_policy, KeepPolicy};
use proptest::prelude::*;

/// Bytes that compress (runs) or do not (noise), of any length up to `max`.
fn data(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..max),
        (proptest::collection::vec(0u8..4, 0..64), 1usize..max.max(2)).prop_map(|(alphabet, len)| (0..len)
            .map(|i| alphabet.get(i / 97 % alphabet.len().max(1)).copied().unwrap_or(0))
            .collect()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Whatever is encoded decodes to itself, and is never more than one
    /// byte (the flag) larger; a limit below its size refuses it.
    #[test]
    fn codec_round_trips(bytes in data(70_000), level in 1i32..6) {
        let encoded = codec::encode(&bytes, level);
        prop_assert!(encoded.len() <= bytes.len() + 1);
        prop_assert_eq!(codec::decode(&encoded, bytes.len()).unwrap(), bytes.clone());
        if !bytes.is_empty() {
            prop_assert!(codec::decode(&encoded, bytes.len() - 1).is_err());
        }
    }

    /// A path the check accepts, joined under any target and resolved
    /// lexically, stays strictly inside it.
    #[test]
    fn accepted_paths_stay_inside_the_target(
        parts in proptest::collection::vec(prop_oneof![
            Just(b"..".to_vec()), Just(b".".to_vec()), Just(Vec::new()), Just(b"a".to_vec()),
            Just(b"\0".to_vec()), Just(b"/".to_vec()), proptest::collection::vec(any::<u8>(), 1..4)
        ], 1..6)
    ) {
        let path = parts.join(&b'/');
        if check_relative_path(&path).is_ok() {
            let mut depth: i64 = 0;
            for comp in path.split(|&b| b == b'/') {
                match comp {
                    b".." => depth -= 1,
                    b"." | b"" => {}
                    _ => depth += 1,
                }
                prop_assert!(depth >= 1, "{:?} leaves the target", String::from_utf8_lossy(&path));
            }
            prop_assert!(!path.contains(&0));
        }
    }

    /// A pack's header lists exactly the chunks written into it, where they
    /// are; any byte changed or cut off is refused.
    #[test]
    fn pack_headers_round_trip(
        chunks in proptest::collection::vec((any::<[u8; 32]>(), proptest::collection::vec(any::<u8>(), 0..300)), 0..8),
        flip in any::<prop::sample::Index>(),
    ) {
        let keys = MasterKey::from_bytes([3; 32]).subkeys(&[4; 32], 3);
        let mut w = PackWriter::default();
        for (id, plain) in &chunks {
            let sealed = keys.seal_part(Role::Chunk, id, plain);
            w.add(Id(*id), &sealed, plain.len() as u32);
        }
        let (bytes, entry) = w.finish(&keys);
        let listed = read_pack_header(&keys, &entry.id, &bytes).unwrap();
        prop_assert_eq!(&listed.chunks, &entry.chunks);
        for (c, (id, plain)) in listed.chunks.iter().zip(&chunks) {
            let mut sealed = bytes[c.offset as usize..(c.offset + c.length) as usize].to_vec();
            prop_assert_eq!(&keys.open_in_place(Role::Chunk, listed.key.as_ref(), id, &mut sealed).unwrap(), &plain.as_slice());
        }
        let mut bad = bytes.clone();
        bad[flip.index(bytes.len())] ^= 0x40;
        prop_assert!(read_pack_header(&keys, &entry.id, &bad).is_err());
        prop_assert!(read_pack_header(&keys, &entry.id, &bytes[..bytes.len() - 1]).is_err());
    }

    /// Cuts depend on content only: the same bytes, read in pieces of any
    /// sizes, give the same chunks, which concatenate to the input and stay
    /// within the size bounds.
    #[test]
    fn chunks_do_not_depend_on_read_sizes(
        bytes in proptest::collection::vec(any::<u8>(), 0..120_000),
        pieces in proptest::collection::vec(1usize..9000, 1..16),
    ) {
        let p = ChunkerParams { min_size: 1024, avg_size: 4096, max_size: 16384 };
        let split = |reader: &mut dyn std::io::Read| {
            let mut out: Vec<Vec<u8>> = Vec::new();
            Chunker::new(p).split(reader, |c| { out.push(c.to_vec()); Ok::<_, std::io::Error>(()) }, |e| e).unwrap();
            out
        };
        let whole = split(&mut &bytes[..]);
        let mut pieced = Pieces { data: &bytes, sizes: &pieces, n: 0 };
        prop_assert_eq!(&split(&mut pieced), &whole);
        prop_assert_eq!(whole.concat(), bytes.clone());
        for c in &whole[..whole.len().saturating_sub(1)] {
            prop_assert!((1024..=16384).contains(&c.len()));
        }
    }

    /// Retention: `last N` keeps the N newest; every rule keeps at most its
    /// count; a snapshot with a kept tag is kept; nothing else is.
    #[test]
    fn retention_keeps_what_the_policy_names(
        mut ages in proptest::collection::vec(0i64..(3 * 366 * 24), 1..60),
        last in 0u32..5, daily in 0u32..8, weekly in 0u32..5, monthly in 0u32..4,
        tagged in proptest::collection::vec(any::<bool>(), 60),
    ) {
        ages.sort_unstable();
        let now = chrono::DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z").unwrap().with_timezone(&chrono::Utc);
        let times: Vec<_> = ages.iter().map(|h| now - chrono::Duration::hours(*h)).collect();
        let keep = vec!["keep".to_string()];
        let none: Vec<String> = Vec::new();
        let snapshots: Vec<(chrono::DateTime<chrono::Utc>, &[String])> = times
            .iter()
            .zip(&tagged)
            .map(|(t, k)| (*t, if *k { &keep[..] } else { &none[..] }))
            .collect();
        let policy = KeepPolicy { last, daily, weekly, monthly, tags: keep.clone(), ..Default::default() };
        let reasons = apply_policy(&snapshots, &policy);
        prop_assert_eq!(reasons.len(), snapshots.len());
        for (i, r) in reasons.iter().enumerate() {
            prop_assert_eq!(r.contains(&"last"), (i as u32) < last, "last keeps exactly the newest");
            prop_assert_eq!(r.contains(&"tag"), tagged[i]);
        }
        for (rule, count) in [("last", last), ("daily", daily), ("weekly", weekly), ("monthly", monthly)] {
            prop_assert!(reasons.iter().filter(|r| r.contains(&rule)).count() as u32 <= count);
        }
        // The newest snapshot is kept by any rule with a count.
        if last + daily + weekly + monthly > 0 {
            prop_assert!(!reasons[0].is_empty());
        }
        // At most one snapshot a day is kept by the daily rule.
        let mut days: Vec<_> = reasons.iter().zip(&times).filter(|(r, _)| r.contains(&"daily")).map(|(_, t)| t.date_naive()).collect();
        let kept = days.len();
        days.dedup();
        prop_assert_eq!(days.len(), kept);
    }
}

/// A reader that returns the next of `sizes` bytes at each read (cycling).
struct Pieces<'a> {
    data: &'a [u8],
    sizes: &'a [usize],
    n: usize,
}

impl std::io::Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = self.sizes[self.n % self.sizes.len()];
        self.n += 1;
        let k = want.min(buf.len()).min(self.data.len());
        buf[..k].copy_from_slice(&self.data[..k]);
        self.data = &self.data[k..];
        Ok(k)
    }
}

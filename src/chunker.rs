//! Content-defined chunking (FastCDC 2020). Boundaries depend on content, so an
//! insertion shifts only the chunks around it and tonight's dump shares most
//! chunks with last night's. Memory per stream is bounded by `max_size`.

use serde::{Deserialize, Serialize};
use std::io::Read;

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct ChunkerParams {
    pub min_size: u32,
    pub avg_size: u32,
    pub max_size: u32,
}

impl Default for ChunkerParams {
    fn default() -> Self {
        ChunkerParams { min_size: 512 * 1024, avg_size: 1024 * 1024, max_size: 8 * 1024 * 1024 }
    }
}

impl ChunkerParams {
    /// The bounds FastCDC accepts; the config is cleartext, so check it.
    pub fn validate(&self) -> Result<(), String> {
        let ok = self.min_size >= 64
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size
            && (256..=256 * 1024 * 1024).contains(&self.avg_size)
            && self.max_size <= 64 * 1024 * 1024;
        if ok {
            Ok(())
        } else {
            Err(format!("invalid chunker sizes {}/{}/{}", self.min_size, self.avg_size, self.max_size))
        }
    }

    /// Splits a stream, calling `f` with each chunk in order.
    pub fn split<R: Read, E>(
        &self,
        reader: R,
        mut f: impl FnMut(Vec<u8>) -> Result<(), E>,
        mut read_error: impl FnMut(std::io::Error) -> E,
    ) -> Result<(), E> {
        let chunker = fastcdc::v2020::StreamCDC::new(reader, self.min_size, self.avg_size, self.max_size);
        for chunk in chunker {
            match chunk {
                Ok(c) => f(c.data)?,
                Err(fastcdc::v2020::Error::IoError(e)) => return Err(read_error(e)),
                Err(other) => {
                    return Err(read_error(std::io::Error::other(other.to_string())));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn chunks(p: &ChunkerParams, data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        p.split(
            data,
            |c| {
                out.push(c);
                Ok::<_, std::io::Error>(())
            },
            |e| e,
        )
        .unwrap();
        out
    }

    #[test]
    fn concatenation_equals_input_and_sizes_are_bounded() {
        let p = ChunkerParams { min_size: 1024, avg_size: 4096, max_size: 16384 };
        for len in [0usize, 1, 1023, 1024, 1025, 16384, 16385, 200_000] {
            let data = pseudo_random(len, len as u64 + 1);
            let cs = chunks(&p, &data);
            assert_eq!(cs.concat(), data);
            for c in &cs[..cs.len().saturating_sub(1)] {
                assert!(c.len() >= 1024 && c.len() <= 16384);
            }
        }
    }

    #[test]
    fn a_one_byte_change_touches_few_chunks() {
        let p = ChunkerParams { min_size: 1024, avg_size: 4096, max_size: 16384 };
        let a = pseudo_random(400_000, 42);
        let mut b = a.clone();
        b[200_000] ^= 0xff;
        let ca = chunks(&p, &a);
        let cb = chunks(&p, &b);
        let differing = cb.iter().filter(|c| !ca.contains(c)).count();
        assert!(differing <= 2, "{differing} chunks differ");
    }

    #[test]
    fn params_are_validated() {
        assert!(ChunkerParams::default().validate().is_ok());
        assert!(ChunkerParams { min_size: 10, avg_size: 5, max_size: 1 }.validate().is_err());
    }
}

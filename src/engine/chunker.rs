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
    /// The bounds FastCDC accepts (it asserts them); the config is
    /// cleartext, so check it before a hostile one can reach the chunker.
    pub fn validate(&self) -> Result<(), String> {
        use fastcdc::v2020::{AVERAGE_MAX, AVERAGE_MIN, MAXIMUM_MAX, MAXIMUM_MIN, MINIMUM_MAX, MINIMUM_MIN};
        let ok = (MINIMUM_MIN..=MINIMUM_MAX).contains(&self.min_size)
            && (AVERAGE_MIN..=AVERAGE_MAX).contains(&self.avg_size)
            && (MAXIMUM_MIN..=MAXIMUM_MAX).contains(&self.max_size)
            && self.min_size <= self.avg_size
            && self.avg_size <= self.max_size;
        if ok {
            Ok(())
        } else {
            Err(format!("invalid chunker sizes {}/{}/{}", self.min_size, self.avg_size, self.max_size))
        }
    }
}

/// Splits streams into chunks with FastCDC 2020 (normalisation level 1, the
/// crate's `StreamCDC` cut points exactly), through one reusable buffer.
///
/// Why not `StreamCDC`: it returns each chunk as a fresh `Vec` drained from
/// the front of its buffer, moving the rest of the buffer (up to `max_size`)
/// down for every chunk: several bytes copied per byte chunked. Here the
/// buffer holds two maximum chunks, the tail is moved only when less than one
/// is left, and a chunk is lent as a slice of the buffer.
pub struct Chunker {
    params: ChunkerParams,
    mask_s: u64,
    mask_l: u64,
    buf: Vec<u8>,
}

impl Chunker {
    pub fn new(params: ChunkerParams) -> Self {
        // As fastcdc's constructors compute them (normalisation level 1).
        let bits = (params.avg_size as f64).log2().round() as usize;
        let masks = &fastcdc::v2020::MASKS;
        let mask_s = masks[(bits + 1).min(masks.len() - 1)];
        let mask_l = masks[bits.saturating_sub(1)];
        Chunker { params, mask_s, mask_l, buf: Vec::new() }
    }

    /// Splits `reader` to its end, calling `f` with each chunk in order.
    pub fn split<R: Read, E>(
        &mut self,
        mut reader: R,
        mut f: impl FnMut(&[u8]) -> Result<(), E>,
        mut read_error: impl FnMut(std::io::Error) -> E,
    ) -> Result<(), E> {
        let max = self.params.max_size as usize;
        if self.buf.len() < 2 * max {
            self.buf = vec![0; 2 * max];
        }
        let (mut start, mut end, mut eof) = (0usize, 0usize, false);
        loop {
            if end - start < max && !eof {
                self.buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
                while end < self.buf.len() {
                    match reader.read(&mut self.buf[end..]) {
                        Ok(0) => {
                            eof = true;
                            break;
                        }
                        Ok(n) => end += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(read_error(e)),
                    }
                }
            }
            if start == end {
                return Ok(());
            }
            // With at least `max` bytes (or the stream's end) in view, the cut
            // is the one StreamCDC makes.
            let (_, len) = fastcdc::v2020::cut(
                &self.buf[start..end],
                self.params.min_size as usize,
                self.params.avg_size as usize,
                max,
                self.mask_s,
                self.mask_l,
                self.mask_s << 1,
                self.mask_l << 1,
            );
            let len = len.max(1);
            f(&self.buf[start..start + len])?;
            start += len;
        }
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
        Chunker::new(*p)
            .split(
                data,
                |c| {
                    out.push(c.to_vec());
                    Ok::<_, std::io::Error>(())
                },
                |e| e,
            )
            .unwrap();
        out
    }

    /// Reads in small, uneven pieces, as a pipe does.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.1 = self.1 % 7919 + 1;
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn cuts_are_those_of_fastcdc_stream_cdc() {
        // Existing repositories were chunked by StreamCDC: the same cuts keep
        // their chunks deduplicating against new backups.
        let p = ChunkerParams { min_size: 1024, avg_size: 4096, max_size: 16384 };
        let mut chunker = Chunker::new(p);
        for len in [0usize, 1, 5000, 16384, 100_000, 1_000_000] {
            let data = pseudo_random(len, len as u64 + 7);
            let theirs: Vec<Vec<u8>> = fastcdc::v2020::StreamCDC::new(&data[..], p.min_size, p.avg_size, p.max_size)
                .map(|c| c.unwrap().data)
                .collect();
            let mut ours = Vec::new();
            chunker
                .split(
                    Trickle(&data, 0),
                    |c| {
                        ours.push(c.to_vec());
                        Ok::<_, std::io::Error>(())
                    },
                    |e| e,
                )
                .unwrap();
            assert_eq!(ours, theirs, "length {len}");
        }
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
        // Within our own order but past what fastcdc accepts (it would panic).
        assert!(ChunkerParams { min_size: 1 << 20, avg_size: 8 << 20, max_size: 64 << 20 }.validate().is_err());
    }
}

//! The payload codec inside every encrypted object: one flag byte (0 = stored,
//! 1 = zstd) and the payload. The flag is encrypted and authenticated with it.

use std::io::Read;

const STORED: u8 = 0;
const ZSTD: u8 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("empty payload")]
    Empty,
    #[error("unknown compression flag {0}")]
    UnknownFlag(u8),
    #[error("decompresses past the {0}-byte limit")]
    TooLarge(usize),
    #[error("zstd: {0}")]
    Zstd(std::io::Error),
}

/// Compresses with zstd at `level`, keeping the stored form when compression
/// does not shrink the data (already compressed or random input).
pub fn encode(data: &[u8], level: i32) -> Vec<u8> {
    thread_local! {
        // One zstd context per worker thread, reused across chunks: creating
        // one per chunk allocates (and page-faults) several MiB each time.
        static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { std::cell::RefCell::new(None) };
    }
    let compressed = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            *slot = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
        }
        let (_, compressor) = slot.as_mut()?;
        // Room for the flag byte first, then at most the input's size: a
        // result that does not fit is not worth keeping compressed.
        let mut out = Vec::with_capacity(data.len() + 1);
        out.push(ZSTD);
        let mut body = vec![0u8; data.len().saturating_sub(1)];
        match compressor.compress_to_buffer(data, &mut body) {
            Ok(n) if n < data.len() => {
                out.extend_from_slice(&body[..n]);
                Some(out)
            }
            _ => None,
        }
    });
    if let Some(out) = compressed {
        return out;
    }
    let mut out = Vec::with_capacity(data.len() + 1);
    out.push(STORED);
    out.extend_from_slice(data);
    out
}

/// Decodes a payload, refusing to produce more than `limit` bytes (a hostile
/// object must not be able to decompress into all of memory).
pub fn decode(payload: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let (&flag, body) = payload.split_first().ok_or(CodecError::Empty)?;
    match flag {
        STORED if body.len() <= limit => Ok(body.to_vec()),
        STORED => Err(CodecError::TooLarge(limit)),
        ZSTD => {
            let decoder = zstd::stream::read::Decoder::new(body).map_err(CodecError::Zstd)?;
            let mut out = Vec::new();
            decoder.take(limit as u64 + 1).read_to_end(&mut out).map_err(CodecError::Zstd)?;
            if out.len() > limit {
                return Err(CodecError::TooLarge(limit));
            }
            Ok(out)
        }
        other => Err(CodecError::UnknownFlag(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_compressible_and_incompressible() {
        let text = b"abcabcabc".repeat(1000);
        let enc = encode(&text, 3);
        assert_eq!(enc[0], ZSTD);
        assert!(enc.len() < text.len());
        assert_eq!(decode(&enc, text.len()).unwrap(), text);

        let random: Vec<u8> = (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
        let enc = encode(&random, 3);
        assert_eq!(decode(&enc, random.len()).unwrap(), random);

        let enc = encode(&[], 3);
        assert_eq!(decode(&enc, 0).unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn limits_and_bad_flags_are_refused() {
        let big = vec![0u8; 100_000];
        let enc = encode(&big, 3);
        assert!(matches!(decode(&enc, 99_999), Err(CodecError::TooLarge(_))));
        assert!(matches!(decode(&[9, 1, 2], 10), Err(CodecError::UnknownFlag(9))));
        assert!(matches!(decode(&[], 10), Err(CodecError::Empty)));
    }
}

//! The payload codec inside every encrypted object: one flag byte (0 = stored,
//! 1 = zstd) and the payload. The flag is encrypted and authenticated with it.

const STORED: u8 = 0;
const ZSTD: u8 = 1;

/// Limits up to this (chunks' largest sizes) are reserved whole when decoding.
const RESERVE_WHOLE_LIMIT: usize = 64 << 20;

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
    let mut out = Vec::new();
    encode_into(data, level, &mut out);
    out
}

/// `encode`, appending to `out`: the backup pipeline reuses its buffers, so
/// no chunk costs an allocation (and the page faults of a fresh one).
pub fn encode_into(data: &[u8], level: i32, out: &mut Vec<u8>) {
    thread_local! {
        // One zstd context per worker thread, reused across chunks: creating
        // one per chunk allocates (and page-faults) several MiB each time.
        static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { std::cell::RefCell::new(None) };
    }
    let start = out.len();
    // Room for the flag and the data stored as is, so neither form reallocates.
    out.reserve(data.len() + 1);
    out.push(ZSTD);
    let compressed = COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            *slot = zstd::bulk::Compressor::new(level).ok().map(|c| (level, c));
        }
        let (_, compressor) = slot.as_mut()?;
        // Straight into `out` after the flag; a result as large as the input
        // is not worth keeping compressed.
        let mut cursor = std::io::Cursor::new(&mut *out);
        cursor.set_position(start as u64 + 1);
        match compressor.compress_to_buffer(data, &mut cursor) {
            Ok(n) if n < data.len() => Some(()),
            _ => None,
        }
    });
    if compressed.is_none() {
        out.truncate(start);
        out.push(STORED);
        out.extend_from_slice(data);
    }
}

/// Decodes a payload, refusing to produce more than `limit` bytes (a hostile
/// object must not be able to decompress into all of memory).
pub fn decode(payload: &[u8], limit: usize) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    decode_into(payload, limit, &mut out)?;
    Ok(out)
}

/// `decode` into `out` (replacing what it held), reusing one zstd context
/// per thread: restore reuses its buffers as backup does.
pub fn decode_into(payload: &[u8], limit: usize, out: &mut Vec<u8>) -> Result<(), CodecError> {
    thread_local! {
        static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    out.clear();
    let (&flag, body) = payload.split_first().ok_or(CodecError::Empty)?;
    match flag {
        STORED if body.len() <= limit => {
            out.extend_from_slice(body);
            Ok(())
        }
        STORED => Err(CodecError::TooLarge(limit)),
        ZSTD => DECOMPRESSOR.with(|cell| {
            let mut slot = cell.borrow_mut();
            let decompressor = match &mut *slot {
                Some(d) => d,
                empty => empty.insert(zstd::bulk::Decompressor::new().map_err(CodecError::Zstd)?),
            };
            // The output buffer bounds the result: a frame that would grow
            // past `limit` fails ("destination buffer is too small"). A
            // chunk's limit (its largest size) is reserved whole: chunk
            // buffers are reused, and one sized to each chunk in turn would
            // be regrown again and again. Metadata's limit (1 GiB) is not:
            // its frame's declared size is (coffer's frames all declare it),
            // as a 1 GiB reservation is refused outright on a small machine
            // without overcommit.
            let declared = zstd::zstd_safe::get_frame_content_size(body);
            let capacity = match declared {
                Ok(Some(size)) if size > limit as u64 => return Err(CodecError::TooLarge(limit)),
                Ok(Some(size)) if limit > RESERVE_WHOLE_LIMIT => size as usize,
                _ => limit,
            };
            out.reserve_exact(capacity);
            let mut bounded = std::io::Cursor::new(&mut *out);
            match decompressor.decompress_to_buffer(body, &mut bounded) {
                Ok(n) if n <= limit => Ok(()),
                Ok(_) => Err(CodecError::TooLarge(limit)),
                Err(e) => Err(CodecError::Zstd(e)),
            }
        }),
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

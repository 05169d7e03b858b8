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
    /// Where the decoded bytes went failed (decode_stream's writer).
    #[error("{0}")]
    Write(std::io::Error),
}

/// A zstd payload of the `len` bytes `input` holds, compressed as they are
/// read (the frame declares its size): memory is the compressed form, not
/// the input. Always the zstd flag, even when it does not shrink.
pub fn encode_stream(input: &mut impl std::io::Read, len: u64, level: i32) -> std::io::Result<Vec<u8>> {
    let mut enc = zstd::stream::write::Encoder::new(vec![ZSTD], level)?;
    enc.include_contentsize(true)?;
    enc.set_pledged_src_size(Some(len))?;
    let copied = std::io::copy(&mut std::io::Read::take(&mut *input, len), &mut enc)?;
    if copied != len {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{copied} of {len} bytes read")));
    }
    enc.finish()
}

/// Decodes a payload into `out` as it decompresses, refusing more than
/// `limit` bytes. Returns the bytes written.
pub fn decode_stream(payload: &[u8], limit: u64, out: &mut impl std::io::Write) -> Result<u64, CodecError> {
    let (&flag, body) = payload.split_first().ok_or(CodecError::Empty)?;
    match flag {
        STORED if body.len() as u64 <= limit => {
            out.write_all(body).map_err(CodecError::Write)?;
            Ok(body.len() as u64)
        }
        STORED => Err(CodecError::TooLarge(limit as usize)),
        ZSTD => {
            let mut dec = zstd::stream::read::Decoder::with_buffer(body).map_err(CodecError::Zstd)?;
            let mut buf = vec![0u8; 1 << 20];
            let mut total = 0u64;
            loop {
                let n = std::io::Read::read(&mut dec, &mut buf).map_err(CodecError::Zstd)?;
                if n == 0 {
                    return Ok(total);
                }
                total += n as u64;
                if total > limit {
                    return Err(CodecError::TooLarge(limit as usize));
                }
                out.write_all(&buf[..n]).map_err(CodecError::Write)?;
            }
        }
        other => Err(CodecError::UnknownFlag(other)),
    }
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
    fn streamed_payloads_round_trip_and_keep_their_limit() {
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let payload = encode_stream(&mut &data[..], data.len() as u64, 3).unwrap();
        assert!(payload.len() < data.len() / 10, "compressed: {}", payload.len());
        let mut out = Vec::new();
        assert_eq!(decode_stream(&payload, data.len() as u64, &mut out).unwrap(), data.len() as u64);
        assert_eq!(out, data);
        // The same payload through the whole-buffer decoder: one format.
        assert_eq!(decode(&payload, data.len()).unwrap(), data);
        assert!(matches!(decode_stream(&payload, 1000, &mut Vec::new()), Err(CodecError::TooLarge(1000))));
        // A short input is an error, not a short payload.
        assert!(encode_stream(&mut &data[..10], 20, 3).is_err());
        let stored = encode(&[7u8; 3], 3);
        let mut out = Vec::new();
        assert_eq!(decode_stream(&stored, 3, &mut out).unwrap(), 3);
        assert_eq!(out, [7u8; 3]);
        assert!(decode_stream(&stored, 2, &mut Vec::new()).is_err());
    }

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

//! What coffer knows of PostgreSQL's WAL files: their names, and the
//! system identifier in a segment's first page header and in pg_control.

use crate::error::{Error, Result};
use std::path::Path;

/// The kinds of file PostgreSQL archives (`%f` of archive_command).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalFile {
    /// `TTTTTTTTXXXXXXXXYYYYYYYY`: timeline, then the segment number.
    Segment,
    /// A segment's `.partial` copy (the old timeline's last segment after a promotion).
    Partial,
    /// `TTTTTTTT.history`: a timeline's history.
    History,
    /// `<segment>.XXXXXXXX.backup`: a base backup's label.
    BackupLabel,
}

fn hex(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
}

impl WalFile {
    /// The kind of a WAL file name, or None for anything else (which is
    /// never made into an object name: it might hold a `/`).
    pub fn of(name: &str) -> Option<WalFile> {
        if hex(name, 24) {
            return Some(WalFile::Segment);
        }
        if let Some(seg) = name.strip_suffix(".partial") {
            return hex(seg, 24).then_some(WalFile::Partial);
        }
        if let Some(tli) = name.strip_suffix(".history") {
            return hex(tli, 8).then_some(WalFile::History);
        }
        if let Some(rest) = name.strip_suffix(".backup") {
            let (seg, off) = rest.split_once('.')?;
            return (hex(seg, 24) && hex(off, 8)).then_some(WalFile::BackupLabel);
        }
        None
    }

    /// The name, checked: an error naming it otherwise.
    pub fn check(name: &str) -> Result<WalFile> {
        WalFile::of(name).ok_or_else(|| {
            Error::InvalidOptions(format!(
                "{name:?} is not a WAL file name (a segment, .partial, .history or .backup file)"
            ))
        })
    }
}

/// The bytes of a segment's long page header that coffer reads.
pub const HEADER_LEN: usize = 40;

/// XLP_LONG_HEADER: the first page of a segment carries the long header.
const XLP_LONG_HEADER: u16 = 0x0002;

/// The system identifier and segment size in a segment's first page
/// (XLogLongPageHeaderData: magic u16, info u16, timeline u32, page address
/// u64, rem_len u32, 4 bytes of padding, then sysid u64, seg_size u32,
/// xlog_blcksz u32; little-endian on the machines coffer runs on).
/// `bytes` is the segment's start (at least `HEADER_LEN` bytes of it),
/// `len` the whole segment's length.
pub fn segment_header(bytes: &[u8], len: u64, name: &str) -> Result<(u64, u32)> {
    let bad = |why: &str| Error::InvalidOptions(format!("WAL segment {name}: {why}"));
    if bytes.len() < HEADER_LEN || len < HEADER_LEN as u64 {
        return Err(bad("shorter than a page header"));
    }
    let info = u16::from_le_bytes([bytes[2], bytes[3]]);
    if info & XLP_LONG_HEADER == 0 {
        return Err(bad("its first page has no long header (not a WAL segment?)"));
    }
    let sysid = u64::from_le_bytes(bytes[24..32].try_into().map_err(|_| bad("header"))?);
    let seg_size = u32::from_le_bytes(bytes[32..36].try_into().map_err(|_| bad("header"))?);
    if u64::from(seg_size) != len {
        return Err(bad(&format!("its header says {seg_size} bytes, the file has {len}")));
    }
    Ok((sysid, seg_size))
}

/// The system identifier in a data directory's `global/pg_control` (its
/// first field), if there is one.
pub fn data_dir_system_id(data_dir: &Path) -> Result<Option<u64>> {
    let path = data_dir.join("global/pg_control");
    match std::fs::read(&path) {
        Ok(b) if b.len() >= 8 => Ok(Some(u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])))),
        Ok(_) => Err(Error::InvalidOptions(format!("{} is too short to be pg_control", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wal_names_are_recognised_and_nothing_else() {
        assert_eq!(WalFile::of("000000010000000000000001"), Some(WalFile::Segment));
        assert_eq!(WalFile::of("000000020000000A000000FF.partial"), Some(WalFile::Partial));
        assert_eq!(WalFile::of("00000002.history"), Some(WalFile::History));
        assert_eq!(WalFile::of("000000010000000000000002.00000028.backup"), Some(WalFile::BackupLabel));
        for bad in [
            "",
            "00000001000000000000000",
            "0000000100000000000000010",
            "00000001000000000000000g",
            "000000010000000000000001.backup",
            "../00000001.history",
            "00000001.history/x",
            "RECOVERYXLOG",
            "000000010000000000000001.00000028.backup.x",
        ] {
            assert_eq!(WalFile::of(bad), None, "{bad:?}");
            assert!(WalFile::check(bad).is_err());
        }
    }

    #[test]
    fn a_segment_header_gives_its_system_identifier() {
        let mut seg = vec![0u8; 8192];
        seg[2] = 0x07; // XLP_FIRST_IS_CONTRECORD | XLP_LONG_HEADER | XLP_BKP_REMOVABLE
        seg[24..32].copy_from_slice(&7_300_000_000_000_000_001u64.to_le_bytes());
        seg[32..36].copy_from_slice(&8192u32.to_le_bytes());
        assert_eq!(segment_header(&seg, 8192, "s").unwrap(), (7_300_000_000_000_000_001, 8192));
        seg[2] = 0x05;
        assert!(segment_header(&seg, 8192, "s").is_err(), "no long header");
        seg[2] = 0x07;
        assert!(segment_header(&seg, 4096, "s").unwrap_err().to_string().contains("the file has 4096"));
        assert!(segment_header(&seg[..20], 8192, "s").is_err(), "shorter than a header");
    }
}

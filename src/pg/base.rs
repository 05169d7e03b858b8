//! What coffer reads of a physical base backup: LSNs and WAL segment names,
//! the `backup_label` PostgreSQL writes at its start, and the WAL range in
//! the `backup_manifest` pg_basebackup appends at its end.

use crate::error::{Error, Result};

/// A WAL position, `X/Y` in PostgreSQL's notation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lsn(pub u64);

impl Lsn {
    pub fn parse(s: &str) -> Option<Lsn> {
        let (hi, lo) = s.trim().split_once('/')?;
        let hex = |p: &str| (!p.is_empty() && p.len() <= 8).then(|| u64::from_str_radix(p, 16).ok()).flatten();
        Some(Lsn((hex(hi)? << 32) | hex(lo)?))
    }

    /// The name of the segment holding this position on `timeline`.
    pub fn segment(self, timeline: u32, segment_size: u32) -> String {
        segment_name(timeline, self.0 / u64::from(segment_size.max(1)), segment_size)
    }
}

impl std::fmt::Display for Lsn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xffff_ffff)
    }
}

/// Segments per "xlogid" (the middle 8 hex digits of a segment name).
fn per_id(segment_size: u32) -> u64 {
    (1u64 << 32) / u64::from(segment_size.max(1))
}

/// `TTTTTTTTXXXXXXXXYYYYYYYY` for segment number `no`.
pub fn segment_name(timeline: u32, no: u64, segment_size: u32) -> String {
    let per = per_id(segment_size).max(1);
    format!("{timeline:08X}{:08X}{:08X}", no / per, no % per)
}

/// A segment name's timeline and segment number.
pub fn segment_number(name: &str, segment_size: u32) -> Option<(u32, u64)> {
    let n = |r: std::ops::Range<usize>| u64::from_str_radix(name.get(r)?, 16).ok();
    (name.len() == 24).then_some(())?;
    Some((n(0..8)? as u32, n(8..16)? * per_id(segment_size) + n(16..24)?))
}

/// The fields of a `backup_label` coffer records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupLabel {
    pub start_lsn: Lsn,
    pub start_wal: String,
    pub timeline: u32,
    /// As PostgreSQL wrote it (`2026-12-03 15:55:29 UTC`).
    pub start_time: String,
    pub label: String,
}

impl BackupLabel {
    pub fn parse(text: &str) -> Result<BackupLabel> {
        let bad = |why: &str| Error::InvalidOptions(format!("the base backup's backup_label {why}"));
        let field = |name: &str| {
            text.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": "))).map(str::trim)
        };
        // START WAL LOCATION: 0/5000028 (file 000000010000000000000005)
        let start = field("START WAL LOCATION").ok_or_else(|| bad("has no START WAL LOCATION"))?;
        let (lsn, file) = start.split_once(" (file ").ok_or_else(|| bad("has an unreadable START WAL LOCATION"))?;
        let start_lsn = Lsn::parse(lsn).ok_or_else(|| bad("has an unreadable START WAL LOCATION"))?;
        let start_wal = file.trim_end_matches(')').to_string();
        if crate::pg::wal::WalFile::of(&start_wal) != Some(crate::pg::wal::WalFile::Segment) {
            return Err(bad("names no WAL segment"));
        }
        let timeline = match field("START TIMELINE") {
            Some(t) => t.parse().map_err(|_| bad("has an unreadable START TIMELINE"))?,
            None => u32::from_str_radix(&start_wal[..8], 16).map_err(|_| bad("names no WAL segment"))?,
        };
        Ok(BackupLabel {
            start_lsn,
            start_wal,
            timeline,
            start_time: field("START TIME").unwrap_or_default().to_string(),
            label: field("LABEL").unwrap_or_default().to_string(),
        })
    }
}

/// One `WAL-Ranges` item of a backup manifest: the WAL a restore needs to
/// reach consistency (several when the timeline changed during the backup).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct WalRange {
    #[serde(rename = "Timeline")]
    pub timeline: u32,
    #[serde(rename = "Start-LSN")]
    pub start: String,
    #[serde(rename = "End-LSN")]
    pub end: String,
}

/// The `WAL-Ranges` of a backup manifest, from its last bytes (the list
/// comes after the files', just before the manifest's checksum).
pub fn manifest_wal_ranges(tail: &[u8]) -> Result<Vec<WalRange>> {
    let bad = |why: &str| Error::InvalidOptions(format!("the base backup's backup_manifest {why}"));
    let text = String::from_utf8_lossy(tail);
    let at = text.rfind("\"WAL-Ranges\"").ok_or_else(|| bad("has no WAL-Ranges"))?;
    let rest = &text[at..];
    let open = rest.find('[').ok_or_else(|| bad("has an unreadable WAL-Ranges"))?;
    let close = rest.find(']').ok_or_else(|| bad("has an unreadable WAL-Ranges"))?;
    let ranges: Vec<WalRange> = serde_json::from_str(rest.get(open..=close).unwrap_or_default())
        .map_err(|e| bad(&format!("has an unreadable WAL-Ranges: {e}")))?;
    if ranges.is_empty() || ranges.iter().any(|r| Lsn::parse(&r.start).is_none() || Lsn::parse(&r.end).is_none()) {
        return Err(bad("has an unreadable WAL-Ranges"));
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsns_and_segment_names_round_trip() {
        let l = Lsn::parse("0/5000028").unwrap();
        assert_eq!(l.0, 0x5000028);
        assert_eq!(l.to_string(), "0/5000028");
        assert_eq!(Lsn::parse("1A/FF000000").unwrap().to_string(), "1A/FF000000");
        assert_eq!(l.segment(1, 16 << 20), "000000010000000000000005");
        assert_eq!(Lsn::parse("1/2000000").unwrap().segment(3, 16 << 20), "000000030000000100000002");
        assert_eq!(segment_number("000000030000000100000002", 16 << 20), Some((3, 256 + 2)));
        assert_eq!(segment_name(3, 258, 16 << 20), "000000030000000100000002");
        for bad in ["", "5000028", "0/", "/1", "0/123456789", "g/1"] {
            assert_eq!(Lsn::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_backup_label_gives_its_start() {
        let text = "START WAL LOCATION: 0/5000028 (file 000000010000000000000005)\nCHECKPOINT LOCATION: 0/5000060\n\
                    BACKUP METHOD: streamed\nBACKUP FROM: primary\nSTART TIME: 2026-12-03 15:55:29 UTC\n\
                    LABEL: pg_basebackup base backup\nSTART TIMELINE: 1\n";
        let l = BackupLabel::parse(text).unwrap();
        assert_eq!(l.start_lsn, Lsn(0x5000028));
        assert_eq!(l.start_wal, "000000010000000000000005");
        assert_eq!((l.timeline, l.start_time.as_str()), (1, "2026-12-03 15:55:29 UTC"));
        assert!(BackupLabel::parse("LABEL: x\n").is_err());
        assert!(BackupLabel::parse("START WAL LOCATION: 0/5 (file ../x)\n").is_err());
    }

    #[test]
    fn the_manifest_tail_gives_the_wal_range() {
        let tail = br#"{ "Path": "global/pg_control", "Size": 8192 }
],
"WAL-Ranges": [
{ "Timeline": 1, "Start-LSN": "0/5000028", "End-LSN": "0/5000100" }
],
"Manifest-Checksum": "99e6"}"#;
        let r = manifest_wal_ranges(tail).unwrap();
        assert_eq!(r, vec![WalRange { timeline: 1, start: "0/5000028".into(), end: "0/5000100".into() }]);
        assert!(manifest_wal_ranges(b"{}").is_err());
        assert!(manifest_wal_ranges(br#""WAL-Ranges": []"#).is_err());
    }
}

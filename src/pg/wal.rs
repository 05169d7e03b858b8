//! What coffer knows of PostgreSQL's WAL files: their names, and the
//! system identifier in a segment's first page header and in pg_control.

use crate::error::{Error, Result};
use crate::pg::base::Lsn;
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

/// A stretch of one timeline on the path recovery follows: its WAL is read
/// from `begin` (where its parent switched to it; 0 for the first) up to
/// `end` (where it switched to its child; None for the followed timeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineSpan {
    pub timeline: u32,
    pub begin: Lsn,
    pub end: Option<Lsn>,
}

/// The path to timeline `target` its `NNNNNNNN.history` file describes: one
/// line per ancestor, `parent<TAB>switch point<TAB>reason`, oldest first
/// (blank and `#` lines skipped), then `target` itself from the last
/// switch point on.
pub fn timeline_path(target: u32, history: &str) -> Result<Vec<TimelineSpan>> {
    let mut path: Vec<TimelineSpan> = Vec::new();
    let mut begin = Lsn(0);
    for line in history.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let bad =
            || Error::corrupt(format!("WAL history file {target:08X}.history"), format!("unreadable line {line:?}"));
        let mut f = line.split_whitespace();
        let tli: u32 = f.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
        let end = f.next().and_then(Lsn::parse).ok_or_else(bad)?;
        // Ancestors are listed oldest first, each switching later than the last.
        if tli >= target || end < begin || path.last().is_some_and(|p| p.timeline >= tli) {
            return Err(bad());
        }
        path.push(TimelineSpan { timeline: tli, begin, end: Some(end) });
        begin = end;
    }
    path.push(TimelineSpan { timeline: target, begin, end: None });
    Ok(path)
}

/// The segments recovery reads, from a base backup on timeline `base_tli`
/// (its first segment `first`, its end `stop`) along `path`: each ancestor's
/// up to its switch (the segment holding the switch point is read from the
/// child, which starts with a copy of it), then the followed timeline's
/// from its start to the newest of `held` (timeline, segment number) with
/// no gap. Err: why that path cannot be followed, naming a missing segment.
pub fn segments_along(
    path: &[TimelineSpan],
    base_tli: u32,
    first: u64,
    stop: Lsn,
    segment_size: u32,
    held: &std::collections::BTreeSet<(u32, u64)>,
) -> std::result::Result<Vec<(u32, u64)>, String> {
    let seg = u64::from(segment_size.max(1));
    let name = |t: u32, no: u64| crate::pg::base::segment_name(t, no, segment_size);
    let followed = path.last().map_or(base_tli, |s| s.timeline);
    let Some(at) = path.iter().position(|s| s.timeline == base_tli) else {
        return Err(format!("timeline {followed} does not descend from the base backup's timeline {base_tli}"));
    };
    if let Some(end) = path[at].end.filter(|end| *end < stop) {
        return Err(format!(
            "timeline {followed} branched off the base backup's timeline {base_tli} at {end}, before the backup \
             was consistent ({stop})"
        ));
    }
    let mut needed = Vec::new();
    for (k, span) in path[at..].iter().enumerate() {
        let from = if k == 0 { first } else { span.begin.0 / seg };
        match span.end {
            Some(end) => {
                for no in from..(end.0 / seg).max(from) {
                    if !held.contains(&(span.timeline, no)) {
                        return Err(format!(
                            "WAL segment {} is missing (timeline {} up to its switch to the next at {end})",
                            name(span.timeline, no),
                            span.timeline
                        ));
                    }
                    needed.push((span.timeline, no));
                }
            }
            None => {
                let mine: Vec<u64> =
                    held.range((span.timeline, from)..=(span.timeline, u64::MAX)).map(|&(_, n)| n).collect();
                let mut next = from;
                for no in mine {
                    if no != next {
                        return Err(format!(
                            "WAL segment {} is missing ({} segment{} missing before {})",
                            name(span.timeline, next),
                            no - next,
                            if no - next == 1 { "" } else { "s" },
                            name(span.timeline, no)
                        ));
                    }
                    needed.push((span.timeline, no));
                    next = no + 1;
                }
                if next == from && span.timeline != base_tli {
                    return Err(format!(
                        "WAL segment {} (the start of timeline {}) is not archived",
                        name(span.timeline, from),
                        span.timeline
                    ));
                }
            }
        }
    }
    Ok(needed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_history_file_gives_the_path_to_its_timeline() {
        let path =
            timeline_path(3, "1\t0/3000000\tno recovery target specified\n\n2\t0/5000060\tat restore point\n").unwrap();
        assert_eq!(
            path,
            vec![
                TimelineSpan { timeline: 1, begin: Lsn(0), end: Some(Lsn(0x300_0000)) },
                TimelineSpan { timeline: 2, begin: Lsn(0x300_0000), end: Some(Lsn(0x500_0060)) },
                TimelineSpan { timeline: 3, begin: Lsn(0x500_0060), end: None },
            ]
        );
        for bad in ["x\t0/1\n", "1\tnope\n", "3\t0/1\n", "2\t0/5\n1\t0/9\n", "1\t0/9\n2\t0/5\n"] {
            assert!(timeline_path(3, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_segments_along_a_path_cross_to_the_child_at_the_switch_segment() {
        const SEG: u32 = 16 << 20;
        let held: std::collections::BTreeSet<(u32, u64)> =
            [(1, 2), (1, 3), (1, 4), (1, 5), (2, 4), (2, 5), (2, 6)].into();
        // Timeline 2 began inside segment 4: 1/2, 1/3, then 2/4 on.
        let path = timeline_path(2, "1\t0/4000100\treason\n").unwrap();
        let got = segments_along(&path, 1, 2, Lsn(0x300_0000), SEG, &held).unwrap();
        assert_eq!(got, vec![(1, 2), (1, 3), (2, 4), (2, 5), (2, 6)]);
        // Following timeline 1 itself reads its own segments.
        let own = [TimelineSpan { timeline: 1, begin: Lsn(0), end: None }];
        assert_eq!(
            segments_along(&own, 1, 2, Lsn(0x300_0000), SEG, &held).unwrap(),
            vec![(1, 2), (1, 3), (1, 4), (1, 5)]
        );
        // A base backup that ended after the branch cannot follow it.
        let e = segments_along(&path, 1, 2, Lsn(0x400_0200), SEG, &held).unwrap_err();
        assert!(e.contains("branched off"), "{e}");
        // Nor one on a timeline the path does not pass.
        assert!(segments_along(&path, 5, 2, Lsn(0), SEG, &held).unwrap_err().contains("does not descend"));
        // Gaps are named, on the ancestor and on the followed timeline.
        let mut gap = held.clone();
        gap.remove(&(1, 3));
        assert!(segments_along(&path, 1, 2, Lsn(0x300_0000), SEG, &gap)
            .unwrap_err()
            .contains("000000010000000000000003"));
        let mut gap = held.clone();
        gap.remove(&(2, 5));
        assert!(segments_along(&path, 1, 2, Lsn(0x300_0000), SEG, &gap)
            .unwrap_err()
            .contains("000000020000000000000005"));
        let mut gap = held.clone();
        gap.retain(|(t, _)| *t == 1);
        assert!(segments_along(&path, 1, 2, Lsn(0x300_0000), SEG, &gap)
            .unwrap_err()
            .contains("the start of timeline 2"));
    }

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

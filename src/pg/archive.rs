//! pg_dump's custom-format archive, read as it streams by.
//!
//! coffer reads the archive itself instead of parsing `pg_restore --list`,
//! whose lines are names separated by spaces, unquoted (a schema "Sales Dept"
//! cannot be told from schema "Sales" and a table "Dept ..."). The layout is
//! pg_dump's own (`pg_backup_archiver.c`: `WriteHead`, `WriteToc`;
//! `pg_backup_custom.c`: data blocks), versions 1.12 to 1.16 (PostgreSQL
//! 11 to 17):
//!
//! - header: `PGDMP`, version bytes, int and offset sizes, format (1 =
//!   custom), compression, creation time, the database's name, the server's
//!   and pg_dump's versions;
//! - the table of contents: per entry its dump id, tag (name), kind, schema,
//!   owner, definition and the ids it depends on;
//! - data blocks in order: a table's COPY rows (one per line) in
//!   length-prefixed chunks, or large objects.
//!
//! The scanner is fed the stream in pieces of any size and keeps only the
//! entry being read: the header and TOC are small, row data is counted
//! (newlines) and never held. It proves the stream is a complete archive
//! (every block whole, nothing after the last), names the database it came
//! from, and counts each table's rows.

use std::collections::HashMap;

/// Why a stream is not a complete archive. Messages are for humans.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ArchiveError(pub String);

type Result<T> = std::result::Result<T, ArchiveError>;

fn bad<T>(msg: impl Into<String>) -> Result<T> {
    Err(ArchiveError(msg.into()))
}

const MIN_VERSION: (u8, u8) = (1, 12);
const MAX_VERSION: (u8, u8) = (1, 16);
const FORMAT_CUSTOM: u8 = 1;
const BLK_DATA: u8 = 1;
/// What pg_dump writes after a table's COPY rows (a row never reads `\.`).
const TERMINATOR: &[u8] = b"\\.\n\n\n";
const BLK_BLOBS: u8 = 3;
/// Longest string field accepted (a definition, a name); pg_dump's are far
/// shorter, so a larger length means damage, not a big database.
const MAX_STRING: usize = 256 << 20;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header {
    pub version: (u8, u8, u8),
    /// None: not compressed (coffer dumps with `--compress=0`); rows are
    /// counted only then.
    pub compression: Option<String>,
    /// The database pg_dump was connected to.
    pub dbname: String,
    pub server_version: String,
    pub pg_dump_version: String,
}

/// One entry of the table of contents, as pg_dump wrote it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub id: u32,
    pub had_dumper: bool,
    /// The object's name (for a COMMENT or ACL: "TABLE name").
    pub tag: String,
    /// TABLE, TABLE DATA, INDEX, POLICY, ...
    pub desc: String,
    /// 1 pre-data, 2 data, 3 post-data, 4 none.
    pub section: i64,
    pub defn: String,
    pub namespace: Option<String>,
    pub owner: Option<String>,
    pub deps: Vec<u32>,
}

/// A whole archive's description: header, TOC and each data block's rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Archive {
    pub header: Header,
    pub entries: Vec<Entry>,
    /// Rows of each data block (by dump id), when the data is uncompressed.
    pub rows: HashMap<u32, u64>,
    /// Bytes of each data block's COPY text (by dump id), when uncompressed:
    /// what restoring that table sends the server.
    pub data_bytes: HashMap<u32, u64>,
}

enum Stage {
    Head,
    TocCount,
    Toc {
        left: u64,
    },
    /// Between data blocks (or at the end).
    Block,
    /// In a table's data: next is a chunk length (0 ends the block).
    DataLen {
        id: u32,
    },
    /// In a large-object block: next is an oid (0 ends the block).
    BlobOid,
    /// In one large object: next is a chunk length (0 ends the object).
    BlobLen,
    /// Inside a chunk's payload.
    Payload {
        left: u64,
        id: Option<u32>,
    },
}

/// Feed it the archive's bytes in order; `finish` at the end.
pub struct Scanner {
    stage: Stage,
    /// Bytes of a structured part (header, TOC entry, block or chunk header)
    /// not yet parsed.
    pending: Vec<u8>,
    /// `pending` must hold at least this many bytes before another attempt.
    need: usize,
    int_size: usize,
    off_size: usize,
    archive: Archive,
    /// The data blocks still expected, in TOC order.
    expected: Vec<u32>,
    seen_blocks: usize,
    failed: Option<ArchiveError>,
    bytes: u64,
    /// The last bytes of the current table's data: pg_dump ends it with
    /// COPY's terminator, `\.` and three newlines, which are no rows.
    tail: [u8; TERMINATOR.len()],
    /// Keep each entry's SQL (a restore reads policies' roles from it); a
    /// backup does not, so a large schema costs it no memory.
    keep_definitions: bool,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    pub fn new() -> Scanner {
        Scanner {
            stage: Stage::Head,
            pending: Vec::new(),
            need: 0,
            int_size: 4,
            off_size: 8,
            archive: Archive::default(),
            expected: Vec::new(),
            seen_blocks: 0,
            failed: None,
            bytes: 0,
            tail: [0; TERMINATOR.len()],
            keep_definitions: false,
        }
    }

    /// A scanner that keeps each entry's definition (`Entry::defn`).
    pub fn with_definitions() -> Scanner {
        Scanner { keep_definitions: true, ..Scanner::new() }
    }

    /// The header and the whole TOC have been read.
    pub fn toc_complete(&self) -> bool {
        !matches!(self.stage, Stage::Head | Stage::TocCount | Stage::Toc { .. })
    }

    pub fn archive(&self) -> &Archive {
        &self.archive
    }

    /// Takes the next piece. After an error every later call fails the same way.
    pub fn feed(&mut self, data: &[u8]) -> Result<()> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let r = self.feed_inner(data);
        if let Err(e) = &r {
            self.failed = Some(e.clone());
        }
        r
    }

    /// The stream has ended: it must have ended between two blocks, with
    /// every data block the TOC announced.
    pub fn finish(mut self) -> Result<Archive> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if !self.toc_complete() {
            return bad(format!(
                "the archive ends inside its header or table of contents (after {} bytes)",
                self.bytes
            ));
        }
        if !matches!(self.stage, Stage::Block) || !self.pending.is_empty() {
            return bad(format!("the archive ends inside a data block (after {} bytes)", self.bytes));
        }
        if self.seen_blocks < self.expected.len() {
            let id = self.expected[self.seen_blocks];
            return bad(format!("the archive ends before the data of entry {id} ({})", self.describe(id)));
        }
        if self.archive.header.compression.is_some() {
            self.archive.rows.clear();
            self.archive.data_bytes.clear();
        }
        Ok(self.archive)
    }

    fn describe(&self, id: u32) -> String {
        match self.archive.entries.iter().find(|e| e.id == id) {
            Some(e) => format!("{} {}", e.desc, e.tag),
            None => "unknown".into(),
        }
    }

    fn feed_inner(&mut self, mut data: &[u8]) -> Result<()> {
        self.bytes += data.len() as u64;
        while !data.is_empty() {
            if let Stage::Payload { left, id } = self.stage {
                let n = usize::try_from(left).map_or(data.len(), |l| l.min(data.len()));
                if let Some(id) = id {
                    let lines = self.table_data(&data[..n]);
                    *self.archive.rows.entry(id).or_insert(0) += lines;
                    *self.archive.data_bytes.entry(id).or_insert(0) += n as u64;
                }
                data = &data[n..];
                let left = left - n as u64;
                self.stage = match (left, id) {
                    (0, Some(id)) => Stage::DataLen { id },
                    (0, None) => Stage::BlobLen,
                    (left, id) => Stage::Payload { left, id },
                };
                continue;
            }
            if let (Stage::DataLen { id }, true) = (&self.stage, self.pending.is_empty()) {
                let id = *id;
                data = self.rows_fast(data, id)?;
                if !matches!(self.stage, Stage::DataLen { .. }) || data.is_empty() {
                    continue;
                }
            }
            // A structured part: parse straight from `data` when it is all
            // there (the common case: one row's chunk header), else gather.
            if self.pending.is_empty() {
                match self.step(data)? {
                    Some(used) => {
                        data = &data[used..];
                        continue;
                    }
                    None => {
                        self.pending.extend_from_slice(data);
                        return Ok(());
                    }
                }
            }
            // Gather only what the part still needs: the rest may be payload.
            let want = self.need.max(self.pending.len() + 1);
            let take = (want - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < self.need {
                continue;
            }
            let pending = std::mem::take(&mut self.pending);
            match self.step(&pending)? {
                Some(used) => {
                    // Anything gathered past the part goes back in front.
                    let rest = pending[used..].to_vec();
                    if !rest.is_empty() {
                        self.bytes -= rest.len() as u64;
                        self.feed_inner(&rest)?;
                    }
                }
                None => self.pending = pending,
            }
        }
        Ok(())
    }

    /// Parses one structured part from the front of `buf`: Some(bytes used),
    /// or None when `buf` is too short (and `self.need` says how long it must be).
    fn step(&mut self, buf: &[u8]) -> Result<Option<usize>> {
        let minor = self.archive.header.version.1;
        let mut r = Reader { buf, pos: 0, int_size: self.int_size, off_size: self.off_size, minor, short: None };
        let done = match self.stage {
            Stage::Head => self.head(&mut r)?,
            Stage::TocCount => match r.int()? {
                Some(n) if n < 0 => return bad(format!("the table of contents claims {n} entries")),
                Some(0) => {
                    self.stage = Stage::Block;
                    Some(())
                }
                Some(n) => {
                    self.stage = Stage::Toc { left: n as u64 };
                    Some(())
                }
                None => None,
            },
            Stage::Toc { left } => match entry(&mut r)? {
                Some(mut e) => {
                    if !self.keep_definitions {
                        e.defn = String::new();
                    }
                    if e.had_dumper {
                        self.expected.push(e.id);
                    }
                    self.archive.entries.push(e);
                    self.stage = if left == 1 { Stage::Block } else { Stage::Toc { left: left - 1 } };
                    Some(())
                }
                None => None,
            },
            Stage::Block => {
                let Some(kind) = r.byte() else { return Ok(self.short(&r)) };
                let Some(id) = r.int()? else { return Ok(self.short(&r)) };
                let id = u32::try_from(id).map_err(|_| ArchiveError(format!("a data block has dump id {id}")))?;
                match self.expected.get(self.seen_blocks) {
                    Some(&want) if want == id => self.seen_blocks += 1,
                    _ => {
                        let known = self.expected.contains(&id);
                        return bad(if known {
                            format!("the data of entry {id} is out of order or repeated")
                        } else {
                            format!("a data block belongs to no entry of the table of contents (dump id {id})")
                        });
                    }
                }
                self.stage = match kind {
                    BLK_DATA => {
                        self.archive.rows.insert(id, 0);
                        self.archive.data_bytes.insert(id, 0);
                        Stage::DataLen { id }
                    }
                    BLK_BLOBS => Stage::BlobOid,
                    k => return bad(format!("unknown data block type {k} (dump id {id})")),
                };
                Some(())
            }
            Stage::DataLen { id } => r.len()?.map(|len| {
                self.stage = match len {
                    0 => {
                        self.end_table(id);
                        Stage::Block
                    }
                    n => Stage::Payload { left: n, id: Some(id) },
                }
            }),
            Stage::BlobOid => r.int()?.map(|oid| self.stage = if oid == 0 { Stage::Block } else { Stage::BlobLen }),
            Stage::BlobLen => r.len()?.map(|len| {
                self.stage = match len {
                    0 => Stage::BlobOid,
                    n => Stage::Payload { left: n, id: None },
                }
            }),
            Stage::Payload { .. } => unreachable!("payloads are consumed by feed"),
        };
        Ok(match done {
            Some(()) => {
                self.need = 0;
                Some(r.pos)
            }
            None => self.short(&r),
        })
    }

    /// The hot loop of a table's data: pg_dump writes each row as a chunk
    /// of its own (a length, then the row), so whole chunks are consumed here
    /// without the general parser. Stops at the block's end or at a chunk
    /// that is not whole in `data`; returns what is left.
    fn rows_fast<'d>(&mut self, mut data: &'d [u8], id: u32) -> Result<&'d [u8]> {
        let n = self.int_size;
        let mut lines = 0u64;
        let mut bytes = 0u64;
        while data.len() > n {
            let mut len: u64 = 0;
            for (i, &b) in data[1..=n].iter().enumerate() {
                len |= (b as u64) << (8 * i);
            }
            // A sign byte over zero is zero, as `int` (and pg_dump's ReadInt) reads it.
            if data[0] != 0 && len != 0 {
                return bad(format!("a data chunk of entry {id} has a negative length"));
            }
            if len == 0 {
                data = &data[n + 1..];
                self.archive.rows.entry(id).and_modify(|r| *r += lines);
                self.archive.data_bytes.entry(id).and_modify(|b| *b += bytes);
                self.end_table(id);
                self.stage = Stage::Block;
                return Ok(data);
            }
            let end = match usize::try_from(len).ok().and_then(|l| l.checked_add(n + 1)) {
                Some(end) if end <= data.len() => end,
                _ => break,
            };
            lines += self.table_data(&data[n + 1..end]);
            bytes += (end - n - 1) as u64;
            data = &data[end..];
        }
        self.archive.rows.entry(id).and_modify(|r| *r += lines);
        self.archive.data_bytes.entry(id).and_modify(|b| *b += bytes);
        Ok(data)
    }

    /// Counts a piece of a table's COPY data: its newlines (one per row).
    fn table_data(&mut self, payload: &[u8]) -> u64 {
        let keep = payload.len().min(TERMINATOR.len());
        self.tail.copy_within(keep.., 0);
        let at = TERMINATOR.len() - keep;
        self.tail[at..].copy_from_slice(&payload[payload.len() - keep..]);
        payload.iter().filter(|&&b| b == b'\n').count() as u64
    }

    /// A table's data ended: its terminator is not rows.
    fn end_table(&mut self, id: u32) {
        if self.tail == TERMINATOR {
            if let Some(rows) = self.archive.rows.get_mut(&id) {
                *rows = rows.saturating_sub(3);
            }
            if let Some(b) = self.archive.data_bytes.get_mut(&id) {
                *b = b.saturating_sub(TERMINATOR.len() as u64);
            }
        }
        self.tail = [0; TERMINATOR.len()];
    }

    fn short(&mut self, r: &Reader<'_>) -> Option<usize> {
        self.need = r.short.unwrap_or(r.buf.len() + 1);
        None
    }

    fn head(&mut self, r: &mut Reader<'_>) -> Result<Option<()>> {
        let Some(magic) = r.bytes(5) else { return Ok(None) };
        if magic != b"PGDMP" {
            return bad("not a pg_dump custom-format archive (no PGDMP header)");
        }
        let Some(v) = r.bytes(3) else { return Ok(None) };
        let version = (v[0], v[1], v[2]);
        if (version.0, version.1) < MIN_VERSION || (version.0, version.1) > MAX_VERSION {
            return bad(format!(
                "archive version {}.{} is not one coffer reads ({}.{} to {}.{})",
                version.0, version.1, MIN_VERSION.0, MIN_VERSION.1, MAX_VERSION.0, MAX_VERSION.1
            ));
        }
        let Some(sizes) = r.bytes(3) else { return Ok(None) };
        let (int_size, off_size, format) = (sizes[0] as usize, sizes[1] as usize, sizes[2]);
        if !(1..=8).contains(&int_size) || !(1..=16).contains(&off_size) {
            return bad(format!("implausible integer or offset size ({int_size}, {off_size})"));
        }
        if format != FORMAT_CUSTOM {
            return bad(format!("archive format {format} is not custom (1)"));
        }
        r.int_size = int_size;
        r.off_size = off_size;
        let compression = if version.1 >= 15 {
            match r.byte() {
                None => return Ok(None),
                Some(0) => None,
                Some(1) => Some("gzip".to_string()),
                Some(2) => Some("lz4".to_string()),
                Some(3) => Some("zstd".to_string()),
                Some(a) => Some(format!("algorithm {a}")),
            }
        } else {
            match r.int()? {
                None => return Ok(None),
                Some(0) => None,
                Some(level) => Some(format!("gzip level {level}")),
            }
        };
        for _ in 0..7 {
            if r.int()?.is_none() {
                return Ok(None);
            }
        }
        let Some(dbname) = r.str()? else { return Ok(None) };
        let Some(server_version) = r.str()? else { return Ok(None) };
        let Some(pg_dump_version) = r.str()? else { return Ok(None) };
        self.int_size = int_size;
        self.off_size = off_size;
        self.archive.header = Header {
            version,
            compression,
            dbname: dbname.unwrap_or_default(),
            server_version: server_version.unwrap_or_default(),
            pg_dump_version: pg_dump_version.unwrap_or_default(),
        };
        self.stage = Stage::TocCount;
        Ok(Some(()))
    }
}

/// One TOC entry (`ReadToc`), or None when `r` runs short.
fn entry(r: &mut Reader<'_>) -> Result<Option<Entry>> {
    macro_rules! next {
        ($e:expr) => {
            match $e {
                Some(v) => v,
                None => return Ok(None),
            }
        };
    }
    let id = next!(r.int()?);
    let id = match u32::try_from(id) {
        Ok(id) if id > 0 => id,
        _ => return bad(format!("a table of contents entry has id {id}")),
    };
    let had_dumper = next!(r.int()?) != 0;
    let _tableoid = next!(r.str()?);
    let _oid = next!(r.str()?);
    let tag = next!(r.str()?).unwrap_or_default();
    let desc = next!(r.str()?).unwrap_or_default();
    let section = next!(r.int()?);
    let defn = next!(r.str()?).unwrap_or_default();
    let _drop = next!(r.str()?);
    let _copy = next!(r.str()?);
    let namespace = next!(r.str()?).filter(|s| !s.is_empty());
    let _tablespace = next!(r.str()?);
    let _tableam = next!(r.str()?);
    if r.minor >= 16 {
        let _relkind = next!(r.int()?);
    }
    let owner = next!(r.str()?).filter(|s| !s.is_empty());
    let _with_oids = next!(r.str()?);
    let mut deps = Vec::new();
    while let Some(dep) = next!(r.str()?) {
        deps.push(dep.trim().parse().map_err(|_| ArchiveError(format!("entry {id} has a dependency {dep:?}")))?);
    }
    // The custom format's extra: the data's offset (unset when written to a pipe).
    let Some(flag) = r.byte() else { return Ok(None) };
    if !(1..=3).contains(&flag) {
        return bad(format!("entry {id} has an invalid data offset flag {flag}"));
    }
    next!(r.bytes(r.off_size));
    Ok(Some(Entry { id, had_dumper, tag, desc, section, defn, namespace, owner, deps }))
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    int_size: usize,
    off_size: usize,
    /// The archive version's minor number (fields differ by version).
    minor: u8,
    /// When a read ran short: how long `buf` must be.
    short: Option<usize>,
}

impl Reader<'_> {
    /// A chunk's length: never negative.
    fn len(&mut self) -> Result<Option<u64>> {
        match self.int()? {
            Some(n) if n < 0 => bad(format!("a data chunk has length {n}")),
            n => Ok(n.map(|n| n as u64)),
        }
    }

    fn bytes(&mut self, n: usize) -> Option<&[u8]> {
        if self.buf.len() - self.pos < n {
            self.short = Some(self.pos + n);
            return None;
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Some(s)
    }

    fn byte(&mut self) -> Option<u8> {
        self.bytes(1).map(|b| b[0])
    }

    /// `ReadInt`: a sign byte, then `int_size` bytes, least significant first.
    fn int(&mut self) -> Result<Option<i64>> {
        let n = self.int_size;
        let Some(b) = self.bytes(1 + n) else { return Ok(None) };
        let negative = b[0] != 0;
        let mut v: u64 = 0;
        for (i, &byte) in b[1..].iter().enumerate() {
            v |= (byte as u64) << (8 * i);
        }
        let v = i64::try_from(v).map_err(|_| ArchiveError("an integer does not fit in 63 bits".into()))?;
        Ok(Some(if negative { -v } else { v }))
    }

    /// `ReadStr`: a length (-1 for NULL), then the bytes. Some(None) is NULL.
    fn str(&mut self) -> Result<Option<Option<String>>> {
        let Some(len) = self.int()? else { return Ok(None) };
        if len < 0 {
            return Ok(Some(None));
        }
        let len = len as usize;
        if len > MAX_STRING {
            return bad(format!("a string field claims {len} bytes"));
        }
        let Some(b) = self.bytes(len) else { return Ok(None) };
        Ok(Some(Some(String::from_utf8_lossy(b).into_owned())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `pg_dump -Fc -Z0` (15) of fixtures/postgres/archive.sql in database my_app.
    const FIXTURE: &[u8] = include_bytes!("../../fixtures/postgres/archive.pgc");

    fn scan(data: &[u8], piece: usize) -> Result<Archive> {
        let mut s = Scanner::new();
        for p in data.chunks(piece) {
            s.feed(p)?;
        }
        s.finish()
    }

    fn rows(a: &Archive, schema: &str, table: &str) -> Option<u64> {
        let e = a
            .entries
            .iter()
            .find(|e| e.desc == "TABLE DATA" && e.namespace.as_deref() == Some(schema) && e.tag == table)?;
        a.rows.get(&e.id).copied()
    }

    #[test]
    fn the_fixture_reads_the_same_in_pieces_of_any_size() {
        let whole = scan(FIXTURE, FIXTURE.len()).unwrap();
        for piece in [1, 2, 5, 7, 64, 1000, 4096] {
            assert_eq!(scan(FIXTURE, piece).unwrap(), whole, "piece size {piece}");
        }
        assert_eq!(whole.header.dbname, "my_app");
        assert_eq!(whole.header.compression, None);
        assert!(whole.header.server_version.starts_with("15."));
        assert_eq!(whole.entries.len(), 45);
        let t = whole.entries.iter().find(|e| e.desc == "TABLE" && e.tag == "Order Items").unwrap();
        assert_eq!((t.namespace.as_deref(), t.owner.as_deref()), (Some("Sales Dept"), Some("postgres")));
        let s = whole.entries.iter().find(|e| e.desc == "SCHEMA").unwrap();
        assert_eq!((s.tag.as_str(), s.owner.as_deref()), ("Sales Dept", Some("writer")));
        assert_eq!(rows(&whole, "Sales Dept", "Order Items"), Some(1000));
        assert_eq!(rows(&whole, "public", "cust"), Some(2));
        // A value holding a newline is escaped in COPY text: still one row.
        assert_eq!(rows(&whole, "public", "ord"), Some(2));
        assert_eq!(rows(&whole, "public", "meas_2025"), Some(1));
        assert_eq!(rows(&whole, "public", "meas_2026"), Some(2));
        // The COPY text sent to the server, without its terminator.
        let data_bytes = |table: &str| {
            let e = whole.entries.iter().find(|e| e.desc == "TABLE DATA" && e.tag == table).unwrap();
            whole.data_bytes.get(&e.id).copied()
        };
        assert_eq!(data_bytes("cust"), Some(b"1\ta\n2\tb\n".len() as u64));
        assert_eq!(data_bytes("ord"), Some(b"1\t1\tline\\nbreak\n2\t2\ttab\\tx\n".len() as u64));
    }

    #[test]
    fn a_truncated_or_extended_archive_is_refused() {
        for cut in [3, 20, 200, FIXTURE.len() / 2, FIXTURE.len() - 1] {
            let err = scan(&FIXTURE[..cut], 4096).unwrap_err();
            assert!(err.0.contains("ends"), "cut at {cut}: {err}");
        }
        let mut longer = FIXTURE.to_vec();
        longer.extend_from_slice(b"\x07garbage");
        assert!(scan(&longer, 4096).is_err());
        assert!(scan(b"PGDMX\x01\x0e\x00", 4096).unwrap_err().0.contains("PGDMP"));
    }
}

/// Throughput of the scanner on a real dump: `COFFER_SCAN_FILE=dump.pgc
/// cargo test --release --lib scan_throughput -- --ignored --nocapture`.
#[cfg(test)]
#[test]
#[ignore]
fn scan_throughput() {
    let path = std::env::var("COFFER_SCAN_FILE").expect("COFFER_SCAN_FILE");
    let data = std::fs::read(path).expect("read the dump");
    let t = std::time::Instant::now();
    let mut s = Scanner::new();
    for piece in data.chunks(1 << 20) {
        s.feed(piece).expect("archive");
    }
    let a = s.finish().expect("archive");
    let secs = t.elapsed().as_secs_f64();
    let rows: u64 = a.rows.values().sum();
    eprintln!("{} bytes, {rows} rows in {secs:.3} s: {:.2} GB/s", data.len(), data.len() as f64 / secs / 1e9);
}

//! Printing results: human text, or one JSON document on stdout.

use coffer::{
    BackupSummary, Change, DbRestoreSummary, Diff, DrillReport, DumpKind, DumpSource, Entry, EntryKind, ForgetSummary,
    Found, Id, KeyInfo, Manifest, PruneSummary, RepairSummary, Repository, RestoreSummary, SnapshotInfo, Source, Stats,
    StreamSource, VerifySummary,
};
use serde_json::json;

/// println! that never panics on a closed or full stdout; the failure is
/// noted and decides the exit code (`stdout_error`).
/// A line of text on stdout, control characters escaped as `errln!` does
/// (JSON documents are written as they are: serde_json escapes them).
macro_rules! outln {
    ($($arg:tt)*) => {{
        let line = format!($($arg)*);
        write_stdout(&terminal_safe(&line, true));
    }};
}

/// The first failed write to stdout (a full disk, a closed pipe): the
/// command then exits with `exit::OUTPUT` instead of 0, as a report that
/// did not reach its reader is not a success to a script.
static STDOUT_ERROR: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

fn write_stdout(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{line}").and_then(|()| out.flush()) {
        Ok(()) => {}
        // The reader left (`coffer ls -R latest | head`): exit non-zero, as a
        // tool killed by SIGPIPE would, but without a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => note_stdout_error(String::new()),
        Err(e) => note_stdout_error(format!("cannot write to standard output: {e}")),
    }
}

fn note_stdout_error(message: String) {
    if let Ok(mut first) = STDOUT_ERROR.lock() {
        first.get_or_insert(message);
    }
}

/// With `--json`, an error is a JSON document on stdout too (besides the
/// line on stderr), so a script reading stdout never parses nothing.
pub fn json_error(kind: &str, message: &str, hint: Option<&str>, exit_code: u8) {
    let doc = json!({"error": {"kind": kind, "message": message, "hint": hint, "exit_code": exit_code}});
    if let Ok(text) = serde_json::to_string_pretty(&doc) {
        write_stdout(&text);
    }
}

/// Why the output was lost, if it was.
pub fn stdout_error() -> Option<String> {
    STDOUT_ERROR.lock().ok().and_then(|e| e.clone())
}

/// `text` with every control character (C0 but `\n` when `keep_newlines`,
/// DEL, C1) and every bidirectional override written as an escape (`\x1b`,
/// `\u{202e}`), so that what a name holds is shown, not obeyed.
pub fn terminal_safe(text: &str, keep_newlines: bool) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        (c.is_control() && !(keep_newlines && c == '\n'))
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            c if !unsafe_char(c) => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A stored name for one line of text: newlines escaped too.
fn name(text: &str) -> std::borrow::Cow<'_, str> {
    terminal_safe(text, false)
}
use std::path::Path;

fn mtime(ns: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000) as u32)
        .unwrap_or_default()
}

/// `ls -l`'s mode column: the kind, then rwx for owner, group and others
/// (setuid, setgid and sticky as s/S, s/S, t/T).
fn mode_string(kind: EntryKind, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(kind_letter(kind));
    let special = [(0o4000, 's'), (0o2000, 's'), (0o1000, 't')];
    for (i, (bit, letter)) in special.into_iter().enumerate() {
        let shift = 6 - 3 * i as u32;
        let (r, w, x) = (mode >> shift & 4 != 0, mode >> shift & 2 != 0, mode >> shift & 1 != 0);
        s.push(if r { 'r' } else { '-' });
        s.push(if w { 'w' } else { '-' });
        s.push(match (mode & bit != 0, x) {
            (true, true) => letter,
            (true, false) => letter.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// `ls -l`'s letter for a kind of entry.
fn kind_letter(kind: EntryKind) -> char {
    match kind {
        EntryKind::File => '-',
        EntryKind::Dir => 'd',
        EntryKind::Symlink => 'l',
        EntryKind::Fifo => 'p',
        EntryKind::Socket => 's',
        EntryKind::CharDevice => 'c',
        EntryKind::BlockDevice => 'b',
    }
}

/// A database dump's tables, from its table of contents.
fn tables(d: &DumpSource) -> usize {
    d.toc.iter().filter(|e| e.desc == "TABLE").count()
}

pub struct Output {
    pub json: bool,
    pub quiet: bool,
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A versioned bucket keeps what prune deletes: say so, with the fix.
fn versioning_warning(s: &PruneSummary) {
    if let Some(status) = &s.bucket_versioning {
        errln!(
            "coffer: warning: the bucket's versioning is {status}: deleted packs and indexes stay stored as noncurrent \
             versions until a lifecycle rule with NoncurrentVersionExpiration removes them (docs/OPERATIONS.md)"
        );
    }
}

/// "1 file", "2 files", "1 index", "3 indexes", "2 entries".
fn count(n: impl Into<u64>, what: &str) -> String {
    let n = n.into();
    // "entry" → "entries", but "key" → "keys": -ies only after a consonant.
    let consonant_y = what.strip_suffix('y').filter(|stem| !stem.ends_with(['a', 'e', 'i', 'o', 'u']));
    match (n, consonant_y) {
        (1, _) => format!("1 {what}"),
        (_, Some(stem)) => format!("{n} {stem}ies"),
        _ if what.ends_with('x') => format!("{n} {what}es"),
        _ => format!("{n} {what}s"),
    }
}

impl Output {
    /// The one place that chooses: `value` as JSON with `--json`, else the text.
    fn report<T: serde::Serialize + ?Sized>(&self, value: &T, text: impl FnOnce()) {
        if !self.json {
            return text();
        }
        // Exact: serde_json escapes control characters itself.
        match serde_json::to_string_pretty(value) {
            Ok(doc) => write_stdout(&doc),
            Err(e) => note_stdout_error(format!("cannot write the report as JSON: {e}")),
        }
    }

    fn say(&self, text: &str) {
        if !self.quiet {
            outln!("{text}");
        }
    }

    pub fn init(&self, repo: &Repository) {
        self.report(&json!({"repository": repo.location(), "id": repo.config().id}), || {
            self.say(&format!("created repository {} at {}", repo.config().id.short(), repo.location()));
        });
    }

    pub fn backup(&self, s: &BackupSummary) {
        self.report(s, || {
            let st = &s.stats;
            let head = match &s.snapshot {
                Some(id) => format!("snapshot {} saved", id.short()),
                None => "dry run: nothing was written".to_string(),
            };
            let verb = if s.dry_run { "would add" } else { "added" };
            self.say(&format!(
                "{head}\n  {}, {}, {}, {}{}, {} read in {:.1}s ({}/s)\n  {verb} {}, {} new data, {} stored after compression and encryption",
                count(st.files, "file"),
                count(st.dirs, "dir"),
                count(st.symlinks, "symlink"),
                count(st.databases, "database"),
                if st.streams > 0 { format!(", {}", count(st.streams, "stream")) } else { String::new() },
                bytes(st.bytes),
                st.duration_secs,
                bytes((st.bytes as f64 / st.duration_secs.max(1e-3)) as u64),
                count(st.new_chunks, "new chunk"),
                bytes(st.new_bytes),
                bytes(st.stored_bytes),
            ));
            if !s.unreadable.is_empty() {
                self.say(&format!("  {} could not be read (listed above)", count(s.unreadable.len() as u64, "path")));
            }
            if let Some(b) = &s.pg_base {
                let state = if b.missing.is_empty() {
                    "archived here".to_string()
                } else {
                    format!("not archived here yet ({} missing)", count(b.missing.len() as u64, "segment"))
                };
                self.say(&format!("  base backup pg-base/{}: WAL {}..{} {state}", b.stanza, b.start_wal, b.stop_wal));
            }
        });
    }

    pub fn restore_base(&self, s: &coffer::BaseRestoreSummary) {
        self.report(s, || {
            let short = &s.snapshot[..8.min(s.snapshot.len())];
            let dir = s.target.display();
            if s.dry_run {
                self.say(&format!(
                    "dry run: nothing was written\n  base backup pg-base/{} of snapshot {short}: {}, {} read and checked\n  \
                     WAL from {}: {} read and checked, newest {}",
                    s.stanza,
                    count(s.files, "file"),
                    bytes(s.bytes),
                    s.start_wal,
                    count(s.wal_segments_checked, "segment"),
                    s.newest_wal.as_deref().unwrap_or("none"),
                ));
                return;
            }
            self.say(&format!(
                "restored base backup pg-base/{} of snapshot {short} into {dir}: {}, {}\n  consistent once WAL {}..{} is replayed; recovery settings in postgresql.auto.conf:",
                s.stanza,
                count(s.files, "file"),
                bytes(s.bytes),
                s.start_wal,
                s.stop_wal,
            ));
            for (k, v) in &s.settings {
                self.say(&format!("    {k} = '{}'", v.replace('\'', "''")));
            }
            if s.settings.iter().any(|(k, v)| k == "recovery_target_action" && v == "pause") {
                self.say(
                    "  at the target it pauses, read-only: check it, then `SELECT pg_wal_replay_resume()` promotes it \
                     (or stop it and restore again to another target)",
                );
            }
            if s.target.join("postgresql.conf").is_file() {
                self.say(&format!(
                    "  start it, as the user owning it (check its port and paths first):\n    pg_ctl -D {} -l {}/recovery.log start",
                    coffer::shell_quote(&dir.to_string()),
                    coffer::shell_quote(&dir.to_string()),
                ));
            } else {
                // Debian's clusters keep postgresql.conf in /etc/postgresql:
                // pg_ctl -D alone would not find one.
                self.say(
                    "  it has no postgresql.conf (Debian keeps it in /etc/postgresql/VERSION/CLUSTER/): start the \
                     cluster it belongs to (pg_ctlcluster VERSION CLUSTER start), which reads postgresql.auto.conf from here",
                );
            }
        });
    }

    pub fn snapshots(&self, list: &[(Id, SnapshotInfo)]) {
        let v: Vec<_> = list
            .iter()
            .map(|(id, m)| {
                json!({"id": id, "time": m.time, "host": m.host, "tags": m.tags, "paths": m.source_names(),
                       "parent": m.parent, "summary": m.summary, "warnings": m.warning_count})
            })
            .collect();
        self.report(&v, || {
            outln!("{:<10} {:<20} {:<16} {:<16} {:>10}  paths", "id", "time (UTC)", "host", "tags", "size");
            for (id, m) in list {
                outln!(
                    "{:<10} {:<20} {:<16} {:<16} {:>10}  {}",
                    id.short(),
                    m.time.format("%Y-%m-%d %H:%M:%S"),
                    m.host,
                    m.tags.join(","),
                    bytes(m.summary.bytes),
                    name(&m.source_names().join(" "))
                );
            }
            self.say(&count(list.len() as u64, "snapshot"));
        });
    }

    pub fn show(&self, id: &Id, m: &Manifest) {
        self.report(&json!({"id": id, "manifest": m}), || {
            outln!(
                "snapshot {id}\n  time {}\n  host {}\n  tags {}\n  tool {}",
                m.time,
                m.host,
                m.tags.join(","),
                m.tool
            );
            if let Some(p) = &m.parent {
                outln!("  parent {}", p.short());
            }
            let s = &m.summary;
            outln!(
                "  {}, {}, {}, {} ({} new, {} stored), took {:.1}s",
                count(s.files, "file"),
                count(s.dirs, "dir"),
                count(s.symlinks, "symlink"),
                bytes(s.bytes),
                bytes(s.new_bytes),
                bytes(s.stored_bytes),
                s.duration_secs
            );
            for w in &m.warnings {
                outln!("  warning: {}", name(w));
            }
            for src in &m.sources {
                match src {
                    Source::Stream(c) => outln!(
                        "stream {} ({}) from `{}`, took {:.1}s, {} {}",
                        name(&c.name),
                        bytes(c.size),
                        name(&c.command),
                        c.duration_secs,
                        c.digest().map_or("checksum", |(a, _)| a.name()),
                        c.digest().map_or("none", |(_, h)| h),
                    ),
                    Source::Postgres(d) => {
                        outln!(
                            "postgres {} ({:?}, {} format, {}) from {}\n  server {}, pg_dump {}, took {:.1}s, {} {}",
                            name(&d.name),
                            d.kind,
                            d.format,
                            bytes(d.size),
                            name(&d.server),
                            d.server_version,
                            d.pg_dump_version,
                            d.duration_secs,
                            d.digest().map_or("checksum", |(a, _)| a.name()),
                            d.digest().map_or("none", |(_, h)| h),
                        );
                        for e in d.toc.iter().filter(|e| {
                            matches!(
                                e.desc.as_str(),
                                "SCHEMA" | "TABLE" | "VIEW" | "MATERIALIZED VIEW" | "SEQUENCE" | "FUNCTION"
                            )
                        }) {
                            outln!("  {:<18} {}.{}", e.desc, name(e.schema.as_deref().unwrap_or("-")), name(&e.name));
                        }
                    }
                    Source::Tree(t) => {
                        outln!("tree {}", name(&t.path.display()));
                        for e in &t.entries {
                            let kind = kind_letter(e.kind);
                            let target =
                                e.target.as_ref().map(|t| format!(" -> {}", name(&t.display()))).unwrap_or_default();
                            outln!(
                                "  {kind}{:04o} {:>6}:{:<6} {:>10}  {}{target}",
                                e.mode,
                                e.uid,
                                e.gid,
                                e.size,
                                name(&e.path.display())
                            );
                        }
                    }
                }
            }
        });
    }

    pub fn restore(&self, s: &RestoreSummary, target: &Path) {
        // Warnings go to stderr, with --json too.
        for n in &s.not_restored {
            errln!("coffer: warning: not restored: {}", name(n));
        }
        self.report(s, || {
            let verb = if s.dry_run { "would restore" } else { "restored" };
            self.say(&format!(
                "{verb} {}, {}, {}, {} into {} ({} checked, {:.1}s)",
                count(s.files, "file"),
                count(s.dirs, "dir"),
                count(s.symlinks, "symlink"),
                bytes(s.bytes),
                target.display(),
                count(s.chunks_checked, "chunk"),
                s.duration_secs
            ));
            if !s.overwritten.is_empty() {
                let verb = if s.dry_run { "would overwrite" } else { "overwrote" };
                self.say(&format!("{verb} {}:", count(s.overwritten.len() as u64, "existing path")));
                for p in &s.overwritten {
                    self.say(&format!("  {p}"));
                }
            }
        });
    }

    pub fn restore_databases(&self, s: &DbRestoreSummary) {
        self.report(s, || {
            for d in &s.databases {
                let data = match (d.rows, d.data_bytes) {
                    (Some(n), Some(b)) => format!("{} ({} of table data)", count(n, "row"), bytes(b)),
                    (Some(n), None) => count(n, "row"),
                    _ => String::new(),
                };
                let rows = if data.is_empty() { data.clone() } else { format!(", {data}") };
                if s.dry_run {
                    self.say(&format!(
                        "dry run: the dump of {} ({}, {}) decrypts, matches its checksum and parses; nothing was written",
                        d.name,
                        bytes(d.bytes),
                        count(d.chunks_checked, "chunk")
                    ));
                    if !d.objects.is_empty() {
                        self.say(&format!("  {} would be restored{rows}:", count(d.objects.len() as u64, "archive entry")));
                        for e in &d.objects {
                            self.say(&format!("    {:<18} {}.{}", e.desc, e.schema.as_deref().unwrap_or("-"), e.name));
                        }
                    }
                } else if !d.objects.is_empty() {
                    // A part: what was restored is the entries listed, not the
                    // whole dump (read and checked whole, and named as such).
                    let part_rows = if data.is_empty() { data.clone() } else { format!(" with {data}") };
                    self.say(&format!(
                        "restored {}{part_rows} of the dump of {} into {} in {:.1}s (the whole dump, {}, was read and checked):",
                        count(d.objects.len() as u64, "archive entry"),
                        d.name,
                        d.target,
                        d.duration_secs,
                        bytes(d.bytes)
                    ));
                    for e in &d.objects {
                        let r = e.rows.map(|n| format!(" ({})", count(n, "row"))).unwrap_or_default();
                        self.say(&format!("    {:<18} {}.{}{r}", e.desc, e.schema.as_deref().unwrap_or("-"), e.name));
                    }
                } else {
                    let rows = d.rows.map(|n| format!(", {}", count(n, "row"))).unwrap_or_default();
                    self.say(&format!(
                        "restored {} ({}{rows}) into {} in {:.1}s",
                        d.name,
                        bytes(d.bytes),
                        d.target,
                        d.duration_secs
                    ));
                }
                for k in &d.skipped {
                    errln!("coffer: {}: not restored: {k}", d.name);
                }
            }
        });
    }

    pub fn ls(&self, entries: &[&Entry], dumps: &[&DumpSource], streams: &[&StreamSource], long: bool) {
        let v: Vec<_> = entries
            .iter()
            .map(|e| {
                let mut v = json!({"path": e.path.display(), "kind": e.kind, "mode": e.mode, "uid": e.uid, "gid": e.gid,
                       "size": e.size, "mtime": mtime(e.mtime_ns).to_rfc3339(), "target": e.target.as_ref().map(|t| t.display())});
                if let Some(b) = e.path.base64_unless_utf8() {
                    v["path_base64"] = b.into();
                }
                if let Some(b) = e.target.as_ref().and_then(|t| t.base64_unless_utf8()) {
                    v["target_base64"] = b.into();
                }
                v
            })
            .collect();
        let d: Vec<_> = dumps
            .iter()
            .map(|d| json!({"name": d.name, "kind": d.kind, "size": d.size, "tables": tables(d)}))
            .collect();
        let st: Vec<_> =
            streams.iter().map(|c| json!({"name": c.name, "command": c.command, "size": c.size})).collect();
        self.report(&json!({"entries": v, "databases": d, "streams": st}), || {
            for e in entries {
                let shown = format!(
                    "/{}{}{}",
                    name(&e.path.display()),
                    if e.kind == EntryKind::Dir { "/" } else { "" },
                    e.target.as_ref().map(|t| format!(" -> {}", name(&t.display()))).unwrap_or_default()
                );
                if long {
                    outln!(
                        "{} {:>6} {:>6} {:>10} {}  {shown}",
                        mode_string(e.kind, e.mode),
                        e.uid,
                        e.gid,
                        e.size,
                        mtime(e.mtime_ns).format("%Y-%m-%d %H:%M:%S")
                    );
                } else {
                    outln!("{shown}");
                }
            }
            for d in dumps {
                let what = match d.kind {
                    DumpKind::Database => format!("database {}", name(&d.name)),
                    DumpKind::Globals => "globals (roles, tablespaces)".to_string(),
                };
                let t = tables(d);
                let tables = if d.kind == DumpKind::Database {
                    format!(", {}", count(t as u64, "table"))
                } else {
                    String::new()
                };
                outln!("{what}  ({}{tables})", bytes(d.size));
            }
            for c in streams {
                outln!("stream {}  ({}, from `{}`)", name(&c.name), bytes(c.size), name(&c.command));
            }
        });
    }

    pub fn ls_database(&self, d: &DumpSource) {
        self.report(&json!({"database": d.name, "size": d.size, "objects": d.toc}), || {
            for e in &d.toc {
                let rows = e.rows.map(|n| format!("  {}", count(n, "row"))).unwrap_or_default();
                let object = match &e.schema {
                    Some(s) if !s.is_empty() => format!("{}.{}", name(s), name(&e.name)),
                    _ => name(&e.name).into_owned(),
                };
                outln!("{:<18} {object}{rows}", e.desc);
            }
        });
    }

    pub fn find(&self, found: &[Found]) {
        self.report(found, || {
            for f in found {
                outln!(
                    "snapshot {} {} {}",
                    &f.snapshot[..8.min(f.snapshot.len())],
                    f.time.format("%Y-%m-%d %H:%M:%S"),
                    name(&f.host)
                );
                for e in &f.entries {
                    let dir = if e.kind == EntryKind::Dir { "/" } else { "" };
                    outln!(
                        "  {:>10}  {}  /{}{dir}",
                        e.size,
                        mtime(e.mtime_ns).format("%Y-%m-%d %H:%M:%S"),
                        name(&e.path)
                    );
                }
            }
            if found.is_empty() {
                errln!("coffer: no snapshot holds a path matching the pattern");
            }
        });
    }

    pub fn stats(&self, s: &Stats) {
        self.report(s, || {
            outln!(
                "{}: {} backed up, {} after deduplication ({:.1}x), {} stored after compression ({:.1}x); {} of packs in all",
                count(s.snapshots as u64, "snapshot"),
                bytes(s.logical_bytes),
                bytes(s.unique_bytes),
                s.dedup_ratio,
                bytes(s.stored_bytes),
                s.compression_ratio,
                bytes(s.repository_bytes)
            );
            for src in &s.sources {
                outln!(
                    "  {}  {} in {}, {} unique, {} stored",
                    name(&src.name),
                    bytes(src.logical_bytes),
                    count(src.snapshots as u64, "snapshot"),
                    bytes(src.unique_bytes),
                    bytes(src.stored_bytes)
                );
            }
        });
    }

    pub fn diff(&self, d: &Diff) {
        self.report(d, || {
            for e in &d.entries {
                let size = match (e.old_size, e.new_size) {
                    (Some(a), Some(b)) if a != b => format!("  ({} -> {})", bytes(a), bytes(b)),
                    (_, Some(b)) if e.change == Change::Added => format!("  ({})", bytes(b)),
                    (Some(a), None) => format!("  ({})", bytes(a)),
                    _ => String::new(),
                };
                let dir = if e.kind == EntryKind::Dir { "/" } else { "" };
                outln!("{}    /{}{dir}{size}", e.change.letter(), name(&e.path));
            }
            for db in &d.databases {
                let size = match (db.old_size, db.new_size) {
                    (Some(a), Some(b)) => format!("  ({} -> {})", bytes(a), bytes(b)),
                    (a, b) => format!("  ({})", bytes(a.or(b).unwrap_or(0))),
                };
                outln!("{}    database {}{size}", db.change.letter(), name(&db.name));
            }
            for c in &d.streams {
                outln!("{}    stream {}", c.change.letter(), name(&c.name));
            }
            let n = |c: Change| d.entries.iter().filter(|e| e.change == c).count() as u64;
            self.say(&format!(
                "{} -> {}: {} added, {} removed, {} changed, {} with new metadata; {} databases changed; {} added, {} removed",
                &d.from[..8.min(d.from.len())],
                &d.to[..8.min(d.to.len())],
                n(Change::Added),
                n(Change::Removed),
                n(Change::Modified) + n(Change::Type),
                n(Change::Metadata),
                d.databases.len(),
                bytes(d.bytes_added),
                bytes(d.bytes_removed)
            ));
        });
    }

    pub fn drill(&self, r: &DrillReport) {
        self.report(r, || {
            self.say(&format!(
                "drill {}: database {} of snapshot {} ({}) into scratch database {}",
                if r.passed { "PASSED" } else { "FAILED" },
                r.database,
                &r.snapshot[..8.min(r.snapshot.len())],
                bytes(r.bytes),
                r.scratch_database
            ));
            self.say(&format!(
                "  download {:.1}s, restore {:.1}s, checks {:.1}s, total {:.1}s; scratch database {}",
                r.download_secs,
                r.restore_secs,
                r.check_secs,
                r.total_secs,
                if r.dropped { "dropped" } else { "NOT dropped" }
            ));
            self.say(&format!(
                "  {} counted ({} compared with the dump), {} run",
                count(r.tables.len() as u64, "table"),
                r.tables_compared,
                count(r.checks_run as u64, "check")
            ));
            for t in &r.tables {
                let expected = match t.expected {
                    Some(n) if n == t.rows => "  (as dumped)".to_string(),
                    Some(n) => format!("  (MISMATCH: the dump holds {n})"),
                    None => String::new(),
                };
                self.say(&format!("  {:>12} rows  {}.{}{expected}", t.rows, t.schema, t.table));
            }
            for c in &r.checks {
                self.say(&format!("  check {} line {}: {}", if c.passed { "ok  " } else { "FAIL" }, c.line, c.query));
            }
            for s in &r.skipped {
                self.say(&format!("  not restored: {s}"));
            }
            for l in &r.leftovers {
                errln!("coffer: warning: scratch database {l} of an earlier drill is still on the server");
            }
        });
    }

    pub fn drill_pitr(&self, r: &coffer::PitrDrillReport) {
        self.report(r, || {
            self.say(&format!(
                "drill {}: base backup pg-base/{} of snapshot {} ({}, {}) recovered to {}",
                if r.passed { "PASSED" } else { "FAILED" },
                r.stanza,
                &r.snapshot[..8.min(r.snapshot.len())],
                count(r.files, "file"),
                bytes(r.bytes),
                r.target.as_deref().unwrap_or("the end of the archived WAL"),
            ));
            self.say(&format!(
                "  files {:.1}s, WAL replay {:.1}s, checks {:.1}s, total {:.1}s; scratch folder {}",
                r.files_secs,
                r.replay_secs,
                r.check_secs,
                r.total_secs,
                if r.cleaned_up { "removed" } else { "NOT removed" }
            ));
            if let Some(stop) = &r.recovery_stop {
                self.say(&format!("  the server: {stop}"));
            }
            if let Some(t) = &r.recovered_to {
                self.say(&format!("  last transaction replayed: {t}"));
            }
            self.say(&format!(
                "  {} read in {}, {} run",
                count(r.tables.len() as u64, "table"),
                count(r.databases.len() as u64, "database"),
                count(r.checks_run as u64, "check")
            ));
            for c in &r.checks {
                self.say(&format!("  check {} line {}: {}", if c.passed { "ok  " } else { "FAIL" }, c.line, c.query));
            }
            if !r.cleaned_up {
                errln!("coffer: warning: the scratch folder {} is still there", r.scratch.display());
            }
        });
    }

    pub fn keys(&self, keys: &[KeyInfo]) {
        self.report(keys, || {
            for k in keys {
                outln!(
                    "{} {}  {}  {:<10}  {:<10}  {}",
                    if k.current { '*' } else { ' ' },
                    &k.name[..12.min(k.name.len())],
                    k.created.format("%Y-%m-%d %H:%M:%S"),
                    k.kind,
                    k.access,
                    k.host
                );
            }
        });
    }

    pub fn wal_pushed(&self, s: &coffer::WalPushSummary) {
        self.report(s, || {
            if s.already_archived {
                self.say(&format!("WAL file {} was already archived in stanza {} with these bytes", s.name, s.stanza));
            } else {
                self.say(&format!(
                    "archived WAL file {} in stanza {}: {} stored as {}",
                    s.name,
                    s.stanza,
                    bytes(s.bytes),
                    bytes(s.stored_bytes)
                ));
            }
        });
    }

    pub fn wal_fetched(&self, s: &coffer::WalFetchSummary) {
        self.report(s, || {
            self.say(&format!("fetched WAL file {} from stanza {}: {}", s.name, s.stanza, bytes(s.bytes)))
        });
    }

    pub fn key_changed(&self, what: &str, name: &str) {
        self.report(&json!({ "key": name, "action": what }), || {
            self.say(&format!("{what} {}", &name[..12.min(name.len())]));
        });
    }

    pub fn forget(&self, s: &ForgetSummary) {
        self.report(s, || {
            for id in &s.forgotten_ids {
                self.say(&format!("  {}  {}", if s.dry_run { "would forget" } else { "forget  " }, &id[..8]));
            }
            for g in &s.groups {
                self.say(&format!("host {}, sources {}:", g.host, g.sources.join(" ")));
                for k in &g.keep {
                    self.say(&format!(
                        "  keep    {}  {}  ({})",
                        &k.id[..8],
                        k.time.format("%Y-%m-%d %H:%M:%S"),
                        k.reasons.join(", ")
                    ));
                }
                for r in &g.remove {
                    self.say(&format!(
                        "  {}  {}  {}",
                        if s.dry_run { "would forget" } else { "forget  " },
                        &r.id[..8],
                        r.time.format("%Y-%m-%d %H:%M:%S")
                    ));
                }
            }
            for r in &s.retained {
                self.say(&format!(
                    "  retained {}  Object Lock keeps it until {}: a later forget removes it",
                    &r.id[..8.min(r.id.len())],
                    r.until.format("%Y-%m-%d %H:%M:%S")
                ));
            }
            let verb = if s.dry_run { "would forget" } else { "forgot" };
            self.say(&format!(
                "kept {}, {verb} {}{}; their data stays until prune",
                count(s.kept as u64, "snapshot"),
                s.removed,
                if s.retained.is_empty() {
                    String::new()
                } else {
                    format!(", {} retained by Object Lock", s.retained.len())
                }
            ));
        });
    }

    /// An estimate: planning (already made) and work (not made), the two
    /// together as the real run would make them, and the money.
    pub fn estimate(&self, e: &coffer::Estimate, prices: Option<(&coffer::Prices, &Path)>) {
        let total = e.total();
        let cost = prices.map(|(p, _)| p.cost(&total));
        let doc = json!({"estimate": {
            "operation": e.operation,
            "planning": e.planning,
            "work": e.work,
            "total": total,
            "local_write_bytes": e.local_write_bytes,
            "approximate": e.approximate,
            "cost": cost,
        }});
        self.report(&doc, || {
            let mut text = format!(
                "estimate for {} (nothing else was done):\n{:10}{:>7}{:>7}{:>7}{:>7}{:>11}{:>11}",
                e.operation, "", "GET", "LIST", "PUT", "DELETE", "download", "upload"
            );
            for (what, r) in [("planning", &e.planning), ("work", &e.work), ("in all", &total)] {
                text += &format!(
                    "\n  {what:8}{:>7}{:>7}{:>7}{:>7}{:>11}{:>11}",
                    r.get,
                    r.list,
                    r.put,
                    r.delete,
                    bytes(r.download_bytes),
                    bytes(r.upload_bytes)
                );
            }
            text += "\n  (this estimate made the planning requests; the real run makes them again)";
            if e.local_write_bytes > 0 {
                text += &format!("\n  writes {} to local disk", bytes(e.local_write_bytes));
            }
            if let (Some(c), Some((_, path))) = (&cost, prices) {
                text += &format!(
                    "\n  cost: {:.4} {} (requests {:.4}, transfer {:.4})\n  prices from {}",
                    c.total,
                    c.currency,
                    c.requests,
                    c.transfer,
                    path.display()
                );
            }
            for why in &e.approximate {
                text += &format!("\n  approximate: {why}");
            }
            self.say(&text);
        });
    }

    pub fn prune(&self, s: &PruneSummary) {
        versioning_warning(s);
        self.report(s, || {
            self.say(&self.prune_text(s));
        });
    }

    fn prune_text(&self, s: &PruneSummary) -> String {
        let verb = if s.dry_run { "would delete" } else { "deleted" };
        format!(
            "prune: {verb} {} unused packs and {} left by interrupted backups, repacked {} into {} new; {} -> {} ({} reclaimed)",
            s.packs_deleted,
            s.packs_unindexed,
            s.packs_repacked,
            s.packs_written,
            bytes(s.bytes_before),
            bytes(s.bytes_after),
            bytes(s.bytes_reclaimed)
        ) + &if s.wal_deleted > 0 {
            format!(
                "\nprune: {verb} {} of archived WAL ({}) that no kept base backup needs",
                count(s.wal_deleted as u64, "file"),
                bytes(s.wal_bytes_reclaimed)
            )
        } else {
            String::new()
        } + &match s.retained_until {
            Some(until) => format!(
                "\nprune: left {} ({}) that Object Lock retains until {} at the latest: a later prune removes them",
                count(s.retained_objects as u64, "object"),
                bytes(s.retained_bytes),
                until.format("%Y-%m-%d %H:%M:%S")
            ),
            None => String::new(),
        }
    }

    pub fn forget_and_prune(&self, f: &ForgetSummary, p: &PruneSummary) {
        versioning_warning(p);
        self.report(&json!({ "forget": f, "prune": p }), || {
            self.forget(f);
            self.say(&self.prune_text(p));
        });
    }

    pub fn unlocked(&self, n: usize) {
        self.report(&json!({ "removed_locks": n }), || {
            self.say(&format!("removed {}", count(n as u64, "lock")));
        });
    }

    pub fn repair(&self, s: &RepairSummary) {
        self.report(s, || {
            for problem in s.indexes_unreadable.iter().chain(&s.packs_damaged) {
                errln!("coffer: {problem}");
            }
            for problem in &s.snapshots_unreadable {
                errln!("coffer: {problem} (repair cannot tell what it held; `coffer forget` with its id deletes it)");
            }
            for pack in &s.packs_lost {
                errln!("coffer: pack {pack} is missing");
            }
            // What was lost is the point of the report: every path, not a sample.
            for r in &s.snapshots_repaired {
                let what: Vec<String> =
                    r.files.iter().cloned().chain(r.databases.iter().map(|d| format!("database {d}"))).collect();
                let after = match (&r.new_snapshot, s.dry_run) {
                    (_, true) => String::new(),
                    (Some(new), _) => format!("; the rest is now snapshot {}", &new[..8.min(new.len())]),
                    (None, _) => "; nothing was left, the snapshot is deleted".to_string(),
                };
                errln!(
                    "coffer: snapshot {}: {} {} (data lost){after}",
                    &r.snapshot[..8.min(r.snapshot.len())],
                    if s.dry_run { "would remove" } else { "removed" },
                    what.join(", ")
                );
            }
            if s.is_clean() {
                self.say(&format!(
                    "repair: {} ({} read whole) and {} sound, nothing to repair",
                    count(s.packs as u64, "pack"),
                    s.packs_read,
                    count(s.snapshots as u64, "snapshot")
                ));
                return;
            }
            let mut found = Vec::new();
            if s.packs_adopted > 0 {
                found.push(format!("{} no index named", count(s.packs_adopted as u64, "pack")));
            }
            if !s.packs_lost.is_empty() {
                found.push(format!("{} missing", count(s.packs_lost.len() as u64, "pack")));
            }
            if !s.packs_damaged.is_empty() {
                found.push(format!(
                    "{} damaged ({} salvaged into {} new)",
                    count(s.packs_damaged.len() as u64, "pack"),
                    count(s.chunks_salvaged as u64, "chunk"),
                    s.packs_written
                ));
            }
            if !s.indexes_unreadable.is_empty() {
                found.push(format!("{} unreadable", count(s.indexes_unreadable.len() as u64, "index")));
            }
            let index = match (found.is_empty(), s.dry_run) {
                (true, _) => "index sound".to_string(),
                (false, true) => format!("would rebuild the index: {}", found.join(", ")),
                (false, false) => format!("rebuilt the index: {}", found.join(", ")),
            };
            self.say(&format!(
                "repair: {} ({} read whole); {index}; {} {} of {}",
                count(s.packs as u64, "pack"),
                s.packs_read,
                if s.dry_run { "would rewrite" } else { "rewrote" },
                s.snapshots_repaired.len(),
                count(s.snapshots as u64, "snapshot"),
            ));
        });
    }

    pub fn copy(&self, s: &coffer::CopySummary) {
        self.report(s, || {
            let verb = if s.dry_run { "would copy" } else { "copied" };
            let short = |id: &str| id[..8.min(id.len())].to_string();
            for c in &s.snapshots {
                let time = c.time.format("%Y-%m-%d %H:%M:%S");
                match (&c.copy, c.already_copied) {
                    (Some(copy), true) => {
                        self.say(&format!("{} ({time}): already in {} as {}", short(&c.source), s.to, short(copy)))
                    }
                    (copy, _) => self.say(&format!(
                        "{} ({time}): {verb}{}: {} of {} new ({})",
                        short(&c.source),
                        copy.as_deref().map(|c| format!(" as {}", short(c))).unwrap_or_default(),
                        c.new_chunks,
                        count(c.chunks, "chunk"),
                        bytes(c.new_bytes)
                    )),
                }
            }
            let wal = if s.wal_files + s.wal_present > 0 {
                format!(
                    "; {} of WAL ({}), {} already there",
                    count(s.wal_files, "file"),
                    bytes(s.wal_bytes),
                    s.wal_present
                )
            } else {
                String::new()
            };
            self.say(&format!(
                "{verb} {} into {} ({} already there): {} read, {} new ({}), {} of packs{wal}, in {:.1}s",
                count(s.copied, "snapshot"),
                s.to,
                s.already_copied,
                count(s.chunks_read, "chunk"),
                s.new_chunks,
                bytes(s.new_bytes),
                bytes(s.stored_bytes),
                s.duration_secs
            ));
        });
    }

    pub fn verify(&self, s: &VerifySummary) {
        self.report(s, || {
            self.say(&format!(
                "checked {}, {}, {}, {} ({} read, {} decrypted) in {:.1}s: {}",
                count(s.keys as u64, "key"),
                count(s.indexes as u64, "index"),
                count(s.snapshots as u64, "snapshot"),
                count(s.packs as u64, "pack"),
                s.packs_read,
                count(s.chunks_checked, "chunk"),
                s.duration_secs,
                if s.errors.is_empty() { "no errors".to_string() } else { count(s.errors.len() as u64, "error") }
            ));
            if s.base_backups > 0 {
                self.say(&format!("{} with its WAL range archived", count(s.base_backups as u64, "base backup")));
            }
            if s.wal_files_read > 0 {
                self.say(&format!("read back {} of the WAL archive", count(s.wal_files_read as u64, "file")));
            }
            for st in &s.wal {
                let lines: Vec<String> = st
                    .timelines
                    .iter()
                    .map(|t| {
                        format!("timeline {}: {} ({}..{})", t.timeline, count(t.segments, "segment"), t.first, t.last)
                    })
                    .collect();
                self.say(&format!(
                    "WAL stanza {}: {}; newest {}{}",
                    st.stanza,
                    if lines.is_empty() { "no segments".to_string() } else { lines.join(", ") },
                    st.newest.as_deref().unwrap_or("-"),
                    st.newest_age_secs.map_or(String::new(), |a| format!(", {:.0} s ago", a))
                ));
            }
        });
    }
}

/// A live line on a terminal (stderr) while a command works: a bar, the
/// percentage, bytes of the total, items of the total, rate and ETA
/// (h:mm:ss) when the totals are known; a spinner with what was done so far
/// when they are not (a database dump). Nothing at all without a terminal.
/// Fits 80 columns.
pub struct ProgressBar {
    bar: Option<indicatif::ProgressBar>,
    state: std::sync::Mutex<BarState>,
}

#[derive(Default)]
struct BarState {
    unit: &'static str,
    items: u64,
    done: u64,
    bytes_known: bool,
    bytes: u64,
}

impl ProgressBar {
    /// Drawn only when `enabled` (a terminal, neither --json nor --quiet).
    pub fn new(enabled: bool) -> Self {
        let bar = enabled.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(std::time::Duration::from_millis(200));
            bar
        });
        ProgressBar { bar, state: Default::default() }
    }

    /// For commands whose output is the terminal's: on when stderr is one.
    pub fn for_terminal(out: &Output) -> Self {
        use std::io::IsTerminal;
        ProgressBar::new(!out.json && !out.quiet && std::io::stderr().is_terminal())
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn message(st: &BarState) -> String {
        match (st.items, st.bytes_known) {
            (0, false) => format!("{} {}, {}", st.done, st.unit, bytes(st.bytes)),
            (0, true) => format!("{} {}", st.done, st.unit),
            (n, _) => format!("{}/{n} {}", st.done, st.unit),
        }
    }
}

impl Drop for ProgressBar {
    fn drop(&mut self) {
        self.finish();
    }
}

impl coffer::Progress for ProgressBar {
    fn wants_total(&self) -> bool {
        self.bar.is_some()
    }

    fn start(&self, unit: &'static str, items: u64, total_bytes: u64) {
        let Some(b) = &self.bar else { return };
        let Ok(mut st) = self.state.lock() else { return };
        *st = BarState { unit, items, done: 0, bytes_known: total_bytes > 0, bytes: 0 };
        let (template, len) = match (total_bytes, items) {
            (0, 0) => ("{spinner} {msg}  {binary_bytes_per_sec}  {elapsed_precise}", None),
            (0, n) => ("{bar:16} {percent:>3}%  {msg}  ETA {eta_precise}", Some(n)),
            (t, _) => (
                "{bar:12} {percent:>3}% {binary_bytes}/{binary_total_bytes}  {msg}  {binary_bytes_per_sec}  ETA {eta_precise}",
                Some(t),
            ),
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
            b.set_style(style.progress_chars("=> "));
        }
        b.reset();
        match len {
            Some(n) => b.set_length(n),
            None => b.unset_length(),
        }
        b.set_message(Self::message(&st));
    }

    fn phase(&self, what: &'static str) {
        let Some(b) = &self.bar else { return };
        let Ok(mut st) = self.state.lock() else { return };
        *st = BarState { unit: what, ..Default::default() };
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}  {elapsed_precise}") {
            b.set_style(style);
        }
        b.reset();
        b.unset_length();
        b.set_message(what);
    }

    fn bytes_done(&self, n: u64) {
        let Some(b) = &self.bar else { return };
        let Ok(mut st) = self.state.lock() else { return };
        st.bytes += n;
        if st.bytes_known {
            b.inc(n);
        } else if st.items == 0 {
            // Spinner: the rate needs the position to move, the message says the amount.
            b.inc(n);
            b.set_message(Self::message(&st));
        }
    }

    fn item_done(&self) {
        let Some(b) = &self.bar else { return };
        let Ok(mut st) = self.state.lock() else { return };
        st.done += 1;
        if !st.bytes_known && st.items > 0 {
            b.inc(1);
        }
        b.set_message(Self::message(&st));
    }
}

#[cfg(test)]
mod tests {
    use super::count;

    #[test]
    fn counts_are_singular_for_one() {
        assert_eq!(count(1u64, "file"), "1 file");
        assert_eq!(count(0u64, "file"), "0 files");
        assert_eq!(count(2u64, "new chunk"), "2 new chunks");
        assert_eq!(count(1u64, "index"), "1 index");
        assert_eq!(count(3u64, "index"), "3 indexes");
        assert_eq!(count(2u64, "key"), "2 keys");
        assert_eq!(count(2u64, "entry"), "2 entries");
    }
}

//! `--metrics-file`: a Prometheus textfile-collector file (node_exporter's
//! `--collector.textfile.directory`) written at the end of every backup,
//! forget, prune, verify and drill, whether it succeeded or not.
//!
//! One file may serve every command of a job (`backup && forget --prune`):
//! each run replaces the samples labelled with its own command and keeps the
//! others, under an exclusive lock on a `.lock` file beside it, and the file
//! is replaced by a rename, so node_exporter never reads half of one. A
//! failed run keeps the time of the command's last success, which is what an
//! alert on "no successful backup for 26 hours" needs.

use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// Samples the command recorded: metric name, extra labels, value.
static SAMPLES: Mutex<Vec<(&'static str, String, f64)>> = Mutex::new(Vec::new());

/// Records one value of the command that runs (`coffer_` is prefixed).
pub fn set(name: &'static str, value: f64) {
    set_labelled(name, String::new(), value);
}

/// `labels` is `key="value"` pairs, comma-separated, without the command's.
pub fn set_labelled(name: &'static str, labels: String, value: f64) {
    if let Ok(mut s) = SAMPLES.lock() {
        s.push((name, labels, value));
    }
}

/// Help text of each metric, also the list of the metrics coffer writes.
const HELP: &[(&str, &str)] = &[
    ("last_run_success", "1 if the command's last run succeeded, else 0"),
    ("last_run_exit_code", "the exit code of the command's last run"),
    ("last_run_timestamp_seconds", "when the command's last run ended (Unix time)"),
    ("last_run_duration_seconds", "how long the command's last run took"),
    ("last_success_timestamp_seconds", "when the command last succeeded (Unix time)"),
    ("last_run_error", "1 for the kind of error that failed the command's last run"),
    ("backup_files", "files in the snapshot the backup made"),
    ("backup_databases", "database dumps in the snapshot the backup made"),
    ("backup_streams", "command outputs (--stdin-from-command) in the snapshot the backup made"),
    ("backup_bytes_read", "bytes the backup read from its sources"),
    ("backup_bytes_added", "bytes of new data (before compression) the backup added"),
    ("backup_bytes_stored", "bytes the backup stored after compression and encryption"),
    ("backup_unreadable_paths", "paths the backup could not read"),
    ("forget_snapshots_kept", "snapshots the policy kept"),
    ("forget_snapshots_removed", "snapshots forgotten"),
    ("prune_bytes_reclaimed", "bytes prune freed"),
    ("prune_packs_deleted", "packs prune deleted"),
    ("repository_bytes", "bytes of packs stored after prune"),
    ("verify_errors", "problems verify found"),
    ("verify_snapshots", "snapshots verify checked"),
    ("verify_packs_read", "packs verify downloaded and checked"),
    ("snapshot_age_seconds", "age of the newest snapshot verify saw"),
    ("drill_passed", "1 if the restore drill passed"),
    ("drill_seconds", "time of each phase of the restore drill (the RTO)"),
    ("drill_tables_compared", "tables whose rows the drill compared with the dump's"),
    ("drill_checks_run", "check queries the drill ran"),
    ("drill_bytes", "bytes the drill restored (the dump's, or the base backup's files)"),
    ("drill_tables_read", "tables the PITR drill read to their end"),
];

/// Writes the file for `command`'s run: `error` is the failure's kind.
pub fn write(path: &Path, command: &str, exit_code: u8, error: Option<&str>, duration: f64) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path.file_name().context("the metrics file needs a file name")?;
    let mut lock_name = name.to_os_string();
    lock_name.push(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(&lock_name))
        .with_context(|| format!("metrics file {}", path.display()))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .with_context(|| format!("locking metrics file {}", path.display()))?;
    // A root run (the /etc line) in the job's metrics folder leaves files
    // the job can still lock and replace.
    let adopt = |f: &std::fs::File, what: &Path| -> Result<()> {
        match coffer::owner::foreign(dir) {
            Some(ids) => coffer::owner::give(f, ids).with_context(|| {
                format!(
                    "{}: cannot give it its folder's owner {}:{} (coffer runs as root)",
                    what.display(),
                    ids.0,
                    ids.1
                )
            }),
            None => Ok(()),
        }
    };
    adopt(&lock, &dir.join(&lock_name))?;

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let me = format!("command=\"{}\"", escape(command));
    // Every sample of the other commands stays; this command's last success
    // stays when this run failed.
    let mut kept: Vec<(String, String, String)> = Vec::new();
    let mut last_success = None;
    if let Ok(old) = std::fs::read_to_string(path) {
        for line in old.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
            let Some((metric, labels, value)) = parse_sample(line) else { continue };
            if labels.split(',').any(|l| l == me) {
                if metric == "coffer_last_success_timestamp_seconds" {
                    last_success = Some(value.to_string());
                }
                continue;
            }
            kept.push((metric.to_string(), labels.to_string(), value.to_string()));
        }
    }
    let mut mine: Vec<(&str, String, f64)> = vec![
        ("last_run_success", String::new(), if exit_code == 0 { 1.0 } else { 0.0 }),
        ("last_run_exit_code", String::new(), f64::from(exit_code)),
        ("last_run_timestamp_seconds", String::new(), now),
        ("last_run_duration_seconds", String::new(), duration),
    ];
    if let Some(kind) = error {
        mine.push(("last_run_error", format!("kind=\"{}\"", escape(kind)), 1.0));
    }
    // Exit 3 (a backup saved without some unreadable files) is a success of sorts: the snapshot exists.
    let succeeded = exit_code == 0 || (command == "backup" && exit_code == 3);
    if succeeded {
        mine.push(("last_success_timestamp_seconds", String::new(), now));
    }
    if let Ok(samples) = SAMPLES.lock() {
        mine.extend(samples.iter().map(|(n, l, v)| (*n, l.clone(), *v)));
    }
    for (metric, labels, value) in mine {
        let labels = if labels.is_empty() { me.clone() } else { format!("{me},{labels}") };
        kept.push((format!("coffer_{metric}"), labels, format_value(value)));
    }
    if !succeeded {
        if let Some(v) = last_success {
            kept.push(("coffer_last_success_timestamp_seconds".into(), me.clone(), v));
        }
    }

    // Grouped by metric, each with its HELP and TYPE once (the text format's rule).
    let mut families: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (metric, labels, value) in kept {
        families.entry(metric).or_default().push((labels, value));
    }
    let mut text = String::new();
    for (metric, samples) in &families {
        let help = HELP.iter().find(|(n, _)| metric.strip_prefix("coffer_") == Some(n)).map_or("", |(_, h)| h);
        text.push_str(&format!("# HELP {metric} {help}\n# TYPE {metric} gauge\n"));
        for (labels, value) in samples {
            text.push_str(&format!("{metric}{{{labels}}} {value}\n"));
        }
    }
    let mut tmp = tempfile::Builder::new()
        .prefix(".coffer-metrics-")
        .tempfile_in(dir)
        .with_context(|| format!("metrics file {}", path.display()))?;
    tmp.write_all(text.as_bytes()).with_context(|| format!("metrics file {}", path.display()))?;
    // node_exporter runs as another user: the file is world-readable, as the collector expects.
    let _ = rustix::fs::fchmod(tmp.as_file(), rustix::fs::Mode::from_raw_mode(0o644));
    adopt(tmp.as_file(), path)?;
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("metrics file {}", path.display()))?;
    Ok(())
}

/// `name{labels} value` → its three parts (labels without the braces).
fn parse_sample(line: &str) -> Option<(&str, &str, &str)> {
    let open = line.find('{')?;
    let close = line.rfind('}')?;
    let value = line[close + 1..].split_whitespace().next()?;
    Some((&line[..open], &line[open + 1..close], value))
}

fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.3}")
    }
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub fn backup(s: &coffer::BackupSummary) {
    let st = &s.stats;
    set("backup_files", st.files as f64);
    set("backup_databases", st.databases as f64);
    set("backup_streams", st.streams as f64);
    set("backup_bytes_read", st.bytes as f64);
    set("backup_bytes_added", st.new_bytes as f64);
    set("backup_bytes_stored", st.stored_bytes as f64);
    set("backup_unreadable_paths", s.unreadable.len() as f64);
}

pub fn forget(s: &coffer::ForgetSummary) {
    set("forget_snapshots_kept", s.kept as f64);
    set("forget_snapshots_removed", s.removed as f64);
}

pub fn prune(s: &coffer::PruneSummary) {
    set("prune_bytes_reclaimed", s.bytes_reclaimed as f64);
    set("prune_packs_deleted", s.packs_deleted as f64);
    set("repository_bytes", s.bytes_after as f64);
}

pub fn verify(s: &coffer::VerifySummary) {
    set("verify_errors", s.errors.len() as f64);
    set("verify_snapshots", s.snapshots as f64);
    set("verify_packs_read", s.packs_read as f64);
    if let Some(age) = s.newest_age_secs {
        set("snapshot_age_seconds", age);
    }
}

pub fn drill(r: &coffer::DrillReport) {
    set("drill_passed", if r.passed { 1.0 } else { 0.0 });
    for (phase, secs) in
        [("download", r.download_secs), ("restore", r.restore_secs), ("checks", r.check_secs), ("total", r.total_secs)]
    {
        set_labelled("drill_seconds", format!("phase=\"{phase}\""), secs);
    }
    set("drill_tables_compared", r.tables_compared as f64);
    set("drill_checks_run", r.checks_run as f64);
    set("drill_bytes", r.bytes as f64);
}

/// `drill --pitr`, under its own command label: a dump drill and a PITR
/// drill of one job keep their samples apart.
pub fn drill_pitr(r: &coffer::PitrDrillReport) {
    set("drill_passed", if r.passed { 1.0 } else { 0.0 });
    for (phase, secs) in
        [("files", r.files_secs), ("replay", r.replay_secs), ("checks", r.check_secs), ("total", r.total_secs)]
    {
        set_labelled("drill_seconds", format!("phase=\"{phase}\""), secs);
    }
    set("drill_tables_read", r.tables.len() as f64);
    set("drill_checks_run", r.checks_run as f64);
    set("drill_bytes", r.bytes as f64);
}

//! `--metrics-file`: a Prometheus textfile-collector file after every
//! backup, forget, prune, verify and drill, success or failure.

use crate::common::*;
use std::collections::{BTreeMap, HashSet};
use std::fs;

/// The file, checked against the text format's rules (names, labels,
/// values; one HELP and one TYPE per family, before its samples, which are
/// contiguous and unique), as series → value.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars()
                .enumerate()
                .all(|(i, c)| c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()))
    };
    let mut series = BTreeMap::new();
    let (mut typed, mut helped, mut finished) = (HashSet::new(), HashSet::new(), HashSet::new());
    let mut current: Option<String> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(name_ok(name) && helped.insert(name.to_string()), "HELP twice or bad: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["gauge", "counter", "untyped", "histogram", "summary"].contains(&kind), "{line}");
            assert!(typed.insert(name.to_string()), "TYPE twice: {line}");
            if let Some(c) = current.replace(name.to_string()) {
                finished.insert(c);
            }
            continue;
        }
        assert!(!line.starts_with('#') && !line.trim().is_empty(), "stray line {line:?}");
        let open = line.find('{').unwrap_or(line.find(' ').unwrap());
        let name = &line[..open];
        assert!(name_ok(name), "bad name in {line}");
        assert_eq!(current.as_deref(), Some(name), "a sample of {name} outside its family: {line}");
        assert!(!finished.contains(name));
        let (labels, value) = match line[open..].strip_prefix('{') {
            Some(rest) => {
                let close = rest.rfind('}').unwrap();
                (&rest[..close], rest[close + 1..].trim())
            }
            None => ("", line[open..].trim()),
        };
        for pair in labels.split(',').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            assert!(name_ok(k) && v.starts_with('"') && v.ends_with('"'), "bad label {pair} in {line}");
        }
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("bad value in {line}"));
        assert!(series.insert(format!("{name}{{{labels}}}"), v).is_none(), "series twice: {line}");
    }
    series
}

#[test]
fn every_run_leaves_a_prometheus_file_with_its_outcome_and_figures() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    let dir = env.path("textfile");
    fs::create_dir(&dir).unwrap();
    let file = dir.join("coffer.prom");
    let m = |args: &[&str]| -> Run {
        let mut a = args.to_vec();
        a.extend_from_slice(&["--metrics-file", file.to_str().unwrap()]);
        env.coffer(&a)
    };

    let j = m(&["backup", src.to_str().unwrap(), "--json"]).ok().json();
    let s = parse(&fs::read_to_string(&file).unwrap());
    let get = |s: &BTreeMap<String, f64>, k: &str| *s.get(k).unwrap_or_else(|| panic!("{k} missing: {s:#?}"));
    assert_eq!(get(&s, r#"coffer_last_run_success{command="backup"}"#), 1.0);
    assert_eq!(get(&s, r#"coffer_last_run_exit_code{command="backup"}"#), 0.0);
    assert_eq!(get(&s, r#"coffer_backup_files{command="backup"}"#), j["files"].as_f64().unwrap());
    assert_eq!(get(&s, r#"coffer_backup_bytes_read{command="backup"}"#), j["bytes"].as_f64().unwrap());
    assert_eq!(get(&s, r#"coffer_backup_bytes_stored{command="backup"}"#), j["stored_bytes"].as_f64().unwrap());
    let first_success = get(&s, r#"coffer_last_success_timestamp_seconds{command="backup"}"#);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - first_success).abs() < 120.0, "{first_success} vs {now}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o644, "node_exporter must read it");

    // Another command keeps the backup's samples and adds its own.
    m(&["backup", src.to_str().unwrap()]).ok();
    m(&["forget", "--keep-last", "1", "--prune"]).ok();
    m(&["verify"]).ok();
    let s = parse(&fs::read_to_string(&file).unwrap());
    assert_eq!(get(&s, r#"coffer_forget_snapshots_removed{command="forget"}"#), 1.0);
    assert_eq!(get(&s, r#"coffer_forget_snapshots_kept{command="forget"}"#), 1.0);
    assert!(s.contains_key(r#"coffer_prune_bytes_reclaimed{command="forget"}"#), "{s:#?}");
    assert_eq!(get(&s, r#"coffer_verify_errors{command="verify"}"#), 0.0);
    assert!(get(&s, r#"coffer_snapshot_age_seconds{command="verify"}"#) < 600.0);
    assert_eq!(get(&s, r#"coffer_last_run_success{command="backup"}"#), 1.0);
    let last_success = get(&s, r#"coffer_last_success_timestamp_seconds{command="backup"}"#);

    // A failed backup: success 0, its error's kind, and the last success kept.
    let r = m(&["backup", env.path("missing").to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let s = parse(&fs::read_to_string(&file).unwrap());
    assert_eq!(get(&s, r#"coffer_last_run_success{command="backup"}"#), 0.0);
    assert_eq!(get(&s, r#"coffer_last_run_exit_code{command="backup"}"#), 1.0);
    assert_eq!(get(&s, r#"coffer_last_success_timestamp_seconds{command="backup"}"#), last_success);
    assert!(s.keys().any(|k| k.starts_with(r#"coffer_last_run_error{command="backup",kind=""#)), "{s:#?}");
    assert!(!s.contains_key(r#"coffer_backup_files{command="backup"}"#), "a failed run reports no figures");
    assert_eq!(get(&s, r#"coffer_last_run_success{command="verify"}"#), 1.0, "other commands' samples stay");

    // A wrong passphrase fails the same way, with its kind.
    let r: Run = env
        .command()
        .env("COFFER_PASSWORD", "wrong")
        .args(["verify", "--metrics-file", file.to_str().unwrap()])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 12);
    let s = parse(&fs::read_to_string(&file).unwrap());
    assert_eq!(get(&s, r#"coffer_last_run_error{command="verify",kind="wrong_passphrase"}"#), 1.0);

    // A dry run leaves the file as it was; nothing but the file and its lock is in the folder.
    let before = fs::read(&file).unwrap();
    m(&["backup", src.to_str().unwrap(), "--dry-run"]).ok();
    m(&["prune", "--dry-run"]).ok();
    assert_eq!(fs::read(&file).unwrap(), before);
    let mut names: Vec<String> =
        fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["coffer.prom", "coffer.prom.lock"]);

    // A metrics file that cannot be written: the backup stands, exit 4, the file named.
    let r = env.coffer(&["backup", src.to_str().unwrap(), "--metrics-file", "/proc/coffer-no/such.prom"]);
    assert_eq!(r.code, 4, "{}", r.stderr);
    assert!(r.stderr.contains("metrics file /proc/coffer-no/such.prom"), "{}", r.stderr);
}

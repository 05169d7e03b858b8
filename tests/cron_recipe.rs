//! docs/OPERATIONS.md's set-up, nightly cron job, passphrase rotation and emergency snapshot,
//! run as written: the set-up as root, each cron line as the unprivileged
//! user it names, in cron's environment (`env -i`, PATH=/usr/bin:/bin, no
//! terminal). What the test changes, and only that: every absolute path of
//! the recipe lives under a temporary root folder, the user is a throwaway
//! one, the database host is a throwaway cluster, and the cron environment
//! names the configuration file (COFFER_CONFIG), which is not in /etc here.

use crate::common::pg::Cluster;
use crate::common::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::process::{Command, Stdio};

struct User(String);

impl Drop for User {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.0).status();
    }
}

/// Runs a shell text as root, failing the test with its output if it fails.
fn as_root(script: &str, envs: &[(&str, String)]) {
    let mut c = Command::new("bash");
    c.args(["-euo", "pipefail", "-c", script]).stdin(Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_set_up_cron_job_and_rotation_of_operations_md_work_as_written() {
    if !coffer::is_root() {
        eprintln!("skipped: the recipe creates a user and runs as root");
        return;
    }
    let doc = docs::read("docs/OPERATIONS.md");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).unwrap();
    let r = root.display().to_string();
    let user = User(format!("cofr{}", std::process::id() % 100_000));
    let u = user.0.clone();
    let cluster = Cluster::start();
    let sub = |text: &str| -> String {
        text.replace("/usr/local", &format!("{r}/usr/local"))
            .replace("/var/lib/coffer", &format!("{r}/var/lib/coffer"))
            .replace("/srv/", &format!("{r}/srv/"))
            .replace("\"/srv", &format!("\"{r}/srv"))
            .replace("/etc/coffer", &format!("{r}/etc/coffer"))
            .replace("/root/ops-passphrase", &format!("{r}/root-ops-passphrase"))
            .replace("-u coffer ", &format!("-u {u} "))
            .replace("-o coffer", &format!("-o {u}"))
            .replace("-g coffer", &format!("-g {u}"))
            .replace("chgrp coffer ", &format!("chgrp {u} "))
            .replace("/var/lib/node_exporter", &format!("{r}/var/lib/node_exporter"))
            .replace("db1.internal", &format!("127.0.0.1:{}", cluster.port))
            .replace("scratch-db", &format!("127.0.0.1:{}", cluster.port))
    };

    // The one-time set-up, as root.
    let setup = docs::block(&doc, "## One-time set-up", "sh");
    let setup = sub(&setup)
        .replace(
            "\nmake install ",
            &format!("\nmake -C {} install PREFIX={r}/usr/local BIN={} ", env!("CARGO_MANIFEST_DIR"), bin()),
        )
        .lines()
        .map(|l| match l.strip_prefix("useradd ").and_then(|rest| rest.strip_suffix(" coffer")) {
            Some(flags) => format!("useradd {flags} {u}"),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(setup.contains(&format!("useradd --system --home-dir {r}/var/lib/coffer")), "{setup}");
    as_root(&setup, &[]);
    let repo = root.join("srv/backup/coffer");
    assert!(repo.join("config").is_file());

    // PostgreSQL as the set-up section creates it: the role, and ~coffer/.pgpass.
    let create_role = doc.lines().find(|l| l.starts_with("CREATE ROLE backup ")).expect("the role").to_string();
    cluster.psql("postgres", &create_role);
    cluster.create_sample_db("shop", 1);
    let grants = doc.lines().find(|l| l.contains("GRANT SELECT ON LARGE OBJECT")).expect("the large-object grants");
    cluster.psql("shop", grants);
    let pgpass = doc.lines().find(|l| l.starts_with("db1.internal:5432:")).expect("the .pgpass line");
    let home = root.join("var/lib/coffer");
    let pgpass = pgpass.replace("db1.internal:5432", &format!("127.0.0.1:{}", cluster.port));
    fs::write(home.join(".pgpass"), format!("{pgpass}\n")).unwrap();
    as_root(&format!("chown {u} {0}/.pgpass && chmod 600 {0}/.pgpass", home.display()), &[]);

    // The profile, as written, in its place, with the monitoring section's
    // metrics file and its folder; the data it backs up.
    let config = root.join("etc/coffer/coffer.toml");
    let metrics_toml = docs::block(&doc, "### Monitoring with Prometheus", "toml");
    let metrics_line = metrics_toml.lines().find(|l| l.starts_with("metrics_file = ")).expect("the metrics_file line");
    fs::write(
        &config,
        format!("{}\n{}\n", sub(&docs::block(&doc, "## The nightly cron job", "toml")), sub(metrics_line)),
    )
    .unwrap();
    as_root(&sub(&docs::block(&doc, "### Monitoring with Prometheus", "sh")), &[]);
    let metrics = root.join("var/lib/node_exporter/textfile/coffer.prom");
    make_rich_tree(&root.join("srv/app/config"));
    // The rich tree's private folder is the coffer user's, as the user's own config would be.
    as_root(&format!("chown -R {u} {r}/srv/app/config"), &[]);

    // Each cron line: as the user it names, in cron's environment.
    let cron = docs::block(&doc, "`/etc/cron.d/coffer`:", "");
    let as_user = |command: &str, path: &str| -> (String, String) {
        let out = Command::new("setpriv")
            .args(["--reuid", &u, "--regid", &u, "--init-groups", "env", "-i"])
            .arg(format!("HOME={}", home.display()))
            .arg(format!("PATH={path}"))
            .arg("SHELL=/bin/bash")
            .arg(format!("LOGNAME={u}"))
            .arg(format!("COFFER_CONFIG={}", config.display()))
            .args(["/bin/bash", "-c", command])
            .current_dir(&home)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{command}\nexit {:?}\n{stdout}{stderr}", out.status.code());
        (stdout.into_owned(), stderr.into_owned())
    };
    let run_cron = |line: &str| {
        let fields: Vec<&str> = line.splitn(7, ' ').collect();
        assert_eq!(fields[5], "coffer", "the line's user field: {line}");
        let command = sub(fields[6]);
        let (stdout, stderr) = as_user(&command, "/usr/bin:/bin");
        // --quiet: cron would mail nothing on a good night.
        assert!(stderr.is_empty() && stdout.is_empty(), "{command}: cron would mail:\n{stdout}{stderr}");
    };
    let lines: Vec<&str> = cron.lines().filter(|l| l.starts_with(|c: char| c.is_ascii_digit())).collect();
    assert_eq!(lines.len(), 3, "{cron}");
    for line in &lines {
        run_cron(line);
    }
    let summary: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(home.join("last-backup.json")).unwrap()).expect("the JSON summary");
    assert_eq!(summary["databases"], 1);
    assert!(summary["files"].as_u64().unwrap() > 5);
    assert_eq!(fs::metadata(home.join("last-backup.json")).unwrap().uid(), fs::metadata(&home).unwrap().uid());

    // Every metric the alert rules use is in the file the cron lines wrote,
    // and says they succeeded.
    let prom = fs::read_to_string(&metrics).expect("the metrics file");
    let rules = docs::block(&doc, "Two alert rules", "yaml");
    let mut used: Vec<&str> =
        rules.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).filter(|w| w.starts_with("coffer_")).collect();
    used.sort_unstable();
    used.dedup();
    assert!(used.len() >= 3, "{rules}");
    for m in used.iter().filter(|m| !m.starts_with("coffer_drill")) {
        assert!(prom.lines().any(|l| l.starts_with(&format!("{m}{{"))), "{m} is not in the metrics file:\n{prom}");
    }
    // forget --prune is one run: its prune figures are labelled forget.
    for command in ["backup", "forget", "verify"] {
        let line = format!("coffer_last_run_success{{command=\"{command}\"}} 1");
        assert!(prom.lines().any(|l| l == line), "{line} is not in the metrics file:\n{prom}");
    }

    // Retention's dry run, by hand as the user: every snapshot with the rules that keep it.
    let forget =
        doc.split('`').find(|s| s.starts_with("coffer forget --profile nightly --dry-run")).expect("forget --dry-run");
    let (out, err) = as_user(forget, &format!("{r}/usr/local/bin:/usr/bin:/bin"));
    let out = format!("{out}{err}");
    assert!(out.contains("  keep  ") && out.contains("daily"), "{forget}:\n{out}");

    // The passphrase block, as root, then the nightly line again: root's
    // new key object belongs to the user, and the job reads the new file.
    let rotation = sub(&docs::block(&doc, "### Passphrases", "sh"));
    as_root(
        &rotation,
        &[
            ("PATH", format!("{r}/usr/local/bin:/usr/bin:/bin")),
            ("COFFER_CONFIG", config.display().to_string()),
            ("HOME", "/root".into()),
        ],
    );
    // The doc's second line for what only root can read: run as root, what
    // it writes still belongs to the repository's owner (checked below).
    let root_line = doc
        .split('`')
        .find(|s| s.starts_with("/usr/local/bin/coffer backup --profile nightly /"))
        .expect("the root line for /etc");
    let root_line = sub(root_line).replace(" /etc", &format!(" {r}/srv/app/config/docs"));
    as_root(
        &root_line,
        &[("COFFER_CONFIG", config.display().to_string()), ("PATH", "/usr/bin:/bin".into()), ("HOME", "/root".into())],
    );
    let owner = fs::metadata(&repo).unwrap().uid();
    let all_the_owners = || {
        for entry in walk_all(&repo) {
            let uid = fs::symlink_metadata(&entry).unwrap().uid();
            assert_eq!(uid, owner, "{} is not the repository owner's", entry.display());
        }
    };
    all_the_owners();
    // The root line rewrote the metrics file: it and its lock are still the
    // user's, so the job's next run replaces them (else exit 4, on stderr).
    for f in [metrics.clone(), metrics.with_file_name("coffer.prom.lock")] {
        assert_eq!(fs::metadata(&f).map(|m| m.uid()).ok(), Some(owner), "{} after the root line", f.display());
    }
    run_cron(lines[0]);
    // The humans' passphrase opens the same repository.
    let out = Command::new(bin())
        .args(["snapshots", "--json", "-r", repo.to_str().unwrap()])
        .env("COFFER_PASSWORD_FILE", root.join("root-ops-passphrase"))
        .env_remove("COFFER_PASSWORD")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // forget --prune keeps one snapshot a day per group: the nightly one, and the root line's.
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");

    // "An emergency snapshot, by hand": its three blocks in one root shell,
    // the operator's passwords in root's ~/.pgpass (admin: a superuser).
    cluster.psql("postgres", "CREATE ROLE admin LOGIN SUPERUSER PASSWORD 'admin-pw'");
    let root_home = root.join("root-home");
    fs::create_dir_all(&root_home).unwrap();
    fs::write(
        root_home.join(".pgpass"),
        format!("127.0.0.1:{0}:*:backup:the-database-password\n127.0.0.1:{0}:*:admin:admin-pw\n", cluster.port),
    )
    .unwrap();
    fs::set_permissions(root_home.join(".pgpass"), fs::Permissions::from_mode(0o600)).unwrap();
    let section = docs::section(&doc, "## An emergency snapshot, by hand");
    let mut blocks = Vec::new();
    let mut rest = section;
    while let Some(at) = rest.find("```sh\n") {
        let body = &rest[at + 6..];
        let end = body.find("\n```").unwrap();
        blocks.push(body[..end].to_string());
        rest = &body[end + 4..];
    }
    assert_eq!(blocks.len(), 3, "backup, check, restore");
    let envs = [
        ("PATH", format!("{r}/usr/local/bin:/usr/bin:/bin")),
        ("HOME", root_home.display().to_string()),
        ("COFFER_CONFIG", config.display().to_string()),
    ];
    let fix = |text: &str| sub(text).replace("admin@db1/", &format!("admin@127.0.0.1:{}/", cluster.port));
    // Before the migration: the snapshot, and the dry run that proves it restores.
    as_root(&fix(&format!("{}\n{}", blocks[0], blocks[1])), &envs);
    let before = cluster.psql("shop", "SELECT count(*), sum(id) FROM app.orders");
    // The migration goes wrong.
    cluster.psql("shop", "DELETE FROM app.orders WHERE id % 2 = 0; DROP TABLE audit.events");
    // Going back, in the same shell (its first line sets the repository).
    let export = blocks[0].lines().next().unwrap();
    assert!(export.starts_with("export COFFER_REPOSITORY="), "{export}");
    as_root(&fix(&format!("{export}\n{}", blocks[2])), &envs);
    assert_eq!(cluster.psql("shop", "SELECT count(*), sum(id) FROM app.orders"), before, "the rows are back");
    assert!(cluster.psql("shop", "SELECT count(*) FROM audit.events").trim().parse::<u64>().unwrap() > 0);
    all_the_owners();

    // "Restore drills": the drill block as root (admin in root's .pgpass),
    // with a check file for this database.
    let checks = root.join("etc/coffer/shop-checks.sql");
    fs::write(
        &checks,
        "SELECT count(*) > 0 FROM app.orders;\n\
         SELECT count(*) = 0 FROM app.orders o LEFT JOIN app.customers c ON c.id = o.customer_id WHERE c.id IS NULL;\n",
    )
    .unwrap();
    as_root(&format!("chgrp {u} {0} && chmod 640 {0}", checks.display()), &[]);
    let drills = &doc[doc.find("## Restore drills").expect("the drills section")..];
    let drill = docs::block(drills, "## Restore drills", "sh");
    assert!(drill.contains("--profile nightly"), "{drill}");
    as_root(&sub(&drill), &envs);
    let report: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(home.join("last-drill.json")).unwrap()).expect("the drill's JSON");
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["checks_run"], 2, "{report}");
    assert!(report["tables_compared"].as_u64().unwrap() >= 5, "{report}");

    // The weekly drill line, as the user, with the drill role the doc creates.
    let role = doc.lines().find(|l| l.starts_with("CREATE ROLE drill ")).expect("the drill role");
    cluster.psql("postgres", role);
    let scratch_pgpass = doc.lines().find(|l| l.starts_with("scratch-db:5432:")).expect("the drill's .pgpass line");
    let mut pgpass_text = fs::read_to_string(home.join(".pgpass")).unwrap();
    pgpass_text
        .push_str(&format!("{}\n", scratch_pgpass.replace("scratch-db:5432", &format!("127.0.0.1:{}", cluster.port))));
    fs::write(home.join(".pgpass"), pgpass_text).unwrap();
    let weekly = doc.lines().find(|l| l.starts_with("0 5 * * 1 coffer ")).expect("the weekly drill line");
    let before_drill = cluster.databases();
    run_cron(weekly);
    assert_eq!(cluster.databases(), before_drill, "the scratch database is dropped");
    let prom = fs::read_to_string(&metrics).unwrap();
    for line in ["coffer_drill_passed{command=\"drill\"} 1", "coffer_last_run_success{command=\"drill\"} 1"] {
        assert!(prom.lines().any(|l| l == line), "{line} is not in the metrics file:\n{prom}");
    }
    for m in used.iter().filter(|m| m.starts_with("coffer_drill")) {
        assert!(prom.lines().any(|l| l.starts_with(m)), "{m} is not in the metrics file:\n{prom}");
    }

    // The file drill: restore, then diff, as root.
    let files = docs::block(drills, "For files, a drill", "sh");
    let rel = r.trim_start_matches('/');
    let files = sub(&files).replace("'srv/", &format!("'{rel}/srv/")).replace("/tmp/drill", &format!("{r}/tmp/drill"));
    let mut c = Command::new("bash");
    c.args(["-euo", "pipefail", "-c", &files]).stdin(Stdio::null());
    for (k, v) in &envs {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{files}\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.ends_with("the same\n"), "{stdout}");
    assert!(root.join(format!("tmp/drill/{rel}/srv/app/config/big.bin")).is_file());

    // "An offsite copy": its profile appended, its set-up as root, its two
    // cron lines as the user. The offsite bucket is a Garage one (its
    // endpoint added to the profile, its key in the doc's credentials line).
    let g = crate::common::garage::shared();
    let offsite = &doc[doc.find("## An offsite copy").expect("the offsite section")..];
    let bucket = format!("s3://{}/offsite-{}", g.get("GARAGE_TEST_BUCKET"), std::process::id());
    let profile =
        sub(&docs::block(offsite, "## An offsite copy", "toml")).replace("s3://acme-offsite/db1", &bucket).replace(
            "s3_region = \"eu-central-1\"",
            &format!("s3_region = \"garage\"\ns3_endpoint = \"{}\"\ns3_path_style = true", g.endpoint()),
        );
    let mut text = fs::read_to_string(&config).unwrap();
    text.push_str(&format!("\n{profile}\n"));
    fs::write(&config, text).unwrap();
    let setup = sub(&docs::block(offsite, "Once, as root", "sh"))
        .replace("AKIA-OFFSITE-KEY", &g.get("AWS_ACCESS_KEY_ID"))
        .replace("OFFSITE-SECRET", &g.get("AWS_SECRET_ACCESS_KEY"))
        .replace("chown coffer:", &format!("chown {u}:"));
    as_root(&setup, &[("COFFER_CONFIG", config.display().to_string()), ("PATH", "/usr/bin:/bin".into())]);
    let cron = docs::block(offsite, "`/etc/cron.d/coffer-offsite`:", "");
    let lines: Vec<&str> = cron.lines().filter(|l| l.starts_with(|c: char| c.is_ascii_digit())).collect();
    assert_eq!(lines.len(), 2, "{cron}");
    for line in &lines {
        run_cron(line);
    }
    // Every snapshot of the nightly repository is offsite; a second run copies none.
    let local = as_user(&sub("/usr/local/bin/coffer snapshots --profile nightly --json"), "/usr/bin:/bin").0;
    let local: serde_json::Value = serde_json::from_str(&local).unwrap();
    let again =
        as_user(&sub("/usr/local/bin/coffer copy --profile nightly --to-profile offsite --json"), "/usr/bin:/bin").0;
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(again["copied"], 0, "{again}");
    assert_eq!(again["already_copied"].as_u64(), Some(local.as_array().unwrap().len() as u64), "{again}");
    assert_eq!(again["stored_bytes"], 0, "{again}");
    let out = root.join("tmp/from-offsite");
    let restore = format!(
        "COFFER_PASSWORD_FILE={r}/etc/coffer/offsite-passphrase {r}/usr/local/bin/coffer restore latest --profile offsite --target {} --quiet",
        out.display()
    );
    as_root(&restore, &[("COFFER_CONFIG", config.display().to_string()), ("PATH", "/usr/bin:/bin".into())]);
    assert_eq!(describe(&root.join("srv/app/config")), describe(&out.join(format!("{rel}/srv/app/config"))));

    // "A backup host that cannot read its backups": the full passphrase goes
    // to the restore host (here: a copy), the block runs as root, then its
    // cron line twice as the user; only the full passphrase reads the result.
    let full_passphrase = root.join("restore-host-passphrase");
    fs::copy(root.join("etc/coffer/passphrase"), &full_passphrase).unwrap();
    let write_only = docs::section(&doc, "### A backup host that cannot read its backups");
    let block = sub(&docs::block(write_only, "Once, as root, on the backup host", "sh"))
        .replace("chown coffer:", &format!("chown {u}:"));
    as_root(
        &block,
        &[
            ("PATH", format!("{r}/usr/local/bin:/usr/bin:/bin")),
            ("COFFER_CONFIG", config.display().to_string()),
            ("HOME", "/root".into()),
        ],
    );
    assert!(!root.join("etc/coffer/passphrase").exists(), "the full passphrase left the backup host");
    let cron = docs::block(write_only, "holds the backup alone", "");
    let lines: Vec<&str> = cron.lines().filter(|l| l.starts_with(|c: char| c.is_ascii_digit())).collect();
    assert_eq!(lines.len(), 1, "{cron}");
    let last = || -> serde_json::Value {
        serde_json::from_str(&fs::read_to_string(home.join("last-backup.json")).unwrap()).expect("the JSON summary")
    };
    run_cron(lines[0]);
    let first = last();
    assert_eq!(first["databases"], 1, "{first}");
    fs::write(root.join("srv/app/config/changed.txt"), "after the key change\n").unwrap();
    as_root(&format!("chown {u} {r}/srv/app/config/changed.txt"), &[]);
    run_cron(lines[0]);
    let second = last();
    // The parent the key cannot read from the repository comes from the user's cache.
    assert_eq!(second["parent"], first["snapshot"], "{second}");
    let refused = Command::new("setpriv")
        .args(["--reuid", &u, "--regid", &u, "--init-groups", "env", "-i"])
        .arg(format!("HOME={}", home.display()))
        .arg(format!("COFFER_CONFIG={}", config.display()))
        .arg(format!("{r}/usr/local/bin/coffer"))
        .args(["snapshots", "--profile", "nightly"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("is write-only"));
    let out = root.join("tmp/from-write-only");
    let restore = format!(
        "COFFER_PASSWORD_FILE={} {r}/usr/local/bin/coffer restore {} -r {r}/srv/backup/coffer --target {} --quiet",
        full_passphrase.display(),
        second["snapshot"].as_str().unwrap(),
        out.display()
    );
    as_root(&restore, &[("PATH", "/usr/bin:/bin".into())]);
    assert_eq!(describe(&root.join("srv/app/config")), describe(&out.join(format!("{rel}/srv/app/config"))));
}

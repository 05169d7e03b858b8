//! WAL archiving against a real PostgreSQL 15: `wal-push` as its
//! archive_command (run by the server, as the postgres user, with a key
//! file), `wal-fetch` as a restore_command would run it.

use crate::common::pg::{self, Cluster};
use crate::common::*;
use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

struct Archive {
    cluster: Cluster,
    repo: PathBuf,
    key: PathBuf,
}

/// coffer as root on the archive, with its key file.
fn coffer_on(a: &Archive, args: &[&str]) -> Run {
    Command::new(bin())
        .args(args)
        .env("COFFER_REPOSITORY", &a.repo)
        .env("COFFER_PASSWORD_FILE", &a.key)
        .env_remove("COFFER_PASSWORD")
        .output()
        .unwrap()
        .into()
}

/// A cluster archiving, through `wal-push` with a key file, into a fresh
/// repository in its folder.
fn archiving_cluster() -> Archive {
    archiving_cluster_with(&[])
}

/// `archiving_cluster` whose key file is made by `key add-file EXTRA...`
/// (`--write-only`).
fn archiving_cluster_with(extra: &[&str]) -> Archive {
    let mut paths = None;
    let cluster = Cluster::start_with(|dir| {
        let (repo, key) = (dir.join("archive"), dir.join("wal.key"));
        let init = Command::new(bin())
            .args(["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1", "-r"])
            .arg(&repo)
            .env("COFFER_PASSWORD", PASSPHRASE)
            .output()
            .unwrap();
        assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
        let added = Command::new(bin())
            .args(["key", "add-file"])
            .args(extra)
            .arg(&key)
            .arg("-r")
            .arg(&repo)
            .env("COFFER_PASSWORD", PASSPHRASE)
            .output()
            .unwrap();
        assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
        if coffer::is_root() {
            let ok = Command::new("chown").args(["-R", "postgres:"]).arg(&repo).arg(&key).status().unwrap();
            assert!(ok.success());
        }
        let conf = format!(
            "wal_level = replica\narchive_mode = on\nwal_keep_size = '1GB'\n\
             archive_command = 'COFFER_PASSWORD_FILE={} {} wal-push -r {} --quiet %p'\n",
            key.display(),
            bin(),
            repo.display()
        );
        paths = Some((repo, key));
        conf
    });
    let (repo, key) = paths.unwrap();
    Archive { cluster, repo, key }
}

fn archiver(c: &Cluster) -> (u64, u64, String) {
    let row = c
        .psql("postgres", "SELECT archived_count, failed_count, coalesce(last_archived_wal, '') FROM pg_stat_archiver");
    let f: Vec<&str> = row.trim().split('|').collect();
    (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].to_string())
}

/// Waits until the archiver has archived `name` (or later).
fn wait_archived(c: &Cluster, name: &str) -> (u64, u64, String) {
    let start = Instant::now();
    loop {
        let a = archiver(c);
        if a.2.as_str() >= name {
            return a;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{name} not archived: {a:?}\n{}", log(c));
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log(c: &Cluster) -> String {
    fs::read_to_string(c.dir.path().join("log")).unwrap_or_default()
}

/// Writes some WAL and switches to a new segment; the segment it closed.
fn switch(c: &Cluster) -> String {
    c.psql(
        "postgres",
        "CREATE TABLE IF NOT EXISTS t (x text); INSERT INTO t SELECT repeat('x', 100) FROM generate_series(1, 1000)",
    );
    c.psql("postgres", "SELECT pg_walfile_name(pg_switch_wal())").trim().to_string()
}

fn data(c: &Cluster) -> PathBuf {
    c.dir.path().join("data")
}

fn system_id(c: &Cluster) -> String {
    c.psql("postgres", "SELECT system_identifier FROM pg_control_system()").trim().to_string()
}

#[test]
fn archive_command_stores_every_segment_and_wal_fetch_returns_its_bytes() {
    let a = archiving_cluster();
    let c = &a.cluster;
    let names: Vec<String> = (0..3).map(|_| switch(c)).collect();
    let (archived, failed, _) = wait_archived(c, names.last().unwrap());
    assert!(archived >= 3 && failed == 0, "archived {archived}, failed {failed}\n{}", log(c));

    // Stored under the cluster's system identifier; each fetch is the segment's bytes.
    let sysid = system_id(c);
    assert!(a.repo.join("wal").join(&sysid).join(&names[0]).is_file());
    let out = tempfile::tempdir().unwrap();
    for name in &names {
        let dest = out.path().join("RECOVERYXLOG");
        let d = data(c);
        let r = coffer_on(&a, &["wal-fetch", "--pg-data", d.to_str().unwrap(), name, dest.to_str().unwrap()]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert_eq!(fs::read(&dest).unwrap(), fs::read(data(c).join("pg_wal").join(name)).unwrap(), "{name}");
    }
    // Compressed: a switched segment is mostly zeros.
    let stored = fs::metadata(a.repo.join("wal").join(&sysid).join(&names[0])).unwrap().len();
    assert!(stored < 16 << 20 >> 2, "{stored} bytes stored for a 16 MiB segment");

    // Not archived: exit 1, nothing written (how recovery learns it is at the end).
    let dest = out.path().join("missing");
    let r = coffer_on(&a, &["wal-fetch", "--stanza", &sysid, "0000000100000000000000FE", dest.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!dest.exists());
    // Said plainly, not as an error: recovery asks this on every start.
    assert!(r.stderr.contains("0000000100000000000000FE") && !r.stderr.contains("error"), "{}", r.stderr);

    // Pushed again with the same bytes (a retry after a crash): success.
    let seg = data(c).join("pg_wal").join(&names[1]);
    let r = coffer_on(&a, &["wal-push", "--json", seg.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["already_archived"], true, "{j}");

    // The same name with other bytes: refused, and the archive keeps its copy.
    let other = out.path().join(&names[1]);
    let mut bytes = fs::read(&seg).unwrap();
    bytes[5000] ^= 0xff;
    fs::write(&other, &bytes).unwrap();
    let r = coffer_on(&a, &["wal-push", other.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!("WAL file {} is already archived in stanza {sysid} with other bytes", names[1])),
        "{}",
        r.stderr
    );

    // Another cluster's segment (its header's system identifier) in this stanza: refused.
    let foreign = out.path().join("000000050000000000000001");
    bytes[24..32].copy_from_slice(&12345u64.to_le_bytes());
    fs::write(&foreign, &bytes).unwrap();
    let r = coffer_on(&a, &["wal-push", "--stanza", &sysid, foreign.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("holds the WAL of the cluster with system identifier"), "{}", r.stderr);
    // ... and into a restored data directory, another stanza's WAL is not fetched.
    let r = coffer_on(&a, &["wal-push", "--stanza", "other", foreign.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let d = data(c);
    let r = coffer_on(
        &a,
        &[
            "wal-fetch",
            "--stanza",
            "other",
            "--pg-data",
            d.to_str().unwrap(),
            "000000050000000000000001",
            dest.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 126, "{}", r.stderr);
    assert!(!dest.exists());

    // A damaged object is refused, naming it, with 126: recovery stops
    // rather than end early.
    let object = a.repo.join("wal").join(&sysid).join(&names[2]);
    let mut stored = fs::read(&object).unwrap();
    let mid = stored.len() / 2;
    stored[mid] ^= 1;
    let _ = fs::remove_file(&object);
    fs::write(&object, &stored).unwrap();
    let r = coffer_on(&a, &["wal-fetch", "--stanza", &sysid, &names[2], dest.to_str().unwrap()]);
    assert_eq!(r.code, 126, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("wal/{sysid}/{}", names[2])) && r.stderr.contains("corrupt"), "{}", r.stderr);
    assert!(!dest.exists());

    // A repository that is not there: 126, never "not archived".
    let r: Run = Command::new(bin())
        .args(["wal-fetch", "-r", "/nonexistent/repo", "--stanza", &sysid, &names[0], dest.to_str().unwrap()])
        .env("COFFER_PASSWORD_FILE", &a.key)
        .env_remove("COFFER_PASSWORD")
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 126, "{}", r.stderr);

    // Names that are not WAL files never become object names.
    for bad in ["../config", "RECOVERYXLOG", "00000001.history/x"] {
        let r = coffer_on(&a, &["wal-fetch", "--stanza", &sysid, bad, dest.to_str().unwrap()]);
        assert_eq!(r.code, 126, "{bad}: {}", r.stderr);
        assert!(r.stderr.contains("is not a WAL file name"), "{}", r.stderr);
    }
}

/// An archive that rejects pushes: PostgreSQL keeps the segments and
/// retries; once the repository is back, every one is archived, in order.
#[test]
fn segments_wait_in_pg_wal_while_the_archive_is_unreachable() {
    if !coffer::is_root() {
        eprintln!("skipped: needs to take the repository away from the postgres user");
        return;
    }
    let a = archiving_cluster();
    let c = &a.cluster;
    let first = switch(c);
    wait_archived(c, &first);
    // The repository becomes unreadable to the server's user.
    let locked = |mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&a.repo, fs::Permissions::from_mode(mode)).unwrap();
    };
    let (_, failed_before, _) = archiver(c);
    locked(0o000);
    let held: Vec<String> = (0..3).map(|_| switch(c)).collect();
    let start = Instant::now();
    while archiver(c).1 == failed_before {
        assert!(start.elapsed() < Duration::from_secs(60), "no failed push\n{}", log(c));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(data(c).join("pg_wal/archive_status").join(format!("{}.ready", held[0])).exists());
    locked(0o700);
    // A new segment wakes the archiver (else it retries within a minute).
    let next = switch(c);
    wait_archived(c, &next);
    let sysid = system_id(c);
    for name in &held {
        assert!(a.repo.join("wal").join(&sysid).join(name).is_file(), "{name} archived");
        assert!(!data(c).join("pg_wal/archive_status").join(format!("{name}.ready")).exists());
    }
}

/// verify follows each stanza's segments per timeline: a missing one is an
/// error naming it; --read-data reads every WAL object back.
#[test]
fn verify_names_a_missing_wal_segment() {
    let a = archiving_cluster();
    let c = &a.cluster;
    let names: Vec<String> = (0..4).map(|_| switch(c)).collect();
    wait_archived(c, names.last().unwrap());
    let j = coffer_on(&a, &["verify", "--json"]).ok().json();
    let sysid = system_id(c);
    let st = &j["wal"][0];
    assert_eq!(st["stanza"], sysid.as_str(), "{j}");
    assert_eq!(st["system_identifier"], sysid.as_str(), "{j}");
    assert!(st["timelines"][0]["segments"].as_u64().unwrap() >= 4, "{j}");
    assert_eq!(st["timelines"][0]["last"], names[3].as_str(), "{j}");
    assert_eq!(st["gaps"].as_array().unwrap().len(), 0, "{j}");

    // A flipped byte: the listing cannot see it, --read-data does, naming the object.
    let object = a.repo.join("wal").join(&sysid).join(&names[2]);
    let good = fs::read(&object).unwrap();
    let mut bad = good.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    let _ = fs::remove_file(&object);
    fs::write(&object, &bad).unwrap();
    coffer_on(&a, &["verify"]).ok();
    let r = coffer_on(&a, &["verify", "--read-data", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let j = r.json();
    assert!(j["wal_files_read"].as_u64().unwrap() >= 4, "{j}");
    let errors = j["errors"].to_string();
    assert!(errors.contains(&format!("wal/{sysid}/{}", names[2])) && errors.contains("corrupt"), "{j}");
    fs::remove_file(&object).unwrap();
    fs::write(&object, &good).unwrap();
    coffer_on(&a, &["verify", "--read-data"]).ok();

    fs::remove_file(a.repo.join("wal").join(&sysid).join(&names[1])).unwrap();
    let r = coffer_on(&a, &["verify"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let want = format!(
        "stanza {sysid}: WAL segment {} is missing (1 segment missing between {} and {})",
        names[1], names[0], names[2]
    );
    assert!(r.stderr.contains(&want) || r.stdout.contains(&want), "{want}\n{}{}", r.stdout, r.stderr);
}

/// The RPO alarm, with the setting OPERATIONS.md names: under
/// `archive_timeout = 10s` and a trickle of writes (no forced switches),
/// `verify --max-age 30s` passes while the cluster archives and fails once
/// archiving stops; `--max-wal-age` judges the WAL alone.
#[test]
fn verify_max_age_fails_once_archiving_stops() {
    let a = archiving_cluster();
    let c = &a.cluster;
    c.psql("postgres", "ALTER SYSTEM SET archive_timeout = '10s'");
    c.psql("postgres", "SELECT pg_reload_conf()");
    let src = a.cluster.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    let writing = std::sync::atomic::AtomicBool::new(true);
    // The writer stops whatever happens, or a failed assertion would wait for it forever.
    struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.store(false, std::sync::atomic::Ordering::Relaxed);
        }
    }
    std::thread::scope(|scope| {
        let _stop = Stop(&writing);
        c.psql("postgres", "CREATE TABLE IF NOT EXISTS beat (at timestamptz)");
        scope.spawn(|| {
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                c.psql("postgres", "INSERT INTO beat VALUES (now())");
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        // Two segments closed by the checkpointer's archive_timeout alone.
        let (before, _, _) = archiver(c);
        let start = Instant::now();
        while archiver(c).0 < before + 2 {
            assert!(
                start.elapsed() < Duration::from_secs(45),
                "archive_timeout switched no segment: {:?}",
                archiver(c)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        // A fresh snapshot, so --max-age judges the WAL's age, not a stale backup's.
        coffer_on(&a, &["backup", "-q", src.to_str().unwrap()]).ok();
        std::thread::sleep(Duration::from_secs(5));
        let r = coffer_on(&a, &["verify", "--json", "--max-age", "30s"]);
        assert_eq!(r.code, 0, "while archiving: {}{}\n{:?}", r.stdout, r.stderr, archiver(c));
        let j = r.json();
        assert!(j["wal"][0]["newest_age_secs"].as_f64().unwrap() < 30.0, "{j}");
        c.psql("postgres", "ALTER SYSTEM SET archive_command = 'false'");
        c.psql("postgres", "SELECT pg_reload_conf()");
        std::thread::sleep(Duration::from_secs(32));
        let r = coffer_on(&a, &["verify", "--max-age", "1h", "--max-wal-age", "30s"]);
        assert_eq!(r.code, 1, "after archiving stopped: {}{}", r.stdout, r.stderr);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(all.contains("newest archived WAL of stanza") && all.contains("older than --max-wal-age 30s"), "{all}");
        let r = coffer_on(&a, &["verify", "--max-age", "30s"]);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(r.code == 1 && all.contains("older than --max-age 30s") && all.contains("archived WAL"), "{all}");
        // Segments waited in pg_wal meanwhile: none was lost.
        assert!(archiver(c).1 > 0, "archiving never failed: {:?}", archiver(c));
    });
}

/// docs/OPERATIONS.md's WAL archiving section, as written: the set-up as
/// root, its postgresql.conf lines in a throwaway cluster, the RPO cron
/// line as the postgres user in cron's environment, and its
/// restore_command. Paths live under a temporary folder.
#[test]
fn the_wal_archiving_section_of_operations_md_works_as_written() {
    if !coffer::is_root() {
        eprintln!("skipped: the section runs as root and as the postgres user");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let doc = docs::read("docs/OPERATIONS.md");
    let section = docs::section(&doc, "## WAL archiving");
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().display().to_string();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    for d in ["srv/backup", "var/lib/postgresql", "etc/coffer"] {
        fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    fs::write(dir.path().join("etc/coffer/passphrase"), PASSPHRASE).unwrap();
    let sub = |text: &str| {
        text.replace("/usr/local/bin/coffer", bin())
            .replace("/srv/", &format!("{r}/srv/"))
            .replace("/var/lib/postgresql", &format!("{r}/var/lib/postgresql"))
            .replace("/etc/coffer/", &format!("{r}/etc/coffer/"))
    };
    let setup = sub(&docs::block(section, "As root, once", "sh"));
    let out =
        Command::new("bash").args(["-euo", "pipefail", "-c", &setup]).env_remove("COFFER_PASSWORD").output().unwrap();
    assert!(out.status.success(), "{setup}\n{}", String::from_utf8_lossy(&out.stderr));
    let repo = dir.path().join("srv/backup/db1-wal");
    let postgres_uid = {
        use std::os::unix::fs::MetadataExt;
        fs::metadata(&repo).unwrap().uid()
    };

    let conf = sub(&docs::block(section, "In `postgresql.conf`", ""));
    assert!(conf.contains("archive_command = "), "{conf}");
    let c = Cluster::start_with(|_| conf.clone());
    let names: Vec<String> = (0..3).map(|_| switch(&c)).collect();
    let (_, failed, _) = wait_archived(&c, names.last().unwrap());
    assert_eq!(failed, 0, "{}", log(&c));
    // Everything in the repository is the postgres user's, root's init included.
    for p in walk_all(&repo) {
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::symlink_metadata(&p).unwrap().uid(), postgres_uid, "{}", p.display());
    }

    // The RPO line, as the user it names, in cron's environment: silent.
    let cron = section.lines().find(|l| l.starts_with("*/5 * * * * ")).expect("the cron line");
    let fields: Vec<&str> = cron.splitn(7, ' ').collect();
    assert_eq!(fields[5], "postgres");
    let as_postgres = |command: &str, cwd: &std::path::Path| -> Run {
        Command::new("runuser")
            .args(["-u", "postgres", "--", "env", "-i", "PATH=/usr/bin:/bin", "HOME=/tmp", "bash", "-c", command])
            .current_dir(cwd)
            .output()
            .unwrap()
            .into()
    };
    let r = as_postgres(&sub(fields[6]), dir.path());
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""), "{}", fields[6]);

    // The restore_command, run in the data directory as PostgreSQL runs it.
    let line = section.lines().find(|l| l.starts_with("restore_command = '")).expect("restore_command");
    let command = sub(line.trim_start_matches("restore_command = '").trim_end_matches('\''));
    let dest = c.dir.path().join("RECOVERYXLOG");
    let fetch = |name: &str| as_postgres(&command.replace("%f", name).replace("%p", dest.to_str().unwrap()), &data(&c));
    let r = fetch(&names[1]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(fs::read(&dest).unwrap(), fs::read(data(&c).join("pg_wal").join(&names[1])).unwrap());
    fs::remove_file(&dest).unwrap();
    let r = fetch("0000000100000000000000FE");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!dest.exists());
}

/// `archive_command = 'coffer wal-push --profile db1 %p'`: the profile
/// names the repository, the key file and the stanza.
#[test]
fn a_profile_gives_wal_push_and_wal_fetch_their_repository_key_and_stanza() {
    let env = Env::new();
    let key = env.path("db1.key");
    env.coffer(&["key", "add-file", key.to_str().unwrap()]).ok();
    let config = env.path("coffer.toml");
    fs::write(
        &config,
        format!(
            "[profile.db1]\nrepository = \"{}\"\npassword_file = \"{}\"\nstanza = \"db1\"\n",
            env.repo().display(),
            key.display()
        ),
    )
    .unwrap();
    let seg = wal_segment(99, 3);
    let path = env.path("000000010000000000000003");
    fs::write(&path, &seg).unwrap();
    let run = |args: &[&str]| -> Run {
        Command::new(bin())
            .args(args)
            .env("COFFER_CONFIG", &config)
            .env_remove("COFFER_PASSWORD")
            .env_remove("COFFER_REPOSITORY")
            .current_dir(env.path(""))
            .output()
            .unwrap()
            .into()
    };
    run(&["wal-push", "--profile", "db1", "--quiet", path.to_str().unwrap()]).ok();
    assert!(env.repo().join("wal/db1/000000010000000000000003").is_file());
    let out = env.path("RECOVERYXLOG");
    run(&["wal-fetch", "--profile", "db1", "000000010000000000000003", out.to_str().unwrap()]).ok();
    assert_eq!(fs::read(&out).unwrap(), seg);
}

/// coffer on the archive with the server's password in its environment
/// (for the replication connection of `backup --pg-base`).
fn coffer_pg(a: &Archive, args: &[&str]) -> Run {
    Command::new(bin())
        .args(args)
        .env("COFFER_REPOSITORY", &a.repo)
        .env("COFFER_PASSWORD_FILE", &a.key)
        .env("PGPASSWORD", pg::PG_PASSWORD)
        .env_remove("COFFER_PASSWORD")
        .output()
        .unwrap()
        .into()
}

/// The server's clock, as `--target-time` takes it.
fn server_now(c: &Cluster) -> String {
    c.psql("postgres", "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
        .trim()
        .to_string()
}

/// Waits until the server at `c` has left recovery (promoted).
fn wait_promoted(c: &Cluster) {
    let start = Instant::now();
    while c.psql("postgres", "SELECT pg_is_in_recovery()").trim() != "f" {
        assert!(start.elapsed() < Duration::from_secs(60), "still in recovery\n{}", log(c));
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// pgbench writing into `db` at a bounded rate until it is killed.
fn pgbench(c: &Cluster, db: &str) -> std::process::Child {
    c.program("pgbench")
        .args(["-n", "-c", "2", "-R", "200", "-T", "300", "-h", "127.0.0.1", "-U", "postgres", "-p"])
        .arg(c.port.to_string())
        .arg(db)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

/// The ransomware-proof database host: archive_command and the nightly
/// base backup both run with a write-only key file, which can read neither
/// back; the full key (elsewhere) restores the cluster from them, WAL
/// replayed to its end.
#[test]
fn a_base_backup_and_wal_written_with_a_write_only_key_restore_with_the_full_key() {
    let a = archiving_cluster_with(&["--write-only"]);
    let c = &a.cluster;
    c.create_sample_db("shop", 1);
    let r = coffer_pg(&a, &["backup", "--pg-base", &c.url("postgres"), "--wait-for-wal=60s", "--json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, log(c));
    c.psql("shop", "CREATE TABLE after_base (id int); INSERT INTO after_base SELECT generate_series(1, 321)");
    let want = c.table_dump("shop", "after_base");
    let last = switch(c);
    wait_archived(c, &last);
    let (_, failed, _) = archiver(c);
    assert_eq!(failed, 0, "archive_command failed with the write-only key\n{}", log(c));

    let scratch = pg::scratch_dir();
    let target = scratch.path().join("data");
    let ts = target.to_str().unwrap();
    let r = coffer_pg(&a, &["restore", "--pg-base", "--target", ts]);
    assert!(r.code != 0 && r.stderr.contains("is write-only") && !target.exists(), "{}", r.stderr);

    // The full key: a key file of its own, as the restore host would hold.
    let full = scratch.path().join("full.key");
    let added: Run = Command::new(bin())
        .args(["key", "add-file", full.to_str().unwrap(), "-r", a.repo.to_str().unwrap()])
        .env("COFFER_PASSWORD", PASSPHRASE)
        .output()
        .unwrap()
        .into();
    added.ok();
    if coffer::is_root() {
        assert!(Command::new("chown").args(["postgres:"]).arg(&full).status().unwrap().success());
    }
    let restore: Run = Command::new(bin())
        .args(["restore", "--pg-base", "--target", ts, "--target-action", "promote"])
        .env("COFFER_REPOSITORY", &a.repo)
        .env("COFFER_PASSWORD_FILE", &full)
        .env_remove("COFFER_PASSWORD")
        .output()
        .unwrap()
        .into();
    restore.ok();
    let restored = Cluster::run(scratch);
    wait_promoted(&restored);
    assert_eq!(restored.table_dump("shop", "after_base"), want, "the WAL after the base backup was replayed");
}

#[test]
fn restore_to_a_moment_brings_back_a_dropped_table_as_it_was() {
    let a = archiving_cluster();
    let c = &a.cluster;
    c.create_sample_db("bench", 1);
    c.psql(
        "bench",
        "CREATE TABLE important (id int PRIMARY KEY, v text); \
         INSERT INTO important SELECT g, md5(g::text) FROM generate_series(1, 500) g; \
         CREATE TABLE marker (what text, at timestamptz DEFAULT clock_timestamp())",
    );
    let mut writer = pgbench(c, "bench");

    let r = coffer_pg(&a, &["backup", "--pg-base", &c.url("postgres"), "--wait-for-wal=60s", "--tag", "base"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, log(c));

    // Written after the base backup and before T: recovery replays it.
    c.psql(
        "bench",
        "INSERT INTO important SELECT g, md5(g::text) FROM generate_series(501, 700) g; \
         UPDATE important SET v = 'changed' WHERE id % 7 = 0; \
         INSERT INTO marker (what) VALUES ('before')",
    );
    std::thread::sleep(Duration::from_millis(1100));
    let t = server_now(c);
    let at_t = c.table_dump("bench", "important");
    std::thread::sleep(Duration::from_millis(1100));

    // After T: the bad migration.
    c.psql(
        "bench",
        "INSERT INTO important SELECT g, 'late' FROM generate_series(701, 800) g; \
         INSERT INTO marker (what) VALUES ('after'); DROP TABLE important",
    );
    let last = switch(c);
    wait_archived(c, &last);
    writer.kill().unwrap();
    let _ = writer.wait();

    // Without a snapshot, --target-time picks the base backup; a dry run reads its WAL.
    let scratch = pg::scratch_dir();
    let target = scratch.path().join("data");
    let ts = target.to_str().unwrap();
    let dry = coffer_pg(&a, &["restore", "--pg-base", "--target", ts, "--target-time", &t, "--dry-run"]);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(!target.exists(), "a dry run made {ts}");

    let r = coffer_pg(&a, &["restore", "--pg-base", "--target", ts, "--target-time", &t, "--target-action", "promote"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(target.join("recovery.signal").is_file());
    assert!(r.stdout.contains("pg_ctl -D"), "no start command printed:\n{}", r.stdout);
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = fs::metadata(&target).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    assert_eq!(meta.uid(), fs::metadata(data(c)).unwrap().uid(), "owner of the restored data directory");

    let restored = Cluster::run(scratch);
    wait_promoted(&restored);
    let markers = restored.psql("bench", "SELECT string_agg(what, ',' ORDER BY at) FROM marker");
    assert_eq!(markers.trim(), "before", "recovered past or short of {t}\n{}", log(&restored));
    assert_eq!(restored.table_dump("bench", "important"), at_t, "the table as it was at {t}");
    assert_eq!(restored.psql("bench", "SELECT count(*) FROM important WHERE v = 'late'").trim(), "0");

    // The promoted server archives its new timeline beside the old one.
    let sysid = system_id(c);
    assert_eq!(system_id(&restored), sysid);
    let tli = restored.psql("postgres", "SELECT timeline_id FROM pg_control_checkpoint()").trim().to_string();
    assert_ne!(tli, "1", "a promoted server starts a new timeline");
    let history = a.repo.join("wal").join(&sysid).join(format!("{:08X}.history", tli.parse::<u32>().unwrap()));
    let start = Instant::now();
    while !history.is_file() {
        assert!(start.elapsed() < Duration::from_secs(60), "{} not archived\n{}", history.display(), log(&restored));
        std::thread::sleep(Duration::from_millis(200));
    }
    let v = coffer_on(&a, &["verify"]);
    assert_eq!(v.code, 0, "{}{}", v.stdout, v.stderr);

    // A later PITR follows either timeline: the new one by default
    // (PostgreSQL's `latest`), the old one's end with --target-timeline 1.
    restored.psql("bench", "INSERT INTO marker (what) VALUES ('tl2')");
    let tl2_last = switch(&restored);
    assert!(tl2_last.starts_with(&format!("{:08X}", tli.parse::<u32>().unwrap())), "{tl2_last}");
    wait_archived(&restored, &tl2_last);
    drop(restored);
    let follow = |timeline: Option<&str>, dry: bool| {
        let scratch = pg::scratch_dir();
        let target = scratch.path().join("data");
        let mut args = vec!["restore", "--pg-base", "--json", "--target", target.to_str().unwrap()];
        args.extend(timeline.map(|t| ["--target-timeline", t]).into_iter().flatten());
        if dry {
            args.push("--dry-run");
        }
        (coffer_pg(&a, &args), scratch)
    };
    // The dry run reads the timeline recovery will follow, up to its newest segment.
    let (r, _) = follow(None, true);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["newest_wal"], tl2_last.as_str(), "{}", r.stdout);
    let (r, _) = follow(Some("1"), true);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.json()["newest_wal"].as_str().unwrap().starts_with("00000001"), "{}", r.stdout);
    let (r, _) = follow(Some("7"), true);
    assert!(r.code != 0 && r.stderr.contains("00000007.history"), "{}", r.stderr);
    let (r, _) = follow(Some("seven"), true);
    assert!(r.code == 2 && r.stderr.contains("--target-timeline"), "{} {}", r.code, r.stderr);

    // Each restore that promotes makes the newest timeline (the next one's `latest`):
    // the new timeline first, then the old one's end.
    for (timeline, want) in [(None, "before,tl2"), (Some("1"), "before,after")] {
        let (r, scratch) = follow(timeline, false);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let again = Cluster::run(scratch);
        wait_promoted(&again);
        let markers = again.psql("bench", "SELECT string_agg(what, ',' ORDER BY at) FROM marker");
        assert_eq!(markers.trim(), want, "following timeline {timeline:?}\n{}", log(&again));
        let important = again.psql("bench", "SELECT count(*) FROM pg_tables WHERE tablename = 'important'");
        assert_eq!(important.trim(), if want.ends_with("after") { "0" } else { "1" }, "{timeline:?}");
    }

    // A segment of the new timeline gone: the dry run that follows it names it;
    // following the old timeline does not need it.
    fs::remove_file(a.repo.join("wal").join(&sysid).join(&tl2_last)).unwrap();
    let (r, _) = follow(Some(&tli), true);
    assert!(r.code != 0 && r.stderr.contains(&tl2_last), "{}", r.stderr);
    let (r, _) = follow(Some("1"), true);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// Every way a base backup or its restore can be short is refused, named,
/// and leaves nothing: WAL the archive never got, a server that cannot
/// archive, a target in use, a moment before the backup ended, a segment
/// gone from the archive.
#[test]
fn base_backups_and_their_restores_refuse_what_they_cannot_complete() {
    let a = archiving_cluster();
    let c = &a.cluster;
    let url = c.url("postgres");
    let snapshots = |a: &Archive| coffer_on(a, &["snapshots", "--json"]).ok().json().as_array().unwrap().len();

    // The server says it archived, but the repository never got the WAL.
    c.psql("postgres", "ALTER SYSTEM SET archive_command = 'true'");
    c.psql("postgres", "SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(500));
    let r = coffer_pg(&a, &["backup", "--pg-base", &url, "--wait-for-wal=2s"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("WAL") && r.stderr.contains("not"), "{}", r.stderr);
    assert_eq!(snapshots(&a), 0, "a snapshot without its WAL: {}", r.stderr);
    // Without --wait-for-wal: the snapshot is committed, with a warning and exit 3.
    let r = coffer_pg(&a, &["backup", "--pg-base", &url]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains("warning") && r.stderr.contains("first missing"), "{}", r.stderr);
    assert_eq!(snapshots(&a), 1);
    let unarchived = coffer_on(&a, &["snapshots", "--json"]).ok().json()[0]["id"].as_str().unwrap().to_string();
    // verify names it: a base backup that can never be restored.
    let r = coffer_on(&a, &["verify"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains(&format!("snapshot {}: base backup pg-base/", &unarchived[..8])) && all.contains("not archived"),
        "{all}"
    );

    // A server that cannot archive: pg_basebackup would wait forever; --archive-wait bounds it.
    c.psql("postgres", "ALTER SYSTEM SET archive_command = 'false'");
    c.psql("postgres", "SELECT pg_reload_conf()");
    std::thread::sleep(Duration::from_millis(500));
    let start = Instant::now();
    let r = coffer_pg(&a, &["backup", "--pg-base", &url, "--archive-wait=3s"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(start.elapsed() < Duration::from_secs(30), "waited {:?}", start.elapsed());
    assert!(r.stderr.contains("archive_command"), "{}", r.stderr);
    assert_eq!(snapshots(&a), 1);

    // Archiving again: a good base backup, then some WAL after it.
    c.psql("postgres", "ALTER SYSTEM RESET archive_command");
    c.psql("postgres", "SELECT pg_reload_conf()");
    let r = coffer_pg(&a, &["backup", "--pg-base", &url, "--wait-for-wal=60s", "--json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, log(c));
    let good = r.json()["snapshot"].as_str().unwrap().to_string();
    let names: Vec<String> = (0..3).map(|_| switch(c)).collect();
    wait_archived(c, names.last().unwrap());

    let scratch = pg::scratch_dir();
    let target = scratch.path().join("data");
    let ts = target.to_str().unwrap();
    // The base backup whose WAL never arrived cannot be restored.
    let r = coffer_on(&a, &["restore", &unarchived, "--pg-base", "--target", ts]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("missing") || r.stderr.contains("not"), "{}", r.stderr);
    assert!(!target.exists() || fs::read_dir(&target).unwrap().next().is_none(), "left files in {ts}");

    // A target that is not empty.
    fs::create_dir_all(&target).unwrap();
    fs::write(target.join("PG_VERSION"), "15\n").unwrap();
    let r = coffer_on(&a, &["restore", &good, "--pg-base", "--target", ts]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(ts) && r.stderr.contains("empty"), "{}", r.stderr);
    assert_eq!(fs::read_dir(&target).unwrap().count(), 1, "touched the non-empty target");
    fs::remove_dir_all(&target).unwrap();

    // A running server's data directory.
    let d = data(c);
    let r = coffer_on(&a, &["restore", &good, "--pg-base", "--target", d.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);

    // A moment before the base backup ended: it cannot be reached from it.
    let r = coffer_on(&a, &["restore", &good, "--pg-base", "--target", ts, "--target-time", "2001-01-01T00:00:00Z"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("2001-01-01"), "{}", r.stderr);
    assert!(!target.exists());

    // A segment after the base backup gone from the archive: the dry run names it.
    let sysid = system_id(c);
    fs::remove_file(a.repo.join("wal").join(&sysid).join(&names[1])).unwrap();
    let r = coffer_on(&a, &["restore", &good, "--pg-base", "--target", ts, "--dry-run"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains(&names[1]), "{}", r.stderr);
    assert!(!target.exists());
}

/// The nightly base backup is incremental for free: files (and parts of
/// files) the day did not touch are chunks the repository already has.
#[test]
fn a_second_base_backup_after_a_small_change_stores_a_small_fraction() {
    let a = archiving_cluster();
    let c = &a.cluster;
    c.create_sample_db("bench", 4);
    let backup = |a: &Archive| {
        let r = coffer_pg(a, &["backup", "--pg-base", &c.url("postgres"), "--wait-for-wal=60s", "--json"]);
        assert_eq!(r.code, 0, "{}\n{}", r.stderr, log(c));
        r.json()
    };
    let first = backup(&a);
    c.psql(
        "bench",
        "CREATE TABLE today (id int, v text); INSERT INTO today SELECT g, md5(g::text) FROM generate_series(1, 1000) g; \
         UPDATE pgbench_branches SET bbalance = bbalance + 1; CHECKPOINT",
    );
    let second = backup(&a);
    let (read, new) = (first["bytes"].as_u64().unwrap(), second["new_bytes"].as_u64().unwrap());
    eprintln!(
        "base backup: first read {read} bytes, stored {}; second read {}, new {new}, stored {}",
        first["stored_bytes"], second["bytes"], second["stored_bytes"]
    );
    assert!(read > 50 << 20, "the bench database is {read} bytes");
    assert!(new < read / 10, "the second base backup added {new} of {read} bytes");
}

/// docs/OPERATIONS.md's base backup section, as written, after the WAL
/// archiving section's set-up: the nightly cron line as the postgres user
/// in cron's environment, then the restore to a moment as root, and the
/// server it leaves starts and stops at that moment.
#[test]
fn the_base_backup_section_of_operations_md_works_as_written() {
    if !coffer::is_root() {
        eprintln!("skipped: the section runs as root and as the postgres user");
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let doc = docs::read("docs/OPERATIONS.md");
    let (archiving, section) =
        (docs::section(&doc, "## WAL archiving"), docs::section(&doc, "## Base backups and restore to a moment"));
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().display().to_string();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    for d in ["srv/backup", "var/lib/postgresql", "etc/coffer"] {
        fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    fs::write(dir.path().join("etc/coffer/passphrase"), PASSPHRASE).unwrap();
    let scratch = pg::scratch_dir();
    let restored = scratch.path().join("data");
    let sub = |text: &str| {
        text.replace("/usr/local/bin/coffer", bin())
            .replace("/var/lib/postgresql/15/main", restored.to_str().unwrap())
            .replace("/srv/", &format!("{r}/srv/"))
            .replace("/var/lib/postgresql", &format!("{r}/var/lib/postgresql"))
            .replace("/etc/coffer/", &format!("{r}/etc/coffer/"))
    };
    let root_sh = |script: &str| {
        let out = Command::new("bash")
            .args(["-euo", "pipefail", "-c", script])
            .env_remove("COFFER_PASSWORD")
            .env_remove("COFFER_REPOSITORY")
            .env_remove("COFFER_PASSWORD_FILE")
            .output()
            .unwrap();
        let run: Run = out.into();
        assert_eq!(run.code, 0, "{script}\n{}", run.stderr);
        run
    };
    root_sh(&sub(&docs::block(archiving, "As root, once", "sh")));
    let conf = sub(&docs::block(archiving, "In `postgresql.conf`", ""));
    let c = Cluster::start_with(|_| conf.clone());
    c.psql("postgres", "CREATE TABLE marker (what text)");
    switch(&c);

    // The nightly line, as the user it names, in cron's environment: silent.
    let cron = section.lines().find(|l| l.starts_with("15 2 * * * ")).expect("the cron line");
    let fields: Vec<&str> = cron.splitn(7, ' ').collect();
    assert_eq!(fields[5], "postgres");
    let socket = format!("host={}&port={}", c.dir.path().display(), c.port);
    let line = sub(fields[6]).replace("host=/var/run/postgresql", &socket);
    assert_ne!(line, sub(fields[6]), "the cron line connects through /var/run/postgresql");
    let r: Run = Command::new("runuser")
        .args(["-u", "postgres", "--", "env", "-i", "PATH=/usr/bin:/bin", "HOME=/tmp", "bash", "-c", &line])
        .current_dir("/")
        .output()
        .unwrap()
        .into();
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""), "{line}\n{}", log(&c));

    // The bad migration, after the moment.
    c.psql("postgres", "INSERT INTO marker VALUES ('before')");
    std::thread::sleep(Duration::from_millis(1100));
    let t = c
        .psql("postgres", "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US+00')")
        .trim()
        .to_string();
    std::thread::sleep(Duration::from_millis(1100));
    c.psql("postgres", "INSERT INTO marker VALUES ('after'); DROP TABLE t");
    let last = switch(&c);
    wait_archived(&c, &last);

    let block = docs::block(section, "check first, then restore", "sh");
    assert_eq!(block.matches("'2026-12-03 14:02:00+00'").count(), 2, "{block}");
    fs::create_dir_all(&restored).unwrap();
    let r = root_sh(&sub(&block).replace("2026-12-03 14:02:00+00", &t));
    assert!(r.stdout.contains("dry run: nothing was written"), "{}", r.stdout);
    assert!(r.stdout.contains(&format!("pg_ctl -D {}", restored.display())), "{}", r.stdout);
    assert!(scratch.path().join("data.broken").is_dir(), "the mv line");

    // It pauses at the moment, read-only, as the section says; resumed, it promotes.
    let back = Cluster::run(scratch);
    let start = Instant::now();
    while back.psql("postgres", "SELECT pg_get_wal_replay_pause_state()").trim() != "paused" {
        assert!(start.elapsed() < Duration::from_secs(60), "not paused\n{}", log(&back));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(back.psql("postgres", "SELECT string_agg(what, ',') FROM marker").trim(), "before");
    back.psql("postgres", "SELECT pg_wal_replay_resume()");
    wait_promoted(&back);
    assert_eq!(back.psql("postgres", "SELECT string_agg(what, ',') FROM marker").trim(), "before", "{}", log(&back));
    assert_eq!(back.psql("postgres", "SELECT count(*) > 0 FROM t").trim(), "t", "the table dropped after {t}");
    drop(back);

    // The weekly drill line, as root in cron's environment: silent, and it cleans up.
    let cron = section.lines().find(|l| l.starts_with("30 3 * * 0 ")).expect("the drill line");
    let fields: Vec<&str> = cron.splitn(7, ' ').collect();
    assert_eq!(fields[5], "root");
    fs::write(dir.path().join("etc/coffer/db1-checks.sql"), "SELECT count(*) = 2 FROM marker;\n").unwrap();
    let tmp = pg::scratch_dir();
    let line = sub(fields[6]).replace("/var/tmp", tmp.path().to_str().unwrap());
    let pg_bin = pg::bin_dir();
    let line = if pg_bin.starts_with("/usr/lib/postgresql") {
        line
    } else {
        format!("{line} --pg-bin-dir {}", pg_bin.display())
    };
    let r: Run = Command::new("env")
        .args(["-i", "PATH=/usr/bin:/bin", "HOME=/root", "bash", "-c", &line])
        .output()
        .unwrap()
        .into();
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""), "{line}");
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0, "the drill left files");
}

/// A cluster with a base backup, then the row 'before' in table marker,
/// the moment T, the row 'after', and the segment holding it archived:
/// the cluster, T, and that segment's name.
fn a_moment_after_a_base_backup() -> (Archive, String, String) {
    let a = archiving_cluster();
    let c = &a.cluster;
    c.psql("postgres", "CREATE TABLE marker (what text)");
    let r = coffer_pg(&a, &["backup", "--pg-base", &c.url("postgres"), "--wait-for-wal=60s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    c.psql("postgres", "INSERT INTO marker VALUES ('before')");
    std::thread::sleep(Duration::from_millis(1100));
    let t = server_now(c);
    std::thread::sleep(Duration::from_millis(1100));
    c.psql("postgres", "INSERT INTO marker VALUES ('after')");
    let last = switch(c);
    wait_archived(c, &last);
    (a, t, last)
}

/// `drill --pitr` recovers a throwaway server to the moment, checks it,
/// and leaves nothing behind; a damaged WAL segment fails it, and it
/// still stops its server and removes its folder.
#[test]
fn drill_pitr_passes_on_a_good_backup_and_fails_on_a_damaged_segment() {
    let (a, t, last) = a_moment_after_a_base_backup();
    let c = &a.cluster;

    let checks = c.dir.path().join("checks.sql");
    fs::write(
        &checks,
        "-- the moment: the row before it, none after\nSELECT count(*) = 1 FROM marker WHERE what = 'before';\n\
         SELECT NOT EXISTS (SELECT 1 FROM marker WHERE what = 'after');\n",
    )
    .unwrap();
    let scratch = pg::scratch_dir();
    let bin_dir = pg::bin_dir();
    // A dump drill's samples in the same metrics file stay apart from the PITR drill's.
    let metrics = c.dir.path().join("coffer.prom");
    fs::write(&metrics, "coffer_drill_passed{command=\"drill\"} 1\n").unwrap();
    let drill = |a: &Archive| {
        coffer_on(
            a,
            &[
                "--metrics-file",
                metrics.to_str().unwrap(),
                "drill",
                "--pitr",
                "--pg-scratch-dir",
                scratch.path().to_str().unwrap(),
                "--target-time",
                &t,
                "--check-sql",
                checks.to_str().unwrap(),
                "--pg-bin-dir",
                bin_dir.to_str().unwrap(),
                "--json",
            ],
        )
    };
    let r = drill(&a);
    assert_eq!(r.code, 0, "{}\n{}", r.stderr, r.stdout);
    let j = r.json();
    assert_eq!(j["passed"], true, "{j}");
    assert_eq!(j["checks_run"], 2, "{j}");
    assert!(j["checks"].as_array().unwrap().iter().all(|c| c["passed"] == true), "{j}");
    let marker = j["tables"].as_array().unwrap().iter().find(|t| t["table"] == "marker").cloned();
    assert_eq!(marker.map(|m| m["rows"].clone()), Some(serde_json::json!(1)), "{j}");
    for phase in ["files_secs", "replay_secs", "check_secs", "total_secs"] {
        assert!(j[phase].as_f64().unwrap() > 0.0, "{phase}: {j}");
    }
    assert!(j["recovery_stop"].as_str().unwrap_or_default().contains("recovery stopping"), "{j}");
    assert_eq!(j["cleaned_up"], true, "{j}");
    assert_eq!(fs::read_dir(scratch.path()).unwrap().count(), 0, "the drill left files");
    let prom = fs::read_to_string(&metrics).unwrap();
    for line in [
        "coffer_drill_passed{command=\"drill\"} 1",
        "coffer_drill_passed{command=\"drill_pitr\"} 1",
        "coffer_drill_checks_run{command=\"drill_pitr\"} 2",
    ] {
        assert!(prom.lines().any(|l| l == line), "no {line:?} in\n{prom}");
    }
    let replay = prom.lines().find(|l| l.starts_with("coffer_drill_seconds{command=\"drill_pitr\",phase=\"replay\"}"));
    assert!(replay.is_some_and(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() > 0.0), "{prom}");
    // Nothing of the drill was archived: it never archives.
    let sysid = system_id(c);
    assert!(!a.repo.join("wal").join(&sysid).join("00000002.history").exists());

    // Stopped by SIGTERM while its server runs a check: the server stops, the folder goes.
    let slow = c.dir.path().join("slow.sql");
    fs::write(&slow, "SELECT pg_sleep(60) IS NOT NULL;\n").unwrap();
    let child = Command::new(bin())
        .args(["drill", "--pitr", "--pg-scratch-dir", scratch.path().to_str().unwrap(), "--check-sql"])
        .arg(&slow)
        .arg("--pg-bin-dir")
        .arg(&bin_dir)
        .env("COFFER_REPOSITORY", &a.repo)
        .env("COFFER_PASSWORD_FILE", &a.key)
        .env_remove("COFFER_PASSWORD")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let server_up = || {
        let dirs: Vec<_> = fs::read_dir(scratch.path()).unwrap().filter_map(|e| e.ok()).collect();
        dirs.iter().any(|d| d.path().join("data/postmaster.pid").exists())
    };
    while !server_up() {
        assert!(start.elapsed() < Duration::from_secs(60), "the drill's server never started");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Past the replay, into the check (pg_sleep) — or at least with its server up.
    std::thread::sleep(Duration::from_secs(2));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("drill stopped by signal 15") && stderr.contains("removed"), "{stderr}");
    assert_eq!(fs::read_dir(scratch.path()).unwrap().count(), 0, "the stopped drill left files");
    let leftover = Command::new("pgrep").args(["-f", scratch.path().to_str().unwrap()]).output().unwrap();
    assert!(leftover.stdout.is_empty(), "the stopped drill's server still runs");

    // A flipped byte in the segment that holds the moment: recovery cannot reach it.
    let object = a.repo.join("wal").join(&sysid).join(&last);
    let mut bad = fs::read(&object).unwrap();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    fs::remove_file(&object).unwrap();
    fs::write(&object, &bad).unwrap();
    let r = drill(&a);
    assert_eq!(r.code, 1, "{}\n{}", r.stderr, r.stdout);
    let j = r.json();
    assert_eq!(j["passed"], false, "{j}");
    assert!(r.stderr.contains("drill failed") && j["error"].as_str().unwrap().contains("scratch server"), "{j}");
    let prom = fs::read_to_string(&metrics).unwrap();
    assert!(prom.lines().any(|l| l == "coffer_drill_passed{command=\"drill_pitr\"} 0"), "{prom}");
    assert!(prom.lines().any(|l| l == "coffer_last_run_exit_code{command=\"drill_pitr\"} 1"), "{prom}");
    assert_eq!(j["cleaned_up"], true, "{j}");
    assert_eq!(fs::read_dir(scratch.path()).unwrap().count(), 0, "the failed drill left files");
    let leftover = Command::new("pgrep").args(["-f", scratch.path().to_str().unwrap()]).output().unwrap();
    assert!(
        leftover.stdout.is_empty(),
        "a server of the drill still runs: {}",
        String::from_utf8_lossy(&leftover.stdout)
    );
}

/// Retention: once forget drops the older base backup, prune deletes the
/// WAL only it needed, and nothing a kept one needs.
#[test]
fn prune_deletes_the_wal_no_kept_base_backup_needs() {
    let a = archiving_cluster();
    let c = &a.cluster;
    let backup = |a: &Archive| {
        let r = coffer_pg(a, &["backup", "--pg-base", &c.url("postgres"), "--wait-for-wal=60s", "--json"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
        r.json()["snapshot"].as_str().unwrap().to_string()
    };
    let before: Vec<String> = (0..2).map(|_| switch(c)).collect();
    let older = backup(&a);
    let between: Vec<String> = (0..2).map(|_| switch(c)).collect();
    let newer = backup(&a);
    let after = switch(c);
    wait_archived(c, &after);
    let sysid = system_id(c);
    let archived = |name: &str| a.repo.join("wal").join(&sysid).join(name).is_file();

    // Both base backups kept: nothing of the WAL after the older one's start goes.
    let r = coffer_on(&a, &["prune", "--json"]).ok().json();
    assert_eq!(r["wal_deleted"], 2, "{r}");
    assert!(before.iter().all(|n| !archived(n)) && between.iter().all(|n| archived(n)), "{r}");

    // A dry run says what would go and deletes nothing.
    coffer_on(&a, &["forget", &older]).ok();
    let r = coffer_on(&a, &["prune", "--dry-run", "--json"]).ok().json();
    assert!(r["wal_deleted"].as_u64().unwrap() >= 2, "{r}");
    assert!(between.iter().all(|n| archived(n)));
    let r = coffer_on(&a, &["prune"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("of archived WAL"), "{}", r.stdout);
    assert!(between.iter().all(|n| !archived(n)) && archived(&after), "{}", r.stdout);

    // What stays restores: the archive is continuous from the kept base backup on.
    coffer_on(&a, &["verify"]).ok();
    let scratch = pg::scratch_dir();
    let t = scratch.path().join("data");
    let r = coffer_on(&a, &["restore", &newer, "--pg-base", "--target", t.to_str().unwrap(), "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// `copy` takes a base backup's snapshot with the WAL it needs (its
/// stanza, from the base backup's start on): the copy verifies, a dry run
/// reads every segment, the cluster restores from it to a moment, and a
/// second copy stores no WAL file again.
#[test]
fn copy_takes_a_base_backup_with_its_wal() {
    let (a, t, last) = a_moment_after_a_base_backup();
    let c = &a.cluster;

    let dir = pg::scratch_dir();
    let (copy_repo, copy_key) = (dir.path().join("offsite"), dir.path().join("offsite.key"));
    let on_copy = |args: &[&str]| -> Run {
        Command::new(bin())
            .args(args)
            .env("COFFER_REPOSITORY", &copy_repo)
            .env("COFFER_PASSWORD", PASSPHRASE)
            .env_remove("COFFER_PASSWORD_FILE")
            .output()
            .unwrap()
            .into()
    };
    on_copy(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]).ok();
    on_copy(&["key", "add-file", copy_key.to_str().unwrap()]).ok();
    pg::chown_postgres(&copy_key);
    let try_copy = || -> Run {
        Command::new(bin())
            .args(["copy", "--json", "--to", copy_repo.to_str().unwrap()])
            .env("COFFER_REPOSITORY", &a.repo)
            .env("COFFER_PASSWORD_FILE", &a.key)
            .env("COFFER_TO_PASSWORD", PASSPHRASE)
            .env_remove("COFFER_PASSWORD")
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .output()
            .unwrap()
            .into()
    };
    let copy = || -> serde_json::Value { try_copy().ok().json() };
    // A damaged WAL file in the source: the copy fails naming it, and no
    // snapshot of the base backup exists in the copy without its WAL.
    let segment = a.repo.join("wal").join(system_id(c)).join(&last);
    let good = fs::read(&segment).unwrap();
    flip_byte(&segment, 0.5);
    let r = try_copy();
    assert!(r.code == 1 && r.stderr.contains(&last), "{}", r.stderr);
    assert_eq!(on_copy(&["snapshots", "--json"]).ok().json().as_array().unwrap().len(), 0);
    fs::remove_file(&segment).unwrap();
    fs::write(&segment, good).unwrap();
    let j = copy();
    assert_eq!(j["copied"], 1, "{j}");
    // (The failed copy stored the WAL files it read before the damaged one.)
    let files = j["wal_files"].as_u64().unwrap() + j["wal_present"].as_u64().unwrap();
    assert!(files >= 3, "the base backup's segment, its .backup file, the stanza record, {last}: {j}");
    let v = on_copy(&["verify", "--json"]).ok().json();
    assert_eq!(v["base_backups"], 1, "{v}");
    let scratch = pg::scratch_dir();
    let target = scratch.path().join("data");
    let ts = target.to_str().unwrap();
    let key = copy_key.to_str().unwrap();
    let dry = on_copy(&[
        "restore",
        "--pg-base",
        "--json",
        "--target",
        ts,
        "--target-time",
        &t,
        "--dry-run",
        "--recovery-password-file",
        key,
    ])
    .ok()
    .json();
    assert_eq!(dry["newest_wal"], last.as_str(), "{dry}");
    let again = copy();
    assert_eq!((again["copied"].as_u64(), again["wal_files"].as_u64()), (Some(0), Some(0)), "{again}");
    assert_eq!(again["wal_present"].as_u64(), Some(files), "{again}");

    // The server's restore_command reads the copy as postgres.
    pg::chown_postgres(&copy_repo);
    let r = on_copy(&[
        "restore",
        "--pg-base",
        "--target",
        ts,
        "--target-time",
        &t,
        "--target-action",
        "promote",
        "--recovery-password-file",
        key,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let restored = Cluster::run(scratch);
    wait_promoted(&restored);
    assert_eq!(
        restored.psql("postgres", "SELECT string_agg(what, ',') FROM marker").trim(),
        "before",
        "{}",
        log(&restored)
    );
}

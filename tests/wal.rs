//! WAL archiving against a real PostgreSQL 15: `wal-push` as its
//! archive_command (run by the server, as the postgres user, with a key
//! file), `wal-fetch` as a restore_command would run it.

use crate::common::pg::Cluster;
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

/// The RPO alarm: `verify --max-wal-age` (and --max-age) passes while WAL
/// is archived and fails once archiving stops.
#[test]
fn verify_max_age_fails_once_archiving_stops() {
    let a = archiving_cluster();
    let c = &a.cluster;
    // A snapshot too, so --max-age has a backup to judge.
    let src = a.cluster.dir.path().join("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"x").unwrap();
    coffer_on(&a, &["backup", "-q", src.to_str().unwrap()]).ok();
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
        scope.spawn(|| {
            c.psql("postgres", "CREATE TABLE IF NOT EXISTS beat (at timestamptz)");
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                // A new segment every half second, as archive_timeout would
                // close one (deterministically: it is the checkpointer's).
                c.psql("postgres", "INSERT INTO beat VALUES (now()); SELECT pg_switch_wal()");
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        let first = switch(c);
        wait_archived(c, &first);
        std::thread::sleep(Duration::from_secs(4));
        let r = coffer_on(&a, &["verify", "--json", "--max-age", "1h", "--max-wal-age", "5s"]);
        assert_eq!(r.code, 0, "while archiving: {}{}", r.stdout, r.stderr);
        let j = r.json();
        // Newer segments were archived meanwhile.
        let newest = j["wal"][0]["newest"].as_str().unwrap_or_default().to_string();
        assert!(newest > first && j["wal"][0]["newest_age_secs"].as_f64().unwrap() < 5.0, "{j}\n{:?}", archiver(c));
        c.psql("postgres", "ALTER SYSTEM SET archive_command = 'false'");
        c.psql("postgres", "SELECT pg_reload_conf()");
        std::thread::sleep(Duration::from_secs(7));
        let r = coffer_on(&a, &["verify", "--max-age", "1h", "--max-wal-age", "5s"]);
        assert_eq!(r.code, 1, "after archiving stopped: {}{}", r.stdout, r.stderr);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(all.contains("newest archived WAL of stanza") && all.contains("older than --max-wal-age 5s"), "{all}");
        // --max-age judges the WAL too.
        let r = coffer_on(&a, &["verify", "--max-age", "5s"]);
        let all = format!("{}{}", r.stdout, r.stderr);
        assert!(r.code == 1 && all.contains("older than --max-age 5s") && all.contains("archived WAL"), "{all}");
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
    let section = &doc[doc.find("## WAL archiving").expect("the section")..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
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

//! S3 repositories against a real S3-compatible server (Garage), with a
//! fault-injecting proxy where the test needs faults or byte counts.

use crate::common::garage::{self, Garage};
use crate::common::pg::{self, PG_PASSWORD};
use crate::common::proxy::Proxy;
use crate::common::*;
use std::fs;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst))
}

/// A workspace whose repository is a fresh prefix in the Garage bucket,
/// reached directly or through `endpoint` (a proxy).
struct S3Env {
    env: Env,
    repo: String,
    vars: Vec<(String, String)>,
}

impl S3Env {
    fn new(g: &Garage, endpoint: Option<String>) -> S3Env {
        let env = Env::empty();
        let repo = format!("s3://{}/{}", g.get("GARAGE_TEST_BUCKET"), unique("repo"));
        let mut vars = g.env.clone();
        if let Some(e) = endpoint {
            vars.retain(|(k, _)| k != "COFFER_S3_ENDPOINT");
            vars.push(("COFFER_S3_ENDPOINT".into(), e));
        }
        let s = S3Env { env, repo, vars };
        s.run(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]).ok();
        s
    }

    fn command(&self) -> Command {
        let mut c = self.env.command();
        c.envs(self.vars.iter().map(|(k, v)| (k, v)))
            .env("COFFER_REPOSITORY", &self.repo)
            .env("XDG_CACHE_HOME", self.env.path("cache"))
            .env("PGPASSWORD", PG_PASSWORD)
            .env("COFFER_PG_BIN_DIR", pg::bin_dir());
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        self.command().args(args).output().unwrap().into()
    }
}

fn random_file(path: &std::path::Path, mib: usize, seed: u64) {
    fs::write(path, pseudo_random(mib * 1024 * 1024, seed)).unwrap();
}

#[test]
fn file_trees_and_databases_round_trip_through_s3() {
    let g = garage::shared();
    let s = S3Env::new(g, None);
    let src = s.env.path("src");
    make_rich_tree(&src);
    // A file large enough for a multipart pack upload.
    random_file(&src.join("large.bin"), 20, 11);
    let cluster = pg::shared();
    let db = unique("s3db").replace('-', "_");
    cluster.create_sample_db(&db, 1);

    let j = s.run(&["backup", "--json", src.to_str().unwrap(), "--pg", &cluster.url(&db)]).ok().json();
    assert_eq!(j["databases"], 1);
    s.run(&["verify", "--read-data"]).ok();

    let target = s.env.path("out");
    s.run(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&target, &src)));

    let copy = unique("s3copy").replace('-', "_");
    cluster.create_db(&copy);
    s.run(&["restore", "latest", "--db", &db, "--pg-target", &cluster.url(&copy)]).ok();
    assert_eq!(cluster.plain_dump(&db), cluster.plain_dump(&copy));

    // Unchanged data adds (almost) nothing: the files nothing, the dump one
    // chunk (its archive header carries the dump's timestamp).
    let again = s.run(&["backup", "--json", src.to_str().unwrap(), "--pg", &cluster.url(&db)]).ok().json();
    assert!(again["new_chunks"].as_u64().unwrap() <= 1, "{again}");
    assert!(again["stored_bytes"].as_u64().unwrap() < 1024 * 1024, "{again}");
    let list = s.run(&["snapshots", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(s.run(&["verify", "--json"]).ok().json()["incomplete_uploads"], 0);
}

#[test]
fn a_partial_restore_fetches_only_what_it_needs() {
    let g = garage::shared();
    let proxy = Proxy::start(g.addr());
    let s = S3Env::new(g, Some(proxy.endpoint()));
    let src = s.env.path("src");
    fs::create_dir_all(&src).unwrap();
    random_file(&src.join("a.bin"), 6, 1);
    random_file(&src.join("b.bin"), 6, 2);
    s.run(&["backup", src.to_str().unwrap()]).ok();

    proxy.reset_counters();
    let all = s.env.path("all");
    s.run(&["restore", "latest", "--target", all.to_str().unwrap()]).ok();
    let full = proxy.state.bytes_down.load(Ordering::SeqCst);

    proxy.reset_counters();
    let part = s.env.path("part");
    s.run(&["restore", "latest", "--target", part.to_str().unwrap(), "--include", "a.bin"]).ok();
    let partial = proxy.state.bytes_down.load(Ordering::SeqCst);
    assert_eq!(fs::read(restored(&part, &src).join("a.bin")).unwrap(), fs::read(src.join("a.bin")).unwrap());
    assert!(!restored(&part, &src).join("b.bin").exists());
    // Both files sit in one pack; ranged reads fetch a.bin's chunks only.
    assert!(full > 12 * 1024 * 1024, "full restore fetched {full}");
    assert!(partial < 7 * 1024 * 1024, "partial restore fetched {partial} bytes of {full}");
    let ranged =
        proxy.state.requests.lock().unwrap().iter().filter(|r| r.starts_with("GET") && r.contains("/data/")).count();
    assert!(ranged >= 1);
}

#[test]
fn transient_503s_are_retried_and_the_backup_succeeds() {
    let g = garage::shared();
    let proxy = Proxy::start(g.addr());
    let s = S3Env::new(g, Some(proxy.endpoint()));
    let src = s.env.path("src");
    fs::create_dir_all(&src).unwrap();
    random_file(&src.join("big.bin"), 20, 3);
    // Uploads (pack parts, index, manifest) and reads alike.
    proxy.fail_next("PUT", 4);
    s.run(&["backup", src.to_str().unwrap()]).ok();
    assert_eq!(proxy.state.injected_503.load(Ordering::SeqCst), 4);
    proxy.fail_next("GET", 3);
    let target = s.env.path("out");
    s.run(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(proxy.state.injected_503.load(Ordering::SeqCst), 7);
    assert_eq!(fs::read(restored(&target, &src).join("big.bin")).unwrap(), fs::read(src.join("big.bin")).unwrap());

    // Past the retry budget: a clear error, nothing committed.
    let snapshots_before = s.run(&["snapshots", "--json"]).ok().json().as_array().unwrap().len();
    fs::write(src.join("new.txt"), b"new").unwrap();
    proxy.fail_next("PUT", 1000);
    let r = s.run(&["backup", "--s3-max-attempts", "2", src.to_str().unwrap()]);
    proxy.fail_next("PUT", 0);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("SlowDown") && r.stderr.contains(&proxy.endpoint()), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
    assert_eq!(s.run(&["snapshots", "--json"]).ok().json().as_array().unwrap().len(), snapshots_before);
}

#[test]
fn a_connection_cut_mid_get_is_retried() {
    let g = garage::shared();
    let proxy = Proxy::start(g.addr());
    let s = S3Env::new(g, Some(proxy.endpoint()));
    let src = s.env.path("src");
    fs::create_dir_all(&src).unwrap();
    random_file(&src.join("big.bin"), 4, 4);
    s.run(&["backup", src.to_str().unwrap()]).ok();
    proxy.state.cut_after.store(100_000, Ordering::SeqCst);
    proxy.state.cut_gets.store(2, Ordering::SeqCst);
    let target = s.env.path("out");
    s.run(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(proxy.state.cut_done.load(Ordering::SeqCst), 2, "the cuts happened");
    assert_eq!(fs::read(restored(&target, &src).join("big.bin")).unwrap(), fs::read(src.join("big.bin")).unwrap());
}

#[test]
fn the_server_stopping_mid_backup_fails_cleanly_and_the_next_backup_succeeds() {
    let g = Garage::start();
    let proxy = Proxy::start(g.addr());
    let s = S3Env::new(&g, Some(proxy.endpoint()));
    let src = s.env.path("src");
    fs::create_dir_all(&src).unwrap();
    random_file(&src.join("big.bin"), 96, 5);

    let child = s
        .command()
        .args(["backup", "--s3-max-attempts", "3", src.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Stop the server once a multipart upload is under way.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !proxy.state.requests.lock().unwrap().iter().any(|r| r.starts_with("PUT") && r.contains("partNumber")) {
        assert!(std::time::Instant::now() < deadline, "no multipart upload began");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    g.stop();
    let r: Run = child.wait_with_output().unwrap().into();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(&proxy.endpoint()), "names the endpoint: {}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);

    g.restart();
    assert_eq!(s.run(&["snapshots", "--json"]).ok().json().as_array().unwrap().len(), 0, "no snapshot was committed");
    // The next run aborts the upload the dead process left open.
    s.run(&["backup", src.to_str().unwrap()]).ok();
    let v = s.run(&["verify", "--read-data", "--json"]).ok().json();
    assert_eq!(v["incomplete_uploads"], 0, "{v}");
    assert_eq!(s.run(&["snapshots", "--json"]).ok().json().as_array().unwrap().len(), 1);
}

#[test]
fn wrong_credentials_and_a_missing_bucket_give_one_line_errors() {
    let g = garage::shared();
    let s = S3Env::new(g, None);
    let r: Run =
        s.command().env("AWS_SECRET_ACCESS_KEY", "not-the-secret").args(["snapshots"]).output().unwrap().into();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("coffer-test") && r.stderr.contains(&g.endpoint()), "{}", r.stderr);
    assert!(r.stderr.contains("403"), "{}", r.stderr);
    assert!(!r.stderr.contains("not-the-secret"));

    let r: Run = s
        .command()
        .env("COFFER_REPOSITORY", "s3://no-such-bucket/x")
        .args(["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("no-such-bucket") && r.stderr.contains(&g.endpoint()), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
}

#[test]
fn a_pack_damaged_on_its_way_to_the_server_is_never_committed() {
    use std::sync::atomic::Ordering::SeqCst;
    let g = garage::shared();
    let proxy = Proxy::start(g.addr());
    let s = S3Env::new(g, Some(proxy.endpoint()));
    let src = s.env.path("src");
    fs::create_dir_all(&src).unwrap();
    let snapshots = || s.run(&["snapshots", "--json"]).ok().json().as_array().unwrap().len();
    // A small pack (one PUT), then a pack large enough for multipart parts.
    for mib in [1, 24] {
        fs::write(src.join("b.bin"), pseudo_random(mib << 20, 40 + mib as u64)).unwrap();
        let before = snapshots();
        proxy.state.flip_puts.store(1, SeqCst);
        let r = s.run(&["backup", src.to_str().unwrap()]);
        assert_eq!(proxy.state.flipped.swap(0, SeqCst), 1, "the proxy damaged no upload");
        // The server refused the damaged body: the backup failed, committing nothing.
        assert_eq!(r.code, 1, "{mib} MiB: a damaged upload was accepted: {}", r.stderr);
        assert!(r.stderr.contains("BadDigest") || r.stderr.contains("Content-MD5"), "{}", r.stderr);
        assert_eq!(snapshots(), before);
        // The next backup stores it whole, and it reads back.
        s.run(&["backup", src.to_str().unwrap()]).ok();
        let target = s.env.path(&format!("out-{mib}"));
        s.run(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
        assert_eq!(fs::read(src.join("b.bin")).unwrap(), fs::read(restored(&target, &src).join("b.bin")).unwrap());
        s.run(&["verify", "--read-data"]).ok();
    }
}

#[test]
fn init_refuses_a_prefix_inside_or_around_another_repository() {
    let g = garage::shared();
    let s = S3Env::new(g, None);
    let init = |repo: &str| -> Run {
        s.command()
            .env("COFFER_REPOSITORY", repo)
            .args(["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"])
            .output()
            .unwrap()
            .into()
    };
    for inner in [format!("{}/snapshots", s.repo), format!("{}/a/b", s.repo)] {
        let r = init(&inner);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains("inside the repository") && r.stderr.contains(&s.repo), "{}", r.stderr);
    }
    // Around it: the prefix above holds the repository's objects.
    let outer = s.repo.rsplit_once('/').unwrap().0.to_string();
    let r = init(&outer);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("holds objects"), "{}", r.stderr);
    s.run(&["snapshots"]).ok();
}

#[test]
fn only_packs_take_the_storage_class() {
    let g = garage::shared();
    let proxy = Proxy::start(g.addr());
    let s = S3Env::new(g, Some(proxy.endpoint()));
    let src = s.env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), pseudo_random(1 << 20, 9)).unwrap();
    proxy.reset_counters();
    s.run(&["backup", "--storage-class", "STANDARD", src.to_str().unwrap()]).ok();
    let requests = proxy.state.requests.lock().unwrap().clone();
    let puts: Vec<&String> = requests.iter().filter(|r| r.starts_with("PUT ") || r.starts_with("POST ")).collect();
    assert!(puts.iter().any(|r| r.contains("/data/") && r.contains("storage-class=STANDARD")), "{puts:?}");
    for r in &puts {
        // Locks, indexes and manifests must read back at once, whatever class packs go to.
        if r.contains("/locks/") || r.contains("/index/") || r.contains("/snapshots/") {
            assert!(!r.contains("storage-class"), "{r}");
        }
    }
    s.run(&["restore", "latest", "--target", s.env.path("out").to_str().unwrap()]).ok();
}

#[test]
fn prune_aborts_multipart_uploads_left_open() {
    let g = garage::shared();
    let s = S3Env::new(g, None);
    let src = s.env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), b"a").unwrap();
    s.run(&["backup", src.to_str().unwrap()]).ok();
    // An upload whose CreateMultipartUpload answer never reached its client.
    let prefix = s.repo.trim_start_matches("s3://").split_once('/').unwrap().1.to_string();
    let script = format!(
        "import boto3\ns3 = boto3.client('s3', endpoint_url='{}', region_name='garage', aws_access_key_id='{}', \
         aws_secret_access_key='{}')\ns3.create_multipart_upload(Bucket='{}', Key='{prefix}/data/ab/orphan')\n",
        g.endpoint(),
        g.get("AWS_ACCESS_KEY_ID"),
        g.get("AWS_SECRET_ACCESS_KEY"),
        g.get("GARAGE_TEST_BUCKET")
    );
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-moto/bin/python");
    let out = Command::new(python).arg("-c").arg(script).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(s.run(&["verify", "--json"]).ok().json()["incomplete_uploads"], 1);
    // Younger than a day: left alone (it may be a backup's upload in flight).
    assert_eq!(s.run(&["prune", "--json"]).ok().json()["uploads_aborted"], 0);
    let j = s.run(&["prune", "--abort-uploads-after", "0s", "--json"]).ok().json();
    assert_eq!(j["uploads_aborted"], 1, "{j}");
    assert_eq!(s.run(&["verify", "--json"]).ok().json()["incomplete_uploads"], 0);
}

/// The WAL archive on S3: pushed segments come back byte for byte, verify
/// lists them under their stanza and names a gap.
#[test]
fn wal_is_archived_and_fetched_through_s3() {
    let g = garage::shared();
    let s = S3Env::new(g, None);
    let key = s.env.path("wal.key");
    s.run(&["key", "add-file", key.to_str().unwrap()]).ok();
    let dir = s.env.path("pg_wal");
    fs::create_dir_all(&dir).unwrap();
    let names = ["000000010000000000000001", "000000010000000000000002", "000000010000000000000004"];
    for (i, n) in names.iter().enumerate() {
        fs::write(dir.join(n), wal_segment(42, i as u64)).unwrap();
        let r: Run = s
            .command()
            .env_remove("COFFER_PASSWORD")
            .env("COFFER_PASSWORD_FILE", &key)
            .args(["wal-push", "-q"])
            .arg(dir.join(n))
            .output()
            .unwrap()
            .into();
        r.ok();
    }
    let out = s.env.path("RECOVERYXLOG");
    for n in names {
        s.run(&["wal-fetch", "--stanza", "42", n, out.to_str().unwrap()]).ok();
        assert_eq!(fs::read(&out).unwrap(), fs::read(dir.join(n)).unwrap(), "{n}");
    }
    let r = s.run(&["wal-fetch", "--stanza", "42", "000000010000000000000003", out.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let r = s.run(&["verify", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["wal"][0]["stanza"], "42", "{j}");
    assert_eq!(j["wal"][0]["timelines"][0]["segments"], 3, "{j}");
    assert!(j["errors"].to_string().contains("WAL segment 000000010000000000000003 is missing"), "{j}");
}

/// A wal-push killed mid-upload leaves nothing wal-fetch would return;
/// PostgreSQL's retry then stores the segment whole.
#[test]
fn a_wal_push_killed_mid_upload_leaves_no_segment() {
    let g = garage::shared();
    let proxy = Proxy::start(g.addr());
    let s = S3Env::new(g, Some(proxy.endpoint()));
    let key = s.env.path("wal.key");
    s.run(&["key", "add-file", key.to_str().unwrap()]).ok();
    let seg = s.env.path("000000010000000000000007");
    fs::write(&seg, wal_segment(42, 7)).unwrap();
    let push = || {
        let mut c = s.command();
        c.env_remove("COFFER_PASSWORD").env("COFFER_PASSWORD_FILE", &key).args(["wal-push", "-q"]).arg(&seg);
        c
    };
    *proxy.state.stall_puts.lock().unwrap() = Some("/000000010000000000000007".into());
    let mut child = push().spawn().unwrap();
    let start = std::time::Instant::now();
    while proxy.state.stalled.load(Ordering::SeqCst) == 0 {
        assert!(start.elapsed() < std::time::Duration::from_secs(30), "the upload never started");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    *proxy.state.stall_puts.lock().unwrap() = None;
    let out = s.env.path("RECOVERYXLOG");
    let r = s.run(&["wal-fetch", "--stanza", "42", "000000010000000000000007", out.to_str().unwrap()]);
    assert_eq!(r.code, 1, "nothing archived: {}", r.stderr);
    assert!(!out.exists());
    let r: Run = push().output().unwrap().into();
    r.ok();
    s.run(&["wal-fetch", "--stanza", "42", "000000010000000000000007", out.to_str().unwrap()]).ok();
    assert_eq!(fs::read(&out).unwrap(), fs::read(&seg).unwrap());
}

/// Point-in-time recovery with the repository in S3, as PostgreSQL runs
/// coffer: archive_command and the restore_command coffer writes run with
/// nothing of a login's environment (`env -i`), and find the bucket, its
/// credentials (an AWS credentials file), the key file and the stanza in a
/// profile. No secret is in either command.
#[test]
fn restore_to_a_moment_from_s3_with_a_profile_and_no_environment() {
    let g = garage::shared();
    let s = S3Env::new(g, None);
    let key = s.env.path("wal.key");
    s.run(&["key", "add-file", key.to_str().unwrap()]).ok();
    let secret = g.get("AWS_SECRET_ACCESS_KEY");
    let mut config = None;
    let cluster = pg::Cluster::start_with(|dir| {
        let creds = dir.join("aws-credentials");
        fs::write(
            &creds,
            format!("[backup]\naws_access_key_id = {}\naws_secret_access_key = {secret}\n", g.get("AWS_ACCESS_KEY_ID")),
        )
        .unwrap();
        fs::copy(&key, dir.join("wal.key")).unwrap();
        let conf = dir.join("coffer.toml");
        fs::write(
            &conf,
            format!(
                "[profile.db1]\nrepository = \"{}\"\npassword_file = \"{}\"\nstanza = \"db1\"\n\
                 s3_endpoint = \"{}\"\ns3_region = \"garage\"\ns3_path_style = true\n\
                 s3_credentials_file = \"{}\"\ns3_profile = \"backup\"\n",
                s.repo,
                dir.join("wal.key").display(),
                g.endpoint(),
                creds.display()
            ),
        )
        .unwrap();
        for f in [&creds, &dir.join("wal.key"), &conf] {
            pg::chown_postgres(f);
        }
        let line = format!(
            "wal_level = replica\narchive_mode = on\n\
             archive_command = 'env -i PATH=/usr/bin:/bin {} wal-push --config {} --profile db1 --quiet %p'\n",
            bin(),
            conf.display()
        );
        config = Some(conf);
        line
    });
    let conf = config.unwrap();
    let bare = |args: &[&str]| -> Run {
        Command::new("env")
            .args(["-i", "PATH=/usr/bin:/bin", &format!("PGPASSWORD={PG_PASSWORD}"), bin()])
            .arg("--config")
            .arg(&conf)
            .args(["--profile", "db1"])
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    let archived = |c: &pg::Cluster, name: &str| {
        let start = std::time::Instant::now();
        loop {
            let last = c.psql("postgres", "SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver");
            if last.trim() >= name {
                return;
            }
            assert!(start.elapsed().as_secs() < 60, "{name} not archived: {last}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    let c = &cluster;
    c.psql("postgres", "CREATE TABLE marker (what text)");
    let r = bare(&["backup", "--pg-base", &c.url("postgres"), "--wait-for-wal=60s"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    c.psql("postgres", "INSERT INTO marker VALUES ('before')");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let t =
        c.psql("postgres", "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    c.psql("postgres", "INSERT INTO marker VALUES ('after')");
    let last = c.psql("postgres", "SELECT pg_walfile_name(pg_switch_wal())");
    archived(c, last.trim());

    let scratch = pg::scratch_dir();
    let target = scratch.path().join("data");
    let r = bare(&[
        "restore",
        "--pg-base",
        "--target",
        target.to_str().unwrap(),
        "--target-time",
        t.trim(),
        "--target-action",
        "promote",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let settings = fs::read_to_string(target.join("postgresql.auto.conf")).unwrap();
    assert!(settings.contains("--profile=db1") && !settings.contains(&secret), "{settings}");
    let restored = pg::Cluster::run(scratch);
    let start = std::time::Instant::now();
    while restored.psql("postgres", "SELECT pg_is_in_recovery()").trim() != "f" {
        assert!(start.elapsed().as_secs() < 60, "still in recovery");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(restored.psql("postgres", "SELECT string_agg(what, ',') FROM marker").trim(), "before");

    // A credentials file that is not there is named, before any request.
    fs::write(&conf, fs::read_to_string(&conf).unwrap().replace("aws-credentials", "gone")).unwrap();
    let r = bare(&["snapshots"]);
    assert!(r.code != 0 && r.stderr.contains("S3 credentials file") && r.stderr.contains("gone"), "{}", r.stderr);
}

/// `copy` (the offsite copy): a local repository's snapshots, files and a
/// database dump, into an S3 one with its own keys and passphrase, and
/// from there into a second local one. Everything restores from each copy,
/// the copy passes `verify --read-data` under its own key, and a second run
/// stores nothing.
#[test]
fn copy_goes_local_to_s3_and_back_and_a_second_run_stores_nothing() {
    const OFFSITE: &str = "another passphrase, for the offsite copy";
    let g = garage::shared();
    let local = Env::new();
    let src = local.path("src");
    make_rich_tree(&src);
    random_file(&src.join("large.bin"), 3, 5);
    let cluster = pg::shared();
    let db = unique("copydb").replace('-', "_");
    cluster.create_sample_db(&db, 1);
    let backup = |extra: &str| -> serde_json::Value {
        fs::write(src.join("changing.txt"), extra).unwrap();
        let r: Run = local
            .command()
            .env("PGPASSWORD", PG_PASSWORD)
            .env("COFFER_PG_BIN_DIR", pg::bin_dir())
            .args(["backup", "--json", src.to_str().unwrap(), "--pg", &cluster.url(&db)])
            .output()
            .unwrap()
            .into();
        r.ok().json()
    };
    backup("one");
    backup("two");

    // The offsite repository, with a passphrase of its own.
    let offsite = S3Env::new(g, None);
    let repo2 = format!("s3://{}/{}", g.get("GARAGE_TEST_BUCKET"), unique("offsite"));
    let on_s3 = |args: &[&str]| -> Run {
        offsite
            .command()
            .env("COFFER_REPOSITORY", &repo2)
            .env("COFFER_PASSWORD", OFFSITE)
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    on_s3(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]).ok();
    let copy_to_s3 = |extra: &[&str]| -> Run {
        local
            .command()
            .envs(offsite.vars.iter().map(|(k, v)| (k, v)))
            .env("COFFER_TO_PASSWORD", OFFSITE)
            .args(["copy", "--json", "--to", &repo2])
            .args(extra)
            .output()
            .unwrap()
            .into()
    };

    // A dry run reads and counts, and stores nothing.
    let dry = copy_to_s3(&["--dry-run"]).ok().json();
    assert_eq!((dry["copied"].as_u64(), dry["dry_run"].as_bool()), (Some(2), Some(true)), "{dry}");
    assert!(dry["new_bytes"].as_u64().unwrap() > 3 << 20, "{dry}");
    assert_eq!(on_s3(&["snapshots", "--json"]).ok().json().as_array().unwrap().len(), 0);

    let j = copy_to_s3(&[]).ok().json();
    assert_eq!((j["copied"].as_u64(), j["already_copied"].as_u64()), (Some(2), Some(0)), "{j}");
    // The second snapshot shares all but its changed file and dump with the first.
    let second = &j["snapshots"][1];
    assert!(second["new_chunks"].as_u64().unwrap() <= 3, "{j}");
    assert_eq!(j["new_bytes"], dry["new_bytes"], "the dry run's figures are the copy's");

    let again = copy_to_s3(&[]).ok().json();
    assert_eq!((again["copied"].as_u64(), again["already_copied"].as_u64()), (Some(0), Some(2)), "{again}");
    assert_eq!((again["new_chunks"].as_u64(), again["stored_bytes"].as_u64()), (Some(0), Some(0)), "{again}");
    assert_eq!(on_s3(&["snapshots", "--json"]).ok().json().as_array().unwrap().len(), 2);

    // The copy stands on its own key: every pack read back and checked.
    on_s3(&["verify", "--read-data"]).ok();
    let out = offsite.env.path("from-s3");
    on_s3(&["restore", "latest", "--target", out.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&out, &src)));
    let restored_db = unique("copied").replace('-', "_");
    cluster.create_db(&restored_db);
    let r: Run = offsite
        .command()
        .env("COFFER_REPOSITORY", &repo2)
        .env("COFFER_PASSWORD", OFFSITE)
        .args(["restore", "latest", "--db", &db, "--pg-target", &cluster.url(&restored_db)])
        .output()
        .unwrap()
        .into();
    r.ok();
    assert_eq!(cluster.plain_dump(&db), cluster.plain_dump(&restored_db));

    // And back, into a second local repository: a copy of a copy knows its
    // original, so the first repository's snapshots are not copied twice.
    let home = Env::new();
    let r: Run = offsite
        .command()
        .env("COFFER_REPOSITORY", &repo2)
        .env("COFFER_PASSWORD", OFFSITE)
        .env("COFFER_TO_PASSWORD", PASSPHRASE)
        .args(["copy", "--json", "--to", home.repo().to_str().unwrap()])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.ok().json()["copied"], 2);
    let direct: Run = local
        .command()
        .env("COFFER_TO_PASSWORD", PASSPHRASE)
        .args(["copy", "--json", "--to", home.repo().to_str().unwrap()])
        .output()
        .unwrap()
        .into();
    let d = direct.ok().json();
    assert_eq!((d["copied"].as_u64(), d["already_copied"].as_u64()), (Some(0), Some(2)), "{d}");
    let out = home.path("back");
    home.coffer(&["restore", "latest", "--target", out.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&out, &src)));
    home.coffer(&["verify", "--read-data"]).ok();
}

/// `copy` from one S3 repository into another (two prefixes of the bucket,
/// each with its own passphrase): the copy restores, and a second run
/// stores nothing.
#[test]
fn copy_goes_from_s3_to_s3() {
    const OTHER: &str = "the second bucket prefix's passphrase";
    let g = garage::shared();
    let s = S3Env::new(g, None);
    let src = s.env.path("src");
    make_rich_tree(&src);
    s.run(&["backup", "-q", src.to_str().unwrap()]).ok();
    let to = format!("s3://{}/{}", g.get("GARAGE_TEST_BUCKET"), unique("s3-to-s3"));
    let at = |args: &[&str]| -> Run {
        s.command().env("COFFER_REPOSITORY", &to).env("COFFER_PASSWORD", OTHER).args(args).output().unwrap().into()
    };
    at(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]).ok();
    let copy = || -> serde_json::Value {
        let r: Run =
            s.command().env("COFFER_TO_PASSWORD", OTHER).args(["copy", "--json", "--to", &to]).output().unwrap().into();
        r.ok().json()
    };
    assert_eq!(copy()["copied"], 1);
    let again = copy();
    assert_eq!((again["copied"].as_u64(), again["stored_bytes"].as_u64()), (Some(0), Some(0)), "{again}");
    let out = s.env.path("out");
    at(&["restore", "latest", "--target", out.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&out, &src)));
    at(&["verify", "--read-data"]).ok();
}

/// A write-only key on S3: the backup host's key file stores snapshots
/// (the second run from its cached parent), the full key restores them byte
/// for byte and verifies every pack.
#[test]
fn a_write_only_key_backs_up_to_s3_and_the_full_key_restores() {
    let g = garage::shared();
    let s = S3Env::new(g, None);
    let src = s.env.path("src");
    make_rich_tree(&src);
    random_file(&src.join("big.bin"), 3, 77);
    let key = s.env.path("backup-only.key");
    s.run(&["key", "add-file", "--write-only", key.to_str().unwrap()]).ok();
    let with_key = |args: &[&str]| -> Run {
        s.command().env_remove("COFFER_PASSWORD").env("COFFER_PASSWORD_FILE", &key).args(args).output().unwrap().into()
    };
    let first = with_key(&["backup", "--json", src.to_str().unwrap()]).ok().json();
    assert!(first["new_chunks"].as_u64().unwrap() >= 3, "{first}");
    random_file(&src.join("new.bin"), 1, 78);
    let second = with_key(&["backup", "--json", src.to_str().unwrap()]).ok().json();
    assert_eq!(second["parent"], first["snapshot"], "{second}");
    let r = with_key(&["restore", "latest", "--target", s.env.path("nope").to_str().unwrap()]);
    assert!(r.code != 0 && r.stderr.contains("is write-only"), "{}", r.stderr);
    s.run(&["verify", "--read-data"]).ok();
    let out = s.env.path("out");
    s.run(&["restore", second["snapshot"].as_str().unwrap(), "--target", out.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&out, &src)));
}

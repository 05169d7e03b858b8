//! PostgreSQL backup and restore against a real server.

use crate::common::pg::{self, unique, wrapped_tool, Cluster, PG_PASSWORD};
use crate::common::*;
use std::fs;

/// coffer with the PostgreSQL password in the libpq environment.
fn pg_env(env: &Env) -> std::process::Command {
    let mut c = env.command();
    c.env("PGPASSWORD", PG_PASSWORD).env("COFFER_PG_BIN_DIR", pg::bin_dir());
    c
}

fn run(env: &Env, args: &[&str]) -> Run {
    pg_env(env).args(args).output().unwrap().into()
}

fn backup_db(env: &Env, cluster: &Cluster, db: &str) -> serde_json::Value {
    run(env, &["backup", "--json", "--pg", &cluster.url(db)]).ok().json()
}

#[test]
fn a_database_restored_into_a_new_database_dumps_identically() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("roundtrip");
    cluster.create_sample_db(&db, 1);
    let j = backup_db(&env, cluster, &db);
    assert_eq!(j["databases"], 1);
    let id = j["snapshot"].as_str().unwrap().to_string();

    // The manifest records versions, checksum and the archive's contents.
    let show = run(&env, &["show", &id, "--json"]).ok().json();
    let src = &show["manifest"]["sources"][0];
    assert_eq!(src["type"], "postgres");
    assert_eq!(src["name"], db.as_str());
    assert_eq!(src["format"], "custom");
    assert!(src["server_version"].as_str().unwrap().starts_with(char::is_numeric));
    assert!(src["pg_dump_version"].as_str().unwrap().contains("pg_dump"));
    assert!(!src["server"].as_str().unwrap().contains(PG_PASSWORD));
    let toc = src["toc"].as_array().unwrap();
    for (schema, table) in
        [("app", "customers"), ("app", "orders"), ("audit", "events"), ("public", "pgbench_accounts")]
    {
        assert!(
            toc.iter().any(|e| e["desc"] == "TABLE" && e["schema"] == schema && e["name"] == table),
            "{schema}.{table} missing from the TOC"
        );
    }

    let copy = unique("restored");
    cluster.create_db(&copy);
    run(&env, &["restore", &id, "--pg-target", &cluster.url(&copy)]).ok();
    assert_eq!(cluster.plain_dump(&db), cluster.plain_dump(&copy));

    // Parallel restore (through a temporary seekable file) gives the same.
    let parallel = unique("parallel");
    cluster.create_db(&parallel);
    run(&env, &["restore", &id, "--pg-target", &cluster.url(&parallel), "--jobs", "2"]).ok();
    assert_eq!(cluster.plain_dump(&db), cluster.plain_dump(&parallel));

    // --create makes the database itself, named as in the archive.
    cluster.psql("postgres", &format!("DROP DATABASE \"{db}\""));
    run(&env, &["restore", &id, "--pg-target", &cluster.url("postgres"), "--create"]).ok();
    assert_eq!(cluster.plain_dump(&copy), cluster.plain_dump(&db));

    // --to-file gives the raw archive, which pg_restore reads.
    let file = env.path("dump.pgc");
    run(&env, &["restore", &id, "--to-file", file.to_str().unwrap()]).ok();
    assert_eq!(blake3::hash(&fs::read(&file).unwrap()).to_hex().as_str(), src["blake3"].as_str().unwrap());
    let list = std::process::Command::new(pg::bin_dir().join("pg_restore")).arg("--list").arg(&file).output().unwrap();
    assert!(list.status.success());
    run(&env, &["verify", "--read-data"]).ok();
}

#[test]
fn table_and_schema_restores_bring_exactly_those_objects() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("partial");
    cluster.create_sample_db(&db, 1);
    backup_db(&env, cluster, &db);

    let t = unique("only_table");
    cluster.create_db(&t);
    let r = run(&env, &["restore", "latest", "--pg-target", &cluster.url(&t), "--table", "pgbench_branches"]).ok();
    // The report says what was restored (the table's entries and rows), not
    // the whole dump's size as if that had been restored.
    let head = r.stdout.lines().next().unwrap_or_default().to_string();
    assert!(
        head.starts_with("restored ")
            && head.contains(" archive entries with 1 row (")
            && head.contains(" of table data) of the dump of "),
        "{}",
        r.stdout
    );
    assert!(head.contains("(the whole dump, ") && head.contains("was read and checked)"), "{}", r.stdout);
    assert!(r.stdout.contains("TABLE DATA") && r.stdout.contains("public.pgbench_branches (1 row)"), "{}", r.stdout);
    let tables = cluster.user_tables(&t);
    assert_eq!(tables.trim(), "public.pgbench_branches");
    assert_eq!(cluster.psql(&t, "SELECT count(*) FROM pgbench_branches").trim(), "1");

    let s = unique("only_schema");
    cluster.create_db(&s);
    run(&env, &["restore", "latest", "--pg-target", &cluster.url(&s), "--schema", "audit"]).ok();
    let tables = cluster.user_tables(&s);
    assert_eq!(tables.trim(), "audit.events");
    assert_eq!(
        cluster.psql(&s, "SELECT count(*) FROM audit.events").trim(),
        cluster.psql(&db, "SELECT count(*) FROM audit.events").trim()
    );
}

#[test]
fn restore_dry_run_touches_no_database_and_lists_what_would_be_restored() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("dryrun");
    cluster.create_sample_db(&db, 0);
    backup_db(&env, cluster, &db);
    // The target database does not exist: a dry run that connected would fail.
    let missing = unique("never_created");
    let j = run(
        &env,
        &[
            "restore",
            "latest",
            "--json",
            "--dry-run",
            "--pg-target",
            &cluster.url(&missing),
            "--schema",
            "app",
            "--table",
            "orders",
        ],
    )
    .ok()
    .json();
    let objects = j["databases"][0]["objects"].as_array().unwrap();
    let names: Vec<String> =
        objects.iter().map(|o| format!("{} {}", o["desc"].as_str().unwrap(), o["name"].as_str().unwrap())).collect();
    assert!(names.contains(&"TABLE orders".to_string()), "{names:?}");
    assert!(names.contains(&"TABLE DATA orders".to_string()), "{names:?}");
    assert!(!names.iter().any(|n| n.contains("customers")), "{names:?}");
    assert!(!cluster.databases().contains(&missing));
    assert!(j["databases"][0]["chunks_checked"].as_u64().unwrap() >= 1);
}

fn assert_no_snapshot(env: &Env) {
    assert!(env.repo_file("snapshots").is_empty(), "a failed dump left a snapshot");
    let list = run(env, &["snapshots", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 0);
}

#[test]
fn bad_credentials_fail_with_pg_dumps_message_and_no_snapshot() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("badcreds");
    cluster.create_db(&db);
    let r: Run =
        pg_env(&env).env("PGPASSWORD", "wrong").args(["backup", "--pg", &cluster.url(&db)]).output().unwrap().into();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("password authentication failed"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "one-line error: {}", r.stderr);
    assert!(!r.stderr.contains("wrong"));
    assert_no_snapshot(&env);
}

#[test]
fn a_killed_pg_dump_fails_the_backup_and_leaves_no_snapshot() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("killed");
    cluster.create_sample_db(&db, 2);
    // A pg_dump that is killed after writing part of the archive.
    let wrap = wrapped_tool(
        &env,
        "pg_dump",
        "if [ \"$1\" = --version ]; then exec \"$REAL\" --version; fi\n\"$REAL\" \"$@\" | head -c 3000000\nkill -9 $$",
    );
    let r: Run = pg_env(&env)
        .env("COFFER_PG_BIN_DIR", &wrap)
        .args(["backup", "--pg", &cluster.url(&db)])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("killed by signal 9"), "{}", r.stderr);
    assert_no_snapshot(&env);
    // The next backup succeeds.
    backup_db(&env, cluster, &db);
}

#[test]
fn a_database_dropped_mid_dump_fails_the_backup() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("dropped");
    cluster.create_sample_db(&db, 0);
    // Hold a lock pg_dump must wait for, so the drop happens mid-dump.
    let mut locker = std::process::Command::new(pg::bin_dir().join("psql"))
        .args(["-X", "-q", "-d", &cluster.url(&db)])
        .env("PGPASSWORD", PG_PASSWORD)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = locker.stdin.take().unwrap();
    writeln!(stdin, "BEGIN; LOCK TABLE app.orders IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(600);").unwrap();
    stdin.flush().unwrap();
    // The lock is held before pg_dump starts: else pg_dump may take its own
    // first and never wait (the flake this test had).
    let held = "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                WHERE c.relname = 'orders' AND l.mode = 'AccessExclusiveLock' AND l.granted";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while cluster.psql(&db, held).trim() != "1" {
        assert!(std::time::Instant::now() < deadline, "the locker never took its lock");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let waiting_sql = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}' AND application_name = 'pg_dump' AND wait_event_type = 'Lock'"
    );
    let child = pg_env(&env)
        .args(["backup", "--pg", &cluster.url(&db)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while cluster.psql("postgres", &waiting_sql).trim() != "1" {
        assert!(std::time::Instant::now() < deadline, "pg_dump never waited for the lock");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    cluster.psql("postgres", &format!("DROP DATABASE \"{db}\" WITH (FORCE)"));
    let r: Run = child.wait_with_output().unwrap().into();
    let _ = locker.kill();
    let _ = locker.wait();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("pg_dump of database"), "{}", r.stderr);
    assert!(r.stderr.contains("terminat"), "pg_dump's own message: {}", r.stderr);
    assert_no_snapshot(&env);
}

#[test]
fn pg_all_restores_roles_and_every_database() {
    let source = Cluster::start();
    let dest = Cluster::start();
    let env = Env::new();
    source.psql("postgres", "CREATE ROLE coffer_reader LOGIN PASSWORD 'reader-pw'");
    source.create_sample_db("shop", 0);
    source.create_db("crm");
    source.psql("crm", "CREATE TABLE contacts (id int PRIMARY KEY, name text); INSERT INTO contacts SELECT i, 'n' || i FROM generate_series(1, 100) i; GRANT SELECT ON contacts TO coffer_reader;");
    source.psql("postgres", "CREATE TABLE in_postgres_db (x int); INSERT INTO in_postgres_db VALUES (42);");
    let j = run(&env, &["backup", "--json", "--pg", &source.url("postgres"), "--pg-all"]).ok().json();
    assert_eq!(j["databases"], 4, "globals, crm, postgres, shop: {j}");

    run(&env, &["restore", "latest", "--all", "--pg-target", &dest.url("postgres")]).ok();
    assert_eq!(dest.psql("postgres", "SELECT count(*) FROM pg_roles WHERE rolname = 'coffer_reader'").trim(), "1");
    for db in ["shop", "crm", "postgres"] {
        assert_eq!(source.plain_dump(db), dest.plain_dump(db), "database {db} differs");
    }
    assert_eq!(dest.psql("crm", "SELECT has_table_privilege('coffer_reader', 'contacts', 'SELECT')").trim(), "t");
}

#[test]
fn drill_passes_on_a_good_snapshot_and_fails_on_a_tampered_one() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("drill");
    cluster.create_sample_db(&db, 1);
    backup_db(&env, cluster, &db);
    let checks = env.path("checks.sql");
    fs::write(&checks, "SELECT count(*) = 100000 FROM pgbench_accounts;\nSELECT count(*) > 0 FROM app.orders;\n")
        .unwrap();

    let r = run(
        &env,
        &[
            "drill",
            "latest",
            "--json",
            "--pg-scratch",
            &cluster.url("postgres"),
            "--check-sql",
            checks.to_str().unwrap(),
        ],
    )
    .ok();
    let report = r.json();
    assert_eq!(report["passed"], true, "{report}");
    assert_eq!(report["dropped"], true);
    let accounts = report["tables"].as_array().unwrap().iter().find(|t| t["table"] == "pgbench_accounts").unwrap();
    assert_eq!(accounts["rows"], 100000);
    assert_eq!(report["checks"].as_array().unwrap().len(), 2);
    for phase in ["download_secs", "restore_secs", "check_secs", "total_secs"] {
        assert!(report[phase].as_f64().unwrap() > 0.0, "{phase}");
    }
    let scratch = report["scratch_database"].as_str().unwrap().to_string();
    assert!(!cluster.databases().contains(&scratch), "scratch database left behind");

    // A failing check fails the drill.
    fs::write(&checks, "SELECT count(*) = 5 FROM pgbench_accounts;").unwrap();
    let r = run(
        &env,
        &["drill", "latest", "--pg-scratch", &cluster.url("postgres"), "--check-sql", checks.to_str().unwrap()],
    );
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("check failed"), "{}", r.stderr);

    // A tampered pack fails the drill, and the scratch database is still dropped.
    for pack in env.repo_file("data") {
        flip_byte(&pack, 0.5);
    }
    let r = run(&env, &["drill", "latest", "--json", "--pg-scratch", &cluster.url("postgres")]);
    assert_eq!(r.code, 1);
    let report = r.json();
    assert_eq!(report["passed"], false);
    assert_eq!(report["dropped"], true);
    assert!(report["error"].as_str().unwrap().contains("corrupt or was tampered with"), "{report}");
    // Its own scratch database (the shared cluster runs other tests' drills too).
    let scratch = report["scratch_database"].as_str().unwrap().to_string();
    assert!(scratch.starts_with("coffer_drill_") && !cluster.databases().contains(&scratch), "{report}");
}

#[test]
fn a_url_password_reaches_pg_dump_without_a_command_line() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("urlpass");
    cluster.create_db(&db);
    cluster.psql(&db, "CREATE TABLE t (x int); INSERT INTO t VALUES (1);");
    // No PGPASSWORD: the password comes from the URL in COFFER_PG_URL.
    let r: Run = env
        .command()
        .env("COFFER_PG_BIN_DIR", pg::bin_dir())
        .env("COFFER_PG_URL", cluster.url_with_password(&db))
        .args(["backup", "--json"])
        .output()
        .unwrap()
        .into();
    let r = r.ok();
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    let show = env.coffer(&["show", "latest", "--json"]).ok();
    assert!(!show.stdout.contains(PG_PASSWORD));
}

#[test]
fn a_tampered_dump_fails_the_restore_and_leaves_the_target_as_it_was() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("tampered");
    cluster.create_sample_db(&db, 2);
    let j = backup_db(&env, cluster, &db);
    // Several chunks, and the damage 60% into the pack: pg_restore has already
    // been fed part of the stream when the damaged chunk is reached.
    assert!(j["new_chunks"].as_u64().unwrap() >= 4, "{j}");
    let packs = env.repo_file("data");
    let mut packs_by_size: Vec<_> = packs.iter().map(|p| (fs::metadata(p).unwrap().len(), p.clone())).collect();
    packs_by_size.sort();
    flip_byte(&packs_by_size.last().unwrap().1, 0.6);

    let target = unique("target");
    cluster.create_db(&target);
    cluster.psql(&target, "CREATE TABLE keep_me (x int); INSERT INTO keep_me VALUES (7);");
    let before = cluster.plain_dump(&target);
    let r = run(&env, &["restore", "latest", "--pg-target", &cluster.url(&target)]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("is corrupt or was tampered with"), "{}", r.stderr);
    assert_eq!(before, cluster.plain_dump(&target), "a failed restore changed the target database");

    // The dry run sees the damage too, and --to-file leaves no file.
    let r = run(&env, &["restore", "latest", "--dry-run", "--pg-target", &cluster.url(&target)]);
    assert_eq!(r.code, 1);
    let file = env.path("out.pgc");
    let r = run(&env, &["restore", "latest", "--to-file", file.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(!file.exists());
    assert!(fs::read_dir(env.dir.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with(".coffer-")));
}

#[test]
fn a_parallel_restore_killed_mid_way_leaves_no_temporary_dump() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("staged");
    cluster.create_sample_db(&db, 1);
    backup_db(&env, cluster, &db);
    // pg_restore --jobs gets the staged archive: it reads its first bytes,
    // then kills coffer, as a reboot or the OOM killer would.
    let seen = env.path("seen");
    let wrap = wrapped_tool(
        &env,
        "pg_restore",
        &format!(
            "case \" $* \" in *' --jobs='*) for a; do last=$a; done; head -c 5 \"$last\" > '{}'; kill -9 $PPID; exit 1;; esac\nexec \"$REAL\" \"$@\"",
            seen.display()
        ),
    );
    let tmp = env.path("tmp");
    fs::create_dir_all(&tmp).unwrap();
    let target = unique("target");
    cluster.create_db(&target);
    let r: Run = pg_env(&env)
        .env("COFFER_PG_BIN_DIR", &wrap)
        .env("TMPDIR", &tmp)
        .args(["restore", "latest", "--pg-target", &cluster.url(&target), "--jobs", "2"])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, -1, "coffer was not killed by a signal: {}", r.stderr);
    assert_eq!(fs::read(&seen).unwrap(), b"PGDMP", "pg_restore could not read the staged archive");
    let left: Vec<_> = fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().path()).collect();
    assert!(left.is_empty(), "a killed restore left {left:?}");
}

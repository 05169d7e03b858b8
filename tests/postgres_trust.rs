//! PostgreSQL backups, restores and drills that never say "done" when they
//! did not do it: odd database names, the libpq environment, partial
//! restores that bring whole tables, drills whose every check runs, timeouts,
//! and errors reported instead of swallowed. Real servers throughout.

use crate::common::pg::{self, unique, wrapped_tool, Cluster, PG_PASSWORD};
use crate::common::*;
use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn coffer(env: &Env) -> Command {
    let mut c = env.command();
    c.env("PGPASSWORD", PG_PASSWORD).env("COFFER_PG_BIN_DIR", pg::bin_dir());
    for v in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE"] {
        c.env_remove(v);
    }
    c
}

fn run(env: &Env, args: &[&str]) -> Run {
    coffer(env).args(args).output().unwrap().into()
}

fn dump_names(env: &Env) -> Vec<String> {
    let show = run(env, &["show", "latest", "--json"]).ok().json();
    let mut v: Vec<String> = show["manifest"]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "database")
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

const ODD_NAMES: [&str; 5] = ["my_app", "Sales Dept", "it's \"quoted\"", "ünïcödé_база", "globals"];

fn fill(cluster: &Cluster, db: &str) {
    cluster.create_db(db);
    let q = db.replace('\'', "''");
    cluster.psql(db, &format!("CREATE TABLE t (name text); INSERT INTO t VALUES ('{q}');"));
}

#[test]
fn databases_with_odd_names_are_stored_and_restored_by_their_real_names() {
    let source = Cluster::start();
    let dest = Cluster::start();
    let env = Env::new();
    for db in ODD_NAMES {
        fill(&source, db);
    }
    run(&env, &["backup", "--pg", &source.url("postgres"), "--pg-all"]).ok();
    let mut want: Vec<String> = ODD_NAMES.iter().map(|s| s.to_string()).chain(["postgres".to_string()]).collect();
    want.sort();
    assert_eq!(dump_names(&env), want);

    // Each by its real name, to a file and as a drill: "globals" is the database, not the roles.
    for db in ODD_NAMES {
        let file = env.path(&format!("{}.pgc", unique("file")));
        run(&env, &["restore", "latest", "--db", db, "--to-file", file.to_str().unwrap()]).ok();
        let list = Command::new(pg::bin_dir().join("pg_restore")).arg("--list").arg(&file).output().unwrap();
        assert!(String::from_utf8_lossy(&list.stdout).contains(&format!("dbname: {db}")), "{db}");
        let j =
            run(&env, &["drill", "latest", "--db", db, "--json", "--pg-scratch", &dest.url("postgres")]).ok().json();
        assert_eq!(j["passed"], true, "{j}");
        assert_eq!(j["tables"][0]["rows"], 1);
    }
    // --all into a cluster where some exist already: created or restored into, each once.
    fill(&dest, "my_app");
    dest.psql("my_app", "DROP TABLE t");
    run(&env, &["restore", "latest", "--all", "--pg-target", &dest.url("postgres")]).ok();
    for db in ODD_NAMES {
        assert_eq!(source.plain_dump(db), dest.plain_dump(db), "database {db:?} differs");
    }
    // Retrying is refused by the databases themselves, in one transaction: no duplicated rows.
    let again = run(&env, &["restore", "latest", "--all", "--pg-target", &dest.url("postgres")]);
    assert_eq!(again.code, 1, "{}", again.stderr);
    for db in ODD_NAMES {
        assert_eq!(dest.psql(db, "SELECT count(*) FROM t").trim(), "1", "{db:?}");
    }
}

#[test]
fn the_libpq_environment_dumps_each_database_under_its_own_name() {
    let cluster = Cluster::start();
    let env = Env::new();
    for db in ["alpha", "beta_2"] {
        fill(&cluster, db);
    }
    let with_env = |args: &[&str], pgdatabase: Option<&str>| -> Run {
        let mut c = coffer(&env);
        c.envs(cluster.libpq_env());
        if let Some(d) = pgdatabase {
            c.env("PGDATABASE", d);
        }
        c.args(args).output().unwrap().into()
    };
    // --pg '' with --db, with and without PGDATABASE; --db alone; --pg-all.
    let all = || -> Vec<String> {
        let mut v: Vec<String> = cluster.databases().into_iter().filter(|d| !d.starts_with("template")).collect();
        v.sort();
        v
    };
    for (args, pgdatabase) in [
        (vec!["backup", "--pg", "", "--db", "alpha", "--db", "beta_2"], None),
        (vec!["backup", "--pg", "", "--db", "alpha", "--db", "beta_2"], Some("postgres")),
        (vec!["backup", "--db", "alpha", "--db", "beta_2"], Some("beta_2")),
    ] {
        with_env(&args, pgdatabase).ok();
        assert_eq!(dump_names(&env), vec!["alpha", "beta_2"], "{args:?} {pgdatabase:?}");
        let copy = unique("copy");
        cluster.create_db(&copy);
        run(&env, &["restore", "latest", "--db", "alpha", "--pg-target", &cluster.url(&copy)]).ok();
        assert_eq!(cluster.psql(&copy, "SELECT name FROM t").trim(), "alpha");
    }
    with_env(&["backup", "--pg", "", "--pg-all"], None).ok();
    assert_eq!(dump_names(&env), all());
    // With PGDATABASE alone, that database.
    with_env(&["backup", "--pg", ""], Some("beta_2")).ok();
    assert_eq!(dump_names(&env), vec!["beta_2"]);
    // With nothing naming a database: an error, not a guess.
    let r = with_env(&["backup", "--pg", ""], None);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no database to dump"), "{}", r.stderr);
}

#[test]
fn a_dump_of_another_database_than_recorded_is_never_committed() {
    let cluster = pg::shared();
    let env = Env::new();
    let (asked, other) = (unique("asked"), unique("other"));
    fill(cluster, &asked);
    fill(cluster, &other);
    // A pg_dump that dumps another database than the one it was given.
    let wrap = wrapped_tool(
        &env,
        "pg_dump",
        &format!(
            "if [ \"$1\" = --version ]; then exec \"$REAL\" --version; fi\n\
             args=$(printf '%s\\n' \"$@\" | sed 's|^--dbname=.*|--dbname={}|')\n\
             IFS='\n'; exec \"$REAL\" $args",
            cluster.url(&other)
        ),
    );
    let r: Run = coffer(&env)
        .env("COFFER_PG_BIN_DIR", &wrap)
        .args(["backup", "--pg", &cluster.url(&asked)])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(&format!("the archive is of database \"{other}\", not \"{asked}\"")), "{}", r.stderr);
    assert!(env.repo_file("snapshots").is_empty());
}

fn drill(env: &Env, scratch: &Cluster, db: &str, checks: Option<&std::path::Path>) -> Run {
    let mut args = vec!["drill", "latest", "--json", "--db", db, "--pg-scratch"];
    let url = scratch.url("postgres");
    args.push(&url);
    let path;
    if let Some(c) = checks {
        path = c.to_str().unwrap().to_string();
        args.extend(["--check-sql", &path]);
    }
    run(env, &args)
}

#[test]
fn every_check_in_a_check_file_runs_whatever_its_comments_and_quotes() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("checks");
    cluster.create_sample_db(&db, 0);
    run(&env, &["backup", "--pg", &cluster.url(&db)]).ok();
    let checks = env.path("checks.sql");
    let good = "-- rows are there\n\
                SELECT count(*) > 0 FROM app.orders; -- a trailing comment; with a semicolon\n\
                /* a block comment; /* nested */ still comment */\n\
                SELECT ';' = ';' AND count(*) > 0 FROM app.customers;\n\
                -- a dollar-quoted body\n\
                SELECT $body$ a; b $body$ = ' a; b ';\n\
                SELECT E'it\\'s; here' = 'it''s; here'\n";
    fs::write(&checks, good).unwrap();
    let j = drill(&env, cluster, &db, Some(&checks)).ok().json();
    assert_eq!(j["checks_run"], 4, "{j}");
    assert!(j["checks"].as_array().unwrap().iter().all(|c| c["passed"] == true), "{j}");
    assert_eq!(j["checks"][2]["line"], 6);

    // A comment above each query, one of them false: the drill fails, naming it.
    fs::write(&checks, "-- one\nSELECT true;\n-- two\nSELECT count(*) = 12345 FROM app.orders;\n").unwrap();
    let r = drill(&env, cluster, &db, Some(&checks));
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert_eq!(r.json()["checks_run"], 2);
    assert!(r.stderr.contains("check failed at line 4"), "{}", r.stderr);

    // A query that is not a boolean true (an error, NULL, a number) fails too.
    for q in ["SELECT NULL::boolean;", "SELECT 1;", "SELECT * FROM no_such_table;"] {
        fs::write(&checks, q).unwrap();
        assert_eq!(drill(&env, cluster, &db, Some(&checks)).code, 1, "{q}");
    }
    // A file that yields no check is an error before any scratch database:
    // with a scratch server that is not there, the file's error is still the one given.
    let nowhere = |checks: &std::path::Path| {
        let c = checks.to_str().unwrap();
        run(
            &env,
            &[
                "drill",
                "latest",
                "--db",
                &db,
                "--pg-scratch",
                "postgres://postgres@127.0.0.1:1/postgres",
                "--check-sql",
                c,
            ],
        )
    };
    fs::write(&checks, "-- SELECT true;\n/* SELECT true; */\n").unwrap();
    let r = nowhere(&checks);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("holds no SQL statement"), "{}", r.stderr);
    fs::write(&checks, "SELECT 'unterminated;\n").unwrap();
    let r = nowhere(&checks);
    assert!(r.code == 1 && r.stderr.contains("line 1: unterminated string"), "{}", r.stderr);
}

#[test]
fn the_check_file_of_operations_md_runs_all_its_checks() {
    let doc = docs::read("docs/OPERATIONS.md");
    let sql = &docs::block(&doc, "A check file is plain SQL", "sql");
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("opsdoc");
    cluster.create_db(&db);
    cluster.psql(
        &db,
        "CREATE TABLE customers (id int PRIMARY KEY); CREATE TABLE orders (id int, customer_id int REFERENCES customers, placed_at timestamptz);\
         INSERT INTO customers SELECT generate_series(1, 10);\
         INSERT INTO orders SELECT i, 1 + i % 10, now() FROM generate_series(1, 1000001) i;",
    );
    run(&env, &["backup", "--pg", &cluster.url(&db)]).ok();
    let checks = env.path("shop-checks.sql");
    fs::write(&checks, sql).unwrap();
    let j = drill(&env, cluster, &db, Some(&checks)).ok().json();
    assert_eq!(j["checks_run"], 3, "{j}");
    assert_eq!(j["tables_compared"], 2, "{j}");
}

#[test]
fn a_drill_compares_row_counts_and_fails_on_a_table_that_comes_back_empty() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("counts");
    cluster.create_sample_db(&db, 1);
    run(&env, &["backup", "--pg", &cluster.url(&db)]).ok();
    let j = drill(&env, cluster, &db, None).ok().json();
    let accounts = j["tables"].as_array().unwrap().iter().find(|t| t["table"] == "pgbench_accounts").unwrap().clone();
    assert_eq!((accounts["rows"].as_u64(), accounts["expected"].as_u64()), (Some(100000), Some(100000)));
    assert!(j["tables_compared"].as_u64().unwrap() >= 5, "{j}");
    // A pg_restore that restores no data: every count differs, and the drill says so.
    let wrap = wrapped_tool(&env, "pg_restore", "exec \"$REAL\" --section=pre-data --section=post-data \"$@\"");
    let r: Run = coffer(&env)
        .env("COFFER_PG_BIN_DIR", &wrap)
        .args(["drill", "latest", "--pg-scratch", &cluster.url("postgres")])
        .output()
        .unwrap()
        .into();
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stderr.contains("rows after the restore, the dump holds"), "{}", r.stderr);
    assert!(r.stdout.contains("MISMATCH"), "{}", r.stdout);
}

#[test]
fn a_drill_on_a_server_without_the_production_roles_restores_and_says_what_it_skipped() {
    let source = pg::shared();
    let scratch = Cluster::start();
    let env = Env::new();
    let db = unique("roles");
    source.create_db(&db);
    let writer = unique("writer");
    source.psql(
        &db,
        &format!(
            "CREATE ROLE {writer} NOLOGIN; CREATE TABLE secrets (id int PRIMARY KEY, owner text);\
             ALTER TABLE secrets OWNER TO {writer}; ALTER TABLE secrets ENABLE ROW LEVEL SECURITY;\
             CREATE POLICY mine ON secrets TO {writer} USING (owner = current_user);\
             GRANT SELECT ON secrets TO {writer}; INSERT INTO secrets VALUES (1, 'a'), (2, 'b');"
        ),
    );
    run(&env, &["backup", "--pg", &source.url(&db)]).ok();
    let j = drill(&env, &scratch, &db, None).ok().json();
    assert_eq!(j["passed"], true, "{j}");
    let skipped = j["skipped"].to_string();
    assert!(skipped.contains("policy secrets mine") && skipped.contains(&writer), "{skipped}");
    assert!(skipped.contains("owners and privileges"), "{skipped}");
    assert_eq!(j["tables"][0]["rows"], 2);
}

#[test]
fn a_drill_stopped_by_sigterm_drops_its_scratch_database_and_leftovers_are_reported() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("sigterm");
    cluster.create_sample_db(&db, 0);
    run(&env, &["backup", "--pg", &cluster.url(&db)]).ok();
    let marker = env.path("restoring");
    let wrap =
        wrapped_tool(&env, "pg_restore", &format!("touch '{}'\nsleep 60\nexec \"$REAL\" \"$@\"", marker.display()));
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let _ = fs::remove_file(&marker);
        let child = coffer(&env)
            .env("COFFER_PG_BIN_DIR", &wrap)
            .args(["drill", "latest", "--pg-scratch", &cluster.url("postgres")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !marker.exists() {
            assert!(Instant::now() < deadline, "the drill never reached pg_restore");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The shared cluster runs other tests' drills too: this drill's
        // scratch database is the one its message names.
        let before: Vec<String> = cluster.databases().into_iter().filter(|d| d.starts_with("coffer_drill_")).collect();
        unsafe { libc::kill(child.id() as i32, sig) };
        let r: Run = child.wait_with_output().unwrap().into();
        assert_eq!(r.code, 128 + sig, "{}", r.stderr);
        let name = r
            .stderr
            .split("scratch database ")
            .nth(1)
            .and_then(|rest| rest.strip_suffix(" dropped\n").or_else(|| rest.split(" dropped").next()))
            .unwrap_or_else(|| panic!("no database named as dropped: {}", r.stderr))
            .to_string();
        assert!(before.contains(&name), "{name} was not there while the drill ran: {before:?}");
        assert!(!cluster.databases().contains(&name), "{name} is still there");
    }
    // A leftover of a drill that could not clean up is reported by the next one.
    cluster.create_db("coffer_drill_0badc0de");
    let j = drill(&env, cluster, &db, None).ok().json();
    cluster.psql("postgres", "DROP DATABASE coffer_drill_0badc0de");
    // (Other tests' drills running meanwhile may be listed too.)
    assert!(j["leftovers"].as_array().unwrap().contains(&serde_json::json!("coffer_drill_0badc0de")), "{j}");
}

/// A table with everything that belongs to it, a partitioned table, and a foreign key between two tables.
const RICH_TABLES: &str = "
    CREATE ROLE reader_ROLE NOLOGIN;
    CREATE SCHEMA archive;
    CREATE TABLE archive.orders (
        id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        owner text NOT NULL DEFAULT current_user,
        total numeric CHECK (total >= 0)
    );
    CREATE INDEX orders_owner_idx ON archive.orders (owner);
    COMMENT ON TABLE archive.orders IS 'old orders';
    ALTER TABLE archive.orders ENABLE ROW LEVEL SECURITY;
    CREATE POLICY own_rows ON archive.orders TO reader_ROLE USING (owner = current_user);
    GRANT SELECT ON archive.orders TO reader_ROLE;
    INSERT INTO archive.orders (owner, total) SELECT 'u' || i % 7, i FROM generate_series(1, 500) i;
    CREATE TABLE public.meas (d date NOT NULL, v int) PARTITION BY RANGE (d);
    CREATE TABLE public.meas_2025 PARTITION OF public.meas FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
    CREATE TABLE public.meas_2026 PARTITION OF public.meas FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
    CREATE INDEX ON public.meas (d);
    INSERT INTO public.meas SELECT DATE '2025-01-01' + i, i FROM generate_series(0, 600) i;
    CREATE TABLE public.cust (id serial PRIMARY KEY, name text);
    CREATE TABLE public.ord (id bigserial PRIMARY KEY, cust_id int REFERENCES public.cust (id));
    INSERT INTO public.cust (name) SELECT 'c' || i FROM generate_series(1, 20) i;
    INSERT INTO public.ord (cust_id) SELECT 1 + i % 20 FROM generate_series(1, 100) i;
";

#[test]
fn a_dropped_table_comes_back_whole_from_a_table_restore() {
    let cluster = Cluster::start();
    let env = Env::new();
    cluster.create_db("shop");
    cluster.psql("shop", RICH_TABLES);
    let before = cluster.plain_dump("shop");
    let copy_text = cluster.psql("shop", "COPY archive.orders TO STDOUT");
    run(&env, &["backup", "--pg", &cluster.url("shop")]).ok();

    // Schema-qualified; PK, identity, check, index, comment, RLS, policy, grant all come back.
    cluster.psql("shop", "DROP TABLE archive.orders");
    let j =
        run(&env, &["restore", "latest", "--json", "--pg-target", &cluster.url("shop"), "--table", "archive.orders"])
            .ok()
            .json();
    assert_eq!(cluster.plain_dump("shop"), before);
    assert_eq!(j["databases"][0]["rows"], 500, "{j}");
    // What was written is the table's data, not the whole dump's size.
    assert_eq!(j["databases"][0]["data_bytes"].as_u64(), Some(copy_text.len() as u64), "{j}");
    let kinds = j["databases"][0]["objects"].to_string();
    for k in ["\"POLICY\"", "\"ROW SECURITY\"", "\"ACL\"", "\"COMMENT\"", "\"INDEX\"", "\"CONSTRAINT\""] {
        assert!(kinds.contains(k), "{k} not reported: {kinds}");
    }
    assert_eq!(cluster.psql("shop", "SELECT relrowsecurity FROM pg_class WHERE relname = 'orders'").trim(), "t");

    // A partitioned table with its partitions, their data and indexes.
    cluster.psql("shop", "DROP TABLE public.meas");
    run(&env, &["restore", "latest", "--pg-target", &cluster.url("shop"), "--table", "meas"]).ok();
    assert_eq!(cluster.plain_dump("shop"), before);
    assert_eq!(cluster.psql("shop", "SELECT count(*) FROM public.meas").trim(), "601");

    // A referenced table dropped with CASCADE comes back; the foreign key
    // from the other table belongs to both, so it comes back when both are restored.
    cluster.psql("shop", "DROP TABLE public.cust CASCADE");
    let r = run(&env, &["restore", "latest", "--pg-target", &cluster.url("shop"), "--table", "cust"]).ok();
    assert!(
        r.stderr.contains("FK CONSTRAINT ord ord_cust_id_fkey") && r.stderr.contains("not restored"),
        "{}",
        r.stderr
    );
    cluster.psql("shop", "DROP TABLE public.cust, public.ord");
    run(&env, &["restore", "latest", "--pg-target", &cluster.url("shop"), "--table", "cust", "--table", "ord"]).ok();
    assert_eq!(cluster.plain_dump("shop"), before);

    // A name that matches nothing fails, naming close matches; nothing is restored.
    let r = run(&env, &["restore", "latest", "--pg-target", &cluster.url("shop"), "--table", "archive.order"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("matches no table") && r.stderr.contains("archive.orders"), "{}", r.stderr);
    let r = run(&env, &["restore", "latest", "--pg-target", &cluster.url("shop"), "--table", "no_such_table"]);
    assert_eq!(r.code, 1);
    assert_eq!(cluster.plain_dump("shop"), before);
}

#[test]
fn a_schema_restore_keeps_the_schemas_owner_comment_and_grants() {
    let cluster = pg::shared();
    let env = Env::new();
    let (db, copy) = (unique("schema_src"), unique("schema_dst"));
    let owner = unique("schema_owner");
    cluster.create_db(&db);
    cluster.psql(
        &db,
        &format!(
            "CREATE ROLE {owner} NOLOGIN; CREATE SCHEMA \"Sales Dept\" AUTHORIZATION {owner};\
             COMMENT ON SCHEMA \"Sales Dept\" IS 'the sales team';\
             GRANT USAGE ON SCHEMA \"Sales Dept\" TO PUBLIC;\
             CREATE TABLE \"Sales Dept\".\"Order Items\" (id int PRIMARY KEY); INSERT INTO \"Sales Dept\".\"Order Items\" VALUES (1), (2);"
        ),
    );
    run(&env, &["backup", "--pg", &cluster.url(&db)]).ok();
    // show names the schema and table as they are, not split at spaces.
    let show = run(&env, &["show", "latest", "--json"]).ok().json();
    let toc = &show["manifest"]["sources"][0]["toc"];
    assert!(
        toc.as_array()
            .unwrap()
            .iter()
            .any(|e| e["desc"] == "TABLE" && e["schema"] == "Sales Dept" && e["name"] == "Order Items"),
        "{toc}"
    );
    cluster.create_db(&copy);
    run(&env, &["restore", "latest", "--pg-target", &cluster.url(&copy), "--schema", "Sales Dept"]).ok();
    let q = "SELECT nspowner::regrole || ' ' || obj_description(oid, 'pg_namespace') || ' ' || array_to_string(nspacl, ',') FROM pg_namespace WHERE nspname = 'Sales Dept'";
    assert_eq!(cluster.psql(&copy, q), cluster.psql(&db, q));
    assert_eq!(cluster.psql(&copy, "SELECT count(*) FROM \"Sales Dept\".\"Order Items\"").trim(), "2");
}

#[test]
fn a_locked_table_or_a_silent_server_fails_the_backup_within_its_timeout() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("locked");
    fill(cluster, &db);
    run(&env, &["backup", "--pg", &cluster.url(&db)]).ok();
    let mut locker = Command::new(pg::bin_dir().join("psql"))
        .args(["-X", "-q", "-d", &cluster.url(&db)])
        .env("PGPASSWORD", PG_PASSWORD)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    let mut stdin = locker.stdin.take().unwrap();
    writeln!(stdin, "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120);").unwrap();
    stdin.flush().unwrap();
    let held = format!("SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE d.datname = '{db}' AND l.mode = 'AccessExclusiveLock' AND l.granted");
    while cluster.psql("postgres", &held).trim() == "0" {
        std::thread::sleep(Duration::from_millis(20));
    }
    let snapshots_before = env.repo_file("snapshots");
    // A restore into the database whose table is locked gives up too
    // (pg_restore resets lock_timeout itself: coffer stops the wait).
    let t = Instant::now();
    let restore =
        run(&env, &["restore", "latest", "--pg-target", &cluster.url(&db), "--clean", "--pg-lock-wait-timeout", "1s"]);
    let restore_took = t.elapsed();
    let t = Instant::now();
    let r = run(&env, &["backup", "--pg", &cluster.url(&db), "--pg-lock-wait-timeout", "1s"]);
    let backup_took = t.elapsed();
    let _ = locker.kill();
    let _ = locker.wait();
    // The server-side session outlives its client while it sleeps: end it.
    let end = format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'");
    cluster.psql("postgres", &end);
    assert_eq!(restore.code, 1, "{}", restore.stderr);
    assert!(restore_took < Duration::from_secs(30), "{restore_took:?}");
    assert!(restore.stderr.contains("locked longer than the lock wait timeout of 1s"), "{}", restore.stderr);
    assert!(restore.stderr.contains("--pg-lock-wait-timeout"), "the hint names the setting: {}", restore.stderr);
    assert_eq!(cluster.psql(&db, "SELECT count(*) FROM t").trim(), "1", "the table is as it was");
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(backup_took < Duration::from_secs(30), "{backup_took:?}");
    assert!(
        r.stderr.contains(&db) && r.stderr.contains("locked longer than the lock wait timeout of 1s"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("--pg-lock-wait-timeout"), "the hint names the setting: {}", r.stderr);
    assert_eq!(env.repo_file("snapshots"), snapshots_before, "no snapshot from the failed backup");

    // A server that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let t = Instant::now();
    let r = run(&env, &["backup", "--pg", &format!("postgres://x@127.0.0.1:{port}/db"), "--pg-connect-timeout", "2s"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    assert!(r.stderr.contains("timeout"), "{}", r.stderr);
    drop(silent);
}

#[test]
fn restore_all_reports_what_it_skipped_and_fails_on_what_it_could_not_do() {
    let source = Cluster::start();
    let dest = Cluster::start();
    let env = Env::new();
    source.psql("postgres", "CREATE ROLE coffer_app LOGIN");
    fill(&source, "shop");
    run(&env, &["backup", "--pg", &source.url("postgres"), "--pg-all"]).ok();
    dest.psql("postgres", "CREATE ROLE coffer_app LOGIN");
    let r = run(&env, &["restore", "latest", "--all", "--pg-target", &dest.url("postgres")]).ok();
    assert!(r.stderr.contains("role \"coffer_app\" already exists"), "{}", r.stderr);
    assert!(r.stderr.contains("role \"postgres\" already exists"), "{}", r.stderr);
    assert_eq!(source.plain_dump("shop"), dest.plain_dump("shop"));

    // A tablespace the target cannot create (its directory is in use) fails the restore, named.
    let ts = source.dir.path().join("ts");
    fs::create_dir(&ts).unwrap();
    if coffer::is_root() {
        Command::new("chown").arg("postgres").arg(&ts).status().unwrap();
    }
    source.psql("postgres", &format!("CREATE TABLESPACE coffer_ts LOCATION '{}'", ts.display()));
    run(&env, &["backup", "--pg", &source.url("postgres"), "--pg-all"]).ok();
    let other = Cluster::start();
    let r = run(&env, &["restore", "latest", "--all", "--pg-target", &other.url("postgres")]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("psql (globals)") && r.stderr.contains("already in use as a tablespace"), "{}", r.stderr);
}

#[test]
fn a_database_created_by_restore_all_that_fails_half_way_is_dropped_again() {
    let source = pg::shared();
    let dest = Cluster::start();
    let env = Env::new();
    let db = unique("half");
    source.create_sample_db(&db, 1);
    run(&env, &["backup", "--pg", &source.url(&db)]).ok();
    // Damage the dump's last chunk: pg_restore has created and filled part of the database by then.
    let show = run(&env, &["show", "latest", "--json"]).ok().json();
    assert!(show["manifest"]["sources"][0]["chunks"].as_array().unwrap().len() > 2);
    for pack in env.repo_file("data") {
        flip_byte(&pack, 0.97);
    }
    let r = run(&env, &["restore", "latest", "--all", "--pg-target", &dest.url("postgres")]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("dropped again"), "{}", r.stderr);
    assert!(!dest.databases().contains(&db));
}

#[test]
fn the_documented_backup_role_dumps_tables_with_row_level_security() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("rls");
    cluster.create_db(&db);
    cluster.psql(
        &db,
        "CREATE TABLE private (id int, who text); ALTER TABLE private ENABLE ROW LEVEL SECURITY;\
         CREATE POLICY nobody ON private USING (false); INSERT INTO private VALUES (1, 'a'), (2, 'b');",
    );
    let (plain, documented) = (unique("reader"), unique("backup"));
    // The role exactly as docs/OPERATIONS.md creates it.
    let doc = docs::read("docs/OPERATIONS.md");
    let line = doc.lines().find(|l| l.starts_with("CREATE ROLE backup ")).expect("OPERATIONS.md creates the role");
    let sql = line.replace("CREATE ROLE backup ", &format!("CREATE ROLE {documented} "));
    cluster.psql("postgres", &sql.replace("the-database-password", "bk"));
    cluster.psql("postgres", &format!("CREATE ROLE {plain} LOGIN PASSWORD 'bk' IN ROLE pg_read_all_data"));
    let url = |role: &str| format!("postgres://{role}@127.0.0.1:{}/{db}", cluster.port);
    let r: Run = coffer(&env).env("PGPASSWORD", "bk").args(["backup", "--pg", &url(&plain)]).output().unwrap().into();
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("row-level security") && r.stderr.contains("BYPASSRLS"), "{}", r.stderr);
    let r: Run =
        coffer(&env).env("PGPASSWORD", "bk").args(["backup", "--pg", &url(&documented)]).output().unwrap().into();
    r.ok();
    let copy = unique("rls_copy");
    cluster.create_db(&copy);
    run(&env, &["restore", "latest", "--pg-target", &cluster.url(&copy)]).ok();
    assert_eq!(cluster.psql(&copy, "SELECT count(*) FROM private").trim(), "2");
}

#[test]
fn to_file_never_replaces_a_file_silently_and_bin_dir_errors_name_the_path() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("tofile");
    fill(cluster, &db);
    run(&env, &["backup", "--pg", &cluster.url(&db)]).ok();
    let file = env.path("out.pgc");
    fs::write(&file, "precious").unwrap();
    let r = run(&env, &["restore", "latest", "--to-file", file.to_str().unwrap()]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("exists; give --force"), "{}", r.stderr);
    assert_eq!(fs::read_to_string(&file).unwrap(), "precious");
    run(&env, &["restore", "latest", "--to-file", file.to_str().unwrap(), "--force"]).ok();
    assert!(fs::read(&file).unwrap().starts_with(b"PGDMP"));
    // A symlink put where the file goes is replaced, never written through.
    let elsewhere = env.path("elsewhere");
    fs::write(&elsewhere, "not to be touched").unwrap();
    let link = env.path("link.pgc");
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let r = run(&env, &["restore", "latest", "--to-file", link.to_str().unwrap()]);
    assert!(r.code == 1 && r.stderr.contains("exists; give --force"), "{}", r.stderr);
    run(&env, &["restore", "latest", "--to-file", link.to_str().unwrap(), "--force"]).ok();
    assert!(!fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert!(fs::read(&link).unwrap().starts_with(b"PGDMP"));
    assert_eq!(fs::read_to_string(&elsewhere).unwrap(), "not to be touched");
    // A filter that --to-file cannot apply is refused, not ignored.
    let r = run(&env, &["restore", "latest", "--to-file", file.to_str().unwrap(), "--force", "--table", "t"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("--to-file writes the whole archive"), "{}", r.stderr);

    let r = run(&env, &["backup", "--pg", &cluster.url(&db), "--pg-bin-dir", "/nonexistent/pg/bin"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("/nonexistent/pg/bin/pg_dump"), "{}", r.stderr);
}

#[test]
fn a_failed_create_restore_never_drops_a_database_that_was_there() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("existing");
    fill(cluster, &db);
    run(&env, &["backup", "--pg", &cluster.url(&db)]).ok();
    // --create onto a database that exists: pg_restore fails; the database and its rows stay.
    let r = run(&env, &["restore", "latest", "--create", "--pg-target", &cluster.url("postgres")]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(!r.stderr.contains("dropped again"), "{}", r.stderr);
    assert_eq!(cluster.psql(&db, "SELECT count(*) FROM t").trim(), "1");
}

#[test]
fn a_drill_check_that_never_ends_fails_at_the_check_timeout() {
    // Its own server: the scratch database lives while the check hangs.
    let scratch = Cluster::start();
    let env = Env::new();
    let db = unique("hang");
    fill(&scratch, &db);
    run(&env, &["backup", "--pg", &scratch.url(&db)]).ok();
    let checks = env.path("checks.sql");
    fs::write(&checks, "SELECT count(*) = 1 FROM t;\nSELECT pg_sleep(3600) IS NOT NULL;\n").unwrap();
    let t = Instant::now();
    let mut args = vec!["drill", "latest", "--json", "--pg-scratch"];
    let url = scratch.url("postgres");
    args.push(&url);
    args.extend(["--check-sql", checks.to_str().unwrap(), "--check-timeout", "1s"]);
    let r = run(&env, &args);
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report = r.json();
    assert_eq!(report["passed"], false);
    assert_eq!(report["checks"][0]["passed"], true, "{report}");
    assert!(report["checks"][1]["output"].as_str().unwrap().contains("statement timeout"), "{report}");
    assert_eq!(report["dropped"], true);
}

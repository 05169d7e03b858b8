//! The live progress line: drawn on a terminal (a pseudo-terminal made by
//! script(1)), absent when stderr is a pipe or a file.

use crate::common::*;
use std::fs;

/// Runs coffer with `args` on a pseudo-terminal; everything it drew.
fn on_a_terminal(env: &Env, args: &[&str]) -> String {
    on_a_terminal_with(env, &[], args)
}

/// The same, with `extra` in the environment.
fn on_a_terminal_with(env: &Env, extra: &[(&str, &str)], args: &[&str]) -> String {
    let cmd = std::iter::once(bin().to_string())
        .chain(args.iter().map(|a| format!("'{}'", a.replace('\'', "'\\''"))))
        .collect::<Vec<_>>()
        .join(" ");
    let mut c = std::process::Command::new("script");
    c.args(["-qefc", &cmd, "/dev/null"]).stdin(std::process::Stdio::null());
    // The environment `command` sets (repository, passphrase).
    let inner = env.command();
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.envs(extra.iter().copied());
    let out = c.output().expect("script(1)");
    assert!(
        out.status.success(),
        "{cmd}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn restore_verify_and_backup_draw_a_progress_line_on_a_terminal_only() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    let drawn = on_a_terminal(&env, &["backup", src.to_str().unwrap()]);
    assert!(drawn.contains("files") && drawn.contains('%') && drawn.contains("ETA"), "backup: {drawn:?}");

    let target = env.path("out");
    let drawn = on_a_terminal(&env, &["restore", "latest", "--target", target.to_str().unwrap()]);
    // A bar, the percentage, bytes of the total, files of the total, then the summary.
    let files = walk_all(&src).iter().filter(|p| p.symlink_metadata().unwrap().is_file()).count();
    assert!(drawn.contains("100%") && drawn.contains("MiB/3.00 MiB"), "restore: {drawn:?}");
    assert!(drawn.contains(&format!(" {files}/{files} files")), "restore: {drawn:?}");
    assert!(drawn.contains(&format!("restored {files} files")), "the summary follows: {drawn:?}");

    let drawn = on_a_terminal(&env, &["verify", "--read-data"]);
    assert!(drawn.contains("snapshots") && drawn.contains("packs") && drawn.contains('%'), "verify: {drawn:?}");

    // Prune: the manifests it reads, then the packs it repacks.
    fs::write(src.join("docs/readme.md"), b"changed, so the first snapshot's chunk goes").unwrap();
    env.coffer(&["backup", src.to_str().unwrap()]).ok();
    env.coffer(&["forget", "--keep-last", "1"]).ok();
    let drawn = on_a_terminal(&env, &["prune", "--max-unused", "0.001", "--grace", "0s"]);
    assert!(drawn.contains("snapshots") && drawn.contains("packs repacked") && drawn.contains('%'), "prune: {drawn:?}");

    // Without a terminal: the summary alone, not one escape code or carriage return.
    for args in [
        vec!["restore", "latest", "--target", env.path("out2").to_str().unwrap().to_string().leak()],
        vec!["verify", "--read-data"],
        vec!["backup", src.to_str().unwrap()],
    ] {
        let r = env.coffer(&args).ok();
        for text in [&r.stdout, &r.stderr] {
            assert!(!text.contains('\x1b') && !text.contains('\r'), "{args:?}: {text:?}");
        }
    }
    // --quiet and --json draw nothing even on a terminal.
    let drawn = on_a_terminal(&env, &["verify", "--read-data", "--quiet"]);
    assert!(!drawn.contains('%'), "{drawn:?}");
}

/// A database restore (here to a file) draws the line too: chunks of the dump read.
#[test]
fn a_database_restore_draws_the_chunks_it_reads() {
    use crate::common::pg::{self, unique, PG_PASSWORD};
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("progress");
    cluster.create_sample_db(&db, 1);
    let r: Run = env
        .command()
        .env("PGPASSWORD", PG_PASSWORD)
        .env("COFFER_PG_BIN_DIR", pg::bin_dir())
        .args(["backup", "--pg", &cluster.url(&db)])
        .output()
        .unwrap()
        .into();
    r.ok();
    let file = env.path("out.pgc");
    let drawn = on_a_terminal(&env, &["restore", "latest", "--to-file", file.to_str().unwrap()]);
    assert!(drawn.contains(" chunks") && drawn.contains("100%"), "{drawn:?}");
    assert!(fs::read(&file).unwrap().starts_with(b"PGDMP"));
}

/// A drill draws the download, then the pg_restore phase (its name and
/// time: nobody knows its length ahead), then the checks one by one.
#[test]
fn a_drill_draws_each_phase() {
    use crate::common::pg::{self, unique, PG_PASSWORD};
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("drillbar");
    cluster.create_sample_db(&db, 1);
    let tools = pg::bin_dir();
    let extra = [("PGPASSWORD", PG_PASSWORD), ("COFFER_PG_BIN_DIR", tools.to_str().unwrap())];
    on_a_terminal_with(&env, &extra, &["backup", "--pg", &cluster.url(&db)]);
    let checks = env.path("checks.sql");
    // A slow check, so the line is drawn while the checks run.
    fs::write(&checks, "SELECT pg_sleep(0.6)::text = '';\nSELECT count(*) > 0 FROM app.orders;\n").unwrap();
    let url = cluster.url("postgres");
    let drawn = on_a_terminal_with(
        &env,
        &extra,
        &["drill", "latest", "--db", &db, "--pg-scratch", &url, "--check-sql", checks.to_str().unwrap()],
    );
    assert!(drawn.contains(" chunks"), "the download: {drawn:?}");
    assert!(drawn.contains("pg_restore into the scratch database"), "the restore: {drawn:?}");
    assert!(drawn.contains("/3 checks"), "the checks: {drawn:?}");
    assert!(drawn.contains("PASSED"), "the report follows: {drawn:?}");
}

//! `--estimate` counts, without doing the work, what the real run then
//! makes: each test estimates, checks that nothing was done, runs the
//! command for real, and compares the estimate with the requests the run
//! made (its `--verbose` line, and on S3 the requests a proxy in front of
//! Garage saw).

use crate::common::garage;
use crate::common::pg::{self, PG_PASSWORD};
use crate::common::proxy::Proxy;
use crate::common::*;
use serde_json::Value;
use std::fs;
use std::process::Command;

/// The `requests made` line of a `--verbose` run, as the estimate's JSON has it.
fn made(run: &Run) -> Value {
    let line = run
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("coffer: requests made: "))
        .unwrap_or_else(|| panic!("no requests line in: {}", run.stderr));
    let num = |key: &str| -> u64 {
        let at = line.find(key).unwrap_or_else(|| panic!("{key} not in {line}")) + key.len();
        line[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    serde_json::json!({
        "get": num("GET "), "list": num("LIST "), "put": num("PUT "), "delete": num("DELETE "),
        "download_bytes": num("downloaded "), "upload_bytes": num("uploaded "),
    })
}

fn estimate(run: Run) -> Value {
    run.ok().json()["estimate"].clone()
}

fn counts(v: &Value) -> [u64; 4] {
    ["get", "list", "put", "delete"].map(|k| v[k].as_u64().unwrap())
}

fn tree(env: &Env) -> std::path::PathBuf {
    let src = env.path("src");
    fs::create_dir_all(src.join("a")).unwrap();
    fs::create_dir_all(src.join("b")).unwrap();
    for i in 0..6u64 {
        fs::write(src.join(format!("a/{i}.bin")), pseudo_random(300_000 + i as usize * 1000, i)).unwrap();
        fs::write(src.join(format!("b/{i}.bin")), pseudo_random(200_000, 100 + i)).unwrap();
    }
    fs::write(src.join("a/big.bin"), pseudo_random(5 * 1024 * 1024, 99)).unwrap();
    src
}

#[test]
fn a_partial_restore_estimate_is_what_the_restore_makes_and_it_writes_nothing() {
    let env = Env::new();
    let src = tree(&env);
    env.backup_json(&[&src], &[]);
    let target = env.path("out");
    let t = target.to_str().unwrap();
    let e = estimate(env.coffer(&["restore", "latest", "-t", t, "--include", "**/a", "--estimate", "--json"]));
    assert!(!target.exists(), "an estimate created the target");
    assert_eq!(e["operation"].as_str().unwrap().split(' ').next(), Some("restore"));
    // Seven files of a/, a chunk each at least; nothing of b/.
    assert!(e["work"]["get"].as_u64().unwrap() >= 7, "{e}");
    let real = env.coffer(&["restore", "latest", "-t", t, "--include", "**/a", "-v", "--json"]).ok();
    let summary = real.json();
    assert_eq!(made(&real), e["total"], "estimate vs the restore's requests");
    assert_eq!(e["local_write_bytes"], summary["bytes"]);
    assert_eq!(fs::read(restored(&target, &src).join("a/big.bin")).unwrap(), fs::read(src.join("a/big.bin")).unwrap());
    assert!(!restored(&target, &src).join("b").exists());
    // A restore of everything downloads more than that of a part.
    let all = estimate(env.coffer(&["restore", "latest", "-t", t, "--estimate", "--json"]));
    assert!(all["work"]["download_bytes"].as_u64() > e["work"]["download_bytes"].as_u64());
    // A selection that matches nothing fails as the restore would.
    let none = env.coffer(&["restore", "latest", "-t", t, "--include", "nothing-here", "--estimate"]);
    assert_ne!(none.code, 0);
    assert!(none.stderr.contains("matches"), "{}", none.stderr);
}

#[test]
fn a_verify_read_data_estimate_is_what_verify_makes() {
    let env = Env::new();
    let src = tree(&env);
    env.backup_json(&[&src], &[]);
    fs::write(src.join("b/new.bin"), pseudo_random(1_000_000, 555)).unwrap();
    env.backup_json(&[&src], &[]);
    let e = estimate(env.coffer(&["verify", "--read-data", "--estimate", "--json"]));
    let packs = env.repo_file("data");
    let pack_bytes: u64 = packs.iter().map(|p| fs::metadata(p).unwrap().len()).sum();
    // Every pack, whole, one GET each.
    assert_eq!(e["work"]["get"].as_u64().unwrap(), packs.len() as u64);
    assert_eq!(e["work"]["download_bytes"].as_u64().unwrap(), pack_bytes);
    let real = env.coffer(&["verify", "--read-data", "-v", "--json"]).ok();
    assert_eq!(real.json()["packs_read"].as_u64().unwrap(), packs.len() as u64);
    assert_eq!(made(&real), e["total"]);
    // Without --read-data, no pack is read.
    let light = estimate(env.coffer(&["verify", "--estimate", "--json"]));
    assert_eq!(light["work"]["download_bytes"], 0);
    assert_eq!(made(&env.coffer(&["verify", "-v"]).ok()), light["total"]);
}

#[test]
fn a_prune_estimate_counts_the_repacking_and_deleting_prune_then_does() {
    let env = Env::new();
    let src = tree(&env);
    env.backup_json(&[&src], &[]);
    // Half of b/ goes: its pack is mostly unused then, and repacked.
    for i in 0..5 {
        fs::remove_file(src.join(format!("b/{i}.bin"))).unwrap();
    }
    fs::remove_file(src.join("a/big.bin")).unwrap();
    env.backup_json(&[&src], &[]);
    env.coffer(&["forget", "--keep-last", "1"]).ok();
    let before = env.repo_state();
    let e = estimate(env.coffer(&["prune", "--grace", "0s", "--estimate", "--json"]));
    // Nothing deleted or written but the estimate's own lock, gone again.
    assert_eq!(env.repo_state(), before, "an estimate changed the repository");
    assert!(e["work"]["delete"].as_u64().unwrap() >= 2, "{e}");
    assert!(e["work"]["download_bytes"].as_u64().unwrap() > 0, "a repack reads its packs: {e}");
    let real = env.coffer(&["prune", "--grace", "0s", "-v", "--json"]).ok();
    let s = real.json();
    assert!(s["packs_repacked"].as_u64().unwrap() >= 1, "{s}");
    let made = made(&real);
    assert_eq!(counts(&made), counts(&e["total"]), "estimate {e} vs prune {made}");
    // Lock objects (read by both) differ by a byte or two with their timestamps.
    let (down, est) = (made["download_bytes"].as_u64().unwrap(), e["total"]["download_bytes"].as_u64().unwrap());
    assert!(down.abs_diff(est) < 16, "downloaded {down}, estimated {est}");
    // The new packs' sizes are exact; only the new index's is estimated.
    let (up, est) = (made["upload_bytes"].as_u64().unwrap(), e["total"]["upload_bytes"].as_u64().unwrap());
    assert!(up.abs_diff(est) * 10 < up, "uploaded {up}, estimated {est}");
    assert!(!e["approximate"].as_array().unwrap().is_empty());
    // --estimate with --dry-run is a contradiction.
    assert_eq!(env.coffer(&["prune", "--estimate", "--dry-run"]).code, 2);
}

#[test]
fn a_price_file_puts_money_on_the_estimate_and_a_bad_one_is_refused() {
    let env = Env::new();
    let src = tree(&env);
    env.backup_json(&[&src], &[]);
    let prices = env.path("prices.json");
    fs::write(
        &prices,
        r#"{"currency": "USD", "get_per_1000": 0.4, "list_per_1000": 5, "put_per_1000": 5, "download_per_gib": 90}"#,
    )
    .unwrap();
    let p = prices.to_str().unwrap();
    let e = estimate(env.coffer(&["verify", "--read-data", "--estimate", "--price-file", p, "--json"]));
    let t = &e["total"];
    let want = t["get"].as_f64().unwrap() * 0.4 / 1000.0
        + t["list"].as_f64().unwrap() * 5.0 / 1000.0
        + t["download_bytes"].as_f64().unwrap() / (1u64 << 30) as f64 * 90.0;
    let cost = &e["cost"];
    assert_eq!(cost["currency"], "USD");
    assert!((cost["total"].as_f64().unwrap() - want).abs() < 1e-9, "{cost} vs {want}");
    let text = env.coffer(&["verify", "--read-data", "--estimate", "--price-file", p]).ok();
    assert!(text.stdout.contains("USD") && text.stdout.contains("prices.json"), "{}", text.stdout);
    for line in text.stdout.lines() {
        assert!(line.chars().count() <= 80, "wider than 80 columns: {line}");
    }
    // A misspelt price would silently cost nothing: refused, naming the file and key.
    fs::write(&prices, r#"{"get_per_100": 0.4}"#).unwrap();
    let bad = env.coffer(&["verify", "--estimate", "--price-file", p]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert!(bad.stderr.contains("prices.json") && bad.stderr.contains("get_per_100"), "{}", bad.stderr);
}

/// The requests a proxy in front of Garage saw, by the estimate's types:
/// ListObjectsV2 and ListMultipartUploads are LISTs, HEADs count as GETs, a
/// multipart upload's POSTs as PUTs, its abort as a DELETE.
fn seen(proxy: &Proxy) -> [u64; 4] {
    let mut c = [0u64; 4];
    for r in proxy.state.requests.lock().unwrap().iter() {
        let (method, path) = r.split_once(' ').unwrap();
        let list = method == "GET" && (path.contains("list-type=2") || path.contains("?uploads"));
        let slot = match method {
            _ if list => 1,
            "GET" | "HEAD" => 0,
            "PUT" | "POST" => 2,
            "DELETE" => 3,
            other => panic!("unexpected {other} {path}"),
        };
        c[slot] += 1;
    }
    c
}

#[test]
fn on_s3_the_estimates_are_the_requests_the_server_then_sees() {
    let g = garage::shared();
    let proxy = Proxy::start(g.addr());
    let env = Env::empty();
    let repo = format!("s3://{}/{}", g.get("GARAGE_TEST_BUCKET"), pg::unique("estimate"));
    let run = |args: &[&str]| -> Run {
        let mut c: Command = env.command();
        c.env("COFFER_REPOSITORY", &repo).envs(g.env.iter().map(|(k, v)| (k, v)));
        c.env("COFFER_S3_ENDPOINT", proxy.endpoint());
        c.args(args).output().unwrap().into()
    };
    run(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]).ok();
    let src = tree(&env);
    run(&["backup", src.to_str().unwrap()]).ok();
    for i in 0..5 {
        fs::remove_file(src.join(format!("b/{i}.bin"))).unwrap();
    }
    run(&["backup", src.to_str().unwrap()]).ok();
    run(&["forget", "--keep-last", "1"]).ok();

    let target = env.path("out");
    let t = target.to_str().unwrap();
    let cases: [&[&str]; 3] =
        [&["restore", "latest", "-t", t, "--include", "**/a"], &["verify", "--read-data"], &["prune", "--grace", "0s"]];
    for args in cases {
        let e = estimate(run(&[args, &["--estimate", "--json"]].concat()));
        proxy.reset_counters();
        let real = run(&[args, &["-v"]].concat()).ok();
        // Counted by the client and by the proxy alike (a retry would differ; Garage does not fail here).
        assert_eq!(seen(&proxy), counts(&made(&real)), "{args:?}: the proxy vs coffer's own count");
        assert_eq!(counts(&made(&real)), counts(&e["total"]), "{args:?}: estimate {e}");
    }
    assert!(restored(&target, &src).join("a/big.bin").exists());
}

#[test]
fn a_database_restore_estimate_is_what_the_restore_makes() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = pg::unique("estimate");
    cluster.create_sample_db(&db, 1);
    let pg_run = |args: &[&str]| -> Run {
        let mut c = env.command();
        c.env("PGPASSWORD", PG_PASSWORD).env("COFFER_PG_BIN_DIR", pg::bin_dir());
        c.args(args).output().unwrap().into()
    };
    pg_run(&["backup", "--pg", &cluster.url(&db)]).ok();
    let file = env.path("dump.pgc");
    let f = file.to_str().unwrap();
    let e = estimate(pg_run(&["restore", "latest", "--to-file", f, "--estimate", "--json"]));
    assert!(!file.exists(), "an estimate wrote the file");
    let real = pg_run(&["restore", "latest", "--to-file", f, "-v"]).ok();
    assert_eq!(made(&real), e["total"]);
    assert_eq!(e["local_write_bytes"].as_u64().unwrap(), fs::metadata(&file).unwrap().len());

    // A table into another database: the table of contents is read first, then the whole dump.
    let target = pg::unique("estimate_target");
    cluster.create_db(&target);
    let args = ["restore", "latest", "--pg-target", &cluster.url(&target), "--table", "pgbench_branches"];
    let e = estimate(pg_run(&[&args[..], &["--estimate", "--json"]].concat()));
    assert_eq!(cluster.user_tables(&target).trim(), "", "an estimate restored into the database");
    let real = pg_run(&[&args[..], &["-v"]].concat()).ok();
    assert_eq!(made(&real), e["total"]);
    assert!(cluster.user_tables(&target).contains("pgbench_branches"));
}

#[test]
fn operations_md_estimate_lines_run_as_written_and_do_nothing() {
    let heading = "## What it will cost, before it costs";
    let env = Env::new();
    let src = env.path("srv/app");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("config"), b"listen = 8080\n").unwrap();
    fs::write(src.join("data.bin"), pseudo_random(2_000_000, 3)).unwrap();
    env.backup_json(&[&src], &[]);
    // The doc's price list, as prices.json in the working directory its lines use.
    fs::write(env.path("prices.json"), docs::block(&docs::read("docs/OPERATIONS.md"), heading, "json")).unwrap();
    let before = env.repo_state();
    let lines: Vec<String> =
        docs::block(&docs::read("docs/OPERATIONS.md"), heading, "sh").lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for line in &lines {
        // As a shell runs it, with `coffer` on PATH and the repository and passphrase set.
        let mut c = Command::new("sh");
        c.args(["-c", line]).current_dir(env.dir.path());
        copy_env(&env.command(), &mut c);
        let bin_dir = std::path::Path::new(bin()).parent().unwrap().display().to_string();
        c.env("PATH", format!("{bin_dir}:{}", std::env::var("PATH").unwrap_or_default()));
        let run: Run = c.output().unwrap().into();
        let run = run.ok();
        assert!(run.stdout.starts_with("estimate for "), "{line}: {}", run.stdout);
        assert!(run.stdout.contains("in all"), "{line}: {}", run.stdout);
    }
    assert!(lines[1].contains("--price-file"));
    assert_eq!(env.repo_state(), before, "an estimate changed the repository");
    assert!(!std::path::Path::new("/tmp/restore").join(src.strip_prefix("/").unwrap()).exists());
}

//! Looking inside snapshots without restoring (`ls`, `diff`, `dump`), and
//! the command line's own tools (completions, manual pages, --version).

use crate::common::pg::{self, unique, PG_PASSWORD};
use crate::common::*;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A source path as `ls` and `diff` show it: stored without the leading `/`.
fn stored(p: &Path) -> String {
    p.to_string_lossy().trim_start_matches('/').to_string()
}

fn ls_paths(env: &Env, args: &[&str]) -> Vec<String> {
    let mut a = vec!["ls", "--json"];
    a.extend_from_slice(args);
    let j = env.coffer(&a).ok().json();
    j["entries"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap().to_string()).collect()
}

#[test]
fn ls_shows_a_folder_at_a_time_or_everything_below_it() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    env.backup_json(&[&src], &[]);
    let root = stored(&src);

    // The top, and any folder above the backed-up path, show the backed-up folder.
    assert_eq!(ls_paths(&env, &["latest"]), vec![root.clone()]);
    assert_eq!(ls_paths(&env, &["latest", "/"]), vec![root.clone()]);
    let above = stored(src.parent().unwrap());
    assert_eq!(ls_paths(&env, &["latest", &above]), vec![root.clone()]);

    // A folder's entries are exactly what the folder holds, in name order.
    let got = ls_paths(&env, &["latest", src.to_str().unwrap()]);
    let mut want: Vec<Vec<u8>> =
        fs::read_dir(&src).unwrap().map(|e| e.unwrap().file_name().as_bytes().to_vec()).collect();
    want.sort();
    let want: Vec<String> = want.iter().map(|n| format!("{root}/{}", String::from_utf8_lossy(n))).collect();
    assert_eq!(got, want);

    // Recursively: every path below it, as on disk.
    let got: BTreeSet<String> =
        ls_paths(&env, &["latest", src.join("docs").to_str().unwrap(), "-R"]).into_iter().collect();
    let want: BTreeSet<String> = walk_all(&src.join("docs")).iter().map(|p| stored(p)).collect();
    assert_eq!(got, want);

    // A file lists itself; the long format has ls -l's mode column.
    let one = src.join("one-byte");
    assert_eq!(ls_paths(&env, &["latest", one.to_str().unwrap()]), vec![stored(&one)]);
    let text = env.coffer(&["ls", "latest", src.to_str().unwrap(), "-l"]).ok().stdout;
    let line =
        |name: &str| text.lines().find(|l| l.ends_with(name)).unwrap_or_else(|| panic!("{name}: {text}")).to_string();
    assert!(line("/script.sh").starts_with("-rwxr-xr-x "), "{}", line("/script.sh"));
    assert!(line("/one-byte").starts_with("-rw-r-S--- "), "{}", line("/one-byte"));
    assert!(line("/private/").starts_with("drwx------ "), "{}", line("/private/"));
    assert!(line("/link-relative -> docs/readme.md").starts_with('l'), "{text}");
    assert!(line("/big.bin").contains(&(3 * 1024 * 1024 + 17).to_string()), "{}", line("/big.bin"));
    // Names are shown, never obeyed: the Latin-1 name is escaped, not raw bytes.
    assert!(text.contains("caf"), "{text}");

    // A path the snapshot does not hold is an error naming it.
    let r = env.coffer(&["ls", "latest", "/no/such/place"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("holds no path \"no/such/place\""), "{}", r.stderr);
}

#[test]
fn dump_writes_a_files_exact_bytes_and_refuses_a_tampered_one() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    env.backup_json(&[&src], &[]);
    for name in ["big.bin", "docs/deep/deeper/notes.txt", "empty-file", "one-byte"] {
        let out = env.command().args(["dump", "latest"]).arg(src.join(name)).output().unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(out.stdout, fs::read(src.join(name)).unwrap(), "{name}");
    }
    let odd = src.join(std::ffi::OsStr::from_bytes(b"caf\xe9-latin1-\xff.txt"));
    let out = env.command().args(["dump", "latest"]).arg(&odd).output().unwrap();
    assert_eq!(out.stdout, b"non-utf8 name");

    // Not a file: a clear error, nothing on stdout.
    for (path, what) in [("docs", "is a folder"), ("link-relative", "is a symlink"), ("nope", "holds no path")] {
        let out: Run = env.command().args(["dump", "latest"]).arg(src.join(path)).output().unwrap().into();
        assert_eq!(out.code, 1, "{path}: {}", out.stderr);
        assert!(out.stderr.contains(what), "{path}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{path}");
    }

    // Every pack damaged: the file's bytes are refused, exit 1, with the object named.
    for p in env.repo_file("data") {
        flip_byte(&p, 0.3);
    }
    let out: Run = env.command().args(["dump", "latest"]).arg(src.join("big.bin")).output().unwrap().into();
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("corrupt or was tampered with"), "{}", out.stderr);
}

#[test]
fn diff_names_each_added_removed_and_changed_entry() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    let a = env.backup_json(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    fs::write(src.join("added.txt"), b"new file").unwrap();
    fs::remove_file(src.join("docs/report.bak")).unwrap();
    fs::write(src.join("docs/readme.md"), b"# hello, changed\n").unwrap();
    fs::set_permissions(src.join("script.sh"), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    fs::remove_file(src.join("link-dangling")).unwrap();
    fs::create_dir(src.join("link-dangling")).unwrap();
    let b = env.backup_json(&[&src], &[])["snapshot"].as_str().unwrap().to_string();

    let j = env.coffer(&["diff", &a, &b, "--json"]).ok().json();
    let changes: BTreeSet<(String, String)> = j["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["change"].as_str().unwrap().to_string(), e["path"].as_str().unwrap().to_string()))
        .collect();
    let root = stored(&src);
    let p = |rel: &str| format!("{root}/{rel}");
    // The folders whose entries changed have new times: metadata changes.
    let want: BTreeSet<(String, String)> = [
        ("added", p("added.txt")),
        ("removed", p("docs/report.bak")),
        ("modified", p("docs/readme.md")),
        ("metadata", p("script.sh")),
        ("type", p("link-dangling")),
        ("metadata", root.clone()),
        ("metadata", p("docs")),
    ]
    .into_iter()
    .map(|(c, p)| (c.to_string(), p))
    .collect();
    assert_eq!(changes, want);
    assert_eq!(j["bytes_added"], 8 + 17);
    assert_eq!(j["bytes_removed"], 3);

    let text = env.coffer(&["diff", &a, &b]).ok().stdout;
    assert!(text.lines().any(|l| l.starts_with('+') && l.contains("/added.txt")), "{text}");
    assert!(text.lines().any(|l| l.starts_with('M') && l.contains("/docs/readme.md")), "{text}");
    // A snapshot against itself: nothing.
    let same = env.coffer(&["diff", &b, &b, "--json"]).ok().json();
    assert!(same["entries"].as_array().unwrap().is_empty());
}

#[test]
fn ls_and_diff_show_databases_and_their_tables() {
    let cluster = pg::shared();
    let env = Env::new();
    let db = unique("browse");
    cluster.create_sample_db(&db, 1);
    let pg = |args: &[&str]| -> Run {
        env.command()
            .env("PGPASSWORD", PG_PASSWORD)
            .env("COFFER_PG_BIN_DIR", pg::bin_dir())
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    let a = pg(&["backup", "--json", "--pg", &cluster.url(&db)]).ok().json()["snapshot"].as_str().unwrap().to_string();
    let top = env.coffer(&["ls", "latest", "--json"]).ok().json();
    assert_eq!(top["databases"][0]["name"], db.as_str());
    assert!(top["databases"][0]["tables"].as_u64().unwrap() >= 4);
    let objects = env.coffer(&["ls", "latest", "--database", &db, "--json"]).ok().json();
    let toc = objects["objects"].as_array().unwrap();
    let orders = toc.iter().find(|e| e["desc"] == "TABLE DATA" && e["schema"] == "app" && e["name"] == "orders");
    assert!(orders.is_some_and(|e| e["rows"].as_u64().is_some()), "{toc:?}");
    let text = env.coffer(&["ls", "latest", "--database", &db]).ok().stdout;
    assert!(text.lines().any(|l| l.starts_with("TABLE ") && l.contains("app.customers")), "{text}");
    let r = env.coffer(&["ls", "latest", "--database", "nope"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("database nope"), "{}", r.stderr);

    // A snapshot of databases alone restores no files: restoring it into a folder says so.
    let target = env.path("out");
    let r = env.coffer(&["restore", "latest", "--target", target.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("only 1 database dump(s)") && r.stderr.contains("--pg-target"), "{}", r.stderr);
    assert!(!target.exists());

    cluster.psql(&db, "UPDATE app.customers SET name = name || '!'");
    let b = pg(&["backup", "--json", "--pg", &cluster.url(&db)]).ok().json()["snapshot"].as_str().unwrap().to_string();
    let d = env.coffer(&["diff", &a, &b, "--json"]).ok().json();
    assert_eq!(d["databases"][0]["change"], "modified", "{d}");
    assert_eq!(d["databases"][0]["name"], db.as_str());
}

#[test]
fn completions_man_pages_and_version_come_from_the_command_line() {
    let env = Env::empty();
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef coffer"), ("fish", "complete -c coffer")] {
        let r = env.coffer(&["completions", shell]).ok();
        assert!(r.stdout.contains(marker), "{shell}: {}", &r.stdout[..200.min(r.stdout.len())]);
        assert!(r.stdout.contains("restore") && r.stdout.contains("--pg-target"), "{shell}");
    }
    let r = env.coffer(&["completions", "tcsh"]);
    assert_eq!(r.code, 2, "an unknown shell is a usage error");

    let man = env.coffer(&["man"]).ok().stdout;
    assert!(man.starts_with(".ie") || man.contains(".TH coffer"), "{}", &man[..200.min(man.len())]);
    assert!(man.contains("backup") && man.contains("\\-\\-repo"), "the page names commands and flags");
    let dir = env.path("man1");
    env.coffer(&["man", "--dir", dir.to_str().unwrap()]).ok();
    for page in ["coffer.1", "coffer-backup.1", "coffer-restore.1", "coffer-ls.1", "coffer-key-add.1"] {
        let text = fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH"), "{page}");
    }

    // --version names the repository format and a commit.
    let v = env.coffer(&["--version"]).ok().stdout;
    assert!(v.starts_with("coffer "), "{v}");
    assert!(v.contains(&format!("repository format {}", coffer::FORMAT_VERSION)), "{v}");
    assert!(v.contains("commit "), "{v}");

    // Help groups the shared flags under their own headings, and has examples.
    let help = env.coffer(&["backup", "--help"]).ok().stdout;
    for heading in ["Global options:", "S3 options:"] {
        assert!(help.contains(heading), "{heading}: {help}");
    }
    let help = env.coffer(&["ls", "--help"]).ok().stdout;
    assert!(help.contains("Examples:"), "{help}");
}

/// Usage errors exit 2 whatever finds them (clap, a missing repository, an
/// empty forget policy, an unknown profile); with --json each is also a
/// JSON object on stdout, as every other failure is.
#[test]
fn usage_errors_exit_2_and_every_error_is_json_with_json() {
    let env = Env::new();
    let cases: [(&[&str], &str); 4] = [
        (&["snapshots", "--no-such-flag"], "--no-such-flag"),
        (&["forget"], "no keep policy"),
        (&["forget", "abcd", "--keep-last", "1"], "not both"),
        (&["snapshots", "--profile", "nope", "--config", "/nonexistent/coffer.toml"], "--profile nope"),
    ];
    for (args, says) in cases {
        for json in [false, true] {
            let mut a = args.to_vec();
            if json {
                a.push("--json");
            }
            let r = env.coffer(&a);
            assert_eq!(r.code, 2, "{a:?}: {}", r.stderr);
            assert!(r.stderr.contains(says), "{a:?}: {}", r.stderr);
            if json {
                let j = r.json();
                assert_eq!(j["error"]["kind"], "usage", "{a:?}");
                assert_eq!(j["error"]["exit_code"], 2);
                assert!(j["error"]["message"].as_str().unwrap().contains(says), "{a:?}: {j}");
            } else {
                assert!(r.stdout.is_empty(), "{a:?}: {}", r.stdout);
            }
        }
    }
    let r: Run = env.command().env_remove("COFFER_REPOSITORY").args(["snapshots", "--json"]).output().unwrap().into();
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("no repository given"), "{}", r.stderr);
    assert_eq!(r.json()["error"]["kind"], "usage");

    // Other failures keep their codes and name their kind.
    let r: Run = env.command().env("COFFER_PASSWORD", "wrong").args(["snapshots", "--json"]).output().unwrap().into();
    assert_eq!(r.code, 12);
    assert_eq!(r.json()["error"]["kind"], "wrong_passphrase");
    let r = env.coffer(&["ls", "nosuchsnapshot", "--json"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.json()["error"]["kind"], "not_found");
    assert!(r.json()["error"]["message"].as_str().unwrap().contains("nosuchsnapshot"));
}

/// The README's `make install PREFIX=...` puts the binary, the manual pages
/// and the completions where man and the shells look.
#[test]
fn make_install_puts_binary_pages_and_completions_under_prefix() {
    let env = Env::empty();
    let prefix = env.path("prefix");
    let out = std::process::Command::new("make")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("install")
        .arg(format!("PREFIX={}", prefix.display()))
        .arg(format!("BIN={}", bin()))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let installed = prefix.join("bin/coffer");
    let v = std::process::Command::new(&installed).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).contains("repository format"));
    for page in ["share/man/man1/coffer.1", "share/man/man1/coffer-restore.1"] {
        assert!(fs::read_to_string(prefix.join(page)).unwrap().contains(".TH"), "{page}");
    }
    let bash = fs::read_to_string(prefix.join("share/bash-completion/completions/coffer")).unwrap();
    assert!(bash.contains("complete -F"));
    assert!(fs::read_to_string(prefix.join("share/zsh/site-functions/_coffer")).unwrap().contains("#compdef coffer"));
    assert!(fs::read_to_string(prefix.join("share/fish/vendor_completions.d/coffer.fish"))
        .unwrap()
        .contains("complete -c coffer"));
}

#[test]
fn find_names_the_snapshots_holding_a_path_newest_first() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    let a = env.backup_json(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    fs::write(src.join("docs/only-in-b.txt"), b"later").unwrap();
    let b = env.backup_json(&[&src], &[])["snapshot"].as_str().unwrap().to_string();

    let j = env.coffer(&["find", "readme.md", "--json"]).ok().json();
    let ids: Vec<&str> = j.as_array().unwrap().iter().map(|f| f["snapshot"].as_str().unwrap()).collect();
    assert_eq!(ids, [b.as_str(), a.as_str()], "newest first");
    assert_eq!(j[0]["entries"][0]["path"], format!("{}/docs/readme.md", stored(&src)));
    assert_eq!(j[0]["entries"][0]["size"], 8);

    let j = env.coffer(&["find", "only-in-b.txt", "--json"]).ok().json();
    assert_eq!(j.as_array().unwrap().len(), 1);
    assert_eq!(j[0]["snapshot"], b.as_str());
    // A whole-path glob, limited to one snapshot.
    let pattern = format!("{}/docs/**/*.txt", stored(&src));
    let j = env.coffer(&["find", &pattern, "--snapshot", &a[..8], "--json"]).ok().json();
    let paths: Vec<&str> = j[0]["entries"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths, [format!("{}/docs/deep/deeper/notes.txt", stored(&src))]);
    // Nothing found: exit 1, as grep does.
    let r = env.coffer(&["find", "no-such-name"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no snapshot holds"), "{}", r.stderr);
}

#[test]
fn stats_count_what_deduplication_and_compression_made_of_the_data() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    // 2 MiB of random data twice under two names, and 2 MiB of zeros.
    let random = pseudo_random(2 << 20, 3);
    fs::write(src.join("a.bin"), &random).unwrap();
    fs::write(src.join("b.bin"), &random).unwrap();
    fs::write(src.join("zeros"), vec![0u8; 2 << 20]).unwrap();
    env.backup_json(&[&src], &[]);
    env.backup_json(&[&src], &[]);

    let one = env.coffer(&["stats", "latest", "--json"]).ok().json();
    assert_eq!(one["snapshots"], 1);
    assert_eq!(one["logical_bytes"], 6 << 20);
    let unique = one["unique_bytes"].as_u64().unwrap();
    // The second copy of the random data is stored once; zeros compress to almost nothing.
    assert!((2 << 20..(5 << 20)).contains(&unique), "{one}");
    assert!(one["stored_bytes"].as_u64().unwrap() < (2 << 20) + (256 << 10), "{one}");
    assert!(one["dedup_ratio"].as_f64().unwrap() > 1.2, "{one}");
    let all = env.coffer(&["stats", "--json"]).ok().json();
    assert_eq!(all["snapshots"], 2);
    assert_eq!(all["logical_bytes"], 12 << 20);
    assert_eq!(all["unique_bytes"], one["unique_bytes"], "the second snapshot added nothing");
    assert_eq!(all["sources"][0]["snapshots"], 2);
    assert_eq!(all["sources"][0]["files"], 6);
    assert!(all["repository_bytes"].as_u64().unwrap() >= all["stored_bytes"].as_u64().unwrap());
    let text = env.coffer(&["stats"]).ok().stdout;
    assert!(text.starts_with("2 snapshots: 12.0 MiB backed up"), "{text}");
}

/// Every command's help ends with examples.
#[test]
fn every_commands_help_has_examples() {
    let env = Env::empty();
    let top = env.coffer(&["--help"]).ok().stdout;
    let commands: Vec<String> = top
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .filter(|c| c != "help")
        .collect();
    assert!(commands.len() >= 19, "{commands:?}");
    for c in &commands {
        let help = env.coffer(&[c.as_str(), "--help"]).ok().stdout;
        assert!(help.contains("Examples:\n  "), "coffer {c} --help has no examples:\n{help}");
    }
    assert!(top.contains("Examples:"), "{top}");
}

/// A name that is not UTF-8: in JSON `path` is still a string, and
/// `path_base64` its exact bytes, which `dump` takes back; `find` and `diff`
/// say the same.
#[test]
fn a_name_that_is_not_utf8_keeps_its_bytes_in_json() {
    use base64::Engine;
    use std::ffi::OsStr;
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    let a = env.backup_json(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    let odd = src.join(OsStr::from_bytes(b"caf\xe9-latin1-\xff.txt"));
    let exact = odd.as_os_str().as_bytes().strip_prefix(b"/").unwrap().to_vec();
    let decode = |v: &serde_json::Value| base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap()).unwrap();

    let j = env.coffer(&["ls", "--json", "latest", src.to_str().unwrap()]).ok().json();
    let entries = j["entries"].as_array().unwrap();
    assert!(entries.iter().all(|e| e["path"].is_string()), "{j}");
    let with_bytes: Vec<_> = entries.iter().filter(|e| e.get("path_base64").is_some()).collect();
    assert_eq!(with_bytes.len(), 1, "only the odd name: {j}");
    let bytes = decode(&with_bytes[0]["path_base64"]);
    assert_eq!(bytes, exact);
    assert!(with_bytes[0]["path"].as_str().unwrap().contains('\u{fffd}'), "{j}");

    // The bytes, handed back, name the file.
    let r = env.coffer_os(&[OsStr::new("dump"), OsStr::new("latest"), OsStr::from_bytes(&bytes)]);
    assert_eq!((r.code, r.stdout.as_str()), (0, "non-utf8 name"), "{}", r.stderr);

    let j = env.coffer(&["find", "--json", "*latin1*"]).ok().json();
    let text = j.to_string();
    assert!(
        text.contains(&format!("\"path_base64\":\"{}\"", base64::engine::general_purpose::STANDARD.encode(&exact))),
        "{j}"
    );

    fs::remove_file(&odd).unwrap();
    let b = env.backup_json(&[&src], &[])["snapshot"].as_str().unwrap().to_string();
    let j = env.coffer(&["diff", "--json", &a, &b]).ok().json();
    let text = j.to_string();
    assert!(
        text.contains(&format!("\"path_base64\":\"{}\"", base64::engine::general_purpose::STANDARD.encode(&exact))),
        "{j}"
    );
}

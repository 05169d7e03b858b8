//! Backup inputs from files and markers: --exclude-file, --exclude-if-present, --files-from.

use crate::common::*;
use std::collections::BTreeSet;
use std::fs;

fn stored_paths(env: &Env) -> BTreeSet<String> {
    let j = env.coffer(&["ls", "latest", "-R", "--json"]).ok().json();
    j["entries"].as_array().unwrap().iter().map(|e| e["path"].as_str().unwrap().to_string()).collect()
}

#[test]
fn exclude_files_markers_and_path_lists_shape_what_is_backed_up() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    fs::create_dir_all(src.join("cache/sub")).unwrap();
    fs::write(src.join("cache/CACHEDIR.TAG"), b"Signature: 8a477f597d28d172789f06886806bc55").unwrap();
    fs::write(src.join("cache/sub/blob"), b"cached").unwrap();
    fs::create_dir_all(src.join("docs/scratch")).unwrap();
    fs::write(src.join("docs/scratch/.nobackup"), b"").unwrap();
    let excludes = env.path("excludes.txt");
    fs::write(&excludes, "# editor leftovers\n*.bak\n\n  \nprivate\r\n").unwrap();

    let r = env.coffer(&[
        "backup",
        src.to_str().unwrap(),
        "--exclude-file",
        excludes.to_str().unwrap(),
        "--exclude-if-present",
        "CACHEDIR.TAG",
        "--exclude-if-present",
        ".nobackup",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let root = src.to_string_lossy().trim_start_matches('/').to_string();
    let got = stored_paths(&env);
    for gone in ["cache", "cache/sub/blob", "docs/scratch", "docs/report.bak", "private", "private/secret.txt"] {
        assert!(!got.contains(&format!("{root}/{gone}")), "{gone} was backed up");
    }
    for kept in ["docs", "docs/readme.md", "big.bin", "empty-dir"] {
        assert!(got.contains(&format!("{root}/{kept}")), "{kept} is missing");
    }

    // --files-from adds its paths (comments and blank lines skipped) to those given.
    let other = env.path("other");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("f"), b"from the list").unwrap();
    let list = env.path("paths.txt");
    fs::write(&list, format!("# what to back up\n{}\n\n{}\n", other.display(), src.join("docs").display())).unwrap();
    let j = env.coffer(&["backup", "--files-from", list.to_str().unwrap(), "--json"]).ok().json();
    assert_eq!(j["files"], 5, "{j}"); // other/f, and docs: readme.md, report.bak, notes.txt, scratch/.nobackup
    let show = env.coffer(&["snapshots", "--json"]).ok().json();
    let paths = &show.as_array().unwrap().last().unwrap()["paths"];
    assert_eq!(paths.as_array().unwrap().len(), 2, "{paths}");

    // Mistakes in the lists are usage errors naming the flag and the file.
    let r = env.coffer(&["backup", "--files-from", "/nonexistent/list"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--files-from /nonexistent/list"), "{}", r.stderr);
    let empty = env.path("empty.txt");
    fs::write(&empty, "# nothing\n\n").unwrap();
    let r = env.coffer(&["backup", "--files-from", empty.to_str().unwrap()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("lists no path"), "{}", r.stderr);
    let r = env.coffer(&["backup", src.to_str().unwrap(), "--exclude-file", "/nonexistent/ex"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--exclude-file /nonexistent/ex"), "{}", r.stderr);
    let r = env.coffer(&["backup", src.to_str().unwrap(), "--exclude-if-present", "../x"]);
    assert_eq!(r.code, 2);
}

//! `backup --stdin-from-command`: any other dump stored as a named stream,
//! failing exactly as a failed pg_dump does.

use crate::common::*;
use std::fs;

fn snapshot_count(env: &Env) -> usize {
    env.coffer(&["snapshots", "--json"]).ok().json().as_array().unwrap().len()
}

#[test]
fn a_commands_output_is_stored_and_comes_back_byte_for_byte() {
    let env = Env::new();
    let data = env.path("data.bin");
    fs::write(&data, pseudo_random(3 * 1024 * 1024 + 5, 11)).unwrap();
    let src = env.path("src");
    make_rich_tree(&src);
    let cmd = format!("cat {}", data.display());
    let j = env
        .coffer(&[
            "backup",
            "--json",
            src.to_str().unwrap(),
            "--stdin-from-command",
            &cmd,
            "--stdin-filename",
            "blob",
            "--stdin-from-command",
            "printf 'two\\nlines\\n'",
        ])
        .ok()
        .json();
    assert_eq!(j["streams"], 2, "{j}");
    let out = env.command().args(["dump", "latest", "--stream", "blob"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, fs::read(&data).unwrap());
    let out = env.command().args(["dump", "latest", "--stream", "stdin-2"]).output().unwrap();
    assert_eq!(out.stdout, b"two\nlines\n");
    let top = env.coffer(&["ls", "latest", "--json"]).ok().json();
    let names: Vec<&str> = top["streams"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["blob", "stdin-2"]);
    let show = env.coffer(&["show", "latest"]).ok().stdout;
    assert!(show.contains("stream blob (3.0 MiB) from `cat "), "{show}");

    // Prune keeps a stream's data: it is used, like a file's.
    env.coffer(&["backup", src.to_str().unwrap()]).ok();
    env.coffer(&["prune", "--grace", "0s", "--max-unused", "0.001"]).ok();
    env.coffer(&["verify", "--read-data"]).ok();
    let out = env.command().args(["dump", "latest", "--stream", "blob"]).output().unwrap();
    assert!(!out.status.success(), "the newest snapshot has no stream");
    let first = env.coffer(&["snapshots", "--json"]).ok().json()[0]["id"].as_str().unwrap().to_string();
    let out = env.command().args(["dump", &first, "--stream", "blob"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.stdout, fs::read(&data).unwrap(), "after prune, the stream still reads back");
    let diff = env.coffer(&["diff", &first, "latest", "--json"]).ok().json();
    assert_eq!(diff["streams"].as_array().unwrap().len(), 2, "both streams are gone in the later snapshot: {diff}");
    assert_eq!(diff["streams"][0]["change"], "removed");
    let stats = env.coffer(&["stats", &first, "--json"]).ok().json();
    assert!(stats["sources"].as_array().unwrap().iter().any(|s| s["name"] == "stream:blob"), "{stats}");
}

#[test]
fn a_failing_or_killed_command_fails_the_backup_and_commits_nothing() {
    let env = Env::new();
    for (cmd, says) in [
        ("echo partial; echo 'mysqldump: Got error: 1045' >&2; exit 7", "Got error: 1045"),
        ("echo partial; kill -9 $$", "killed by signal 9"),
        ("/no/such/dumper", "not found"),
    ] {
        let r = env.coffer(&["backup", "--stdin-from-command", cmd]);
        assert_eq!(r.code, 1, "{cmd}: {}", r.stderr);
        assert!(r.stderr.contains(says), "{cmd}: {}", r.stderr);
        assert!(r.stderr.contains("stream stdin"), "the error names the stream: {}", r.stderr);
        assert_eq!(snapshot_count(&env), 0, "{cmd}: a snapshot was committed");
    }
    // Mistakes in the options are refused before anything runs.
    let r = env.coffer(&["backup", "--stdin-from-command", "true", "--stdin-filename", "a", "--stdin-filename", "b"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = env.coffer(&[
        "backup",
        "--stdin-from-command",
        "true",
        "--stdin-from-command",
        "true",
        "--stdin-filename",
        "x",
        "--stdin-filename",
        "x",
    ]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("given twice"), "{}", r.stderr);
    // The command sees none of coffer's secrets.
    env.coffer(&["backup", "--stdin-from-command", "env", "--stdin-filename", "env"]).ok();
    let out = env.command().args(["dump", "latest", "--stream", "env"]).output().unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    assert!(!seen.contains(PASSPHRASE) && !seen.contains("COFFER_PASSWORD"), "{seen}");
}

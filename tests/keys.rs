//! Several passphrases for one repository; changing one; removing keys.

use crate::common::*;
use std::fs;

const KDF: [&str; 4] = ["--kdf-memory-kib", "256", "--kdf-iterations", "1"];

fn with_pass(env: &Env, pass: &str, args: &[&str]) -> Run {
    env.command().env("COFFER_PASSWORD", pass).args(args).output().unwrap().into()
}

fn key_cmd(env: &Env, pass: &str, new: &str, args: &[&str]) -> Run {
    let mut all: Vec<&str> = args.to_vec();
    all.extend_from_slice(&KDF);
    env.command().env("COFFER_PASSWORD", pass).env("COFFER_NEW_PASSWORD", new).args(&all).output().unwrap().into()
}

#[test]
fn keys_can_be_added_changed_and_removed_and_old_passphrases_stop_working() {
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"payload").unwrap();
    env.backup_json(&[&src], &[]);
    let packs_before = env.repo_file("data");

    // A second passphrase opens the same repository.
    let added = key_cmd(&env, PASSPHRASE, "second passphrase", &["key", "add", "--json"]).ok().json();
    assert_eq!(added["action"], "added");
    with_pass(&env, "second passphrase", &["snapshots"]).ok();
    with_pass(&env, PASSPHRASE, &["snapshots"]).ok();
    let keys = with_pass(&env, "second passphrase", &["key", "list", "--json"]).ok().json();
    let keys = keys.as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys.iter().filter(|k| k["current"] == true).count(), 1);

    // Changing the first passphrase: the old one stops working, the new and
    // the second one work, and only one small key object changed.
    key_cmd(&env, PASSPHRASE, "third passphrase", &["key", "passwd", "--json"]).ok().json();
    let r = with_pass(&env, PASSPHRASE, &["snapshots"]);
    assert_eq!(r.code, 12, "the old passphrase still works: {}", r.stderr);
    with_pass(&env, "third passphrase", &["snapshots"]).ok();
    with_pass(&env, "second passphrase", &["snapshots"]).ok();
    assert_eq!(env.repo_file("keys").len(), 2);
    assert_eq!(env.repo_file("data"), packs_before, "no data was rewritten");

    // The key in use cannot be removed; another one can; the last one cannot.
    let list = with_pass(&env, "third passphrase", &["key", "list", "--json"]).ok().json();
    let current =
        list.as_array().unwrap().iter().find(|k| k["current"] == true).unwrap()["name"].as_str().unwrap().to_string();
    let other =
        list.as_array().unwrap().iter().find(|k| k["current"] == false).unwrap()["name"].as_str().unwrap().to_string();
    let r = with_pass(&env, "third passphrase", &["key", "remove", &current[..10]]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("key in use"), "{}", r.stderr);
    let removed = with_pass(&env, "third passphrase", &["key", "remove", &other[..10], "--json"]).ok().json();
    assert_eq!(removed["key"].as_str(), Some(other.as_str()));
    let r = with_pass(&env, "second passphrase", &["snapshots"]);
    assert_eq!(r.code, 12, "a removed key still opens the repository");
    assert_eq!(env.repo_file("keys").len(), 1);
    let r = with_pass(&env, "third passphrase", &["key", "remove", &current[..10]]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("last key"), "{}", r.stderr);

    // Everything still restores with the remaining passphrase.
    let target = env.path("out");
    with_pass(&env, "third passphrase", &["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(fs::read(restored(&target, &src).join("f")).unwrap(), b"payload");
    with_pass(&env, "third passphrase", &["verify", "--read-data"]).ok();
}

fn with_key_file(env: &Env, file: &std::path::Path, args: &[&str]) -> Run {
    env.command().env_remove("COFFER_PASSWORD").env("COFFER_PASSWORD_FILE", file).args(args).output().unwrap().into()
}

/// A key file opens the repository where a passphrase would, without
/// Argon2; it is never written over, and a damaged or removed one is a
/// wrong passphrase.
#[test]
fn a_key_file_opens_the_repository_and_only_its_own_key() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"payload").unwrap();
    env.backup_json(&[&src], &[]);
    let file = env.path("db1.key");
    let added = env.coffer(&["key", "add-file", file.to_str().unwrap(), "--json"]).ok().json();
    let name = added["key"].as_str().unwrap().to_string();
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.starts_with(&format!("coffer-key-1:{name}:")), "{text}");
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    // It opens the repository; the key in use is the key file's.
    let list = with_key_file(&env, &file, &["key", "list", "--json"]).ok().json();
    let mine: Vec<_> = list.as_array().unwrap().iter().filter(|k| k["current"] == true).collect();
    assert_eq!(
        (mine.len(), &mine[0]["name"], &mine[0]["kind"]),
        (1, &serde_json::json!(name), &serde_json::json!("key-file"))
    );
    with_key_file(&env, &file, &["restore", "latest", "--target", env.path("out").to_str().unwrap()]).ok();
    assert_eq!(fs::read(env.path("out").join(src.strip_prefix("/").unwrap()).join("f")).unwrap(), b"payload");

    // Never written over: the old file stays, and no key is added.
    let keys_before = env.repo_file("keys").len();
    let r = env.coffer(&["key", "add-file", file.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains(file.to_str().unwrap()), "{}", r.stderr);
    assert_eq!(fs::read_to_string(&file).unwrap(), text);
    assert_eq!(env.repo_file("keys").len(), keys_before);

    // A flipped byte of the secret, or the same text as a passphrase of
    // another key's: wrong passphrase, and the secret is in no message.
    let secret = text.trim_end().rsplit(':').next().unwrap().to_string();
    let flipped = env.path("flipped.key");
    let mut bad = secret.clone().into_bytes();
    bad[3] = if bad[3] == b'A' { b'B' } else { b'A' };
    fs::write(&flipped, text.replace(&secret, std::str::from_utf8(&bad).unwrap())).unwrap();
    let r = with_key_file(&env, &flipped, &["snapshots"]);
    assert_eq!(r.code, 12, "{}", r.stderr);
    assert!(!r.stderr.contains(&secret[..16]), "{}", r.stderr);

    // A key file's text as a passphrase: refused, not stored unusable.
    let r = key_cmd(&env, PASSPHRASE, &text, &["key", "add"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("in the form of a key file is refused"), "{}", r.stderr);
    assert!(!r.stderr.contains(&secret[..16]), "{}", r.stderr);

    // Removed from the repository, the file opens nothing.
    env.coffer(&["key", "remove", &name]).ok();
    let r = with_key_file(&env, &file, &["snapshots"]);
    assert_eq!(r.code, 12, "{}", r.stderr);
}

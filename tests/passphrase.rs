//! Passphrase sources and their failures; repository location errors.

use crate::common::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

#[test]
fn wrong_passphrase_is_a_clear_error_with_exit_12() {
    let env = Env::new();
    let r = env.command().env("COFFER_PASSWORD", "not the passphrase").args(["snapshots"]).output().unwrap();
    let r: Run = r.into();
    assert_eq!(r.code, 12, "{}", r.stderr);
    assert!(r.stderr.contains("wrong passphrase"), "{}", r.stderr);
    assert!(r.stderr.contains(env.repo().to_str().unwrap()), "names the repository: {}", r.stderr);
    assert!(!r.stderr.contains("not the passphrase") && !r.stdout.contains("not the passphrase"));
}

#[test]
fn no_passphrase_and_no_terminal_fails_at_once() {
    let env = Env::new();
    let started = Instant::now();
    let r: Run = env.command().env_remove("COFFER_PASSWORD").args(["snapshots"]).output().unwrap().into();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("no passphrase") && r.stderr.contains("COFFER_PASSWORD_FILE"), "{}", r.stderr);
}

/// coffer `snapshots` with COFFER_PASSWORD unset and these variables set.
fn snapshots_with(env: &Env, vars: &[(&str, String)]) -> Run {
    let mut c = env.command();
    c.env_remove("COFFER_PASSWORD");
    for (k, v) in vars {
        c.env(k, v);
    }
    c.args(["snapshots", "--json"]).output().unwrap().into()
}

#[test]
fn passphrase_file_and_command_work() {
    let env = Env::new();
    let file = env.path("pass");
    fs::write(&file, format!("{PASSPHRASE}\n")).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    snapshots_with(&env, &[("COFFER_PASSWORD_FILE", file.display().to_string())]).ok();
    snapshots_with(&env, &[("COFFER_PASSWORD_COMMAND", format!("cat {}", file.display()))]).ok();

    let r = snapshots_with(&env, &[("COFFER_PASSWORD_COMMAND", "exit 3".into())]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("COFFER_PASSWORD_COMMAND failed"), "{}", r.stderr);
    let r = snapshots_with(&env, &[("COFFER_PASSWORD_FILE", env.path("missing").display().to_string())]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("COFFER_PASSWORD_FILE") && r.stderr.contains("missing"), "{}", r.stderr);
}

#[test]
fn no_passphrase_source_can_hang_coffer() {
    let env = Env::new();
    // A command that never ends is killed at its time limit, with what it started.
    let started = Instant::now();
    let r = snapshots_with(
        &env,
        &[("COFFER_PASSWORD_COMMAND", "sleep 3600".into()), ("COFFER_PASSWORD_COMMAND_TIMEOUT", "1s".into())],
    );
    assert!(started.elapsed() < Duration::from_secs(15), "waited {:?}", started.elapsed());
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("COFFER_PASSWORD_COMMAND did not finish within 1s")
            && r.stderr.contains("COFFER_PASSWORD_COMMAND_TIMEOUT"),
        "{}",
        r.stderr
    );
    // One that prints the passphrase and exits, leaving a child that holds its
    // output open, is not waited for.
    let started = Instant::now();
    let cmd = format!("sleep 3600 2>/dev/null & echo '{PASSPHRASE}'");
    snapshots_with(&env, &[("COFFER_PASSWORD_COMMAND", cmd)]).ok();
    assert!(started.elapsed() < Duration::from_secs(15), "waited {:?}", started.elapsed());
    let _ = std::process::Command::new("pkill").args(["-f", "^sleep 3600$"]).status();

    // A FIFO as the passphrase file is refused at once instead of waiting for a writer.
    let fifo = env.path("pass.fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let started = Instant::now();
    let r = snapshots_with(&env, &[("COFFER_PASSWORD_FILE", fifo.display().to_string())]);
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("pass.fifo") && r.stderr.contains("not a regular file"), "{}", r.stderr);
}

#[test]
fn the_password_command_sees_no_other_secret() {
    let env = Env::new();
    let seen = env.path("seen-env");
    let cmd = format!("env > '{}'; echo '{PASSPHRASE}'", seen.display());
    snapshots_with(
        &env,
        &[
            ("COFFER_PASSWORD_COMMAND", cmd),
            ("COFFER_NEW_PASSWORD", "new-secret-1".into()),
            ("COFFER_PG_URL", "postgres://u:pg-secret-2@db/x".into()),
            ("AWS_SECRET_ACCESS_KEY", "aws-secret-3".into()),
            ("PGPASSWORD", "pg-secret-4".into()),
            ("COFFER_HARMLESS_SETTING", "kept".into()),
        ],
    )
    .ok();
    let env_text = fs::read_to_string(&seen).unwrap();
    for secret in ["new-secret-1", "pg-secret-2", "aws-secret-3", "pg-secret-4"] {
        assert!(!env_text.contains(secret), "the password command saw {secret}");
    }
    assert!(env_text.contains("COFFER_HARMLESS_SETTING=kept"), "its own environment is passed on");
}

#[test]
fn missing_repository_exit_10_and_init_twice_refused() {
    let env = Env::empty();
    let r = env.coffer(&["snapshots"]);
    assert_eq!(r.code, 10, "{}", r.stderr);
    assert!(r.stderr.contains("no coffer repository at"), "{}", r.stderr);
    let created = env.coffer(&["init", "--json", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]).ok().json();
    assert_eq!(created["id"].as_str().map(str::len), Some(64));
    let r = env.coffer(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
    let r = env.coffer(&["backup"]);
    assert_eq!(r.code, 2, "usage errors exit 2: {}", r.stderr);
}

//! Named profiles: a crontab line is just `coffer backup --profile nightly`.

use crate::common::*;
use std::fs;

#[test]
fn a_profile_supplies_repository_passphrase_sources_and_retention() {
    let env = Env::new();
    let src = env.path("src");
    make_rich_tree(&src);
    let pass = env.path("passphrase");
    fs::write(&pass, format!("{PASSPHRASE}\n")).unwrap();
    let config = env.path("coffer.toml");
    fs::write(
        &config,
        format!(
            "[profile.nightly]\nrepository = {repo:?}\npassword_file = {pass:?}\npaths = [{src:?}]\n\
             exclude = [\"*.bak\"]\ntags = [\"nightly\"]\nkeep_last = 2\n",
            repo = env.repo().display().to_string(),
            pass = pass.display().to_string(),
            src = src.display().to_string(),
        ),
    )
    .unwrap();
    // No repository, passphrase or path from the environment or flags.
    let run = |args: &[&str]| -> Run {
        env.command()
            .env_remove("COFFER_PASSWORD")
            .env_remove("COFFER_REPOSITORY")
            .env("COFFER_CONFIG", &config)
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    for _ in 0..3 {
        let j = run(&["backup", "--profile", "nightly", "--json", "--force"]).ok().json();
        assert!(j["snapshot"].is_string());
    }
    let list = run(&["snapshots", "--profile", "nightly", "--json"]).ok().json();
    assert_eq!(list.as_array().unwrap().len(), 3);
    assert_eq!(list[0]["tags"][0], "nightly");
    let show = run(&["show", "latest", "--profile", "nightly", "--json"]).ok().json();
    let paths: Vec<&str> = show["manifest"]["sources"][0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(paths.iter().any(|p| p.ends_with("docs/readme.md")));
    assert!(!paths.iter().any(|p| p.ends_with(".bak")), "the profile's exclude applies");

    // The crontab line: retention from the profile, then prune.
    let j = run(&["forget", "--profile", "nightly", "--prune", "--json"]).ok().json();
    assert_eq!(j["forget"]["kept"], 2);
    assert_eq!(j["forget"]["removed"], 1);
    // A flag wins over the profile.
    let j = run(&["forget", "--profile", "nightly", "--keep-last", "1", "--dry-run", "--json"]).ok().json();
    assert_eq!(j["kept"], 1);

    // Mistakes name the file and what is wrong, and are usage errors (exit 2).
    let r = run(&["snapshots", "--profile", "weekly"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("has no [profile.weekly]") && r.stderr.contains("coffer.toml"), "{}", r.stderr);
    fs::write(&config, "[profile.nightly]\nrepostory = \"/x\"\n").unwrap();
    let r = run(&["snapshots", "--profile", "nightly"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("repostory") && r.stderr.contains("coffer.toml"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
}

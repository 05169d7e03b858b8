//! README.md's "Using it" block, run line by line as written. What the test
//! changes, and only that: absolute paths live under a temporary folder,
//! the hosts db1 and scratch are one throwaway cluster and newhost another,
//! `1a2b3c4d` is the first snapshot's id, and every role's password is in
//! PGPASSWORD (the README leaves passwords to ~/.pgpass).

use crate::common::pg::{self, Cluster, PG_PASSWORD};
use crate::common::*;
use std::collections::BTreeMap;
use std::fs;
use std::process::{Command, Stdio};

#[test]
fn the_readmes_using_it_block_runs_as_written() {
    let block = &docs::block(&docs::read("README.md"), "## Using it", "sh");

    let env = Env::empty();
    let r = env.dir.path().display().to_string();
    let rel = r.trim_start_matches('/').to_string();
    // What the block backs up and reads.
    make_rich_tree(&env.path("etc"));
    fs::write(env.path("etc/fstab"), b"/dev/vda1 / ext4 defaults 0 1\n").unwrap();
    make_rich_tree(&env.path("srv/app/config"));
    fs::create_dir_all(env.path("etc/coffer")).unwrap();
    fs::write(env.path("etc/coffer/passphrase"), PASSPHRASE).unwrap();
    fs::write(env.path("checks.sql"), "SELECT count(*) > 0 FROM app.orders;\nSELECT true;\n").unwrap();

    let (a, b) = (Cluster::start(), Cluster::start());
    for sql in [
        format!("CREATE ROLE backup LOGIN BYPASSRLS IN ROLE pg_read_all_data PASSWORD '{PG_PASSWORD}'"),
        format!("CREATE ROLE admin LOGIN SUPERUSER PASSWORD '{PG_PASSWORD}'"),
    ] {
        a.psql("postgres", &sql);
    }
    b.psql("postgres", &format!("CREATE ROLE admin LOGIN SUPERUSER PASSWORD '{PG_PASSWORD}'"));
    a.create_sample_db("shop", 1);
    a.psql("shop", "DO $$ DECLARE o oid; BEGIN FOR o IN SELECT oid FROM pg_largeobject_metadata LOOP EXECUTE format('GRANT SELECT ON LARGE OBJECT %s TO backup', o); END LOOP; END $$;");
    a.create_db("crm");
    a.psql(
        "crm",
        "CREATE TABLE contacts (id int PRIMARY KEY, name text); INSERT INTO contacts VALUES (1, 'a'), (2, 'b');",
    );
    for db in ["shop_copy", "x"] {
        a.create_db(db);
    }

    let bin_dir = std::path::Path::new(bin()).parent().unwrap().display().to_string();
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let mut first_snapshot: Option<String> = None;
    for line in block.lines() {
        let line = line.split("  #").next().unwrap().trim_end();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut line = line
            .replace("/srv/backup/coffer", &format!("{r}/repo"))
            .replace("/etc/coffer/passphrase", &format!("{r}/etc/coffer/passphrase"))
            .replace(" /etc/fstab", &format!(" {r}/etc/fstab"))
            .replace(" /etc ", &format!(" {r}/etc "))
            .replace(" /srv/app ", &format!(" {r}/srv/app "))
            .replace("/tmp/restore", &format!("{r}/restore"))
            .replace("'srv/app/config'", &format!("'{rel}/srv/app/config'"))
            .replace("@db1/", &format!("@127.0.0.1:{}/", a.port))
            .replace("@scratch/", &format!("@127.0.0.1:{}/", a.port))
            .replace("@newhost/", &format!("@127.0.0.1:{}/", b.port));
        if let Some(id) = &first_snapshot {
            line = line.replace("1a2b3c4d", &id[..8]);
        }
        if let Some(assignments) = line.strip_prefix("export ") {
            for a in assignments.split_whitespace() {
                let (k, v) = a.split_once('=').unwrap();
                vars.insert(k.to_string(), v.to_string());
            }
            continue;
        }
        let out = Command::new("bash")
            .args(["-c", &line])
            .env_clear()
            .env("PATH", format!("{bin_dir}:/usr/bin:/bin"))
            .env("HOME", env.dir.path())
            .env("PGPASSWORD", PG_PASSWORD)
            .env("COFFER_PG_BIN_DIR", pg::bin_dir())
            .envs(&vars)
            .current_dir(env.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{line}\nexit {:?}\n{}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if first_snapshot.is_none() && line.starts_with("coffer backup") {
            let list = env
                .command()
                .env("COFFER_REPOSITORY", format!("{r}/repo"))
                .args(["snapshots", "--json"])
                .output()
                .unwrap();
            let j: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
            first_snapshot = Some(j[0]["id"].as_str().unwrap().to_string());
        }
    }
    // What the lines did, checked.
    assert_eq!(fs::read(env.path("fstab")).unwrap(), fs::read(env.path("etc/fstab")).unwrap());
    assert_eq!(
        describe(&env.path(&format!("restore/{rel}/srv/app/config"))),
        describe(&env.path("srv/app/config")),
        "the --include restore brought the config back"
    );
    assert!(fs::read(env.path("shop.pgc")).unwrap().starts_with(b"PGDMP"));
    assert_eq!(a.plain_dump("shop"), a.plain_dump("shop_copy"));
    assert_eq!(b.psql("crm", "SELECT count(*) FROM contacts").trim(), "2", "--all restored every database on newhost");
    assert_eq!(a.plain_dump("shop"), b.plain_dump("shop"));
}

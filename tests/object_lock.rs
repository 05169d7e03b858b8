//! A bucket with a default Object Lock retention (moto's server: Garage has
//! no Object Lock) refuses every upload without Content-MD5 or a checksum
//! header: coffer's init, backup and restore work there.

use crate::common::moto::Moto;
use crate::common::*;
use std::fs;
use std::time::Duration;

/// coffer on repository `s3://BUCKET/repo` of this moto server.
fn on_bucket(moto: &Moto, env: &Env, bucket: &str, args: &[&str]) -> Run {
    env.command()
        .envs(moto.env())
        .env("COFFER_REPOSITORY", format!("s3://{bucket}/repo"))
        .env("XDG_CACHE_HOME", env.path("cache"))
        .args(args)
        .output()
        .unwrap()
        .into()
}

#[test]
fn a_bucket_with_default_object_lock_retention_takes_init_backup_and_restore() {
    let moto = Moto::start();
    moto.boto3(
        "s3.create_bucket(Bucket='locked', ObjectLockEnabledForBucket=True)\n\
         s3.put_object_lock_configuration(Bucket='locked', ObjectLockConfiguration={'ObjectLockEnabled': 'Enabled', \
         'Rule': {'DefaultRetention': {'Mode': 'GOVERNANCE', 'Days': 1}}})",
    );
    let env = Env::empty();
    let run = |args: &[&str]| on_bucket(&moto, &env, "locked", args);
    run(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]).ok();
    let src = env.path("src");
    make_rich_tree(&src);
    // Large enough for a multipart upload of its pack, too.
    fs::write(src.join("big.bin"), pseudo_random(20 << 20, 5)).unwrap();
    run(&["backup", src.to_str().unwrap()]).ok();
    let target = env.path("out");
    run(&["restore", "latest", "--target", target.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&target, &src)));
    run(&["verify", "--read-data"]).ok();
}

#[test]
fn prune_on_a_versioned_bucket_says_what_stays_stored() {
    let moto = Moto::start();
    moto.boto3(
        "s3.create_bucket(Bucket='versioned')\n\
         s3.put_bucket_versioning(Bucket='versioned', VersioningConfiguration={'Status': 'Enabled'})",
    );
    let env = Env::empty();
    let run = |args: &[&str]| on_bucket(&moto, &env, "versioned", args);
    run(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]).ok();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), pseudo_random(1 << 20, 1)).unwrap();
    let first = run(&["backup", "--json", src.to_str().unwrap()]).ok().json()["snapshot"].as_str().unwrap().to_string();
    fs::write(src.join("a.bin"), pseudo_random(1 << 20, 2)).unwrap();
    run(&["backup", src.to_str().unwrap()]).ok();
    run(&["forget", &first]).ok();
    let r = run(&["prune", "--grace", "0s", "--json"]).ok();
    assert_eq!(r.json()["bucket_versioning"], "Enabled", "{}", r.stderr);
    assert!(r.stderr.contains("NoncurrentVersionExpiration"), "{}", r.stderr);
    run(&["restore", "latest", "--target", env.path("out").to_str().unwrap()]).ok();
}

/// `--retention`: every pack, index, manifest and WAL file coffer writes
/// carries the Object Lock retention it was given (the config, keys and
/// locks do not: unlock and key remove must work), and the server refuses
/// to delete a retained version. forget and prune over retained objects
/// succeed, delete nothing retained, and say what they left; once the
/// retention has passed, the next prune reclaims the space.
#[test]
fn retention_keeps_what_coffer_writes_and_forget_and_prune_plan_around_it() {
    let moto = Moto::start();
    moto.boto3("s3.create_bucket(Bucket='retained', ObjectLockEnabledForBucket=True)");
    let env = Env::empty();
    let retained = |args: &[&str]| -> Run {
        env.command()
            .envs(moto.env())
            .env("COFFER_REPOSITORY", "s3://retained/repo")
            .env("XDG_CACHE_HOME", env.path("cache"))
            .env("COFFER_S3_RETENTION", "20s")
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    retained(&["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]).ok();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), pseudo_random(1 << 20, 1)).unwrap();
    let first = retained(&["backup", "--json", src.to_str().unwrap()]).ok().json();
    let written = std::time::Instant::now();
    let key = env.path("wal.key");
    retained(&["key", "add-file", key.to_str().unwrap()]).ok();
    let seg = env.path("000000010000000000000001");
    fs::write(&seg, wal_segment(42, 1)).unwrap();
    let r: Run = env
        .command()
        .envs(moto.env())
        .env("COFFER_REPOSITORY", "s3://retained/repo")
        .env("COFFER_S3_RETENTION", "20s")
        .env_remove("COFFER_PASSWORD")
        .env("COFFER_PASSWORD_FILE", &key)
        // One PUT: moto applies Object Lock headers to PutObject only, not to
        // CreateMultipartUpload (which gets the same headers from coffer, as AWS wants).
        .env("COFFER_S3_PART_SIZE_MIB", "32")
        .args(["wal-push", "--stanza", "42", seg.to_str().unwrap()])
        .output()
        .unwrap()
        .into();
    r.ok();

    // What each object carries, as the server says.
    let heads = moto.boto3_out(
        "for o in s3.list_objects_v2(Bucket='retained', Prefix='repo/')['Contents']:\n    \
         h = s3.head_object(Bucket='retained', Key=o['Key'])\n    \
         print(o['Key'], h.get('ObjectLockMode', '-'), h['VersionId'])",
    );
    let mut kinds = std::collections::BTreeMap::new();
    for line in heads.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        let kind = f[0].trim_start_matches("repo/").split('/').next().unwrap().to_string();
        kinds.insert(kind.clone(), f[1].to_string());
        let want = if ["data", "index", "snapshots", "wal"].contains(&kind.as_str()) { "GOVERNANCE" } else { "-" };
        assert_eq!(f[1], want, "{line}");
    }
    assert_eq!(kinds.len(), 6, "config, keys, data, index, snapshots, wal: {heads}");
    // A retained version cannot be deleted, whoever asks.
    let pack = heads.lines().find(|l| l.starts_with("repo/data/")).unwrap().split(' ').collect::<Vec<_>>();
    moto.boto3(&format!(
        "try:\n    s3.delete_object(Bucket='retained', Key='{}', VersionId='{}')\n    raise SystemExit('deleted')\n\
         except s3.exceptions.ClientError as e:\n    assert 'AccessDenied' in str(e), e",
        pack[0], pack[2]
    ));

    // forget over a retained snapshot: exit 0, it stays listed, and the run says until when.
    let id = first["snapshot"].as_str().unwrap();
    let r = retained(&["forget", "--json", id]).ok();
    let j = r.json();
    assert_eq!((j["removed"].as_u64(), j["retained"][0]["id"].as_str()), (Some(0), Some(id)), "{j}");
    assert_eq!(retained(&["snapshots", "--json"]).ok().json().as_array().unwrap().len(), 1);

    // An operator with governance bypass removes the manifest: its data is
    // unused now, and still retained. prune deletes nothing and says so.
    let manifest = heads.lines().find(|l| l.starts_with("repo/snapshots/")).unwrap().split(' ').collect::<Vec<_>>();
    moto.boto3(&format!(
        "s3.delete_object(Bucket='retained', Key='{}', VersionId='{}', BypassGovernanceRetention=True)",
        manifest[0], manifest[2]
    ));
    let r = retained(&["prune", "--grace", "0s", "--json"]).ok();
    let p = r.json();
    assert_eq!((p["packs_deleted"].as_u64(), p["bytes_reclaimed"].as_u64()), (Some(0), Some(0)), "{p}");
    assert!(p["retained_objects"].as_u64().unwrap() >= 2, "the pack and its index: {p}");
    assert!(p["retained_until"].is_string(), "{p}");
    let text = retained(&["prune", "--grace", "0s", "--dry-run"]).ok();
    assert!(text.stdout.contains("Object Lock retains"), "{}", text.stdout);
    retained(&["verify"]).ok();

    // Once the retention has passed, the next prune reclaims the space.
    let wait = Duration::from_secs(21).saturating_sub(written.elapsed());
    std::thread::sleep(wait);
    let p = retained(&["prune", "--grace", "0s", "--json"]).ok().json();
    assert!(p["packs_deleted"].as_u64().unwrap() >= 1 && p["bytes_reclaimed"].as_u64().unwrap() > 1 << 20, "{p}");
    assert_eq!(p["retained_objects"], 0, "{p}");
    let v = retained(&["verify", "--json"]).ok().json();
    assert!(v["retention_checked"].as_u64().unwrap() >= 3, "{v}");

    // A backup run without --retention: verify --retention names what it wrote.
    fs::write(src.join("b.bin"), pseudo_random(1 << 20, 3)).unwrap();
    let r: Run = env
        .command()
        .envs(moto.env())
        .env("COFFER_REPOSITORY", "s3://retained/repo")
        .env("XDG_CACHE_HOME", env.path("cache"))
        .args(["backup", "-q", src.to_str().unwrap()])
        .output()
        .unwrap()
        .into();
    r.ok();
    let v = retained(&["verify"]);
    assert_eq!(v.code, 1, "{}{}", v.stdout, v.stderr);
    assert!(
        v.stderr.contains("not retained at all, less than --retention 20s") && v.stderr.contains("snapshots/"),
        "{}",
        v.stderr
    );
}

/// A profile's `retention` and `retention_mode` apply to what its runs write.
#[test]
fn a_profiles_retention_applies_to_what_it_writes() {
    let moto = Moto::start();
    moto.boto3("s3.create_bucket(Bucket='profiled', ObjectLockEnabledForBucket=True)");
    let env = Env::empty();
    let config = env.path("coffer.toml");
    fs::write(
        &config,
        "[profile.offsite]\nrepository = \"s3://profiled/repo\"\nretention = \"1h\"\nretention_mode = \"compliance\"\n",
    )
    .unwrap();
    let run = |args: &[&str]| -> Run {
        env.command()
            .envs(moto.env())
            .env_remove("COFFER_REPOSITORY")
            .env("COFFER_CONFIG", &config)
            .env("XDG_CACHE_HOME", env.path("cache"))
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    run(&["init", "--profile", "offsite", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]).ok();
    let src = env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), b"data").unwrap();
    run(&["backup", "--profile", "offsite", src.to_str().unwrap()]).ok();
    let modes = moto.boto3_out(
        "for o in s3.list_objects_v2(Bucket='profiled', Prefix='repo/snapshots/')['Contents']:\n    \
         print(s3.head_object(Bucket='profiled', Key=o['Key']).get('ObjectLockMode', '-'))",
    );
    assert_eq!(modes.trim(), "COMPLIANCE");
    run(&["verify", "--profile", "offsite", "--retention", "1h"]).ok();
}

/// docs/OPERATIONS.md's IAM policies, one per role, as written (bucket and
/// prefix as there), against moto with IAM enforced: each role does its
/// job, and what it may not do fails with one line naming the object,
/// leaving the repository as it was.
#[test]
fn the_least_privilege_policies_of_operations_md_work_as_written() {
    let doc = docs::read("docs/OPERATIONS.md");
    let section = docs::section(&doc, "### One key per role");
    let policies: Vec<&str> = section.split("```json\n").skip(1).map(|b| b.split("\n```").next().unwrap()).collect();
    assert_eq!(policies.len(), 3, "backup, restore, prune");
    for p in &policies {
        serde_json::from_str::<serde_json::Value>(p).expect("a policy is JSON");
    }
    // The set-up's requests go unchecked: a bucket, then a user, key and policy per role.
    let moto = Moto::start_with_iam(1 + 4 * 3);
    let admin = r#"{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}"#;
    let script = format!(
        "import json\niam = boto3.client('iam', endpoint_url='{}', region_name='us-east-1', \
         aws_access_key_id='testing', aws_secret_access_key='testing')\n\
         s3.create_bucket(Bucket='acme-offsite', ObjectLockEnabledForBucket=True)\n\
         for name, policy in [('admin', {admin:?}), ('backup', {:?}), ('restore', {:?}), ('prune', {:?})]:\n    \
         iam.create_user(UserName=name)\n    \
         k = iam.create_access_key(UserName=name)['AccessKey']\n    \
         iam.put_user_policy(UserName=name, PolicyName='coffer', PolicyDocument=policy)\n    \
         print(name, k['AccessKeyId'], k['SecretAccessKey'])",
        moto.endpoint(),
        policies[0],
        policies[1],
        policies[2]
    );
    let keys: std::collections::HashMap<String, (String, String)> = moto
        .boto3_out(&script)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f[0].to_string(), (f[1].to_string(), f[2].to_string()))
        })
        .collect();
    let env = Env::empty();
    let as_role = |role: &str, args: &[&str]| -> Run {
        let (id, secret) = &keys[role];
        env.command()
            .envs(moto.env())
            .env("AWS_ACCESS_KEY_ID", id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("COFFER_REPOSITORY", "s3://acme-offsite/db1")
            .env("XDG_CACHE_HOME", env.path("cache"))
            .args(args)
            .output()
            .unwrap()
            .into()
    };
    as_role("admin", &["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]).ok();
    let src = env.path("src");
    make_rich_tree(&src);
    let src = src.to_str().unwrap();

    // The backup host backs up (with and without retention) and cannot forget.
    let first = as_role("backup", &["backup", "--json", src]).ok().json()["snapshot"].as_str().unwrap().to_string();
    as_role("backup", &["backup", "-q", "--retention", "1h", src]).ok();
    let r = as_role("backup", &["forget", &first]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("AccessDenied") && r.stderr.contains(&format!("snapshots/{first}")), "{}", r.stderr);
    assert_eq!(as_role("restore", &["snapshots", "--json"]).ok().json().as_array().unwrap().len(), 2);

    // The restore host restores and verifies, and cannot write.
    let out = env.path("out");
    as_role("restore", &["restore", "latest", "--target", out.to_str().unwrap()]).ok();
    assert_eq!(describe(env.path("src").as_path()), describe(&restored(&out, &env.path("src"))));
    as_role("restore", &["verify", "--read-data"]).ok();
    let r = as_role("restore", &["backup", src]);
    assert!(r.code != 0 && r.stderr.contains("AccessDenied") && r.stderr.lines().count() <= 2, "{}", r.stderr);

    // The prune host forgets and prunes; what retention holds stays, and is named.
    let j = as_role("prune", &["forget", "--keep-last", "1", "--prune", "--json"]).ok().json();
    assert_eq!(j["forget"]["removed"], 1, "{j}");
    let r = as_role("prune", &["verify", "--retention", "1h"]);
    assert!(r.code == 1 && r.stderr.contains("not retained at all"), "the first backup's packs: {}", r.stderr);
    as_role("restore", &["restore", "latest", "--target", env.path("again").to_str().unwrap()]).ok();
}

/// `copy` into a bucket with Object Lock sets the retention it is given on
/// what it writes there (and none is asked of the local source).
#[test]
fn copy_into_a_locked_bucket_retains_what_it_writes() {
    let moto = Moto::start();
    moto.boto3("s3.create_bucket(Bucket='offsite', ObjectLockEnabledForBucket=True)");
    let local = Env::new();
    let src = local.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("f"), pseudo_random(300_000, 4)).unwrap();
    local.backup_json(&[&src], &[]);
    let offsite = Env::empty();
    on_bucket(&moto, &offsite, "offsite", &["init", "--kdf-memory-kib", "256", "--kdf-iterations", "1"]).ok();
    let r: Run = local
        .command()
        .envs(moto.env())
        .env("COFFER_TO_PASSWORD", PASSPHRASE)
        .env("COFFER_S3_RETENTION", "1h")
        .env("COFFER_S3_RETENTION_MODE", "compliance")
        .args(["copy", "--to", "s3://offsite/repo"])
        .output()
        .unwrap()
        .into();
    r.ok();
    let modes = moto.boto3_out(
        "for o in s3.list_objects_v2(Bucket='offsite', Prefix='repo/')['Contents']:\n    \
         print(o['Key'].split('/')[1], s3.head_object(Bucket='offsite', Key=o['Key']).get('ObjectLockMode', '-'))",
    );
    for kind in ["data", "index", "snapshots"] {
        assert!(modes.lines().any(|l| l == format!("{kind} COMPLIANCE")), "{kind}: {modes}");
    }
    let out = offsite.path("out");
    on_bucket(&moto, &offsite, "offsite", &["restore", "latest", "--target", out.to_str().unwrap()]).ok();
    assert_eq!(fs::read(src.join("f")).unwrap(), fs::read(restored(&out, &src).join("f")).unwrap());
}

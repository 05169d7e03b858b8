//! A bucket with a default Object Lock retention (moto's server: Garage has
//! no Object Lock) refuses every upload without Content-MD5 or a checksum
//! header: coffer's init, backup and restore work there.

use crate::common::moto::Moto;
use crate::common::*;
use std::fs;

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

//! Readers overlapping a prune, made deterministic: a backend wrapper pauses
//! the reader at a chosen request while a real `coffer prune` runs.

use crate::common::place::{At, Place, Wrapped};
use crate::common::*;
use coffer::Kind;
use std::fs;

/// Snapshot 1 holds a and b, snapshot 2 only b (same pack); snapshot 1 is
/// forgotten, so `prune --max-unused 1` repacks b's chunks and deletes the pack.
fn setup(place: &Place) -> (std::path::PathBuf, String) {
    let src = place.env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), pseudo_random(3 << 20, 1)).unwrap();
    fs::write(src.join("b.bin"), pseudo_random(3 << 20, 2)).unwrap();
    let backup = || place.backup(&src);
    let first = backup();
    fs::remove_file(src.join("a.bin")).unwrap();
    let second = backup();
    place.run(&["forget", &first]).ok();
    (src, second)
}

fn prune_now(place: &Place) {
    let j = place.run(&["prune", "--max-unused", "1", "--grace", "0s", "--json"]).ok().json();
    assert_eq!((j["packs_repacked"].as_u64(), j["packs_deleted"].as_u64()), (Some(1), Some(0)), "{j}");
}

fn restore_overlapping_prune(place: Place) {
    let (src, second) = setup(&place);
    let (repo, reached, go_on) = place.paused(At::Read(Kind::Pack));
    let target = place.env.path("out");
    let opts = coffer::RestoreOptions {
        target: target.clone(),
        include: vec![],
        exclude: vec![],
        dry_run: false,
        workers: 2,
        base_root: None,
    };
    let id = repo.find_snapshot(&second, &[]).unwrap();
    let restore = std::thread::spawn(move || coffer::restore(&repo, &id, &opts).map(|_| ()));
    // The restore has loaded its index and asked for its first chunk: prune now.
    reached.recv().unwrap();
    prune_now(&place);
    go_on.send(()).unwrap();
    restore.join().unwrap().expect("the restore completes");
    assert_eq!(fs::read(src.join("b.bin")).unwrap(), fs::read(restored(&target, &src).join("b.bin")).unwrap());
}

fn verify_overlapping_prune(place: Place) {
    setup(&place);
    let (repo, reached, go_on) = place.paused(At::BeforeList(Kind::Pack));
    let opts = coffer::VerifyOptions {
        read_data: coffer::ReadData::All,
        max_age: None,
        max_wal_age: None,
        retention: None,
        tags: vec![],
    };
    let verify = std::thread::spawn(move || coffer::verify(&repo, None, &opts));
    // verify has read the old indexes and is about to list the packs.
    reached.recv().unwrap();
    prune_now(&place);
    go_on.send(()).unwrap();
    let s = verify.join().unwrap().unwrap();
    assert!(s.errors.is_empty(), "{:?}", s.errors);
}

#[test]
fn a_restore_that_overlaps_a_prune_completes_byte_for_byte() {
    restore_overlapping_prune(Place::local());
}

#[test]
fn a_restore_that_overlaps_a_prune_on_s3_completes_byte_for_byte() {
    restore_overlapping_prune(Place::garage());
}

#[test]
fn a_verify_that_overlaps_a_prune_reports_nothing_missing() {
    verify_overlapping_prune(Place::local());
}

#[test]
fn a_verify_that_overlaps_a_prune_on_s3_reports_nothing_missing() {
    verify_overlapping_prune(Place::garage());
}

fn prune_with_a_lagging_listing(place: Place) {
    let src = place.env.path("src");
    fs::create_dir_all(&src).unwrap();
    let backup = || place.backup(&src);
    fs::write(src.join("old.bin"), pseudo_random(1 << 20, 3)).unwrap();
    let old = backup();
    fs::write(src.join("new.bin"), pseudo_random(2 << 20, 4)).unwrap();
    let new = backup();
    place.run(&["forget", &old]).ok();
    let lagging = |grace: std::time::Duration| {
        // A listing that lags: the newest snapshot is not listed yet.
        let repo = place.open(Wrapped { hidden: Some(new.clone()), ..Wrapped::around(place.backend()) });
        coffer::prune(&repo, &coffer::PruneOptions { max_unused: 0.01, grace, ..Default::default() }).unwrap()
    };
    // The default grace period: the packs of the snapshot the listing missed stay.
    let s = lagging(coffer::PruneOptions::default().grace);
    assert!(s.packs_in_grace >= 1, "{s:?}");
    let target = place.env.path("out");
    place.run(&["restore", &new, "--target", target.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&target, &src)));
    // Without one, that prune would have deleted them: the period is what protects it.
    lagging(std::time::Duration::ZERO);
    let r = place.run(&["restore", &new, "--target", place.env.path("out2").to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
}

#[test]
fn a_prune_whose_listing_lags_leaves_the_newest_snapshots_data_alone() {
    prune_with_a_lagging_listing(Place::local());
}

#[test]
fn a_prune_on_s3_whose_listing_lags_leaves_the_newest_snapshots_data_alone() {
    prune_with_a_lagging_listing(Place::garage());
}

/// Two snapshots of the same tree; the newest is forgotten by another
/// process after a reader listed the snapshots and before it read them.
fn listing_overlapping_forget(place: Place) {
    let src = place.env.path("src");
    make_rich_tree(&src);
    let first = place.backup(&src);
    let second = place.backup(&src);

    let (repo, reached, go_on) = place.paused(At::AfterList(Kind::Snapshot));
    let list = std::thread::spawn(move || {
        let (ok, bad) = repo.list_snapshots_checked().unwrap();
        (ok.into_iter().map(|(id, _)| id.to_hex()).collect::<Vec<_>>(), bad.len())
    });
    reached.recv().unwrap();
    place.run(&["forget", &second]).ok();
    go_on.send(()).unwrap();
    assert_eq!(list.join().unwrap(), (vec![first.clone()], 0));

    // `restore latest` whose newest snapshot goes while it lists: it restores the one left.
    let third = place.backup(&src);
    let (repo, reached, go_on) = place.paused(At::AfterList(Kind::Snapshot));
    let target = place.env.path("out");
    let opts = coffer::RestoreOptions {
        target: target.clone(),
        include: vec![],
        exclude: vec![],
        dry_run: false,
        workers: 2,
        base_root: None,
    };
    let restore = std::thread::spawn(move || {
        let id = repo.find_snapshot("latest", &[])?;
        coffer::restore(&repo, &id, &opts).map(|_| id.to_hex())
    });
    reached.recv().unwrap();
    place.run(&["forget", &third]).ok();
    go_on.send(()).unwrap();
    assert_eq!(restore.join().unwrap().expect("restore latest completes"), first);
    assert_eq!(describe(&src), describe(&restored(&target, &src)));
}

#[test]
fn snapshots_and_restore_latest_overlapping_a_forget_skip_what_it_removed() {
    listing_overlapping_forget(Place::local());
}

#[test]
fn snapshots_and_restore_latest_on_s3_overlapping_a_forget_skip_what_it_removed() {
    listing_overlapping_forget(Place::garage());
}

/// A backup lists the snapshots to find its parent; another process then
/// forgets that parent. The backup takes the next one as parent and commits.
fn backup_overlapping_forget(place: Place) {
    let src = place.env.path("src");
    make_rich_tree(&src);
    let older = place.backup(&src);
    let newest = place.backup(&src);
    fs::write(src.join("new.bin"), pseudo_random(1 << 20, 9)).unwrap();

    let (repo, reached, go_on) = place.paused(At::AfterList(Kind::Snapshot));
    let opts = coffer::BackupOptions { paths: vec![src.clone()], workers: 2, ..Default::default() };
    let backup = std::thread::spawn(move || coffer::backup(&repo, &opts, &coffer::NoProgress));
    reached.recv().unwrap();
    place.run(&["forget", &newest]).ok();
    go_on.send(()).unwrap();
    let s = backup.join().unwrap().expect("the backup completes");
    assert_eq!(s.parent.map(|p| p.to_hex()), Some(older), "the forgotten parent gives way to the next");
    let id = s.snapshot.unwrap().to_hex();
    let target = place.env.path("out");
    place.run(&["restore", &id, "--target", target.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&target, &src)));
    place.run(&["verify", "--read-data"]).ok();
}

#[test]
fn a_backup_whose_parent_another_process_forgets_completes() {
    backup_overlapping_forget(Place::local());
}

#[test]
fn a_backup_on_s3_whose_parent_another_process_forgets_completes() {
    backup_overlapping_forget(Place::garage());
}

/// A backup has stored its packs but not yet its index and snapshot when a
/// prune starts: the backup's lock stops the prune; with the lock removed by
/// hand, the grace period still keeps the packs; the backup then commits a
/// snapshot that restores byte for byte.
fn backup_overlapping_prune(place: Place) {
    let src = place.env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("old.bin"), pseudo_random(1 << 20, 5)).unwrap();
    let old = place.backup(&src);
    place.run(&["forget", &old]).ok();
    fs::remove_file(src.join("old.bin")).unwrap();
    fs::write(src.join("new.bin"), pseudo_random(3 << 20, 6)).unwrap();

    let (repo, reached, go_on) = place.paused(At::Put(Kind::Index));
    let opts = coffer::BackupOptions { paths: vec![src.clone()], workers: 2, ..Default::default() };
    let backup = std::thread::spawn(move || coffer::backup(&repo, &opts, &coffer::NoProgress));
    reached.recv().unwrap();
    let r = place.run(&["prune", "--grace", "0s"]);
    assert_eq!(r.code, 11, "prune must wait for the backup: {}", r.stderr);
    place.run(&["unlock", "--all"]).ok();
    let j = place.run(&["prune", "--json"]).ok().json();
    assert!(j["packs_in_grace"].as_u64().unwrap() >= 1, "{j}");
    go_on.send(()).unwrap();
    let id = backup.join().unwrap().expect("the backup completes").snapshot.unwrap().to_hex();
    let target = place.env.path("out");
    place.run(&["restore", &id, "--target", target.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&target, &src)));
    place.run(&["verify", "--read-data"]).ok();
}

#[test]
fn a_backup_that_started_before_a_prune_and_commits_after_it_restores() {
    backup_overlapping_prune(Place::local());
}

#[test]
fn a_backup_on_s3_that_started_before_a_prune_and_commits_after_it_restores() {
    backup_overlapping_prune(Place::garage());
}

/// Prune stopped after each of its writes in turn (every write from the Nth
/// on fails, as if the process had been killed there): at every point each
/// snapshot restores and verify passes, and the next prune finishes the job.
fn prune_stopped_after_every_write(place: Place) {
    let (src, second) = setup(&place);
    let opts = coffer::PruneOptions { max_unused: 0.01, grace: std::time::Duration::ZERO, ..Default::default() };
    let mut stops = 0;
    for n in 0.. {
        let repo = place.open(Wrapped { die_after: Some(n), ..Wrapped::around(place.backend()) });
        if coffer::prune(&repo, &opts).is_ok() {
            break;
        }
        stops += 1;
        // The test process stands in for the killed prune and is alive: its lock goes by hand.
        place.run(&["unlock", "--all"]).ok();
        let target = place.env.path(&format!("out-{n}"));
        place.run(&["restore", &second, "--target", target.to_str().unwrap()]).ok();
        assert_eq!(describe(&src), describe(&restored(&target, &src)), "stopped after {n} writes");
        place.run(&["verify"]).ok();
    }
    // Its lock, the new pack, the new index, the old index, the old pack:
    // each a stop (the release of its lock fails silently, as a kill would).
    assert!(stops >= 5, "prune stopped only {stops} times");
    place.run(&["unlock", "--all"]).ok();
    let j = place.run(&["prune", "--grace", "0s", "--json"]).ok().json();
    assert_eq!(j["packs_repacked"].as_u64(), Some(0), "{j}");
    place.run(&["verify", "--read-data"]).ok();
    let target = place.env.path("out-end");
    place.run(&["restore", &second, "--target", target.to_str().unwrap()]).ok();
    assert_eq!(describe(&src), describe(&restored(&target, &src)));
}

#[test]
fn a_prune_stopped_after_any_write_leaves_a_whole_repository() {
    prune_stopped_after_every_write(Place::local());
}

#[test]
fn a_prune_on_s3_stopped_after_any_write_leaves_a_whole_repository() {
    prune_stopped_after_every_write(Place::garage());
}

/// A drill restoring a dump whose pack a prune repacks meanwhile: it reads
/// the chunks where the new index puts them, and passes.
fn drill_overlapping_prune(place: Place) {
    use crate::common::pg::{self, Cluster, PG_PASSWORD};
    // Its own server: the tests on the shared one check that no drill's
    // scratch database is left there, and this one's lives through a prune.
    let cluster = Cluster::start();
    let db = pg::unique("drillprune");
    cluster.create_sample_db(&db, 1);
    let src = place.env.path("src");
    fs::create_dir_all(&src).unwrap();
    fs::write(src.join("a.bin"), pseudo_random(3 << 20, 8)).unwrap();
    let url = cluster.url(&db);
    let backup = |args: &[&str]| -> String {
        let mut c = place.command();
        c.env("PGPASSWORD", PG_PASSWORD).env("COFFER_PG_BIN_DIR", pg::bin_dir()).args(["backup", "--json"]);
        let r: Run = c.args(args).output().unwrap().into();
        r.ok().json()["snapshot"].as_str().unwrap().to_string()
    };
    // The first snapshot's pack holds a.bin and the dump; the second shares the dump's chunks.
    let first = backup(&["--pg", &url, src.to_str().unwrap()]);
    let second = backup(&["--pg", &url]);
    place.run(&["forget", &first]).ok();

    let (repo, reached, go_on) = place.paused(At::Read(Kind::Pack));
    let opts = coffer::DrillOptions {
        scratch: coffer::PgConnection::new(Some(&cluster.url_with_password("postgres")), Some(pg::bin_dir())).unwrap(),
        database: None,
        check_sql: None,
        jobs: 1,
        check_timeout: std::time::Duration::from_secs(600),
        workers: 2,
        progress: None,
    };
    let id = repo.find_snapshot(&second, &[]).unwrap();
    let drill = std::thread::spawn(move || coffer::drill(&repo, &id, &opts));
    reached.recv().unwrap();
    prune_now(&place);
    go_on.send(()).unwrap();
    let report = drill.join().unwrap().expect("the drill runs");
    assert!(report.passed, "{:?}", report.error);
    assert!(report.tables_compared >= 4 && report.dropped, "{report:?}");
}

#[test]
fn a_drill_that_overlaps_a_prune_passes() {
    drill_overlapping_prune(Place::local());
}

#[test]
fn a_drill_that_overlaps_a_prune_on_s3_passes() {
    drill_overlapping_prune(Place::garage());
}

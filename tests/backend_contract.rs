//! The contract every storage backend keeps, run against each of them
//! (restic's internal/backend/test): round trips of empty, small and
//! multipart-sized objects, ranges, NotFound, Truncated, listing, deleting.

use crate::common::garage;
use coffer::{Backend, BackendError, Kind, Local, S3Options, S3};

fn contract(b: &dyn Backend) {
    b.create().unwrap();
    assert!(b.list(Kind::Snapshot).unwrap().is_empty());
    assert!(matches!(b.get(Kind::Snapshot, "missing"), Err(BackendError::NotFound { .. })));
    assert!(matches!(b.delete(Kind::Snapshot, "missing"), Err(BackendError::NotFound { .. })));

    let large = crate::common::pseudo_random(21 * 1024 * 1024 + 3, 77);
    let objects: Vec<(Kind, String, Vec<u8>)> = vec![
        (Kind::Snapshot, "aa".repeat(32), Vec::new()),
        (Kind::Snapshot, "bb".repeat(32), b"one".to_vec()),
        (Kind::Pack, "cd".repeat(32), large.clone()),
        (Kind::Config, "config".into(), b"{}".to_vec()),
    ];
    for (kind, name, data) in &objects {
        b.put(*kind, name, data).unwrap();
        assert_eq!(&b.get(*kind, name).unwrap(), data, "{kind:?} {name}");
    }
    let names: Vec<String> = b.list(Kind::Snapshot).unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(names, ["aa".repeat(32), "bb".repeat(32)]);
    let packs = b.list(Kind::Pack).unwrap();
    assert_eq!(packs.len(), 1);
    assert_eq!(packs[0].size, large.len() as u64);

    let pack = "cd".repeat(32);
    assert_eq!(b.get_range(Kind::Pack, &pack, 5, 10).unwrap(), &large[5..15]);
    let end = large.len() as u64;
    assert_eq!(b.get_range(Kind::Pack, &pack, end - 4, 4).unwrap(), &large[large.len() - 4..]);
    assert!(matches!(b.get_range(Kind::Pack, &pack, end - 4, 10), Err(BackendError::Truncated { .. })));
    assert!(matches!(b.get_range(Kind::Pack, &pack, end + 10, 10), Err(BackendError::Truncated { .. })));
    let mut streamed = Vec::new();
    std::io::Read::read_to_end(&mut b.open(Kind::Pack, &pack).unwrap(), &mut streamed).unwrap();
    assert_eq!(streamed, large);

    // Overwriting an object replaces it whole.
    b.put(Kind::Snapshot, &"bb".repeat(32), b"two").unwrap();
    assert_eq!(b.get(Kind::Snapshot, &"bb".repeat(32)).unwrap(), b"two");

    b.delete(Kind::Snapshot, &"aa".repeat(32)).unwrap();
    assert!(matches!(b.delete(Kind::Snapshot, &"aa".repeat(32)), Err(BackendError::NotFound { .. })));
    assert_eq!(b.list(Kind::Snapshot).unwrap().len(), 1);
    assert!(b.incomplete_uploads().unwrap().is_empty());

    // One WAL stanza's listing holds its objects only, named as `list` names them.
    for name in ["db1/000000010000000000000001", "db1/00000002.history", "db10/000000010000000000000001"] {
        b.put(Kind::Wal, name, name.as_bytes()).unwrap();
    }
    let all: Vec<String> = b.list(Kind::Wal).unwrap().into_iter().map(|o| o.name).collect();
    assert_eq!(all, ["db1/000000010000000000000001", "db1/00000002.history", "db10/000000010000000000000001"]);
    let one: Vec<(String, u64)> =
        b.list_under(Kind::Wal, "db1").unwrap().into_iter().map(|o| (o.name, o.size)).collect();
    assert_eq!(one, [("db1/000000010000000000000001".to_string(), 28), ("db1/00000002.history".to_string(), 20)]);
    assert!(b.list_under(Kind::Wal, "db2").unwrap().is_empty());
}

#[test]
fn local_backend_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    contract(&Local::new(dir.path().join("repo")));
}

#[test]
fn s3_backend_keeps_the_contract() {
    let g = garage::shared();
    let opts = S3Options {
        endpoint: Some(g.endpoint()),
        region: Some("garage".into()),
        path_style: true,
        static_credentials: Some((g.get("AWS_ACCESS_KEY_ID"), g.get("AWS_SECRET_ACCESS_KEY"))),
        ..S3Options::default()
    };
    let prefix = format!("s3://{}/contract-{}", g.get("GARAGE_TEST_BUCKET"), std::process::id());
    contract(&S3::new(&prefix, opts).unwrap());
}

//! Request counts of lookups: what the metadata cache saves.

mod common;

use std::time::Duration;

use bucketfs::memory::MemoryClient;
use common::pathfs::PathFs;

#[tokio::test]
async fn creating_many_files_in_a_known_directory_needs_no_per_name_probe() {
    let c = MemoryClient::new();
    let fs = PathFs::new(c.clone(), |cfg| {
        cfg.metadata_ttl = Some(Duration::from_millis(100))
    });
    fs.mkdir("d").await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let before = c.counts();
    for i in 0..50 {
        fs.write_file(&format!("d/f{i}"), b"x").await.unwrap();
    }
    let after = c.counts();
    assert_eq!(after.put - before.put, 50);
    // Without the re-listing, every name would cost a HEAD and a LIST (50
    // each); with it, only the directory itself is revalidated (and
    // re-listed) once per TTL.
    assert!(after.head - before.head <= 10, "{after:?}");
    assert!(after.list - before.list <= 10, "{after:?}");
}

#[tokio::test]
async fn lookups_within_the_ttl_send_no_request() {
    let c = MemoryClient::new();
    c.insert("f", &b"x"[..], Default::default());
    let fs = PathFs::new(c.clone(), |cfg| {
        cfg.metadata_ttl = Some(Duration::from_secs(60))
    });
    fs.resolve("f").await.unwrap();
    let before = c.counts();
    for _ in 0..10 {
        fs.resolve("f").await.unwrap();
        assert_eq!(fs.resolve("missing").await.unwrap_err(), libc::ENOENT);
    }
    let after = c.counts();
    assert_eq!(
        (after.head, after.list),
        (before.head + 1, before.list + 1),
        "one probe for the missing name"
    );
}

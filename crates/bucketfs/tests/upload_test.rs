//! Uploads of large files: parts streamed while a new file is written,
//! parts resent after a rewrite, and the fallback when a streamed part
//! fails.

mod common;

use std::sync::Arc;

use bucketfs::client::ObjectClientError;
use bucketfs::faults::{Fault, FaultClient, Op};
use bucketfs::memory::MemoryClient;
use common::pathfs::PathFs;

const MIB: usize = 1 << 20;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i / 4096) as u8 ^ (i as u8)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_write_streams_parts_before_close() {
    let c = MemoryClient::new();
    let fs = PathFs::new(c.clone(), |_| {});
    let data = pattern(40 * MIB);
    let (_, fh) = fs
        .open("big", libc::O_CREAT | libc::O_WRONLY)
        .await
        .unwrap();
    for (i, chunk) in data.chunks(MIB).enumerate() {
        fs.fs.write(fh, (i * MIB) as u64, chunk).await.unwrap();
    }
    // Parts are sent by background tasks; give the last ones a moment.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let before_close = c.counts();
    assert!(
        before_close.upload_part >= 3,
        "parts sent while writing: {before_close:?}"
    );
    assert!(c.object("big").is_none(), "nothing visible before close");
    fs.close(fh).await.unwrap();
    let after = c.counts();
    assert!(c.object("big").unwrap().body[..] == data[..]);
    assert_eq!(after.create_multipart, 1);
    assert_eq!(
        after.upload_part, 5,
        "each 8 MiB block sent once: {after:?}"
    );
}

#[tokio::test]
async fn rewriting_a_streamed_block_resends_it() {
    let c = MemoryClient::new();
    let fs = PathFs::new(c.clone(), |_| {});
    let mut data = pattern(30 * MIB);
    let (_, fh) = fs
        .open("big", libc::O_CREAT | libc::O_WRONLY)
        .await
        .unwrap();
    for (i, chunk) in data.chunks(MIB).enumerate() {
        fs.fs.write(fh, (i * MIB) as u64, chunk).await.unwrap();
    }
    fs.fs.write(fh, 100, b"rewritten").await.unwrap();
    data[100..109].copy_from_slice(b"rewritten");
    fs.close(fh).await.unwrap();
    assert!(c.object("big").unwrap().body[..] == data[..]);
}

#[tokio::test]
async fn failed_streamed_part_falls_back_to_a_full_upload_at_close() {
    let c = Arc::new(FaultClient::new(MemoryClient::new()));
    let fs = PathFs::new(Arc::clone(&c), |_| {});
    c.fail_nth(Op::UploadPart, 1, Fault::Error(ObjectClientError::Reset));
    let data = pattern(25 * MIB);
    fs.write_file("big", &data).await.unwrap();
    assert!(c.inner().object("big").unwrap().body[..] == data[..]);
    assert_eq!(c.inner().open_uploads(), 0);
}

#[tokio::test]
async fn truncating_a_streamed_file_to_small_uploads_it_whole() {
    let c = MemoryClient::new();
    let fs = PathFs::new(c.clone(), |_| {});
    let (ino, fh) = fs.open("f", libc::O_CREAT | libc::O_WRONLY).await.unwrap();
    fs.fs.write(fh, 0, &pattern(20 * MIB)).await.unwrap();
    let set = bucketfs::fs::SetAttr {
        size: Some(10),
        fh: Some(fh),
        ..Default::default()
    };
    fs.fs.setattr(ino, set).await.unwrap();
    fs.close(fh).await.unwrap();
    assert_eq!(&c.object("f").unwrap().body[..], &pattern(10)[..]);
    assert_eq!(c.open_uploads(), 0);
}

#[tokio::test]
async fn multipart_server_side_copy_keeps_bytes_and_sets_metadata() {
    use bucketfs::client::ObjectClient;
    let c = MemoryClient::new();
    let etag = c.insert("src", pattern(3 * MIB), Default::default());
    let mut meta = std::collections::BTreeMap::new();
    meta.insert("mode".to_string(), "33188".to_string());
    let r = bucketfs::upload::copy_large(&c, "src", "dst", (3 * MIB) as u64, &etag, meta)
        .await
        .unwrap();
    let dst = c.object("dst").unwrap();
    assert_eq!(dst.etag, r.etag);
    assert!(dst.body[..] == pattern(3 * MIB)[..]);
    assert_eq!(dst.metadata["mode"], "33188");
    assert_eq!(c.open_uploads(), 0);
    let stale = bucketfs::client::ETag("\"nope\"".into());
    assert!(
        bucketfs::upload::copy_large(&c, "src", "dst2", 10, &stale, Default::default())
            .await
            .is_err()
    );
    assert_eq!(c.open_uploads(), 0);
    assert!(c.head_object("dst2").await.is_err());
}

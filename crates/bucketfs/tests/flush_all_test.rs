//! `Filesystem::flush_all`: what a detach asks of a mount before it goes.
//! Files still open for writing are uploaded as an fsync would; a failure
//! is reported and keeps the data staged, and a later flush uploads it.

mod common;

use std::sync::Arc;

use bucketfs::client::ObjectClientError;
use bucketfs::faults::{Fault, FaultClient, Op};
use bucketfs::memory::MemoryClient;
use common::pathfs::PathFs;

#[tokio::test]
async fn flush_all_uploads_files_that_are_still_open() {
    let c = MemoryClient::new();
    let fs = PathFs::new(c.clone(), |_| {});
    let (_, fh) = fs
        .open("open.txt", libc::O_CREAT | libc::O_WRONLY)
        .await
        .unwrap();
    fs.fs.write(fh, 0, b"written, not closed").await.unwrap();
    assert!(c.object("open.txt").is_none());
    assert!(fs.fs.flush_all().await.is_empty());
    assert_eq!(
        &c.object("open.txt").unwrap().body[..],
        b"written, not closed"
    );
    // The handle stays usable and its next close has nothing left to send.
    fs.fs.write(fh, 19, b"!").await.unwrap();
    fs.close(fh).await.unwrap();
    assert_eq!(
        &c.object("open.txt").unwrap().body[..],
        b"written, not closed!"
    );
}

#[tokio::test]
async fn a_failed_flush_all_names_the_file_and_keeps_its_data_for_the_next() {
    let c = Arc::new(FaultClient::new(MemoryClient::new()));
    let fs = PathFs::new(Arc::clone(&c), |_| {});
    let (_, fh) = fs
        .open("kept.txt", libc::O_CREAT | libc::O_WRONLY)
        .await
        .unwrap();
    fs.fs.write(fh, 0, b"must survive").await.unwrap();
    c.fail_from(Op::Put, 1, Fault::Error(ObjectClientError::Timeout));
    let failed = fs.fs.flush_all().await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].1, "kept.txt");
    assert!(c.inner().object("kept.txt").is_none());
    c.heal();
    assert!(fs.fs.flush_all().await.is_empty());
    assert_eq!(
        &c.inner().object("kept.txt").unwrap().body[..],
        b"must survive"
    );
}

#[tokio::test]
async fn new_credentials_sign_the_next_request() {
    use bucketfs::s3::{Credentials, S3Client, S3Config};
    // No server needed: the credentials a client signs with are swapped in
    // place, and a clone (the mount's copy) sees the swap.
    let client = S3Client::new(
        S3Config::new("b", "us-east-1")
            .with_endpoint("http://127.0.0.1:9")
            .with_credentials(Credentials::new("OLD", "old-secret")),
    )
    .unwrap();
    let mount_copy = client.clone();
    client.set_credentials(Some(Credentials::new("NEW", "new-secret")));
    assert_eq!(
        mount_copy.current_credentials().map(|c| c.access_key_id),
        Some("NEW".to_owned())
    );
    client.set_credentials(None);
    assert!(mount_copy.current_credentials().is_none());
}

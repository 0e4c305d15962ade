//! Fault tests over the fault-injecting client: for every fault class,
//! during small writes, overwrites, multipart uploads, partial re-uploads
//! (UploadPartCopy) and renames, every close either fails or the bucket
//! holds exactly the written bytes; a failed close leaves the previous
//! object intact (never a zero-byte or truncated one), the data stays staged
//! and a later retry uploads it.

mod common;

use std::sync::Arc;

use bucketfs::client::ObjectClientError;
use bucketfs::faults::{Fault, FaultClient, Op};
use bucketfs::memory::MemoryClient;
use common::pathfs::PathFs;

type Client = Arc<FaultClient<MemoryClient>>;

fn setup() -> (Client, PathFs<Client>) {
    let client = Arc::new(FaultClient::new(MemoryClient::new()));
    let fs = PathFs::new(Arc::clone(&client), |_| {});
    (client, fs)
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// The errno a close must report for `fault`, or None if it must succeed.
fn expected_errno(fault: &Fault) -> Option<i32> {
    match fault {
        Fault::Error(ObjectClientError::AccessDenied { .. }) => Some(libc::EACCES),
        Fault::Error(_) | Fault::ErrorAfter(_) | Fault::TruncateBody => Some(libc::EIO),
        Fault::Delay(_) => None,
    }
}

/// Every object is one of the allowed versions of its key.
fn scan(client: &Client, allowed: &[(&str, Vec<Vec<u8>>)]) {
    for (key, obj) in client.inner().objects() {
        if key.ends_with('/') {
            continue;
        }
        let versions = allowed
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .unwrap_or_else(|| panic!("unexpected object {key}"));
        assert!(
            versions.iter().any(|v| v[..] == obj.body[..]),
            "object {key} ({} bytes) is neither the old nor the new content",
            obj.body.len()
        );
    }
}

/// No multipart upload is left open, unless the fault hid the upload id
/// from us (CreateMultipartUpload succeeded but its response was lost: only
/// a bucket lifecycle rule can reap that one; it is never an object).
fn no_open_uploads(client: &Client, fault: &Fault, op: Op) {
    let hidden = op == Op::CreateMultipart && matches!(fault, Fault::ErrorAfter(_));
    if !hidden {
        assert_eq!(
            client.inner().open_uploads(),
            0,
            "a multipart upload was left open"
        );
    }
}

async fn check_close(
    client: &Client,
    fs: &PathFs<Client>,
    fault: &Fault,
    result: Result<(), i32>,
    key: &str,
    old: Option<Vec<u8>>,
    new: &[u8],
) {
    let mut allowed = vec![new.to_vec()];
    allowed.extend(old.clone());
    scan(client, &[(key, allowed)]);
    match (result, expected_errno(fault)) {
        (Ok(()), _) => {
            assert_eq!(&client.inner().object(key).expect("object").body[..], new);
        }
        (Err(errno), Some(want)) => {
            assert_eq!(errno, want, "close errno for {fault:?}");
            client.heal();
            assert_eq!(fs.fs.retry_pending().await, 0, "retry after heal failed");
            assert_eq!(&client.inner().object(key).expect("object").body[..], new);
        }
        (Err(errno), None) => panic!("close failed with {errno} under {fault:?}"),
    }
}

#[tokio::test]
async fn small_new_file_put_faults() {
    for fault in Fault::classes() {
        let (client, fs) = setup();
        client.fail_nth(Op::Put, 1, fault.clone());
        let data = bytes(1000, 1);
        let r = fs.write_file("f", &data).await;
        check_close(&client, &fs, &fault, r, "f", None, &data).await;
    }
}

#[tokio::test]
async fn overwrite_keeps_old_object_until_new_one_is_complete() {
    for fault in Fault::classes() {
        let (client, fs) = setup();
        let old = bytes(5000, 2);
        fs.write_file("f", &old).await.unwrap();
        client.fail_nth(Op::Put, 1, fault.clone());
        let new = bytes(3000, 3);
        let r = fs.write_file("f", &new).await;
        check_close(&client, &fs, &fault, r, "f", Some(old), &new).await;
    }
}

#[tokio::test]
async fn multipart_upload_faults_on_every_step() {
    let steps = [
        (Op::CreateMultipart, 1),
        (Op::UploadPart, 1),
        (Op::UploadPart, 3),
        (Op::CompleteMultipart, 1),
    ];
    for (op, nth) in steps {
        for fault in Fault::classes() {
            let (client, fs) = setup();
            let old = bytes(100, 4);
            fs.write_file("big", &old).await.unwrap();
            client.fail_nth(op, nth, fault.clone());
            let new = bytes(20 << 20, 5);
            let r = fs.write_file("big", &new).await;
            check_close(&client, &fs, &fault, r, "big", Some(old), &new).await;
            no_open_uploads(&client, &fault, op);
        }
    }
}

#[tokio::test]
async fn append_to_large_file_faults_in_part_copy() {
    for fault in Fault::classes() {
        let (client, fs) = setup();
        let old = bytes(17 << 20, 6);
        fs.write_file("big", &old).await.unwrap();
        client.fail_nth(Op::UploadPartCopy, 2, fault.clone());
        let mut new = old.clone();
        new.extend_from_slice(&bytes(4096, 7));
        let r = fs
            .write_at("big", old.len() as u64, &new[old.len()..])
            .await;
        check_close(&client, &fs, &fault, r, "big", Some(old), &new).await;
        no_open_uploads(&client, &fault, Op::UploadPartCopy);
    }
}

#[tokio::test]
async fn rename_copy_fault_leaves_source_and_delete_fault_leaves_both() {
    let (client, fs) = setup();
    let data = bytes(1234, 8);
    fs.write_file("a", &data).await.unwrap();
    client.fail_nth(Op::Copy, 1, Fault::Error(ObjectClientError::Reset));
    assert_eq!(fs.rename("a", "b").await, Err(libc::EIO));
    assert_eq!(&client.inner().object("a").unwrap().body[..], &data[..]);
    assert!(client.inner().object("b").is_none());
    client.fail_nth(Op::Delete, 1, Fault::Error(ObjectClientError::Timeout));
    assert_eq!(fs.rename("a", "b").await, Err(libc::EIO));
    assert_eq!(&client.inner().object("a").unwrap().body[..], &data[..]);
    assert_eq!(&client.inner().object("b").unwrap().body[..], &data[..]);
}

#[tokio::test]
async fn directory_rename_interrupted_never_loses_an_object() {
    let (client, fs) = setup();
    fs.mkdir("d").await.unwrap();
    for i in 0..10 {
        fs.write_file(&format!("d/f{i}"), &bytes(100, i))
            .await
            .unwrap();
    }
    client.fail_nth(Op::Copy, 5, Fault::Error(ObjectClientError::Timeout));
    assert_eq!(fs.rename("d", "e").await, Err(libc::EIO));
    for i in 0..10 {
        assert!(
            client.inner().object(&format!("d/f{i}")).is_some(),
            "d/f{i} lost"
        );
    }
    client.heal();
    // The partial copy under e/ is a non-empty directory now: renaming onto
    // it is ENOTEMPTY, as POSIX says; a rename to a fresh name completes.
    assert_eq!(fs.rename("d", "e").await, Err(libc::ENOTEMPTY));
    fs.rename("d", "g").await.unwrap();
    for i in 0..10 {
        assert_eq!(
            &client.inner().object(&format!("g/f{i}")).unwrap().body[..],
            &bytes(100, i)[..]
        );
        assert!(client.inner().object(&format!("d/f{i}")).is_none());
    }
}

#[tokio::test]
async fn truncated_get_body_is_an_error_not_short_data() {
    let (client, fs) = setup();
    let data = bytes(300_000, 9);
    client.inner().insert("f", data.clone(), Default::default());
    client.fail_nth(Op::Get, 1, Fault::TruncateBody);
    assert_eq!(fs.read_file("f").await, Err(libc::EIO));
    assert_eq!(fs.read_file("f").await.unwrap(), data);
}

#[tokio::test]
async fn random_faults_never_leave_a_partial_object() {
    for seed in 0..8u64 {
        let (client, fs) = setup();
        let all = [
            Op::Put,
            Op::UploadPart,
            Op::CreateMultipart,
            Op::CompleteMultipart,
            Op::UploadPartCopy,
            Op::Head,
            Op::List,
            Op::Get,
        ];
        client.fail_randomly(seed, 0.3, &all, &Fault::classes());
        let mut versions: Vec<Vec<u8>> = Vec::new();
        for round in 0..6u8 {
            let len = if round % 3 == 0 {
                9 << 20
            } else {
                2000 + usize::from(round)
            };
            let data = bytes(len, round.wrapping_add(seed as u8));
            // Opening may fail too (lookups meet faults); then nothing of
            // this round was written.
            let flags = libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC;
            let Ok((_, fh)) = fs.open("f", flags).await else {
                continue;
            };
            versions.push(data.clone());
            let _ = fs.fs.write(fh, 0, &data).await;
            let _ = fs.close(fh).await;
            scan(&client, &[("f", versions.clone())]);
        }
        client.heal();
        let _ = fs.fs.retry_pending().await;
        fs.shutdown().await;
        // Whatever failed on the way, the last data written wins in the end.
        if let Some(last) = versions.last() {
            let body = client.inner().object("f").expect("object").body;
            assert!(
                body[..] == last[..],
                "seed {seed}: final object ({} bytes) is not the last write",
                body.len()
            );
        }
    }
}

//! The fault classes of `fault_test.rs`, injected by the fault-injecting
//! client wrapped around the *real* S3 client on garage: for every fault
//! during small writes, overwrites, each multipart step and part-copy
//! appends, a close either fails with the right errno (and a retry after
//! healing uploads the data) or the bucket holds exactly the new bytes; a
//! scan of the bucket after each case finds only the old or the new content
//! of each key, never a zero-byte or truncated object.
//!
//! Not checked here (unlike over the memory client): that no multipart
//! upload is left open, because the trait has no ListMultipartUploads.

mod common;
#[path = "common/garage.rs"]
mod garage;

use std::sync::Arc;

use bucketfs::client::{GetObjectParams, ObjectClient, ObjectClientError};
use bucketfs::faults::{Fault, FaultClient, Op};
use bucketfs::s3::S3Client;
use common::pathfs::PathFs;
use cove_testkit::garage::TempGarage;

type Client = Arc<FaultClient<S3Client>>;

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect()
}

fn expected_errno(fault: &Fault) -> Option<i32> {
    match fault {
        Fault::Error(ObjectClientError::AccessDenied { .. }) => Some(libc::EACCES),
        Fault::Error(_) | Fault::ErrorAfter(_) | Fault::TruncateBody => Some(libc::EIO),
        Fault::Delay(_) => None,
    }
}

/// A fresh bucket on `garage`, the fault client around its S3 client, and
/// a filesystem over it.
fn setup(garage: &TempGarage) -> (Client, PathFs<Client>) {
    let bucket = garage.create_unique_bucket("f").expect("bucket");
    let client = Arc::new(FaultClient::new(garage::s3_client(garage, &bucket)));
    let fs = PathFs::new(Arc::clone(&client), |_| {});
    (client, fs)
}

async fn object(client: &Client, key: &str) -> Option<Vec<u8>> {
    match client
        .inner()
        .get_object(key, &GetObjectParams::default())
        .await
    {
        Ok(r) => Some(r.body.to_vec()),
        Err(ObjectClientError::NoSuchKey { .. }) => None,
        Err(e) => panic!("get {key}: {e}"),
    }
}

/// Every file object in the bucket is `old` or `new` content of `key`.
async fn scan(client: &Client, key: &str, allowed: &[&[u8]]) {
    let page = client
        .inner()
        .list_objects(&Default::default())
        .await
        .expect("list");
    for o in page.objects {
        if o.key.ends_with('/') {
            continue;
        }
        assert_eq!(o.key, key, "unexpected object");
        let body = object(client, &o.key).await.expect("listed object");
        assert!(
            allowed.iter().any(|a| *a == &body[..]),
            "object {key} ({} bytes) is neither the old nor the new content",
            body.len()
        );
    }
}

async fn check_close(
    client: &Client,
    fs: &PathFs<Client>,
    fault: &Fault,
    result: Result<(), i32>,
    key: &str,
    old: Option<&[u8]>,
    new: &[u8],
) {
    assert!(
        client.injected() > 0,
        "{fault:?} was never injected: the case tested nothing"
    );
    let mut allowed = vec![new];
    allowed.extend(old);
    scan(client, key, &allowed).await;
    match (result, expected_errno(fault)) {
        (Ok(()), _) => assert!(object(client, key).await.expect("object") == new),
        (Err(errno), Some(want)) => {
            assert_eq!(errno, want, "close errno for {fault:?}");
            client.heal();
            assert_eq!(fs.fs.retry_pending().await, 0, "retry after heal failed");
            assert!(
                object(client, key).await.expect("object") == new,
                "{fault:?}"
            );
        }
        (Err(errno), None) => panic!("close failed with {errno} under {fault:?}"),
    }
}

#[tokio::test]
async fn put_faults_on_new_and_overwritten_files() {
    let garage = TempGarage::start().expect("garage");
    for fault in Fault::classes() {
        let (client, fs) = setup(&garage);
        client.fail_nth(Op::Put, 1, fault.clone());
        let data = bytes(1000, 1);
        let r = fs.write_file("f", &data).await;
        check_close(&client, &fs, &fault, r, "f", None, &data).await;

        let (client, fs) = setup(&garage);
        let old = bytes(5000, 2);
        fs.write_file("f", &old).await.unwrap();
        client.fail_nth(Op::Put, 1, fault.clone());
        let new = bytes(3000, 3);
        let r = fs.write_file("f", &new).await;
        check_close(&client, &fs, &fault, r, "f", Some(&old), &new).await;
    }
}

#[tokio::test]
async fn multipart_faults_on_every_step() {
    let garage = TempGarage::start().expect("garage");
    let steps = [
        (Op::CreateMultipart, 1),
        (Op::UploadPart, 2),
        (Op::CompleteMultipart, 1),
    ];
    let new = bytes(20 << 20, 5);
    for (op, nth) in steps {
        for fault in Fault::classes() {
            let (client, fs) = setup(&garage);
            let old = bytes(100, 4);
            fs.write_file("big", &old).await.unwrap();
            client.fail_nth(op, nth, fault.clone());
            let r = fs.write_file("big", &new).await;
            check_close(&client, &fs, &fault, r, "big", Some(&old), &new).await;
        }
    }
}

#[tokio::test]
async fn append_faults_in_upload_part_copy() {
    let garage = TempGarage::start().expect("garage");
    let old = bytes(17 << 20, 6);
    let mut new = old.clone();
    new.extend_from_slice(&bytes(4096, 7));
    for fault in Fault::classes() {
        let (client, fs) = setup(&garage);
        fs.write_file("big", &old).await.unwrap();
        client.fail_nth(Op::UploadPartCopy, 1, fault.clone());
        let r = fs
            .write_at("big", old.len() as u64, &new[old.len()..])
            .await;
        check_close(&client, &fs, &fault, r, "big", Some(&old), &new).await;
    }
}

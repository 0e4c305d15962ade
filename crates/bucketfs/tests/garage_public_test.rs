//! A public bucket mounted without credentials (`--no-sign-request`): every
//! request unsigned. Garage refuses anonymous requests (shown in
//! `garage_client_test::unsigned_requests_carry_no_signature_and_garage_refuses_them`),
//! so the bucket here is served by moto on loopback, which allows them.

mod common;
#[path = "common/garage_moto.rs"]
mod garage_moto;

use std::collections::BTreeMap;
use std::sync::Arc;

use bucketfs::client::{GetObjectParams, ObjectClient, ObjectClientError, PutObjectParams};
use bucketfs::s3::{Credentials, S3Client, S3Config};
use bytes::Bytes;
use common::fsutil::names;
use common::{mount_session, SessionConfig, TestBucket};
use garage_moto::TempMoto;

/// Direct (signed) access to the moto bucket.
struct MotoBucket {
    client: S3Client,
    rt: tokio::runtime::Runtime,
}

impl TestBucket for MotoBucket {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self
            .rt
            .block_on(self.client.get_object(key, &GetObjectParams::default()))
        {
            Ok(r) => Some(r.body.to_vec()),
            Err(ObjectClientError::NoSuchKey { .. }) => None,
            Err(e) => panic!("get {key}: {e}"),
        }
    }
    fn metadata(&self, key: &str) -> Option<BTreeMap<String, String>> {
        self.rt
            .block_on(self.client.head_object(key))
            .ok()
            .map(|h| h.metadata)
    }
    fn put(&self, key: &str, body: &[u8], metadata: BTreeMap<String, String>) {
        let params = PutObjectParams {
            metadata,
            ..Default::default()
        };
        self.rt
            .block_on(
                self.client
                    .put_object(key, Bytes::copy_from_slice(body), &params),
            )
            .expect("put");
    }
    fn delete(&self, key: &str) {
        self.rt
            .block_on(self.client.delete_object(key))
            .expect("delete");
    }
    fn keys(&self) -> Vec<String> {
        unimplemented!("not needed by this test")
    }
}

#[test]
fn public_bucket_mounts_and_reads_with_unsigned_requests() {
    let moto = TempMoto::start();
    moto.create_bucket("public", true);
    moto.create_bucket("private", false);
    let signed = S3Config::new("public", "us-east-1")
        .with_endpoint(moto.endpoint())
        .with_credentials(Credentials::new("owner", "owner-secret"));
    let view = MotoBucket {
        client: S3Client::new(signed).unwrap(),
        rt: tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap(),
    };
    view.put("readme.txt", b"open data", Default::default());
    view.put("data/2026/a.csv", b"1,2,3\n", Default::default());
    let mode = [("mode".to_string(), "33188".to_string())].into();
    view.put("data/b.csv", b"4,5\n", mode);

    let endpoint = moto.endpoint();
    let unsigned = move || {
        let config = S3Config::new("public", "us-east-1").with_endpoint(endpoint.clone());
        assert!(
            config.credentials.is_none(),
            "no credentials: unsigned requests"
        );
        S3Client::new(config).unwrap()
    };
    let config = SessionConfig {
        read_only: true,
        ..Default::default()
    };
    let s = mount_session(Arc::new(view), unsigned, config);
    assert_eq!(names(s.root()), ["data", "readme.txt"]);
    assert_eq!(names(&s.path("data")), ["2026", "b.csv"]);
    assert_eq!(std::fs::read(s.path("readme.txt")).unwrap(), b"open data");
    assert_eq!(
        std::fs::read(s.path("data/2026/a.csv")).unwrap(),
        b"1,2,3\n"
    );
    assert_eq!(std::fs::read(s.path("data/b.csv")).unwrap(), b"4,5\n");
    assert_eq!(s.bucket.get("readme.txt").unwrap(), b"open data");

    // The same unsigned client on a private bucket is refused: the requests
    // really carry no credentials.
    let private = S3Config::new("private", "us-east-1").with_endpoint(moto.endpoint());
    let anon = S3Client::new(private).unwrap();
    let signed = S3Config::new("private", "us-east-1")
        .with_endpoint(moto.endpoint())
        .with_credentials(Credentials::new("owner", "owner-secret"));
    let owner = S3Client::new(signed).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(owner.put_object(
        "secret.txt",
        Bytes::from_static(b"s"),
        &PutObjectParams::default(),
    ))
    .unwrap();
    let r = rt.block_on(anon.get_object("secret.txt", &GetObjectParams::default()));
    assert!(
        matches!(r, Err(ObjectClientError::AccessDenied { .. })),
        "{r:?}"
    );
}

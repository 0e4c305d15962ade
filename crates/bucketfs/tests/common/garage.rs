//! Garage-backed test helpers: an S3 client on a fresh garage bucket, a
//! `TestBucket` view of it (for FUSE tests, "another client"), and
//! `garage_session`, the real-S3 counterpart of `mem_session`.
//!
//! Every helper starts its own garage (tens of milliseconds) so tests can
//! kill and restart the server without disturbing each other.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bucketfs::client::{GetObjectParams, ListObjectsParams, ObjectClient, PutObjectParams};
use bucketfs::s3::{Credentials, RetryConfig, S3Client, S3Config};
use cove_testkit::garage::TempGarage;

use crate::common::{mount_session, Session, SessionConfig, TestBucket};

/// A client config for `bucket` on `garage` with the test key.
pub fn s3_config(garage: &TempGarage, bucket: &str) -> S3Config {
    S3Config::new(bucket, garage.region())
        .with_endpoint(garage.endpoint())
        .with_credentials(Credentials::new(garage.key_id(), garage.secret_key()))
}

/// A client for `bucket` on `garage`, with quick retries so a dead server is
/// reported within about a second.
pub fn s3_client(garage: &TempGarage, bucket: &str) -> S3Client {
    let mut config = s3_config(garage, bucket);
    config.retry = RetryConfig {
        max_attempts: 3,
        initial_backoff: std::time::Duration::from_millis(50),
        max_backoff: std::time::Duration::from_millis(200),
    };
    S3Client::new(config).expect("s3 client")
}

/// A fresh garage with one bucket, and a client on it.
pub struct GarageBucket {
    pub garage: Arc<Mutex<TempGarage>>,
    pub bucket: String,
    pub client: S3Client,
    rt: tokio::runtime::Runtime,
}

impl GarageBucket {
    /// Starts garage and creates a uniquely named bucket.
    pub fn start() -> Self {
        let garage = TempGarage::start().expect("start garage");
        let bucket = garage.create_unique_bucket("t").expect("create bucket");
        let client = s3_client(&garage, &bucket);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Self {
            garage: Arc::new(Mutex::new(garage)),
            bucket,
            client,
            rt,
        }
    }

    /// A fresh bucket on the same garage (cheaper than a new server when a
    /// test needs many clean buckets, e.g. one per property-test case).
    pub fn sibling(&self) -> Self {
        let bucket = self
            .server()
            .create_unique_bucket("t")
            .expect("create bucket");
        let client = s3_client(&self.server(), &bucket);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Self {
            garage: self.garage.clone(),
            bucket,
            client,
            rt,
        }
    }

    /// The garage server (to kill or restart it).
    pub fn server(&self) -> MutexGuard<'_, TempGarage> {
        self.garage.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new client on the same bucket (what a remount builds).
    pub fn new_client(&self) -> S3Client {
        s3_client(&self.server(), &self.bucket)
    }

    /// Runs a future on this helper's runtime (from sync test code).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }
}

impl TestBucket for GarageBucket {
    fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.block_on(self.client.get_object(key, &GetObjectParams::default())) {
            Ok(r) => Some(r.body.to_vec()),
            Err(bucketfs::client::ObjectClientError::NoSuchKey { .. }) => None,
            Err(e) => panic!("get {key:?}: {e}"),
        }
    }

    fn metadata(&self, key: &str) -> Option<BTreeMap<String, String>> {
        match self.block_on(self.client.head_object(key)) {
            Ok(r) => Some(r.metadata),
            Err(bucketfs::client::ObjectClientError::NoSuchKey { .. }) => None,
            Err(e) => panic!("head {key:?}: {e}"),
        }
    }

    fn put(&self, key: &str, body: &[u8], metadata: BTreeMap<String, String>) {
        let params = PutObjectParams {
            metadata,
            ..Default::default()
        };
        self.block_on(
            self.client
                .put_object(key, bytes::Bytes::copy_from_slice(body), &params),
        )
        .unwrap_or_else(|e| panic!("put {key:?}: {e}"));
    }

    fn delete(&self, key: &str) {
        self.block_on(self.client.delete_object(key))
            .unwrap_or_else(|e| panic!("delete {key:?}: {e}"));
    }

    fn keys(&self) -> Vec<String> {
        list_all_keys(self, "")
    }
}

/// Every key under `prefix` (no delimiter), following continuation tokens.
pub fn list_all_keys(b: &GarageBucket, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut params = ListObjectsParams {
        prefix: prefix.to_owned(),
        ..Default::default()
    };
    loop {
        let page = b
            .block_on(b.client.list_objects(&params))
            .expect("list objects");
        keys.extend(page.objects.into_iter().map(|o| o.key));
        match page.next_continuation_token {
            Some(t) => params.continuation_token = Some(t),
            None => return keys,
        }
    }
}

/// A FUSE session over a fresh garage bucket (the real-S3 tier of every
/// session-based test).
pub fn garage_session(config: SessionConfig) -> Session {
    garage_session_on(Arc::new(GarageBucket::start()), config)
}

/// A FUSE session over an existing garage bucket (so the test keeps a
/// handle to kill or restart the server).
pub fn garage_session_on(bucket: Arc<GarageBucket>, config: SessionConfig) -> Session {
    let view: Arc<dyn TestBucket> = bucket.clone();
    let garage = bucket.garage.clone();
    let name = bucket.bucket.clone();
    mount_session(
        view,
        move || {
            let g = garage.lock().unwrap_or_else(|p| p.into_inner());
            s3_client(&g, &name)
        },
        config,
    )
}

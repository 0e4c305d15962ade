//! `FaultClient`: wraps any `ObjectClient` and makes chosen requests fail
//! (timeouts, 5xx, throttling, resets, truncated bodies, delays), either
//! scripted ("the 3rd UploadPart times out") or at random from a seed
//! (model: mountpoint-s3's `failure_client.rs`). Because it wraps, the same
//! faults run over the in-memory client and over a real S3 server.
//!
//! Built only with the `testing` feature.

use std::fs::File;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::client::{
    ClientCapabilities, ClientResult, CompletedPart, CopyObjectParams, CreateMultipartUploadParams,
    GetObjectParams, GetObjectResult, HeadObjectResult, ListObjectsParams, ListObjectsResult,
    ObjectClient, ObjectClientError, PutCondition, PutObjectParams, PutObjectResult, UploadId,
    UploadPartCopyParams, UploadPartResult,
};

pub use crate::client::Op;

/// What happens to a faulted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The request fails with this error (after doing nothing).
    Error(ObjectClientError),
    /// The request succeeds on the server but the response is lost: the
    /// caller sees `error` although the effect happened (the hardest case
    /// for "exactly once").
    ErrorAfter(ObjectClientError),
    /// A GET returns only the first half of its body (a server or proxy
    /// cutting the stream short without the client noticing); other
    /// requests fail with `TruncatedBody`.
    TruncateBody,
    /// The request is delayed, then forwarded.
    Delay(Duration),
}

impl Fault {
    /// One fault of every class, for tests that loop over them.
    pub fn classes() -> Vec<Fault> {
        vec![
            Fault::Error(ObjectClientError::Timeout),
            Fault::Error(ObjectClientError::ServerError {
                status: 500,
                code: "InternalError".into(),
            }),
            Fault::Error(ObjectClientError::Throttled { status: 503 }),
            Fault::Error(ObjectClientError::Reset),
            Fault::Error(ObjectClientError::AccessDenied {
                code: "AccessDenied".into(),
            }),
            Fault::ErrorAfter(ObjectClientError::Reset),
            Fault::TruncateBody,
            Fault::Delay(Duration::from_millis(20)),
        ]
    }
}

/// A scripted fault: the `nth` (1-based) request of kind `op`, or every
/// request from the `nth` on when `sticky`.
#[derive(Debug, Clone)]
pub struct Rule {
    pub op: Op,
    pub nth: u64,
    pub sticky: bool,
    pub fault: Fault,
}

struct Random {
    rng: StdRng,
    probability: f64,
    ops: Vec<Op>,
    faults: Vec<Fault>,
}

/// The fault-injecting wrapper.
pub struct FaultClient<C> {
    inner: C,
    calls: [AtomicU64; 11],
    rules: Mutex<Vec<Rule>>,
    random: Mutex<Option<Random>>,
    /// Every request fails with a connection error (the server is down).
    down: AtomicBool,
    injected: AtomicU64,
}

impl<C: ObjectClient> FaultClient<C> {
    /// Wrap `inner` with no faults yet.
    pub fn new(inner: C) -> Self {
        Self {
            inner,
            calls: Default::default(),
            rules: Mutex::new(Vec::new()),
            random: Mutex::new(None),
            down: AtomicBool::new(false),
            injected: AtomicU64::new(0),
        }
    }

    /// The wrapped client.
    pub fn inner(&self) -> &C {
        &self.inner
    }

    /// Fail the `nth` (1-based, counted from now) request of kind `op`.
    pub fn fail_nth(&self, op: Op, nth: u64, fault: Fault) {
        let base = self.calls[op.index()].load(Ordering::SeqCst);
        self.lock_rules().push(Rule {
            op,
            nth: base + nth,
            sticky: false,
            fault,
        });
    }

    /// Fail every request of kind `op` from the `nth` (counted from now).
    pub fn fail_from(&self, op: Op, nth: u64, fault: Fault) {
        let base = self.calls[op.index()].load(Ordering::SeqCst);
        self.lock_rules().push(Rule {
            op,
            nth: base + nth,
            sticky: true,
            fault,
        });
    }

    /// Fail each request of a kind in `ops` with `probability`, choosing a
    /// fault from `faults`, reproducibly from `seed`.
    pub fn fail_randomly(&self, seed: u64, probability: f64, ops: &[Op], faults: &[Fault]) {
        *self.random.lock().unwrap_or_else(|e| e.into_inner()) = Some(Random {
            rng: StdRng::seed_from_u64(seed),
            probability,
            ops: ops.to_vec(),
            faults: faults.to_vec(),
        });
    }

    /// Remove every fault (rules, random, down).
    pub fn heal(&self) {
        self.lock_rules().clear();
        *self.random.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.down.store(false, Ordering::SeqCst);
    }

    /// Make every request fail with a connection error until `heal`.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// How many faults were injected.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    fn lock_rules(&self) -> std::sync::MutexGuard<'_, Vec<Rule>> {
        self.rules.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn decide(&self, op: Op) -> Option<Fault> {
        let n = self.calls[op.index()].fetch_add(1, Ordering::SeqCst) + 1;
        if self.down.load(Ordering::SeqCst) {
            return Some(Fault::Error(ObjectClientError::Connection {
                message: "connection refused (injected)".into(),
            }));
        }
        let scripted = self
            .lock_rules()
            .iter()
            .find(|r| r.op == op && (r.nth == n || (r.sticky && n >= r.nth)))
            .map(|r| r.fault.clone());
        let fault = scripted.or_else(|| {
            let mut random = self.random.lock().unwrap_or_else(|e| e.into_inner());
            let r = random.as_mut()?;
            if !r.ops.contains(&op) || r.faults.is_empty() || !r.rng.random_bool(r.probability) {
                return None;
            }
            let i = r.rng.random_range(0..r.faults.len());
            Some(r.faults[i].clone())
        });
        if fault.is_some() {
            self.injected.fetch_add(1, Ordering::SeqCst);
        }
        fault
    }

    /// Run `call` under the fault chosen for `op`.
    async fn run<T, F>(&self, op: Op, call: F) -> ClientResult<T>
    where
        F: std::future::Future<Output = ClientResult<T>> + Send,
    {
        match self.decide(op) {
            None => call.await,
            Some(Fault::Error(e)) => Err(e),
            Some(Fault::ErrorAfter(e)) => {
                let _ = call.await;
                Err(e)
            }
            Some(Fault::TruncateBody) => Err(ObjectClientError::TruncatedBody {
                expected: 1,
                received: 0,
            }),
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                call.await
            }
        }
    }
}

impl<C: ObjectClient> ObjectClient for FaultClient<C> {
    fn capabilities(&self) -> ClientCapabilities {
        self.inner.capabilities()
    }

    async fn get_object(
        &self,
        key: &str,
        params: &GetObjectParams,
    ) -> ClientResult<GetObjectResult> {
        if self.decide_truncated_get() {
            let mut got = self.inner.get_object(key, params).await?;
            got.body = got.body.slice(..got.body.len() / 2);
            return Ok(got);
        }
        self.run(Op::Get, self.inner.get_object(key, params)).await
    }

    async fn head_object(&self, key: &str) -> ClientResult<HeadObjectResult> {
        self.run(Op::Head, self.inner.head_object(key)).await
    }

    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        params: &PutObjectParams,
    ) -> ClientResult<PutObjectResult> {
        self.run(Op::Put, self.inner.put_object(key, body, params))
            .await
    }

    async fn create_multipart_upload(
        &self,
        key: &str,
        params: &CreateMultipartUploadParams,
    ) -> ClientResult<UploadId> {
        self.run(
            Op::CreateMultipart,
            self.inner.create_multipart_upload(key, params),
        )
        .await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        body: Bytes,
    ) -> ClientResult<UploadPartResult> {
        self.run(
            Op::UploadPart,
            self.inner.upload_part(key, upload_id, part_number, body),
        )
        .await
    }

    async fn upload_part_from_file(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        file: Arc<File>,
        offset: u64,
        len: u64,
    ) -> ClientResult<UploadPartResult> {
        self.run(
            Op::UploadPart,
            self.inner
                .upload_part_from_file(key, upload_id, part_number, file, offset, len),
        )
        .await
    }

    async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        params: &UploadPartCopyParams,
    ) -> ClientResult<UploadPartResult> {
        self.run(
            Op::UploadPartCopy,
            self.inner
                .upload_part_copy(key, upload_id, part_number, params),
        )
        .await
    }

    async fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &UploadId,
        parts: &[CompletedPart],
        condition: Option<&PutCondition>,
    ) -> ClientResult<PutObjectResult> {
        self.run(
            Op::CompleteMultipart,
            self.inner
                .complete_multipart_upload(key, upload_id, parts, condition),
        )
        .await
    }

    async fn abort_multipart_upload(&self, key: &str, upload_id: &UploadId) -> ClientResult<()> {
        self.run(
            Op::AbortMultipart,
            self.inner.abort_multipart_upload(key, upload_id),
        )
        .await
    }

    async fn copy_object(
        &self,
        source_key: &str,
        dest_key: &str,
        params: &CopyObjectParams,
    ) -> ClientResult<PutObjectResult> {
        self.run(
            Op::Copy,
            self.inner.copy_object(source_key, dest_key, params),
        )
        .await
    }

    async fn delete_object(&self, key: &str) -> ClientResult<()> {
        self.run(Op::Delete, self.inner.delete_object(key)).await
    }

    async fn list_objects(&self, params: &ListObjectsParams) -> ClientResult<ListObjectsResult> {
        self.run(Op::List, self.inner.list_objects(params)).await
    }
}

impl<C: ObjectClient> FaultClient<C> {
    /// A GET whose fault is `TruncateBody` is forwarded and its body cut,
    /// so the caller's length checks are what is tested. Consumes the
    /// decision for this GET when it is a truncation.
    fn decide_truncated_get(&self) -> bool {
        let i = Op::Get.index();
        let n = self.calls[i].load(Ordering::SeqCst) + 1;
        let scripted = self.lock_rules().iter().any(|r| {
            r.op == Op::Get
                && r.fault == Fault::TruncateBody
                && (r.nth == n || (r.sticky && n >= r.nth))
        });
        if scripted && !self.down.load(Ordering::SeqCst) {
            self.calls[i].fetch_add(1, Ordering::SeqCst);
            self.injected.fetch_add(1, Ordering::SeqCst);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryClient;

    #[tokio::test]
    async fn nth_put_fails_and_others_pass() {
        let c = FaultClient::new(MemoryClient::new());
        c.fail_nth(Op::Put, 2, Fault::Error(ObjectClientError::Timeout));
        let p = PutObjectParams::default();
        assert!(c
            .put_object("a", Bytes::from_static(b"1"), &p)
            .await
            .is_ok());
        assert_eq!(
            c.put_object("b", Bytes::from_static(b"2"), &p)
                .await
                .unwrap_err(),
            ObjectClientError::Timeout
        );
        assert!(c
            .put_object("c", Bytes::from_static(b"3"), &p)
            .await
            .is_ok());
        assert!(c.inner().object("b").is_none());
    }

    #[tokio::test]
    async fn error_after_applies_the_effect() {
        let c = FaultClient::new(MemoryClient::new());
        c.fail_nth(Op::Put, 1, Fault::ErrorAfter(ObjectClientError::Reset));
        let r = c
            .put_object("a", Bytes::from_static(b"1"), &PutObjectParams::default())
            .await;
        assert_eq!(r.unwrap_err(), ObjectClientError::Reset);
        assert!(c.inner().object("a").is_some());
    }

    #[tokio::test]
    async fn truncated_get_returns_half_the_body() {
        let c = FaultClient::new(MemoryClient::new());
        c.inner().insert("a", vec![7u8; 100], Default::default());
        c.fail_nth(Op::Get, 1, Fault::TruncateBody);
        let got = c
            .get_object("a", &GetObjectParams::default())
            .await
            .unwrap();
        assert_eq!(got.body.len(), 50);
    }

    #[tokio::test]
    async fn random_faults_are_reproducible() {
        let run = |seed| async move {
            let c = FaultClient::new(MemoryClient::new());
            c.fail_randomly(
                seed,
                0.5,
                &[Op::Head],
                &[Fault::Error(ObjectClientError::Timeout)],
            );
            let mut pattern = Vec::new();
            for _ in 0..32 {
                pattern.push(
                    c.head_object("x")
                        .await
                        .is_err_and(|e| e == ObjectClientError::Timeout),
                );
            }
            pattern
        };
        assert_eq!(run(7).await, run(7).await);
        assert!(run(7).await.contains(&true));
    }
}

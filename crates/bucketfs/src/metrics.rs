//! Prometheus-style counters: requests by type, bytes, errors, retries and
//! staging bytes, rendered in the text exposition format. `MeteredClient`
//! wraps any `ObjectClient` and counts every request it forwards.

use std::fmt::Write as _;
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::client::{
    ClientCapabilities, ClientResult, CompletedPart, CopyObjectParams, CreateMultipartUploadParams,
    GetObjectParams, GetObjectResult, HeadObjectResult, ListObjectsParams, ListObjectsResult,
    ObjectClient, Op, PutCondition, PutObjectParams, PutObjectResult, UploadId,
    UploadPartCopyParams, UploadPartResult,
};

/// The counters of one mount.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: [AtomicU64; Op::COUNT],
    errors: [AtomicU64; Op::COUNT],
    /// Bytes received in GET bodies.
    pub bytes_downloaded: AtomicU64,
    /// Bytes sent in PUT and UploadPart bodies.
    pub bytes_uploaded: AtomicU64,
    /// Uploads retried after a failure.
    pub upload_retries: AtomicU64,
    /// Uploads that failed (each reported to a caller or retried later).
    pub upload_failures: AtomicU64,
    /// Bytes in the staging area (set by the filesystem).
    pub staging_bytes: AtomicU64,
}

impl Metrics {
    fn op(&self, op: Op, failed: bool) {
        self.requests[op.index()].fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors[op.index()].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Requests of kind `op` (e.g. "put") so far.
    pub fn requests(&self, op: &str) -> u64 {
        Op::ALL
            .iter()
            .find(|o| o.label() == op)
            .map_or(0, |o| self.requests[o.index()].load(Ordering::Relaxed))
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# TYPE bucketfs_requests_total counter");
        for (i, op) in Op::ALL.iter().map(|o| o.label()).enumerate() {
            let n = self.requests[i].load(Ordering::Relaxed);
            let _ = writeln!(s, "bucketfs_requests_total{{op=\"{op}\"}} {n}");
        }
        let _ = writeln!(s, "# TYPE bucketfs_request_errors_total counter");
        for (i, op) in Op::ALL.iter().map(|o| o.label()).enumerate() {
            let n = self.errors[i].load(Ordering::Relaxed);
            let _ = writeln!(s, "bucketfs_request_errors_total{{op=\"{op}\"}} {n}");
        }
        let scalars = [
            (
                "bucketfs_downloaded_bytes_total",
                "counter",
                &self.bytes_downloaded,
            ),
            (
                "bucketfs_uploaded_bytes_total",
                "counter",
                &self.bytes_uploaded,
            ),
            (
                "bucketfs_upload_retries_total",
                "counter",
                &self.upload_retries,
            ),
            (
                "bucketfs_upload_failures_total",
                "counter",
                &self.upload_failures,
            ),
            ("bucketfs_staging_bytes", "gauge", &self.staging_bytes),
        ];
        for (name, kind, v) in scalars {
            let _ = writeln!(s, "# TYPE {name} {kind}");
            let _ = writeln!(s, "{name} {}", v.load(Ordering::Relaxed));
        }
        s
    }
}

/// An `ObjectClient` that counts what it forwards to `inner`.
#[derive(Debug)]
pub struct MeteredClient<C> {
    inner: C,
    metrics: Arc<Metrics>,
}

impl<C> MeteredClient<C> {
    /// Count requests of `inner` into `metrics`.
    pub fn new(inner: C, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    /// The wrapped client.
    pub fn inner(&self) -> &C {
        &self.inner
    }
}

impl<C: ObjectClient> MeteredClient<C> {
    fn count<T>(&self, op: Op, r: ClientResult<T>) -> ClientResult<T> {
        self.metrics.op(op, r.is_err());
        r
    }
}

impl<C: ObjectClient> ObjectClient for MeteredClient<C> {
    fn capabilities(&self) -> ClientCapabilities {
        self.inner.capabilities()
    }

    async fn get_object(
        &self,
        key: &str,
        params: &GetObjectParams,
    ) -> ClientResult<GetObjectResult> {
        let r = self.inner.get_object(key, params).await;
        if let Ok(g) = &r {
            self.metrics
                .bytes_downloaded
                .fetch_add(g.body.len() as u64, Ordering::Relaxed);
        }
        self.count(Op::Get, r)
    }

    async fn head_object(&self, key: &str) -> ClientResult<HeadObjectResult> {
        let r = self.inner.head_object(key).await;
        self.count(Op::Head, r)
    }

    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        params: &PutObjectParams,
    ) -> ClientResult<PutObjectResult> {
        let n = body.len() as u64;
        let r = self.inner.put_object(key, body, params).await;
        if r.is_ok() {
            self.metrics.bytes_uploaded.fetch_add(n, Ordering::Relaxed);
        }
        self.count(Op::Put, r)
    }

    async fn create_multipart_upload(
        &self,
        key: &str,
        params: &CreateMultipartUploadParams,
    ) -> ClientResult<UploadId> {
        let r = self.inner.create_multipart_upload(key, params).await;
        self.count(Op::CreateMultipart, r)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        body: Bytes,
    ) -> ClientResult<UploadPartResult> {
        let n = body.len() as u64;
        let r = self
            .inner
            .upload_part(key, upload_id, part_number, body)
            .await;
        if r.is_ok() {
            self.metrics.bytes_uploaded.fetch_add(n, Ordering::Relaxed);
        }
        self.count(Op::UploadPart, r)
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
        let r = self
            .inner
            .upload_part_from_file(key, upload_id, part_number, file, offset, len)
            .await;
        if r.is_ok() {
            self.metrics
                .bytes_uploaded
                .fetch_add(len, Ordering::Relaxed);
        }
        self.count(Op::UploadPart, r)
    }

    async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        params: &UploadPartCopyParams,
    ) -> ClientResult<UploadPartResult> {
        let r = self
            .inner
            .upload_part_copy(key, upload_id, part_number, params)
            .await;
        self.count(Op::UploadPartCopy, r)
    }

    async fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &UploadId,
        parts: &[CompletedPart],
        condition: Option<&PutCondition>,
    ) -> ClientResult<PutObjectResult> {
        let r = self
            .inner
            .complete_multipart_upload(key, upload_id, parts, condition)
            .await;
        self.count(Op::CompleteMultipart, r)
    }

    async fn abort_multipart_upload(&self, key: &str, upload_id: &UploadId) -> ClientResult<()> {
        let r = self.inner.abort_multipart_upload(key, upload_id).await;
        self.count(Op::AbortMultipart, r)
    }

    async fn copy_object(
        &self,
        source_key: &str,
        dest_key: &str,
        params: &CopyObjectParams,
    ) -> ClientResult<PutObjectResult> {
        let r = self.inner.copy_object(source_key, dest_key, params).await;
        self.count(Op::Copy, r)
    }

    async fn delete_object(&self, key: &str) -> ClientResult<()> {
        let r = self.inner.delete_object(key).await;
        self.count(Op::Delete, r)
    }

    async fn list_objects(&self, params: &ListObjectsParams) -> ClientResult<ListObjectsResult> {
        let r = self.inner.list_objects(params).await;
        self.count(Op::List, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_lists_every_request_kind() {
        let m = Metrics::default();
        m.op(Op::Put, false);
        m.op(Op::Put, true);
        let text = m.render();
        assert!(
            text.contains("bucketfs_requests_total{op=\"put\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("bucketfs_request_errors_total{op=\"put\"} 1"),
            "{text}"
        );
        assert!(text.contains("bucketfs_staging_bytes 0"), "{text}");
    }
}

//! Streaming multipart upload of new files written sequentially.
//!
//! Waiting for `close()` to start uploading a large new file would make the
//! close take as long as the whole upload. Instead, while a new (or
//! truncated) file is written, every block that is complete (the file has
//! grown past its end) is sent at once as its part of a multipart upload
//! started for the purpose, with at most `concurrency` parts in flight (a
//! writer that gets ahead waits, so staging never runs far ahead of the
//! upload and parts read into memory, for TLS endpoints, stay bounded).
//! Each sent part remembers the block generation it was read at; at close,
//! parts whose block changed since (a rewrite, a truncate) are sent again,
//! the rest are reused, and the upload is completed, so the object still
//! appears only whole, at close. If anything about the stream goes wrong
//! (a part fails, the metadata or key changed), the stream is aborted and
//! the close uploads the file the ordinary way.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use tokio::task::JoinHandle;

use crate::client::{
    ClientResult, CreateMultipartUploadParams, ETag, ObjectClient, ObjectClientError,
    ObjectMetadata, UploadId, UploadPartResult,
};
use crate::staging::{StagedFile, BLOCK_SIZE};

/// The task sending one streamed part.
type PartTask = JoinHandle<Result<UploadPartResult, ObjectClientError>>;

/// An in-progress streaming upload.
#[derive(Debug)]
pub struct StreamUpload {
    pub key: String,
    pub metadata: ObjectMetadata,
    pub upload_id: UploadId,
    /// Part number → (ETag, block generation sent).
    pub done: BTreeMap<u32, (ETag, u64)>,
    /// Parts being sent, oldest first: (part number, block generation, task).
    inflight: VecDeque<(u32, u64, PartTask)>,
    /// A part failed: the stream cannot be completed.
    pub broken: bool,
}

impl StreamUpload {
    /// Start a multipart upload for `key`.
    pub async fn start<C: ObjectClient>(
        client: &C,
        key: &str,
        metadata: ObjectMetadata,
    ) -> ClientResult<Self> {
        let params = CreateMultipartUploadParams {
            metadata: metadata.clone(),
            content_type: None,
        };
        let upload_id = client.create_multipart_upload(key, &params).await?;
        Ok(Self {
            key: key.to_string(),
            metadata,
            upload_id,
            done: BTreeMap::new(),
            inflight: VecDeque::new(),
            broken: false,
        })
    }

    /// Whether block `i` was already sent (or is being sent) at its
    /// current generation.
    fn has(&self, i: usize, generation: u64) -> bool {
        let part = i as u32 + 1;
        self.done.get(&part).is_some_and(|(_, g)| *g == generation)
            || self
                .inflight
                .iter()
                .any(|(p, g, _)| *p == part && *g == generation)
    }

    /// Send block `i` of `staged` in the background, first waiting for
    /// older parts while `concurrency` are in flight.
    pub async fn send_block<C: ObjectClient>(
        &mut self,
        client: &Arc<C>,
        staged: &StagedFile,
        i: usize,
        concurrency: usize,
    ) -> std::io::Result<()> {
        let generation = staged.generation(i);
        if self.broken || self.has(i, generation) {
            return Ok(());
        }
        while self.inflight.len() >= concurrency.max(1) {
            self.reap_one().await;
        }
        let start = i as u64 * BLOCK_SIZE;
        let len = staged.size().saturating_sub(start).min(BLOCK_SIZE);
        // The block is read by the part's request, not here: the caller
        // is the writer's request (often on the FUSE thread), and reading
        // 8 MiB there would hold up the next write. A spilled block is
        // sent from the staging file itself (sendfile over plain HTTP: no
        // copy through this process). A change to the block after this
        // point changes its generation, so a part that read newer bytes is
        // still resent at close.
        let reader = staged.range_reader(start, len)?;
        let client = Arc::clone(client);
        let (key, id) = (self.key.clone(), self.upload_id.clone());
        let part = i as u32 + 1;
        let task =
            tokio::spawn(async move { super::send_part(&*client, &key, &id, part, reader).await });
        self.inflight.push_back((part, generation, task));
        Ok(())
    }

    async fn reap_one(&mut self) {
        let Some((part, generation, task)) = self.inflight.pop_front() else {
            return;
        };
        match task.await {
            Ok(Ok(r)) => {
                self.done.insert(part, (r.etag, generation));
            }
            Ok(Err(e)) => {
                tracing::debug!(key = %self.key, part, error = %e, "streamed part failed; the close will resend");
                self.broken = true;
            }
            Err(_) => self.broken = true,
        }
    }

    /// Wait for every part in flight.
    pub async fn drain(&mut self) {
        while !self.inflight.is_empty() {
            self.reap_one().await;
        }
    }

    /// Abort the upload (best effort: an open upload is never an object).
    pub async fn abort<C: ObjectClient>(mut self, client: &C) {
        for (_, _, t) in self.inflight.drain(..) {
            t.abort();
        }
        if let Err(e) = client
            .abort_multipart_upload(&self.key, &self.upload_id)
            .await
        {
            tracing::warn!(key = %self.key, error = %e, "abort of streamed upload failed");
        }
    }
}

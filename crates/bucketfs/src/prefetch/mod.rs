//! Read-ahead for sequential reads of objects not open for writing.
//!
//! Each open file handle has a `Prefetcher`: a queue of ranged GETs (each a
//! spawned task, so several run in parallel) covering bytes just after the
//! last read. A read served from the front of the queue is *sequential*, and
//! every sequential read lets the window (the bytes requested ahead of the
//! reader) double, from [`INITIAL_WINDOW`] up to [`MAX_WINDOW`]; the window
//! is cut into GETs of at most [`MAX_REQUEST`] bytes, so a reader streaming a
//! large object keeps `MAX_WINDOW / MAX_REQUEST` GETs in flight. A read that
//! is not covered by the queue (a seek) drops the queue and restarts at the
//! initial window, so random reads cost one small GET each. The kernel sends
//! its own read-ahead requests concurrently, so they can arrive slightly out
//! of order: a read a little past the queue still counts as sequential (the
//! gap is fetched too), chunks up to [`KEEP_BEHIND`] behind the reader are
//! kept, and a read behind those is served by a one-off GET without
//! disturbing the stream. Memory per handle is bounded by the window plus
//! what is kept behind.
//!
//! Every GET carries `If-Match` with the ETag seen at open, so a reader never
//! mixes bytes of two versions of an object: if the object changes, the read
//! fails with ESTALE-like EIO instead.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::task::JoinHandle;

use crate::client::{ClientResult, ETag, GetObjectParams, ObjectClient, ObjectClientError};

/// Bytes requested ahead at first, and after a seek.
pub const INITIAL_WINDOW: u64 = 256 * 1024;
/// Largest read-ahead window.
pub const MAX_WINDOW: u64 = 32 * 1024 * 1024;
/// Bytes kept behind the reader for requests arriving out of order.
pub const KEEP_BEHIND: u64 = 8 * 1024 * 1024;
/// Largest single ranged GET.
pub const MAX_REQUEST: u64 = 8 * 1024 * 1024;

struct Chunk {
    start: u64,
    end: u64,
    task: Option<JoinHandle<ClientResult<Bytes>>>,
    data: Option<Bytes>,
}

impl Drop for Chunk {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Read-ahead state of one open file handle.
pub struct Prefetcher<C> {
    client: Arc<C>,
    key: String,
    etag: ETag,
    size: u64,
    window: u64,
    /// Consecutive chunks, in order, starting at or before the last read.
    queue: VecDeque<Chunk>,
}

impl<C: ObjectClient> Prefetcher<C> {
    /// Read-ahead for `key` of `size` bytes at version `etag`.
    pub fn new(client: Arc<C>, key: String, etag: ETag, size: u64) -> Self {
        Self {
            client,
            key,
            etag,
            size,
            window: INITIAL_WINDOW,
            queue: VecDeque::new(),
        }
    }

    /// The object this reads.
    pub fn etag(&self) -> &ETag {
        &self.etag
    }

    fn spawn(&self, start: u64, end: u64) -> Chunk {
        let client = Arc::clone(&self.client);
        let key = self.key.clone();
        let params = GetObjectParams {
            range: Some(start..end),
            if_match: Some(self.etag.clone()),
        };
        let task = tokio::spawn(async move {
            let got = client.get_object(&key, &params).await?;
            let expected = end - start;
            if got.body.len() as u64 != expected {
                return Err(ObjectClientError::TruncatedBody {
                    expected,
                    received: got.body.len() as u64,
                });
            }
            Ok(got.body)
        });
        Chunk {
            start,
            end,
            task: Some(task),
            data: None,
        }
    }

    /// Top the queue up so it reaches `want_end` (clamped to the size).
    fn fill_to(&mut self, from: u64, want_end: u64) {
        let want_end = want_end.min(self.size);
        let mut next = self.queue.back().map_or(from, |c| c.end);
        // Whole requests of the current size, never just the few bytes the
        // window moved by: small GETs would cost a round trip each.
        let request = self.window.clamp(INITIAL_WINDOW, MAX_REQUEST);
        while next < want_end {
            let end = (next + request).min(self.size);
            let chunk = self.spawn(next, end);
            self.queue.push_back(chunk);
            next = end;
        }
    }

    /// Read up to `len` bytes at `offset`.
    pub async fn read(&mut self, offset: u64, len: u64) -> ClientResult<Bytes> {
        let end = (offset + len).min(self.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        // Keep a little behind the reader: the kernel's own read-ahead
        // sends requests concurrently and they may reach us out of order.
        while self
            .queue
            .front()
            .is_some_and(|c| c.end + KEEP_BEHIND <= offset)
        {
            self.queue.pop_front();
        }
        let span = self
            .queue
            .front()
            .zip(self.queue.back())
            .map(|(f, b)| (f.start, b.end));
        match span {
            Some((start, back)) if offset >= start && offset <= back + self.window => {
                // Sequential (or a little ahead): grow the window.
                self.window = (self.window * 2).min(MAX_WINDOW);
                self.fill_to(back, (offset + self.window).max(end));
            }
            Some((start, _)) if offset < start => {
                // Behind what we keep: a one-off read, the stream stays.
                return self.read_direct(offset, end).await;
            }
            _ => {
                self.queue.clear();
                self.window = INITIAL_WINDOW;
                self.fill_to(offset, (offset + self.window).max(end));
            }
        }
        self.serve(offset, end).await
    }

    async fn read_direct(&self, offset: u64, end: u64) -> ClientResult<Bytes> {
        let mut chunk = self.spawn(offset, end);
        match chunk.task.take() {
            Some(t) => t.await.map_err(|e| ObjectClientError::Connection {
                message: format!("read task failed: {e}"),
            })?,
            None => Ok(Bytes::new()),
        }
    }

    /// Copy `offset..end` out of the queued chunks, waiting for them.
    async fn serve(&mut self, offset: u64, end: u64) -> ClientResult<Bytes> {
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        for chunk in self.queue.iter_mut() {
            if chunk.start >= end {
                break;
            }
            if chunk.end <= offset {
                continue;
            }
            if chunk.data.is_none() {
                let data = match chunk.task.take() {
                    Some(t) => t.await.map_err(|e| ObjectClientError::Connection {
                        message: format!("read-ahead task failed: {e}"),
                    })?,
                    None => Err(ObjectClientError::InvalidResponse {
                        message: "read-ahead chunk lost".into(),
                    }),
                };
                match data {
                    Ok(d) => chunk.data = Some(d),
                    Err(e) => {
                        self.queue.clear();
                        return Err(e);
                    }
                }
            }
            if let Some(data) = &chunk.data {
                let from = offset.max(chunk.start) - chunk.start;
                let to = end.min(chunk.end) - chunk.start;
                out.extend_from_slice(&data[from as usize..to as usize]);
            }
        }
        Ok(out.freeze())
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use super::*;
    use crate::memory::MemoryClient;

    #[tokio::test]
    async fn sequential_reads_grow_the_window_and_return_the_bytes() {
        let client = MemoryClient::new();
        let data: Vec<u8> = (0..20_000_000u32).map(|i| (i % 251) as u8).collect();
        let etag = client.insert("big", data.clone(), Default::default());
        let mut p = Prefetcher::new(
            Arc::new(client.clone()),
            "big".into(),
            etag,
            data.len() as u64,
        );
        let mut off = 0u64;
        while off < data.len() as u64 {
            let got = p.read(off, 128 * 1024).await.unwrap();
            assert_eq!(&got[..], &data[off as usize..off as usize + got.len()]);
            off += got.len() as u64;
        }
        // 20 MB in ≤ 8 MiB GETs after the window grew: far fewer GETs than
        // 128 KiB reads (153).
        assert!(client.counts().get < 20, "gets: {}", client.counts().get);
    }

    #[tokio::test]
    async fn changed_object_fails_the_read() {
        let client = MemoryClient::new();
        let etag = client.insert("k", vec![1u8; 1000], Default::default());
        let mut p = Prefetcher::new(Arc::new(client.clone()), "k".into(), etag, 1000);
        client.insert("k", vec![2u8; 1000], Default::default());
        assert!(matches!(
            p.read(0, 10).await,
            Err(ObjectClientError::PreconditionFailed { .. })
        ));
    }
}

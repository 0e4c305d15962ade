//! Staged data of an inode and its upload: the `WriteSlot` behind each file
//! open for writing, `upload_inode` (flush, fsync, release), the background
//! retry of failed uploads and the final flush at unmount.
//!
//! A failed upload keeps the data staged and dirty, poisons the file's
//! writable handles (their later write/fsync/close return EIO: the process
//! must learn that something it wrote may not be in the bucket) and queues
//! the inode for a retry every `retry_interval`. A retry that succeeds
//! writes exactly the staged bytes; one that meets a conflict (the object
//! changed on the server, detected with conditional requests) stops
//! retrying and keeps the data in the staging directory instead of writing
//! over the other client's object.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use crate::client::{ObjectClient, PutCondition};
use crate::fs::inode::Remote;
use crate::fs::meta::{to_metadata, FileKind};
use crate::fs::{Filesystem, FsError, FsResult};
use crate::staging::{StagedFile, BLOCK_SIZE};
use crate::upload::{upload, BaseObject, StreamUpload, UploadParams};

/// The staged data of one inode.
#[derive(Debug)]
pub struct WriteSlot {
    /// Mirror of "there is something to upload", readable without the
    /// async lock (the inode table consults it to decide who is the
    /// authority for attributes).
    pub dirty: AtomicBool,
    pub state: tokio::sync::Mutex<WriteState>,
}

/// Guarded by `WriteSlot::state`; uploads hold the lock, so writes to the
/// same inode wait for an upload in progress.
#[derive(Debug)]
pub struct WriteState {
    pub staged: StagedFile,
    pub base: Option<BaseObject>,
    /// The last upload met a conflict; do not retry automatically.
    pub conflict: bool,
    /// A multipart upload started while the file is written (new files
    /// written sequentially; see `crate::upload::StreamUpload`).
    pub stream: Option<StreamUpload>,
    /// Ids of failed upload attempts whose effect is unknown (the request
    /// may have landed and only the response been lost).
    pub attempts: Vec<String>,
}

/// Metadata naming the upload attempt that wrote an object, so a retry can
/// tell its own earlier write (response lost) from another client's.
pub const UPLOAD_ID_META: &str = "bucketfs-upload";

impl<C: ObjectClient> Filesystem<C> {
    /// The write slot of `ino`, created (with the current object as its
    /// base) if missing. Only files have one.
    pub(crate) fn write_slot(&self, ino: u64) -> FsResult<Arc<WriteSlot>> {
        let mut table = self.table();
        let inode = table.get_mut(ino).ok_or(FsError::Stale)?;
        match inode.attr.kind {
            FileKind::File => {}
            FileKind::Directory => return Err(FsError::IsDir),
            FileKind::Symlink => return Err(FsError::InvalidArgument { reason: "symlink" }),
        }
        if let Some(slot) = &inode.write {
            return Ok(Arc::clone(slot));
        }
        let base = match &inode.remote {
            Remote::Object { etag } if inode.attr.size > 0 => Some(BaseObject {
                key: self.key(&inode.path),
                etag: etag.clone(),
                len: inode.attr.size,
            }),
            Remote::Object { .. } | Remote::Implicit | Remote::Local => None,
        };
        let staged = self
            .staging
            .create(base.as_ref().map_or(0, |b| b.len))
            .map_err(staging_error)?;
        let slot = Arc::new(WriteSlot {
            dirty: AtomicBool::new(inode.remote == Remote::Local),
            state: tokio::sync::Mutex::new(WriteState {
                staged,
                base,
                conflict: false,
                stream: None,
                attempts: Vec::new(),
            }),
        });
        inode.write = Some(Arc::clone(&slot));
        Ok(slot)
    }

    /// Upload the staged data of `ino` if it is dirty. On failure the data
    /// stays staged and the inode is queued for a retry.
    pub(crate) async fn upload_inode(&self, ino: u64) -> FsResult<()> {
        let Some(slot) = self.table().get(ino).and_then(|i| i.write.clone()) else {
            return Ok(());
        };
        let mut state = slot.state.lock().await;
        if !slot.dirty.load(Ordering::Acquire) {
            return Ok(());
        }
        let (key, attr, remote, unlinked) = {
            let table = self.table();
            let i = table.get(ino).ok_or(FsError::Stale)?;
            (
                self.key(&i.path),
                i.attr.clone(),
                i.remote.clone(),
                i.unlinked,
            )
        };
        if unlinked {
            // No name any more: nothing to write it to.
            if let Some(stream) = state.stream.take() {
                stream.abort(&*self.client).await;
            }
            slot.dirty.store(false, Ordering::Release);
            return Ok(());
        }
        let condition = if self.client.capabilities().conditional_put {
            match &remote {
                Remote::Object { etag } => Some(PutCondition::IfMatch(etag.clone())),
                Remote::Local => Some(PutCondition::IfNoneMatchAny),
                Remote::Implicit => None,
            }
        } else {
            None
        };
        let mut attempt = self.next_attempt_id();
        let mut metadata = to_metadata(&attr);
        metadata.insert(UPLOAD_ID_META.into(), attempt.clone());
        let state = &mut *state;
        let stream = match state.stream.take() {
            Some(s) if s.key == key && same_but_times(&s.metadata, &metadata) => {
                // The stream's upload was created with its own metadata
                // (times from when it started; SEMANTICS.md).
                metadata = s.metadata.clone();
                attempt = metadata.get(UPLOAD_ID_META).cloned().unwrap_or(attempt);
                Some(s)
            }
            Some(s) => {
                s.abort(&*self.client).await;
                None
            }
            None => None,
        };
        let mut params = UploadParams {
            key: key.clone(),
            metadata,
            content_type: None,
            condition,
            concurrency: self.config.upload_concurrency,
        };
        let mut result = upload(
            &*self.client,
            &mut state.staged,
            state.base.as_ref(),
            &params,
            stream,
        )
        .await;
        if let Err(FsError::Conflict { .. }) = &result {
            // The object changed since we read it. If the change is one of
            // our own earlier attempts whose response was lost, take it as
            // the new base and try once more; otherwise it is another
            // client's write and we must not overwrite it.
            if let Some(etag) = self.own_attempt(&key, state).await {
                params.condition = Some(PutCondition::IfMatch(etag));
                result = upload(
                    &*self.client,
                    &mut state.staged,
                    state.base.as_ref(),
                    &params,
                    None,
                )
                .await;
            }
        }
        if result.is_err() {
            state.attempts.push(attempt);
        } else {
            state.attempts.clear();
        }
        self.metrics.store_staging(&self.staging);
        match result {
            Ok(put) => {
                let size = state.staged.size();
                state.base = Some(BaseObject {
                    key,
                    etag: put.etag.clone(),
                    len: size,
                });
                state.conflict = false;
                state.staged.release_recovery();
                slot.dirty.store(false, Ordering::Release);
                self.pending().remove(&ino);
                let mut table = self.table();
                if let Some(i) = table.get_mut(ino) {
                    i.remote = Remote::Object {
                        etag: put.etag.clone(),
                    };
                    i.validated = Some(Instant::now());
                    i.cached_etag = Some(put.etag);
                    i.meta_known = true;
                }
                Ok(())
            }
            Err(e) => {
                self.metrics.upload_failures.fetch_add(1, Ordering::Relaxed);
                if matches!(e, FsError::Conflict { .. }) {
                    state.conflict = true;
                }
                tracing::warn!(key = %params.key, error = %e, "upload failed; data kept staged");
                self.pending().insert(ino);
                self.poison(ino);
                Err(e)
            }
        }
    }

    /// After a write to a new (or truncated) file: send every block the
    /// file has grown past as a part of a streaming upload.
    pub(crate) async fn stream_blocks(&self, ino: u64, state: &mut WriteState) {
        if state.base.as_ref().is_some_and(|b| b.len > 0) {
            return;
        }
        let size = state.staged.size();
        if size <= BLOCK_SIZE {
            return;
        }
        // Blocks before the one holding the last byte are complete.
        let complete = ((size - 1) / BLOCK_SIZE) as usize;
        if complete >= self.client.capabilities().max_parts as usize {
            return;
        }
        if state.stream.is_none() {
            let (key, attr) = {
                let table = self.table();
                let Some(i) = table.get(ino) else { return };
                (self.key(&i.path), i.attr.clone())
            };
            let mut metadata = to_metadata(&attr);
            metadata.insert(UPLOAD_ID_META.into(), self.next_attempt_id());
            match StreamUpload::start(&*self.client, &key, metadata).await {
                Ok(s) => state.stream = Some(s),
                Err(e) => {
                    tracing::debug!(key, error = %e, "could not start a streaming upload");
                    return;
                }
            }
        }
        let Some(stream) = state.stream.as_mut() else {
            return;
        };
        for i in complete.saturating_sub(2)..complete {
            if state.staged.block(i) == crate::staging::Block::Dirty {
                let sent = stream
                    .send_block(
                        &self.client,
                        &state.staged,
                        i,
                        self.config.upload_concurrency,
                    )
                    .await;
                if sent.is_err() {
                    stream.broken = true;
                }
            }
        }
    }

    fn next_attempt_id(&self) -> String {
        let n = self.next_fh.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.mount_id)
    }

    /// If the object at `key` was written by one of `state`'s earlier
    /// failed attempts, rebase `state` on it and return its ETag.
    async fn own_attempt(&self, key: &str, state: &mut WriteState) -> Option<crate::client::ETag> {
        let head = self.client.head_object(key).await.ok()?;
        let id = head.metadata.get(UPLOAD_ID_META)?;
        if !state.attempts.contains(id) {
            return None;
        }
        // Blocks still absent locally were copied from the base into that
        // attempt at the same offsets, so it can serve as the base.
        if let Some(base) = state.base.as_mut() {
            base.etag = head.etag.clone();
            base.len = base.len.min(head.size);
        }
        Some(head.etag)
    }

    /// Mark every writable handle of `ino` poisoned.
    fn poison(&self, ino: u64) {
        for h in self.handles().values() {
            if h.ino == ino && h.writable {
                h.poisoned.store(true, Ordering::Release);
            }
        }
    }

    /// Retry every failed upload once (called every `retry_interval` by
    /// the mount's background task). Returns how many still fail.
    pub async fn retry_pending(&self) -> usize {
        let inos: Vec<u64> = self.pending().iter().copied().collect();
        let mut failing = 0;
        for ino in inos {
            let Some(slot) = self.table().get(ino).and_then(|i| i.write.clone()) else {
                self.pending().remove(&ino);
                continue;
            };
            if slot.state.lock().await.conflict {
                failing += 1;
                continue;
            }
            self.metrics.upload_retries.fetch_add(1, Ordering::Relaxed);
            if self.upload_inode(ino).await.is_err() {
                failing += 1;
            } else {
                self.release_slot_if_idle(ino).await;
            }
        }
        failing
    }

    /// Upload everything still dirty, files open for writing included, as
    /// an fsync of each would (before a disk is detached from a sandbox).
    /// Returns the inodes, keys and errors of the files that could not be
    /// uploaded; their data stays staged (and queued for a retry), so a
    /// caller that sees a failure can keep the mount and try again.
    pub async fn flush_all(&self) -> Vec<(u64, String, FsError)> {
        let inos: Vec<u64> = self
            .table()
            .inodes
            .values()
            .filter(|i| i.write.is_some())
            .map(|i| i.ino)
            .collect();
        let mut failed = Vec::new();
        for ino in inos {
            if let Err(e) = self.upload_inode(ino).await {
                let key = self
                    .table()
                    .get(ino)
                    .map(|i| self.key(&i.path))
                    .unwrap_or_default();
                failed.push((ino, key, e));
            }
        }
        failed
    }

    /// Upload everything still dirty (at unmount). Files that cannot be
    /// uploaded are left in the staging directory for recovery; their
    /// keys and errors are returned.
    pub async fn shutdown(&self) -> Vec<(String, FsError)> {
        let mut failed = Vec::new();
        for (ino, key, e) in self.flush_all().await {
            let Some(slot) = self.table().get(ino).and_then(|i| i.write.clone()) else {
                continue;
            };
            match slot.state.lock().await.staged.keep_for_recovery(&key) {
                Ok(p) => {
                    tracing::error!(key, staged = %p.display(), "upload failed at unmount; data left in the staging directory")
                }
                Err(io) => {
                    tracing::error!(key, error = %io, "upload failed at unmount and the staged data could not be kept")
                }
            }
            failed.push((key, e));
        }
        failed
    }

    /// Drop the write slot of `ino` when it is clean and no handle is open
    /// (frees the staging space).
    pub(crate) async fn release_slot_if_idle(&self, ino: u64) {
        let mut table = self.table();
        if let Some(i) = table.get_mut(ino) {
            let clean = i
                .write
                .as_ref()
                .is_some_and(|w| !w.dirty.load(Ordering::Acquire));
            if clean && i.handles == 0 {
                i.write = None;
            }
        }
        table.maybe_drop(ino);
        drop(table);
        self.metrics.store_staging(&self.staging);
    }

    /// Truncate or extend the staged file of `ino` to `size`.
    pub(crate) async fn truncate_staged(&self, ino: u64, size: u64) -> FsResult<()> {
        let slot = self.write_slot(ino)?;
        let mut state = slot.state.lock().await;
        let state = &mut *state;
        if size < state.staged.size() && !size.is_multiple_of(crate::staging::BLOCK_SIZE) {
            let boundary = (size / crate::staging::BLOCK_SIZE) as usize;
            if state.staged.block(boundary) == crate::staging::Block::Absent {
                crate::upload::fill_block(
                    &*self.client,
                    &mut state.staged,
                    state.base.as_ref(),
                    boundary,
                )
                .await?;
            }
        }
        state.staged.set_len(size).map_err(staging_error)?;
        if let Some(b) = state.base.as_mut() {
            b.len = b.len.min(size);
        }
        slot.dirty.store(true, Ordering::Release);
        let now = SystemTime::now();
        if let Some(i) = self.table().get_mut(ino) {
            i.attr.size = size;
            i.attr.mtime = now;
            i.attr.ctime = now;
        }
        Ok(())
    }
}

/// Whether two metadata maps differ at most in times and the upload id.
fn same_but_times(a: &crate::client::ObjectMetadata, b: &crate::client::ObjectMetadata) -> bool {
    let strip = |m: &crate::client::ObjectMetadata| {
        m.iter()
            .filter(|(k, _)| !matches!(k.as_str(), "mtime" | "ctime" | "atime" | UPLOAD_ID_META))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
    };
    strip(a) == strip(b)
}

/// ENOSPC for a full staging area, EIO for other local I/O failures.
pub(crate) fn staging_error(e: std::io::Error) -> FsError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        FsError::NoSpace
    } else {
        FsError::Staging(e)
    }
}

//! open, create, read, write, flush, fsync and release.
//!
//! Reads of a file with staged data come from the staging file (absent
//! blocks are fetched from the base object first); other reads go through
//! the handle's read-ahead (`crate::prefetch`). Writes always go to the
//! staging file; flush (every close), fsync and release upload.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

use crate::client::{ObjectClient, ObjectClientError};
use crate::fs::inode::Remote;
use crate::fs::meta::{Attr, FileKind};
use crate::fs::write::staging_error;
use crate::fs::{check_name, Filesystem, FsError, FsResult};
use crate::prefetch::Prefetcher;
use crate::staging::BLOCK_SIZE;
use crate::upload::fill_block;

/// Largest file S3 can hold (5 TiB); writes past it fail with EFBIG.
const MAX_FILE_SIZE: u64 = 5 << 40;

/// One open file.
pub(crate) struct Handle<C> {
    pub ino: u64,
    pub writable: bool,
    /// Set when an upload of this file failed; every later write, fsync
    /// and close on this handle then fails with EIO.
    pub poisoned: AtomicBool,
    prefetch: tokio::sync::Mutex<Option<Prefetcher<C>>>,
}

/// What open/create tell the kernel.
#[derive(Debug, Clone, Copy)]
pub struct OpenReply {
    pub fh: u64,
    /// The page cache holds this object's current bytes: keep it.
    pub keep_cache: bool,
}

/// Bytes read.
pub type ReadData = Bytes;

/// What [`Filesystem::try_write_now`] did.
#[derive(Debug)]
pub enum WriteNow {
    /// Finished: reply with this.
    Done(FsResult<u32>),
    /// Staged, and it completed a block: reply with this count after
    /// [`Filesystem::stream_completed`].
    Staged(u32),
    /// Nothing done: call `write` (it has to wait for something).
    Wait,
}

impl<C: ObjectClient> Filesystem<C> {
    fn new_handle(&self, ino: u64, writable: bool) -> u64 {
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(Handle {
            ino,
            writable,
            poisoned: AtomicBool::new(false),
            prefetch: tokio::sync::Mutex::new(None),
        });
        self.handles().insert(fh, handle);
        fh
    }

    fn handle(&self, fh: u64) -> FsResult<Arc<Handle<crate::metrics::MeteredClient<C>>>> {
        self.handles().get(&fh).cloned().ok_or(FsError::Stale)
    }

    /// Open `ino` with open(2) `flags`.
    pub async fn open(&self, ino: u64, flags: i32) -> FsResult<OpenReply> {
        let accmode = flags & libc::O_ACCMODE;
        let writable = accmode != libc::O_RDONLY;
        let truncate = flags & libc::O_TRUNC != 0;
        if writable || truncate {
            self.check_writable()?;
        }
        let keep_cache = {
            let mut table = self.table();
            let i = table.get_mut(ino).ok_or(FsError::Stale)?;
            match i.attr.kind {
                FileKind::File => {}
                FileKind::Directory => return Err(FsError::IsDir),
                FileKind::Symlink => return Err(FsError::InvalidArgument { reason: "symlink" }),
            }
            let current = match &i.remote {
                Remote::Object { etag } => Some(etag.clone()),
                Remote::Implicit | Remote::Local => None,
            };
            let keep = current.is_some() && i.cached_etag == current;
            i.cached_etag = current;
            i.handles += 1;
            keep
        };
        let fh = self.new_handle(ino, writable);
        if writable || truncate {
            let prepared = match self.write_slot(ino) {
                Ok(_) if truncate => self.truncate_staged(ino, 0).await,
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            };
            if let Err(e) = prepared {
                self.drop_handle(fh).await;
                return Err(e);
            }
        }
        Ok(OpenReply {
            fh,
            keep_cache: keep_cache && !truncate,
        })
    }

    /// Create and open `parent/name` (mode includes only permission bits
    /// that matter; uid/gid are the caller's).
    pub async fn create(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        uid: u32,
        gid: u32,
        flags: i32,
    ) -> FsResult<(u64, Attr, OpenReply)> {
        self.check_writable()?;
        check_name(name)?;
        match self.resolve(parent, name).await {
            Ok((ino, _)) => {
                if flags & libc::O_EXCL != 0 {
                    return Err(FsError::Exists);
                }
                let reply = self.open(ino, flags).await?;
                let attr = self.cached_attr(ino)?;
                self.remember(ino);
                return Ok((ino, attr, reply));
            }
            Err(FsError::NotFound) => {}
            Err(e) => return Err(e),
        }
        let now = SystemTime::now();
        let attr = Attr {
            kind: FileKind::File,
            size: 0,
            perm: mode & 0o7777,
            uid,
            gid,
            mtime: now,
            ctime: now,
            atime: now,
        };
        let ino = {
            let mut table = self.table();
            let ino = table.insert(parent, name, attr.clone(), Remote::Local, None, true);
            if let Some(i) = table.get_mut(ino) {
                i.lookups = 1;
                i.handles = 1;
            }
            ino
        };
        let accmode = flags & libc::O_ACCMODE;
        let fh = self.new_handle(ino, accmode != libc::O_RDONLY);
        if let Err(e) = self.write_slot(ino) {
            self.drop_handle(fh).await;
            return Err(e);
        }
        Ok((
            ino,
            attr,
            OpenReply {
                fh,
                keep_cache: false,
            },
        ))
    }

    /// Read up to `size` bytes at `offset`.
    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<ReadData> {
        let handle = self.handle(fh)?;
        let ino = handle.ino;
        let (slot, key, remote, file_size) = {
            let table = self.table();
            let i = table.get(ino).ok_or(FsError::Stale)?;
            (
                i.write.clone(),
                self.key(&i.path),
                i.remote.clone(),
                i.attr.size,
            )
        };
        if let Some(slot) = slot {
            let mut state = slot.state.lock().await;
            let state = &mut *state;
            let end = (offset + u64::from(size)).min(state.staged.size());
            for b in state.staged.absent_in(offset, end) {
                fill_block(&*self.client, &mut state.staged, state.base.as_ref(), b).await?;
            }
            let mut buf = vec![0u8; end.saturating_sub(offset) as usize];
            let n = state.staged.read(offset, &mut buf)?;
            buf.truncate(n);
            return Ok(Bytes::from(buf));
        }
        let Remote::Object { etag } = remote else {
            return Ok(Bytes::new());
        };
        let mut prefetch = handle.prefetch.lock().await;
        if prefetch.as_ref().is_none_or(|p| p.etag() != &etag) {
            *prefetch = Some(Prefetcher::new(
                Arc::clone(&self.client),
                key.clone(),
                etag,
                file_size,
            ));
        }
        let Some(p) = prefetch.as_mut() else {
            return Ok(Bytes::new());
        };
        p.read(offset, u64::from(size)).await.map_err(|e| match e {
            ObjectClientError::PreconditionFailed { .. } | ObjectClientError::NoSuchKey { .. } => {
                FsError::Stale
            }
            source => FsError::Client {
                operation: "get",
                key,
                source,
            },
        })
    }

    /// Write `data` at `offset`; returns the bytes written.
    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        self.check_writable()?;
        let handle = self.handle(fh)?;
        if handle.poisoned.load(Ordering::Acquire) {
            return Err(self.poisoned_error(handle.ino));
        }
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|e| *e <= MAX_FILE_SIZE)
            .ok_or(FsError::TooLarge)?;
        let slot = self.write_slot(handle.ino)?;
        let mut guard = slot.state.lock().await;
        let state = &mut *guard;
        // Absent blocks the write covers only partly need their old bytes.
        for b in state.staged.absent_in(offset, end) {
            let (bs, be) = (b as u64 * BLOCK_SIZE, (b as u64 + 1) * BLOCK_SIZE);
            if offset > bs || end < be.min(state.staged.size()) {
                fill_block(&*self.client, &mut state.staged, state.base.as_ref(), b).await?;
            }
        }
        state.staged.write(offset, data).map_err(staging_error)?;
        slot.dirty.store(true, Ordering::Release);
        self.stream_blocks(handle.ino, state).await;
        let size = state.staged.size();
        drop(guard);
        self.after_write(handle.ino, size);
        Ok(data.len() as u32)
    }

    /// `write` done at once on the caller's thread, straight from `data`,
    /// when nothing has to be waited for: the write lock is free and no
    /// block the write covers partly must first be fetched from the base.
    /// The FUSE adapter uses this so the common write is staged without
    /// copying its buffer. A write that completes a block is staged here
    /// too, but its reply waits for [`Self::stream_completed`] (which may
    /// wait for parts in flight: that is what holds a fast writer back).
    pub fn try_write_now(&self, fh: u64, offset: u64, data: &[u8]) -> WriteNow {
        if let Err(e) = self.check_writable() {
            return WriteNow::Done(Err(e));
        }
        let handle = match self.handle(fh) {
            Ok(h) => h,
            Err(e) => return WriteNow::Done(Err(e)),
        };
        if handle.poisoned.load(Ordering::Acquire) {
            return WriteNow::Done(Err(self.poisoned_error(handle.ino)));
        }
        // Past the size limit `write` reports EFBIG.
        let Some(end) = offset
            .checked_add(data.len() as u64)
            .filter(|e| *e <= MAX_FILE_SIZE)
        else {
            return WriteNow::Wait;
        };
        let Some(slot) = self.table().get(handle.ino).and_then(|i| i.write.clone()) else {
            return WriteNow::Wait;
        };
        let Ok(mut guard) = slot.state.try_lock() else {
            return WriteNow::Wait;
        };
        let state = &mut *guard;
        if !state.staged.absent_in(offset, end).is_empty() {
            return WriteNow::Wait;
        }
        let before = state.staged.size();
        if let Err(e) = state.staged.write(offset, data) {
            return WriteNow::Done(Err(staging_error(e)));
        }
        slot.dirty.store(true, Ordering::Release);
        let size = state.staged.size();
        drop(guard);
        self.after_write(handle.ino, size);
        let last_block = |len: u64| len.saturating_sub(1) / BLOCK_SIZE;
        let n = data.len() as u32;
        if size > before && last_block(size) != last_block(before) {
            WriteNow::Staged(n)
        } else {
            WriteNow::Done(Ok(n))
        }
    }

    /// After a write staged by `try_write_now` completed a block: send the
    /// complete blocks as streamed parts (see `stream_blocks`).
    pub async fn stream_completed(&self, fh: u64) {
        let Ok(handle) = self.handle(fh) else { return };
        let Some(slot) = self.table().get(handle.ino).and_then(|i| i.write.clone()) else {
            return;
        };
        let mut guard = slot.state.lock().await;
        self.stream_blocks(handle.ino, &mut guard).await;
    }

    /// Size and times of `ino` after a write left it `size` bytes long.
    fn after_write(&self, ino: u64, size: u64) {
        let now = SystemTime::now();
        if let Some(i) = self.table().get_mut(ino) {
            i.attr.size = size;
            i.attr.mtime = now;
            i.attr.ctime = now;
        }
        self.metrics.store_staging(&self.staging);
    }

    fn poisoned_error(&self, ino: u64) -> FsError {
        let key = self
            .table()
            .get(ino)
            .map(|i| self.key(&i.path))
            .unwrap_or_default();
        FsError::Poisoned { key }
    }

    /// close(2) of one file descriptor: upload if dirty, report failure.
    pub async fn flush(&self, fh: u64) -> FsResult<()> {
        let handle = self.handle(fh)?;
        if handle.poisoned.load(Ordering::Acquire) {
            return Err(self.poisoned_error(handle.ino));
        }
        self.upload_inode(handle.ino).await
    }

    /// fsync(2): the bytes are in the bucket when this returns Ok.
    pub async fn fsync(&self, fh: u64) -> FsResult<()> {
        self.flush(fh).await
    }

    /// The last close of an open file: upload what flush did not (mmap
    /// writes), free the handle, and drop clean staged data.
    pub async fn release(&self, fh: u64) -> FsResult<()> {
        let handle = self.handle(fh)?;
        let result = if handle.poisoned.load(Ordering::Acquire) {
            Ok(())
        } else {
            self.upload_inode(handle.ino).await
        };
        self.drop_handle(fh).await;
        result
    }

    async fn drop_handle(&self, fh: u64) {
        let Some(handle) = self.handles().remove(&fh) else {
            return;
        };
        if let Some(i) = self.table().get_mut(handle.ino) {
            i.handles = i.handles.saturating_sub(1);
        }
        self.release_slot_if_idle(handle.ino).await;
    }
}

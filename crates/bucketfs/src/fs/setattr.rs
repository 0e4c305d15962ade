//! setattr: chmod, chown, utimens and truncate.
//!
//! Size changes go through the staging file (uploaded at once for
//! truncate(2), at close for ftruncate(2) on an open file). Metadata-only
//! changes of a file with nothing staged rewrite the object's metadata in
//! place with a CopyObject onto itself (as s3fs does); of a directory, by
//! rewriting its marker (an implicit directory becomes explicit). Changes
//! to the mount root have no object to live in and last until unmount.

use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use bytes::Bytes;

use crate::client::{CopyObjectParams, MetadataDirective, ObjectClient, PutObjectParams};
use crate::fs::inode::Remote;
use crate::fs::meta::{to_metadata, Attr, FileKind, DIR_CONTENT_TYPE};
use crate::fs::{Filesystem, FsError, FsResult, ROOT_INO};
use crate::upload::{copy_large, MAX_COPY_OBJECT};

/// The attributes to change (None: keep).
#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SystemTime>,
    pub mtime: Option<SystemTime>,
    /// The open file this came through (ftruncate, futimens).
    pub fh: Option<u64>,
}

impl<C: ObjectClient> Filesystem<C> {
    /// Apply `set` to `ino`; returns the new attributes.
    pub async fn setattr(&self, ino: u64, set: SetAttr) -> FsResult<Attr> {
        self.check_writable()?;
        let kind = self.getattr(ino).await?.kind;
        if let Some(size) = set.size {
            if kind == FileKind::Directory {
                return Err(FsError::IsDir);
            }
            self.truncate_staged(ino, size).await?;
        }
        let meta_change = set.mode.is_some()
            || set.uid.is_some()
            || set.gid.is_some()
            || set.atime.is_some()
            || set.mtime.is_some();
        if meta_change {
            let now = SystemTime::now();
            let mut table = self.table();
            let i = table.get_mut(ino).ok_or(FsError::Stale)?;
            if let Some(m) = set.mode {
                i.attr.perm = m & 0o7777;
            }
            if let Some(u) = set.uid {
                i.attr.uid = u;
            }
            if let Some(g) = set.gid {
                i.attr.gid = g;
            }
            if let Some(t) = set.atime {
                i.attr.atime = t;
            }
            if let Some(t) = set.mtime {
                i.attr.mtime = t;
            }
            i.attr.ctime = now;
        }
        let staged_dirty = self
            .table()
            .get(ino)
            .and_then(|i| i.write.clone())
            .is_some_and(|w| w.dirty.load(Ordering::Acquire));
        if staged_dirty {
            // The upload carries data and metadata together: at once for
            // truncate(2), at close when an open file was given.
            if set.fh.is_none() {
                self.upload_inode(ino).await?;
                self.release_slot_if_idle(ino).await;
            }
        } else if meta_change && ino != ROOT_INO {
            self.store_metadata(ino).await?;
        }
        self.cached_attr(ino)
    }

    /// Rewrite the metadata of `ino`'s object (or directory marker).
    async fn store_metadata(&self, ino: u64) -> FsResult<()> {
        let (path, attr, remote, slot) = {
            let table = self.table();
            let i = table.get(ino).ok_or(FsError::Stale)?;
            (
                i.path.clone(),
                i.attr.clone(),
                i.remote.clone(),
                i.write.clone(),
            )
        };
        let etag = match (attr.kind, &remote) {
            (FileKind::Directory, _) => {
                let marker = self.dir_prefix(&path);
                let params = PutObjectParams {
                    metadata: to_metadata(&attr),
                    content_type: Some(DIR_CONTENT_TYPE.into()),
                    condition: None,
                };
                self.client
                    .put_object(&marker, Bytes::new(), &params)
                    .await
                    .map_err(|e| FsError::client("put", &marker, e))?
                    .etag
            }
            (_, Remote::Object { etag }) if attr.size > MAX_COPY_OBJECT => {
                let key = self.key(&path);
                copy_large(
                    &*self.client,
                    &key,
                    &key,
                    attr.size,
                    etag,
                    to_metadata(&attr),
                )
                .await?
                .etag
            }
            (_, Remote::Object { etag }) => {
                let key = self.key(&path);
                let params = CopyObjectParams {
                    metadata_directive: MetadataDirective::Replace {
                        metadata: to_metadata(&attr),
                        content_type: None,
                    },
                    source_if_match: Some(etag.clone()),
                };
                self.client
                    .copy_object(&key, &key, &params)
                    .await
                    .map_err(|e| FsError::client("copy", &key, e))?
                    .etag
            }
            // Not uploaded yet: the upload will carry the metadata.
            (_, Remote::Local | Remote::Implicit) => return Ok(()),
        };
        if let Some(slot) = slot {
            if let Some(base) = slot.state.lock().await.base.as_mut() {
                base.etag = etag.clone();
            }
        }
        let mut table = self.table();
        if let Some(i) = table.get_mut(ino) {
            if i.cached_etag.is_some() && i.cached_etag.as_ref() == remote_etag(&remote) {
                i.cached_etag = Some(etag.clone());
            }
            i.remote = Remote::Object { etag };
            i.validated = Some(Instant::now());
        }
        Ok(())
    }
}

fn remote_etag(r: &Remote) -> Option<&crate::client::ETag> {
    match r {
        Remote::Object { etag } => Some(etag),
        Remote::Implicit | Remote::Local => None,
    }
}

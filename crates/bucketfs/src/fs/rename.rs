//! rename(2). Object storage has no rename, so:
//!
//! - A file (or symlink) is uploaded first if it has unsaved data, then
//!   copied on the server to the new key (CopyObject, conditional on the
//!   ETag we know, metadata kept) and only then is the old key deleted. If
//!   interrupted between the two, both names exist; nothing is lost.
//! - A directory is moved key by key: every object under the old prefix is
//!   copied to the new prefix first, and only when all copies succeeded are
//!   the old keys deleted. An interruption (a failed copy or delete) leaves
//!   every original object in place, possibly with a partial copy under the
//!   new name; nothing is lost. Other clients can see the intermediate
//!   states: the rename is not atomic (`SEMANTICS.md`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures::stream::{self, StreamExt, TryStreamExt};

use crate::client::{CopyObjectParams, ETag, ListObjectsParams, MetadataDirective, ObjectClient};
use crate::fs::inode::Remote;
use crate::fs::meta::FileKind;
use crate::fs::{check_name, Filesystem, FsError, FsResult};
use crate::upload::{copy_large, BaseObject, MAX_COPY_OBJECT};

/// renameat2 flags we understand.
const RENAME_NOREPLACE: u32 = 1;
const RENAME_EXCHANGE: u32 = 2;
/// Copies and deletes in flight during a directory rename.
const DIR_RENAME_CONCURRENCY: usize = 16;

impl<C: ObjectClient> Filesystem<C> {
    /// rename(2) / renameat2(2) without RENAME_EXCHANGE.
    pub async fn rename(
        &self,
        parent: u64,
        name: &str,
        new_parent: u64,
        new_name: &str,
        flags: u32,
    ) -> FsResult<()> {
        self.check_writable()?;
        check_name(new_name)?;
        if flags & RENAME_EXCHANGE != 0 {
            return Err(FsError::Unsupported {
                operation: "rename exchange",
            });
        }
        let (src, src_attr) = self.resolve(parent, name).await?;
        if src_attr.kind == FileKind::Directory && self.is_within(new_parent, src) {
            return Err(FsError::InvalidArgument {
                reason: "rename of a directory into itself",
            });
        }
        let dst = match self.resolve(new_parent, new_name).await {
            Ok((ino, attr)) => Some((ino, attr)),
            Err(FsError::NotFound) => None,
            Err(e) => return Err(e),
        };
        if let Some((dst_ino, dst_attr)) = &dst {
            if *dst_ino == src {
                return Ok(());
            }
            if flags & RENAME_NOREPLACE != 0 {
                return Err(FsError::Exists);
            }
            // The target is an ancestor of the source, so it is not empty:
            // Linux answers ENOTEMPTY here before looking at the kinds
            // (do_renameat2's `trap` check), and so must the core.
            if self.is_within(parent, *dst_ino) {
                return Err(FsError::NotEmpty);
            }
            match (src_attr.kind, dst_attr.kind) {
                (FileKind::Directory, FileKind::Directory) => {
                    let path = self.table().child_path(new_parent, new_name);
                    if self.dir_has_entries(*dst_ino, &path).await? {
                        return Err(FsError::NotEmpty);
                    }
                }
                (FileKind::Directory, _) => return Err(FsError::NotDir),
                (_, FileKind::Directory) => return Err(FsError::IsDir),
                _ => {}
            }
        }
        if src_attr.kind == FileKind::Directory {
            self.rename_dir(src, new_parent, new_name, dst.map(|d| d.0))
                .await
        } else {
            self.rename_file(src, new_parent, new_name).await
        }
    }

    async fn rename_file(&self, src: u64, new_parent: u64, new_name: &str) -> FsResult<()> {
        self.upload_inode(src).await?;
        let (old_path, remote, slot, size) = {
            let table = self.table();
            let i = table.get(src).ok_or(FsError::Stale)?;
            (
                i.path.clone(),
                i.remote.clone(),
                i.write.clone(),
                i.attr.size,
            )
        };
        let new_path = self.table().child_path(new_parent, new_name);
        let new_key = self.key(&new_path);
        let mut new_remote = remote.clone();
        if let Remote::Object { etag } = &remote {
            let old_key = self.key(&old_path);
            let copied = if size > MAX_COPY_OBJECT {
                let head = self
                    .client
                    .head_object(&old_key)
                    .await
                    .map_err(|e| FsError::client("head", &old_key, e))?;
                copy_large(&*self.client, &old_key, &new_key, size, etag, head.metadata).await?
            } else {
                let params = CopyObjectParams {
                    metadata_directive: MetadataDirective::Copy,
                    source_if_match: Some(etag.clone()),
                };
                self.client
                    .copy_object(&old_key, &new_key, &params)
                    .await
                    .map_err(|e| FsError::client("copy", &old_key, e))?
            };
            self.client
                .delete_object(&old_key)
                .await
                .map_err(|e| FsError::client("delete", &old_key, e))?;
            new_remote = Remote::Object { etag: copied.etag };
        }
        if let (Some(slot), Remote::Object { etag }) = (&slot, &new_remote) {
            let mut state = slot.state.lock().await;
            if let Some(base) = state.base.as_mut() {
                base.key = new_key.clone();
                base.etag = etag.clone();
            }
        }
        let mut table = self.table();
        table.rename(src, new_parent, new_name);
        if let Some(i) = table.get_mut(src) {
            if i.cached_etag.is_some() && i.cached_etag.as_ref() == remote_etag(&remote) {
                i.cached_etag = remote_etag(&new_remote).cloned();
            }
            i.remote = new_remote;
            i.validated = Some(Instant::now());
        }
        Ok(())
    }

    async fn rename_dir(
        &self,
        src: u64,
        new_parent: u64,
        new_name: &str,
        dst: Option<u64>,
    ) -> FsResult<()> {
        let (old_path, inos) = {
            let table = self.table();
            let i = table.get(src).ok_or(FsError::Stale)?;
            (i.path.clone(), table.under(src))
        };
        for ino in &inos {
            self.upload_inode(*ino).await?;
        }
        let new_path = self.table().child_path(new_parent, new_name);
        let old_prefix = self.dir_prefix(&old_path);
        let new_prefix = self.dir_prefix(&new_path);
        let keys = self.list_all(&old_prefix).await?;
        // Copy everything first…
        let client = Arc::clone(&self.client);
        let copied: Vec<(String, ETag)> = stream::iter(keys.clone())
            .map(move |key| {
                let client = Arc::clone(&client);
                let new_key = format!("{new_prefix}{}", &key[old_prefix.len()..]);
                async move {
                    let params = CopyObjectParams {
                        metadata_directive: MetadataDirective::Copy,
                        source_if_match: None,
                    };
                    client
                        .copy_object(&key, &new_key, &params)
                        .await
                        .map(|r| (new_key, r.etag))
                        .map_err(|e| FsError::client("copy", &key, e))
                }
            })
            .buffer_unordered(DIR_RENAME_CONCURRENCY)
            .try_collect()
            .await?;
        // …then delete the originals.
        let client = Arc::clone(&self.client);
        stream::iter(keys)
            .map(move |key| {
                let client = Arc::clone(&client);
                async move {
                    client
                        .delete_object(&key)
                        .await
                        .map_err(|e| FsError::client("delete", &key, e))
                }
            })
            .buffer_unordered(DIR_RENAME_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        let etags: HashMap<String, ETag> = copied.into_iter().collect();
        self.finish_dir_rename(src, new_parent, new_name, dst, &etags)
            .await;
        Ok(())
    }

    async fn finish_dir_rename(
        &self,
        src: u64,
        new_parent: u64,
        new_name: &str,
        dst: Option<u64>,
        etags: &HashMap<String, ETag>,
    ) {
        let mut slots = Vec::new();
        {
            let mut table = self.table();
            if let Some(d) = dst {
                let _ = d;
                table.detach(new_parent, new_name);
            }
            table.rename(src, new_parent, new_name);
            for ino in table.under(src) {
                let Some(i) = table.get(ino) else { continue };
                let (path, kind) = (i.path.clone(), i.attr.kind);
                let key = match kind {
                    FileKind::Directory => self.dir_prefix(&path),
                    FileKind::File | FileKind::Symlink => self.key(&path),
                };
                let Some(i) = table.get_mut(ino) else {
                    continue;
                };
                if let Some(etag) = etags.get(&key) {
                    i.remote = Remote::Object { etag: etag.clone() };
                    if let Some(slot) = &i.write {
                        slots.push((slot.clone(), key.clone(), etag.clone()));
                    }
                }
                i.validated = Some(Instant::now());
            }
        }
        for (slot, key, etag) in slots {
            let mut state = slot.state.lock().await;
            if let Some(base) = state.base.as_mut() {
                *base = BaseObject {
                    key,
                    etag,
                    len: base.len,
                };
            }
        }
    }

    /// Whether `ino` is `dir` or lies under it.
    fn is_within(&self, mut ino: u64, dir: u64) -> bool {
        let table = self.table();
        loop {
            if ino == dir {
                return true;
            }
            if ino == crate::fs::ROOT_INO {
                return false;
            }
            ino = table.get(ino).map_or(crate::fs::ROOT_INO, |i| i.parent);
        }
    }

    /// Every key under `prefix` (no delimiter), in order.
    async fn list_all(&self, prefix: &str) -> FsResult<Vec<String>> {
        let mut keys = Vec::new();
        let mut params = ListObjectsParams {
            prefix: prefix.to_string(),
            delimiter: None,
            max_keys: Some(1000),
            ..Default::default()
        };
        loop {
            let page = self
                .client
                .list_objects(&params)
                .await
                .map_err(|e| FsError::client("list", prefix, e))?;
            keys.extend(page.objects.into_iter().map(|o| o.key));
            match page.next_continuation_token {
                Some(t) => params.continuation_token = Some(t),
                None => return Ok(keys),
            }
        }
    }
}

fn remote_etag(r: &Remote) -> Option<&ETag> {
    match r {
        Remote::Object { etag } => Some(etag),
        Remote::Implicit | Remote::Local => None,
    }
}

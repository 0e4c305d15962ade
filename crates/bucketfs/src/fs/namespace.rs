//! mkdir, rmdir, unlink, symlink, readlink and statfs.
//!
//! mkdir writes a `dir/` marker (as s3fs and the AWS console do) so an empty
//! directory survives a remount; rmdir deletes the marker after checking
//! that nothing is under the prefix. Symlinks are objects whose body is the
//! target, with S_IFLNK in their `mode` metadata (s3fs's layout).

use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use bytes::Bytes;

use crate::client::{GetObjectParams, ListObjectsParams, ObjectClient, PutObjectParams};
use crate::fs::inode::Remote;
use crate::fs::meta::{to_metadata, Attr, FileKind, DIR_CONTENT_TYPE};
use crate::fs::{check_name, Filesystem, FsError, FsResult};

/// Numbers for statfs: object storage has no fixed capacity, so we report
/// a large constant (as mountpoint-s3 and s3fs do).
#[derive(Debug, Clone, Copy)]
pub struct StatFs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
}

impl<C: ObjectClient> Filesystem<C> {
    /// Fail with `Exists` if `parent/name` exists.
    async fn check_absent(&self, parent: u64, name: &str) -> FsResult<()> {
        match self.resolve(parent, name).await {
            Ok(_) => Err(FsError::Exists),
            Err(FsError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn new_attr(&self, kind: FileKind, perm: u32, uid: u32, gid: u32, size: u64) -> Attr {
        let now = SystemTime::now();
        Attr {
            kind,
            size,
            perm: perm & 0o7777,
            uid,
            gid,
            mtime: now,
            ctime: now,
            atime: now,
        }
    }

    /// mkdir(2): writes the `dir/` marker.
    pub async fn mkdir(
        &self,
        parent: u64,
        name: &str,
        mode: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<(u64, Attr)> {
        self.check_writable()?;
        check_name(name)?;
        self.check_absent(parent, name).await?;
        let path = self.table().child_path(parent, name);
        let marker = self.dir_prefix(&path);
        let attr = self.new_attr(FileKind::Directory, mode, uid, gid, 0);
        let params = PutObjectParams {
            metadata: to_metadata(&attr),
            content_type: Some(DIR_CONTENT_TYPE.into()),
            condition: None,
        };
        let put = self
            .client
            .put_object(&marker, Bytes::new(), &params)
            .await
            .map_err(|e| FsError::client("put", &marker, e))?;
        let now = Instant::now();
        let mut table = self.table();
        let ino = table.insert(
            parent,
            name,
            attr.clone(),
            Remote::Object { etag: put.etag },
            Some(now),
            true,
        );
        if let Some(i) = table.get_mut(ino) {
            i.lookups = 1;
            // It was absent a moment ago, so it is empty.
            i.complete = Some(now);
        }
        Ok((ino, attr))
    }

    /// Whether directory `ino` (at `path`) has any entry, here or remote.
    pub(crate) async fn dir_has_entries(&self, ino: u64, path: &str) -> FsResult<bool> {
        let local = {
            let table = self.table();
            table.children.get(&ino).is_some_and(|c| {
                c.values()
                    .any(|k| table.get(*k).is_some_and(|i| self.is_local(i)))
            })
        };
        if local {
            return Ok(true);
        }
        let prefix = self.dir_prefix(path);
        let params = ListObjectsParams {
            prefix: prefix.clone(),
            delimiter: Some("/".into()),
            max_keys: Some(2),
            ..Default::default()
        };
        let page = self
            .client
            .list_objects(&params)
            .await
            .map_err(|e| FsError::client("list", &prefix, e))?;
        Ok(!page.common_prefixes.is_empty() || page.objects.iter().any(|o| o.key != prefix))
    }

    /// rmdir(2).
    pub async fn rmdir(&self, parent: u64, name: &str) -> FsResult<()> {
        self.check_writable()?;
        let (ino, attr) = self.resolve(parent, name).await?;
        if attr.kind != FileKind::Directory {
            return Err(FsError::NotDir);
        }
        let path = self.table().child_path(parent, name);
        if self.dir_has_entries(ino, &path).await? {
            return Err(FsError::NotEmpty);
        }
        let marker = self.dir_prefix(&path);
        self.client
            .delete_object(&marker)
            .await
            .map_err(|e| FsError::client("delete", &marker, e))?;
        self.table().detach(parent, name);
        Ok(())
    }

    /// unlink(2) of a file or symlink. Open handles keep reading what they
    /// had staged or cached; their later writes are not uploaded.
    pub async fn unlink(&self, parent: u64, name: &str) -> FsResult<()> {
        self.check_writable()?;
        let (ino, attr) = self.resolve(parent, name).await?;
        if attr.kind == FileKind::Directory {
            return Err(FsError::IsDir);
        }
        let (path, remote, slot) = {
            let table = self.table();
            let i = table.get(ino).ok_or(FsError::Stale)?;
            (i.path.clone(), i.remote.clone(), i.write.clone())
        };
        if let Some(slot) = &slot {
            // Hold the write lock so an upload in progress finishes first
            // and no later one recreates the object.
            let mut state = slot.state.lock().await;
            if let Some(stream) = state.stream.take() {
                stream.abort(&*self.client).await;
            }
            slot.dirty.store(false, Ordering::Release);
            self.table().detach(parent, name);
        }
        if remote != Remote::Local {
            let key = self.key(&path);
            self.client
                .delete_object(&key)
                .await
                .map_err(|e| FsError::client("delete", &key, e))?;
        }
        self.table().detach(parent, name);
        self.pending().remove(&ino);
        Ok(())
    }

    /// symlink(2): an object whose body is the target.
    pub async fn symlink(
        &self,
        parent: u64,
        name: &str,
        target: &str,
        uid: u32,
        gid: u32,
    ) -> FsResult<(u64, Attr)> {
        self.check_writable()?;
        check_name(name)?;
        self.check_absent(parent, name).await?;
        let path = self.table().child_path(parent, name);
        let key = self.key(&path);
        let attr = self.new_attr(FileKind::Symlink, 0o777, uid, gid, target.len() as u64);
        let params = PutObjectParams {
            metadata: to_metadata(&attr),
            content_type: None,
            condition: None,
        };
        let put = self
            .client
            .put_object(&key, Bytes::from(target.to_string()), &params)
            .await
            .map_err(|e| FsError::client("put", &key, e))?;
        let mut table = self.table();
        let ino = table.insert(
            parent,
            name,
            attr.clone(),
            Remote::Object { etag: put.etag },
            Some(Instant::now()),
            true,
        );
        if let Some(i) = table.get_mut(ino) {
            i.lookups = 1;
            i.target = Some(target.to_string());
        }
        Ok((ino, attr))
    }

    /// readlink(2).
    pub async fn readlink(&self, ino: u64) -> FsResult<String> {
        let path = {
            let table = self.table();
            let i = table.get(ino).ok_or(FsError::Stale)?;
            if i.attr.kind != FileKind::Symlink {
                return Err(FsError::InvalidArgument {
                    reason: "not a symlink",
                });
            }
            if let Some(t) = &i.target {
                return Ok(t.clone());
            }
            i.path.clone()
        };
        let key = self.key(&path);
        let got = self
            .client
            .get_object(&key, &GetObjectParams::default())
            .await
            .map_err(|e| FsError::client("get", &key, e))?;
        let target = String::from_utf8_lossy(&got.body).into_owned();
        if let Some(i) = self.table().get_mut(ino) {
            i.target = Some(target.clone());
        }
        Ok(target)
    }

    /// statfs(2).
    pub fn statfs(&self) -> StatFs {
        StatFs {
            blocks: 1 << 40,
            bfree: 1 << 40,
            bavail: 1 << 40,
            files: 1 << 32,
            ffree: 1 << 32,
            bsize: 4096,
            namelen: 255,
        }
    }
}

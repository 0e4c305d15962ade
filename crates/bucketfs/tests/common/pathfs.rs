//! `PathFs`: the filesystem core driven by paths (no FUSE), for the
//! reference-model, fault and semantics tests. Every call opens and closes
//! like a program would; errors come back as errnos.

use std::sync::Arc;
use std::time::Duration;

use bucketfs::client::ObjectClient;
use bucketfs::fs::{
    Attr, AttrDefaults, FileKind, Filesystem, FsConfig, FsError, SetAttr, ROOT_INO,
};

/// Result with an errno.
pub type Errno<T> = Result<T, i32>;

fn e(err: FsError) -> i32 {
    err.errno()
}

/// A filesystem plus its staging directory.
pub struct PathFs<C: ObjectClient> {
    pub fs: Arc<Filesystem<C>>,
    _staging: tempfile::TempDir,
}

/// Config used by tests: TTL 0 (every op sees other clients at once).
pub fn test_config(staging: &std::path::Path) -> FsConfig {
    let defaults = AttrDefaults {
        uid: 1000,
        gid: 1000,
        file_perm: 0o644,
        dir_perm: 0o755,
    };
    let mut c = FsConfig::new(staging.to_path_buf(), defaults);
    c.metadata_ttl = Some(Duration::ZERO);
    c.retry_interval = Duration::from_millis(10);
    c
}

impl<C: ObjectClient> PathFs<C> {
    /// A filesystem over `client` with `test_config`, adjusted by `tweak`.
    pub fn new(client: C, tweak: impl FnOnce(&mut FsConfig)) -> Self {
        let staging = tempfile::tempdir().expect("staging");
        let mut config = test_config(staging.path());
        tweak(&mut config);
        let fs = Arc::new(Filesystem::new(client, config).expect("filesystem"));
        Self {
            fs,
            _staging: staging,
        }
    }

    /// Resolve a path to an inode.
    pub async fn resolve(&self, path: &str) -> Errno<(u64, Attr)> {
        let mut ino = ROOT_INO;
        let mut attr = self.fs.getattr(ROOT_INO).await.map_err(e)?;
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let (i, a) = self.fs.lookup(ino, part).await.map_err(e)?;
            ino = i;
            attr = a;
        }
        Ok((ino, attr))
    }

    /// (parent inode, last name).
    pub async fn parent(&self, path: &str) -> Errno<(u64, String)> {
        let (dir, name) = match path.rsplit_once('/') {
            Some((d, n)) => (d, n),
            None => ("", path),
        };
        let (ino, attr) = self.resolve(dir).await?;
        if attr.kind != FileKind::Directory {
            return Err(libc::ENOTDIR);
        }
        Ok((ino, name.to_string()))
    }

    /// Open (creating if `create`) with `flags`, returning (ino, fh).
    pub async fn open(&self, path: &str, flags: i32) -> Errno<(u64, u64)> {
        let (parent, name) = self.parent(path).await?;
        if flags & libc::O_CREAT != 0 {
            let (ino, _, r) = self
                .fs
                .create(parent, &name, 0o644, 1000, 1000, flags)
                .await
                .map_err(e)?;
            return Ok((ino, r.fh));
        }
        let (ino, _) = self.fs.lookup(parent, &name).await.map_err(e)?;
        let r = self.fs.open(ino, flags).await.map_err(e)?;
        Ok((ino, r.fh))
    }

    /// Close: flush then release; the flush error is what close(2) returns.
    pub async fn close(&self, fh: u64) -> Errno<()> {
        let flushed = self.fs.flush(fh).await.map_err(e);
        let released = self.fs.release(fh).await.map_err(e);
        flushed.and(released)
    }

    /// open(O_CREAT|O_WRONLY), pwrite at `offset`, close.
    pub async fn write_at(&self, path: &str, offset: u64, data: &[u8]) -> Errno<()> {
        let (_, fh) = self.open(path, libc::O_CREAT | libc::O_WRONLY).await?;
        let w = self.fs.write(fh, offset, data).await.map_err(e).map(|_| ());
        let c = self.close(fh).await;
        w.and(c)
    }

    /// Write a whole new file (O_TRUNC).
    pub async fn write_file(&self, path: &str, data: &[u8]) -> Errno<()> {
        let (_, fh) = self
            .open(path, libc::O_CREAT | libc::O_WRONLY | libc::O_TRUNC)
            .await?;
        let w = self.fs.write(fh, 0, data).await.map_err(e).map(|_| ());
        let c = self.close(fh).await;
        w.and(c)
    }

    /// Read a whole file.
    pub async fn read_file(&self, path: &str) -> Errno<Vec<u8>> {
        let (_, fh) = self.open(path, libc::O_RDONLY).await?;
        let mut out = Vec::new();
        let result = loop {
            match self.fs.read(fh, out.len() as u64, 128 * 1024).await {
                Ok(b) if b.is_empty() => break Ok(()),
                Ok(b) => out.extend_from_slice(&b),
                Err(err) => break Err(e(err)),
            }
        };
        self.fs.release(fh).await.map_err(e)?;
        result.map(|()| out)
    }

    /// truncate(2).
    pub async fn truncate(&self, path: &str, len: u64) -> Errno<()> {
        let (ino, _) = self.resolve(path).await?;
        let set = SetAttr {
            size: Some(len),
            ..Default::default()
        };
        self.fs.setattr(ino, set).await.map(|_| ()).map_err(e)
    }

    pub async fn mkdir(&self, path: &str) -> Errno<()> {
        let (p, n) = self.parent(path).await?;
        self.fs
            .mkdir(p, &n, 0o755, 1000, 1000)
            .await
            .map(|_| ())
            .map_err(e)
    }

    pub async fn rmdir(&self, path: &str) -> Errno<()> {
        let (p, n) = self.parent(path).await?;
        self.fs.rmdir(p, &n).await.map_err(e)
    }

    pub async fn unlink(&self, path: &str) -> Errno<()> {
        let (p, n) = self.parent(path).await?;
        self.fs.unlink(p, &n).await.map_err(e)
    }

    pub async fn symlink(&self, path: &str, target: &str) -> Errno<()> {
        let (p, n) = self.parent(path).await?;
        self.fs
            .symlink(p, &n, target, 1000, 1000)
            .await
            .map(|_| ())
            .map_err(e)
    }

    pub async fn readlink(&self, path: &str) -> Errno<String> {
        let (ino, _) = self.resolve(path).await?;
        self.fs.readlink(ino).await.map_err(e)
    }

    pub async fn rename(&self, from: &str, to: &str) -> Errno<()> {
        let (p, n) = self.parent(from).await?;
        let (np, nn) = self.parent(to).await?;
        self.fs.rename(p, &n, np, &nn, 0).await.map_err(e)
    }

    /// Sorted names in a directory with their kinds.
    pub async fn list(&self, path: &str) -> Errno<Vec<(String, FileKind)>> {
        let (ino, _) = self.resolve(path).await?;
        let mut v: Vec<_> = self
            .fs
            .readdir(ino)
            .await
            .map_err(e)?
            .into_iter()
            .map(|d| (d.name, d.attr.kind))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(v)
    }

    /// Flush everything (as at unmount); panics if anything fails.
    pub async fn shutdown(&self) {
        let failed = self.fs.shutdown().await;
        assert!(failed.is_empty(), "uploads failed at shutdown: {failed:?}");
    }
}

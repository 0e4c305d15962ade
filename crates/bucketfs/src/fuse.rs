//! The FUSE adapter: converts `fuser` requests into calls on
//! [`Filesystem`] and its results into replies. No filesystem logic lives
//! here. A request answered from memory replies at once on the FUSE thread;
//! one that must wait becomes a tokio task that replies when done, so slow
//! requests (an upload on close) never block others.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fuser::{
    BackgroundSession, Config, Errno, FileAttr, FileHandle, FileType, FopenFlags, Generation,
    INodeNo, InitFlags, KernelConfig, LockOwner, MountOption, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen,
    ReplyStatfs, ReplyWrite, Request, SessionACL, TimeOrNow, WriteFlags,
};
use tokio::runtime::Handle;

use crate::client::ObjectClient;
use crate::fs::{Attr, DirEntry, FileKind, Filesystem, FsError, OpenReply, SetAttr, WriteNow};

/// How to mount.
#[derive(Debug, Clone, Default)]
pub struct MountOptions {
    /// Shown as the mount's source (e.g. the bucket name).
    pub fs_name: String,
    /// Let other users access the mount (needs `user_allow_other` for
    /// non-root).
    pub allow_other: bool,
    /// Mount read-only (the filesystem also refuses changes with EROFS).
    pub read_only: bool,
}

/// The `fuser::Filesystem` over our filesystem.
pub struct FuseAdapter<C: ObjectClient> {
    fs: Arc<Filesystem<C>>,
    rt: Handle,
    /// Directory snapshots by handle: taken at offset 0, so paging through
    /// a directory with later offsets is consistent.
    dirs: Arc<Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>>,
    next_dir: AtomicU64,
}

impl<C: ObjectClient> FuseAdapter<C> {
    /// Run one request: polled once right here on the FUSE thread, so an
    /// answer from the caches costs no thread hand-off; if it has to wait
    /// (a request to the bucket, a lock), it moves to the runtime and
    /// replies from there. Polling a future once with a no-op waker and then
    /// handing it to the runtime is allowed: the runtime polls it again with
    /// its own waker straight away.
    fn run(&self, request: impl Future<Output = ()> + Send + 'static) {
        let _context = self.rt.enter();
        let mut request = Box::pin(request);
        let waker = futures::task::noop_waker();
        let mut cx = std::task::Context::from_waker(&waker);
        if request.as_mut().poll(&mut cx).is_pending() {
            self.rt.spawn(request);
        }
    }

    /// An adapter running requests on `rt`.
    pub fn new(fs: Arc<Filesystem<C>>, rt: Handle) -> Self {
        Self {
            fs,
            rt,
            dirs: Arc::default(),
            next_dir: AtomicU64::new(1),
        }
    }
}

/// Mount `fs` on `mountpoint` in a background thread.
pub fn spawn_mount<C: ObjectClient>(
    fs: Arc<Filesystem<C>>,
    rt: Handle,
    mountpoint: &Path,
    options: &MountOptions,
) -> io::Result<BackgroundSession> {
    let mut mount_options = vec![
        MountOption::FSName(options.fs_name.clone()),
        MountOption::Subtype("bucketfs".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if options.read_only {
        mount_options.push(MountOption::RO);
    }
    let mut config = Config::default();
    config.mount_options = mount_options;
    config.acl = if options.allow_other {
        SessionACL::All
    } else {
        SessionACL::Owner
    };
    let session = fuser::Session::new(FuseAdapter::new(fs, rt), mountpoint, &config)?;
    session.spawn()
}

fn errno(e: &FsError) -> Errno {
    if matches!(
        e,
        FsError::UploadFailed { .. } | FsError::Client { .. } | FsError::Conflict { .. }
    ) {
        tracing::warn!(error = %e, "request failed");
    }
    Errno::from_i32(e.errno())
}

fn file_type(kind: FileKind) -> FileType {
    match kind {
        FileKind::File => FileType::RegularFile,
        FileKind::Directory => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
    }
}

fn to_attr(ino: u64, a: &Attr) -> FileAttr {
    FileAttr {
        ino: INodeNo(ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        crtime: a.mtime,
        kind: file_type(a.kind),
        perm: (a.perm & 0o7777) as u16,
        nlink: if a.kind == FileKind::Directory { 2 } else { 1 },
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        // Large blocks make cp and friends use large buffers.
        blksize: 128 * 1024,
        flags: 0,
    }
}

fn name_str(name: &OsStr) -> Result<String, Errno> {
    name.to_str().map(str::to_string).ok_or(Errno::EINVAL)
}

/// How the kernel caches an open file. A write-only handle bypasses the
/// page cache (FOPEN_DIRECT_IO): nothing can read through it, and a
/// buffered write would copy every byte into page-cache pages the kernel
/// keeps only to hand them straight to us; with direct I/O the kernel
/// hands us the writer's own pages. A write-only descriptor cannot be
/// mmapped (mmap needs read access), so shared mmap writes are unaffected.
fn open_flags(r: &OpenReply, flags: i32) -> FopenFlags {
    let mut f = FopenFlags::empty();
    if r.keep_cache {
        f |= FopenFlags::FOPEN_KEEP_CACHE;
    }
    if flags & libc::O_ACCMODE == libc::O_WRONLY {
        f |= FopenFlags::FOPEN_DIRECT_IO;
    }
    f
}

fn time(t: TimeOrNow) -> SystemTime {
    match t {
        TimeOrNow::SpecificTime(t) => t,
        TimeOrNow::Now => SystemTime::now(),
    }
}

macro_rules! name_or_reply {
    ($name:expr, $reply:expr) => {
        match name_str($name) {
            Ok(n) => n,
            Err(e) => return $reply.error(e),
        }
    };
}

impl<C: ObjectClient> fuser::Filesystem for FuseAdapter<C> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        let wanted = InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_ATOMIC_O_TRUNC
            | InitFlags::FUSE_PARALLEL_DIROPS;
        if let Err(missing) = config.add_capabilities(wanted) {
            tracing::debug!(?missing, "kernel lacks some FUSE capabilities");
        }
        if let Err(max) = config.set_max_readahead(4 << 20) {
            let _ = config.set_max_readahead(max);
        }
        if let Err(max) = config.set_max_write(1 << 20) {
            let _ = config.set_max_write(max);
        }
        let _ = config.set_max_background(64);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name_or_reply!(name, reply);
        let fs = Arc::clone(&self.fs);
        self.run(async move {
            match fs.lookup(parent.0, &name).await {
                Ok((ino, attr)) => {
                    reply.entry(&fs.kernel_ttl(), &to_attr(ino, &attr), Generation(0))
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.fs.forget(ino.0, nlookup);
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let fs = Arc::clone(&self.fs);
        self.run(async move {
            match fs.getattr(ino.0).await {
                Ok(attr) => reply.attr(&fs.kernel_ttl(), &to_attr(ino.0, &attr)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let set = SetAttr {
            mode,
            uid,
            gid,
            size,
            atime: atime.map(time),
            mtime: mtime.map(time),
            fh: fh.map(|f| f.0),
        };
        let fs = Arc::clone(&self.fs);
        self.run(async move {
            match fs.setattr(ino.0, set).await {
                Ok(attr) => reply.attr(&fs.kernel_ttl(), &to_attr(ino.0, &attr)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let fs = Arc::clone(&self.fs);
        self.run(async move {
            match fs.readlink(ino.0).await {
                Ok(t) => reply.data(t.as_bytes()),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let name = name_or_reply!(name, reply);
        let (uid, gid) = (req.uid(), req.gid());
        let fs = Arc::clone(&self.fs);
        self.run(async move {
            match fs.mkdir(parent.0, &name, mode & !umask, uid, gid).await {
                Ok((ino, attr)) => {
                    reply.entry(&fs.kernel_ttl(), &to_attr(ino, &attr), Generation(0))
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name_or_reply!(name, reply);
        let fs = Arc::clone(&self.fs);
        self.run(async move {
            match fs.unlink(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name_or_reply!(name, reply);
        let fs = Arc::clone(&self.fs);
        self.run(async move {
            match fs.rmdir(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let name = name_or_reply!(link_name, reply);
        let target = name_or_reply!(target.as_os_str(), reply);
        let (uid, gid) = (req.uid(), req.gid());
        let fs = Arc::clone(&self.fs);
        self.run(async move {
            match fs.symlink(parent.0, &name, &target, uid, gid).await {
                Ok((ino, attr)) => {
                    reply.entry(&fs.kernel_ttl(), &to_attr(ino, &attr), Generation(0))
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let name = name_or_reply!(name, reply);
        let newname = name_or_reply!(newname, reply);
        let fs = Arc::clone(&self.fs);
        self.run(async move {
            match fs
                .rename(parent.0, &name, newparent.0, &newname, flags.bits())
                .await
            {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let fs = Arc::clone(&self.fs);
        self.run(async move {
            match fs.open(ino.0, flags.0).await {
                Ok(r) => reply.opened(FileHandle(r.fh), open_flags(&r, flags.0)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let fs = Arc::clone(&self.fs);
        self.run(async move {
            match fs.read(fh.0, offset, size).await {
                Ok(data) => reply.data(&data),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // Most writes are staged right here from fuser's buffer; only one
        // that has to wait is copied and becomes a task. (Copying the 1 in
        // 8 writes that complete a block cost ~10 % of the daemon's CPU in
        // a sequential write: a fresh 1 MiB buffer is page faults and an
        // munmap each time.)
        match self.fs.try_write_now(fh.0, offset, data) {
            WriteNow::Done(Ok(n)) => return reply.written(n),
            WriteNow::Done(Err(e)) => return reply.error(errno(&e)),
            WriteNow::Staged(n) => {
                let fs = Arc::clone(&self.fs);
                return self.run(async move {
                    fs.stream_completed(fh.0).await;
                    reply.written(n)
                });
            }
            WriteNow::Wait => {}
        }
        let data = data.to_vec();
        let fs = Arc::clone(&self.fs);
        self.run(async move {
            match fs.write(fh.0, offset, &data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        let fs = Arc::clone(&self.fs);
        self.run(async move {
            match fs.flush(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let fs = Arc::clone(&self.fs);
        self.run(async move {
            match fs.release(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let fs = Arc::clone(&self.fs);
        self.run(async move {
            match fs.fsync(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.fs.table_kind(ino.0) {
            Some(FileKind::Directory) => {
                let fh = self.next_dir.fetch_add(1, Ordering::Relaxed);
                reply.opened(FileHandle(fh), FopenFlags::empty());
            }
            Some(_) => reply.error(Errno::ENOTDIR),
            None => reply.error(Errno::ESTALE),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let fs = Arc::clone(&self.fs);
        let dirs = Arc::clone(&self.dirs);
        self.run(async move {
            let entries = match snapshot(&fs, &dirs, ino.0, fh.0, offset).await {
                Ok(e) => e,
                Err(e) => return reply.error(errno(&e)),
            };
            let parent = fs.parent_of(ino.0);
            let dots = [(ino.0, "."), (parent, "..")]
                .into_iter()
                .map(|(i, n)| (i, n, FileKind::Directory));
            let all = dots.chain(
                entries
                    .iter()
                    .map(|e| (e.ino, e.name.as_str(), e.attr.kind)),
            );
            for (i, (eino, name, kind)) in all.enumerate().skip(offset as usize) {
                if reply.add(INodeNo(eino), i as u64 + 1, file_type(kind), name) {
                    break;
                }
            }
            reply.ok();
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let fs = Arc::clone(&self.fs);
        let dirs = Arc::clone(&self.dirs);
        self.run(async move {
            let entries = match snapshot(&fs, &dirs, ino.0, fh.0, offset).await {
                Ok(e) => e,
                Err(e) => return reply.error(errno(&e)),
            };
            let ttl = fs.kernel_ttl();
            let dots = dot_entries(&fs, ino.0, fs.getattr_cached(ino.0));
            let all = dots.iter().chain(entries.iter());
            for (i, e) in all.enumerate().skip(offset as usize) {
                let full = reply.add(
                    INodeNo(e.ino),
                    i as u64 + 1,
                    &e.name,
                    &ttl,
                    &to_attr(e.ino, &e.attr),
                    Generation(0),
                );
                if full {
                    break;
                }
                if e.name != "." && e.name != ".." {
                    // The kernel now holds a reference to this inode.
                    fs.remember(e.ino);
                }
            }
            reply.ok();
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let s = self.fs.statfs();
        reply.statfs(
            s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.bsize, s.namelen, s.bsize,
        );
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        // Object storage has no hard links (SEMANTICS.md).
        reply.error(Errno::EPERM);
    }

    fn mknod(
        &self,
        _req: &Request,
        _parent: INodeNo,
        _name: &OsStr,
        _mode: u32,
        _umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        // Regular files come through `create`; devices, FIFOs and sockets
        // cannot be stored (SEMANTICS.md).
        reply.error(Errno::EPERM);
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Directory operations reach the bucket before they return.
        reply.ok();
    }

    // Extended attributes: ENOSYS makes the kernel answer EOPNOTSUPP itself
    // from then on, without asking us for every file `ls -l` touches.
    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: fuser::ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let name = name_or_reply!(name, reply);
        let (uid, gid) = (req.uid(), req.gid());
        let fs = Arc::clone(&self.fs);
        self.run(async move {
            match fs
                .create(parent.0, &name, mode & !umask, uid, gid, flags)
                .await
            {
                Ok((ino, attr, r)) => reply.created(
                    &fs.kernel_ttl(),
                    &to_attr(ino, &attr),
                    Generation(0),
                    FileHandle(r.fh),
                    open_flags(&r, flags),
                ),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }
}

/// The directory's entries, listed at offset 0 and kept for later offsets
/// (shared, not copied, between the calls that page through them).
async fn snapshot<C: ObjectClient>(
    fs: &Filesystem<C>,
    dirs: &Mutex<HashMap<u64, Arc<Vec<DirEntry>>>>,
    ino: u64,
    fh: u64,
    offset: u64,
) -> Result<Arc<Vec<DirEntry>>, FsError> {
    let cached = dirs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&fh)
        .cloned();
    match cached {
        Some(e) if offset > 0 => Ok(e),
        _ => {
            let e = Arc::new(fs.readdir(ino).await?);
            dirs.lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(fh, Arc::clone(&e));
            Ok(e)
        }
    }
}

fn dot_entries<C: ObjectClient>(fs: &Filesystem<C>, ino: u64, attr: Option<Attr>) -> Vec<DirEntry> {
    let Some(attr) = attr else {
        return Vec::new();
    };
    let parent = fs.parent_of(ino);
    let parent_attr = fs.getattr_cached(parent).unwrap_or_else(|| attr.clone());
    vec![
        DirEntry {
            ino,
            name: ".".into(),
            attr,
        },
        DirEntry {
            ino: parent,
            name: "..".into(),
            attr: parent_attr,
        },
    ]
}

/// How long `cove mount` waits between checks that the session still runs.
pub const SESSION_POLL: Duration = Duration::from_millis(200);

//! Mounts made inside a running sandbox's mount namespace from the host: the
//! live half of disk attachments (the other half is a bind declared in the
//! OCI config at create).
//!
//! How a host mount gets in: `open_tree(OPEN_TREE_CLONE)` on the host gives a
//! detached copy of the host mount (a bucketfs FUSE mount) as a file
//! descriptor; a child process then joins the sandbox's mount namespace with
//! `setns` (which also moves its root and cwd to the sandbox's root), walks
//! to the target one component at a time with `openat2(RESOLVE_NO_SYMLINKS)`
//! (creating missing directories owned by the sandbox's root), and attaches
//! the copy there with `move_mount`. The host never resolves a path inside
//! the sandbox with its own root: every lookup happens after `setns`, relative
//! to the sandbox's root, and a symlink anywhere on the path is refused, so a
//! link planted by the sandbox can neither redirect the mount nor reach a
//! host path. (This is the mount injection LXD uses for disk hotplug.)
//!
//! `setns(CLONE_NEWNS)` is refused to a multi-threaded process, hence the
//! child: `Command::pre_exec` runs the steps between fork and exec, where
//! only system calls on memory prepared before the fork are allowed (no
//! allocation). The child then execs `/bin/true`; an error from a step comes
//! back as the spawn error.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};
use rustix::mount::{MoveMountFlags, OpenTreeFlags, UnmountFlags};
use rustix::thread::LinkNameSpaceType;

/// What the child needs, prepared before the fork.
struct Target {
    /// The whole path (for unmounting).
    full: CString,
    /// Its components, walked one by one.
    parts: Vec<CString>,
}

impl Target {
    fn new(path: &str) -> io::Result<Self> {
        let invalid = || io::Error::new(io::ErrorKind::InvalidInput, "mount path contains NUL");
        let parts = path
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .map(|p| {
                if p == ".." {
                    Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        "mount path contains '..'",
                    ))
                } else {
                    CString::new(p).map_err(|_| invalid())
                }
            })
            .collect::<io::Result<Vec<_>>>()?;
        if parts.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "mount path is the root",
            ));
        }
        Ok(Self {
            full: CString::new(path).map_err(|_| invalid())?,
            parts,
        })
    }
}

/// Attaches a copy of the host mount at `source` at `target` inside the
/// mount namespace of process `pid`, creating missing directories owned by
/// `owner`. With `replace`, whatever is mounted exactly at `target` is
/// detached first (a dead mount of a previous server process).
pub fn inject(
    pid: u32,
    source: &Path,
    target: &str,
    owner: (u32, u32),
    replace: bool,
) -> io::Result<()> {
    let target = Target::new(target)?;
    let tree = rustix::mount::open_tree(
        CWD,
        source,
        OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC,
    )?;
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))?;
    let (ns_fd, tree_fd) = (ns.as_raw_fd(), tree.as_raw_fd());
    run_in_child(move || {
        // SAFETY: both fds are open in the parent (held across `status()`)
        // and so in the forked child.
        let (ns, tree) = unsafe {
            (
                BorrowedFd::borrow_raw(ns_fd),
                BorrowedFd::borrow_raw(tree_fd),
            )
        };
        enter(ns)?;
        if replace {
            detach_at(&target.full)?;
        }
        let dir = walk(&target.parts, owner)?;
        rustix::mount::move_mount(
            tree,
            c"",
            dir.as_fd(),
            c"",
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )?;
        Ok(())
    })
}

/// Detaches (lazily) the mount at `target` inside the mount namespace of
/// `pid`. Files still open on it keep working until closed. Not a mount
/// point (or already gone) is success.
pub fn eject(pid: u32, target: &str) -> io::Result<()> {
    let target = Target::new(target)?;
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))?;
    let ns_fd = ns.as_raw_fd();
    run_in_child(move || {
        // SAFETY: the fd is open in the parent and so in the forked child.
        enter(unsafe { BorrowedFd::borrow_raw(ns_fd) })?;
        detach_at(&target.full)
    })
}

fn enter(ns: BorrowedFd<'_>) -> io::Result<()> {
    rustix::thread::move_into_link_name_space(ns, Some(LinkNameSpaceType::Mount))?;
    Ok(())
}

/// `umount2(MNT_DETACH | UMOUNT_NOFOLLOW)`; EINVAL (not a mount point) and
/// ENOENT count as done.
fn detach_at(path: &CString) -> io::Result<()> {
    match rustix::mount::unmount(
        path.as_c_str(),
        UnmountFlags::DETACH | UnmountFlags::NOFOLLOW,
    ) {
        Ok(()) | Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Opens the target directory from the (sandbox's) root, component by
/// component, refusing symlinks and creating what is missing.
fn walk(parts: &[CString], (uid, gid): (u32, u32)) -> io::Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let resolve = ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS | ResolveFlags::BENEATH;
    let mut dir = rustix::fs::openat2(CWD, c"/", flags, Mode::empty(), ResolveFlags::empty())?;
    for part in parts {
        let open =
            |d: &OwnedFd| rustix::fs::openat2(d, part.as_c_str(), flags, Mode::empty(), resolve);
        let next = match open(&dir) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                match rustix::fs::mkdirat(&dir, part.as_c_str(), Mode::from_raw_mode(0o755)) {
                    Ok(()) => rustix::fs::chownat(
                        &dir,
                        part.as_c_str(),
                        Some(rustix::fs::Uid::from_raw(uid)),
                        Some(rustix::fs::Gid::from_raw(gid)),
                        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
                    )?,
                    // Made by someone else meanwhile: open what is there.
                    Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                open(&dir)?
            }
            Err(e) => return Err(e.into()),
        };
        dir = next;
    }
    Ok(dir)
}

/// Forks a child that runs `step` and then execs `/bin/true`; returns the
/// step's error, if any.
fn run_in_child(step: impl Fn() -> io::Result<()> + Send + Sync + 'static) -> io::Result<()> {
    let mut cmd = Command::new("/bin/true");
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: `step` only makes system calls on memory prepared before the
    // fork (CStrings, fds, a Vec it reads); it allocates nothing and takes
    // no lock, as required between fork and exec.
    unsafe { cmd.pre_exec(step) };
    let status = cmd.status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!("/bin/true exited with {status}")))
    }
}

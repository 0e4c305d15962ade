//! Path resolution inside the sandbox root. Nothing here ever resolves a
//! path from the process's own root or cwd: every lookup is an `openat2`
//! relative to the root fd with `RESOLVE_IN_ROOT` (`..` and absolute
//! symlinks are clamped to the root) and `RESOLVE_NO_MAGICLINKS`
//! (`/proc/<pid>/root`, `/proc/self/fd/N` are refused).

use std::os::fd::OwnedFd;
use std::path::Path;

use cove_api::agent::AgentErrorCode;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// The sandbox root, as an `O_PATH` directory fd.
pub struct Root {
    fd: OwnedFd,
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl Root {
    /// Opens the root directory (`/` inside a sandbox).
    pub fn open(path: &Path) -> std::io::Result<Root> {
        let fd = rustix::fs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Root { fd })
    }

    /// Opens `path` (absolute, in sandbox terms) inside the root.
    pub fn open_at(&self, path: &str, flags: OFlags, mode: Mode) -> Result<OwnedFd, Errno> {
        let rel = relative(path);
        // EAGAIN: a concurrent rename raced the lookup (kernel asks to retry).
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(&self.fd, rel, flags | OFlags::CLOEXEC, mode, RESOLVE) {
                Err(Errno::AGAIN) if tries < 8 => tries += 1,
                r => return r,
            }
        }
    }

    /// Creates every missing directory above `path`, each looked up from the root.
    pub fn create_parents(&self, path: &str) -> Result<(), Errno> {
        let comps: Vec<&str> = relative(path)
            .split('/')
            .filter(|c| !c.is_empty())
            .collect();
        if comps.len() < 2 {
            return Ok(());
        }
        for i in 0..comps.len() - 1 {
            let parent = comps[..i].join("/");
            let dir = self.open_at(
                if parent.is_empty() { "." } else { &parent },
                OFlags::PATH | OFlags::DIRECTORY,
                Mode::empty(),
            )?;
            match rustix::fs::mkdirat(&dir, comps[i], Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The path relative to the root (`"."` for the root itself).
fn relative(path: &str) -> &str {
    let rel = path.trim_start_matches('/');
    if rel.is_empty() {
        "."
    } else {
        rel
    }
}

/// Maps an errno of a files call to the protocol's error code.
pub fn errno_code(e: Errno) -> AgentErrorCode {
    match e {
        Errno::NOENT | Errno::NOTDIR => AgentErrorCode::NotFound,
        Errno::ISDIR => AgentErrorCode::IsDirectory,
        Errno::NOSPC | Errno::DQUOT | Errno::FBIG => AgentErrorCode::NoSpace,
        Errno::XDEV | Errno::LOOP | Errno::NAMETOOLONG | Errno::INVAL | Errno::NXIO => {
            AgentErrorCode::InvalidPath
        }
        Errno::ACCESS | Errno::PERM | Errno::ROFS | Errno::TXTBSY | Errno::BUSY => {
            AgentErrorCode::Denied
        }
        _ => AgentErrorCode::Io,
    }
}

/// Maps a std I/O error (from reads and writes) the same way.
pub fn io_code(e: &std::io::Error) -> AgentErrorCode {
    match e.raw_os_error() {
        Some(n) => errno_code(Errno::from_raw_os_error(n)),
        None => AgentErrorCode::Io,
    }
}

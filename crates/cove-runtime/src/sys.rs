//! `Sys`: the system calls and external commands of the runc backend
//! (`runc …`, `mkfs.ext4`, mounts, loop devices, chown), passed into every
//! operation so a unit test can record what an operation would do (model:
//! youki's `Syscall` / `TestHelperSyscall`). Plain file writes inside the
//! runtime's own state dir are not behind it.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The output of a command run to completion.
#[derive(Clone, Debug, Default)]
pub struct CmdOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CmdOutput {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// System calls and commands used by the runc backend.
pub trait Sys: Send + Sync {
    /// Runs a command to completion with stdin closed, capturing its output.
    fn run(&self, program: &Path, args: &[OsString]) -> std::io::Result<CmdOutput>;
    /// Runs a command whose descendants outlive it (`runc run -d`, `runc
    /// restore -d`). Every stdio is a fresh pipe, because CRIU can only
    /// checkpoint a container whose stdio are pipes (a host file or
    /// `/dev/null` lies outside the container's mount namespace). This
    /// process holds the other ends only until the command exits, then
    /// reads what is buffered (runc's error message) without blocking and
    /// closes them: the container is left with pipes nobody else holds (its
    /// reads see EOF, its writes EPIPE), so it depends on no process of
    /// ours and survives a `kill -9` of the server.
    fn run_detached(&self, program: &Path, args: &[OsString]) -> std::io::Result<CmdOutput>;
    /// `syncfs(2)` on the filesystem holding `path` (before a disk image is
    /// copied or unmounted, so the file holds every write).
    fn sync_fs(&self, path: &Path) -> std::io::Result<()>;
    /// Re-reads the size of the backing file of loop device `dev`
    /// (`LOOP_SET_CAPACITY`), after the file was grown.
    fn loop_set_capacity(&self, dev: &Path) -> std::io::Result<()>;
    /// `mount(2)`.
    fn mount(&self, source: &str, target: &Path, fstype: &str, data: &str) -> std::io::Result<()>;
    /// `umount2(MNT_DETACH)`.
    fn umount(&self, target: &Path) -> std::io::Result<()>;
    /// Attaches `file` to a free loop device with autoclear (the device
    /// frees itself when its last user, the mount, goes away).
    /// Returns the device path and an fd keeping it alive until mounted.
    fn loop_attach(&self, file: &Path) -> std::io::Result<(PathBuf, Option<std::os::fd::OwnedFd>)>;
    /// `lchown(2)`.
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> std::io::Result<()>;
    /// Attaches a copy of the host mount `source` at `target` inside the
    /// mount namespace of `pid` (see `mount_ns.rs`); missing directories
    /// are created owned by `owner`; `replace` first detaches what is
    /// mounted exactly there.
    fn inject_mount(
        &self,
        pid: u32,
        source: &Path,
        target: &str,
        owner: (u32, u32),
        replace: bool,
    ) -> std::io::Result<()>;
    /// Lazily detaches the mount at `target` inside the mount namespace of
    /// `pid`; nothing mounted there is success.
    fn eject_mount(&self, pid: u32, target: &str) -> std::io::Result<()>;
    /// `kill(pid, SIGKILL)`; a process already gone is not an error.
    fn kill(&self, pid: u32) -> std::io::Result<()>;
}

/// The real implementation.
pub struct RealSys;

impl Sys for RealSys {
    fn inject_mount(
        &self,
        pid: u32,
        source: &Path,
        target: &str,
        owner: (u32, u32),
        replace: bool,
    ) -> std::io::Result<()> {
        crate::mount_ns::inject(pid, source, target, owner, replace)
    }

    fn eject_mount(&self, pid: u32, target: &str) -> std::io::Result<()> {
        crate::mount_ns::eject(pid, target)
    }

    fn run(&self, program: &Path, args: &[OsString]) -> std::io::Result<CmdOutput> {
        let out = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        Ok(CmdOutput {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    fn run_detached(&self, program: &Path, args: &[OsString]) -> std::io::Result<CmdOutput> {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        // Our ends stay open until the command exits: a Go program (runc)
        // killed by SIGPIPE on its stderr would lose its error message.
        let stdin = child.stdin.take();
        let status = child.wait()?;
        drop(stdin);
        // The container holds the write ends forever: read what is there now, never until EOF.
        let stdout = child
            .stdout
            .take()
            .map(drain_nonblocking)
            .unwrap_or_default();
        let stderr = child
            .stderr
            .take()
            .map(drain_nonblocking)
            .unwrap_or_default();
        Ok(CmdOutput {
            code: status.code().unwrap_or(-1),
            stdout,
            stderr,
        })
    }

    fn sync_fs(&self, path: &Path) -> std::io::Result<()> {
        let dir = rustix::fs::open(
            path,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )?;
        rustix::fs::syncfs(&dir)?;
        Ok(())
    }

    fn loop_set_capacity(&self, dev: &Path) -> std::io::Result<()> {
        crate::loopdev::set_capacity(dev)
    }

    fn mount(&self, source: &str, target: &Path, fstype: &str, data: &str) -> std::io::Result<()> {
        let data = std::ffi::CString::new(data).map_err(std::io::Error::other)?;
        rustix::mount::mount(
            source,
            target,
            fstype,
            rustix::mount::MountFlags::empty(),
            Some(data.as_c_str()),
        )?;
        Ok(())
    }

    fn umount(&self, target: &Path) -> std::io::Result<()> {
        rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH)?;
        Ok(())
    }

    fn loop_attach(&self, file: &Path) -> std::io::Result<(PathBuf, Option<std::os::fd::OwnedFd>)> {
        crate::loopdev::attach(file).map(|(p, fd)| (p, Some(fd)))
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))
    }

    fn kill(&self, pid: u32) -> std::io::Result<()> {
        let Some(pid) = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
        else {
            return Err(std::io::Error::other(format!("invalid pid {pid}")));
        };
        match rustix::process::kill_process(pid, rustix::process::Signal::KILL) {
            Ok(()) | Err(rustix::io::Errno::SRCH) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Reads what a pipe holds right now, without waiting for its writers.
fn drain_nonblocking(pipe: impl std::io::Read + std::os::fd::AsFd) -> String {
    let mut pipe = pipe;
    if rustix::fs::fcntl_setfl(&pipe, rustix::fs::OFlags::NONBLOCK).is_err() {
        return String::new();
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded: a container writing without pause must not keep us here.
    while out.len() < 64 * 1024 {
        match pipe.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Records every call and succeeds (for unit tests of operation order).
#[cfg(any(test, feature = "testing"))]
#[derive(Default)]
pub struct RecordingSys {
    pub calls: std::sync::Mutex<Vec<String>>,
}

#[cfg(any(test, feature = "testing"))]
impl RecordingSys {
    fn push(&self, s: String) {
        if let Ok(mut c) = self.calls.lock() {
            c.push(s);
        }
    }

    /// The calls so far.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

#[cfg(any(test, feature = "testing"))]
fn line(program: &Path, args: &[OsString]) -> String {
    let mut s = program.display().to_string();
    for a in args {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

#[cfg(any(test, feature = "testing"))]
impl Sys for RecordingSys {
    fn run(&self, program: &Path, args: &[OsString]) -> std::io::Result<CmdOutput> {
        self.push(line(program, args));
        Ok(CmdOutput::default())
    }

    fn run_detached(&self, program: &Path, args: &[OsString]) -> std::io::Result<CmdOutput> {
        self.push(format!("detached {}", line(program, args)));
        Ok(CmdOutput::default())
    }

    fn sync_fs(&self, path: &Path) -> std::io::Result<()> {
        self.push(format!("syncfs {}", path.display()));
        Ok(())
    }

    fn loop_set_capacity(&self, dev: &Path) -> std::io::Result<()> {
        self.push(format!("loop_set_capacity {}", dev.display()));
        Ok(())
    }

    fn mount(&self, source: &str, target: &Path, fstype: &str, data: &str) -> std::io::Result<()> {
        self.push(format!(
            "mount {fstype} {source} {} {data}",
            target.display()
        ));
        Ok(())
    }

    fn umount(&self, target: &Path) -> std::io::Result<()> {
        self.push(format!("umount {}", target.display()));
        Ok(())
    }

    fn loop_attach(&self, file: &Path) -> std::io::Result<(PathBuf, Option<std::os::fd::OwnedFd>)> {
        self.push(format!("loop_attach {}", file.display()));
        Ok((PathBuf::from("/dev/loop99"), None))
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> std::io::Result<()> {
        self.push(format!("chown {uid}:{gid} {}", path.display()));
        Ok(())
    }

    fn inject_mount(
        &self,
        pid: u32,
        source: &Path,
        target: &str,
        (uid, gid): (u32, u32),
        replace: bool,
    ) -> std::io::Result<()> {
        self.push(format!(
            "inject_mount {pid} {} {target} {uid}:{gid} replace={replace}",
            source.display()
        ));
        Ok(())
    }

    fn eject_mount(&self, pid: u32, target: &str) -> std::io::Result<()> {
        self.push(format!("eject_mount {pid} {target}"));
        Ok(())
    }

    fn kill(&self, pid: u32) -> std::io::Result<()> {
        self.push(format!("kill -9 {pid}"));
        Ok(())
    }
}

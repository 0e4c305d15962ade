//! The `Runtime` trait: everything the control plane asks of the machine that
//! runs sandboxes (create, destroy, exec, files, inventory), and its `runc`
//! backend. Services only ever hold an `Arc<dyn Runtime>`; they never call
//! `runc`, `mount` or `nft` themselves.
//!
//! The trait speaks in sandbox ids and typed requests. It knows nothing of
//! users, API keys, the store or HTTP.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use cove_api::ids::SandboxId;
use futures::Stream;

/// A stream of byte chunks (file bodies in both directions).
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes, std::io::Error>> + Send>>;

/// A stream of exec events; dropping it kills the command inside the sandbox.
pub type ExecEventStream = Pin<Box<dyn Stream<Item = ExecEvent> + Send>>;

/// What a sandbox is made of. Limits come from the shape; `rootfs` is a
/// catalog name the runtime resolves to a read-only image (`devbox:1`).
#[derive(Clone, Debug)]
pub struct SandboxSpec {
    pub id: SandboxId,
    /// Hostname inside the sandbox (the sandbox's name).
    pub hostname: String,
    pub rootfs: String,
    pub vcpu: u32,
    /// CPU quota in percent of one CPU (25 = a quarter CPU); `None` = `vcpu` whole CPUs.
    pub cpu_quota_pct: Option<u32>,
    pub mem_mib: u64,
    pub disk_mib: u64,
    pub pids_limit: u32,
    /// Host directories bound into the sandbox from its start (disks).
    pub mounts: Vec<BindMount>,
}

/// A host directory bound into a sandbox: the host side of a disk
/// attachment (a bucketfs FUSE mount under the state dir). Declared in the
/// OCI config at create (and at restore, so a checkpoint treats it as an
/// external mount), or made live in the sandbox's mount namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindMount {
    /// Where the mount is on the host (an existing directory or mount point).
    pub host_path: PathBuf,
    /// Absolute, normalised path inside the sandbox.
    pub container_path: String,
    /// Bound read-only (writes fail with EROFS inside the sandbox).
    pub read_only: bool,
}

/// What a successful create returns: the sandbox is running and its agent answered.
#[derive(Clone, Debug)]
pub struct CreatedSandbox {
    pub ip: Ipv4Addr,
}

/// What a checkpoint left on disk and took off the host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// Bytes the checkpoint images use on disk (memory pages and process
    /// state; the writable layer is not counted, it stays as it was).
    pub size_bytes: u64,
    /// Memory charged to the sandbox's cgroup just before the dump (what the
    /// host got back); `None` when the cgroup could not be read.
    pub memory_freed_bytes: Option<u64>,
}

/// One command to run inside a sandbox. `cmd` + `args` are an argv, never a
/// shell string. `env` already holds the sandbox's envs merged with the
/// per-exec ones (per-exec wins).
#[derive(Clone, Default)]
pub struct ExecSpec {
    pub cmd: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub stdin: Option<Bytes>,
    pub cwd: Option<String>,
}

/// Env values and stdin may be secrets (API keys a user passed as envs), so
/// `Debug` shows env names and the stdin length only: a spec in a log line or
/// an error message never carries them.
impl std::fmt::Debug for ExecSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env_names: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ExecSpec")
            .field("cmd", &self.cmd)
            .field("args", &self.args)
            .field("env", &env_names)
            .field("stdin_len", &self.stdin.as_ref().map(Bytes::len))
            .field("cwd", &self.cwd)
            .finish()
    }
}

/// The result of a buffered exec.
#[derive(Clone, Debug, Default)]
pub struct ExecOutput {
    pub stdout: Bytes,
    pub stderr: Bytes,
    pub exit_code: i32,
    /// Set when the command could not be started (e.g. not found); `exit_code` is then -1.
    pub error: Option<String>,
}

/// One event of a streamed exec, in the order produced.
#[derive(Clone, Debug, PartialEq)]
pub enum ExecEvent {
    Stdout(Bytes),
    Stderr(Bytes),
    /// The command could not be started, or the agent failed mid-way.
    Error(String),
    /// Always the last event of a command that ran.
    Exit(i32),
}

/// A sandbox the runtime finds on the machine (for the reconciler).
#[derive(Clone, Debug)]
pub struct RuntimeSandbox {
    pub id: SandboxId,
    pub state: RuntimeState,
    pub ip: Option<Ipv4Addr>,
}

/// What the runtime sees of a sandbox on the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuntimeState {
    /// Container running and its agent reachable.
    Running,
    /// Container exists but stopped, or its agent does not answer.
    Stopped,
    /// Leftovers of a half-done create, destroy or fork (dirs, overlay, veth, cgroup).
    Partial,
    /// Checkpointed to disk (paused): no process, cgroup or mount on the
    /// host, only its bundle, writable layer and checkpoint images, waiting
    /// for `restore` or `fork`. Not a leftover.
    Checkpointed,
}

/// Host capacity, for `/v1/hosts` and placement.
#[derive(Clone, Debug)]
pub struct HostCapacity {
    pub total_mib: u64,
    pub free_mib: u64,
    pub vcpus: u32,
    pub sandbox_count: u32,
    /// Catalog names of the images this host can run.
    pub images: Vec<String>,
}

/// Errors of the runtime. The server maps each variant to a status once,
/// exhaustively (no `_ =>`).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("sandbox {0} not found")]
    NotFound(SandboxId),
    #[error("sandbox {0} is not running")]
    NotRunning(SandboxId),
    #[error("unknown image {0}")]
    UnknownImage(String),
    #[error("no capacity: {0}")]
    NoCapacity(String),
    #[error("invalid path: {0}")]
    InvalidPath(String),
    #[error("no such file: {0}")]
    FileNotFound(String),
    #[error("is a directory: {0}")]
    IsDirectory(String),
    #[error("no space left on the sandbox disk")]
    NoSpace,
    #[error("sandbox {0} has no checkpoint")]
    NotCheckpointed(SandboxId),
    #[error("disk of {id} is {current_mib} MiB; it can only grow, not become {requested_mib} MiB")]
    DiskShrink {
        id: SandboxId,
        current_mib: u64,
        requested_mib: u64,
    },
    #[error("{op} of {id} failed: {message}")]
    Failed {
        id: SandboxId,
        op: &'static str,
        message: String,
    },
    #[error("agent of {id} unreachable: {message}")]
    AgentUnreachable { id: SandboxId, message: String },
    #[error("unsupported on this host: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The machine side of sandboxes. Implementations: `RuncRuntime` (real
/// containers) and `MockRuntime` (feature `testing`, for service tests).
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Creates and starts a sandbox, returning only when its agent answered.
    /// On failure nothing is left behind (the runtime rolls back itself).
    async fn create(&self, spec: &SandboxSpec) -> Result<CreatedSandbox, RuntimeError>;

    /// Stops and removes a sandbox and every leftover (container, overlay,
    /// veth, cgroup, state dir). Idempotent: an unknown id is `Ok`.
    async fn destroy(&self, id: &SandboxId) -> Result<(), RuntimeError>;

    /// Runs a command to completion through the agent.
    async fn exec(&self, id: &SandboxId, spec: ExecSpec) -> Result<ExecOutput, RuntimeError>;

    /// Runs a command and streams its output. Dropping the stream kills the
    /// command. The stream ends after `Exit` (or `Error`).
    async fn exec_stream(
        &self,
        id: &SandboxId,
        spec: ExecSpec,
    ) -> Result<ExecEventStream, RuntimeError>;

    /// Writes a file inside the sandbox (parents created), resolved by the
    /// agent inside the sandbox's root. Returns the bytes written.
    async fn write_file(
        &self,
        id: &SandboxId,
        path: &str,
        body: ByteStream,
    ) -> Result<u64, RuntimeError>;

    /// Reads a file inside the sandbox. Returns its size and its bytes.
    async fn read_file(
        &self,
        id: &SandboxId,
        path: &str,
    ) -> Result<(u64, ByteStream), RuntimeError>;

    /// Checkpoints a running sandbox to disk with CRIU (`runc checkpoint`)
    /// and takes it off the host: afterwards none of its processes, memory,
    /// cgroups, mounts or network devices remain; its bundle, writable layer
    /// (disk image), address lease and the checkpoint images stay under the
    /// state dir. Established TCP connections are not kept (they come back
    /// closed); listening sockets, open files, cwd and memory are. The
    /// runtime's own connections to the agent are dropped first, so a call
    /// still streaming at that moment makes the checkpoint fail. On failure
    /// the sandbox keeps running (network re-plugged). Not for sandboxes
    /// with live (not declared) mounts: CRIU cannot dump a FUSE mount.
    async fn checkpoint(&self, id: &SandboxId) -> Result<CheckpointInfo, RuntimeError>;

    /// Restores a checkpointed sandbox (`runc restore`): the same processes
    /// continue with their memory, open files, listening sockets and cwd;
    /// `lo`, the veth and the address are set up again, and it returns once
    /// the agent answers. `mounts` are declared as binds in the OCI config
    /// before the restore, so CRIU binds them as external mounts (a file held
    /// open on one is reopened); they must be the binds the sandbox had at
    /// its checkpoint (same `container_path`s), their host paths may differ.
    /// The checkpoint is deleted only after a restore succeeded; a failed
    /// restore leaves the sandbox checkpointed, ready for a retry.
    async fn restore(
        &self,
        id: &SandboxId,
        mounts: &[BindMount],
    ) -> Result<CreatedSandbox, RuntimeError>;

    /// Makes a new sandbox `new.id` (hostname `new.hostname`, limits from
    /// `new`, its own address and network namespace) restored from a copy of
    /// the checkpoint and writable layer of the checkpointed `source`, which
    /// stays checkpointed and unchanged. Forks share no writable file with
    /// the source or each other. `new.rootfs` and `new.disk_mib` are the
    /// source's (the memory image refers to that image and disk). On failure
    /// nothing of the new sandbox is left.
    async fn fork(
        &self,
        source: &SandboxId,
        new: &SandboxSpec,
        mounts: &[BindMount],
    ) -> Result<CreatedSandbox, RuntimeError>;

    /// Grows the sandbox's disk to `disk_mib` (running or checkpointed);
    /// a smaller size is `DiskShrink`, the same size is a no-op.
    async fn resize_disk(&self, id: &SandboxId, disk_mib: u64) -> Result<(), RuntimeError>;

    /// Every sandbox (or leftover) this runtime finds on the machine.
    async fn list(&self) -> Result<Vec<RuntimeSandbox>, RuntimeError>;

    /// Makes the host directory `mount.host_path` (a mount point) visible
    /// at `mount.container_path` inside the running sandbox, creating the
    /// directories on the way; usable when this returns. The path is
    /// resolved inside the sandbox and a symlink on it is refused
    /// (`InvalidPath`). With `replace`, a mount already exactly there (a
    /// dead one left by a previous server process) is detached first.
    async fn attach_mount(
        &self,
        id: &SandboxId,
        mount: &BindMount,
        replace: bool,
    ) -> Result<(), RuntimeError>;

    /// Detaches (lazily: open files stay usable until closed) the mount at
    /// `container_path` inside the running sandbox. Nothing mounted there
    /// is `Ok`.
    async fn detach_mount(&self, id: &SandboxId, container_path: &str) -> Result<(), RuntimeError>;

    /// The host uid and gid of the sandboxes' root: the owner a host-side
    /// filesystem must give files so that root inside owns them.
    fn sandbox_owner(&self) -> (u32, u32);

    /// Host capacity and the images available.
    async fn capacity(&self) -> Result<HostCapacity, RuntimeError>;

    /// Where this runtime keeps its state (for diagnostics).
    fn state_dir(&self) -> PathBuf;
}

#[cfg(feature = "testing")]
pub mod mock;

pub mod agent_client;
mod loopdev;
mod mount_ns;
pub mod runc;
pub mod sys;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exec_spec_debug_shows_env_names_but_never_values_or_stdin() {
        let spec = ExecSpec {
            cmd: "env".into(),
            env: vec![("API_KEY".into(), "sk-secret-value".into())],
            stdin: Some(Bytes::from_static(b"stdin-secret")),
            ..Default::default()
        };
        let shown = format!("{spec:?}");
        assert!(shown.contains("API_KEY"), "{shown}");
        assert!(!shown.contains("sk-secret-value"), "{shown}");
        assert!(!shown.contains("stdin-secret"), "{shown}");
    }
}

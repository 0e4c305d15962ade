//! `MockRuntime`: an in-memory `Runtime` for the server's unit tests (feature
//! `testing`, enabled only as a dev-dependency, so release binaries do not
//! contain it).
//!
//! Sandboxes are map entries with an address from 10.99.0.0/16 and an
//! in-memory file tree. Exec understands a handful of programs, enough to
//! observe argv, stdin, env, exit codes, timing and chunking from the outside:
//!
//! | program | effect |
//! |---|---|
//! | `echo ARGS…` | ARGS joined by spaces and `\n` on stdout |
//! | `cat` | stdin copied to stdout |
//! | `env` | `KEY=VALUE\n` per env entry, in the order received |
//! | `true` / `false` | exit 0 / 1 |
//! | `exit N` | exit N |
//! | `stderr ARGS…` | ARGS joined by spaces on stderr |
//! | `sleep SECS` | waits SECS (fractional) seconds, exit 0 |
//! | `chunks HEX…` | each HEX argument, decoded, as its own stdout chunk |
//!
//! Anything else fails to start (`error` set, exit −1), like a missing binary.
//!
//! Lifecycle as the runc backend behaves: `checkpoint` needs a running
//! sandbox and leaves it `Checkpointed` (files kept, memory no longer
//! counted as used); `restore` and `fork` need a checkpointed one
//! (`NotCheckpointed` otherwise); a failed restore (injected) leaves it
//! checkpointed for a retry; a fork copies the files, gets its own address
//! and leaves the source checkpointed; `resize_disk` only grows.
//! Failure injection and inspection helpers let tests check rollback, stream
//! teardown on disconnect and leftover clean-up.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cove_api::ids::SandboxId;
use futures::StreamExt;

use crate::{
    BindMount, ByteStream, CheckpointInfo, CreatedSandbox, ExecEvent, ExecEventStream, ExecOutput,
    ExecSpec, HostCapacity, Runtime, RuntimeError, RuntimeSandbox, RuntimeState, SandboxSpec,
};

#[derive(Debug)]
struct MockSandbox {
    spec: SandboxSpec,
    ip: Ipv4Addr,
    state: RuntimeState,
    files: HashMap<String, Vec<u8>>,
    dirs: BTreeSet<String>,
    /// Mounts visible inside, by container path (declared at create or
    /// attached live).
    mounts: BTreeMap<String, BindMount>,
}

#[derive(Debug, Default)]
struct Inner {
    sandboxes: HashMap<SandboxId, MockSandbox>,
    next_ip: u32,
    fail_next_create: Option<RuntimeError>,
    creates: usize,
    destroys: Vec<SandboxId>,
    last_exec: Option<ExecSpec>,
    capacity_down: bool,
    fail_next_restore: Option<RuntimeError>,
    /// Further restores that fail after `fail_next_restore` (a CRIU that
    /// keeps failing).
    restore_failures: u32,
    fail_next_checkpoint: Option<RuntimeError>,
    self_requests: HashMap<SandboxId, cove_api::agent::SelfRequest>,
    /// Like a host whose root lacks CAP_SYS_RESOURCE: no online grow.
    no_online_grow: bool,
    /// `(running, checkpointed)` disk grows done.
    grows: (u32, u32),
    last_mounts: Vec<BindMount>,
}

/// An in-memory `Runtime`.
#[derive(Debug)]
pub struct MockRuntime {
    inner: Mutex<Inner>,
    images: Vec<String>,
    total_mib: u64,
    vcpus: u32,
    /// Streams dropped before their `Exit` (a disconnect killed them).
    killed: Arc<AtomicUsize>,
}

impl Default for MockRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl MockRuntime {
    /// A host with 16 GiB, 8 vCPUs and the `devbox:1` image.
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                next_ip: 2,
                ..Inner::default()
            }),
            images: vec!["devbox:1".to_owned()],
            total_mib: 16 * 1024,
            vcpus: 8,
            killed: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The same host with another memory size (for placement tests).
    pub fn with_memory_mib(mut self, total_mib: u64) -> Self {
        self.total_mib = total_mib;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock only happens in a failing test.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the next `create` fail with `err` (after "partly" creating, so
    /// the caller's rollback is exercised).
    pub fn fail_next_create(&self, err: RuntimeError) {
        self.lock().fail_next_create = Some(err);
    }

    /// Makes the next `restore` or `fork` fail with `err`; the sandbox
    /// stays checkpointed (as after a real CRIU failure).
    pub fn fail_next_restore(&self, err: RuntimeError) {
        self.lock().fail_next_restore = Some(err);
    }

    /// Makes the next `n` restores or forks fail; the sandbox stays checkpointed.
    pub fn fail_restores(&self, n: u32) {
        self.lock().restore_failures = n;
    }

    /// Refuses to grow a running sandbox's disk (`Unsupported`), as on a
    /// host whose root lacks CAP_SYS_RESOURCE.
    pub fn refuse_online_grow(&self) {
        self.lock().no_online_grow = true;
    }

    /// How many grows happened on a running and on a checkpointed sandbox.
    pub fn grows(&self) -> (u32, u32) {
        self.lock().grows
    }

    /// As if code in the sandbox called its self API.
    pub fn request_self(&self, id: &SandboxId, req: cove_api::agent::SelfRequest) {
        self.lock().self_requests.insert(id.clone(), req);
    }

    /// Makes the next `checkpoint` fail with `err`; the sandbox keeps running.
    pub fn fail_next_checkpoint(&self, err: RuntimeError) {
        self.lock().fail_next_checkpoint = Some(err);
    }

    /// The binds passed to the last `restore` or `fork`.
    pub fn last_mounts(&self) -> Vec<BindMount> {
        self.lock().last_mounts.clone()
    }

    /// What the machine says of a sandbox.
    pub fn state(&self, id: &SandboxId) -> Option<RuntimeState> {
        self.lock().sandboxes.get(id).map(|s| s.state)
    }

    fn next_ip(inner: &mut Inner) -> Ipv4Addr {
        let n = inner.next_ip;
        inner.next_ip += 1;
        Ipv4Addr::new(10, 99, (n >> 8) as u8, (n & 0xff) as u8)
    }

    /// Makes `capacity` fail (the host is unreachable) until set back.
    pub fn set_capacity_down(&self, down: bool) {
        self.lock().capacity_down = down;
    }

    /// Puts a sandbox on the "machine" that no store row knows (a leftover).
    pub fn insert_leftover(&self, id: SandboxId, state: RuntimeState) {
        let mut inner = self.lock();
        let ip = Ipv4Addr::new(10, 99, 255, 254);
        let spec = SandboxSpec {
            id: id.clone(),
            hostname: "leftover".into(),
            rootfs: "devbox:1".into(),
            vcpu: 1,
            cpu_quota_pct: None,
            mem_mib: 256,
            disk_mib: 1024,
            pids_limit: 64,
            mounts: Vec::new(),
        };
        inner.sandboxes.insert(
            id,
            MockSandbox {
                spec,
                ip,
                state,
                files: HashMap::new(),
                dirs: BTreeSet::new(),
                mounts: BTreeMap::new(),
            },
        );
    }

    /// The mounts visible inside a sandbox, by container path.
    pub fn mounts(&self, id: &SandboxId) -> Vec<BindMount> {
        self.lock()
            .sandboxes
            .get(id)
            .map(|s| s.mounts.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Marks a sandbox stopped (its container died).
    pub fn stop(&self, id: &SandboxId) {
        if let Some(sb) = self.lock().sandboxes.get_mut(id) {
            sb.state = RuntimeState::Stopped;
        }
    }

    /// Whether the sandbox exists on the "machine".
    pub fn contains(&self, id: &SandboxId) -> bool {
        self.lock().sandboxes.contains_key(id)
    }

    /// The spec a sandbox was created with.
    pub fn spec(&self, id: &SandboxId) -> Option<SandboxSpec> {
        self.lock().sandboxes.get(id).map(|s| s.spec.clone())
    }

    /// Number of `create` calls so far.
    pub fn creates(&self) -> usize {
        self.lock().creates
    }

    /// Ids passed to `destroy`, in order.
    pub fn destroyed(&self) -> Vec<SandboxId> {
        self.lock().destroys.clone()
    }

    /// The last exec spec received (to check env merging).
    pub fn last_exec(&self) -> Option<ExecSpec> {
        self.lock().last_exec.clone()
    }

    /// Streams dropped before they finished.
    pub fn killed_streams(&self) -> usize {
        self.killed.load(Ordering::SeqCst)
    }

    fn running(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        match self.lock().sandboxes.get(id).map(|s| s.state) {
            None => Err(RuntimeError::NotFound(id.clone())),
            Some(RuntimeState::Running) => Ok(()),
            Some(_) => Err(RuntimeError::NotRunning(id.clone())),
        }
    }
}

/// One step of a mock program.
#[derive(Debug)]
enum Step {
    Out(Bytes),
    Err(Bytes),
    Sleep(Duration),
    Exit(i32),
    Fail(String),
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn program(spec: &ExecSpec) -> Vec<Step> {
    let joined = || spec.args.join(" ");
    match spec.cmd.as_str() {
        "echo" => vec![
            Step::Out(Bytes::from(format!("{}\n", joined()))),
            Step::Exit(0),
        ],
        "cat" => vec![
            Step::Out(spec.stdin.clone().unwrap_or_default()),
            Step::Exit(0),
        ],
        "env" => {
            let text: String = spec.env.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
            vec![Step::Out(Bytes::from(text)), Step::Exit(0)]
        }
        "true" => vec![Step::Exit(0)],
        "false" => vec![Step::Exit(1)],
        "exit" => vec![Step::Exit(
            spec.args.first().and_then(|a| a.parse().ok()).unwrap_or(0),
        )],
        "stderr" => vec![Step::Err(Bytes::from(joined())), Step::Exit(0)],
        "sleep" => {
            let secs: f64 = spec
                .args
                .first()
                .and_then(|a| a.parse().ok())
                .unwrap_or(0.0);
            vec![
                Step::Sleep(Duration::from_secs_f64(secs.max(0.0))),
                Step::Exit(0),
            ]
        }
        "chunks" => {
            let mut steps: Vec<Step> = spec
                .args
                .iter()
                .map(|a| Step::Out(Bytes::from(decode_hex(a).unwrap_or_default())))
                .collect();
            steps.push(Step::Exit(0));
            steps
        }
        other => vec![Step::Fail(format!("executable file not found: {other}"))],
    }
}

/// Counts the stream as killed when dropped before it finished.
struct KillGuard {
    killed: Arc<AtomicUsize>,
    finished: bool,
}

impl Drop for KillGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.killed.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[async_trait]
impl Runtime for MockRuntime {
    async fn create(&self, spec: &SandboxSpec) -> Result<CreatedSandbox, RuntimeError> {
        let mut inner = self.lock();
        inner.creates += 1;
        if let Some(err) = inner.fail_next_create.take() {
            return Err(err);
        }
        if !self.images.contains(&spec.rootfs) {
            return Err(RuntimeError::UnknownImage(spec.rootfs.clone()));
        }
        let ip = Self::next_ip(&mut inner);
        let sb = MockSandbox {
            spec: spec.clone(),
            ip,
            state: RuntimeState::Running,
            files: HashMap::new(),
            dirs: BTreeSet::from(["/".to_owned()]),
            mounts: by_path(&spec.mounts),
        };
        inner.sandboxes.insert(spec.id.clone(), sb);
        Ok(CreatedSandbox { ip })
    }

    async fn checkpoint(&self, id: &SandboxId) -> Result<CheckpointInfo, RuntimeError> {
        let mut inner = self.lock();
        let sb = inner
            .sandboxes
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        if sb.state != RuntimeState::Running {
            return Err(RuntimeError::NotRunning(id.clone()));
        }
        if let Some(err) = inner.fail_next_checkpoint.take() {
            return Err(err);
        }
        let sb = inner
            .sandboxes
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        sb.state = RuntimeState::Checkpointed;
        sb.mounts.clear();
        // The memory image is about the sandbox's memory size.
        let mem = sb.spec.mem_mib << 20;
        Ok(CheckpointInfo {
            size_bytes: mem,
            memory_freed_bytes: Some(mem),
        })
    }

    async fn restore(
        &self,
        id: &SandboxId,
        mounts: &[BindMount],
    ) -> Result<CreatedSandbox, RuntimeError> {
        let mut inner = self.lock();
        let sb = inner
            .sandboxes
            .get(id)
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        if sb.state != RuntimeState::Checkpointed {
            return Err(RuntimeError::NotCheckpointed(id.clone()));
        }
        if let Some(err) = inner.fail_next_restore.take() {
            return Err(err);
        }
        if inner.restore_failures > 0 {
            inner.restore_failures -= 1;
            return Err(RuntimeError::Failed {
                id: id.clone(),
                op: "restore",
                message: "criu restore failed (injected)".into(),
            });
        }
        inner.last_mounts = mounts.to_vec();
        let sb = inner
            .sandboxes
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        sb.state = RuntimeState::Running;
        sb.mounts = by_path(mounts);
        Ok(CreatedSandbox { ip: sb.ip })
    }

    async fn fork(
        &self,
        source: &SandboxId,
        new: &SandboxSpec,
        mounts: &[BindMount],
    ) -> Result<CreatedSandbox, RuntimeError> {
        let mut inner = self.lock();
        let src = inner
            .sandboxes
            .get(source)
            .ok_or_else(|| RuntimeError::NotFound(source.clone()))?;
        if src.state != RuntimeState::Checkpointed {
            return Err(RuntimeError::NotCheckpointed(source.clone()));
        }
        if inner.sandboxes.contains_key(&new.id) {
            return Err(RuntimeError::Failed {
                id: new.id.clone(),
                op: "fork",
                message: "sandbox already exists".into(),
            });
        }
        let mut spec = new.clone();
        spec.rootfs = src.spec.rootfs.clone();
        spec.disk_mib = src.spec.disk_mib;
        let (files, dirs) = (src.files.clone(), src.dirs.clone());
        if let Some(err) = inner.fail_next_restore.take() {
            return Err(err);
        }
        if inner.restore_failures > 0 {
            inner.restore_failures -= 1;
            return Err(RuntimeError::Failed {
                id: new.id.clone(),
                op: "fork",
                message: "criu restore failed (injected)".into(),
            });
        }
        inner.last_mounts = mounts.to_vec();
        let ip = Self::next_ip(&mut inner);
        let sb = MockSandbox {
            spec,
            ip,
            state: RuntimeState::Running,
            files,
            dirs,
            mounts: by_path(mounts),
        };
        inner.sandboxes.insert(new.id.clone(), sb);
        Ok(CreatedSandbox { ip })
    }

    async fn resize_disk(&self, id: &SandboxId, disk_mib: u64) -> Result<(), RuntimeError> {
        let mut inner = self.lock();
        let sb = inner
            .sandboxes
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        if !matches!(sb.state, RuntimeState::Running | RuntimeState::Checkpointed) {
            return Err(RuntimeError::NotRunning(id.clone()));
        }
        if disk_mib < sb.spec.disk_mib {
            return Err(RuntimeError::DiskShrink {
                id: id.clone(),
                current_mib: sb.spec.disk_mib,
                requested_mib: disk_mib,
            });
        }
        let running = sb.state == RuntimeState::Running;
        if running && inner.no_online_grow {
            return Err(RuntimeError::Unsupported(
                "online grow needs CAP_SYS_RESOURCE".into(),
            ));
        }
        if let Some(sb) = inner.sandboxes.get_mut(id) {
            sb.spec.disk_mib = disk_mib;
        }
        if running {
            inner.grows.0 += 1;
        } else {
            inner.grows.1 += 1;
        }
        Ok(())
    }

    async fn destroy(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        let mut inner = self.lock();
        inner.destroys.push(id.clone());
        inner.sandboxes.remove(id);
        Ok(())
    }

    async fn exec(&self, id: &SandboxId, spec: ExecSpec) -> Result<ExecOutput, RuntimeError> {
        self.running(id)?;
        self.lock().last_exec = Some(spec.clone());
        let mut out = ExecOutput::default();
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        for step in program(&spec) {
            match step {
                Step::Out(b) => stdout.extend_from_slice(&b),
                Step::Err(b) => stderr.extend_from_slice(&b),
                Step::Sleep(d) => tokio::time::sleep(d).await,
                Step::Exit(code) => out.exit_code = code,
                Step::Fail(msg) => {
                    out.error = Some(msg);
                    out.exit_code = -1;
                }
            }
        }
        out.stdout = stdout.into();
        out.stderr = stderr.into();
        Ok(out)
    }

    async fn exec_stream(
        &self,
        id: &SandboxId,
        spec: ExecSpec,
    ) -> Result<ExecEventStream, RuntimeError> {
        self.running(id)?;
        self.lock().last_exec = Some(spec.clone());
        let steps: VecDeque<Step> = program(&spec).into();
        let guard = KillGuard {
            killed: self.killed.clone(),
            finished: false,
        };
        let stream = futures::stream::unfold((steps, guard), |(mut steps, mut guard)| async move {
            loop {
                let step = steps.pop_front()?;
                let event = match step {
                    Step::Out(b) => ExecEvent::Stdout(b),
                    Step::Err(b) => ExecEvent::Stderr(b),
                    Step::Sleep(d) => {
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    Step::Exit(code) => {
                        guard.finished = true;
                        ExecEvent::Exit(code)
                    }
                    Step::Fail(msg) => {
                        guard.finished = true;
                        ExecEvent::Error(msg)
                    }
                };
                return Some((event, (steps, guard)));
            }
        });
        Ok(stream.boxed())
    }

    async fn write_file(
        &self,
        id: &SandboxId,
        path: &str,
        mut body: ByteStream,
    ) -> Result<u64, RuntimeError> {
        self.running(id)?;
        let mut data = Vec::new();
        while let Some(chunk) = body.next().await {
            data.extend_from_slice(&chunk?);
        }
        let mut inner = self.lock();
        let sb = inner
            .sandboxes
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        if sb.dirs.contains(path) {
            return Err(RuntimeError::IsDirectory(path.to_owned()));
        }
        let mut parent = PathBuf::from(path);
        while parent.pop() {
            sb.dirs.insert(parent.to_string_lossy().into_owned());
        }
        let len = data.len() as u64;
        sb.files.insert(path.to_owned(), data);
        Ok(len)
    }

    async fn read_file(
        &self,
        id: &SandboxId,
        path: &str,
    ) -> Result<(u64, ByteStream), RuntimeError> {
        self.running(id)?;
        let inner = self.lock();
        let sb = inner
            .sandboxes
            .get(id)
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        if sb.dirs.contains(path) {
            return Err(RuntimeError::IsDirectory(path.to_owned()));
        }
        let data = sb
            .files
            .get(path)
            .ok_or_else(|| RuntimeError::FileNotFound(path.to_owned()))?;
        let len = data.len() as u64;
        // Several chunks, so readers are exercised across chunk boundaries.
        let chunks: Vec<Result<Bytes, std::io::Error>> = data
            .chunks(64 * 1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Ok((len, futures::stream::iter(chunks).boxed()))
    }

    async fn list(&self) -> Result<Vec<RuntimeSandbox>, RuntimeError> {
        Ok(self
            .lock()
            .sandboxes
            .iter()
            .map(|(id, sb)| RuntimeSandbox {
                id: id.clone(),
                state: sb.state,
                ip: Some(sb.ip),
            })
            .collect())
    }

    async fn attach_mount(
        &self,
        id: &SandboxId,
        mount: &BindMount,
        replace: bool,
    ) -> Result<(), RuntimeError> {
        self.running(id)?;
        let mut inner = self.lock();
        let sb = inner
            .sandboxes
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.clone()))?;
        if sb.mounts.contains_key(&mount.container_path) && !replace {
            return Err(RuntimeError::Failed {
                id: id.clone(),
                op: "attach_mount",
                message: format!("{} is already a mount point", mount.container_path),
            });
        }
        sb.mounts
            .insert(mount.container_path.clone(), mount.clone());
        Ok(())
    }

    async fn take_self_request(
        &self,
        id: &SandboxId,
    ) -> Result<Option<cove_api::agent::SelfRequest>, RuntimeError> {
        self.running(id)?;
        Ok(self.lock().self_requests.remove(id))
    }

    async fn detach_mount(&self, id: &SandboxId, container_path: &str) -> Result<(), RuntimeError> {
        self.running(id)?;
        if let Some(sb) = self.lock().sandboxes.get_mut(id) {
            sb.mounts.remove(container_path);
        }
        Ok(())
    }

    fn sandbox_owner(&self) -> (u32, u32) {
        (100_000, 100_000)
    }

    async fn capacity(&self) -> Result<HostCapacity, RuntimeError> {
        let inner = self.lock();
        if inner.capacity_down {
            return Err(RuntimeError::Unsupported("mock host is down".into()));
        }
        // A checkpointed sandbox holds no memory on the host.
        let used: u64 = inner
            .sandboxes
            .values()
            .filter(|s| s.state != RuntimeState::Checkpointed)
            .map(|s| s.spec.mem_mib)
            .sum();
        Ok(HostCapacity {
            total_mib: self.total_mib,
            free_mib: self.total_mib.saturating_sub(used),
            vcpus: self.vcpus,
            sandbox_count: u32::try_from(inner.sandboxes.len()).unwrap_or(u32::MAX),
            images: self.images.clone(),
        })
    }

    fn state_dir(&self) -> PathBuf {
        PathBuf::from("/nonexistent/mock-runtime")
    }
}

/// Mounts keyed by their path inside the sandbox.
fn by_path(mounts: &[BindMount]) -> BTreeMap<String, BindMount> {
    mounts
        .iter()
        .map(|m| (m.container_path.clone(), m.clone()))
        .collect()
}

#[cfg(test)]
mod tests;

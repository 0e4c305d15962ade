//! The `runc` backend of [`Runtime`](crate::Runtime): each sandbox is an OCI
//! bundle under `<state>/sandboxes/<id>/` run by Debian's `runc` with
//! `--root <state>/runc`, with `cove-agent` as its PID 1. One lifecycle
//! operation per file (`create.rs`, `start.rs`, `destroy.rs`, `exec.rs`,
//! `files.rs`, `list.rs`, `capacity.rs`, `checkpoint.rs`, `restore.rs`,
//! `fork.rs`, `resize.rs`; `recover.rs` finishes what a crash interrupted);
//! system calls and external commands
//! go through the [`Sys`](crate::sys::Sys) trait, passed in.
//!
//! Nothing about a sandbox lives only in memory: its record, bundle, runc
//! state, lease and named network namespace are all on disk, so a runtime
//! started on the same state dir after a crash finds and serves the
//! sandboxes of the previous one (agent clients are made on demand).

mod attach_mount;
mod capacity;
mod checkpoint;
mod config;
mod create;
mod criu;
mod destroy;
mod detach_mount;
mod disk;
mod exec;
mod files;
mod fork;
mod image;
mod layout;
mod list;
mod pool;
mod record;
mod recover;
mod resize;
mod restore;
mod seccomp;
mod spec;
mod start;

pub use config::RuncConfig;

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use cove_api::ids::SandboxId;
use cove_net::{CommandNetSys, NetConfig, NetSys, Network};

use self::layout::SandboxPaths;
use self::record::Phase;
use crate::agent_client::AgentClient;
use crate::sys::{RealSys, Sys};
use crate::{
    BindMount, ByteStream, CheckpointInfo, CreatedSandbox, ExecEventStream, ExecOutput, ExecSpec,
    HostCapacity, Runtime, RuntimeError, RuntimeSandbox, SandboxSpec,
};

/// Sandboxes as `runc` containers. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct RuncRuntime {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    config: RuncConfig,
    sys: Arc<dyn Sys>,
    net: Network,
    /// Agent clients by sandbox (each holds idle keep-alive connections).
    agents: Mutex<HashMap<SandboxId, Arc<AgentClient>>>,
    /// Pre-formatted disks (see `pool.rs`).
    pool: Arc<pool::DiskPool>,
    /// Serialises preparing shifted images (a copy of ~180 MB).
    lower_lock: tokio::sync::Mutex<HashMap<String, PathBuf>>,
    /// The sandboxes' seccomp filter as BPF, compiled once (`seccomp.rs`).
    seccomp_bpf: Vec<u8>,
}

impl RuncRuntime {
    /// Prepares the state dir, the bridge and NAT, and the default image's
    /// shifted copy, with the real system calls and commands.
    pub async fn start(config: RuncConfig) -> Result<RuncRuntime, RuntimeError> {
        Self::start_with(config, Arc::new(RealSys), Arc::new(CommandNetSys)).await
    }

    /// [`start`](Self::start) over the given system seams.
    pub async fn start_with(
        config: RuncConfig,
        sys: Arc<dyn Sys>,
        net_sys: Arc<dyn NetSys>,
    ) -> Result<RuncRuntime, RuntimeError> {
        if !config.agent_bin.is_file() {
            return Err(RuntimeError::Unsupported(format!(
                "cove-agent binary not found at {} (build it with `cargo build -p cove-agent` or set COVE_AGENT_BIN)",
                config.agent_bin.display()
            )));
        }
        let net = Network::new(
            NetConfig {
                bridge: config.bridge.clone(),
                subnet: config.subnet,
                veth_prefix: config.veth_prefix.clone(),
                nat: config.nat,
                leases_dir: layout::leases_dir(&config.state_dir, &config.bridge),
            },
            net_sys,
        );
        for d in [
            config.state_dir.clone(),
            layout::sandboxes_dir(&config.state_dir),
            layout::runc_root(&config.state_dir),
            config.lower_dir.clone(),
        ] {
            std::fs::create_dir_all(&d)?;
            // Sandboxes' root (an unprivileged host uid) traverses these to its bundle.
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o711))?;
        }
        let pool = Arc::new(pool::DiskPool::new(
            config.state_dir.join("pool"),
            config.disk_pool,
        ));
        let seccomp_bpf = seccomp::compile(seccomp::PROFILE)?;
        let inner = Arc::new(Inner {
            config,
            pool,
            sys,
            net,
            agents: Mutex::new(HashMap::new()),
            lower_lock: tokio::sync::Mutex::new(HashMap::new()),
            seccomp_bpf,
        });
        {
            let inner = inner.clone();
            tokio::task::spawn_blocking(move || inner.net.ensure())
                .await
                .map_err(join_err)?
                .map_err(|e| {
                    RuntimeError::Unsupported(format!("sandbox network setup failed: {e}"))
                })?;
        }
        let rt = RuncRuntime { inner };
        // Finish or roll back checkpoints and restores a crash interrupted,
        // before anyone lists or uses the sandboxes.
        rt.blocking(recover::recover_all).await?;
        // Warm the default image so the first create does not pay for the copy.
        let default = rt.inner.config.default_image.clone();
        if image::available(&rt.inner.config.images_dir).contains(&default) {
            rt.lower(&default).await?;
        }
        Ok(rt)
    }

    /// The configuration in use.
    pub fn config(&self) -> &RuncConfig {
        &self.inner.config
    }

    /// The catalog name of a record's image (empty means the default).
    fn image_of(&self, image: &str) -> String {
        if image.is_empty() {
            self.inner.config.default_image.clone()
        } else {
            image.to_string()
        }
    }

    async fn lower(&self, catalog: &str) -> Result<PathBuf, RuntimeError> {
        let mut cache = self.inner.lower_lock.lock().await;
        if let Some(p) = cache.get(catalog) {
            return Ok(p.clone());
        }
        let inner = self.inner.clone();
        let name = catalog.to_string();
        let path = tokio::task::spawn_blocking(move || {
            let c = &inner.config;
            image::prepare_lower(
                inner.sys.as_ref(),
                &c.images_dir,
                &c.lower_dir,
                &name,
                c.uid_base,
            )
        })
        .await
        .map_err(join_err)??;
        cache.insert(catalog.to_string(), path.clone());
        Ok(path)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, RuntimeError> + Send + 'static,
    ) -> Result<T, RuntimeError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(join_err)?
    }
}

fn join_err(e: tokio::task::JoinError) -> RuntimeError {
    RuntimeError::Io(std::io::Error::other(format!("blocking task failed: {e}")))
}

impl Inner {
    /// An `Inner` over recording seams, for unit tests of one operation.
    #[cfg(test)]
    pub(crate) fn for_tests(
        config: RuncConfig,
        sys: Arc<dyn Sys>,
        net_sys: Arc<dyn NetSys>,
    ) -> Inner {
        let net = Network::new(
            NetConfig {
                bridge: config.bridge.clone(),
                subnet: config.subnet,
                veth_prefix: config.veth_prefix.clone(),
                nat: false,
                leases_dir: layout::leases_dir(&config.state_dir, &config.bridge),
            },
            net_sys,
        );
        Inner {
            pool: Arc::new(pool::DiskPool::new(config.state_dir.join("pool"), 0)),
            config,
            sys,
            net,
            agents: Mutex::new(HashMap::new()),
            lower_lock: tokio::sync::Mutex::new(HashMap::new()),
            seccomp_bpf: seccomp::compile(seccomp::PROFILE).expect("the built-in profile compiles"),
        }
    }

    /// runc's global flags for one sandbox, then `rest`.
    fn runc_args(&self, paths: &SandboxPaths, rest: Vec<OsString>) -> Vec<OsString> {
        let mut args: Vec<OsString> = vec![
            "--root".into(),
            layout::runc_root(&self.config.state_dir).into(),
            "--log".into(),
            paths.runc_log().into(),
        ];
        args.extend(rest);
        args
    }

    /// The agent client of an existing sandbox.
    fn agent(&self, id: &SandboxId) -> Result<Arc<AgentClient>, RuntimeError> {
        let paths = SandboxPaths::new(&self.config.state_dir, id);
        let mut agents = self
            .agents
            .lock()
            .map_err(|_| RuntimeError::Io(std::io::Error::other("agents lock poisoned")))?;
        if let Some(a) = agents.get(id) {
            return Ok(a.clone());
        }
        if !paths.record().exists() {
            return Err(RuntimeError::NotFound(id.clone()));
        }
        // Before the container runs there is no pid: don't cache a client
        // that could not check its peer.
        let Some(pid) = std::fs::read_to_string(paths.pid_file())
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        else {
            return Err(RuntimeError::NotRunning(id.clone()));
        };
        let a = Arc::new(AgentClient::new(id.clone(), paths.socket(), Some(pid)));
        agents.insert(id.clone(), a.clone());
        Ok(a)
    }

    fn forget_agent(&self, id: &SandboxId) {
        if let Ok(mut agents) = self.agents.lock() {
            agents.remove(id);
        }
    }

    /// Whether runc reports the container running.
    async fn container_running(&self, id: &SandboxId) -> bool {
        let args: Vec<OsString> = vec![
            "--root".into(),
            layout::runc_root(&self.config.state_dir).into(),
            "state".into(),
            id.as_str().into(),
        ];
        let runc = self.config.runc_bin.clone();
        let out = tokio::process::Command::new(runc).args(args).output().await;
        match out {
            Ok(o) if o.status.success() => {
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
                v["status"] == "running"
            }
            _ => false,
        }
    }
}

impl RuncRuntime {
    /// [`Runtime::create`] with host directories declared as binds in the
    /// OCI config (a checkpoint then treats them as external mounts, open
    /// files included). `Runtime::create` passes `spec.mounts`.
    pub async fn create_with_mounts(
        &self,
        spec: &SandboxSpec,
        mounts: &[BindMount],
    ) -> Result<CreatedSandbox, RuntimeError> {
        let t0 = Instant::now();
        let catalog = self.image_of(&spec.rootfs);
        let lower = self.lower(&catalog).await?;
        let paths = SandboxPaths::new(&self.inner.config.state_dir, &spec.id);
        if paths.dir.exists() {
            return Err(RuntimeError::Failed {
                id: spec.id.clone(),
                op: "create",
                message: "sandbox already exists".into(),
            });
        }
        let s = spec.clone();
        let m = mounts.to_vec();
        let started = self
            .blocking(move |inner| {
                let t1 = Instant::now();
                let mut rec = create::prepare(inner, &s, &lower, &m)?;
                let t2 = Instant::now();
                start::run_container(inner, &s, &mut rec)?;
                tracing::debug!(
                    sandbox_id = %s.id,
                    prepare_us = (t2 - t1).as_micros() as u64,
                    container_and_net_us = t2.elapsed().as_micros() as u64,
                    "sandbox bundle prepared and container started"
                );
                Ok(rec)
            })
            .await;
        self.inner
            .pool
            .refill(self.inner.sys.clone(), spec.disk_mib);
        let t_agent = Instant::now();
        let result = match started {
            Ok(mut rec) => {
                let agent = self.inner.agent(&spec.id)?;
                match agent.wait_ready(self.inner.config.agent_timeout).await {
                    Ok(_) => {
                        rec.phase = Phase::Running;
                        rec.save(&paths.record())
                            .map(|_| rec)
                            .map_err(RuntimeError::from)
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(rec) => {
                tracing::info!(
                    sandbox_id = %spec.id,
                    ms = t0.elapsed().as_millis() as u64,
                    agent_wait_us = t_agent.elapsed().as_micros() as u64,
                    "sandbox created"
                );
                rec.ip
                    .map(|ip| CreatedSandbox { ip })
                    .ok_or_else(|| RuntimeError::Failed {
                        id: spec.id.clone(),
                        op: "create",
                        message: "no address".into(),
                    })
            }
            Err(e) => {
                tracing::warn!(sandbox_id = %spec.id, error = %e, "create failed, rolling back");
                let id = spec.id.clone();
                if let Err(rb) = self
                    .blocking(move |inner| destroy::destroy(inner, &id))
                    .await
                {
                    tracing::error!(sandbox_id = %spec.id, error = %rb, "rollback of a failed create failed");
                }
                self.inner.forget_agent(&spec.id);
                Err(e)
            }
        }
    }
}

#[async_trait]
impl Runtime for RuncRuntime {
    async fn create(&self, spec: &SandboxSpec) -> Result<CreatedSandbox, RuntimeError> {
        self.create_with_mounts(spec, &spec.mounts).await
    }

    async fn checkpoint(&self, id: &SandboxId) -> Result<CheckpointInfo, RuntimeError> {
        // The runtime's own connections to the agent would be unix sockets
        // with a peer outside the sandbox, which CRIU cannot dump.
        self.inner.forget_agent(id);
        let id = id.clone();
        self.blocking(move |inner| checkpoint::checkpoint(inner, &id))
            .await
    }

    async fn restore(
        &self,
        id: &SandboxId,
        mounts: &[BindMount],
    ) -> Result<CreatedSandbox, RuntimeError> {
        restore::restore(self, id, mounts).await
    }

    async fn fork(
        &self,
        source: &SandboxId,
        new: &SandboxSpec,
        mounts: &[BindMount],
    ) -> Result<CreatedSandbox, RuntimeError> {
        fork::fork(self, source, new, mounts).await
    }

    async fn resize_disk(&self, id: &SandboxId, disk_mib: u64) -> Result<(), RuntimeError> {
        let id = id.clone();
        self.blocking(move |inner| resize::resize_disk(inner, &id, disk_mib))
            .await
    }

    async fn destroy(&self, id: &SandboxId) -> Result<(), RuntimeError> {
        self.inner.forget_agent(id);
        let id = id.clone();
        self.blocking(move |inner| destroy::destroy(inner, &id))
            .await
    }

    async fn exec(&self, id: &SandboxId, spec: ExecSpec) -> Result<ExecOutput, RuntimeError> {
        exec::exec(&self.inner, id, spec).await
    }

    async fn exec_stream(
        &self,
        id: &SandboxId,
        spec: ExecSpec,
    ) -> Result<ExecEventStream, RuntimeError> {
        exec::exec_stream(&self.inner, id, spec).await
    }

    async fn write_file(
        &self,
        id: &SandboxId,
        path: &str,
        body: ByteStream,
    ) -> Result<u64, RuntimeError> {
        files::write_file(&self.inner, id, path, body).await
    }

    async fn read_file(
        &self,
        id: &SandboxId,
        path: &str,
    ) -> Result<(u64, ByteStream), RuntimeError> {
        files::read_file(&self.inner, id, path).await
    }

    async fn list(&self) -> Result<Vec<RuntimeSandbox>, RuntimeError> {
        list::list(&self.inner).await
    }

    async fn attach_mount(
        &self,
        id: &SandboxId,
        mount: &BindMount,
        replace: bool,
    ) -> Result<(), RuntimeError> {
        let (id, mount) = (id.clone(), mount.clone());
        self.blocking(move |inner| {
            let c = &inner.config;
            attach_mount::attach_mount(
                inner.sys.as_ref(),
                &c.state_dir,
                c.uid_base,
                &id,
                &mount,
                replace,
            )
        })
        .await
    }

    async fn take_self_request(
        &self,
        id: &SandboxId,
    ) -> Result<Option<cove_api::agent::SelfRequest>, RuntimeError> {
        self.inner.agent(id)?.take_self_request().await
    }

    async fn detach_mount(&self, id: &SandboxId, container_path: &str) -> Result<(), RuntimeError> {
        let (id, path) = (id.clone(), container_path.to_owned());
        self.blocking(move |inner| {
            detach_mount::detach_mount(inner.sys.as_ref(), &inner.config.state_dir, &id, &path)
        })
        .await
    }

    fn sandbox_owner(&self) -> (u32, u32) {
        let base = self.inner.config.uid_base;
        (base, base)
    }

    async fn capacity(&self) -> Result<HostCapacity, RuntimeError> {
        self.blocking(capacity::capacity).await
    }

    fn state_dir(&self) -> PathBuf {
        self.inner.config.state_dir.clone()
    }
}

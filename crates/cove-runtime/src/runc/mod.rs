//! The `runc` backend of [`Runtime`](crate::Runtime): each sandbox is an OCI
//! bundle under `<state>/sandboxes/<id>/` run by Debian's `runc` with
//! `--root <state>/runc`, with `cove-agent` as its PID 1. One lifecycle
//! operation per file (`create.rs`, `destroy.rs`, …); system calls and
//! external commands go through the [`Sys`](crate::sys::Sys) trait.

mod config;

pub use config::RuncConfig;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use cove_api::ids::SandboxId;

use crate::{
    ByteStream, CreatedSandbox, ExecEventStream, ExecOutput, ExecSpec, HostCapacity, Runtime,
    RuntimeError, RuntimeSandbox, SandboxSpec,
};

/// Sandboxes as `runc` containers. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct RuncRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    config: RuncConfig,
}

impl RuncRuntime {
    /// Prepares the state dir (bridge, NAT, shifted images) and adopts the
    /// sandboxes a previous process left running.
    pub async fn start(config: RuncConfig) -> Result<RuncRuntime, RuntimeError> {
        Ok(RuncRuntime { inner: Arc::new(Inner { config }) })
    }

    fn unsupported(&self, what: &str) -> RuntimeError {
        RuntimeError::Unsupported(format!("{what} is not built yet in the runc runtime"))
    }
}

#[async_trait]
impl Runtime for RuncRuntime {
    async fn create(&self, _spec: &SandboxSpec) -> Result<CreatedSandbox, RuntimeError> {
        Err(self.unsupported("create"))
    }

    async fn destroy(&self, _id: &SandboxId) -> Result<(), RuntimeError> {
        Err(self.unsupported("destroy"))
    }

    async fn exec(&self, _id: &SandboxId, _spec: ExecSpec) -> Result<ExecOutput, RuntimeError> {
        Err(self.unsupported("exec"))
    }

    async fn exec_stream(
        &self,
        _id: &SandboxId,
        _spec: ExecSpec,
    ) -> Result<ExecEventStream, RuntimeError> {
        Err(self.unsupported("exec_stream"))
    }

    async fn write_file(
        &self,
        _id: &SandboxId,
        _path: &str,
        _body: ByteStream,
    ) -> Result<u64, RuntimeError> {
        Err(self.unsupported("write_file"))
    }

    async fn read_file(
        &self,
        _id: &SandboxId,
        _path: &str,
    ) -> Result<(u64, ByteStream), RuntimeError> {
        Err(self.unsupported("read_file"))
    }

    async fn list(&self) -> Result<Vec<RuntimeSandbox>, RuntimeError> {
        Err(self.unsupported("list"))
    }

    async fn capacity(&self) -> Result<HostCapacity, RuntimeError> {
        Err(self.unsupported("capacity"))
    }

    fn state_dir(&self) -> PathBuf {
        self.inner.config.state_dir.clone()
    }
}

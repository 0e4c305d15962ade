//! `exec` and `exec_stream`: through the sandbox's agent, never `runc exec`
//! (which costs ~40 ms a call here). A connection failure is reported as
//! `NotRunning` when the container is gone, `AgentUnreachable` otherwise.

use cove_api::ids::SandboxId;

use super::Inner;
use crate::{ExecEventStream, ExecOutput, ExecSpec, RuntimeError};

pub async fn exec(
    inner: &Inner,
    id: &SandboxId,
    spec: ExecSpec,
) -> Result<ExecOutput, RuntimeError> {
    let agent = inner.agent(id)?;
    match agent.exec(spec).await {
        Err(RuntimeError::AgentUnreachable { .. }) if !inner.container_running(id).await => {
            Err(RuntimeError::NotRunning(id.clone()))
        }
        r => r,
    }
}

pub async fn exec_stream(
    inner: &Inner,
    id: &SandboxId,
    spec: ExecSpec,
) -> Result<ExecEventStream, RuntimeError> {
    let agent = inner.agent(id)?;
    match agent.exec_stream(spec).await {
        Err(RuntimeError::AgentUnreachable { .. }) if !inner.container_running(id).await => {
            Err(RuntimeError::NotRunning(id.clone()))
        }
        r => r,
    }
}

//! `read_file` and `write_file`: through the agent, which resolves the path
//! inside the sandbox root. The host never opens a path inside a sandbox.

use cove_api::ids::SandboxId;

use super::Inner;
use crate::{ByteStream, RuntimeError};

pub async fn read_file(
    inner: &Inner,
    id: &SandboxId,
    path: &str,
) -> Result<(u64, ByteStream), RuntimeError> {
    inner.agent(id)?.read_file(path).await
}

pub async fn write_file(
    inner: &Inner,
    id: &SandboxId,
    path: &str,
    body: ByteStream,
) -> Result<u64, RuntimeError> {
    inner.agent(id)?.write_file(path, body).await
}

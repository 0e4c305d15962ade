//! Files in and out of a sandbox, streamed both ways: the request body goes
//! to the runtime chunk by chunk and the runtime's reader becomes the
//! response body, so a 1 GiB file never sits in the server's memory. Paths
//! are checked and normalised here; the agent resolves them inside the
//! sandbox's root.

use std::sync::Arc;

use cove_api::validate::normalize_sandbox_path;
use cove_runtime::{ByteStream, Runtime};
use cove_store::User;
use serde::Serialize;

use crate::error::ServiceError;
use crate::services::sandboxes::SandboxService;

/// The `data` of a successful upload.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FileWritten {
    pub path: String,
    pub bytes: u64,
}

/// Moves files in and out of sandboxes.
#[derive(Clone)]
pub struct FileService {
    runtime: Arc<dyn Runtime>,
    sandboxes: SandboxService,
}

impl FileService {
    pub fn new(runtime: Arc<dyn Runtime>, sandboxes: SandboxService) -> Self {
        Self { runtime, sandboxes }
    }

    /// Writes `body` at `path` (parents created).
    pub async fn upload(
        &self,
        user: &User,
        id: &str,
        path: Option<String>,
        body: ByteStream,
    ) -> Result<FileWritten, ServiceError> {
        let path = normalize_sandbox_path(path.as_deref().unwrap_or(""))?;
        let sandbox = self.sandboxes.running(user, id).await?;
        let bytes = self.runtime.write_file(&sandbox.id, &path, body).await?;
        Ok(FileWritten { path, bytes })
    }

    /// Opens `path` for reading: its size and its bytes.
    pub async fn download(
        &self,
        user: &User,
        id: &str,
        path: Option<String>,
    ) -> Result<(u64, ByteStream), ServiceError> {
        let path = normalize_sandbox_path(path.as_deref().unwrap_or(""))?;
        let sandbox = self.sandboxes.running(user, id).await?;
        Ok(self.runtime.read_file(&sandbox.id, &path).await?)
    }
}

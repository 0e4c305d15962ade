//! Exec: buffered and streamed. The sandbox's envs (opened from the store)
//! are merged under the per-exec `env` (per-exec wins) and passed with the
//! argv to the runtime, which runs it through the in-sandbox agent.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cove_api::exec::{ExecRequest, ExecResponse, ExecResult};
use cove_runtime::{ExecSpec, Runtime};
use cove_store::{Store, User};
use futures::Stream;

use crate::error::ServiceError;
use crate::metrics::Metrics;
use crate::services::sandboxes::SandboxService;
use crate::state::AppConfig;
use crate::stream::exec_ndjson;

/// Runs commands in sandboxes.
#[derive(Clone)]
pub struct ExecService {
    store: Arc<dyn Store>,
    runtime: Arc<dyn Runtime>,
    sandboxes: SandboxService,
    metrics: Arc<Metrics>,
    config: Arc<AppConfig>,
}

impl ExecService {
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<dyn Runtime>,
        sandboxes: SandboxService,
        metrics: Arc<Metrics>,
        config: Arc<AppConfig>,
    ) -> Self {
        Self {
            store,
            runtime,
            sandboxes,
            metrics,
            config,
        }
    }

    async fn spec(
        &self,
        user: &User,
        id: &str,
        req: ExecRequest,
    ) -> Result<(cove_api::ids::SandboxId, ExecSpec), ServiceError> {
        req.validate()?;
        let sandbox = self.sandboxes.running(user, id).await?;
        let mut env: BTreeMap<String, String> = self
            .store
            .sandbox_envs(&sandbox.id)
            .await?
            .into_iter()
            .map(|(k, v)| (k, v.into_inner()))
            .collect();
        env.extend(req.env.unwrap_or_default());
        let spec = ExecSpec {
            cmd: req.cmd,
            args: req.args.unwrap_or_default(),
            env: env.into_iter().collect(),
            stdin: req.stdin.map(Bytes::from),
            cwd: None,
        };
        Ok((sandbox.id, spec))
    }

    /// Runs a command to completion.
    pub async fn run(
        &self,
        user: &User,
        id: &str,
        req: ExecRequest,
    ) -> Result<ExecResponse, ServiceError> {
        let (sid, spec) = self.spec(user, id, req).await?;
        let _active = self.sandboxes.active(&sid);
        let started = Instant::now();
        let out = self.runtime.exec(&sid, spec).await?;
        let elapsed = started.elapsed();
        self.metrics.observe_exec(elapsed);
        Ok(ExecResponse {
            result: ExecResult {
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                exit_code: out.exit_code,
                error: out.error,
            },
            exec_ms: (elapsed.as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        })
    }

    /// Starts a command and returns its NDJSON frames. Errors before the
    /// command starts (404, 409, …) are returned as errors, not frames.
    pub async fn stream(
        &self,
        user: &User,
        id: &str,
        req: ExecRequest,
    ) -> Result<impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static, ServiceError> {
        let (sid, spec) = self.spec(user, id, req).await?;
        let active = self.sandboxes.active(&sid);
        let events = self.runtime.exec_stream(&sid, spec).await?;
        // The stream holds the activity until it ends or the client leaves.
        let frames = exec_ndjson(events, self.config.heartbeat, self.metrics.clone());
        Ok(futures::StreamExt::map(frames, move |f| {
            let _ = &active;
            f
        }))
    }
}

//! `AppState`: the configuration, the trait objects (store, runtime) and the
//! services built on them, constructed once in `main` and cloned into every
//! request (all fields are `Arc`s).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cove_api::ids::SandboxId;
use cove_runtime::Runtime;
use cove_store::Store;

use crate::activity::Activity;
use crate::metrics::Metrics;
use crate::mounts::Mounter;
use crate::services::attachments::AttachmentService;
use crate::services::catalog::CatalogService;
use crate::services::disks::DiskService;
use crate::services::exec::ExecService;
use crate::services::files::FileService;
use crate::services::lifecycle::LifecycleService;
use crate::services::sandboxes::SandboxService;

/// Server settings that handlers and services read.
#[derive(Clone, Debug)]
pub struct AppConfig {
    /// The only region this control plane places sandboxes in.
    pub region: String,
    /// This host's id in `/v1/hosts` and for `host_id` pinning.
    pub host_id: String,
    /// Optional path prefix every route is also served under (`/base`).
    pub base_path: Option<String>,
    /// Longest silence on an NDJSON stream before a heartbeat (≤ 5 s).
    pub heartbeat: Duration,
    /// Domain of ingress URLs (`<id>-<port>.<domain>`); none means no template.
    pub ingress_domain: Option<String>,
    /// Pause between reconciler passes.
    pub reconcile_interval: Duration,
    /// Pause between auto-pause passes.
    pub auto_pause_tick: Duration,
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            region: "local".into(),
            host_id: "local".into(),
            base_path: None,
            heartbeat: Duration::from_secs(5),
            ingress_domain: None,
            reconcile_interval: Duration::from_secs(30),
            auto_pause_tick: Duration::from_secs(5),
        }
    }
}

/// Sandboxes whose create or destroy is running in this process right now.
/// The reconciler skips them, so it never tears down a sandbox mid-create.
#[derive(Debug, Default)]
pub struct InFlight(Mutex<HashSet<SandboxId>>);

impl InFlight {
    /// Marks `id` busy until the guard drops; `None` when it already is
    /// (check and mark are one step, so two workers never both proceed).
    pub fn try_enter(self: &Arc<Self>, id: &SandboxId) -> Option<InFlightGuard> {
        self.lock().insert(id.clone()).then(|| InFlightGuard {
            set: self.clone(),
            id: id.clone(),
        })
    }

    /// Whether `id` is busy.
    pub fn contains(&self, id: &SandboxId) -> bool {
        self.lock().contains(id)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<SandboxId>> {
        // The set holds plain ids; a panic elsewhere cannot leave it torn.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Removes its id from the in-flight set when dropped.
pub struct InFlightGuard {
    set: Arc<InFlight>,
    id: SandboxId,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.set.lock().remove(&self.id);
    }
}

/// Everything a request needs.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<AppConfig>,
    pub store: Arc<dyn Store>,
    pub runtime: Arc<dyn Runtime>,
    pub mounter: Arc<dyn Mounter>,
    pub metrics: Arc<Metrics>,
    pub inflight: Arc<InFlight>,
    pub activity: Arc<Activity>,
    pub sandboxes: SandboxService,
    pub exec: ExecService,
    pub files: FileService,
    pub catalog: CatalogService,
    pub disks: DiskService,
    pub attachments: AttachmentService,
    pub lifecycle: LifecycleService,
}

impl AppState {
    /// Builds the services over a store, a runtime and a mounter.
    pub fn new(
        store: Arc<dyn Store>,
        runtime: Arc<dyn Runtime>,
        mounter: Arc<dyn Mounter>,
        config: AppConfig,
    ) -> Self {
        let config = Arc::new(config);
        let metrics = Arc::new(Metrics::new());
        let inflight = Arc::new(InFlight::default());
        let activity = Arc::new(Activity::default());
        let attachments = AttachmentService::new(
            store.clone(),
            runtime.clone(),
            mounter.clone(),
            inflight.clone(),
        );
        let disks = DiskService::new(store.clone(), mounter.clone());
        let catalog = CatalogService::new(store.clone(), runtime.clone(), config.clone());
        let sandboxes = SandboxService::new(
            store.clone(),
            runtime.clone(),
            config.clone(),
            catalog.clone(),
            metrics.clone(),
            inflight.clone(),
            attachments.clone(),
            activity.clone(),
        );
        let exec = ExecService::new(
            store.clone(),
            runtime.clone(),
            sandboxes.clone(),
            metrics.clone(),
            config.clone(),
        );
        let files = FileService::new(runtime.clone(), sandboxes.clone());
        let lifecycle = LifecycleService::new(
            store.clone(),
            runtime.clone(),
            sandboxes.clone(),
            attachments.clone(),
            inflight.clone(),
            activity.clone(),
        );
        Self {
            config,
            store,
            runtime,
            mounter,
            metrics,
            inflight,
            activity,
            sandboxes,
            exec,
            files,
            catalog,
            disks,
            attachments,
            lifecycle,
        }
    }
}

//! Shapes, rootfs, hosts, whoami and readiness.

use std::sync::Arc;

use cove_api::catalog::{
    HostPublic, HostStatus, ReadyzResponse, RootfsData, RootfsEntry, Shape, WhoAmIStats, WhoAmIView,
};
use cove_api::envelope::ListPage;
use cove_api::sandbox::{page_limit, PageQuery, SandboxStatus};
use cove_runtime::Runtime;
use cove_store::{Store, User};

use crate::catalog::{shapes, DEFAULT_ROOTFS};
use crate::error::ServiceError;
use crate::state::AppConfig;

/// Read-only catalog and identity queries.
#[derive(Clone)]
pub struct CatalogService {
    store: Arc<dyn Store>,
    runtime: Arc<dyn Runtime>,
    config: Arc<AppConfig>,
}

impl CatalogService {
    pub fn new(store: Arc<dyn Store>, runtime: Arc<dyn Runtime>, config: Arc<AppConfig>) -> Self {
        Self {
            store,
            runtime,
            config,
        }
    }

    /// A page of shapes.
    pub fn shapes(&self, q: PageQuery) -> ListPage<Shape> {
        ListPage::slice(shapes(), page_limit(q.limit), q.offset.unwrap_or(0))
    }

    /// The images this host can run, and the default among them.
    pub async fn rootfs(&self) -> Result<RootfsData, ServiceError> {
        let images = self.runtime.capacity().await?.images;
        let default = if images.iter().any(|i| i == DEFAULT_ROOTFS) {
            DEFAULT_ROOTFS.to_owned()
        } else {
            images.first().cloned().unwrap_or_default()
        };
        let entries = images
            .iter()
            .map(|name| RootfsEntry {
                name: name.clone(),
                description: None,
                deprecated: None,
                successor: None,
            })
            .collect();
        Ok(RootfsData {
            rootfs: images,
            default,
            entries,
        })
    }

    /// This host (the only one) with its capacity.
    pub async fn hosts(&self, q: PageQuery) -> Result<ListPage<HostPublic>, ServiceError> {
        let cap = self.runtime.capacity().await?;
        let host = HostPublic {
            id: self.config.host_id.clone(),
            status: HostStatus::Active,
            free_mib: cap.free_mib,
            vm_count: cap.sandbox_count,
            rootfses: cap.images,
        };
        Ok(ListPage::slice(
            vec![host],
            page_limit(q.limit),
            q.offset.unwrap_or(0),
        ))
    }

    /// The caller and their sandbox counts (`total` excludes destroyed ones).
    pub async fn whoami(&self, user: &User) -> Result<WhoAmIView, ServiceError> {
        let mut stats = WhoAmIStats::default();
        for (status, n) in self.store.count_by_status(Some(&user.id)).await? {
            match status {
                SandboxStatus::Destroyed => continue,
                SandboxStatus::Running => stats.running += n,
                SandboxStatus::Paused => stats.paused += n,
                SandboxStatus::Creating
                | SandboxStatus::Pausing
                | SandboxStatus::Resuming
                | SandboxStatus::Forking
                | SandboxStatus::Error
                | SandboxStatus::Destroying
                | SandboxStatus::Failed => stats.other += n,
            }
            stats.total += n;
        }
        Ok(WhoAmIView {
            user_id: user.name.clone(),
            stats,
        })
    }

    /// Ready when the store answers and the runtime reports its capacity.
    pub async fn readiness(&self) -> ReadyzResponse {
        let reason = match (self.store.ping().await, self.runtime.capacity().await) {
            (Ok(()), Ok(_)) => None,
            (Err(e), _) => {
                tracing::warn!(error = %e, "store not ready");
                Some("store unavailable".to_owned())
            }
            (_, Err(e)) => {
                tracing::warn!(error = %e, "runtime not ready");
                Some("runtime unavailable".to_owned())
            }
        };
        ReadyzResponse {
            ready: reason.is_none(),
            reason,
            scheduler_last_ok_ms_ago: None,
        }
    }
}

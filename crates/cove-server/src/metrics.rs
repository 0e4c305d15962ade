//! Prometheus metrics: requests by route (the matched route template, so
//! cardinality stays bounded), method and status; sandboxes by status
//! (read from the store at scrape time); create and exec latency. The
//! registry is owned by `AppState`, not a global, so tests can build as many
//! servers as they like.

use std::sync::Mutex;
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use cove_api::sandbox::SandboxStatus;
use cove_store::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::state::AppState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: String,
}

/// The server's metrics and their registry.
pub struct Metrics {
    /// Guarded because `encode` needs the registry while gauges are refreshed.
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    sandboxes: Family<StatusLabels, Gauge>,
    create_seconds: Histogram,
    exec_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cove");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests by route, method and status",
            requests.clone(),
        );
        let sandboxes = Family::<StatusLabels, Gauge>::default();
        registry.register("sandboxes", "Sandboxes by status", sandboxes.clone());
        let create_seconds = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        registry.register(
            "sandbox_create_seconds",
            "Sandbox create latency",
            create_seconds.clone(),
        );
        let exec_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "exec_seconds",
            "Exec latency (start to exit)",
            exec_seconds.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            sandboxes,
            create_seconds,
            exec_seconds,
        }
    }

    /// Records one sandbox create.
    pub fn observe_create(&self, elapsed: Duration) {
        self.create_seconds.observe(elapsed.as_secs_f64());
    }

    /// Records one exec.
    pub fn observe_exec(&self, elapsed: Duration) {
        self.exec_seconds.observe(elapsed.as_secs_f64());
    }

    fn observe_request(&self, route: String, method: String, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
    }

    /// The text exposition, with the sandbox gauges refreshed from the store.
    pub async fn render(&self, store: &dyn Store) -> Result<String, String> {
        let counts = store
            .count_by_status(None)
            .await
            .map_err(|e| e.to_string())?;
        for status in SandboxStatus::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| *s == status)
                .map(|(_, n)| *n)
                .unwrap_or(0);
            let label = StatusLabels {
                status: status.as_str().to_owned(),
            };
            self.sandboxes
                .get_or_create(&label)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let registry = self.registry.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }
}

/// Counts every request by matched route, method and status.
pub async fn track_requests(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let response = next.run(request).await;
    state
        .metrics
        .observe_request(route, method, response.status().as_u16());
    response
}

//! Every route of the HTTP surface, in one table, and the middleware stack.
//! The literal `by-ip` segment wins over `{id}` (the router prefers static
//! segments). With a base path configured, the same routes are served both
//! at the root and under the prefix; `/healthz` is always at the root for the
//! TS SDK's warm-up request.

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{delete, get, post, put};
use axum::Router;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::log_internal_errors;
use crate::handlers::{catalog, disks, exec, files, lifecycle, sandboxes, system};
use crate::metrics::track_requests;
use crate::state::AppState;

/// Largest JSON request body.
const JSON_BODY_LIMIT: usize = 16 * 1024 * 1024;

fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/openapi.json", get(system::openapi))
        .route("/metrics", get(system::metrics))
        .route("/v1/shapes", get(catalog::shapes_list))
        .route("/v1/rootfs", get(catalog::rootfs_list))
        .route("/v1/whoami", get(catalog::whoami_get))
        .route("/v1/hosts", get(catalog::hosts_list))
        .route(
            "/v1/sandboxes",
            post(sandboxes::sandboxes_create).get(sandboxes::sandboxes_list),
        )
        .route(
            "/v1/sandboxes/by-ip/{ip}",
            get(sandboxes::sandboxes_get_by_ip),
        )
        .route(
            "/v1/sandboxes/{id}",
            get(sandboxes::sandboxes_get)
                .patch(sandboxes::sandboxes_patch)
                .delete(sandboxes::sandboxes_delete),
        )
        .route("/v1/sandboxes/{id}/pause", post(lifecycle::sandboxes_pause))
        .route(
            "/v1/sandboxes/{id}/resume",
            post(lifecycle::sandboxes_resume),
        )
        .route("/v1/sandboxes/{id}/fork", post(lifecycle::sandboxes_fork))
        .route(
            "/v1/sandboxes/{id}/resize",
            post(lifecycle::sandboxes_resize),
        )
        .route(
            "/v1/sandboxes/{id}/ssh-pubkeys",
            post(lifecycle::sandboxes_ssh_pubkeys),
        )
        .route("/v1/sandboxes/{id}/exec", post(exec::sandboxes_exec))
        .route(
            "/v1/sandboxes/{id}/files",
            put(files::files_upload).get(files::files_download),
        )
        .route(
            "/v1/sandboxes/{id}/disks",
            get(disks::attachments_list).post(disks::attachments_create),
        )
        .route(
            "/v1/sandboxes/{id}/disks/{disk}",
            delete(disks::attachments_delete).patch(disks::attachments_patch),
        )
        .route(
            "/v1/disks",
            post(disks::disks_create).get(disks::disks_list),
        )
        .route(
            "/v1/disks/{disk}",
            get(disks::disks_get)
                .patch(disks::disks_patch)
                .delete(disks::disks_delete),
        )
        .method_not_allowed_fallback(system::method_not_allowed)
        .fallback(system::not_found)
}

/// The whole server.
pub fn app(state: AppState) -> Router {
    let api = routes();
    let router = match state
        .config
        .base_path
        .as_deref()
        .map(|p| p.trim_end_matches('/'))
    {
        Some(base) if !base.is_empty() && base.starts_with('/') => {
            Router::new().merge(api.clone()).nest(base, api)
        }
        _ => api,
    };
    let middleware = ServiceBuilder::new()
        // JSON bodies (exec stdin is a JSON string); file uploads stream and
        // are not subject to this limit.
        .layer(DefaultBodyLimit::max(JSON_BODY_LIMIT))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(
            TraceLayer::new_for_http().make_span_with(|req: &Request<Body>| {
                let request_id = req
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                tracing::info_span!(
                    "request",
                    method = %req.method(),
                    path = %req.uri().path(),
                    request_id = %request_id,
                )
            }),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(from_fn(log_internal_errors))
        .layer(from_fn_with_state(state.clone(), track_requests));
    router.layer(middleware).with_state(state)
}

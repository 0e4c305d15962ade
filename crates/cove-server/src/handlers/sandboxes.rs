//! Sandbox CRUD.

use axum::extract::State;
use axum::Json;
use cove_api::envelope::{ListPage, Success};
use cove_api::sandbox::{
    CreateSandboxRequest, CreateSandboxResponse, DestroyedResponse, ListSandboxesQuery,
    PatchSandboxRequest, SandboxView,
};

use super::ok;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// Creates a sandbox and returns once it runs.
#[utoipa::path(post, path = "/v1/sandboxes", tag = "sandboxes", request_body = CreateSandboxRequest,
    responses((status = 200, description = "JSend success, status running", body = CreateSandboxResponse),
              (status = 400, description = "invalid body, unknown shape/rootfs/region"),
              (status = 409, description = "name taken"),
              (status = 503, description = "no host with capacity (Retry-After)")))]
pub async fn sandboxes_create(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(req): ApiJson<CreateSandboxRequest>,
) -> Result<Json<Success<CreateSandboxResponse>>, ApiError> {
    Ok(ok(state.sandboxes.create(&user, req).await?))
}

/// Lists the caller's sandboxes.
#[utoipa::path(get, path = "/v1/sandboxes", tag = "sandboxes", params(ListSandboxesQuery),
    responses((status = 200, description = "JSend success with a page", body = ListPage<SandboxView>)))]
pub async fn sandboxes_list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(q): ApiQuery<ListSandboxesQuery>,
) -> Result<Json<Success<ListPage<SandboxView>>>, ApiError> {
    Ok(ok(state.sandboxes.list(&user, q).await?))
}

/// One sandbox (destroyed ones stay readable).
#[utoipa::path(get, path = "/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, description = "JSend success", body = SandboxView),
              (status = 404, description = "not found")))]
pub async fn sandboxes_get(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Success<SandboxView>>, ApiError> {
    Ok(ok(state.sandboxes.get(&user, &id).await?))
}

/// The caller's sandbox with this address.
#[utoipa::path(get, path = "/v1/sandboxes/by-ip/{ip}", tag = "sandboxes", params(("ip" = String, Path)),
    responses((status = 200, description = "JSend success", body = SandboxView),
              (status = 404, description = "no sandbox with that address")))]
pub async fn sandboxes_get_by_ip(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(ip): ApiPath<String>,
) -> Result<Json<Success<SandboxView>>, ApiError> {
    Ok(ok(state.sandboxes.get_by_ip(&user, &ip).await?))
}

/// Changes ingress and auto-pause settings.
#[utoipa::path(patch, path = "/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)),
    request_body = PatchSandboxRequest,
    responses((status = 200, description = "JSend success", body = SandboxView),
              (status = 400, description = "invalid values"), (status = 404, description = "not found")))]
pub async fn sandboxes_patch(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<PatchSandboxRequest>,
) -> Result<Json<Success<SandboxView>>, ApiError> {
    Ok(ok(state.sandboxes.patch(&user, &id, req).await?))
}

/// Destroys a sandbox (idempotent).
#[utoipa::path(delete, path = "/v1/sandboxes/{id}", tag = "sandboxes", params(("id" = String, Path)),
    responses((status = 200, description = "JSend success", body = DestroyedResponse),
              (status = 404, description = "not found")))]
pub async fn sandboxes_delete(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Success<DestroyedResponse>>, ApiError> {
    Ok(ok(state.sandboxes.destroy(&user, &id).await?))
}

//! Pause, resume, fork, resize and ssh-pubkeys.

use axum::extract::State;
use axum::Json;
use cove_api::envelope::Success;
use cove_api::lifecycle::{
    ForkSandboxRequest, ResizeRequest, ResizeResponse, SshPubkeysRequest, SshPubkeysResponse,
};
use cove_api::sandbox::SandboxView;

use super::ok;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::state::AppState;

/// Checkpoints a running sandbox to disk (no process or memory left on the host).
#[utoipa::path(post, path = "/v1/sandboxes/{id}/pause", tag = "lifecycle", params(("id" = String, Path)),
    responses((status = 200, description = "JSend success, status paused", body = SandboxView),
              (status = 404, description = "not found"),
              (status = 409, description = "not running, a pending write could not be uploaded, or the checkpoint failed (it keeps running)")))]
pub async fn sandboxes_pause(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Success<SandboxView>>, ApiError> {
    Ok(ok(state.lifecycle.pause(&user, &id).await?))
}

/// Restores a paused (or `error`) sandbox.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/resume", tag = "lifecycle", params(("id" = String, Path)),
    responses((status = 200, description = "JSend success, status running", body = SandboxView),
              (status = 404, description = "not found"),
              (status = 409, description = "not paused"),
              (status = 500, description = "restore failed; status error, resume retries")))]
pub async fn sandboxes_resume(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Success<SandboxView>>, ApiError> {
    Ok(ok(state.lifecycle.resume(&user, &id).await?))
}

/// A new sandbox restored from a copy of a paused one.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/fork", tag = "lifecycle", params(("id" = String, Path)),
    request_body = ForkSandboxRequest,
    responses((status = 200, description = "JSend success, the new sandbox", body = SandboxView),
              (status = 404, description = "not found"),
              (status = 409, description = "the source is not paused")))]
pub async fn sandboxes_fork(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ForkSandboxRequest>,
) -> Result<Json<Success<SandboxView>>, ApiError> {
    Ok(ok(state.lifecycle.fork(&user, &id, req).await?))
}

/// Grows a sandbox's disk.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/resize", tag = "lifecycle", params(("id" = String, Path)),
    request_body = ResizeRequest,
    responses((status = 200, description = "JSend success", body = ResizeResponse),
              (status = 400, description = "not larger than now"),
              (status = 409, description = "neither running nor paused")))]
pub async fn sandboxes_resize(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<ResizeRequest>,
) -> Result<Json<Success<ResizeResponse>>, ApiError> {
    Ok(ok(state.lifecycle.resize(&user, &id, req).await?))
}

/// Adds SSH public keys (deduplicated).
#[utoipa::path(post, path = "/v1/sandboxes/{id}/ssh-pubkeys", tag = "lifecycle", params(("id" = String, Path)),
    request_body = SshPubkeysRequest,
    responses((status = 200, description = "JSend success", body = SshPubkeysResponse),
              (status = 400, description = "invalid keys")))]
pub async fn sandboxes_ssh_pubkeys(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<SshPubkeysRequest>,
) -> Result<Json<Success<SshPubkeysResponse>>, ApiError> {
    Ok(ok(state.lifecycle.add_ssh_pubkeys(&user, &id, req).await?))
}

//! Disks (`/v1/disks`) and attachments (`/v1/sandboxes/{id}/disks`).

use axum::extract::State;
use axum::Json;
use cove_api::disk::{
    AttachmentPatchRequest, DiskAttachedResponse, DiskAttachment, DiskCreateRequest,
    DiskDeletedResponse, DiskDetachedResponse, DiskPatchRequest, DiskView, MountPathQuery,
    SandboxDiskView,
};
use cove_api::envelope::{ListPage, Success};
use cove_api::sandbox::PageQuery;

use super::ok;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// Registers a bucket as a disk (probed first; idempotent by name).
#[utoipa::path(post, path = "/v1/disks", tag = "disks", request_body = DiskCreateRequest,
    responses((status = 200, description = "JSend success", body = DiskView),
              (status = 400, description = "invalid body, or the bucket could not be reached, found or read with the credentials (data.code says which)"),
              (status = 409, description = "name taken by a disk with another config")))]
pub async fn disks_create(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiJson(req): ApiJson<DiskCreateRequest>,
) -> Result<Json<Success<DiskView>>, ApiError> {
    Ok(ok(state.disks.create(&user, req).await?))
}

/// Lists the caller's disks.
#[utoipa::path(get, path = "/v1/disks", tag = "disks", params(PageQuery),
    responses((status = 200, description = "JSend success with a page", body = ListPage<DiskView>)))]
pub async fn disks_list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Success<ListPage<DiskView>>>, ApiError> {
    Ok(ok(state.disks.list(&user, q).await?))
}

/// One disk, by id or name.
#[utoipa::path(get, path = "/v1/disks/{idOrName}", tag = "disks", params(("idOrName" = String, Path)),
    responses((status = 200, description = "JSend success", body = DiskView),
              (status = 404, description = "not found")))]
pub async fn disks_get(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Success<DiskView>>, ApiError> {
    Ok(ok(state.disks.get(&user, &id).await?))
}

/// Rotates a disk's credentials (running mounts switch to them).
#[utoipa::path(patch, path = "/v1/disks/{idOrName}", tag = "disks", params(("idOrName" = String, Path)),
    request_body = DiskPatchRequest,
    responses((status = 200, description = "JSend success", body = DiskView),
              (status = 400, description = "missing or refused credentials"),
              (status = 404, description = "not found")))]
pub async fn disks_patch(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<DiskPatchRequest>,
) -> Result<Json<Success<DiskView>>, ApiError> {
    Ok(ok(state.disks.rotate(&user, &id, req).await?))
}

/// Forgets a disk (the bucket is not touched).
#[utoipa::path(delete, path = "/v1/disks/{idOrName}", tag = "disks", params(("idOrName" = String, Path)),
    responses((status = 200, description = "JSend success", body = DiskDeletedResponse),
              (status = 404, description = "not found"),
              (status = 409, description = "attached to a sandbox that is not destroyed")))]
pub async fn disks_delete(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Success<DiskDeletedResponse>>, ApiError> {
    Ok(ok(state.disks.delete(&user, &id).await?))
}

/// A sandbox's disks, each with its mount's state.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/disks", tag = "disks", params(("id" = String, Path), PageQuery),
    responses((status = 200, description = "JSend success with a page", body = ListPage<SandboxDiskView>),
              (status = 404, description = "not found")))]
pub async fn attachments_list(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Success<ListPage<SandboxDiskView>>>, ApiError> {
    Ok(ok(state.attachments.list(&user, &id, q).await?))
}

/// Mounts a disk into a running sandbox; usable when this returns.
#[utoipa::path(post, path = "/v1/sandboxes/{id}/disks", tag = "disks", params(("id" = String, Path)),
    request_body = DiskAttachment,
    responses((status = 200, description = "JSend success", body = DiskAttachedResponse),
              (status = 400, description = "invalid mount path or sub path, or the bucket cannot be mounted"),
              (status = 404, description = "sandbox or disk not found"),
              (status = 409, description = "sandbox not running, or the mount path overlaps another attachment")))]
pub async fn attachments_create(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<DiskAttachment>,
) -> Result<Json<Success<DiskAttachedResponse>>, ApiError> {
    Ok(ok(state.attachments.attach(&user, &id, req).await?))
}

/// Detaches a disk after uploading its pending writes.
#[utoipa::path(delete, path = "/v1/sandboxes/{id}/disks/{diskId}", tag = "disks",
    params(("id" = String, Path), ("diskId" = String, Path), MountPathQuery),
    responses((status = 200, description = "JSend success", body = DiskDetachedResponse),
              (status = 404, description = "not attached"),
              (status = 409, description = "pending writes could not be uploaded; still mounted")))]
pub async fn attachments_delete(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath((id, disk)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<MountPathQuery>,
) -> Result<Json<Success<DiskDetachedResponse>>, ApiError> {
    Ok(ok(state
        .attachments
        .detach(&user, &id, &disk, q.mount_path.as_deref())
        .await?))
}

/// Remounts an attachment with another `read_only` or `sub_path`.
#[utoipa::path(patch, path = "/v1/sandboxes/{id}/disks/{diskId}", tag = "disks",
    params(("id" = String, Path), ("diskId" = String, Path), MountPathQuery),
    request_body = AttachmentPatchRequest,
    responses((status = 200, description = "JSend success", body = SandboxDiskView),
              (status = 404, description = "not attached"),
              (status = 409, description = "pending writes could not be uploaded; unchanged")))]
pub async fn attachments_patch(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath((id, disk)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<MountPathQuery>,
    ApiJson(req): ApiJson<AttachmentPatchRequest>,
) -> Result<Json<Success<SandboxDiskView>>, ApiError> {
    Ok(ok(state
        .attachments
        .remount(&user, &id, &disk, q.mount_path.as_deref(), req)
        .await?))
}

//! Shapes, rootfs, hosts and whoami.

use axum::extract::State;
use axum::Json;
use cove_api::catalog::{HostPublic, RootfsData, Shape, WhoAmIView};
use cove_api::envelope::{ListPage, Success};
use cove_api::sandbox::PageQuery;

use super::ok;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::ApiQuery;
use crate::state::AppState;

/// The shape catalog (no auth; paginated).
#[utoipa::path(get, path = "/v1/shapes", tag = "catalog", params(PageQuery),
    responses((status = 200, description = "JSend success with a page of shapes", body = ListPage<Shape>)))]
pub async fn shapes_list(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Json<Success<ListPage<Shape>>> {
    ok(state.catalog.shapes(q))
}

/// The rootfs catalog (no auth).
#[utoipa::path(get, path = "/v1/rootfs", tag = "catalog",
    responses((status = 200, description = "JSend success", body = RootfsData)))]
pub async fn rootfs_list(
    State(state): State<AppState>,
) -> Result<Json<Success<RootfsData>>, ApiError> {
    Ok(ok(state.catalog.rootfs().await?))
}

/// The caller and their sandbox counts.
#[utoipa::path(get, path = "/v1/whoami", tag = "catalog",
    responses((status = 200, description = "JSend success", body = WhoAmIView),
              (status = 401, description = "missing or unknown key")))]
pub async fn whoami_get(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<Success<WhoAmIView>>, ApiError> {
    Ok(ok(state.catalog.whoami(&user).await?))
}

/// The hosts of this control plane with their capacity.
#[utoipa::path(get, path = "/v1/hosts", tag = "catalog", params(PageQuery),
    responses((status = 200, description = "JSend success with a page of hosts", body = ListPage<HostPublic>)))]
pub async fn hosts_list(
    State(state): State<AppState>,
    AuthUser(_user): AuthUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> Result<Json<Success<ListPage<HostPublic>>>, ApiError> {
    Ok(ok(state.catalog.hosts(q).await?))
}

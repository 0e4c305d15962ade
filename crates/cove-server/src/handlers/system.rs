//! Health, readiness, the OpenAPI document, metrics and the JSON fallbacks.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cove_api::catalog::{HealthzResponse, ReadyzResponse};
use cove_api::codes::ErrorCode;
use cove_api::envelope::{Fail, Success};
use utoipa::OpenApi;

use super::ok;
use crate::error::{ApiError, ServiceError};
use crate::openapi::ApiDoc;
use crate::state::AppState;

/// Liveness.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses((status = 200, description = "JSend success", body = HealthzResponse)))]
pub async fn healthz() -> Json<Success<HealthzResponse>> {
    ok(HealthzResponse { up: true })
}

/// Readiness: 200 `success` when ready, 503 `fail` with a reason otherwise.
#[utoipa::path(get, path = "/readyz", tag = "system",
    responses((status = 200, description = "ready", body = ReadyzResponse),
              (status = 503, description = "not ready (JSend fail)", body = ReadyzResponse)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let ready = state.catalog.readiness().await;
    if ready.ready {
        ok(ready).into_response()
    } else {
        let body = serde_json::json!({ "status": "fail", "data": ready });
        (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
    }
}

/// The OpenAPI 3 document of every route.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let text = state
        .metrics
        .render(state.store.as_ref())
        .await
        .map_err(ServiceError::Internal)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Unknown routes: a JSend 404.
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(Fail::new(ErrorCode::NotFound, "no such route")),
    )
        .into_response()
}

/// Known route, wrong method: a JSend 405.
pub async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(Fail::new(
            ErrorCode::InvalidRequest,
            "method not allowed on this route",
        )),
    )
        .into_response()
}

//! `POST /v1/sandboxes/{id}/exec`, buffered or streamed (`?stream=true` or
//! `"stream": true` in the body; both SDKs send both).

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use cove_api::exec::{ExecQuery, ExecRequest, ExecResponse};

use super::ok;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// Runs a command (an argv, never a shell string).
#[utoipa::path(post, path = "/v1/sandboxes/{id}/exec", tag = "exec",
    params(("id" = String, Path), ExecQuery), request_body = ExecRequest,
    responses((status = 200, description = "JSend success (buffered) or application/x-ndjson frames (stream)", body = ExecResponse),
              (status = 404, description = "not found"), (status = 409, description = "sandbox not running")))]
pub async fn sandboxes_exec(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ExecQuery>,
    ApiJson(req): ApiJson<ExecRequest>,
) -> Result<Response, ApiError> {
    if q.stream.unwrap_or(false) || req.stream.unwrap_or(false) {
        let frames = state.exec.stream(&user, &id, req).await?;
        Ok((
            [
                (header::CONTENT_TYPE, "application/x-ndjson"),
                (header::CACHE_CONTROL, "no-cache"),
                // Ask reverse proxies not to buffer the frames.
                (header::HeaderName::from_static("x-accel-buffering"), "no"),
            ],
            Body::from_stream(frames),
        )
            .into_response())
    } else {
        Ok(ok(state.exec.run(&user, &id, req).await?).into_response())
    }
}

//! `PUT` / `GET /v1/sandboxes/{id}/files?path=`: raw bytes, streamed.

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cove_api::envelope::Success;
use futures::TryStreamExt;
use serde::Deserialize;

use super::ok;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiPath, ApiQuery};
use crate::services::files::FileWritten;
use crate::state::AppState;

/// `?path=` (form-decoded, so `+` is a space).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct FilesQuery {
    /// Absolute path inside the sandbox.
    pub path: Option<String>,
}

/// Writes the request body to a file (parents created).
#[utoipa::path(put, path = "/v1/sandboxes/{id}/files", tag = "files",
    params(("id" = String, Path), FilesQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "JSend success", body = FileWritten),
              (status = 400, description = "relative or malformed path"), (status = 404, description = "not found")))]
pub async fn files_upload(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<FilesQuery>,
    body: Body,
) -> Result<Json<Success<FileWritten>>, ApiError> {
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    Ok(ok(state
        .files
        .upload(&user, &id, q.path, Box::pin(stream))
        .await?))
}

/// Streams a file's bytes.
#[utoipa::path(get, path = "/v1/sandboxes/{id}/files", tag = "files",
    params(("id" = String, Path), FilesQuery),
    responses((status = 200, description = "raw bytes", content_type = "application/octet-stream", body = Vec<u8>),
              (status = 400, description = "relative or malformed path"),
              (status = 404, description = "no such sandbox or file")))]
pub async fn files_download(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<FilesQuery>,
) -> Result<Response, ApiError> {
    let (size, stream) = state.files.download(&user, &id, q.path).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

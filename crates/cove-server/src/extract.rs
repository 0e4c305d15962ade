//! Extractors whose rejections are JSend envelopes with a machine code, so
//! malformed input is answered like every other client error.
//! `ApiJson` also accepts an empty body (no Content-Type, `Content-Length: 0`,
//! as both SDKs send for body-less POSTs) as `{}`, and does not insist on a
//! Content-Type at all.

use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use bytes::Bytes;
use cove_api::codes::ErrorCode;
use cove_api::validate::ValidationError;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, ServiceError};

fn invalid(message: String) -> ApiError {
    ApiError(ServiceError::Validation(ValidationError {
        code: ErrorCode::InvalidRequest,
        message,
    }))
}

/// A JSON body; an empty body counts as `{}`.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e: BytesRejection| {
                invalid(format!("request body could not be read: {}", e.body_text()))
            })?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(text)
            .map(ApiJson)
            .map_err(|e| invalid(format!("invalid JSON body: {e}")))
    }
}

/// Path parameters (percent-decoded per segment).
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| ApiPath(v))
            .map_err(|e: PathRejection| {
                invalid(format!("invalid path parameter: {}", e.body_text()))
            })
    }
}

/// Query parameters, decoded as `application/x-www-form-urlencoded` (`+` is a space).
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| ApiQuery(v))
            .map_err(|e: QueryRejection| invalid(format!("invalid query: {}", e.body_text())))
    }
}

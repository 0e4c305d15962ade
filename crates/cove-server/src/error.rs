//! Errors at the HTTP boundary. Services return `ServiceError`; `ApiError`
//! renders it as JSend through one exhaustive `ServiceError → (status, code)`
//! mapping (no `_ =>`, so a new variant does not compile until it has a
//! status). 4xx answers are `fail` envelopes with a string `data.code`; 5xx
//! answers are `error` envelopes with the integer status as `code`. A 500
//! says only "internal error": the real error rides in the response
//! extensions and `log_internal_errors` logs it once, inside the request span.

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use cove_api::codes::ErrorCode;
use cove_api::envelope::{ErrorEnvelope, Fail};
use cove_api::ids::SandboxId;
use cove_api::sandbox::SandboxStatus;
use cove_api::validate::ValidationError;
use cove_runtime::RuntimeError;
use cove_store::StoreError;

use crate::mounts::MountError;

/// Everything a service can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Validation(#[from] ValidationError),
    #[error("missing or invalid API key")]
    Unauthorized,
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("no such file: {0}")]
    FileNotFound(String),
    #[error("a live sandbox named {0} already exists")]
    NameTaken(String),
    #[error("sandbox {id} is {status}")]
    InvalidState {
        id: SandboxId,
        status: SandboxStatus,
    },
    #[error("sandbox {id} is not running on its host")]
    NotRunning { id: SandboxId },
    #[error("no host with capacity: {message}")]
    NoCapacity {
        message: String,
        retry_after_secs: u32,
    },
    #[error("the sandbox's disk is full")]
    NoSpace,
    #[error("agent of sandbox {id} is unreachable")]
    AgentUnreachable { id: SandboxId },
    #[error("{0} is not implemented yet")]
    NotImplemented(String),
    #[error("create of {id} failed: {reason}")]
    CreateFailed { id: SandboxId, reason: String },
    /// A disk's bucket could not be reached, mounted or flushed.
    #[error("{0}")]
    Mount(#[from] MountError),
    #[error("pause of {id} failed and it keeps running: {reason}")]
    PauseFailed { id: SandboxId, reason: String },
    #[error("resume of {id} failed: {reason}")]
    ResumeFailed { id: SandboxId, reason: String },
    #[error("a disk named {0} already exists with another config")]
    DiskNameTaken(String),
    #[error("disk {0} is attached to a sandbox that is not destroyed; detach it first")]
    DiskInUse(String),
    #[error("{0}")]
    MountPathInUse(String),
    #[error("{0}")]
    Internal(String),
}

/// How a `ServiceError` is answered.
pub struct Mapped {
    pub status: StatusCode,
    /// `Some` for 4xx (`data.code`); 5xx carry the status as their code.
    pub code: Option<ErrorCode>,
    pub retry_after_secs: Option<u32>,
}

fn client(status: StatusCode, code: ErrorCode) -> Mapped {
    Mapped {
        status,
        code: Some(code),
        retry_after_secs: None,
    }
}

fn server(status: StatusCode) -> Mapped {
    Mapped {
        status,
        code: None,
        retry_after_secs: None,
    }
}

impl ServiceError {
    /// The one mapping from error to HTTP status and machine code.
    pub fn mapped(&self) -> Mapped {
        match self {
            Self::Validation(v) => client(StatusCode::BAD_REQUEST, v.code),
            Self::Unauthorized => client(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized),
            Self::NotFound { .. } => client(StatusCode::NOT_FOUND, ErrorCode::NotFound),
            Self::FileNotFound(_) => client(StatusCode::NOT_FOUND, ErrorCode::NotFound),
            Self::NameTaken(_) => client(StatusCode::CONFLICT, ErrorCode::NameTaken),
            Self::InvalidState { .. } => client(StatusCode::CONFLICT, ErrorCode::InvalidState),
            Self::NotRunning { .. } => client(StatusCode::CONFLICT, ErrorCode::InvalidState),
            Self::NoSpace => client(StatusCode::CONFLICT, ErrorCode::NoSpace),
            Self::NoCapacity {
                retry_after_secs, ..
            } => Mapped {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: None,
                retry_after_secs: Some(*retry_after_secs),
            },
            // The command was not started, so a retry (which the SDKs do
            // for 503 even on POST) is safe.
            Self::AgentUnreachable { .. } => Mapped {
                status: StatusCode::SERVICE_UNAVAILABLE,
                code: None,
                retry_after_secs: Some(1),
            },
            Self::NotImplemented(_) => server(StatusCode::NOT_IMPLEMENTED),
            Self::Mount(m) => mount_mapped(m),
            Self::PauseFailed { .. } => client(StatusCode::CONFLICT, ErrorCode::PauseFailed),
            Self::ResumeFailed { .. } => server(StatusCode::INTERNAL_SERVER_ERROR),
            Self::DiskNameTaken(_) => client(StatusCode::CONFLICT, ErrorCode::NameTaken),
            Self::DiskInUse(_) => client(StatusCode::CONFLICT, ErrorCode::DiskInUse),
            Self::MountPathInUse(_) => client(StatusCode::CONFLICT, ErrorCode::MountPathInUse),
            Self::CreateFailed { .. } => server(StatusCode::INTERNAL_SERVER_ERROR),
            Self::Internal(_) => server(StatusCode::INTERNAL_SERVER_ERROR),
        }
    }

    /// What the client is told: everything but internal errors is user-facing.
    fn public_message(&self) -> String {
        match self {
            Self::Internal(_) => "internal error".to_owned(),
            Self::ResumeFailed { id, .. } => format!(
                "resume of {id} failed; it is in status error: POST /v1/sandboxes/{id}/resume to retry"
            ),
            Self::Mount(MountError::Host { .. }) => {
                "mounting the disk on the host failed".to_owned()
            }
            Self::CreateFailed { id, .. } => {
                format!("create of {id} failed; GET the sandbox for its failure_reason")
            }
            other => other.to_string(),
        }
    }
}

/// Bucket problems are the caller's to fix (400, each with its code); a
/// failed flush keeps the mount (409); a host-side failure is ours (500).
fn mount_mapped(e: &MountError) -> Mapped {
    let bad = |code| client(StatusCode::BAD_REQUEST, code);
    match e {
        MountError::Unreachable { .. } => bad(ErrorCode::EndpointUnreachable),
        MountError::Timeout { .. } => bad(ErrorCode::EndpointTimeout),
        MountError::BucketNotFound { .. } => bad(ErrorCode::BucketNotFound),
        MountError::AccessDenied { .. } => bad(ErrorCode::AccessDenied),
        MountError::Protocol { .. } => bad(ErrorCode::ProbeFailed),
        MountError::InvalidConfig { .. } => bad(ErrorCode::InvalidEndpoint),
        MountError::FlushFailed { .. } => client(StatusCode::CONFLICT, ErrorCode::FlushFailed),
        MountError::NotMounted => client(StatusCode::CONFLICT, ErrorCode::MountFailed),
        MountError::Host { .. } => server(StatusCode::INTERNAL_SERVER_ERROR),
    }
}

impl From<RuntimeError> for ServiceError {
    fn from(e: RuntimeError) -> Self {
        match e {
            RuntimeError::NotFound(id) => Self::NotRunning { id },
            RuntimeError::NotRunning(id) => Self::NotRunning { id },
            RuntimeError::UnknownImage(name) => Self::Validation(ValidationError {
                code: ErrorCode::UnknownRootfs,
                message: format!("rootfs {name} is not available on this host"),
            }),
            RuntimeError::NoCapacity(message) => Self::NoCapacity {
                message,
                retry_after_secs: 5,
            },
            RuntimeError::InvalidPath(p) => Self::Validation(ValidationError {
                code: ErrorCode::InvalidPath,
                message: format!("path {p:?} is invalid"),
            }),
            RuntimeError::FileNotFound(p) => Self::FileNotFound(p),
            RuntimeError::IsDirectory(p) => Self::Validation(ValidationError {
                code: ErrorCode::IsADirectory,
                message: format!("path {p:?} is a directory"),
            }),
            RuntimeError::NoSpace => Self::NoSpace,
            // Pause/resume/fork are not wired yet; these keep the mapping
            // exhaustive until they are: wrong state is 409, a shrink 422.
            RuntimeError::NotCheckpointed(id) => Self::NotRunning { id },
            e @ RuntimeError::DiskShrink { .. } => Self::Validation(ValidationError {
                code: ErrorCode::ValidationFailed,
                message: e.to_string(),
            }),
            e @ RuntimeError::Failed { .. } => Self::Internal(e.to_string()),
            RuntimeError::AgentUnreachable { id, .. } => Self::AgentUnreachable { id },
            RuntimeError::Unsupported(what) => Self::NotImplemented(what),
            RuntimeError::Io(e) => Self::Internal(format!("runtime i/o: {e}")),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NameTaken { name } => Self::NameTaken(name),
            e @ (StoreError::Database(_)
            | StoreError::Migrate(_)
            | StoreError::Corrupt { .. }
            | StoreError::Crypto(_)
            | StoreError::UnsupportedUrl) => Self::Internal(format!("store: {e}")),
        }
    }
}

/// The detail of a 500, carried to `log_internal_errors` in the response
/// extensions (never serialised).
#[derive(Clone, Debug)]
pub struct InternalDetail(pub String);

/// An error answered as a JSend envelope.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl<E: Into<ServiceError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mapped = self.0.mapped();
        let message = self.0.public_message();
        let mut response = match mapped.code {
            Some(code) => (mapped.status, Json(Fail::new(code, message))).into_response(),
            None => (
                mapped.status,
                Json(ErrorEnvelope::new(mapped.status.as_u16(), message)),
            )
                .into_response(),
        };
        if let Some(secs) = mapped.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if mapped.status == StatusCode::INTERNAL_SERVER_ERROR {
            response
                .extensions_mut()
                .insert(InternalDetail(self.0.to_string()));
        }
        response
    }
}

/// Logs the real error of a 500 once, in the request's span.
pub async fn log_internal_errors(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Some(InternalDetail(detail)) = response.extensions_mut().remove::<InternalDetail>() {
        tracing::error!(error = %detail, "request failed");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn render(e: ServiceError) -> (StatusCode, serde_json::Value, Response) {
        let mut resp = ApiError(e).into_response();
        let status = resp.status();
        let body = std::mem::take(resp.body_mut())
            .collect()
            .await
            .unwrap()
            .to_bytes();
        (status, serde_json::from_slice(&body).unwrap(), resp)
    }

    #[tokio::test]
    async fn client_errors_are_fail_with_string_code() {
        let (status, body, _) = render(ServiceError::NotFound {
            what: "sandbox",
            id: "sb_x".into(),
        })
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["status"], "fail");
        assert_eq!(body["data"]["code"], "not_found");
        assert_eq!(body["data"]["message"], "sandbox sb_x not found");
    }

    #[tokio::test]
    async fn internal_errors_hide_detail_but_keep_it_for_the_log() {
        let (status, body, resp) = render(ServiceError::Internal("db password wrong".into())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            body,
            serde_json::json!({"status":"error","message":"internal error","code":500})
        );
        assert_eq!(
            resp.extensions().get::<InternalDetail>().unwrap().0,
            "db password wrong"
        );
    }

    #[tokio::test]
    async fn no_capacity_is_503_with_retry_after() {
        let (status, body, resp) = render(ServiceError::NoCapacity {
            message: "full".into(),
            retry_after_secs: 5,
        })
        .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "error");
        assert_eq!(body["code"], 503);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "5");
    }

    #[test]
    fn mount_errors_are_client_errors_but_host_failures() {
        let cases: Vec<(MountError, u16, Option<&str>)> = vec![
            (
                MountError::Unreachable {
                    message: "refused".into(),
                },
                400,
                Some("endpoint_unreachable"),
            ),
            (
                MountError::Timeout { secs: 5 },
                400,
                Some("endpoint_timeout"),
            ),
            (
                MountError::BucketNotFound { bucket: "b".into() },
                400,
                Some("bucket_not_found"),
            ),
            (
                MountError::AccessDenied {
                    code: "InvalidAccessKeyId".into(),
                },
                400,
                Some("access_denied"),
            ),
            (
                MountError::Protocol {
                    message: "x".into(),
                },
                400,
                Some("probe_failed"),
            ),
            (
                MountError::InvalidConfig {
                    message: "x".into(),
                },
                400,
                Some("invalid_endpoint"),
            ),
            (
                MountError::FlushFailed {
                    files: 1,
                    message: "x".into(),
                },
                409,
                Some("flush_failed"),
            ),
            (MountError::NotMounted, 409, Some("mount_failed")),
            (
                MountError::Host {
                    message: "/var/lib/cove/mounts/x: EPERM".into(),
                },
                500,
                None,
            ),
        ];
        for (err, status, code) in cases {
            let e = ServiceError::Mount(err);
            let m = e.mapped();
            assert_eq!(m.status.as_u16(), status, "{e}");
            assert_eq!(m.code.map(ErrorCode::as_str), code, "{e}");
        }
        let host = ServiceError::Mount(MountError::Host {
            message: "/secret/path".into(),
        });
        assert!(!host.public_message().contains("/secret/path"));
    }

    #[test]
    fn runtime_errors_map_to_distinct_statuses() {
        let id = SandboxId::generate();
        let cases: Vec<(RuntimeError, u16)> = vec![
            (RuntimeError::NotFound(id.clone()), 409),
            (RuntimeError::NotRunning(id.clone()), 409),
            (RuntimeError::UnknownImage("x".into()), 400),
            (RuntimeError::NoCapacity("x".into()), 503),
            (RuntimeError::InvalidPath("x".into()), 400),
            (RuntimeError::FileNotFound("x".into()), 404),
            (RuntimeError::IsDirectory("x".into()), 400),
            (RuntimeError::NoSpace, 409),
            (RuntimeError::NotCheckpointed(id.clone()), 409),
            (
                RuntimeError::DiskShrink {
                    id: id.clone(),
                    current_mib: 2048,
                    requested_mib: 1024,
                },
                400,
            ),
            (
                RuntimeError::Failed {
                    id: id.clone(),
                    op: "create",
                    message: "x".into(),
                },
                500,
            ),
            (
                RuntimeError::AgentUnreachable {
                    id,
                    message: "x".into(),
                },
                503,
            ),
            (RuntimeError::Unsupported("x".into()), 501),
            (RuntimeError::Io(std::io::Error::other("x")), 500),
        ];
        for (err, status) in cases {
            let text = err.to_string();
            assert_eq!(
                ServiceError::from(err).mapped().status.as_u16(),
                status,
                "{text}"
            );
        }
    }
}

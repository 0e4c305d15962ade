//! The error of every `ObjectClient` operation, rich enough for the
//! filesystem to choose an errno (403 → EACCES, missing → ENOENT, the rest →
//! EIO) and to decide whether a later retry may succeed.

/// Why an object-store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectClientError {
    /// 404 NoSuchKey (also a HEAD 404).
    #[error("no such key {key:?}")]
    NoSuchKey { key: String },
    /// 404 NoSuchBucket.
    #[error("no such bucket {bucket:?}")]
    NoSuchBucket { bucket: String },
    /// 404 NoSuchUpload: the multipart upload was aborted or completed.
    #[error("no such multipart upload {upload_id:?}")]
    NoSuchUpload { upload_id: String },
    /// 403: wrong credentials, or not allowed by policy.
    #[error("access denied ({code})")]
    AccessDenied { code: String },
    /// 412 (If-Match / If-None-Match / copy-source-if-match failed) or 409
    /// ConditionalRequestConflict.
    #[error("precondition failed for {key:?}")]
    PreconditionFailed { key: String },
    /// 416: the range starts at or past the end of the object.
    #[error("invalid range for {key:?}")]
    InvalidRange { key: String },
    /// 429, 503 SlowDown and similar: retry later.
    #[error("throttled (http {status})")]
    Throttled { status: u16 },
    /// Any other 5xx.
    #[error("server error (http {status}, {code})")]
    ServerError { status: u16, code: String },
    /// Any other 4xx the server refused (EntityTooSmall, InvalidPart …).
    #[error("request refused (http {status}, {code})")]
    ClientError { status: u16, code: String },
    /// 501 NotImplemented or an API this client does not have.
    #[error("operation {operation} is not supported by the server")]
    Unsupported { operation: &'static str },
    /// No response in time.
    #[error("request timed out")]
    Timeout,
    /// Could not connect, or the connection failed before a response.
    #[error("connection failed: {message}")]
    Connection { message: String },
    /// The connection was reset mid-request or mid-response.
    #[error("connection reset")]
    Reset,
    /// The body ended before `Content-Length` bytes arrived.
    #[error("truncated body: expected {expected} bytes, got {received}")]
    TruncatedBody { expected: u64, received: u64 },
    /// The server answered with something we could not parse.
    #[error("invalid response: {message}")]
    InvalidResponse { message: String },
    /// The local bytes a request was to send could not be read (a staged
    /// file that shrank or failed); nothing was sent, or not all of it.
    #[error("reading the data to send failed: {message}")]
    LocalRead { message: String },
}

impl ObjectClientError {
    /// Whether the same request may succeed if sent again later (the
    /// filesystem keeps staged data and retries these).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Throttled { .. }
            | Self::ServerError { .. }
            | Self::Timeout
            | Self::Connection { .. }
            | Self::Reset
            | Self::TruncatedBody { .. }
            | Self::InvalidResponse { .. } => true,
            Self::NoSuchKey { .. }
            | Self::NoSuchBucket { .. }
            | Self::NoSuchUpload { .. }
            | Self::AccessDenied { .. }
            | Self::PreconditionFailed { .. }
            | Self::InvalidRange { .. }
            | Self::ClientError { .. }
            | Self::Unsupported { .. }
            | Self::LocalRead { .. } => false,
        }
    }
}

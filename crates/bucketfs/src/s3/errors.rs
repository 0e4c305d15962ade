//! How S3 failures become [`ObjectClientError`]s: one mapping from (HTTP
//! status, S3 error code) and one from transport errors, so every operation
//! classifies the same way and the retry loop can ask `is_transient()`.

use crate::client::ObjectClientError;

use super::Op;

/// What the failing request was about, for the error's fields.
pub(super) struct Context<'a> {
    pub op: Op,
    pub bucket: &'a str,
    pub key: &'a str,
    pub upload_id: Option<&'a str>,
}

/// Maps an HTTP status and the `<Code>` of its error body (empty when the
/// response had no body, as HEAD responses never do).
pub(super) fn from_status(status: u16, code: &str, ctx: &Context<'_>) -> ObjectClientError {
    let key = || ctx.key.to_owned();
    match (status, code) {
        (_, "NoSuchBucket") => ObjectClientError::NoSuchBucket {
            bucket: ctx.bucket.to_owned(),
        },
        (_, "NoSuchUpload") => ObjectClientError::NoSuchUpload {
            upload_id: ctx.upload_id.unwrap_or_default().to_owned(),
        },
        (_, "NoSuchKey") | (404, _) => ObjectClientError::NoSuchKey { key: key() },
        (_, "AccessDenied" | "SignatureDoesNotMatch" | "InvalidAccessKeyId") | (403, _) => {
            ObjectClientError::AccessDenied {
                code: if code.is_empty() {
                    "AccessDenied".to_owned()
                } else {
                    code.to_owned()
                },
            }
        }
        (_, "PreconditionFailed" | "ConditionalRequestConflict") | (412, _) => {
            ObjectClientError::PreconditionFailed { key: key() }
        }
        (_, "InvalidRange") | (416, _) => ObjectClientError::InvalidRange { key: key() },
        (_, "SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded")
        | (429, _)
        | (503, _) => ObjectClientError::Throttled {
            status: if status == 200 { 503 } else { status },
        },
        (_, "RequestTimeout") => ObjectClientError::Timeout,
        (_, "NotImplemented") | (501, _) => ObjectClientError::Unsupported {
            operation: ctx.op.name(),
        },
        // An <Error> inside a 200 (multipart completion, copies): the
        // failure happened on the server after the headers went out.
        (200..=299, _) | (500..=599, _) => ObjectClientError::ServerError {
            status: if status < 500 { 500 } else { status },
            code: code.to_owned(),
        },
        _ => ObjectClientError::ClientError {
            status,
            code: code.to_owned(),
        },
    }
}

/// Maps a transport error (no usable response): a timeout, a reset, or a
/// connection that could not be made or broke before the headers.
pub(super) fn from_transport(err: &reqwest::Error) -> ObjectClientError {
    if err.is_timeout() {
        return ObjectClientError::Timeout;
    }
    if has_io_kind(err, std::io::ErrorKind::ConnectionReset)
        || has_io_kind(err, std::io::ErrorKind::BrokenPipe)
    {
        return ObjectClientError::Reset;
    }
    // reqwest's own message names the URL (bucket and key, never
    // credentials); keep only what failed and the cause chain.
    let mut message = String::from(if err.is_connect() {
        "connect"
    } else {
        "request"
    });
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    ObjectClientError::Connection { message }
}

fn has_io_kind(err: &reqwest::Error, kind: std::io::ErrorKind) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == kind {
                return true;
            }
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context<'static> {
        Context {
            op: Op::Get,
            bucket: "b",
            key: "k",
            upload_id: Some("u"),
        }
    }

    #[test]
    fn statuses_map_to_the_documented_errors() {
        let c = ctx();
        assert!(matches!(
            from_status(404, "", &c),
            ObjectClientError::NoSuchKey { .. }
        ));
        assert!(matches!(
            from_status(404, "NoSuchBucket", &c),
            ObjectClientError::NoSuchBucket { .. }
        ));
        assert!(matches!(
            from_status(404, "NoSuchUpload", &c),
            ObjectClientError::NoSuchUpload { .. }
        ));
        assert!(matches!(
            from_status(403, "", &c),
            ObjectClientError::AccessDenied { .. }
        ));
        assert!(matches!(
            from_status(412, "", &c),
            ObjectClientError::PreconditionFailed { .. }
        ));
        assert!(matches!(
            from_status(416, "", &c),
            ObjectClientError::InvalidRange { .. }
        ));
        assert!(matches!(
            from_status(503, "SlowDown", &c),
            ObjectClientError::Throttled { .. }
        ));
        assert!(matches!(
            from_status(429, "", &c),
            ObjectClientError::Throttled { .. }
        ));
        assert!(matches!(
            from_status(500, "InternalError", &c),
            ObjectClientError::ServerError { .. }
        ));
        assert!(matches!(
            from_status(200, "InternalError", &c),
            ObjectClientError::ServerError { .. }
        ));
        assert!(matches!(
            from_status(501, "", &c),
            ObjectClientError::Unsupported { .. }
        ));
        assert!(matches!(
            from_status(400, "EntityTooSmall", &c),
            ObjectClientError::ClientError { status: 400, .. }
        ));
        assert!(from_status(500, "", &c).is_transient());
        assert!(!from_status(403, "", &c).is_transient());
    }
}

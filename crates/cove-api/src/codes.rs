//! Machine error codes sent as `data.code` in JSend `fail` envelopes (4xx).
//! The TS SDK surfaces them as `err.code`; they are part of the contract, so
//! a code once shipped is never renamed.

use serde::Serialize;

/// A machine-readable error code (`data.code` of a `fail` envelope).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body, path or query could not be parsed.
    InvalidRequest,
    /// A field failed validation (the message names it).
    ValidationFailed,
    /// `shape` is not in the catalog.
    UnknownShape,
    /// `rootfs` is not in the catalog or is disabled.
    UnknownRootfs,
    /// `region` differs from the server's region.
    InvalidRegion,
    /// `host_id` names no host of this control plane.
    UnknownHost,
    /// A files API path is relative or malformed.
    InvalidPath,
    /// The path names a directory where a file was expected.
    IsADirectory,
    /// The sandbox's disk is full.
    NoSpace,
    /// Missing or unknown credentials.
    Unauthorized,
    /// The resource does not exist (or belongs to someone else).
    NotFound,
    /// Another live sandbox of the same user has this name.
    NameTaken,
    /// The sandbox is not in a state that allows the operation.
    InvalidState,
    /// A disk's `config.endpoint` is not an http(s) URL.
    InvalidEndpoint,
    /// A disk's endpoint refused the connection or could not be resolved.
    EndpointUnreachable,
    /// A disk's endpoint did not answer in time.
    EndpointTimeout,
    /// A disk's bucket does not exist.
    BucketNotFound,
    /// A disk's credentials were refused (or do not allow listing).
    AccessDenied,
    /// A disk's endpoint answered, but not like S3.
    ProbeFailed,
    /// The disk is attached to a sandbox that is not destroyed.
    DiskInUse,
    /// Another attachment of the sandbox is at, above or below this mount path.
    MountPathInUse,
    /// Pending writes of a disk could not be uploaded; the mount stays.
    FlushFailed,
    /// The disk could not be mounted in the sandbox.
    MountFailed,
    /// The checkpoint failed; the sandbox keeps running.
    PauseFailed,
}

impl ErrorCode {
    /// The code as sent on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::ValidationFailed => "validation_failed",
            Self::UnknownShape => "unknown_shape",
            Self::UnknownRootfs => "unknown_rootfs",
            Self::InvalidRegion => "invalid_region",
            Self::UnknownHost => "unknown_host",
            Self::InvalidPath => "invalid_path",
            Self::IsADirectory => "is_a_directory",
            Self::NoSpace => "no_space",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not_found",
            Self::NameTaken => "name_taken",
            Self::InvalidState => "invalid_state",
            Self::InvalidEndpoint => "invalid_endpoint",
            Self::EndpointUnreachable => "endpoint_unreachable",
            Self::EndpointTimeout => "endpoint_timeout",
            Self::BucketNotFound => "bucket_not_found",
            Self::AccessDenied => "access_denied",
            Self::ProbeFailed => "probe_failed",
            Self::DiskInUse => "disk_in_use",
            Self::MountPathInUse => "mount_path_in_use",
            Self::FlushFailed => "flush_failed",
            Self::MountFailed => "mount_failed",
            Self::PauseFailed => "pause_failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_name_matches_as_str() {
        for code in [
            ErrorCode::InvalidRequest,
            ErrorCode::ValidationFailed,
            ErrorCode::UnknownShape,
            ErrorCode::UnknownRootfs,
            ErrorCode::InvalidRegion,
            ErrorCode::UnknownHost,
            ErrorCode::InvalidPath,
            ErrorCode::IsADirectory,
            ErrorCode::NoSpace,
            ErrorCode::Unauthorized,
            ErrorCode::NotFound,
            ErrorCode::NameTaken,
            ErrorCode::InvalidState,
            ErrorCode::InvalidEndpoint,
            ErrorCode::EndpointUnreachable,
            ErrorCode::EndpointTimeout,
            ErrorCode::BucketNotFound,
            ErrorCode::AccessDenied,
            ErrorCode::ProbeFailed,
            ErrorCode::DiskInUse,
            ErrorCode::MountPathInUse,
            ErrorCode::FlushFailed,
            ErrorCode::MountFailed,
            ErrorCode::PauseFailed,
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().into()));
        }
    }
}

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
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().into()));
        }
    }
}

//! `FsError`: every way a filesystem operation fails, and its one exhaustive
//! mapping to an errno (no `_ =>` arm: a new variant does not compile until
//! its errno is chosen).

use crate::client::ObjectClientError;

/// Why a filesystem operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The name or inode does not exist (or no longer exists in the bucket).
    #[error("no such file or directory")]
    NotFound,
    /// The name already exists (O_EXCL, mkdir, RENAME_NOREPLACE).
    #[error("file exists")]
    Exists,
    /// A path component or the target is not a directory.
    #[error("not a directory")]
    NotDir,
    /// The target is a directory where a file was needed.
    #[error("is a directory")]
    IsDir,
    /// rmdir or rename over a directory that has entries.
    #[error("directory not empty")]
    NotEmpty,
    /// The mount is read-only.
    #[error("read-only file system")]
    ReadOnly,
    /// A name that cannot be an object key component (`/`, too long …).
    #[error("invalid name {name:?}")]
    InvalidName { name: String },
    /// An argument the operation does not accept.
    #[error("invalid argument: {reason}")]
    InvalidArgument { reason: &'static str },
    /// The operation is not supported on object storage (hard links,
    /// special files, RENAME_EXCHANGE …).
    #[error("operation not supported: {operation}")]
    Unsupported { operation: &'static str },
    /// The inode or file handle is not known (forgotten or never issued).
    #[error("stale file handle")]
    Stale,
    /// An earlier upload of this open file failed; the data is kept staged
    /// and retried, but this handle reports the loss on every later call.
    #[error("an earlier upload of {key:?} failed; the file handle is poisoned")]
    Poisoned { key: String },
    /// Uploading staged data failed (the data stays staged and is retried).
    #[error("upload of {key:?} failed")]
    UploadFailed {
        key: String,
        #[source]
        source: ObjectClientError,
    },
    /// Another client replaced the object since we read it; our data stays
    /// staged and is not written over theirs.
    #[error("object {key:?} was changed by another client")]
    Conflict { key: String },
    /// A request to the object store failed.
    #[error("{operation} of {key:?} failed")]
    Client {
        operation: &'static str,
        key: String,
        #[source]
        source: ObjectClientError,
    },
    /// The staging area is full.
    #[error("staging area is full")]
    NoSpace,
    /// The file would be larger than the object store allows.
    #[error("file too large")]
    TooLarge,
    /// Local staging I/O failed.
    #[error("staging i/o failed")]
    Staging(#[from] std::io::Error),
}

impl FsError {
    /// The errno reported to the kernel.
    pub fn errno(&self) -> i32 {
        match self {
            Self::NotFound => libc::ENOENT,
            Self::Exists => libc::EEXIST,
            Self::NotDir => libc::ENOTDIR,
            Self::IsDir => libc::EISDIR,
            Self::NotEmpty => libc::ENOTEMPTY,
            Self::ReadOnly => libc::EROFS,
            Self::InvalidName { .. } => libc::EINVAL,
            Self::InvalidArgument { .. } => libc::EINVAL,
            Self::Unsupported { .. } => libc::ENOTSUP,
            Self::Stale => libc::ESTALE,
            Self::Poisoned { .. } => libc::EIO,
            Self::UploadFailed { source, .. } => client_errno(source),
            Self::Conflict { .. } => libc::EIO,
            Self::Client { source, .. } => client_errno(source),
            Self::NoSpace => libc::ENOSPC,
            Self::TooLarge => libc::EFBIG,
            Self::Staging(_) => libc::EIO,
        }
    }

    /// A client error met while doing `operation` on `key`.
    pub(crate) fn client(operation: &'static str, key: &str, source: ObjectClientError) -> Self {
        match source {
            ObjectClientError::NoSuchKey { .. } => Self::NotFound,
            source => Self::Client {
                operation,
                key: key.to_string(),
                source,
            },
        }
    }
}

/// 403 is EACCES (the user can fix credentials or policy); a missing key
/// seen mid-operation means the object vanished under us (ESTALE); every
/// other failure is EIO.
fn client_errno(e: &ObjectClientError) -> i32 {
    match e {
        ObjectClientError::AccessDenied { .. } => libc::EACCES,
        ObjectClientError::NoSuchKey { .. } => libc::ESTALE,
        ObjectClientError::NoSuchBucket { .. } => libc::EIO,
        ObjectClientError::NoSuchUpload { .. } => libc::EIO,
        ObjectClientError::PreconditionFailed { .. } => libc::EIO,
        ObjectClientError::InvalidRange { .. } => libc::EIO,
        ObjectClientError::Throttled { .. } => libc::EIO,
        ObjectClientError::ServerError { .. } => libc::EIO,
        ObjectClientError::ClientError { .. } => libc::EIO,
        ObjectClientError::Unsupported { .. } => libc::EIO,
        ObjectClientError::Timeout => libc::EIO,
        ObjectClientError::Connection { .. } => libc::EIO,
        ObjectClientError::Reset => libc::EIO,
        ObjectClientError::TruncatedBody { .. } => libc::EIO,
        ObjectClientError::InvalidResponse { .. } => libc::EIO,
        ObjectClientError::LocalRead { .. } => libc::EIO,
    }
}

/// Result of a filesystem operation.
pub type FsResult<T> = Result<T, FsError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_denied_upload_is_eacces_and_other_failures_eio() {
        let e = FsError::UploadFailed {
            key: "k".into(),
            source: ObjectClientError::AccessDenied {
                code: "AccessDenied".into(),
            },
        };
        assert_eq!(e.errno(), libc::EACCES);
        let e = FsError::UploadFailed {
            key: "k".into(),
            source: ObjectClientError::ServerError {
                status: 500,
                code: "InternalError".into(),
            },
        };
        assert_eq!(e.errno(), libc::EIO);
        assert_eq!(FsError::Poisoned { key: "k".into() }.errno(), libc::EIO);
        assert_eq!(FsError::ReadOnly.errno(), libc::EROFS);
    }
}

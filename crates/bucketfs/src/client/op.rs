//! The kinds of request an `ObjectClient` makes. One list, shared by every
//! counter (the mount's metrics, the S3 client's transport stats) and by the
//! fault scripts, so an index means the same request everywhere.

/// A kind of request to the object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Get,
    Head,
    Put,
    CreateMultipart,
    UploadPart,
    UploadPartCopy,
    CompleteMultipart,
    AbortMultipart,
    Copy,
    Delete,
    List,
}

impl Op {
    /// How many kinds there are (the length of per-kind counter arrays).
    pub const COUNT: usize = 11;

    /// Every request kind, in `index` order.
    pub const ALL: [Op; Op::COUNT] = [
        Op::Get,
        Op::Head,
        Op::Put,
        Op::CreateMultipart,
        Op::UploadPart,
        Op::UploadPartCopy,
        Op::CompleteMultipart,
        Op::AbortMultipart,
        Op::Copy,
        Op::Delete,
        Op::List,
    ];

    /// The position of this kind in `ALL` (and in per-kind counter arrays).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The S3 API name, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Op::Get => "GetObject",
            Op::Head => "HeadObject",
            Op::Put => "PutObject",
            Op::CreateMultipart => "CreateMultipartUpload",
            Op::UploadPart => "UploadPart",
            Op::UploadPartCopy => "UploadPartCopy",
            Op::CompleteMultipart => "CompleteMultipartUpload",
            Op::AbortMultipart => "AbortMultipartUpload",
            Op::Copy => "CopyObject",
            Op::Delete => "DeleteObject",
            Op::List => "ListObjectsV2",
        }
    }

    /// The Prometheus label value (`op="put"`).
    pub fn label(self) -> &'static str {
        match self {
            Op::Get => "get",
            Op::Head => "head",
            Op::Put => "put",
            Op::CreateMultipart => "create_multipart",
            Op::UploadPart => "upload_part",
            Op::UploadPartCopy => "upload_part_copy",
            Op::CompleteMultipart => "complete_multipart",
            Op::AbortMultipart => "abort_multipart",
            Op::Copy => "copy",
            Op::Delete => "delete",
            Op::List => "list",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_the_position_in_all() {
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(op.index(), i);
        }
    }
}

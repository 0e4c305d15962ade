//! The `ObjectClient` trait: the only way bucketfs talks to object storage.
//!
//! Three implementations exist: S3 over HTTP (`crate::s3`), in memory
//! (`crate::memory`, with per-operation counters) and a fault-injecting wrapper
//! around any client (`crate::faults`). The filesystem is generic over this
//! trait (`Filesystem<C: ObjectClient>`), so the hot path has no dynamic
//! dispatch (model: mountpoint-s3's `ObjectClient`).
//!
//! Conventions every implementation follows:
//! - A client is bound to one bucket at construction; keys are full object
//!   keys (the filesystem adds any mount prefix itself).
//! - User metadata keys are plain lowercase names *without* the
//!   `x-amz-meta-` prefix (`mode`, `uid`, `mtime`); the S3 client adds and
//!   strips the prefix on the wire.
//! - Byte ranges are half-open (`start..end`). A range whose end is past the
//!   object's size is clamped to the size (as S3 does); a range that starts at
//!   or past the size fails with [`ObjectClientError::InvalidRange`] (S3's 416),
//!   so callers must not ask for ranges of empty objects.
//! - ETags are kept exactly as the server sends them, quotes included, so they
//!   can be sent back in `If-Match` unchanged.
//! - A client does its own short transport-level retries (if any); a returned
//!   error is final for that call. The filesystem decides about longer retries.

use std::collections::BTreeMap;
use std::fs::File;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

mod error;
mod op;

pub use error::ObjectClientError;
pub use op::Op;

/// User metadata of an object: lowercase names without `x-amz-meta-`.
pub type ObjectMetadata = BTreeMap<String, String>;

/// An entity tag as the server sent it (quotes included).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ETag(pub String);

impl ETag {
    /// The tag as sent on the wire.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ETag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a server supports beyond plain S3 basics. The filesystem reads this
/// once at mount to choose between strategies; a wrong `true` costs
/// correctness, a wrong `false` only speed, so implementations should be
/// conservative.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientCapabilities {
    /// `If-Match` / `If-None-Match: *` on PutObject and
    /// CompleteMultipartUpload are honoured (AWS since 2024, moto; *not*
    /// garage, which ignores them).
    pub conditional_put: bool,
    /// UploadPartCopy works (AWS, garage, moto).
    pub upload_part_copy: bool,
    /// Smallest part size accepted for every part but the last (5 MiB on
    /// AWS; garage does not enforce it, but we follow AWS).
    pub min_part_size: u64,
    /// Largest number of parts in one multipart upload (10,000 on AWS).
    pub max_parts: u32,
}

impl Default for ClientCapabilities {
    fn default() -> Self {
        Self {
            conditional_put: false,
            upload_part_copy: true,
            min_part_size: 5 * 1024 * 1024,
            max_parts: 10_000,
        }
    }
}

/// Parameters of a GetObject.
#[derive(Debug, Clone, Default)]
pub struct GetObjectParams {
    /// Half-open byte range; `None` reads the whole object.
    pub range: Option<Range<u64>>,
    /// Sent as `If-Match`: the read fails with `PreconditionFailed` if the
    /// object changed since this tag was seen (protects read-ahead from
    /// mixing two versions of an object).
    pub if_match: Option<ETag>,
}

/// The result of a GetObject: the whole requested range, buffered.
/// Callers bound memory by asking for bounded ranges (read-ahead does).
#[derive(Debug, Clone)]
pub struct GetObjectResult {
    /// The bytes of the requested (clamped) range.
    pub body: Bytes,
    /// Size of the whole object (from `Content-Range` or `Content-Length`).
    pub object_size: u64,
    pub etag: ETag,
    pub last_modified: SystemTime,
    pub metadata: ObjectMetadata,
    pub content_type: Option<String>,
}

/// The result of a HeadObject.
#[derive(Debug, Clone)]
pub struct HeadObjectResult {
    pub size: u64,
    pub etag: ETag,
    pub last_modified: SystemTime,
    pub metadata: ObjectMetadata,
    pub content_type: Option<String>,
}

/// A condition on a write (PutObject or CompleteMultipartUpload).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutCondition {
    /// `If-Match: <etag>`: replace only the version we read.
    IfMatch(ETag),
    /// `If-None-Match: *`: create only if no object exists.
    IfNoneMatchAny,
}

/// Parameters of a PutObject.
#[derive(Debug, Clone, Default)]
pub struct PutObjectParams {
    pub metadata: ObjectMetadata,
    pub content_type: Option<String>,
    /// Only honoured when `capabilities().conditional_put`; otherwise the
    /// client sends it anyway and the server may ignore it.
    pub condition: Option<PutCondition>,
}

/// The result of a PutObject, CopyObject or CompleteMultipartUpload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutObjectResult {
    pub etag: ETag,
}

/// Parameters of a CreateMultipartUpload.
#[derive(Debug, Clone, Default)]
pub struct CreateMultipartUploadParams {
    pub metadata: ObjectMetadata,
    pub content_type: Option<String>,
}

/// The id of an open multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UploadId(pub String);

/// The result of UploadPart or UploadPartCopy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadPartResult {
    pub etag: ETag,
}

/// One part named in CompleteMultipartUpload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    /// 1-based, ascending.
    pub part_number: u32,
    pub etag: ETag,
}

/// Parameters of an UploadPartCopy.
#[derive(Debug, Clone)]
pub struct UploadPartCopyParams {
    pub source_key: String,
    /// Half-open range of the source to copy (`x-amz-copy-source-range`
    /// is inclusive on the wire; the client converts).
    pub source_range: Range<u64>,
    /// `x-amz-copy-source-if-match`: fail with `PreconditionFailed` if the
    /// source changed since we read it.
    pub source_if_match: Option<ETag>,
}

/// What CopyObject does with metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataDirective {
    /// Keep the source's metadata and content type.
    Copy,
    /// Replace them with these.
    Replace {
        metadata: ObjectMetadata,
        content_type: Option<String>,
    },
}

/// Parameters of a CopyObject.
#[derive(Debug, Clone)]
pub struct CopyObjectParams {
    pub metadata_directive: MetadataDirective,
    /// `x-amz-copy-source-if-match`.
    pub source_if_match: Option<ETag>,
}

/// Parameters of a ListObjectsV2.
#[derive(Debug, Clone, Default)]
pub struct ListObjectsParams {
    pub prefix: String,
    /// Usually `Some("/")` to list one directory level.
    pub delimiter: Option<String>,
    pub continuation_token: Option<String>,
    /// `None` lets the server choose (1,000 on S3).
    pub max_keys: Option<u32>,
    /// Start listing after this key (`start-after`).
    pub start_after: Option<String>,
}

/// One object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    pub etag: ETag,
    pub last_modified: SystemTime,
}

/// One page of a ListObjectsV2.
#[derive(Debug, Clone, Default)]
pub struct ListObjectsResult {
    /// Objects directly matched, in key order.
    pub objects: Vec<ObjectInfo>,
    /// Common prefixes (with the trailing delimiter), in order.
    pub common_prefixes: Vec<String>,
    /// Set when the listing is truncated; pass it back to continue.
    pub next_continuation_token: Option<String>,
}

/// Result type of every client operation.
pub type ClientResult<T> = Result<T, ObjectClientError>;

/// An object store bound to one bucket.
///
/// Every method is async and its future is `Send`, so the filesystem can
/// spawn them on a multi-threaded runtime. Implementations write
/// `async fn` in their `impl` blocks.
pub trait ObjectClient: Send + Sync + 'static {
    /// What this server supports (read once at mount).
    fn capabilities(&self) -> ClientCapabilities {
        ClientCapabilities::default()
    }

    /// GetObject, optionally of a range and conditional on an ETag.
    fn get_object(
        &self,
        key: &str,
        params: &GetObjectParams,
    ) -> impl Future<Output = ClientResult<GetObjectResult>> + Send;

    /// HeadObject. A missing key is `NoSuchKey`.
    fn head_object(&self, key: &str)
        -> impl Future<Output = ClientResult<HeadObjectResult>> + Send;

    /// PutObject with a buffered body (callers use multipart past a few MiB).
    fn put_object(
        &self,
        key: &str,
        body: Bytes,
        params: &PutObjectParams,
    ) -> impl Future<Output = ClientResult<PutObjectResult>> + Send;

    /// CreateMultipartUpload.
    fn create_multipart_upload(
        &self,
        key: &str,
        params: &CreateMultipartUploadParams,
    ) -> impl Future<Output = ClientResult<UploadId>> + Send;

    /// UploadPart (`part_number` is 1-based).
    fn upload_part(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        body: Bytes,
    ) -> impl Future<Output = ClientResult<UploadPartResult>> + Send;

    /// UploadPart of `len` bytes of `file` from `offset` (a staged file),
    /// read when sent: a try that finds the file shorter fails with
    /// `LocalRead`. By default the bytes are read into memory and sent
    /// with `upload_part`; the S3 client sends them from the file with
    /// sendfile(2) over plain HTTP (see `s3::sendfile`).
    fn upload_part_from_file(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        file: Arc<File>,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = ClientResult<UploadPartResult>> + Send {
        async move {
            let body = read_file_range(file, offset, len).await?;
            self.upload_part(key, upload_id, part_number, body).await
        }
    }

    /// UploadPartCopy: a part made of a range of an existing object, copied
    /// on the server (used to re-upload only the changed parts of a large
    /// object).
    fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        params: &UploadPartCopyParams,
    ) -> impl Future<Output = ClientResult<UploadPartResult>> + Send;

    /// CompleteMultipartUpload; the object appears atomically only now.
    /// `condition` as in PutObject (AWS supports it on completion).
    fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &UploadId,
        parts: &[CompletedPart],
        condition: Option<&PutCondition>,
    ) -> impl Future<Output = ClientResult<PutObjectResult>> + Send;

    /// AbortMultipartUpload (frees the parts).
    fn abort_multipart_upload(
        &self,
        key: &str,
        upload_id: &UploadId,
    ) -> impl Future<Output = ClientResult<()>> + Send;

    /// CopyObject inside the bucket (objects up to 5 GiB; larger ones are
    /// copied with UploadPartCopy by the caller).
    fn copy_object(
        &self,
        source_key: &str,
        dest_key: &str,
        params: &CopyObjectParams,
    ) -> impl Future<Output = ClientResult<PutObjectResult>> + Send;

    /// DeleteObject. Deleting a missing key succeeds (as on S3).
    fn delete_object(&self, key: &str) -> impl Future<Output = ClientResult<()>> + Send;

    /// One page of ListObjectsV2.
    fn list_objects(
        &self,
        params: &ListObjectsParams,
    ) -> impl Future<Output = ClientResult<ListObjectsResult>> + Send;
}

/// A shared client is a client (tests keep one handle to inject faults or
/// inspect the bucket while the filesystem owns another).
impl<C: ObjectClient> ObjectClient for Arc<C> {
    fn capabilities(&self) -> ClientCapabilities {
        (**self).capabilities()
    }

    fn get_object(
        &self,
        key: &str,
        params: &GetObjectParams,
    ) -> impl Future<Output = ClientResult<GetObjectResult>> + Send {
        (**self).get_object(key, params)
    }

    fn head_object(
        &self,
        key: &str,
    ) -> impl Future<Output = ClientResult<HeadObjectResult>> + Send {
        (**self).head_object(key)
    }

    fn put_object(
        &self,
        key: &str,
        body: Bytes,
        params: &PutObjectParams,
    ) -> impl Future<Output = ClientResult<PutObjectResult>> + Send {
        (**self).put_object(key, body, params)
    }

    fn create_multipart_upload(
        &self,
        key: &str,
        params: &CreateMultipartUploadParams,
    ) -> impl Future<Output = ClientResult<UploadId>> + Send {
        (**self).create_multipart_upload(key, params)
    }

    fn upload_part(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        body: Bytes,
    ) -> impl Future<Output = ClientResult<UploadPartResult>> + Send {
        (**self).upload_part(key, upload_id, part_number, body)
    }

    fn upload_part_from_file(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        file: Arc<File>,
        offset: u64,
        len: u64,
    ) -> impl Future<Output = ClientResult<UploadPartResult>> + Send {
        (**self).upload_part_from_file(key, upload_id, part_number, file, offset, len)
    }

    fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        params: &UploadPartCopyParams,
    ) -> impl Future<Output = ClientResult<UploadPartResult>> + Send {
        (**self).upload_part_copy(key, upload_id, part_number, params)
    }

    fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &UploadId,
        parts: &[CompletedPart],
        condition: Option<&PutCondition>,
    ) -> impl Future<Output = ClientResult<PutObjectResult>> + Send {
        (**self).complete_multipart_upload(key, upload_id, parts, condition)
    }

    fn abort_multipart_upload(
        &self,
        key: &str,
        upload_id: &UploadId,
    ) -> impl Future<Output = ClientResult<()>> + Send {
        (**self).abort_multipart_upload(key, upload_id)
    }

    fn copy_object(
        &self,
        source_key: &str,
        dest_key: &str,
        params: &CopyObjectParams,
    ) -> impl Future<Output = ClientResult<PutObjectResult>> + Send {
        (**self).copy_object(source_key, dest_key, params)
    }

    fn delete_object(&self, key: &str) -> impl Future<Output = ClientResult<()>> + Send {
        (**self).delete_object(key)
    }

    fn list_objects(
        &self,
        params: &ListObjectsParams,
    ) -> impl Future<Output = ClientResult<ListObjectsResult>> + Send {
        (**self).list_objects(params)
    }
}

/// `len` bytes of `file` from `offset`, read on the blocking pool.
pub async fn read_file_range(file: Arc<File>, offset: u64, len: u64) -> ClientResult<Bytes> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&*file, &mut buf, offset).map(|()| buf)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|read| read)
    .map(Bytes::from)
    .map_err(|e| ObjectClientError::LocalRead {
        message: e.to_string(),
    })
}

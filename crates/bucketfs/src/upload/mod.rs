//! Uploading a staged file to its object, atomically.
//!
//! Small files (up to one block) go up as one PutObject. Larger files go up
//! as a multipart upload whose parts are whole blocks (8 MiB, more per part
//! only when the file would need more than the server's part limit), sent
//! with bounded parallelism. A part whose blocks are all unchanged since the
//! base object was read (and lie within it) is not sent at all: it is copied
//! on the server with UploadPartCopy, conditional on the base's ETag. So
//! appending to a large file, or changing a few blocks of it, sends only the
//! changed blocks.
//!
//! The object is replaced only when PutObject or CompleteMultipartUpload
//! succeeds; any failure aborts the multipart upload, so no partial or empty
//! object ever replaces content. Where the server honours conditional
//! writes, the write carries `If-Match` (the ETag we read) or
//! `If-None-Match: *` (a file we created), so it never overwrites an object
//! another client wrote meanwhile; the caller turns that failure into a
//! conflict and keeps the data staged.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};

mod streaming;

pub use streaming::StreamUpload;

use crate::client::{
    ClientResult, CompletedPart, CreateMultipartUploadParams, ETag, GetObjectParams, ObjectClient,
    ObjectClientError, ObjectMetadata, PutCondition, PutObjectParams, PutObjectResult, UploadId,
    UploadPartCopyParams, UploadPartResult,
};
use crate::fs::{FsError, FsResult};
use crate::staging::{Block, RangeReader, StagedFile, BLOCK_SIZE};

/// Parts (mostly server-side copies) in flight at once in one upload; sent
/// parts are further limited to `UploadParams::concurrency`.
const PARTS_IN_FLIGHT: usize = 16;

/// The remote object a staged file started from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseObject {
    pub key: String,
    pub etag: ETag,
    /// Bytes of the base still part of the file (shrinks on truncate).
    pub len: u64,
}

/// How to upload.
#[derive(Debug, Clone)]
pub struct UploadParams {
    pub key: String,
    pub metadata: ObjectMetadata,
    pub content_type: Option<String>,
    pub condition: Option<PutCondition>,
    /// Parts in flight at once (memory use is about this × part size).
    pub concurrency: usize,
}

/// Fetch absent block `i` of `staged` from `base` into the staged file.
pub async fn fill_block<C: ObjectClient>(
    client: &C,
    staged: &mut StagedFile,
    base: Option<&BaseObject>,
    i: usize,
) -> FsResult<()> {
    let start = i as u64 * BLOCK_SIZE;
    let Some(base) = base.filter(|b| start < b.len) else {
        // Nothing of the base here: the block is zeros.
        return Ok(staged.fill(i, &[])?);
    };
    let end = (start + BLOCK_SIZE).min(base.len);
    let params = GetObjectParams {
        range: Some(start..end),
        if_match: Some(base.etag.clone()),
    };
    let got = client
        .get_object(&base.key, &params)
        .await
        .map_err(|e| base_error(&base.key, e))?;
    if got.body.len() as u64 != end - start {
        return Err(FsError::Client {
            operation: "get",
            key: base.key.clone(),
            source: ObjectClientError::TruncatedBody {
                expected: end - start,
                received: got.body.len() as u64,
            },
        });
    }
    Ok(staged.fill(i, &got.body)?)
}

fn base_error(key: &str, e: ObjectClientError) -> FsError {
    match e {
        ObjectClientError::PreconditionFailed { .. } | ObjectClientError::NoSuchKey { .. } => {
            FsError::Conflict {
                key: key.to_string(),
            }
        }
        source => FsError::Client {
            operation: "get",
            key: key.to_string(),
            source,
        },
    }
}

fn upload_error(key: &str, e: ObjectClientError) -> FsError {
    match e {
        ObjectClientError::PreconditionFailed { .. } => FsError::Conflict {
            key: key.to_string(),
        },
        source => FsError::UploadFailed {
            key: key.to_string(),
            source,
        },
    }
}

fn read_range(staged: &StagedFile, start: u64, end: u64) -> FsResult<Bytes> {
    let mut buf = vec![0u8; (end - start) as usize];
    let n = staged.read(start, &mut buf)?;
    buf.truncate(n);
    Ok(Bytes::from(buf))
}

/// UploadPart of a range of a staged file: from the spilled file itself
/// (which the S3 client sends without copying it through this process),
/// or from the in-memory bytes.
async fn send_part<C: ObjectClient>(
    client: &C,
    key: &str,
    upload_id: &UploadId,
    part_number: u32,
    reader: RangeReader,
) -> ClientResult<UploadPartResult> {
    match reader {
        RangeReader::File { file, start, len } => {
            client
                .upload_part_from_file(key, upload_id, part_number, file, start, len)
                .await
        }
        RangeReader::Bytes(b) => {
            client
                .upload_part(key, upload_id, part_number, b.into())
                .await
        }
    }
}

/// Upload `staged` to `params.key`. On success every block is clean.
pub async fn upload<C: ObjectClient>(
    client: &C,
    staged: &mut StagedFile,
    base: Option<&BaseObject>,
    params: &UploadParams,
    stream: Option<StreamUpload>,
) -> FsResult<PutObjectResult> {
    let size = staged.size();
    let stream = match stream {
        Some(s) if size > BLOCK_SIZE => Some(s),
        Some(s) => {
            s.abort(client).await;
            None
        }
        None => None,
    };
    if size == 0 {
        // S3 cannot express a range of an empty object; nothing to fetch.
        let put = PutObjectParams {
            metadata: params.metadata.clone(),
            content_type: params.content_type.clone(),
            condition: params.condition.clone(),
        };
        let result = client
            .put_object(&params.key, Bytes::new(), &put)
            .await
            .map_err(|e| upload_error(&params.key, e))?;
        staged.mark_all_clean();
        return Ok(result);
    }
    if size <= BLOCK_SIZE {
        for i in staged.absent_in(0, size) {
            fill_block(client, staged, base, i).await?;
        }
        let body = read_range(staged, 0, size)?;
        let put = PutObjectParams {
            metadata: params.metadata.clone(),
            content_type: params.content_type.clone(),
            condition: params.condition.clone(),
        };
        let result = client
            .put_object(&params.key, body, &put)
            .await
            .map_err(|e| upload_error(&params.key, e))?;
        staged.mark_all_clean();
        return Ok(result);
    }
    let result = upload_multipart(client, staged, base, params, stream).await?;
    staged.mark_all_clean();
    Ok(result)
}

/// Use a streaming upload's parts where their blocks are unchanged: the
/// upload id and the reusable part ETags, or nothing (stream aborted).
async fn adopt_stream<C: ObjectClient>(
    client: &C,
    staged: &StagedFile,
    parts: &[PartSource],
    mut stream: StreamUpload,
) -> (Option<UploadId>, BTreeMap<u32, ETag>) {
    stream.drain().await;
    let one_block_parts = parts.len() == staged.blocks()
        && parts.iter().all(|p| matches!(p, PartSource::Send { .. }));
    if stream.broken || !one_block_parts {
        stream.abort(client).await;
        return (None, BTreeMap::new());
    }
    let reuse = stream
        .done
        .iter()
        .filter(|(part, (_, generation))| {
            let i = **part as usize - 1;
            i < staged.blocks() && staged.generation(i) == *generation
        })
        .map(|(part, (etag, _))| (*part, etag.clone()))
        .collect();
    (Some(stream.upload_id), reuse)
}

/// One part of a multipart upload: copied from the base or sent.
#[derive(Debug, Clone)]
enum PartSource {
    Copy { start: u64, end: u64 },
    Send { start: u64, end: u64 },
}

fn plan_parts<C: ObjectClient>(
    client: &C,
    staged: &StagedFile,
    base: Option<&BaseObject>,
) -> Vec<PartSource> {
    let caps = client.capabilities();
    let size = staged.size();
    let blocks = staged.blocks() as u64;
    let per_part = blocks.div_ceil(u64::from(caps.max_parts.max(1))).max(1);
    let part_size = per_part * BLOCK_SIZE;
    let mut parts = Vec::new();
    let mut start = 0;
    while start < size {
        let end = (start + part_size).min(size);
        let first = (start / BLOCK_SIZE) as usize;
        let last = ((end - 1) / BLOCK_SIZE) as usize;
        let unchanged = (first..=last).all(|i| staged.block(i) != Block::Dirty);
        let copyable = caps.upload_part_copy
            && unchanged
            && base.is_some_and(|b| end <= b.len)
            && (end - start >= caps.min_part_size || end == size);
        parts.push(if copyable {
            PartSource::Copy { start, end }
        } else {
            PartSource::Send { start, end }
        });
        start = end;
    }
    parts
}

async fn upload_multipart<C: ObjectClient>(
    client: &C,
    staged: &mut StagedFile,
    base: Option<&BaseObject>,
    params: &UploadParams,
    stream: Option<StreamUpload>,
) -> FsResult<PutObjectResult> {
    let parts = plan_parts(client, staged, base);
    let (existing, reuse) = match stream {
        Some(s) => adopt_stream(client, staged, &parts, s).await,
        None => (None, BTreeMap::new()),
    };
    // Parts that are sent must be wholly local first.
    for part in &parts {
        if let PartSource::Send { start, end } = part {
            for i in staged.absent_in(*start, *end) {
                fill_block(client, staged, base, i).await?;
            }
        }
    }
    let key = params.key.as_str();
    let upload_id = match existing {
        Some(id) => id,
        None => {
            let create = CreateMultipartUploadParams {
                metadata: params.metadata.clone(),
                content_type: params.content_type.clone(),
            };
            client
                .create_multipart_upload(key, &create)
                .await
                .map_err(|e| upload_error(key, e))?
        }
    };
    let reuse = &reuse;
    let sending = &tokio::sync::Semaphore::new(params.concurrency.max(1));
    let staged: &StagedFile = staged;
    let sent = stream::iter(parts.into_iter().enumerate())
        .map(|(n, part)| {
            let upload_id = &upload_id;
            async move {
                let part_number = n as u32 + 1;
                if let Some(etag) = reuse.get(&part_number) {
                    return Ok(CompletedPart {
                        part_number,
                        etag: etag.clone(),
                    });
                }
                let result = match part {
                    PartSource::Copy { start, end } => {
                        let copy = UploadPartCopyParams {
                            source_key: base.map(|b| b.key.clone()).unwrap_or_default(),
                            source_range: start..end,
                            source_if_match: base.map(|b| b.etag.clone()),
                        };
                        client
                            .upload_part_copy(key, upload_id, part_number, &copy)
                            .await
                    }
                    PartSource::Send { start, end } => {
                        // Only sent parts hold memory; copies run wider.
                        let _permit = sending.acquire().await;
                        let reader = staged.range_reader(start, end - start)?;
                        send_part(client, key, upload_id, part_number, reader).await
                    }
                };
                let etag = result.map_err(|e| upload_error(key, e))?.etag;
                Ok::<_, FsError>(CompletedPart { part_number, etag })
            }
        })
        .buffer_unordered(PARTS_IN_FLIGHT.max(params.concurrency))
        .try_collect::<Vec<_>>()
        .await;
    let completed = match sent {
        Ok(mut done) => {
            done.sort_by_key(|p| p.part_number);
            client
                .complete_multipart_upload(key, &upload_id, &done, params.condition.as_ref())
                .await
                .map_err(|e| upload_error(key, e))
        }
        Err(e) => Err(e),
    };
    if completed.is_err() {
        // Best effort: an upload left open is invisible (it is never an
        // object) and bucket lifecycle rules reap it; the error that
        // matters is the one we return.
        if let Err(e) = client.abort_multipart_upload(key, &upload_id).await {
            tracing::warn!(key, error = %e, "abort of failed multipart upload failed");
        }
    }
    completed
}

/// Largest object CopyObject accepts (S3's limit); larger ones are copied
/// part by part with UploadPartCopy.
pub const MAX_COPY_OBJECT: u64 = 5 << 30;

/// Part size of a multipart server-side copy.
const COPY_PART: u64 = 1 << 30;

/// Copy `source` (of `size` bytes, version `etag`) to `dest` on the server,
/// whatever its size, with `metadata` (for objects past
/// [`MAX_COPY_OBJECT`], where CopyObject cannot be used).
pub async fn copy_large<C: ObjectClient>(
    client: &C,
    source: &str,
    dest: &str,
    size: u64,
    etag: &ETag,
    metadata: ObjectMetadata,
) -> FsResult<PutObjectResult> {
    let create = CreateMultipartUploadParams {
        metadata,
        content_type: None,
    };
    let id = client
        .create_multipart_upload(dest, &create)
        .await
        .map_err(|e| FsError::client("copy", source, e))?;
    let mut parts = Vec::new();
    let mut start = 0;
    let mut result = Ok(());
    while start < size {
        let end = (start + COPY_PART).min(size);
        let part_number = parts.len() as u32 + 1;
        let params = UploadPartCopyParams {
            source_key: source.to_string(),
            source_range: start..end,
            source_if_match: Some(etag.clone()),
        };
        match client
            .upload_part_copy(dest, &id, part_number, &params)
            .await
        {
            Ok(r) => parts.push(CompletedPart {
                part_number,
                etag: r.etag,
            }),
            Err(e) => {
                result = Err(FsError::client("copy", source, e));
                break;
            }
        }
        start = end;
    }
    let done = match result {
        Ok(()) => client
            .complete_multipart_upload(dest, &id, &parts, None)
            .await
            .map_err(|e| FsError::client("copy", source, e)),
        Err(e) => Err(e),
    };
    if done.is_err() {
        if let Err(e) = client.abort_multipart_upload(dest, &id).await {
            tracing::warn!(dest, error = %e, "abort of failed multipart copy failed");
        }
    }
    done
}

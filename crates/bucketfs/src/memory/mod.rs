//! `MemoryClient`: an in-memory bucket implementing `ObjectClient` faithfully
//! enough for the filesystem's tests (ranges, conditional writes, multipart
//! with part copy, listing with delimiter and continuation), with
//! per-operation counters ("how many PUTs did that take").
//!
//! Built only with the `testing` feature. ETags are quoted MD5-like
//! counters (unique per write), which is all the filesystem relies on.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};

use crate::client::{
    ClientCapabilities, ClientResult, CompletedPart, CopyObjectParams, CreateMultipartUploadParams,
    ETag, GetObjectParams, GetObjectResult, HeadObjectResult, ListObjectsParams, ListObjectsResult,
    MetadataDirective, ObjectClient, ObjectClientError, ObjectInfo, ObjectMetadata, PutCondition,
    PutObjectParams, PutObjectResult, UploadId, UploadPartCopyParams, UploadPartResult,
};

/// One stored object.
#[derive(Debug, Clone)]
pub struct MemoryObject {
    pub body: Bytes,
    pub etag: ETag,
    pub last_modified: SystemTime,
    pub metadata: ObjectMetadata,
    pub content_type: Option<String>,
}

#[derive(Debug, Default)]
struct Upload {
    key: String,
    metadata: ObjectMetadata,
    content_type: Option<String>,
    parts: BTreeMap<u32, (ETag, Bytes)>,
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, MemoryObject>,
    uploads: HashMap<String, Upload>,
}

/// Counters of requests by operation, readable by tests.
#[derive(Debug, Default)]
pub struct OpCounters {
    pub get: AtomicU64,
    pub head: AtomicU64,
    pub put: AtomicU64,
    pub create_multipart: AtomicU64,
    pub upload_part: AtomicU64,
    pub upload_part_copy: AtomicU64,
    pub complete_multipart: AtomicU64,
    pub abort_multipart: AtomicU64,
    pub copy: AtomicU64,
    pub delete: AtomicU64,
    pub list: AtomicU64,
    /// Bytes sent by UploadPart and PutObject.
    pub bytes_uploaded: AtomicU64,
}

/// A snapshot of [`OpCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OpCounts {
    pub get: u64,
    pub head: u64,
    pub put: u64,
    pub create_multipart: u64,
    pub upload_part: u64,
    pub upload_part_copy: u64,
    pub complete_multipart: u64,
    pub abort_multipart: u64,
    pub copy: u64,
    pub delete: u64,
    pub list: u64,
    pub bytes_uploaded: u64,
}

/// An in-memory bucket. Cloning shares the bucket (like two clients of one
/// server), which is how tests write "behind the mount's back".
#[derive(Debug, Clone)]
pub struct MemoryClient {
    state: Arc<Mutex<State>>,
    counters: Arc<OpCounters>,
    next_tag: Arc<AtomicU64>,
    capabilities: ClientCapabilities,
}

impl Default for MemoryClient {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryClient {
    /// An empty bucket that honours conditional writes.
    pub fn new() -> Self {
        Self::with_capabilities(ClientCapabilities {
            conditional_put: true,
            ..ClientCapabilities::default()
        })
    }

    /// An empty bucket advertising `capabilities` (e.g. garage-like: no
    /// conditional writes, which are then ignored as garage does).
    pub fn with_capabilities(capabilities: ClientCapabilities) -> Self {
        Self {
            state: Arc::default(),
            counters: Arc::default(),
            next_tag: Arc::new(AtomicU64::new(1)),
            capabilities,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock means a test thread panicked while holding it; the
        // map itself is still consistent (every mutation is one insert).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_etag(&self) -> ETag {
        let n = self.next_tag.fetch_add(1, Ordering::Relaxed);
        ETag(format!("\"{n:032x}\""))
    }

    /// A snapshot of the request counters.
    pub fn counts(&self) -> OpCounts {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        OpCounts {
            get: l(&c.get),
            head: l(&c.head),
            put: l(&c.put),
            create_multipart: l(&c.create_multipart),
            upload_part: l(&c.upload_part),
            upload_part_copy: l(&c.upload_part_copy),
            complete_multipart: l(&c.complete_multipart),
            abort_multipart: l(&c.abort_multipart),
            copy: l(&c.copy),
            delete: l(&c.delete),
            list: l(&c.list),
            bytes_uploaded: l(&c.bytes_uploaded),
        }
    }

    /// Every object, by key (for tests scanning the bucket).
    pub fn objects(&self) -> BTreeMap<String, MemoryObject> {
        self.lock().objects.clone()
    }

    /// One object, if present.
    pub fn object(&self, key: &str) -> Option<MemoryObject> {
        self.lock().objects.get(key).cloned()
    }

    /// Store an object directly, as another client would (no counters).
    pub fn insert(&self, key: &str, body: impl Into<Bytes>, metadata: ObjectMetadata) -> ETag {
        let etag = self.new_etag();
        let obj = MemoryObject {
            body: body.into(),
            etag: etag.clone(),
            last_modified: SystemTime::now(),
            metadata,
            content_type: None,
        };
        self.lock().objects.insert(key.to_string(), obj);
        etag
    }

    /// Remove an object directly, as another client would.
    pub fn remove(&self, key: &str) -> bool {
        self.lock().objects.remove(key).is_some()
    }

    /// Number of multipart uploads not completed or aborted.
    pub fn open_uploads(&self) -> usize {
        self.lock().uploads.len()
    }

    fn check_condition(
        &self,
        state: &State,
        key: &str,
        condition: Option<&PutCondition>,
    ) -> ClientResult<()> {
        if !self.capabilities.conditional_put {
            return Ok(());
        }
        let current = state.objects.get(key);
        let ok = match condition {
            None => true,
            Some(PutCondition::IfNoneMatchAny) => current.is_none(),
            Some(PutCondition::IfMatch(tag)) => current.is_some_and(|o| &o.etag == tag),
        };
        if ok {
            Ok(())
        } else {
            Err(ObjectClientError::PreconditionFailed {
                key: key.to_string(),
            })
        }
    }

    fn source<'a>(
        state: &'a State,
        key: &str,
        if_match: Option<&ETag>,
    ) -> ClientResult<&'a MemoryObject> {
        let obj = state
            .objects
            .get(key)
            .ok_or_else(|| ObjectClientError::NoSuchKey {
                key: key.to_string(),
            })?;
        if if_match.is_some_and(|t| t != &obj.etag) {
            return Err(ObjectClientError::PreconditionFailed {
                key: key.to_string(),
            });
        }
        Ok(obj)
    }
}

fn no_upload(id: &UploadId) -> ObjectClientError {
    ObjectClientError::NoSuchUpload {
        upload_id: id.0.clone(),
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl ObjectClient for MemoryClient {
    fn capabilities(&self) -> ClientCapabilities {
        self.capabilities
    }

    async fn get_object(
        &self,
        key: &str,
        params: &GetObjectParams,
    ) -> ClientResult<GetObjectResult> {
        bump(&self.counters.get);
        let state = self.lock();
        let obj = Self::source(&state, key, params.if_match.as_ref())?;
        let size = obj.body.len() as u64;
        let body = match &params.range {
            None => obj.body.clone(),
            Some(r) => {
                if r.start >= size || r.start >= r.end {
                    return Err(ObjectClientError::InvalidRange {
                        key: key.to_string(),
                    });
                }
                let end = r.end.min(size);
                obj.body.slice(r.start as usize..end as usize)
            }
        };
        Ok(GetObjectResult {
            body,
            object_size: size,
            etag: obj.etag.clone(),
            last_modified: obj.last_modified,
            metadata: obj.metadata.clone(),
            content_type: obj.content_type.clone(),
        })
    }

    async fn head_object(&self, key: &str) -> ClientResult<HeadObjectResult> {
        bump(&self.counters.head);
        let state = self.lock();
        let obj = Self::source(&state, key, None)?;
        Ok(HeadObjectResult {
            size: obj.body.len() as u64,
            etag: obj.etag.clone(),
            last_modified: obj.last_modified,
            metadata: obj.metadata.clone(),
            content_type: obj.content_type.clone(),
        })
    }

    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        params: &PutObjectParams,
    ) -> ClientResult<PutObjectResult> {
        bump(&self.counters.put);
        self.counters
            .bytes_uploaded
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        let mut state = self.lock();
        self.check_condition(&state, key, params.condition.as_ref())?;
        let etag = self.new_etag();
        state.objects.insert(
            key.to_string(),
            MemoryObject {
                body,
                etag: etag.clone(),
                last_modified: SystemTime::now(),
                metadata: params.metadata.clone(),
                content_type: params.content_type.clone(),
            },
        );
        Ok(PutObjectResult { etag })
    }

    async fn create_multipart_upload(
        &self,
        key: &str,
        params: &CreateMultipartUploadParams,
    ) -> ClientResult<UploadId> {
        bump(&self.counters.create_multipart);
        let id = format!("upload-{}", self.next_tag.fetch_add(1, Ordering::Relaxed));
        self.lock().uploads.insert(
            id.clone(),
            Upload {
                key: key.to_string(),
                metadata: params.metadata.clone(),
                content_type: params.content_type.clone(),
                parts: BTreeMap::new(),
            },
        );
        Ok(UploadId(id))
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        body: Bytes,
    ) -> ClientResult<UploadPartResult> {
        bump(&self.counters.upload_part);
        self.counters
            .bytes_uploaded
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        let etag = self.new_etag();
        let mut state = self.lock();
        let upload = state
            .uploads
            .get_mut(&upload_id.0)
            .filter(|u| u.key == key)
            .ok_or_else(|| no_upload(upload_id))?;
        upload.parts.insert(part_number, (etag.clone(), body));
        Ok(UploadPartResult { etag })
    }

    async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        params: &UploadPartCopyParams,
    ) -> ClientResult<UploadPartResult> {
        bump(&self.counters.upload_part_copy);
        let etag = self.new_etag();
        let mut state = self.lock();
        let src = Self::source(&state, &params.source_key, params.source_if_match.as_ref())?;
        let r = &params.source_range;
        let size = src.body.len() as u64;
        if r.start >= r.end || r.end > size {
            return Err(ObjectClientError::InvalidRange {
                key: params.source_key.clone(),
            });
        }
        let body = src.body.slice(r.start as usize..r.end as usize);
        let upload = state
            .uploads
            .get_mut(&upload_id.0)
            .filter(|u| u.key == key)
            .ok_or_else(|| no_upload(upload_id))?;
        upload.parts.insert(part_number, (etag.clone(), body));
        Ok(UploadPartResult { etag })
    }

    async fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &UploadId,
        parts: &[CompletedPart],
        condition: Option<&PutCondition>,
    ) -> ClientResult<PutObjectResult> {
        bump(&self.counters.complete_multipart);
        let mut state = self.lock();
        self.check_condition(&state, key, condition)?;
        let upload = state
            .uploads
            .get(&upload_id.0)
            .filter(|u| u.key == key)
            .ok_or_else(|| no_upload(upload_id))?;
        let min = self.capabilities.min_part_size;
        let mut body = BytesMut::new();
        let mut last = 0;
        for (i, part) in parts.iter().enumerate() {
            let invalid = |code: &str| ObjectClientError::ClientError {
                status: 400,
                code: code.to_string(),
            };
            if part.part_number <= last {
                return Err(invalid("InvalidPartOrder"));
            }
            last = part.part_number;
            let (tag, data) = upload
                .parts
                .get(&part.part_number)
                .ok_or_else(|| invalid("InvalidPart"))?;
            if tag != &part.etag {
                return Err(invalid("InvalidPart"));
            }
            if i + 1 < parts.len() && (data.len() as u64) < min {
                return Err(invalid("EntityTooSmall"));
            }
            body.extend_from_slice(data);
        }
        let upload = state
            .uploads
            .remove(&upload_id.0)
            .ok_or_else(|| no_upload(upload_id))?;
        let etag = self.new_etag();
        state.objects.insert(
            key.to_string(),
            MemoryObject {
                body: body.freeze(),
                etag: etag.clone(),
                last_modified: SystemTime::now(),
                metadata: upload.metadata,
                content_type: upload.content_type,
            },
        );
        Ok(PutObjectResult { etag })
    }

    async fn abort_multipart_upload(&self, _key: &str, upload_id: &UploadId) -> ClientResult<()> {
        bump(&self.counters.abort_multipart);
        self.lock()
            .uploads
            .remove(&upload_id.0)
            .map(|_| ())
            .ok_or_else(|| no_upload(upload_id))
    }

    async fn copy_object(
        &self,
        source_key: &str,
        dest_key: &str,
        params: &CopyObjectParams,
    ) -> ClientResult<PutObjectResult> {
        bump(&self.counters.copy);
        let etag = self.new_etag();
        let mut state = self.lock();
        let src = Self::source(&state, source_key, params.source_if_match.as_ref())?.clone();
        let (metadata, content_type) = match &params.metadata_directive {
            MetadataDirective::Copy => (src.metadata, src.content_type),
            MetadataDirective::Replace {
                metadata,
                content_type,
            } => (metadata.clone(), content_type.clone()),
        };
        state.objects.insert(
            dest_key.to_string(),
            MemoryObject {
                body: src.body,
                etag: etag.clone(),
                last_modified: SystemTime::now(),
                metadata,
                content_type,
            },
        );
        Ok(PutObjectResult { etag })
    }

    async fn delete_object(&self, key: &str) -> ClientResult<()> {
        bump(&self.counters.delete);
        self.lock().objects.remove(key);
        Ok(())
    }

    async fn list_objects(&self, params: &ListObjectsParams) -> ClientResult<ListObjectsResult> {
        bump(&self.counters.list);
        let state = self.lock();
        let max = params.max_keys.unwrap_or(1000).max(1) as usize;
        let start = [
            params.continuation_token.as_ref(),
            params.start_after.as_ref(),
        ]
        .into_iter()
        .flatten()
        .max()
        .cloned();
        let mut result = ListObjectsResult::default();
        let mut count = 0;
        // The token is the last key returned, or, after a common prefix, a
        // string sorting after every key under that prefix (so the next
        // page never repeats the prefix, as on S3).
        let mut token: Option<String> = None;
        let range = state.objects.range(params.prefix.clone()..);
        for (key, obj) in range {
            if !key.starts_with(&params.prefix) {
                break;
            }
            if start.as_ref().is_some_and(|s| key <= s) {
                continue;
            }
            let rest = &key[params.prefix.len()..];
            let common = params
                .delimiter
                .as_deref()
                .filter(|d| !d.is_empty())
                .and_then(|d| {
                    rest.find(d)
                        .map(|i| format!("{}{}", &params.prefix, &rest[..i + d.len()]))
                });
            if common.is_some() && result.common_prefixes.last() == common.as_ref() {
                continue;
            }
            if count == max {
                result.next_continuation_token = token.clone();
                break;
            }
            count += 1;
            match common {
                Some(cp) => {
                    token = Some(format!("{cp}\u{10FFFF}"));
                    result.common_prefixes.push(cp);
                }
                None => {
                    token = Some(key.clone());
                    result.objects.push(ObjectInfo {
                        key: key.clone(),
                        size: obj.body.len() as u64,
                        etag: obj.etag.clone(),
                        last_modified: obj.last_modified,
                    });
                }
            }
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests;

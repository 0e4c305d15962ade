//! `ObjectClient` for `S3Client`: each operation builds its request
//! (headers, query), sends it through the retry loop in `transport`, and
//! turns the response (headers, XML) into the trait's result types.
//!
//! Listing always asks for `encoding-type=url`, because XML 1.0 cannot carry
//! every byte an object key may hold; keys and prefixes are decoded here
//! (`+` is a space, as AWS encodes it).

use std::fs::File;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use reqwest::header::{
    HeaderMap, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED,
};
use reqwest::Method;

use crate::client::{
    read_file_range, ClientCapabilities, ClientResult, CompletedPart, CopyObjectParams,
    CreateMultipartUploadParams, ETag, GetObjectParams, GetObjectResult, HeadObjectResult,
    ListObjectsParams, ListObjectsResult, MetadataDirective, ObjectClient, ObjectClientError,
    ObjectInfo, ObjectMetadata, PutCondition, PutObjectParams, PutObjectResult, UploadId,
    UploadPartCopyParams, UploadPartResult,
};

use super::transport::{copy_source, Request};
use super::xml::{self, XmlError};
use super::{Inner, Op, S3Client};

const META_PREFIX: &str = "x-amz-meta-";

impl ObjectClient for S3Client {
    /// Conditional PUT is not assumed: garage (our test server) ignores it
    /// and AWS only honours it since 2024; the filesystem documents the gap.
    fn capabilities(&self) -> ClientCapabilities {
        ClientCapabilities::default()
    }

    async fn get_object(
        &self,
        key: &str,
        params: &GetObjectParams,
    ) -> ClientResult<GetObjectResult> {
        if let Some(r) = &params.range {
            // S3 cannot express an empty range; the trait makes it InvalidRange.
            if r.start >= r.end {
                return Err(ObjectClientError::InvalidRange {
                    key: key.to_owned(),
                });
            }
        }
        let inner = &*self.inner;
        inner
            .retry(Op::Get, || async {
                let mut req = Request::new(Op::Get, Method::GET, Some(key));
                if let Some(r) = &params.range {
                    req = req.header("range", format!("bytes={}-{}", r.start, r.end - 1));
                }
                if let Some(tag) = &params.if_match {
                    req = req.header("if-match", tag.as_str());
                }
                let resp = inner.send(&req).await?;
                let partial = resp.status().as_u16() == 206;
                let headers = resp.headers().clone();
                let body = read_body(inner, resp).await?;
                let object_size = if partial {
                    content_range_total(&headers)
                        .ok_or_else(|| invalid("206 without Content-Range total"))?
                } else {
                    body.len() as u64
                };
                // A server that ignores Range answers 200 with everything.
                let body = match (&params.range, partial) {
                    (Some(r), false) => {
                        if r.start >= object_size {
                            return Err(ObjectClientError::InvalidRange {
                                key: key.to_owned(),
                            });
                        }
                        body.slice(r.start as usize..r.end.min(object_size) as usize)
                    }
                    _ => body,
                };
                Ok(GetObjectResult {
                    body,
                    object_size,
                    etag: etag(&headers)?,
                    last_modified: last_modified(&headers)?,
                    metadata: metadata(&headers),
                    content_type: header_str(&headers, CONTENT_TYPE.as_str()),
                })
            })
            .await
    }

    async fn head_object(&self, key: &str) -> ClientResult<HeadObjectResult> {
        let inner = &*self.inner;
        inner
            .retry(Op::Head, || async {
                let req = Request::new(Op::Head, Method::HEAD, Some(key));
                let resp = inner.send(&req).await?;
                let headers = resp.headers();
                let size = header_str(headers, CONTENT_LENGTH.as_str())
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| invalid("HEAD without Content-Length"))?;
                Ok(HeadObjectResult {
                    size,
                    etag: etag(headers)?,
                    last_modified: last_modified(headers)?,
                    metadata: metadata(headers),
                    content_type: header_str(headers, CONTENT_TYPE.as_str()),
                })
            })
            .await
    }

    async fn put_object(
        &self,
        key: &str,
        body: Bytes,
        params: &PutObjectParams,
    ) -> ClientResult<PutObjectResult> {
        let inner = &*self.inner;
        inner
            .retry(Op::Put, || async {
                let mut req = Request::new(Op::Put, Method::PUT, Some(key));
                req = with_metadata(req, &params.metadata, params.content_type.as_deref());
                req = with_condition(req, params.condition.as_ref());
                req.body = body.clone();
                let resp = inner.send(&req).await?;
                Ok(PutObjectResult {
                    etag: etag(resp.headers())?,
                })
            })
            .await
    }

    async fn create_multipart_upload(
        &self,
        key: &str,
        params: &CreateMultipartUploadParams,
    ) -> ClientResult<UploadId> {
        let inner = &*self.inner;
        inner
            .retry(Op::CreateMultipart, || async {
                let mut req =
                    Request::new(Op::CreateMultipart, Method::POST, Some(key)).query("uploads", "");
                req = with_metadata(req, &params.metadata, params.content_type.as_deref());
                let resp = inner.send(&req).await?;
                let r: xml::InitiateResult = parse_body(inner, &req, resp).await?;
                Ok(UploadId(r.upload_id))
            })
            .await
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        body: Bytes,
    ) -> ClientResult<UploadPartResult> {
        let inner = &*self.inner;
        inner
            .retry(Op::UploadPart, || async {
                let mut req = part_request(Op::UploadPart, key, upload_id, part_number);
                req.body = body.clone();
                let resp = inner.send(&req).await?;
                Ok(UploadPartResult {
                    etag: etag(resp.headers())?,
                })
            })
            .await
    }

    async fn upload_part_from_file(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        file: Arc<File>,
        offset: u64,
        len: u64,
    ) -> ClientResult<UploadPartResult> {
        let inner = &self.inner;
        if !inner.endpoint.is_plain_http() {
            let body = read_file_range(file, offset, len).await?;
            return self.upload_part(key, upload_id, part_number, body).await;
        }
        inner
            .retry(Op::UploadPart, || async {
                let req = part_request(Op::UploadPart, key, upload_id, part_number);
                let etag = inner
                    .send_file(&req, Arc::clone(&file), offset, len)
                    .await?;
                Ok(UploadPartResult { etag })
            })
            .await
    }

    async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &UploadId,
        part_number: u32,
        params: &UploadPartCopyParams,
    ) -> ClientResult<UploadPartResult> {
        let r = &params.source_range;
        if r.start >= r.end {
            return Err(ObjectClientError::InvalidRange {
                key: params.source_key.clone(),
            });
        }
        let inner = &*self.inner;
        let source = copy_source(&inner.config.bucket, &params.source_key);
        inner
            .retry(Op::UploadPartCopy, || async {
                let mut req = part_request(Op::UploadPartCopy, key, upload_id, part_number)
                    .header("x-amz-copy-source", source.as_str())
                    .header(
                        "x-amz-copy-source-range",
                        format!("bytes={}-{}", r.start, r.end - 1),
                    );
                if let Some(tag) = &params.source_if_match {
                    req = req.header("x-amz-copy-source-if-match", tag.as_str());
                }
                let resp = inner.send(&req).await?;
                let res: xml::ETagResult = parse_body(inner, &req, resp).await?;
                Ok(UploadPartResult {
                    etag: ETag(res.etag),
                })
            })
            .await
            .map_err(|e| source_missing(e, &params.source_key))
    }

    async fn complete_multipart_upload(
        &self,
        key: &str,
        upload_id: &UploadId,
        parts: &[CompletedPart],
        condition: Option<&PutCondition>,
    ) -> ClientResult<PutObjectResult> {
        let inner = &*self.inner;
        let body = Bytes::from(xml::complete_body(parts));
        inner
            .retry(Op::CompleteMultipart, || async {
                let mut req = Request::new(Op::CompleteMultipart, Method::POST, Some(key))
                    .query("uploadId", upload_id.0.as_str())
                    .header("content-type", "application/xml");
                req.upload_id = Some(&upload_id.0);
                req = with_condition(req, condition);
                req.body = body.clone();
                let resp = inner.send(&req).await?;
                let res: xml::ETagResult = parse_body(inner, &req, resp).await?;
                Ok(PutObjectResult {
                    etag: ETag(res.etag),
                })
            })
            .await
    }

    async fn abort_multipart_upload(&self, key: &str, upload_id: &UploadId) -> ClientResult<()> {
        let inner = &*self.inner;
        inner
            .retry(Op::AbortMultipart, || async {
                let mut req = Request::new(Op::AbortMultipart, Method::DELETE, Some(key))
                    .query("uploadId", upload_id.0.as_str());
                req.upload_id = Some(&upload_id.0);
                inner.send(&req).await?;
                Ok(())
            })
            .await
    }

    async fn copy_object(
        &self,
        source_key: &str,
        dest_key: &str,
        params: &CopyObjectParams,
    ) -> ClientResult<PutObjectResult> {
        let inner = &*self.inner;
        let source = copy_source(&inner.config.bucket, source_key);
        inner
            .retry(Op::Copy, || async {
                let mut req = Request::new(Op::Copy, Method::PUT, Some(dest_key))
                    .header("x-amz-copy-source", source.as_str());
                req = match &params.metadata_directive {
                    MetadataDirective::Copy => req.header("x-amz-metadata-directive", "COPY"),
                    MetadataDirective::Replace {
                        metadata,
                        content_type,
                    } => {
                        let req = req.header("x-amz-metadata-directive", "REPLACE");
                        with_metadata(req, metadata, content_type.as_deref())
                    }
                };
                if let Some(tag) = &params.source_if_match {
                    req = req.header("x-amz-copy-source-if-match", tag.as_str());
                }
                let resp = inner.send(&req).await?;
                let res: xml::ETagResult = parse_body(inner, &req, resp).await?;
                Ok(PutObjectResult {
                    etag: ETag(res.etag),
                })
            })
            .await
            .map_err(|e| source_missing(e, source_key))
    }

    async fn delete_object(&self, key: &str) -> ClientResult<()> {
        let inner = &*self.inner;
        let result = inner
            .retry(Op::Delete, || async {
                inner
                    .send(&Request::new(Op::Delete, Method::DELETE, Some(key)))
                    .await?;
                Ok(())
            })
            .await;
        match result {
            // S3 answers 204 for a missing key; some servers say 404.
            Err(ObjectClientError::NoSuchKey { .. }) => Ok(()),
            other => other,
        }
    }

    async fn list_objects(&self, params: &ListObjectsParams) -> ClientResult<ListObjectsResult> {
        let inner = &*self.inner;
        inner
            .retry(Op::List, || async {
                let mut req = Request::new(Op::List, Method::GET, None)
                    .query("list-type", "2")
                    .query("encoding-type", "url");
                if !params.prefix.is_empty() {
                    req = req.query("prefix", params.prefix.as_str());
                }
                if let Some(d) = &params.delimiter {
                    req = req.query("delimiter", d.as_str());
                }
                if let Some(t) = &params.continuation_token {
                    req = req.query("continuation-token", t.as_str());
                }
                if let Some(n) = params.max_keys {
                    req = req.query("max-keys", n.to_string());
                }
                if let Some(s) = &params.start_after {
                    req = req.query("start-after", s.as_str());
                }
                let resp = inner.send(&req).await?;
                let r: xml::ListBucketResult = parse_body(inner, &req, resp).await?;
                list_result(r)
            })
            .await
    }
}

fn list_result(r: xml::ListBucketResult) -> ClientResult<ListObjectsResult> {
    let encoded = r.encoding_type.as_deref() == Some("url");
    let decode = |s: String| if encoded { url_decode(&s) } else { Ok(s) };
    let mut objects = Vec::with_capacity(r.contents.len());
    for c in r.contents {
        objects.push(ObjectInfo {
            key: decode(c.key)?,
            size: c.size,
            etag: ETag(c.etag),
            last_modified: humantime::parse_rfc3339_weak(&c.last_modified)
                .map_err(|_| invalid("unparsable LastModified in listing"))?,
        });
    }
    let common_prefixes = r
        .common_prefixes
        .into_iter()
        .map(|p| decode(p.prefix))
        .collect::<ClientResult<Vec<_>>>()?;
    // A truncated page without a token would loop forever in a caller.
    if r.is_truncated && r.next_continuation_token.is_none() {
        return Err(invalid("truncated listing without NextContinuationToken"));
    }
    Ok(ListObjectsResult {
        objects,
        common_prefixes,
        next_continuation_token: if r.is_truncated {
            r.next_continuation_token
        } else {
            None
        },
    })
}

/// Decodes `encoding-type=url` values (`+` is a space; a literal `+` is `%2B`).
fn url_decode(s: &str) -> ClientResult<String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| invalid("listing key is not UTF-8 after decoding"))
}

fn part_request<'a>(
    op: Op,
    key: &'a str,
    upload_id: &'a UploadId,
    part_number: u32,
) -> Request<'a> {
    let mut req = Request::new(op, Method::PUT, Some(key))
        .query("partNumber", part_number.to_string())
        .query("uploadId", upload_id.0.as_str());
    req.upload_id = Some(&upload_id.0);
    req
}

fn with_metadata<'a>(
    mut req: Request<'a>,
    metadata: &ObjectMetadata,
    content_type: Option<&str>,
) -> Request<'a> {
    for (name, value) in metadata {
        req = req.header(
            format!("{META_PREFIX}{}", name.to_ascii_lowercase()),
            value.as_str(),
        );
    }
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req
}

fn with_condition<'a>(req: Request<'a>, condition: Option<&PutCondition>) -> Request<'a> {
    match condition {
        Some(PutCondition::IfMatch(tag)) => req.header("if-match", tag.as_str()),
        Some(PutCondition::IfNoneMatchAny) => req.header("if-none-match", "*"),
        None => req,
    }
}

/// A copy whose *source* is missing names the source key, not the destination.
fn source_missing(e: ObjectClientError, source_key: &str) -> ObjectClientError {
    match e {
        ObjectClientError::NoSuchKey { .. } => ObjectClientError::NoSuchKey {
            key: source_key.to_owned(),
        },
        other => other,
    }
}

/// Reads a whole body, checking it against `Content-Length`. A connection
/// that ends early is `TruncatedBody` (transient: the retry loop re-reads).
async fn read_body(inner: &Inner, mut resp: reqwest::Response) -> ClientResult<Bytes> {
    let expected =
        header_str(resp.headers(), CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    let mut buf = BytesMut::with_capacity(expected.unwrap_or(0).min(1 << 30) as usize);
    loop {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                inner.stats.received(chunk.len());
                buf.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => return Err(ObjectClientError::Timeout),
            Err(e) => {
                return Err(match expected {
                    Some(expected) => ObjectClientError::TruncatedBody {
                        expected,
                        received: buf.len() as u64,
                    },
                    None => super::errors::from_transport(&e),
                })
            }
        }
    }
    if let Some(expected) = expected {
        if buf.len() as u64 != expected {
            return Err(ObjectClientError::TruncatedBody {
                expected,
                received: buf.len() as u64,
            });
        }
    }
    Ok(buf.freeze())
}

/// Reads and parses an XML success body; an `<Error>` inside a 200 is mapped
/// like a failed status.
async fn parse_body<T: serde::de::DeserializeOwned>(
    inner: &Inner,
    req: &Request<'_>,
    resp: reqwest::Response,
) -> ClientResult<T> {
    let body = read_body(inner, resp).await?;
    xml::parse(&body).map_err(|e| match e {
        XmlError::S3(code) => super::errors::from_status(200, &code, &inner.context(req)),
        XmlError::Invalid(message) => ObjectClientError::InvalidResponse {
            message: format!("{}: {message}", req.op.name()),
        },
    })
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn etag(headers: &HeaderMap) -> ClientResult<ETag> {
    header_str(headers, ETAG.as_str())
        .map(ETag)
        .ok_or_else(|| invalid("response without ETag"))
}

fn last_modified(headers: &HeaderMap) -> ClientResult<SystemTime> {
    let v = header_str(headers, LAST_MODIFIED.as_str())
        .ok_or_else(|| invalid("response without Last-Modified"))?;
    httpdate::parse_http_date(&v).map_err(|_| invalid("unparsable Last-Modified"))
}

/// `x-amz-meta-*` headers, prefix stripped (header names are lowercase).
fn metadata(headers: &HeaderMap) -> ObjectMetadata {
    headers
        .iter()
        .filter_map(|(k, v)| {
            let name = k.as_str().strip_prefix(META_PREFIX)?;
            Some((name.to_owned(), v.to_str().ok()?.to_owned()))
        })
        .collect()
}

/// The total of `Content-Range: bytes a-b/total`.
fn content_range_total(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, CONTENT_RANGE.as_str())?
        .rsplit('/')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn invalid(message: &str) -> ObjectClientError {
    ObjectClientError::InvalidResponse {
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listing_keys_are_url_decoded() {
        assert_eq!(url_decode("a+b%2Bc%2Fd").expect("decodes"), "a b+c/d");
        assert_eq!(url_decode("%C3%A9").expect("decodes"), "é");
    }

    #[test]
    fn truncated_listing_without_token_is_invalid() {
        let r = xml::ListBucketResult {
            is_truncated: true,
            next_continuation_token: None,
            contents: vec![],
            common_prefixes: vec![],
            encoding_type: None,
        };
        assert!(matches!(
            list_result(r),
            Err(ObjectClientError::InvalidResponse { .. })
        ));
    }
}

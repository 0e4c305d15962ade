//! One S3 request on the wire: the URL (path-style or virtual-hosted, keys
//! percent-encoded the way SigV4 canonicalises them), the SigV4 signature
//! (by `aws-sigv4`, never by hand; skipped for unsigned requests), the send
//! through a pooled `reqwest` client (or, for an UploadPart from a staged
//! file over plain HTTP, through `super::sendfile`), and the retry loop
//! around a whole operation.
//!
//! Retry: an operation (request *and* reading its body) is retried while it
//! fails with a transient error (`ObjectClientError::is_transient`: 5xx,
//! throttling, timeouts, resets, truncated bodies) and tries remain. The
//! pause before retry `n` is a uniformly random duration in
//! `0..min(max_backoff, initial_backoff * 2^(n-1))` ("full jitter"), so many
//! clients hitting a throttled server spread out. Bodies are `Bytes`, so a
//! retry resends the same bytes without copying.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{
    sign, PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode,
};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::Method;

use crate::client::{ETag, ObjectClientError};

use super::config::{AddressingStyle, S3Config};
use super::errors::{self, Context};
use super::{Inner, Op, S3Error};

/// Bytes kept as-is in a URI component: SigV4's unreserved set.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// Same, keeping `/` (object keys in paths).
const PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// Largest error body we read to find its `<Code>`.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The parsed endpoint: scheme and authority.
#[derive(Debug, Clone)]
pub(super) struct Endpoint {
    scheme: String,
    /// `host[:port]` exactly as it goes in the Host header.
    authority: String,
}

impl Endpoint {
    pub(super) fn from_config(config: &S3Config) -> Result<Self, S3Error> {
        let raw = match &config.endpoint {
            Some(e) => e.clone(),
            None => format!("https://s3.{}.amazonaws.com", config.region),
        };
        let url = reqwest::Url::parse(&raw).map_err(|e| S3Error::InvalidEndpoint {
            endpoint: raw.clone(),
            message: e.to_string(),
        })?;
        let host = url.host_str().ok_or_else(|| S3Error::InvalidEndpoint {
            endpoint: raw.clone(),
            message: "no host".into(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(S3Error::InvalidEndpoint {
                endpoint: raw,
                message: "scheme must be http or https".into(),
            });
        }
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        Ok(Self {
            scheme: url.scheme().to_owned(),
            authority,
        })
    }

    /// Whether requests go over plain HTTP (no TLS), where UploadPart
    /// bodies can be sent with sendfile(2).
    pub(super) fn is_plain_http(&self) -> bool {
        self.scheme == "http"
    }
}

/// A request before signing. `key` is `None` for bucket-level calls (list).
pub(super) struct Request<'a> {
    pub op: Op,
    pub method: Method,
    pub key: Option<&'a str>,
    /// Query parameters, unencoded (encoded here).
    pub query: Vec<(&'static str, String)>,
    /// Extra headers (lowercase names), unencoded values.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Set for multipart calls, so a NoSuchUpload error can name it.
    pub upload_id: Option<&'a str>,
}

impl<'a> Request<'a> {
    pub(super) fn new(op: Op, method: Method, key: Option<&'a str>) -> Self {
        Self {
            op,
            method,
            key,
            query: Vec::new(),
            headers: Vec::new(),
            body: Bytes::new(),
            upload_id: None,
        }
    }

    pub(super) fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub(super) fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }
}

/// Percent-encodes an object key for a URL path (keeps `/`).
pub(super) fn encode_key(key: &str) -> String {
    utf8_percent_encode(key, PATH).to_string()
}

/// `/bucket/key` for `x-amz-copy-source`.
pub(super) fn copy_source(bucket: &str, key: &str) -> String {
    format!(
        "/{}/{}",
        utf8_percent_encode(bucket, COMPONENT),
        encode_key(key)
    )
}

impl Inner {
    /// The URL and Host header of a request.
    fn url(&self, req: &Request<'_>) -> (String, String) {
        let bucket = &self.config.bucket;
        let key = req.key.map(encode_key).unwrap_or_default();
        let (host, path) = match self.config.addressing {
            AddressingStyle::Path => {
                let b = utf8_percent_encode(bucket, COMPONENT);
                let path = if req.key.is_some() {
                    format!("/{b}/{key}")
                } else {
                    format!("/{b}")
                };
                (self.endpoint.authority.clone(), path)
            }
            AddressingStyle::VirtualHosted => (
                format!("{bucket}.{}", self.endpoint.authority),
                format!("/{key}"),
            ),
        };
        let mut url = format!("{}://{host}{path}", self.endpoint.scheme);
        if !req.query.is_empty() {
            // Sorted, so the URL we send is already in canonical order.
            let mut q: Vec<_> = req.query.iter().collect();
            q.sort();
            for (i, (k, v)) in q.into_iter().enumerate() {
                url.push(if i == 0 { '?' } else { '&' });
                url.push_str(k);
                url.push('=');
                url.push_str(&utf8_percent_encode(v, COMPONENT).to_string());
            }
        }
        (url, host)
    }

    /// Sends one try of `req` and returns a response with a success status,
    /// or the mapped error (reading up to 64 KiB of an error body for its code).
    pub(super) async fn send(
        &self,
        req: &Request<'_>,
    ) -> Result<reqwest::Response, ObjectClientError> {
        let (url, headers) = self.signed(req)?;
        let timeout = self.request_timeout(req.body.len() as u64);
        self.stats.request(req.op, req.body.len());
        let sent = self
            .http
            .request(req.method.clone(), &url)
            .headers(headers)
            .body(req.body.clone())
            .timeout(timeout)
            .send()
            .await;
        let resp = match sent {
            Ok(r) => r,
            Err(e) => return Err(errors::from_transport(&e)),
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let code = if req.method == Method::HEAD {
            String::new()
        } else {
            read_error_code(resp).await
        };
        Err(errors::from_status(
            status.as_u16(),
            &code,
            &self.context(req),
        ))
    }

    /// The URL of `req` and its headers (Host, the request's own, and the
    /// SigV4 ones unless the client sends unsigned requests).
    pub(super) fn signed(
        &self,
        req: &Request<'_>,
    ) -> Result<(String, HeaderMap), ObjectClientError> {
        let (url, host) = self.url(req);
        let mut headers = HeaderMap::with_capacity(req.headers.len() + 5);
        headers.insert(reqwest::header::HOST, header_value(&host)?);
        for (name, value) in &req.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid_header(name))?;
            headers.insert(name, header_value(value)?);
        }
        let creds = self
            .credentials
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(creds) = &creds {
            self.sign(&req.method, &url, &mut headers, creds)?;
        }
        Ok((url, headers))
    }

    /// Time allowed for a whole request sending `body_len` bytes.
    pub(super) fn request_timeout(&self, body_len: u64) -> Duration {
        self.config.request_timeout + Duration::from_secs(body_len >> 20)
    }

    /// Sends one try of `req` (a PUT without body of its own) with `len`
    /// bytes of `file` from `offset` as its body, by sendfile(2) (see
    /// `super::sendfile`); returns the response's ETag or the mapped error.
    pub(super) async fn send_file(
        self: &Arc<Self>,
        req: &Request<'_>,
        file: Arc<std::fs::File>,
        offset: u64,
        len: u64,
    ) -> Result<ETag, ObjectClientError> {
        let (url, headers) = self.signed(req)?;
        // `url` is `http://authority/path?query`.
        let path_and_query = url
            .get(self.endpoint.scheme.len() + 3..)
            .and_then(|rest| rest.find('/').map(|i| rest[i..].to_owned()))
            .unwrap_or_else(|| "/".to_owned());
        let authority = headers
            .get(reqwest::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(&self.endpoint.authority)
            .to_owned();
        let timeout = self.request_timeout(len);
        self.stats.request(req.op, len as usize);
        let inner = Arc::clone(self);
        let sent = tokio::task::spawn_blocking(move || {
            let range = super::sendfile::FileRange {
                file: &file,
                offset,
                len,
            };
            inner.file_parts.put(
                &authority,
                &path_and_query,
                &headers,
                range,
                inner.config.connect_timeout,
                timeout,
            )
        })
        .await
        .map_err(|e| ObjectClientError::Connection {
            message: format!("request: {e}"),
        })??;
        if (200..300).contains(&sent.status) {
            return sent
                .etag
                .map(ETag)
                .ok_or_else(|| ObjectClientError::InvalidResponse {
                    message: "response without ETag".into(),
                });
        }
        let code = super::xml::error_code(&sent.body).unwrap_or_default();
        Err(errors::from_status(sent.status, &code, &self.context(req)))
    }

    pub(super) fn context<'a>(&'a self, req: &Request<'a>) -> Context<'a> {
        Context {
            op: req.op,
            bucket: &self.config.bucket,
            key: req.key.unwrap_or_default(),
            upload_id: req.upload_id,
        }
    }

    /// Adds the SigV4 headers. The payload is `UNSIGNED-PAYLOAD`: hashing
    /// every body would cost a pass over each byte, and TLS already protects
    /// it in transit.
    fn sign(
        &self,
        method: &Method,
        url: &str,
        headers: &mut HeaderMap,
        creds: &super::config::Credentials,
    ) -> Result<(), ObjectClientError> {
        let identity = aws_credential_types::Credentials::new(
            creds.access_key_id.clone(),
            creds.secret_access_key.expose().clone(),
            creds.session_token.as_ref().map(|t| t.expose().clone()),
            None,
            "bucketfs",
        )
        .into();
        let mut settings = SigningSettings::default();
        // S3 signs the path as sent (already encoded once) and never
        // normalises `.`/`..` or `//` in keys.
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.config.region)
            .name("s3")
            .time(SystemTime::now())
            .settings(settings)
            .build()
            .map_err(|e| signing_failed(&e))?
            .into();
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v)))
            .collect();
        let signable = SignableRequest::new(
            method.as_str(),
            url,
            pairs.into_iter(),
            SignableBody::UnsignedPayload,
        )
        .map_err(|e| signing_failed(&e))?;
        let (instructions, _signature) = sign(signable, &params)
            .map_err(|e| signing_failed(&e))?
            .into_parts();
        let (new_headers, _params) = instructions.into_parts();
        for h in new_headers {
            let name = HeaderName::from_bytes(h.name().as_bytes())
                .map_err(|_| invalid_header(h.name()))?;
            let mut value = header_value(h.value())?;
            value.set_sensitive(h.sensitive());
            headers.insert(name, value);
        }
        Ok(())
    }

    /// Runs `attempt` until it succeeds, fails for good, or tries run out.
    pub(super) async fn retry<T, F, Fut>(
        &self,
        op: Op,
        mut attempt: F,
    ) -> Result<T, ObjectClientError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ObjectClientError>>,
    {
        let policy = self.config.retry;
        let mut tries = 0u32;
        loop {
            tries += 1;
            match attempt().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() && tries < policy.max_attempts.max(1) => {
                    self.stats.retry(op);
                    let ceiling = policy
                        .initial_backoff
                        .saturating_mul(1 << (tries - 1).min(16))
                        .min(policy.max_backoff);
                    let pause = ceiling.mul_f64(fastrand::f64());
                    tracing::debug!(op = op.name(), tries, error = %e, ?pause, "retrying s3 request");
                    tokio::time::sleep(pause).await;
                }
                Err(e) => {
                    self.stats.error(op);
                    return Err(e);
                }
            }
        }
    }
}

/// Reads an error body (bounded) and returns its `<Code>`, or "".
async fn read_error_code(mut resp: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_ERROR_BODY {
        match resp.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    super::xml::error_code(&body).unwrap_or_default()
}

fn header_value(v: &str) -> Result<HeaderValue, ObjectClientError> {
    HeaderValue::from_str(v).map_err(|_| ObjectClientError::ClientError {
        status: 400,
        code: "InvalidHeaderValue".into(),
    })
}

fn invalid_header(name: &str) -> ObjectClientError {
    ObjectClientError::ClientError {
        status: 400,
        code: format!("InvalidHeaderName {name:?}"),
    }
}

fn signing_failed(e: &dyn std::fmt::Display) -> ObjectClientError {
    // aws-sigv4's errors describe the request shape, never the secret.
    ObjectClientError::ClientError {
        status: 0,
        code: format!("SigningFailed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_like_sigv4_canonical_uris() {
        assert_eq!(encode_key("a b/c+d"), "a%20b/c%2Bd");
        assert_eq!(encode_key("x~y_z-.txt"), "x~y_z-.txt");
        assert_eq!(encode_key("é?#%"), "%C3%A9%3F%23%25");
        assert_eq!(copy_source("bk", "d/a b"), "/bk/d/a%20b");
    }

    fn url_of(
        config: S3Config,
        key: Option<&str>,
        query: &[(&'static str, &str)],
    ) -> (String, String) {
        let client = super::super::S3Client::new(config).expect("client");
        let mut req = Request::new(Op::Get, Method::GET, key);
        for (k, v) in query {
            req = req.query(k, *v);
        }
        client.inner.url(&req)
    }

    #[test]
    fn path_style_and_virtual_hosted_urls() {
        let path = S3Config::new("bk", "garage").with_endpoint("http://127.0.0.1:3900");
        assert_eq!(
            url_of(path.clone(), Some("d/a b"), &[]),
            (
                "http://127.0.0.1:3900/bk/d/a%20b".into(),
                "127.0.0.1:3900".into()
            )
        );
        assert_eq!(
            url_of(path, None, &[("prefix", "a b+/"), ("list-type", "2")]),
            (
                "http://127.0.0.1:3900/bk?list-type=2&prefix=a%20b%2B%2F".into(),
                "127.0.0.1:3900".into()
            )
        );
        let aws = S3Config::new("bk", "eu-west-1");
        assert_eq!(
            url_of(aws.clone(), Some("k"), &[]),
            (
                "https://bk.s3.eu-west-1.amazonaws.com/k".into(),
                "bk.s3.eu-west-1.amazonaws.com".into()
            )
        );
        assert_eq!(
            url_of(aws, None, &[]).0,
            "https://bk.s3.eu-west-1.amazonaws.com/"
        );
    }
}

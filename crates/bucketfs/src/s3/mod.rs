//! The real S3 `ObjectClient`: S3's REST API over HTTP(S), signed with SigV4
//! by `aws-sigv4`, sent through one pooled `reqwest` client (keep-alive
//! connections reused across requests and parallel parts).
//!
//! What it does beyond the trait's contract:
//! - path-style or virtual-hosted URLs, any endpoint and region, and
//!   unsigned requests when no credentials are set (public buckets);
//! - retries of transient failures with jittered exponential backoff,
//!   counted in [`S3Stats`] (see `transport` for the algorithm);
//! - a connect timeout, a per-read timeout (a stalled body fails instead of
//!   hanging) and a per-request timeout that grows with the upload size;
//! - over plain HTTP, UploadPart bodies from a staged file go out with
//!   sendfile(2) on connections of their own (`sendfile`), never through
//!   a buffer of this process;
//! - GET bodies are read as a stream into one buffer of the announced size,
//!   and a body shorter than `Content-Length` is a `TruncatedBody` error
//!   (retried), never a short read handed to the filesystem.
//!
//! ```no_run
//! use bucketfs::s3::{Credentials, S3Client, S3Config};
//! # fn f() -> Result<(), bucketfs::s3::S3Error> {
//! let config = S3Config::new("my-bucket", "garage")
//!     .with_endpoint("http://127.0.0.1:3900") // also selects path-style
//!     .with_credentials(Credentials::new("GK…", "…"));
//! let client = S3Client::new(config)?;
//! # Ok(()) }
//! ```

mod config;
mod errors;
mod ops;
mod sendfile;
mod transport;
mod xml;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use config::{AddressingStyle, Credentials, RetryConfig, S3Config, Secret};

/// Errors building an [`S3Client`] (request failures are `ObjectClientError`s).
#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    /// The endpoint is not an `http(s)://host[:port]` URL.
    #[error("invalid s3 endpoint {endpoint:?}: {message}")]
    InvalidEndpoint { endpoint: String, message: String },
    /// The HTTP client could not be built (TLS roots, settings).
    #[error("could not build the http client: {message}")]
    HttpClient { message: String },
    /// The shared credentials file exists but cannot be read.
    #[error("could not read credentials file {path:?}: {message}")]
    CredentialsFile { path: PathBuf, message: String },
}

pub use crate::client::Op;

/// Transport counters of one client: every try on the wire (retries
/// included), retries, final failures and bytes. Cheap atomics, read any time.
#[derive(Debug, Default)]
pub struct S3Stats {
    requests: [AtomicU64; Op::COUNT],
    retries: [AtomicU64; Op::COUNT],
    failures: [AtomicU64; Op::COUNT],
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
}

impl S3Stats {
    fn request(&self, op: Op, body: usize) {
        self.requests[op.index()].fetch_add(1, Ordering::Relaxed);
        self.bytes_sent.fetch_add(body as u64, Ordering::Relaxed);
    }

    fn retry(&self, op: Op) {
        self.retries[op.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn error(&self, op: Op) {
        self.failures[op.index()].fetch_add(1, Ordering::Relaxed);
    }

    fn received(&self, n: usize) {
        self.bytes_received.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Requests of `op` sent, each retry counted.
    pub fn requests(&self, op: Op) -> u64 {
        self.requests[op.index()].load(Ordering::Relaxed)
    }

    /// Retries of `op`.
    pub fn retries(&self, op: Op) -> u64 {
        self.retries[op.index()].load(Ordering::Relaxed)
    }

    /// Retries of every operation.
    pub fn total_retries(&self) -> u64 {
        Op::ALL.iter().map(|op| self.retries(*op)).sum()
    }

    /// Operations that failed after their last try.
    pub fn failures(&self, op: Op) -> u64 {
        self.failures[op.index()].load(Ordering::Relaxed)
    }

    /// Body bytes sent (retries included).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }

    /// Body bytes received from GETs.
    pub fn bytes_received(&self) -> u64 {
        self.bytes_received.load(Ordering::Relaxed)
    }

    /// Prometheus text exposition (`bucketfs_s3_*`).
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        for (metric, values) in [
            ("bucketfs_s3_requests_total", &self.requests),
            ("bucketfs_s3_retries_total", &self.retries),
            ("bucketfs_s3_failures_total", &self.failures),
        ] {
            let _ = writeln!(s, "# TYPE {metric} counter");
            for op in Op::ALL {
                let n = values[op.index()].load(Ordering::Relaxed);
                let _ = writeln!(s, "{metric}{{op=\"{}\"}} {n}", op.name());
            }
        }
        let _ = writeln!(s, "# TYPE bucketfs_s3_sent_bytes_total counter");
        let _ = writeln!(s, "bucketfs_s3_sent_bytes_total {}", self.bytes_sent());
        let _ = writeln!(s, "# TYPE bucketfs_s3_received_bytes_total counter");
        let _ = writeln!(
            s,
            "bucketfs_s3_received_bytes_total {}",
            self.bytes_received()
        );
        s
    }
}

/// The S3 client, bound to one bucket. Cloning shares the connection pool
/// and counters.
#[derive(Clone, Debug)]
pub struct S3Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    config: S3Config,
    /// The keys requests are signed with, starting as `config.credentials`;
    /// replaced by [`S3Client::set_credentials`] while the mount runs. A
    /// request reads them once, when it is signed, so one in flight keeps
    /// the keys it started with.
    credentials: std::sync::RwLock<Option<config::Credentials>>,
    endpoint: transport::Endpoint,
    stats: S3Stats,
    /// Connections of the sendfile UploadPart path (plain HTTP only).
    file_parts: sendfile::ConnPool,
}

impl S3Client {
    /// Builds a client for `config` (no request is sent yet).
    pub fn new(config: S3Config) -> Result<Self, S3Error> {
        let endpoint = transport::Endpoint::from_config(&config)?;
        let http = build_http(&config)?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                credentials: std::sync::RwLock::new(config.credentials.clone()),
                config,
                endpoint,
                stats: S3Stats::default(),
                file_parts: sendfile::ConnPool::default(),
            }),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &S3Config {
        &self.inner.config
    }

    /// Signs every later request with `credentials` (key rotation while
    /// mounted; `None` sends unsigned requests). Requests already signed
    /// keep the old keys; one the server then refuses fails like any 403
    /// and is retried by the filesystem with the new keys.
    pub fn set_credentials(&self, credentials: Option<config::Credentials>) {
        *self
            .inner
            .credentials
            .write()
            .unwrap_or_else(|p| p.into_inner()) = credentials;
    }

    /// The keys the next request is signed with.
    pub fn current_credentials(&self) -> Option<config::Credentials> {
        self.inner
            .credentials
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Transport counters (requests, retries, failures, bytes).
    pub fn stats(&self) -> &S3Stats {
        &self.inner.stats
    }
}

/// The pooled HTTP client: HTTP/1.1 (what S3 speaks), keep-alive, no
/// automatic decompression (bodies must stay byte-exact and their
/// `Content-Length` checkable), TLS by rustls with the `ring` provider and
/// the platform's roots.
fn build_http(config: &S3Config) -> Result<reqwest::Client, S3Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| S3Error::HttpClient {
            message: e.to_string(),
        })?;
    let tls = rustls_platform_verifier::BuilderVerifierExt::with_platform_verifier(tls)
        .map_err(|e| S3Error::HttpClient {
            message: e.to_string(),
        })?
        .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(config.connect_timeout)
        .read_timeout(config.read_timeout)
        .pool_max_idle_per_host(config.max_idle_connections)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .map_err(|e| S3Error::HttpClient {
            message: e.to_string(),
        })
}

#[cfg(test)]
mod tests;

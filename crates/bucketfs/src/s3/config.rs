//! Configuration of the S3 client: where the bucket is (endpoint, region,
//! addressing style), who we are (credentials, or none for public buckets),
//! and how patient we are (timeouts, retries).
//!
//! Credentials come from the caller, from the standard AWS environment
//! variables or from the shared credentials file; never from argv. The secret
//! and session token live in [`Secret`], whose `Debug` and `Display` print
//! `***`, so no log line, error or panic message can show them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::S3Error;

/// A value that must never be printed (`Debug`/`Display` show `***`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a secret value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret itself; call only where it is used (signing).
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Static AWS credentials.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The access key id (not secret: it names the key, and S3 echoes it).
    pub access_key_id: String,
    /// The secret access key.
    pub secret_access_key: Secret<String>,
    /// The session token of temporary credentials.
    pub session_token: Option<Secret<String>>,
}

impl Credentials {
    /// Credentials from an access key id and secret.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: Secret::new(secret_access_key.into()),
            session_token: None,
        }
    }

    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optional
    /// `AWS_SESSION_TOKEN`; `None` when the first two are not both set.
    pub fn from_env() -> Option<Self> {
        let id = std::env::var("AWS_ACCESS_KEY_ID")
            .ok()
            .filter(|s| !s.is_empty())?;
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY")
            .ok()
            .filter(|s| !s.is_empty())?;
        let token = std::env::var("AWS_SESSION_TOKEN")
            .ok()
            .filter(|s| !s.is_empty());
        Some(Self {
            access_key_id: id,
            secret_access_key: Secret::new(secret),
            session_token: token.map(Secret::new),
        })
    }

    /// A profile of the shared credentials file: `AWS_SHARED_CREDENTIALS_FILE`
    /// or `~/.aws/credentials`, profile `AWS_PROFILE` or `default`.
    /// `Ok(None)` when the file or the profile does not exist.
    pub fn from_shared_file() -> Result<Option<Self>, S3Error> {
        let path = match std::env::var_os("AWS_SHARED_CREDENTIALS_FILE") {
            Some(p) => PathBuf::from(p),
            None => match std::env::var_os("HOME") {
                Some(home) => Path::new(&home).join(".aws").join("credentials"),
                None => return Ok(None),
            },
        };
        let profile = std::env::var("AWS_PROFILE").unwrap_or_else(|_| "default".to_owned());
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(parse_credentials_file(&text, &profile)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(S3Error::CredentialsFile {
                path,
                message: e.to_string(),
            }),
        }
    }

    /// The environment first, then the shared credentials file (the order
    /// the AWS CLI uses for static credentials).
    pub fn from_env_or_shared_file() -> Result<Option<Self>, S3Error> {
        match Self::from_env() {
            Some(c) => Ok(Some(c)),
            None => Self::from_shared_file(),
        }
    }
}

/// Parses the INI-style shared credentials file and returns `profile`'s keys.
fn parse_credentials_file(text: &str, profile: &str) -> Option<Credentials> {
    let mut in_profile = false;
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_profile = name.trim() == profile;
            continue;
        }
        if !in_profile {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_owned();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some(Credentials {
        access_key_id: id?,
        secret_access_key: Secret::new(secret?),
        session_token: token.map(Secret::new),
    })
}

/// How the bucket appears in request URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressingStyle {
    /// `https://endpoint/bucket/key` (needed for most self-hosted servers
    /// and for bucket names with dots under TLS).
    Path,
    /// `https://bucket.endpoint/key` (AWS's default).
    VirtualHosted,
}

/// Retry policy for transient failures (5xx, throttling, resets, timeouts,
/// truncated bodies): exponential backoff with full jitter.
#[derive(Debug, Clone, Copy)]
pub struct RetryConfig {
    /// Total tries of one request, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Backoff ceiling before the first retry; doubled each retry.
    pub initial_backoff: Duration,
    /// Largest backoff between two tries.
    pub max_backoff: Duration,
}

impl Default for RetryConfig {
    /// Four tries within about 2 s: long enough to ride out a dropped
    /// connection or a short throttle, short enough that `close()` reports a
    /// dead server promptly (the filesystem keeps the data and retries later).
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        }
    }
}

/// Everything [`super::S3Client::new`] needs.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// The bucket every request goes to.
    pub bucket: String,
    /// Region to sign for (`us-east-1` when unsure; garage uses its own name).
    pub region: String,
    /// `http(s)://host[:port]`; `None` means AWS (`https://s3.<region>.amazonaws.com`).
    pub endpoint: Option<String>,
    /// Path-style or virtual-hosted URLs.
    pub addressing: AddressingStyle,
    /// `None` sends unsigned requests (public buckets, `--no-sign-request`).
    pub credentials: Option<Credentials>,
    /// Time to establish a TCP (and TLS) connection.
    pub connect_timeout: Duration,
    /// Longest wait for any single read from the server (response headers or
    /// a body chunk); a stalled connection fails after this.
    pub read_timeout: Duration,
    /// Longest time for a whole request with a small body; uploads get one
    /// extra second per MiB sent on top.
    pub request_timeout: Duration,
    /// Retries of transient failures.
    pub retry: RetryConfig,
    /// Largest number of idle keep-alive connections kept per host.
    pub max_idle_connections: usize,
}

impl S3Config {
    /// A config for `bucket` on AWS in `region`: virtual-hosted URLs, no
    /// credentials (set [`S3Config::credentials`]), default timeouts and retries.
    pub fn new(bucket: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            region: region.into(),
            endpoint: None,
            addressing: AddressingStyle::VirtualHosted,
            credentials: None,
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(60),
            retry: RetryConfig::default(),
            max_idle_connections: 32,
        }
    }

    /// Sets a custom endpoint and path-style addressing (what self-hosted
    /// servers such as garage, MinIO or moto expect).
    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self.addressing = AddressingStyle::Path;
        self
    }

    /// Sets the credentials (requests are signed with SigV4).
    pub fn with_credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_and_display_print_stars() {
        let c = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG");
        let debug = format!("{c:?}");
        assert!(!debug.contains("wJalr"), "{debug}");
        assert!(debug.contains("***"));
        assert_eq!(format!("{}", c.secret_access_key), "***");
    }

    #[test]
    fn credentials_file_profile_is_selected() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = B\n\n[other]\naws_access_key_id=C\naws_secret_access_key=D\naws_session_token=E\n";
        let d = parse_credentials_file(text, "default").expect("default profile");
        assert_eq!(d.access_key_id, "A");
        assert_eq!(d.secret_access_key.expose(), "B");
        assert!(d.session_token.is_none());
        let o = parse_credentials_file(text, "other").expect("other profile");
        assert_eq!(o.access_key_id, "C");
        assert_eq!(
            o.session_token.as_ref().map(|t| t.expose().as_str()),
            Some("E")
        );
        assert!(parse_credentials_file(text, "missing").is_none());
    }
}

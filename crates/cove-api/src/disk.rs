//! Disks (`/v1/disks`) and their attachments to sandboxes
//! (`/v1/sandboxes/{id}/disks`): requests, views and their validation
//! (`API.md` §4.8 and §6.5). A disk is a user's own S3-compatible bucket;
//! its credentials are write-only: they are accepted here and never appear
//! in a view, and `Debug` never shows them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::codes::ErrorCode;
use crate::ids::{DiskId, SandboxId};
use crate::timestamp::Timestamp;
use crate::validate::{normalize_sandbox_path, ValidationError};

/// The only disk kind.
pub const DISK_KIND_S3: &str = "s3";

/// Where the bucket is. `config` of a disk is always a JSON object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiskConfig {
    /// Bucket name.
    pub bucket: String,
    /// S3 endpoint URL (`http://` or `https://`).
    pub endpoint: String,
    /// Region requests are signed for; absent means `us-east-1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Path-style URLs (`endpoint/bucket/key`) instead of virtual-hosted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_path_style: Option<bool>,
}

impl DiskConfig {
    /// The region requests are signed for.
    pub fn region_or_default(&self) -> &str {
        self.region
            .as_deref()
            .filter(|r| !r.is_empty())
            .unwrap_or("us-east-1")
    }

    /// The same settings as `other` once defaults are applied (a create
    /// with an equal config under a taken name returns the existing disk).
    pub fn same_as(&self, other: &DiskConfig) -> bool {
        self.bucket == other.bucket
            && self.endpoint.trim_end_matches('/') == other.endpoint.trim_end_matches('/')
            && self.region_or_default() == other.region_or_default()
            && self.use_path_style.unwrap_or(false) == other.use_path_style.unwrap_or(false)
    }
}

/// Static S3 keys. Write-only; `Debug` shows neither.
#[derive(Clone, PartialEq, Eq, Deserialize, ToSchema)]
pub struct DiskCredentials {
    /// Access key id.
    pub access_key: String,
    /// Secret access key.
    pub secret_key: String,
}

impl std::fmt::Debug for DiskCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DiskCredentials(<redacted>)")
    }
}

/// `POST /v1/disks`.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct DiskCreateRequest {
    /// `^[a-z0-9][a-z0-9-]{0,62}$`, unique per user.
    #[serde(default)]
    pub name: String,
    /// Always `s3`.
    #[serde(default)]
    pub kind: String,
    /// Where the bucket is.
    #[serde(default)]
    pub config: Option<DiskConfig>,
    /// Absent for a public bucket (read with unsigned requests).
    #[serde(default)]
    pub credentials: Option<DiskCredentials>,
}

/// `PATCH /v1/disks/{idOrName}`: rotate the credentials.
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct DiskPatchRequest {
    /// The new keys.
    #[serde(default)]
    pub credentials: Option<DiskCredentials>,
}

/// A disk as the API shows it (never its credentials).
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DiskView {
    /// The resource id.
    #[schema(value_type = String, example = "disk_01h...")]
    pub id: DiskId,
    /// The user-scoped name.
    pub name: String,
    /// Always `s3`.
    pub kind: String,
    /// Where the bucket is.
    pub config: DiskConfig,
    /// When it was registered.
    pub created_at: Timestamp,
}

/// `DELETE /v1/disks/{idOrName}`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DiskDeletedResponse {
    /// Whether a disk was deleted.
    pub deleted: bool,
}

/// State of one attachment's mount (`API.md` §7.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiskMountStatus {
    /// Not mounted yet (the sandbox is not running).
    Pending,
    /// Usable inside the sandbox.
    Mounted,
    /// The mount failed or its bucket is unreachable (`mount_error` says why).
    Error,
    /// Being flushed and detached.
    Unmounting,
}

/// A disk mounted into a sandbox (`POST /v1/sandboxes` `disks[]` and
/// `POST /v1/sandboxes/{id}/disks`).
#[derive(Clone, Debug, Deserialize, ToSchema)]
pub struct DiskAttachment {
    /// Disk id or name.
    #[serde(default)]
    pub disk_id: String,
    /// Absolute path inside the sandbox.
    #[serde(default)]
    pub mount_path: String,
    /// Prefix inside the bucket (relative, no `..`).
    #[serde(default)]
    pub sub_path: Option<String>,
    /// Every write fails with EROFS inside the sandbox.
    #[serde(default)]
    pub read_only: Option<bool>,
}

/// An attachment as `GET /v1/sandboxes/{id}/disks` lists it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SandboxDiskView {
    /// The disk's id.
    #[schema(value_type = String)]
    pub disk_id: DiskId,
    /// The disk's name.
    pub name: String,
    /// Always `s3`.
    pub kind: String,
    /// Where the bucket is.
    pub config: DiskConfig,
    /// Where it is mounted inside the sandbox.
    pub mount_path: String,
    /// Prefix of the bucket shown, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub_path: Option<String>,
    /// Whether writes are refused.
    pub read_only: bool,
    /// State of the mount.
    pub mount_status: DiskMountStatus,
    /// Why `mount_status` is `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_error: Option<String>,
}

/// `POST /v1/sandboxes/{id}/disks`: `ok` for the TS SDK, `id` (the
/// sandbox's) for the Python SDK, which checks it.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DiskAttachedResponse {
    /// Always true.
    pub ok: bool,
    /// The sandbox's id.
    #[schema(value_type = String)]
    pub id: SandboxId,
    /// The disk's id.
    #[schema(value_type = String)]
    pub disk_id: DiskId,
    /// Where it is mounted.
    pub mount_path: String,
}

/// `DELETE /v1/sandboxes/{id}/disks/{diskId}`.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct DiskDetachedResponse {
    /// Whether an attachment was detached.
    pub detached: bool,
}

/// Query of the attachment routes that name one attachment.
#[derive(Clone, Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct MountPathQuery {
    /// Mount path of the attachment; may be empty when the disk is
    /// attached once to the sandbox.
    #[serde(default)]
    pub mount_path: Option<String>,
}

/// `PATCH /v1/sandboxes/{id}/disks/{diskId}?mount_path=`: remount with
/// other options (seed 004).
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct AttachmentPatchRequest {
    /// New read-only flag.
    #[serde(default)]
    pub read_only: Option<bool>,
    /// New prefix; `""` shows the whole bucket.
    #[serde(default)]
    pub sub_path: Option<String>,
}

fn fail(code: ErrorCode, message: String) -> ValidationError {
    ValidationError { code, message }
}

/// `^[a-z0-9][a-z0-9-]{0,62}$`.
pub fn validate_disk_name(name: &str) -> Result<(), ValidationError> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
    if ok {
        Ok(())
    } else {
        Err(fail(
            ErrorCode::ValidationFailed,
            format!("disk name {name:?} is invalid: use 1-63 of a-z, 0-9 and '-', starting with a letter or digit"),
        ))
    }
}

/// An `http://` or `https://` URL with a host and nothing after the
/// authority but an optional `/`.
pub fn validate_endpoint(endpoint: &str) -> Result<(), ValidationError> {
    let bad = |why: &str| {
        fail(
            ErrorCode::InvalidEndpoint,
            format!("config.endpoint {endpoint:?} is invalid: {why}"),
        )
    };
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or_else(|| bad("it must start with http:// or https://"))?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() {
        return Err(bad("it has no host"));
    }
    if authority.contains(['/', '?', '#', '@', ' ']) || authority.chars().any(char::is_control) {
        return Err(bad("only scheme, host and port are allowed"));
    }
    Ok(())
}

/// S3 bucket naming: 3-63 of a-z, 0-9, `.` and `-`.
fn validate_bucket(bucket: &str) -> Result<(), ValidationError> {
    let ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'.' || c == b'-')
        && !bucket.starts_with(['.', '-'])
        && !bucket.ends_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(fail(
            ErrorCode::ValidationFailed,
            format!("config.bucket {bucket:?} is not a valid bucket name"),
        ))
    }
}

fn validate_credentials(c: &DiskCredentials) -> Result<(), ValidationError> {
    let printable =
        |s: &str| !s.is_empty() && s.len() <= 256 && s.bytes().all(|b| b.is_ascii_graphic());
    if printable(&c.access_key) && printable(&c.secret_key) {
        Ok(())
    } else {
        Err(fail(
            ErrorCode::ValidationFailed,
            "credentials.access_key and credentials.secret_key must be non-empty printable ASCII of at most 256 characters".into(),
        ))
    }
}

impl DiskCreateRequest {
    /// Everything but the probe of the bucket; returns the config.
    pub fn validate(&self) -> Result<&DiskConfig, ValidationError> {
        validate_disk_name(&self.name)?;
        if self.kind != DISK_KIND_S3 {
            return Err(fail(
                ErrorCode::ValidationFailed,
                format!(
                    "kind {:?} is not supported: the only disk kind is \"s3\"",
                    self.kind
                ),
            ));
        }
        let config = self
            .config
            .as_ref()
            .ok_or_else(|| fail(ErrorCode::ValidationFailed, "config is required".into()))?;
        validate_bucket(&config.bucket)?;
        validate_endpoint(&config.endpoint)?;
        if let Some(region) = config.region.as_deref() {
            if region.len() > 64
                || !region
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return Err(fail(
                    ErrorCode::ValidationFailed,
                    format!("config.region {region:?} is invalid"),
                ));
            }
        }
        if let Some(c) = &self.credentials {
            validate_credentials(c)?;
        }
        Ok(config)
    }
}

impl DiskPatchRequest {
    /// The new credentials, present and well-formed.
    pub fn validate(&self) -> Result<&DiskCredentials, ValidationError> {
        let c = self.credentials.as_ref().ok_or_else(|| {
            fail(
                ErrorCode::ValidationFailed,
                "credentials {access_key, secret_key} are required".into(),
            )
        })?;
        validate_credentials(c)?;
        Ok(c)
    }
}

/// Paths under which a disk may not be mounted: the kernel's and the
/// agent's.
const RESERVED: &[&str] = &["/proc", "/sys", "/dev", "/run/cove"];

/// Checks a mount path and returns it normalised: absolute, no `..`, not
/// `/`, not under `/proc`, `/sys`, `/dev` (nor cove's own `/run/cove`).
pub fn normalize_mount_path(path: &str) -> Result<String, ValidationError> {
    let p = normalize_sandbox_path(path)
        .map_err(|e| fail(ErrorCode::InvalidPath, format!("mount_path: {}", e.message)))?;
    if let Some(r) = RESERVED.iter().find(|r| is_at_or_under(&p, r)) {
        return Err(fail(
            ErrorCode::InvalidPath,
            format!("mount_path {p:?} is invalid: nothing can be mounted under {r}"),
        ));
    }
    Ok(p)
}

/// Checks a sub path and returns it normalised without leading or trailing
/// `/`; `None` for the whole bucket.
pub fn normalize_sub_path(sub: Option<&str>) -> Result<Option<String>, ValidationError> {
    let Some(sub) = sub.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let bad = |why: &str| {
        fail(
            ErrorCode::InvalidPath,
            format!("sub_path {sub:?} is invalid: {why}"),
        )
    };
    if sub.starts_with('/') {
        return Err(bad("it must not start with '/'"));
    }
    if sub.len() > 1024 || sub.contains('\0') {
        return Err(bad("it is too long or contains NUL"));
    }
    let mut parts = Vec::new();
    for part in sub.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(bad("it must not contain '..'")),
            p => parts.push(p),
        }
    }
    Ok((!parts.is_empty()).then(|| parts.join("/")))
}

/// Whether one of two normalised absolute paths is the other or lies
/// under it (two mounts there would hide each other).
pub fn paths_overlap(a: &str, b: &str) -> bool {
    is_at_or_under(a, b) || is_at_or_under(b, a)
}

/// `x` is `y` or lies under it, by whole components.
fn is_at_or_under(x: &str, y: &str) -> bool {
    x == y || (x.starts_with(y) && x.as_bytes().get(y.len()) == Some(&b'/'))
}

impl DiskAttachment {
    /// The normalised mount path and sub path.
    pub fn validate(&self) -> Result<(String, Option<String>), ValidationError> {
        if self.disk_id.is_empty() {
            return Err(fail(
                ErrorCode::ValidationFailed,
                "disk_id is required".into(),
            ));
        }
        Ok((
            normalize_mount_path(&self.mount_path)?,
            normalize_sub_path(self.sub_path.as_deref())?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn disk_names_follow_the_regex() {
        for ok in ["a", "0", "my-disk", "a-1-b", &"x".repeat(63)] {
            assert!(validate_disk_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "A", "a_b", "a.b", &"x".repeat(64), "é"] {
            assert!(validate_disk_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn create_request_nested_form_parses_and_validates() {
        let req: DiskCreateRequest = serde_json::from_value(json!({
            "name": "d", "kind": "s3",
            "config": {"bucket": "b-1", "endpoint": "http://127.0.0.1:3900", "region": "garage", "use_path_style": true},
            "credentials": {"access_key": "GK1", "secret_key": "s3cr3t"}
        }))
        .unwrap();
        assert_eq!(req.validate().unwrap().bucket, "b-1");
        assert!(!format!("{req:?}").contains("s3cr3t"));
        let mut other = req.clone();
        other.kind = "gcs".into();
        assert!(other.validate().unwrap_err().message.contains("gcs"));
        let mut other = req.clone();
        other.config = None;
        assert!(other.validate().is_err());
        let mut other = req;
        other.credentials = Some(DiskCredentials {
            access_key: String::new(),
            secret_key: "x".into(),
        });
        assert!(other.validate().is_err());
    }

    #[test]
    fn endpoints_must_be_http_urls_without_paths() {
        for ok in [
            "http://127.0.0.1:3900",
            "https://s3.example.com/",
            "http://[::1]:9000",
        ] {
            assert!(validate_endpoint(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "127.0.0.1:3900",
            "ftp://x",
            "http://",
            "http://h/path",
            "http://u@h",
            "htp://x",
        ] {
            let e = validate_endpoint(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidEndpoint, "{bad}");
        }
    }

    #[test]
    fn equal_configs_after_defaults() {
        let a = DiskConfig {
            bucket: "b".into(),
            endpoint: "http://h/".into(),
            region: None,
            use_path_style: None,
        };
        let b = DiskConfig {
            bucket: "b".into(),
            endpoint: "http://h".into(),
            region: Some("us-east-1".into()),
            use_path_style: Some(false),
        };
        assert!(a.same_as(&b));
        let c = DiskConfig {
            bucket: "c".into(),
            ..b.clone()
        };
        assert!(!a.same_as(&c));
    }

    #[test]
    fn mount_paths_are_normalised_and_reserved_trees_refused() {
        assert_eq!(normalize_mount_path("/data/").unwrap(), "/data");
        assert_eq!(normalize_mount_path("//mnt/./x").unwrap(), "/mnt/x");
        assert_eq!(normalize_mount_path("/procfs").unwrap(), "/procfs");
        for bad in [
            "",
            "/",
            "rel",
            "/a/../b",
            "/proc",
            "/proc/x",
            "/sys/fs",
            "/dev",
            "/dev/shm",
            "/run/cove/x",
        ] {
            let e = normalize_mount_path(bad).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidPath, "{bad}");
        }
    }

    #[test]
    fn sub_paths_are_normalised_and_dotdot_refused() {
        assert_eq!(normalize_sub_path(None).unwrap(), None);
        assert_eq!(normalize_sub_path(Some("")).unwrap(), None);
        assert_eq!(
            normalize_sub_path(Some("a//b/")).unwrap(),
            Some("a/b".into())
        );
        assert_eq!(normalize_sub_path(Some("./")).unwrap(), None);
        assert!(normalize_sub_path(Some("/a")).is_err());
        assert!(normalize_sub_path(Some("a/../b")).is_err());
        assert!(normalize_sub_path(Some("..")).is_err());
    }

    #[test]
    fn overlap_is_by_component() {
        assert!(paths_overlap("/a", "/a"));
        assert!(paths_overlap("/a", "/a/b"));
        assert!(paths_overlap("/a/b", "/a"));
        assert!(!paths_overlap("/a", "/ab"));
        assert!(!paths_overlap("/a/b", "/a/c"));
    }

    #[test]
    fn views_serialise_as_the_contract_says() {
        let v = SandboxDiskView {
            disk_id: DiskId::generate(),
            name: "d".into(),
            kind: "s3".into(),
            config: DiskConfig {
                bucket: "b".into(),
                endpoint: "http://h".into(),
                region: None,
                use_path_style: Some(true),
            },
            mount_path: "/data".into(),
            sub_path: None,
            read_only: false,
            mount_status: DiskMountStatus::Mounted,
            mount_error: None,
        };
        let j = serde_json::to_value(&v).unwrap();
        assert_eq!(j["mount_status"], "mounted");
        assert!(j["config"].is_object());
        assert!(j.get("mount_error").is_none() && j.get("sub_path").is_none());
        assert!(j["config"].get("region").is_none());
    }
}

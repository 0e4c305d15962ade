//! Input validation that needs no catalog or store: names, envs, egress
//! entries, ranges and sandbox file paths (seed 003 and `API.md`). Catalog
//! checks (shape, rootfs, region) belong to the server, which owns the catalog.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::codes::ErrorCode;
use crate::exec::ExecRequest;
use crate::sandbox::{CreateSandboxRequest, PatchSandboxRequest};

/// A rejected input: the machine code and a message naming the field.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human-readable message.
    pub message: String,
}

impl ValidationError {
    fn field(message: impl Into<String>) -> Self {
        Self {
            code: ErrorCode::ValidationFailed,
            message: message.into(),
        }
    }
}

/// At most this many env entries per sandbox.
pub const MAX_ENVS: usize = 64;
/// At most this many bytes per env value.
pub const MAX_ENV_VALUE: usize = 4 * 1024;
/// At most this many bytes over all env names and values.
pub const MAX_ENVS_TOTAL: usize = 64 * 1024;
/// `auto_pause_after_seconds` range.
pub const AUTO_PAUSE_RANGE: std::ops::RangeInclusive<u32> = 60..=86_400;
/// Largest `disk_mib` accepted (1 TiB).
pub const MAX_DISK_MIB: u64 = 1024 * 1024;
/// Longest sandbox file path accepted.
pub const MAX_PATH_LEN: usize = 4096;

/// A sandbox name is used as its hostname: one DNS label, letters, digits and
/// `-`, 1–63 characters, not starting or ending with `-`.
pub fn validate_name(name: &str) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::field(format!(
            "name {name:?} is invalid: use 1-63 letters, digits or '-', not starting or ending with '-'"
        )))
    }
}

/// An env name matches `^[A-Za-z_][A-Za-z0-9_]*$`.
pub fn is_env_key(key: &str) -> bool {
    let mut bytes = key.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn validate_env_map(
    field: &str,
    envs: &BTreeMap<String, String>,
    check_limits: bool,
) -> Result<(), ValidationError> {
    if check_limits && envs.len() > MAX_ENVS {
        return Err(ValidationError::field(format!(
            "{field} has {} entries, at most {MAX_ENVS} are allowed",
            envs.len()
        )));
    }
    let mut total = 0usize;
    for (key, value) in envs {
        if !is_env_key(key) {
            return Err(ValidationError::field(format!(
                "{field} key {key:?} must match ^[A-Za-z_][A-Za-z0-9_]*$"
            )));
        }
        if value.contains('\0') {
            return Err(ValidationError::field(format!(
                "{field} value of {key} contains a NUL byte"
            )));
        }
        if check_limits && value.len() > MAX_ENV_VALUE {
            return Err(ValidationError::field(format!(
                "{field} value of {key} is {} bytes, at most {MAX_ENV_VALUE} are allowed",
                value.len()
            )));
        }
        total += key.len() + value.len();
    }
    if check_limits && total > MAX_ENVS_TOTAL {
        return Err(ValidationError::field(format!(
            "{field} total {total} bytes, at most {MAX_ENVS_TOTAL} are allowed"
        )));
    }
    Ok(())
}

/// Sandbox envs: key regex, ≤ 64 entries, ≤ 4 KiB a value, ≤ 64 KiB total.
pub fn validate_envs(envs: &BTreeMap<String, String>) -> Result<(), ValidationError> {
    validate_env_map("envs", envs, true)
}

/// `auto_pause_after_seconds` within 60–86400.
pub fn validate_auto_pause(seconds: u32) -> Result<(), ValidationError> {
    if AUTO_PAUSE_RANGE.contains(&seconds) {
        Ok(())
    } else {
        Err(ValidationError::field(format!(
            "auto_pause_after_seconds {seconds} is outside 60-86400"
        )))
    }
}

fn is_hostname(host: &str) -> bool {
    let host = host.strip_prefix("*.").unwrap_or(host);
    let host = host.strip_suffix('.').unwrap_or(host);
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_cidr(s: &str) -> bool {
    let Some((addr, len)) = s.split_once('/') else {
        return false;
    };
    let Ok(len) = len.parse::<u8>() else {
        return false;
    };
    if addr.parse::<Ipv4Addr>().is_ok() {
        return len <= 32;
    }
    addr.parse::<Ipv6Addr>().is_ok() && len <= 128
}

fn is_port(s: &str) -> bool {
    matches!(s.parse::<u16>(), Ok(p) if p != 0) && !s.starts_with('+')
}

/// One egress entry: `*`, `host[:port]`, `ip[:port]` or `cidr[:port]`
/// (IPv6 in brackets when a port follows: `[2001:db8::1]:443`).
pub fn validate_egress_entry(entry: &str) -> Result<(), ValidationError> {
    let bad = || {
        ValidationError::field(format!(
            "egress entry {entry:?} is not *, host[:port], ip[:port] or cidr[:port]"
        ))
    };
    if entry == "*" {
        return Ok(());
    }
    if let Some(rest) = entry.strip_prefix('[') {
        let (inner, after) = rest.split_once(']').ok_or_else(bad)?;
        let inner_ok = inner.parse::<Ipv6Addr>().is_ok() || (is_cidr(inner) && inner.contains(':'));
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return if inner_ok && port_ok {
            Ok(())
        } else {
            Err(bad())
        };
    }
    if entry.parse::<IpAddr>().is_ok() || is_cidr(entry) {
        return Ok(());
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (entry, None),
    };
    if port.is_some_and(|p| !is_port(p)) {
        return Err(bad());
    }
    if host.parse::<Ipv4Addr>().is_ok() || is_cidr(host) || is_hostname(host) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Every egress entry, at most 256 of them.
pub fn validate_egress(entries: &[String]) -> Result<(), ValidationError> {
    if entries.len() > 256 {
        return Err(ValidationError::field("egress has more than 256 entries"));
    }
    entries.iter().try_for_each(|e| validate_egress_entry(e))
}

/// Checks a sandbox path for the files API and returns it normalised:
/// absolute, no `..`, no NUL, `.` and repeated `/` removed, no trailing `/`,
/// and not the root itself.
pub fn normalize_sandbox_path(path: &str) -> Result<String, ValidationError> {
    let bad = |why: &str| ValidationError {
        code: ErrorCode::InvalidPath,
        message: format!("path {path:?} is invalid: {why}"),
    };
    if path.is_empty() {
        return Err(bad("it is empty"));
    }
    if !path.starts_with('/') {
        return Err(bad("it must be absolute"));
    }
    if path.len() > MAX_PATH_LEN {
        return Err(bad("it is too long"));
    }
    if path.contains('\0') {
        return Err(bad("it contains a NUL byte"));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(bad("it must not contain '..'")),
            p if p.len() > 255 => return Err(bad("a component is longer than 255 bytes")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(bad("it names the root directory"));
    }
    Ok(format!("/{}", parts.join("/")))
}

impl CreateSandboxRequest {
    /// Every check that needs no catalog: name, envs, egress, ranges.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(name) = self.name.as_deref().filter(|n| !n.is_empty()) {
            validate_name(name)?;
        }
        if let Some(envs) = &self.envs {
            validate_envs(envs)?;
        }
        if let Some(egress) = &self.egress {
            validate_egress(egress)?;
        }
        if let Some(secs) = self.auto_pause_after_seconds {
            validate_auto_pause(secs)?;
        }
        if let Some(mib) = self.disk_mib.filter(|m| *m > MAX_DISK_MIB) {
            return Err(ValidationError::field(format!(
                "disk_mib {mib} exceeds the maximum of {MAX_DISK_MIB}"
            )));
        }
        if let Some(keys) = &self.ssh_pubkeys {
            crate::lifecycle::validate_pubkeys(keys)?;
        }
        Ok(())
    }
}

impl PatchSandboxRequest {
    /// Range of `auto_pause_after_seconds` (ignored when `disable_auto_pause` wins).
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.disable_auto_pause != Some(true) {
            if let Some(secs) = self.auto_pause_after_seconds {
                validate_auto_pause(secs)?;
            }
        }
        Ok(())
    }
}

impl ExecRequest {
    /// `cmd` present, env keys well-formed, no NUL in the argv.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if self.cmd.is_empty() {
            return Err(ValidationError::field("cmd is required"));
        }
        let args = self.args.iter().flatten();
        if self.cmd.contains('\0') || args.into_iter().any(|a| a.contains('\0')) {
            return Err(ValidationError::field(
                "cmd and args must not contain NUL bytes",
            ));
        }
        if let Some(env) = &self.env {
            validate_env_map("env", env, false)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "my-sandbox", "Brave-Otter2", &"x".repeat(63)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "a_b", "a.b", "a b", &"x".repeat(64), "ü"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_keys() {
        for ok in ["A", "_", "_a1", "ANTHROPIC_API_KEY"] {
            assert!(is_env_key(ok), "{ok}");
        }
        for bad in ["", "1A", "A-B", "A B", "É"] {
            assert!(!is_env_key(bad), "{bad}");
        }
    }

    #[test]
    fn env_limits() {
        let many: BTreeMap<_, _> = (0..65)
            .map(|i| (format!("K{i}"), "v".to_string()))
            .collect();
        assert!(validate_envs(&many).is_err());
        let sixty_four: BTreeMap<_, _> = (0..64)
            .map(|i| (format!("K{i}"), "v".to_string()))
            .collect();
        assert!(validate_envs(&sixty_four).is_ok());
        let big = BTreeMap::from([("K".to_string(), "x".repeat(MAX_ENV_VALUE + 1))]);
        assert!(validate_envs(&big).is_err());
        let exact = BTreeMap::from([("K".to_string(), "x".repeat(MAX_ENV_VALUE))]);
        assert!(validate_envs(&exact).is_ok());
        let total: BTreeMap<_, _> = (0..17)
            .map(|i| (format!("K{i}"), "x".repeat(4000)))
            .collect();
        assert!(validate_envs(&total).is_err(), "17 * 4000 > 64 KiB");
        let nul = BTreeMap::from([("K".to_string(), "a\0b".to_string())]);
        assert!(validate_envs(&nul).is_err());
    }

    #[test]
    fn egress_entries() {
        for ok in [
            "*",
            "pypi.org",
            "pypi.org:443",
            "*.example.com",
            "1.1.1.1",
            "1.1.1.1:53",
            "10.0.0.0/8",
            "10.0.0.0/8:443",
            "2001:db8::1",
            "[2001:db8::1]:443",
            "[2001:db8::/32]:80",
            "2001:db8::/32",
        ] {
            assert!(validate_egress_entry(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "pypi.org:0",
            "pypi.org:70000",
            "pypi.org:",
            "http://pypi.org",
            "10.0.0.0/33",
            "a..b",
            "-a.com",
            "[2001:db8::1",
            "host:port",
            "*:80",
            "a b",
        ] {
            assert!(validate_egress_entry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn auto_pause_range() {
        assert!(validate_auto_pause(59).is_err());
        assert!(validate_auto_pause(60).is_ok());
        assert!(validate_auto_pause(86_400).is_ok());
        assert!(validate_auto_pause(86_401).is_err());
    }

    #[test]
    fn sandbox_paths() {
        assert_eq!(normalize_sandbox_path("/a/b").unwrap(), "/a/b");
        assert_eq!(normalize_sandbox_path("//a/./b/").unwrap(), "/a/b");
        assert_eq!(
            normalize_sandbox_path("/x y/ü&=+.bin").unwrap(),
            "/x y/ü&=+.bin"
        );
        for bad in ["", "a/b", "./a", "/a/../b", "/..", "/", "//", "/a\0b"] {
            let err = normalize_sandbox_path(bad).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidPath, "{bad}");
        }
    }

    #[test]
    fn create_request_checks() {
        let mut req = CreateSandboxRequest {
            shape: "s".into(),
            ..Default::default()
        };
        assert!(req.validate().is_ok());
        req.auto_pause_after_seconds = Some(10);
        assert!(req.validate().is_err());
        req.auto_pause_after_seconds = None;
        req.egress = Some(vec!["nope:99999".into()]);
        assert!(req.validate().is_err());
        req.egress = None;
        req.name = Some("bad name".into());
        assert!(req.validate().is_err());
        req.name = Some(String::new());
        assert!(req.validate().is_ok(), "empty name means auto-generate");
    }

    #[test]
    fn patch_disable_wins_over_range() {
        let p = PatchSandboxRequest {
            auto_pause_after_seconds: Some(1),
            disable_auto_pause: Some(true),
            ..Default::default()
        };
        assert!(p.validate().is_ok());
        let p = PatchSandboxRequest {
            auto_pause_after_seconds: Some(1),
            ..Default::default()
        };
        assert!(p.validate().is_err());
    }

    #[test]
    fn exec_request_checks() {
        assert!(ExecRequest::default().validate().is_err());
        let ok = ExecRequest {
            cmd: "echo".into(),
            ..Default::default()
        };
        assert!(ok.validate().is_ok());
        let bad_env = ExecRequest {
            cmd: "echo".into(),
            env: Some(BTreeMap::from([("1X".into(), "v".into())])),
            ..Default::default()
        };
        assert!(bad_env.validate().is_err());
    }
}

//! Requests and answers of the lifecycle calls beyond create and destroy:
//! fork, resize and ssh-pubkeys (`API.md` §4.3). Pause and resume take no
//! body and answer a `SandboxView`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ids::SandboxId;
use crate::validate::{validate_egress, validate_envs, ValidationError};

/// `POST /v1/sandboxes/{id}/fork` (`{}` by default). Omitted fields are
/// inherited from the source. `Debug` shows env names only.
#[derive(Clone, Default, Deserialize, ToSchema)]
pub struct ForkSandboxRequest {
    /// Keep the fork `paused` instead of running it.
    #[serde(default)]
    pub start_paused: Option<bool>,
    /// OpenSSH public keys (replace the source's).
    #[serde(default)]
    pub ssh_pubkeys: Option<Vec<String>>,
    /// Outbound allowlist (replaces the source's).
    #[serde(default)]
    pub egress: Option<Vec<String>>,
    /// Whether public ingress is on.
    #[serde(default)]
    pub ingress_enabled: Option<bool>,
    /// Environment variables (replace the source's).
    #[serde(default)]
    pub envs: Option<BTreeMap<String, String>>,
    /// Bandwidth quota; accepted, and unmetered like every sandbox here.
    #[serde(default)]
    pub bandwidth_quota_bytes: Option<i64>,
}

impl std::fmt::Debug for ForkSandboxRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ForkSandboxRequest")
            .field("start_paused", &self.start_paused)
            .field("egress", &self.egress)
            .field("ingress_enabled", &self.ingress_enabled)
            .field(
                "envs",
                &self.envs.as_ref().map(|e| e.keys().collect::<Vec<_>>()),
            )
            .finish_non_exhaustive()
    }
}

impl ForkSandboxRequest {
    /// The same checks as a create's for the fields it can override.
    pub fn validate(&self) -> Result<(), ValidationError> {
        if let Some(envs) = &self.envs {
            validate_envs(envs)?;
        }
        if let Some(egress) = &self.egress {
            validate_egress(egress)?;
        }
        if let Some(keys) = &self.ssh_pubkeys {
            validate_pubkeys(keys)?;
        }
        Ok(())
    }
}

/// `POST /v1/sandboxes/{id}/resize`.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct ResizeRequest {
    /// The new disk size; must be larger than the current one.
    #[serde(default)]
    pub disk_mib: u64,
}

/// The answer of a resize.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ResizeResponse {
    /// The sandbox.
    #[schema(value_type = String)]
    pub id: SandboxId,
    /// Its disk size now.
    pub disk_mib: u64,
}

/// `POST /v1/sandboxes/{id}/ssh-pubkeys`.
#[derive(Clone, Debug, Default, Deserialize, ToSchema)]
pub struct SshPubkeysRequest {
    /// Keys to add (duplicates are dropped).
    #[serde(default)]
    pub keys: Vec<String>,
}

/// The answer of an ssh-pubkeys add.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct SshPubkeysResponse {
    /// Number of keys after the add.
    pub count: usize,
}

/// At most 64 keys of at most 16 KiB each, none empty.
pub fn validate_pubkeys(keys: &[String]) -> Result<(), ValidationError> {
    if keys.len() > 64
        || keys
            .iter()
            .any(|k| k.trim().is_empty() || k.len() > 16 * 1024)
    {
        return Err(ValidationError {
            code: crate::codes::ErrorCode::ValidationFailed,
            message: "ssh_pubkeys must hold at most 64 non-empty keys of at most 16 KiB".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fork_accepts_an_empty_body_and_hides_env_values() {
        let f: ForkSandboxRequest = serde_json::from_value(json!({})).unwrap();
        assert!(f.start_paused.is_none() && f.envs.is_none());
        let f: ForkSandboxRequest =
            serde_json::from_value(json!({"envs": {"K": "hidden-value"}, "start_paused": true}))
                .unwrap();
        assert!(!format!("{f:?}").contains("hidden-value"));
        assert!(f.validate().is_ok());
        let bad: ForkSandboxRequest =
            serde_json::from_value(json!({"envs": {"1bad": "x"}})).unwrap();
        assert!(bad.validate().is_err());
    }

    #[test]
    fn pubkeys_are_bounded() {
        assert!(validate_pubkeys(&["ssh-ed25519 AAAA".into()]).is_ok());
        assert!(validate_pubkeys(&[" ".into()]).is_err());
        assert!(validate_pubkeys(&vec!["k".into(); 65]).is_err());
    }
}

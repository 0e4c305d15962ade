//! Exec requests, responses and stream frames (`API.md` §4.4, §5.1).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /v1/sandboxes/{id}/exec`. `cmd` + `args` are an argv, never a shell
/// string. `Debug` omits stdin and env values.
#[derive(Clone, Default, Deserialize, ToSchema)]
pub struct ExecRequest {
    /// The executable, resolved through `PATH` inside the sandbox.
    #[serde(default)]
    pub cmd: String,
    /// Arguments (argv[1..]).
    #[serde(default)]
    pub args: Option<Vec<String>>,
    /// Stream NDJSON frames instead of one buffered response.
    #[serde(default)]
    pub stream: Option<bool>,
    /// Data for the process's standard input.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Per-exec environment; wins over the sandbox's `envs`.
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
}

impl std::fmt::Debug for ExecRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecRequest")
            .field("cmd", &self.cmd)
            .field("args", &self.args)
            .field("stream", &self.stream)
            .field("stdin_bytes", &self.stdin.as_ref().map(String::len))
            .field(
                "env",
                &self.env.as_ref().map(|e| e.keys().collect::<Vec<_>>()),
            )
            .finish()
    }
}

/// Query of the exec endpoint (`?stream=true`).
#[derive(Clone, Copy, Debug, Default, Deserialize, utoipa::IntoParams)]
pub struct ExecQuery {
    /// `true` streams NDJSON frames.
    #[serde(default)]
    pub stream: Option<bool>,
}

/// What a buffered exec produced.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ExecResult {
    /// Standard output (lossy UTF-8).
    pub stdout: String,
    /// Standard error (lossy UTF-8).
    pub stderr: String,
    /// The process exit code (-1 when it did not start).
    pub exit_code: i32,
    /// Set when the command could not be started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The `data` of a buffered exec.
#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct ExecResponse {
    /// What the command produced.
    pub result: ExecResult,
    /// Wall time of the command in milliseconds (a float).
    pub exec_ms: f64,
}

/// One NDJSON frame of a streamed exec. Every field is optional and absent
/// fields are omitted: the TS SDK would yield an event for an explicit `null`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, ToSchema)]
pub struct ExecStreamFrame {
    /// Standard output (lossy UTF-8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    /// Standard error (lossy UTF-8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// Agent-level failure (the command could not be started).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The process exit code (-1 when it did not start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Heartbeat marker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hb: Option<bool>,
}

impl ExecStreamFrame {
    /// `{"hb":true}`.
    pub fn heartbeat() -> Self {
        Self {
            hb: Some(true),
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_omit_absent_fields() {
        assert_eq!(
            serde_json::to_string(&ExecStreamFrame::heartbeat()).unwrap(),
            r#"{"hb":true}"#
        );
        let exit = ExecStreamFrame {
            exit_code: Some(0),
            ..Default::default()
        };
        assert_eq!(serde_json::to_string(&exit).unwrap(), r#"{"exit_code":0}"#);
    }

    #[test]
    fn exec_request_parses_both_sdks() {
        let ts: ExecRequest =
            serde_json::from_value(json!({"cmd":"ls","args":[],"stream":true})).unwrap();
        assert_eq!(ts.stream, Some(true));
        let py: ExecRequest =
            serde_json::from_value(json!({"cmd":"echo","args":["a"],"stdin":"in","env":{"X":"1"}}))
                .unwrap();
        assert_eq!(py.stdin.as_deref(), Some("in"));
    }

    #[test]
    fn debug_omits_stdin_and_env_values() {
        let r: ExecRequest =
            serde_json::from_value(json!({"cmd":"x","stdin":"pw123","env":{"K":"secret-v"}}))
                .unwrap();
        let text = format!("{r:?}");
        assert!(
            !text.contains("pw123") && !text.contains("secret-v") && text.contains('K'),
            "{text}"
        );
    }

    #[test]
    fn buffered_response_shape() {
        let r = ExecResponse {
            result: ExecResult {
                stdout: "hi\n".into(),
                stderr: String::new(),
                exit_code: 0,
                error: None,
            },
            exec_ms: 12.0,
        };
        assert_eq!(
            serde_json::to_value(r).unwrap(),
            json!({"result":{"stdout":"hi\n","stderr":"","exit_code":0},"exec_ms":12.0})
        );
    }
}

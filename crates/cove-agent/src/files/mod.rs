//! Files: every call does the same three steps: take the path from the
//! query → resolve it inside the sandbox root with `openat2(RESOLVE_IN_ROOT
//! | RESOLVE_NO_MAGICLINKS)` (`root.rs`) → act (`read.rs`, `write.rs`).
//! The root is an `O_PATH` fd opened once at start, so `..` and absolute
//! symlinks resolve against it and magic links (`/proc/self/root`) fail.

pub mod read;
pub mod root;
pub mod write;

use cove_api::agent::{decode_query_path, validate_path, AgentErrorCode};

/// The `path=` of a files request, validated, or the error response to send.
pub fn query_path(uri: &hyper::Uri) -> Result<String, (AgentErrorCode, String)> {
    let path = uri.query().and_then(decode_query_path).ok_or_else(|| {
        (
            AgentErrorCode::InvalidPath,
            "missing or malformed path".to_string(),
        )
    })?;
    validate_path(&path).map_err(|e| (AgentErrorCode::InvalidPath, format!("{path:?}: {e}")))?;
    Ok(path)
}

//! The host ↔ cove-agent protocol, defined once here and used by both ends
//! (the agent in `crates/cove-agent`, the client in
//! `crates/cove-runtime/src/agent_client.rs`).
//!
//! Transport: HTTP/1.1 over the unix socket [`SOCKET_NAME`] in the sandbox's
//! agent directory (bind-mounted at [`GUEST_RUN_DIR`] inside the sandbox).
//!
//! - `GET  /v1/health` → 200 JSON [`Health`].
//! - `POST /v1/exec/run` and `POST /v1/exec/stream`: the request body is a
//!   sequence of frames: one [`FrameKind::Spec`] (JSON [`ExecRequest`]) then,
//!   when `has_stdin`, [`FrameKind::Stdin`] frames; the end of the body closes
//!   the command's stdin. The response body (200) is frames: `Start`, then
//!   `Stdout`/`Stderr` chunks (`run` sends each at most once, at the end, with
//!   everything buffered), `Heartbeat` about every second while the command
//!   runs, and last `Exit` (i32 code; 128+signal when killed) or `Error`
//!   (UTF-8 message: the command could not start). A dropped connection kills
//!   the command's process group; the heartbeats are what make the agent
//!   notice a client that went away while the command is silent.
//! - `GET /v1/files?path=P` → 200 with the raw bytes and `content-length`.
//! - `PUT /v1/files?path=P` with the raw bytes → 200 JSON [`WriteResult`];
//!   parent directories are created.
//! - Errors of files calls: JSON [`AgentError`] with the status of its code.
//!
//! Binary frames rather than JSON lines because stdout and stdin are bytes,
//! not text, and a 10 MiB output should not be base64'd twice.

use serde::{Deserialize, Serialize};

/// File name of the agent's socket inside the sandbox's agent directory.
pub const SOCKET_NAME: &str = "agent.sock";
/// File name, in the agent directory, of the seccomp filter (a BPF program)
/// the agent loads before anything else when started with `--seccomp`.
pub const SECCOMP_NAME: &str = "seccomp.bpf";
/// Where the agent directory (socket, log) is mounted inside the sandbox.
pub const GUEST_RUN_DIR: &str = "/.cove/run";
/// Where the agent binary is mounted (read-only) inside the sandbox.
pub const GUEST_AGENT_PATH: &str = "/.cove/agent";

/// Path of the health endpoint.
pub const PATH_HEALTH: &str = "/v1/health";
/// Path of the buffered exec endpoint.
pub const PATH_EXEC_RUN: &str = "/v1/exec/run";
/// Path of the streamed exec endpoint.
pub const PATH_EXEC_STREAM: &str = "/v1/exec/stream";
/// Path of the files endpoint (`GET` reads, `PUT` writes).
pub const PATH_FILES: &str = "/v1/files";

/// Path where the host collects what code in the sandbox asked of it
/// (`POST /self/pause` or `/self/delete` on [`SELF_PORT`]); taking it clears it.
pub const PATH_SELF_TAKE: &str = "/v1/self/take";
/// Port of the in-sandbox self API, on 127.0.0.1 inside the sandbox.
pub const SELF_PORT: u16 = 1029;
/// Longest `reason` kept from a self request (longer ones are cut).
pub const MAX_SELF_REASON: usize = 128;

/// What code inside a sandbox asked the platform to do with it.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SelfAction {
    /// Pause (checkpoint) the sandbox.
    Pause,
    /// Destroy the sandbox.
    Delete,
}

/// One self request, as the host takes it from the agent.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SelfRequest {
    pub action: SelfAction,
    /// At most [`MAX_SELF_REASON`] characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Longest sandbox path accepted (Linux `PATH_MAX`).
pub const MAX_PATH_LEN: usize = 4096;
/// Largest frame payload accepted by a decoder.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// What `GET /v1/health` answers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Health {
    /// The agent's pid in its own pid namespace (1 inside a sandbox).
    pub pid: u32,
    /// The agent's version (its crate version).
    pub version: String,
}

/// One command to run: an argv, never a shell string.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecRequest {
    /// The program, looked up in `PATH` from `env` when it has no `/`.
    pub cmd: String,
    /// Its arguments (argv\[1..\]).
    pub args: Vec<String>,
    /// The complete environment added to the agent's defaults (`PATH`,
    /// `HOME`, `TERM`); later entries win.
    pub env: Vec<(String, String)>,
    /// Working directory; the agent's default (`/root`, else `/`) when absent.
    pub cwd: Option<String>,
    /// Whether `Stdin` frames follow; without them stdin is `/dev/null`.
    pub has_stdin: bool,
}

/// What a successful `PUT /v1/files` answers.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct WriteResult {
    /// Bytes written.
    pub bytes: u64,
}

/// A files error, as JSON with the status of [`AgentErrorCode::status`].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AgentError {
    /// What went wrong, for mapping.
    pub code: AgentErrorCode,
    /// Human-readable detail (the path and the OS error).
    pub message: String,
}

/// The kinds of files errors.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AgentErrorCode {
    /// No such file (or a parent is missing or not a directory, on read).
    NotFound,
    /// The path names a directory where a file is needed.
    IsDirectory,
    /// Relative, empty, too long, containing NUL, or resolving through a
    /// magic link (`/proc/self/root`).
    InvalidPath,
    /// The sandbox's disk is full (ENOSPC, EDQUOT).
    NoSpace,
    /// The sandbox's own permissions forbid it (read-only mount, EACCES).
    Denied,
    /// The request itself was malformed (bad query, bad frame).
    BadRequest,
    /// Anything else (an I/O error).
    Io,
}

impl AgentErrorCode {
    /// The HTTP status the agent answers with.
    pub fn status(self) -> u16 {
        match self {
            AgentErrorCode::NotFound => 404,
            AgentErrorCode::IsDirectory => 409,
            AgentErrorCode::InvalidPath => 400,
            AgentErrorCode::NoSpace => 507,
            AgentErrorCode::Denied => 403,
            AgentErrorCode::BadRequest => 422,
            AgentErrorCode::Io => 500,
        }
    }
}

/// A sandbox path that cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path must be absolute")]
    Relative,
    #[error("path is too long")]
    TooLong,
    #[error("path contains a NUL byte")]
    Nul,
    #[error("path component is too long")]
    ComponentTooLong,
}

/// Checks a sandbox path before it is sent or resolved: absolute, no NUL,
/// at most [`MAX_PATH_LEN`] bytes, components at most 255 bytes. `..` and
/// symlinks are not rejected here: the agent resolves them inside the
/// sandbox root, where they cannot leave it.
pub fn validate_path(path: &str) -> Result<(), PathError> {
    if !path.starts_with('/') {
        return Err(PathError::Relative);
    }
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if path.contains('\0') {
        return Err(PathError::Nul);
    }
    if path.split('/').any(|c| c.len() > 255) {
        return Err(PathError::ComponentTooLong);
    }
    Ok(())
}

/// Percent-encodes a path for the `path=` query parameter (every byte but
/// `A-Z a-z 0-9 - . _ ~ /`).
pub fn encode_query_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    for &b in path.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Finds `path=` in a query string and percent-decodes it; `None` when
/// absent, badly encoded or not UTF-8.
pub fn decode_query_path(query: &str) -> Option<String> {
    let raw = query.split('&').find_map(|kv| kv.strip_prefix("path="))?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The kind of a frame (its first byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Request: JSON [`ExecRequest`]; always the first request frame.
    Spec = 1,
    /// Request: bytes for the command's stdin.
    Stdin = 2,
    /// Response: the command started; payload = its pid (u32, big endian).
    Start = 3,
    /// Response: bytes the command wrote to stdout.
    Stdout = 4,
    /// Response: bytes the command wrote to stderr.
    Stderr = 5,
    /// Response: the exit code (i32, big endian); the last frame.
    Exit = 6,
    /// Response: the command could not run (UTF-8 message); the last frame.
    Error = 7,
    /// Response: nothing happened; the connection is alive. Empty payload.
    Heartbeat = 8,
}

impl FrameKind {
    fn from_byte(b: u8) -> Option<FrameKind> {
        Some(match b {
            1 => FrameKind::Spec,
            2 => FrameKind::Stdin,
            3 => FrameKind::Start,
            4 => FrameKind::Stdout,
            5 => FrameKind::Stderr,
            6 => FrameKind::Exit,
            7 => FrameKind::Error,
            8 => FrameKind::Heartbeat,
            _ => return None,
        })
    }
}

/// Bytes before a frame's payload: kind (1) + payload length (u32 BE).
pub const FRAME_HEADER_LEN: usize = 5;

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The `Exit` code or `Start` pid carried as 4 big-endian bytes.
    pub fn int_payload(&self) -> Option<i32> {
        let b: [u8; 4] = self.payload.as_slice().try_into().ok()?;
        Some(i32::from_be_bytes(b))
    }
}

/// Encodes a frame: header then payload.
pub fn encode_frame(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + payload.len());
    out.push(kind as u8);
    // Payloads over u32::MAX never happen: senders chunk to at most MAX_FRAME_LEN.
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Encodes a frame carrying a 4-byte integer (`Start`, `Exit`).
pub fn encode_int_frame(kind: FrameKind, value: i32) -> Vec<u8> {
    encode_frame(kind, &value.to_be_bytes())
}

/// A frame stream that cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("frame of {0} bytes is too large")]
    TooLarge(usize),
    #[error("stream ended inside a frame")]
    Truncated,
}

/// Incremental decoder: feed bytes with [`push`](Self::push), take frames
/// with [`next_frame`](Self::next_frame).
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
    pos: usize,
}

impl FrameDecoder {
    /// An empty decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        } else if self.pos > 1 << 20 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if one is buffered.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        let avail = &self.buf[self.pos..];
        if avail.len() < FRAME_HEADER_LEN {
            return Ok(None);
        }
        let kind = FrameKind::from_byte(avail[0]).ok_or(FrameError::UnknownKind(avail[0]))?;
        let len = u32::from_be_bytes([avail[1], avail[2], avail[3], avail[4]]) as usize;
        if len > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge(len));
        }
        if avail.len() < FRAME_HEADER_LEN + len {
            return Ok(None);
        }
        let payload = avail[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len].to_vec();
        self.pos += FRAME_HEADER_LEN + len;
        Ok(Some(Frame { kind, payload }))
    }

    /// Call at the end of the stream: an error when a partial frame remains.
    pub fn finish(&self) -> Result<(), FrameError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(FrameError::Truncated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_split_at_every_byte() {
        let mut wire = encode_frame(FrameKind::Stdout, b"hello\0world");
        wire.extend(encode_int_frame(FrameKind::Exit, -1));
        wire.extend(encode_frame(FrameKind::Heartbeat, b""));
        for split in 0..wire.len() {
            let mut d = FrameDecoder::new();
            let mut got = Vec::new();
            for part in [&wire[..split], &wire[split..]] {
                d.push(part);
                while let Some(f) = d.next_frame().unwrap() {
                    got.push(f);
                }
            }
            d.finish().unwrap();
            assert_eq!(got.len(), 3);
            assert_eq!(got[0].payload, b"hello\0world");
            assert_eq!(got[1].int_payload(), Some(-1));
            assert_eq!(got[2].kind, FrameKind::Heartbeat);
        }
    }

    #[test]
    fn truncated_and_unknown_frames_are_errors() {
        let wire = encode_frame(FrameKind::Stdout, b"abc");
        let mut d = FrameDecoder::new();
        d.push(&wire[..4]);
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.finish(), Err(FrameError::Truncated));
        let mut d = FrameDecoder::new();
        d.push(&[99, 0, 0, 0, 0]);
        assert_eq!(d.next_frame(), Err(FrameError::UnknownKind(99)));
    }

    #[test]
    fn query_paths_round_trip() {
        for p in ["/a b/c%d", "/ü/ñ", "/x?y&z=1", "/plain/path.txt"] {
            let q = format!("x=1&path={}", encode_query_path(p));
            assert_eq!(decode_query_path(&q).as_deref(), Some(p));
        }
        assert_eq!(decode_query_path("path=%zz"), None);
        assert_eq!(decode_query_path("other=1"), None);
    }

    #[test]
    fn paths_are_validated() {
        assert_eq!(validate_path("/ok/../x"), Ok(()));
        assert_eq!(validate_path("rel"), Err(PathError::Relative));
        assert_eq!(validate_path(""), Err(PathError::Relative));
        assert_eq!(validate_path("/a\0b"), Err(PathError::Nul));
        assert_eq!(
            validate_path(&format!("/{}", "a".repeat(256))),
            Err(PathError::ComponentTooLong)
        );
        assert_eq!(validate_path(&"/a".repeat(3000)), Err(PathError::TooLong));
    }
}

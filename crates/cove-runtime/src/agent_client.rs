//! The host side of the agent protocol (`cove_api::agent`): HTTP/1.1 over
//! the sandbox's unix socket. Buffered calls reuse idle keep-alive
//! connections (an exec is then one round trip on an open socket); streamed
//! calls get their own connection, so dropping the stream closes it and the
//! agent kills the command.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use cove_api::agent::{
    self as proto, AgentError, AgentErrorCode, ExecRequest, FrameDecoder, FrameKind, Health,
    WriteResult,
};
use cove_api::ids::SandboxId;
use futures::StreamExt;
use http_body_util::combinators::UnsyncBoxBody as BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use crate::{ByteStream, ExecEvent, ExecEventStream, ExecOutput, ExecSpec, RuntimeError};

type ReqBody = BoxBody<Bytes, std::io::Error>;

/// A client for one sandbox's agent.
pub struct AgentClient {
    id: SandboxId,
    socket: PathBuf,
    /// Host pid of the sandbox's init (the agent). The socket's directory is
    /// writable from inside the sandbox, so its root could replace the
    /// socket with a symlink to a host socket or another sandbox's agent,
    /// or listen there itself: every connection is checked with
    /// `SO_PEERCRED` before a byte is sent. `None` only in tests.
    agent_pid: Option<u32>,
    /// Idle connections ready for another request. Guarded by the mutex only
    /// while pushing or popping.
    idle: Mutex<Vec<SendRequest<ReqBody>>>,
}

impl AgentClient {
    /// A client for the agent listening on `socket`; connects lazily.
    pub fn new(id: SandboxId, socket: PathBuf, agent_pid: Option<u32>) -> AgentClient {
        AgentClient {
            id,
            socket,
            agent_pid,
            idle: Mutex::new(Vec::new()),
        }
    }

    fn unreachable(&self, message: impl std::fmt::Display) -> RuntimeError {
        RuntimeError::AgentUnreachable {
            id: self.id.clone(),
            message: message.to_string(),
        }
    }

    async fn connect(&self) -> Result<SendRequest<ReqBody>, RuntimeError> {
        // A wedged sandbox (listen backlog full) must not hang the caller.
        let stream = tokio::time::timeout(Duration::from_secs(5), connect_unix(&self.socket))
            .await
            .map_err(|_| self.unreachable("connecting timed out"))?
            .map_err(|e| self.unreachable(e))?;
        if let Some(want) = self.agent_pid {
            let peer = stream.peer_cred().map_err(|e| self.unreachable(e))?;
            if peer.pid() != Some(want as i32) {
                return Err(self.unreachable(format!(
                    "the agent socket is served by pid {:?}, not the sandbox's init {want}",
                    peer.pid()
                )));
            }
        }
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unreachable(e))?;
        tokio::spawn(async move {
            // Ends when the connection closes; errors concern only that request.
            let _ = conn.await;
        });
        Ok(sender)
    }

    async fn checkout(&self) -> Result<SendRequest<ReqBody>, RuntimeError> {
        loop {
            let next = self.idle.lock().ok().and_then(|mut v| v.pop());
            match next {
                Some(s) if s.is_ready() => return Ok(s),
                Some(_) => continue,
                None => return self.connect().await,
            }
        }
    }

    fn checkin(&self, sender: SendRequest<ReqBody>) {
        if sender.is_ready() {
            if let Ok(mut v) = self.idle.lock() {
                if v.len() < 8 {
                    v.push(sender);
                }
            }
        }
    }

    /// Sends a request on a pooled connection, retrying once on a fresh one
    /// when a pooled connection turned out to be closed (agent restarted).
    async fn send_pooled(
        &self,
        make: impl Fn() -> Request<ReqBody>,
    ) -> Result<(Response<Incoming>, SendRequest<ReqBody>), RuntimeError> {
        let mut sender = self.checkout().await?;
        match sender.send_request(make()).await {
            Ok(resp) => Ok((resp, sender)),
            Err(e) if e.is_canceled() || e.is_closed() => {
                let mut fresh = self.connect().await?;
                let resp = fresh
                    .send_request(make())
                    .await
                    .map_err(|e| self.unreachable(e))?;
                Ok((resp, fresh))
            }
            Err(e) => Err(self.unreachable(e)),
        }
    }

    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<Health, RuntimeError> {
        self.call_json(Method::GET, proto::PATH_HEALTH).await
    }

    /// Takes what code in the sandbox asked of the platform, if anything
    /// (`/self/pause`, `/self/delete`); the agent forgets it.
    pub async fn take_self_request(&self) -> Result<Option<proto::SelfRequest>, RuntimeError> {
        self.call_json(Method::POST, proto::PATH_SELF_TAKE).await
    }

    /// A body-less call answered `200` with JSON.
    async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &'static str,
    ) -> Result<T, RuntimeError> {
        let (resp, sender) = self
            .send_pooled(|| request(method.clone(), path, empty()))
            .await?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.unreachable(e))?
            .to_bytes();
        self.checkin(sender);
        if status != StatusCode::OK {
            return Err(self.unreachable(format!("{path} answered {status}")));
        }
        serde_json::from_slice(&body)
            .map_err(|e| self.unreachable(format!("bad answer from {path}: {e}")))
    }

    /// Runs a command to completion.
    pub async fn exec(&self, spec: ExecSpec) -> Result<ExecOutput, RuntimeError> {
        let wire = exec_body(&spec)?;
        let (resp, sender) = self
            .send_pooled(|| request(Method::POST, proto::PATH_EXEC_RUN, full(wire.clone())))
            .await?;
        let mut out = ExecOutput::default();
        let mut events = self.events(resp).await?;
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut ended = false;
        while let Some(ev) = events.next().await {
            match ev {
                ExecEvent::Stdout(b) => stdout.extend_from_slice(&b),
                ExecEvent::Stderr(b) => stderr.extend_from_slice(&b),
                ExecEvent::Exit(code) => {
                    out.exit_code = code;
                    ended = true;
                }
                ExecEvent::Error(e) => {
                    out.exit_code = -1;
                    out.error = Some(e);
                    ended = true;
                }
            }
        }
        drop(events);
        if !ended {
            return Err(self.unreachable("exec ended without an exit code"));
        }
        self.checkin(sender);
        out.stdout = Bytes::from(stdout);
        out.stderr = Bytes::from(stderr);
        Ok(out)
    }

    /// Runs a command and streams its events; dropping the stream kills it.
    pub async fn exec_stream(&self, spec: ExecSpec) -> Result<ExecEventStream, RuntimeError> {
        let wire = exec_body(&spec)?;
        let mut sender = self.connect().await?;
        let resp = sender
            .send_request(request(Method::POST, proto::PATH_EXEC_STREAM, full(wire)))
            .await
            .map_err(|e| self.unreachable(e))?;
        // `sender` is dropped here; the connection lives as long as the body.
        self.events(resp).await
    }

    async fn events(&self, resp: Response<Incoming>) -> Result<ExecEventStream, RuntimeError> {
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(self.unreachable(format!(
                "exec answered {status}: {}",
                String::from_utf8_lossy(&body)
            )));
        }
        let id = self.id.clone();
        let state = (resp.into_body(), FrameDecoder::new(), false, id);
        let stream =
            futures::stream::unfold(state, |(mut body, mut dec, mut done, id)| async move {
                loop {
                    if done {
                        return None;
                    }
                    match dec.next_frame() {
                        Ok(Some(f)) => {
                            let ev = match f.kind {
                                FrameKind::Stdout => ExecEvent::Stdout(Bytes::from(f.payload)),
                                FrameKind::Stderr => ExecEvent::Stderr(Bytes::from(f.payload)),
                                FrameKind::Exit => {
                                    done = true;
                                    ExecEvent::Exit(f.int_payload().unwrap_or(-1))
                                }
                                FrameKind::Error => {
                                    done = true;
                                    ExecEvent::Error(
                                        String::from_utf8_lossy(&f.payload).into_owned(),
                                    )
                                }
                                FrameKind::Start
                                | FrameKind::Heartbeat
                                | FrameKind::Spec
                                | FrameKind::Stdin => continue,
                            };
                            if done {
                                // Read the body to its end so the connection can be reused.
                                while let Some(Ok(_)) = body.frame().await {}
                            }
                            return Some((ev, (body, dec, done, id)));
                        }
                        Ok(None) => {}
                        Err(e) => {
                            let ev =
                                ExecEvent::Error(format!("agent of {id} sent a bad frame: {e}"));
                            return Some((ev, (body, dec, true, id)));
                        }
                    }
                    match body.frame().await {
                        Some(Ok(frame)) => {
                            if let Ok(data) = frame.into_data() {
                                dec.push(&data);
                            }
                        }
                        Some(Err(e)) => {
                            let ev = ExecEvent::Error(format!(
                                "connection to the agent of {id} failed: {e}"
                            ));
                            return Some((ev, (body, dec, true, id)));
                        }
                        None => {
                            let ev = ExecEvent::Error(format!(
                                "agent of {id} closed the stream without an exit code"
                            ));
                            return Some((ev, (body, dec, true, id)));
                        }
                    }
                }
            });
        Ok(Box::pin(stream))
    }

    /// Reads a file: its size and a stream of its bytes.
    pub async fn read_file(&self, path: &str) -> Result<(u64, ByteStream), RuntimeError> {
        check_path(path)?;
        let uri = format!(
            "{}?path={}",
            proto::PATH_FILES,
            proto::encode_query_path(path)
        );
        let mut sender = self.connect().await?;
        let resp = sender
            .send_request(request(Method::GET, &uri, empty()))
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status() != StatusCode::OK {
            return Err(self.files_error(resp, path).await);
        }
        let size = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let stream = resp
            .into_body()
            .into_data_stream()
            .map(|r| r.map_err(std::io::Error::other));
        Ok((size, Box::pin(stream)))
    }

    /// Writes a file from a stream of bytes; returns the bytes written.
    pub async fn write_file(&self, path: &str, body: ByteStream) -> Result<u64, RuntimeError> {
        check_path(path)?;
        let uri = format!(
            "{}?path={}",
            proto::PATH_FILES,
            proto::encode_query_path(path)
        );
        let frames = body.map(|r| r.map(hyper::body::Frame::data));
        let req = request(Method::PUT, &uri, BoxBody::new(StreamBody::new(frames)));
        let mut sender = self.checkout().await?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status() != StatusCode::OK {
            return Err(self.files_error(resp, path).await);
        }
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| self.unreachable(e))?
            .to_bytes();
        self.checkin(sender);
        let result: WriteResult = serde_json::from_slice(&bytes)
            .map_err(|e| self.unreachable(format!("bad write answer: {e}")))?;
        Ok(result.bytes)
    }

    async fn files_error(&self, resp: Response<Incoming>, path: &str) -> RuntimeError {
        let status = resp.status();
        let body = match resp.into_body().collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => return self.unreachable(e),
        };
        let Ok(err) = serde_json::from_slice::<AgentError>(&body) else {
            return self.unreachable(format!("files call answered {status}"));
        };
        match err.code {
            AgentErrorCode::NotFound => RuntimeError::FileNotFound(path.to_string()),
            AgentErrorCode::IsDirectory => RuntimeError::IsDirectory(path.to_string()),
            AgentErrorCode::InvalidPath | AgentErrorCode::Denied => {
                RuntimeError::InvalidPath(err.message)
            }
            AgentErrorCode::NoSpace => RuntimeError::NoSpace,
            AgentErrorCode::BadRequest | AgentErrorCode::Io => RuntimeError::Failed {
                id: self.id.clone(),
                op: "files",
                message: err.message,
            },
        }
    }

    /// Waits until the agent answers `health`, polling every millisecond or so.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Health, RuntimeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last = None;
        while tokio::time::Instant::now() < deadline {
            if self.socket.exists() {
                match self.health().await {
                    Ok(h) => return Ok(h),
                    Err(e) => last = Some(e),
                }
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        Err(last.unwrap_or_else(|| {
            self.unreachable(format!(
                "no socket at {} after {timeout:?}",
                self.socket.display()
            ))
        }))
    }
}

fn check_path(path: &str) -> Result<(), RuntimeError> {
    proto::validate_path(path).map_err(|e| RuntimeError::InvalidPath(format!("{path:?}: {e}")))
}

fn exec_body(spec: &ExecSpec) -> Result<Bytes, RuntimeError> {
    let req = ExecRequest {
        cmd: spec.cmd.clone(),
        args: spec.args.clone(),
        env: spec.env.clone(),
        cwd: spec.cwd.clone(),
        has_stdin: spec.stdin.is_some(),
    };
    let json = serde_json::to_vec(&req).map_err(|e| RuntimeError::Io(std::io::Error::other(e)))?;
    let mut wire = proto::encode_frame(FrameKind::Spec, &json);
    if let Some(stdin) = &spec.stdin {
        for chunk in stdin.chunks(1 << 20) {
            wire.extend(proto::encode_frame(FrameKind::Stdin, chunk));
        }
    }
    Ok(Bytes::from(wire))
}

fn request(method: Method, uri: &str, body: ReqBody) -> Request<ReqBody> {
    let mut req = Request::new(body);
    *req.method_mut() = method;
    *req.uri_mut() = uri.parse().unwrap_or_else(|_| hyper::Uri::from_static("/"));
    req.headers_mut().insert(
        hyper::header::HOST,
        hyper::header::HeaderValue::from_static("agent"),
    );
    req
}

fn empty() -> ReqBody {
    full(Bytes::new())
}

fn full(b: Bytes) -> ReqBody {
    BoxBody::new(Full::new(b).map_err(|never| match never {}))
}

/// Connects to a unix socket; a path longer than `sun_path` is reached
/// through `/proc/self/fd/<dirfd>/<name>`.
async fn connect_unix(path: &Path) -> std::io::Result<UnixStream> {
    if path.as_os_str().len() < 100 {
        return UnixStream::connect(path).await;
    }
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::other("bad socket path"));
    };
    let dirfd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let short = Path::new("/proc/self/fd")
        .join(dirfd.as_raw_fd().to_string())
        .join(name);
    UnixStream::connect(short).await
}

//! The agent binary run on the host against a temporary root (`--root`):
//! the protocol works end to end, and path resolution stays inside the
//! root whatever symlinks or `..` the root contains. (The real-sandbox
//! versions of these tests are in crates/cove-runtime/tests.)

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{bail, Result};
use bytes::Bytes;
use cove_api::agent::{encode_frame, encode_query_path, ExecRequest, FrameDecoder, FrameKind};
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;

struct Agent {
    child: Child,
    socket: PathBuf,
    dir: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    async fn start() -> Result<Agent> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("root"))?;
        let socket = dir.path().join("agent.sock");
        let child = Command::new(env!("CARGO_BIN_EXE_cove-agent"))
            .arg("--root")
            .arg(dir.path().join("root"))
            .arg("--socket")
            .arg(&socket)
            .spawn()?;
        // Until a connection is accepted: the socket file appears at
        // bind(2), a moment before listen(2), when a connect is refused.
        for _ in 0..500 {
            if tokio::net::UnixStream::connect(&socket).await.is_ok() {
                return Ok(Agent { child, socket, dir });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        bail!("agent did not listen on its socket")
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    async fn call(&self, method: Method, uri: &str, body: Vec<u8>) -> Result<(StatusCode, Bytes)> {
        let stream = tokio::net::UnixStream::connect(&self.socket).await?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("host", "agent")
            .body(Full::new(Bytes::from(body)))?;
        let resp = send.send_request(req).await?;
        let status = resp.status();
        Ok((status, resp.into_body().collect().await?.to_bytes()))
    }

    async fn read(&self, path: &str) -> Result<(StatusCode, Bytes)> {
        self.call(
            Method::GET,
            &format!("/v1/files?path={}", encode_query_path(path)),
            Vec::new(),
        )
        .await
    }

    async fn write(&self, path: &str, data: &[u8]) -> Result<(StatusCode, Bytes)> {
        self.call(
            Method::PUT,
            &format!("/v1/files?path={}", encode_query_path(path)),
            data.to_vec(),
        )
        .await
    }
}

#[tokio::test]
async fn health_files_and_exec_work_over_the_socket() -> Result<()> {
    let a = Agent::start().await?;
    let (st, body) = a.call(Method::GET, "/v1/health", Vec::new()).await?;
    assert_eq!(st, StatusCode::OK, "{body:?}");

    let (st, _) = a.write("/a/b/c.txt", b"hello").await?;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(std::fs::read(a.root().join("a/b/c.txt"))?, b"hello");
    assert_eq!(
        a.read("/a/b/c.txt").await?,
        (StatusCode::OK, Bytes::from_static(b"hello"))
    );
    assert_eq!(a.read("/a/missing").await?.0, StatusCode::NOT_FOUND);
    assert_eq!(a.read("/a").await?.0, StatusCode::CONFLICT);
    assert_eq!(a.read("relative").await?.0, StatusCode::BAD_REQUEST);

    let req = ExecRequest {
        cmd: "echo".into(),
        args: vec!["hi".into()],
        ..Default::default()
    };
    let wire = encode_frame(FrameKind::Spec, &serde_json::to_vec(&req)?);
    let (st, body) = a.call(Method::POST, "/v1/exec/run", wire).await?;
    assert_eq!(st, StatusCode::OK);
    let mut dec = FrameDecoder::new();
    dec.push(&body);
    let mut kinds = Vec::new();
    while let Some(f) = dec.next_frame()? {
        if f.kind == FrameKind::Stdout {
            assert_eq!(f.payload, b"hi\n");
        }
        if f.kind == FrameKind::Exit {
            assert_eq!(f.int_payload(), Some(0));
        }
        kinds.push(f.kind);
    }
    assert_eq!(
        kinds,
        vec![FrameKind::Start, FrameKind::Stdout, FrameKind::Exit]
    );
    Ok(())
}

#[tokio::test]
async fn paths_never_resolve_outside_the_root() -> Result<()> {
    let a = Agent::start().await?;
    let secret = a.dir.path().join("secret");
    std::fs::write(&secret, b"host-secret")?;
    let root = a.root();
    std::os::unix::fs::symlink(&secret, root.join("abs"))?;
    std::os::unix::fs::symlink("../secret", root.join("up"))?;
    std::os::unix::fs::symlink(a.dir.path(), root.join("absdir"))?;
    std::os::unix::fs::symlink("/proc/self/root", root.join("magic"))?;
    let host = secret.display().to_string();
    for p in [
        "/abs",
        "/up",
        "/../secret",
        "/absdir/secret",
        &format!("/magic{host}"),
        &format!("/../../..{host}"),
    ] {
        let (st, body) = a.read(p).await?;
        assert_ne!(st, StatusCode::OK, "read {p} succeeded: {body:?}");
    }
    for p in [
        "/abs",
        "/up",
        "/absdir/secret",
        "/absdir/new",
        &format!("/magic{host}"),
    ] {
        let _ = a.write(p, b"pwned").await?;
        assert_eq!(
            std::fs::read(&secret)?,
            b"host-secret",
            "write {p} reached the host file"
        );
        assert!(
            !a.dir.path().join("new").exists(),
            "write {p} created a host file"
        );
    }
    // `up` was clamped to the root: the write landed at <root>/secret.
    assert!(Path::new(&root.join("secret")).exists());
    Ok(())
}

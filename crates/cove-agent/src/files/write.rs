//! `PUT /v1/files?path=P`: stream the request body into a file inside the
//! sandbox, creating parent directories. Writing happens on a blocking
//! thread fed through a bounded channel. On an error (ENOSPC …) the rest of
//! the body is drained before answering, so the client, still sending, reads
//! the error instead of a reset connection.

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use cove_api::agent::{AgentErrorCode, WriteResult};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response};
use rustix::fs::{FileType, Mode, OFlags};

use super::root::{errno_code, io_code};
use crate::body::{self, Body};
use crate::server::State;

pub async fn handle(state: &Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = match super::query_path(req.uri()) {
        Ok(p) => p,
        Err((code, msg)) => return body::error(code, msg),
    };
    let mut incoming = req.into_body();
    let result = write(state, &path, &mut incoming).await;
    if result.is_err() {
        while let Some(Ok(_)) = incoming.frame().await {}
    }
    match result {
        Ok(bytes) => body::json(&WriteResult { bytes }),
        Err((code, msg)) => body::error(code, msg),
    }
}

async fn write(
    state: &Arc<State>,
    path: &str,
    incoming: &mut Incoming,
) -> Result<u64, (AgentErrorCode, String)> {
    if path.trim_matches('/').is_empty() {
        return Err((AgentErrorCode::IsDirectory, "/ is a directory".to_string()));
    }
    let fail = |e: rustix::io::Errno| (errno_code(e), format!("{path}: {e}"));
    state.root.create_parents(path).map_err(fail)?;
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = state
        .root
        .open_at(path, flags, Mode::from_raw_mode(0o644))
        .map_err(fail)?;
    let st = rustix::fs::fstat(&fd).map_err(fail)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err((
            AgentErrorCode::InvalidPath,
            format!("{path} is not a regular file"),
        ));
    }
    // Truncate only once we know it is a regular file we may write.
    rustix::fs::ftruncate(&fd, 0).map_err(fail)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let mut file = std::fs::File::from(fd);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<u64> {
        let mut n = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            file.write_all(&chunk)?;
            n += chunk.len() as u64;
        }
        file.flush()?;
        Ok(n)
    });
    let mut body_err = None;
    while let Some(frame) = incoming.frame().await {
        match frame {
            Ok(frame) => {
                if let Ok(data) = frame.into_data() {
                    // The writer stopped (an error): its result says why.
                    if tx.send(data).await.is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                body_err = Some(e);
                break;
            }
        }
    }
    drop(tx);
    let written = match writer.await {
        Ok(Ok(n)) => n,
        Ok(Err(e)) => return Err((io_code(&e), format!("{path}: {e}"))),
        Err(e) => return Err((AgentErrorCode::Io, format!("{path}: writer failed: {e}"))),
    };
    if let Some(e) = body_err {
        return Err((
            AgentErrorCode::BadRequest,
            format!("{path}: request body: {e}"),
        ));
    }
    Ok(written)
}

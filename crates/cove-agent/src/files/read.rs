//! `GET /v1/files?path=P`: stream a regular file out of the sandbox with its
//! size in `content-length`. Directories, FIFOs and devices are refused (a
//! FIFO would block, `/dev/zero` would never end).

use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use cove_api::agent::AgentErrorCode;
use hyper::body::Incoming;
use hyper::{Request, Response};
use rustix::fs::{FileType, Mode, OFlags};

use super::root::errno_code;
use crate::body::{self, Body};
use crate::server::State;

const CHUNK: usize = 1 << 20;

pub async fn handle(state: &Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = match super::query_path(req.uri()) {
        Ok(p) => p,
        Err((code, msg)) => return body::error(code, msg),
    };
    let fd = match state.root.open_at(
        &path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return body::error(errno_code(e), format!("{path}: {e}")),
    };
    let st = match rustix::fs::fstat(&fd) {
        Ok(st) => st,
        Err(e) => return body::error(errno_code(e), format!("{path}: {e}")),
    };
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {}
        FileType::Directory => {
            return body::error(
                AgentErrorCode::IsDirectory,
                format!("{path} is a directory"),
            )
        }
        _ => {
            return body::error(
                AgentErrorCode::InvalidPath,
                format!("{path} is not a regular file"),
            )
        }
    }
    let size = st.st_size.max(0) as u64;
    let (tx, mut resp) = body::channel(4, "application/octet-stream");
    resp.headers_mut()
        .insert(hyper::header::CONTENT_LENGTH, size.into());
    let file = std::fs::File::from(fd);
    tokio::task::spawn_blocking(move || {
        let mut file = file.take(size);
        let mut left = size;
        while left > 0 {
            let mut buf = vec![0u8; CHUNK.min(left as usize)];
            let n = match file.read(&mut buf) {
                Ok(0) => {
                    // The file shrank while being read: fail the body rather
                    // than send fewer bytes than announced.
                    let _ =
                        tx.blocking_send(Err(std::io::Error::other("file shrank while reading")));
                    return;
                }
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            };
            buf.truncate(n);
            left -= n as u64;
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return;
            }
        }
    });
    resp
}

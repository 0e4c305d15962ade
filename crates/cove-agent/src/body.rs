//! Response bodies: a whole buffer, JSON, or a channel fed by a task (exec
//! frames, file chunks). Dropping a channel body (the client went away)
//! closes the channel, which the producing task notices.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use cove_api::agent::{AgentError, AgentErrorCode};
use http_body::Frame;
use hyper::{Response, StatusCode};
use tokio::sync::mpsc;

/// The body of every agent response.
pub enum Body {
    Full(Option<Bytes>),
    Channel(mpsc::Receiver<Result<Bytes, std::io::Error>>),
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Channel(rx) => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }
}

/// A response with a status and a whole body.
pub fn full(status: StatusCode, content_type: &str, bytes: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Body::Full(Some(bytes.into())));
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}

/// A 200 JSON response.
pub fn json<T: serde::Serialize>(value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(v) => full(StatusCode::OK, "application/json", v),
        Err(e) => error(AgentErrorCode::Io, format!("encoding a response: {e}")),
    }
}

/// An error response in the protocol's JSON form.
pub fn error(code: AgentErrorCode, message: String) -> Response<Body> {
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(&AgentError { code, message }).unwrap_or_default();
    full(status, "application/json", body)
}

/// A streamed 200 response fed by the returned sender.
pub fn channel(
    capacity: usize,
    content_type: &str,
) -> (mpsc::Sender<Result<Bytes, std::io::Error>>, Response<Body>) {
    let (tx, rx) = mpsc::channel(capacity);
    let mut resp = Response::new(Body::Channel(rx));
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    (tx, resp)
}

//! `POST /v1/exec/stream`: run a command and forward its output as it is
//! produced; the client dropping the connection kills the command.

use std::sync::Arc;

use cove_api::agent::AgentErrorCode;
use hyper::body::Incoming;
use hyper::{Request, Response};

use super::request::RequestFrames;
use super::session::{drive, Mode};
use crate::body::{self, Body};
use crate::server::State;

pub async fn handle(state: &Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let (spec, frames) = match RequestFrames::open(req.into_body()).await {
        Ok(x) => x,
        Err(e) => return body::error(AgentErrorCode::BadRequest, e),
    };
    // A small channel: a slow client slows the command (back-pressure through
    // the pipe) instead of the agent buffering without bound.
    let (tx, resp) = body::channel(16, "application/octet-stream");
    tokio::spawn(drive(state.clone(), spec, frames, tx, Mode::Stream));
    resp
}

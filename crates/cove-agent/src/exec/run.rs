//! `POST /v1/exec/run`: run a command to completion; stdout and stderr come
//! back whole, after the `Start` and heartbeat frames, before `Exit`.

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
    let (tx, resp) = body::channel(8, "application/octet-stream");
    tokio::spawn(drive(state.clone(), spec, frames, tx, Mode::Buffer));
    resp
}

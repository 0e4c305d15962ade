//! The agent's HTTP/1.1 server on its unix socket: one task per connection
//! (keep-alive, so the host reuses connections), one route per call.

use std::path::PathBuf;
use std::sync::Arc;

use cove_api::agent::{
    AgentErrorCode, Health, PATH_EXEC_RUN, PATH_EXEC_STREAM, PATH_FILES, PATH_HEALTH,
    PATH_SELF_TAKE,
};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

use crate::body::{self, Body};
use crate::files::root::Root;
use crate::reaper::Reaper;
use crate::self_api::{self, Pending};

/// What every handler may use.
pub struct State {
    pub root: Root,
    pub reaper: Arc<Reaper>,
    /// What code in the sandbox asked of the platform (`self_api`).
    pub pending: Arc<Pending>,
}

/// Binds the socket (replacing a stale one) and serves until the process ends.
pub async fn run(root: PathBuf, socket: PathBuf) -> std::io::Result<()> {
    let reaper = Reaper::start()?;
    let root = Root::open(&root)?;
    let pending = Arc::new(Pending::default());
    let self_pending = pending.clone();
    tokio::spawn(async move {
        // Without it the sandbox only loses /self/*; exec and files go on.
        if let Err(e) = self_api::run(self_pending).await {
            eprintln!("cove-agent: self API on 127.0.0.1:1029: {e}");
        }
    });
    let state = Arc::new(State {
        root,
        reaper,
        pending,
    });
    match std::fs::remove_file(&socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&socket)?;
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(_) => {
                // EMFILE and friends: back off instead of spinning.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(route(&state, req).await) }
            });
            // A failed connection only concerns that client.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(state: &Arc<State>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, PATH_HEALTH) => body::json(&Health {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }),
        (Method::POST, PATH_EXEC_RUN) => crate::exec::run::handle(state, req).await,
        (Method::POST, PATH_EXEC_STREAM) => crate::exec::stream::handle(state, req).await,
        (Method::GET, PATH_FILES) => crate::files::read::handle(state, req).await,
        (Method::PUT, PATH_FILES) => crate::files::write::handle(state, req).await,
        (Method::POST, PATH_SELF_TAKE) => body::json(&state.pending.take()),
        (m, p) => body::error(AgentErrorCode::BadRequest, format!("no route for {m} {p}")),
    }
}

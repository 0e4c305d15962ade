//! The self API inside the sandbox: `POST http://127.0.0.1:1029/self/pause`
//! and `/self/delete` (optional `?reason=`, cut to 128 characters), answered
//! `202 Accepted` as both SDKs require. The agent only records the request;
//! the host takes it over the agent socket (`PATH_SELF_TAKE`) and acts, so
//! nothing inside the sandbox can reach the control plane itself. A delete
//! outranks a pause still waiting to be taken.

use std::sync::{Arc, Mutex};

use cove_api::agent::{SelfAction, SelfRequest, MAX_SELF_REASON, SELF_PORT};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::body::{self, Body};

/// The request waiting for the host.
#[derive(Default)]
pub struct Pending(Mutex<Option<SelfRequest>>);

impl Pending {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<SelfRequest>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn offer(&self, req: SelfRequest) {
        let mut slot = self.lock();
        let keep_delete = matches!(&*slot, Some(r) if r.action == SelfAction::Delete)
            && req.action == SelfAction::Pause;
        if !keep_delete {
            *slot = Some(req);
        }
    }

    /// Takes (and clears) the waiting request.
    pub fn take(&self) -> Option<SelfRequest> {
        self.lock().take()
    }
}

/// Serves the self API on 127.0.0.1:1029 until the process ends.
pub async fn run(pending: Arc<Pending>) -> std::io::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", SELF_PORT)).await?;
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let pending = pending.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let pending = pending.clone();
                async move { Ok::<_, std::convert::Infallible>(handle(&pending, &req)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn handle(pending: &Pending, req: &Request<Incoming>) -> Response<Body> {
    let action = match (req.method(), req.uri().path()) {
        (&Method::POST, "/self/pause") => SelfAction::Pause,
        (&Method::POST, "/self/delete") => SelfAction::Delete,
        _ => return body::full(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    };
    let reason = req.uri().query().and_then(reason_of);
    pending.offer(SelfRequest { action, reason });
    body::full(
        StatusCode::ACCEPTED,
        "application/json",
        r#"{"accepted":true}"#,
    )
}

/// `reason=` of a query string, percent-decoded (`+` is a space), cut to
/// [`MAX_SELF_REASON`] characters; empty is none.
fn reason_of(query: &str) -> Option<String> {
    let raw = query.split('&').find_map(|kv| kv.strip_prefix("reason="))?;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    let text: String = String::from_utf8_lossy(&out)
        .chars()
        .take(MAX_SELF_REASON)
        .collect();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_decoded_and_cut() {
        assert_eq!(
            reason_of("reason=done+for%20now"),
            Some("done for now".into())
        );
        assert_eq!(reason_of("x=1&reason=ok"), Some("ok".into()));
        assert_eq!(reason_of("reason="), None);
        assert_eq!(reason_of("other=1"), None);
        assert_eq!(reason_of("reason=%zz%4"), Some("%zz%4".into()));
        let long = format!("reason={}", "é".repeat(300));
        assert_eq!(reason_of(&long).unwrap().chars().count(), MAX_SELF_REASON);
    }

    #[test]
    fn a_delete_outranks_a_waiting_pause() {
        let p = Pending::default();
        p.offer(SelfRequest {
            action: SelfAction::Delete,
            reason: Some("bye".into()),
        });
        p.offer(SelfRequest {
            action: SelfAction::Pause,
            reason: None,
        });
        assert_eq!(p.take().unwrap().action, SelfAction::Delete);
        assert!(p.take().is_none());
        p.offer(SelfRequest {
            action: SelfAction::Pause,
            reason: None,
        });
        p.offer(SelfRequest {
            action: SelfAction::Delete,
            reason: None,
        });
        assert_eq!(p.take().unwrap().action, SelfAction::Delete);
    }
}

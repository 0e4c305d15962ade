//! A 500 tells the client only "internal error"; the real error is logged
//! exactly once, inside the request span (with its request id).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use cove_runtime::RuntimeError;
use serde_json::json;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn internal_error_is_logged_once_and_hidden_from_the_client() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let h = common::harness().await;
    h.mock
        .fail_next_create(RuntimeError::Io(std::io::Error::other("disk on fire")));
    let r = h
        .post("/v1/sandboxes", &h.alice, json!({"shape":"s-1vcpu-256mb"}))
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    let body = String::from_utf8_lossy(&r.body).into_owned();
    assert!(!body.contains("disk on fire"), "{body}");
    let request_id = r.headers["x-request-id"].to_str().unwrap().to_owned();

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("request failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{text}");
    assert!(failed[0].contains("disk on fire"), "{}", failed[0]);
    assert!(
        failed[0].contains(&request_id),
        "request id in the span: {}",
        failed[0]
    );
}

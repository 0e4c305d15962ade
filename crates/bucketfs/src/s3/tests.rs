//! Transport behaviour that garage cannot be made to show on demand:
//! truncated bodies, throttling, stalls. A scripted loopback TCP server
//! answers each connection with the next canned response and closes it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::{Op, RetryConfig, S3Client, S3Config};
use crate::client::{GetObjectParams, ObjectClient, ObjectClientError};

const HEADERS: &str =
    "ETag: \"e\"\r\nLast-Modified: Wed, 25 Nov 2026 16:00:00 GMT\r\nConnection: close\r\n";

fn ok(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\n{HEADERS}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn truncated(announced: usize, body: &str) -> String {
    format!("HTTP/1.1 200 OK\r\n{HEADERS}Content-Length: {announced}\r\n\r\n{body}")
}

fn slow_down() -> String {
    let body = "<Error><Code>SlowDown</Code><Message>m</Message></Error>";
    format!(
        "HTTP/1.1 503 Slow Down\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Serves `responses` in order (the last one repeats); `None` stalls.
/// Returns the endpoint and the number of connections served.
async fn serve(responses: Vec<Option<String>>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let served = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let i = served.fetch_add(1, Ordering::SeqCst);
            let resp = responses[i.min(responses.len() - 1)].clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                match resp {
                    Some(r) => {
                        let _ = sock.write_all(r.as_bytes()).await;
                        let _ = sock.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    (endpoint, count)
}

fn client(endpoint: &str) -> S3Client {
    let mut config = S3Config::new("b", "r").with_endpoint(endpoint);
    config.retry = RetryConfig {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
    };
    config.read_timeout = Duration::from_millis(300);
    S3Client::new(config).unwrap()
}

#[tokio::test]
async fn truncated_body_is_detected_and_retried() {
    let (ep, served) = serve(vec![Some(truncated(10, "0123")), Some(ok("0123456789"))]).await;
    let c = client(&ep);
    let r = c
        .get_object("k", &GetObjectParams::default())
        .await
        .unwrap();
    assert_eq!(&r.body[..], b"0123456789");
    assert_eq!(c.stats().retries(Op::Get), 1);
    assert_eq!(served.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn body_that_stays_truncated_is_an_error_never_a_short_read() {
    let (ep, _) = serve(vec![Some(truncated(10, "0123"))]).await;
    let c = client(&ep);
    let r = c.get_object("k", &GetObjectParams::default()).await;
    assert_eq!(
        r.map(|r| r.body),
        Err(ObjectClientError::TruncatedBody {
            expected: 10,
            received: 4
        })
    );
    assert_eq!(c.stats().retries(Op::Get), 2);
    assert_eq!(c.stats().failures(Op::Get), 1);
}

#[tokio::test]
async fn throttling_is_retried_with_backoff_then_succeeds() {
    let (ep, _) = serve(vec![Some(slow_down()), Some(slow_down()), Some(ok("x"))]).await;
    let c = client(&ep);
    let r = c
        .get_object("k", &GetObjectParams::default())
        .await
        .unwrap();
    assert_eq!(&r.body[..], b"x");
    assert_eq!(c.stats().retries(Op::Get), 2);
}

#[tokio::test]
async fn persistent_throttling_is_reported_as_throttled() {
    let (ep, _) = serve(vec![Some(slow_down())]).await;
    let r = client(&ep).head_object("k").await;
    assert_eq!(
        r.map(|h| h.size),
        Err(ObjectClientError::Throttled { status: 503 })
    );
}

#[tokio::test]
async fn stalled_server_times_out() {
    let (ep, _) = serve(vec![None]).await;
    let r = client(&ep)
        .get_object("k", &GetObjectParams::default())
        .await;
    assert_eq!(r.map(|r| r.body), Err(ObjectClientError::Timeout));
}

#[tokio::test]
async fn refused_connection_is_a_transient_connection_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let r = client(&format!("http://127.0.0.1:{port}"))
        .head_object("k")
        .await;
    match r {
        Err(e @ ObjectClientError::Connection { .. }) => assert!(e.is_transient()),
        other => panic!("expected a connection error, got {other:?}"),
    }
}

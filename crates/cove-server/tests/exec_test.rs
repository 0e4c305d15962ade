//! Exec over `app(state)` with the mock runtime: buffered results, env
//! merging, streams with heartbeats, escaping, UTF-8 hold-back and teardown.

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use futures::StreamExt;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

use common::{harness, Harness};

async fn sandbox(h: &Harness) -> String {
    let sb = h
        .create(
            &h.alice,
            json!({"shape":"s-1vcpu-256mb","envs":{"A":"from-sandbox","B":"keep"}}),
        )
        .await;
    sb["id"].as_str().unwrap().to_owned()
}

fn frames(body: &[u8]) -> Vec<Value> {
    let text = std::str::from_utf8(body).unwrap();
    assert!(
        text.ends_with('\n'),
        "every frame ends with a newline: {text:?}"
    );
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn buffered_exec_returns_result_and_exec_ms() {
    let h = harness().await;
    let id = sandbox(&h).await;
    let r = h
        .post(
            &format!("/v1/sandboxes/{id}/exec"),
            &h.alice,
            json!({"cmd":"echo","args":["a","b"]}),
        )
        .await;
    let data = r.data();
    assert_eq!(
        data["result"],
        json!({"stdout":"a b\n","stderr":"","exit_code":0})
    );
    assert!(data["exec_ms"].is_f64());
}

#[tokio::test]
async fn non_zero_exit_and_start_failure_are_still_200() {
    let h = harness().await;
    let id = sandbox(&h).await;
    let uri = format!("/v1/sandboxes/{id}/exec");
    let r = h
        .post(&uri, &h.alice, json!({"cmd":"exit","args":["3"]}))
        .await;
    assert_eq!(r.data()["result"]["exit_code"], 3);
    let r = h
        .post(&uri, &h.alice, json!({"cmd":"no-such-binary"}))
        .await;
    let result = &r.data()["result"];
    assert_eq!(result["exit_code"], -1);
    assert!(result["error"].as_str().unwrap().contains("no-such-binary"));
    assert_eq!(
        h.post(&uri, &h.alice, json!({})).await.fail_code(400),
        "validation_failed"
    );
}

#[tokio::test]
async fn stdin_and_env_reach_the_command_and_per_exec_env_wins() {
    let h = harness().await;
    let id = sandbox(&h).await;
    let uri = format!("/v1/sandboxes/{id}/exec");
    let r = h
        .post(&uri, &h.alice, json!({"cmd":"cat","stdin":"in put"}))
        .await;
    assert_eq!(r.data()["result"]["stdout"], "in put");
    let r = h
        .post(
            &uri,
            &h.alice,
            json!({"cmd":"env","env":{"A":"from-exec","X":"1"}}),
        )
        .await;
    let out = r.data()["result"]["stdout"].as_str().unwrap().to_owned();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines.contains(&"A=from-exec"), "{out}");
    assert!(lines.contains(&"B=keep"), "{out}");
    assert!(lines.contains(&"X=1"), "{out}");
    assert!(!lines.contains(&"A=from-sandbox"), "{out}");
}

#[tokio::test]
async fn stream_sends_ndjson_frames_ending_with_exit_code() {
    let h = harness().await;
    let id = sandbox(&h).await;
    // TS sends ?stream=true and "stream":true; PY the same.
    let r = h
        .post(
            &format!("/v1/sandboxes/{id}/exec?stream=true"),
            &h.alice,
            json!({"cmd":"echo","args":["hi"],"stream":true}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/x-ndjson");
    let f = frames(&r.body);
    assert_eq!(f.last().unwrap(), &json!({"exit_code":0}));
    let stdout: String = f.iter().filter_map(|x| x["stdout"].as_str()).collect();
    assert_eq!(stdout, "hi\n");
    // Body flag alone also streams.
    let r = h
        .post(
            &format!("/v1/sandboxes/{id}/exec"),
            &h.alice,
            json!({"cmd":"true","stream":true}),
        )
        .await;
    assert_eq!(frames(&r.body), vec![json!({"exit_code":0})]);
}

#[tokio::test]
async fn stream_escapes_line_separators() {
    let h = harness().await;
    let id = sandbox(&h).await;
    let r = h
        .post(
            &format!("/v1/sandboxes/{id}/exec?stream=true"),
            &h.alice,
            json!({"cmd":"echo","args":["a\u{2028}b\u{2029}c\u{85}d"]}),
        )
        .await;
    let text = std::str::from_utf8(&r.body).unwrap();
    assert!(
        text.contains("\\u2028") && text.contains("\\u2029") && text.contains("\\u0085"),
        "{text}"
    );
    assert!(!text.contains(['\u{2028}', '\u{2029}', '\u{85}']));
    let stdout: String = frames(&r.body)
        .iter()
        .filter_map(|x| x["stdout"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(stdout, "a\u{2028}b\u{2029}c\u{85}d\n");
}

#[tokio::test]
async fn stream_holds_back_split_utf8_sequences() {
    let h = harness().await;
    let id = sandbox(&h).await;
    // "é" (c3 a9) and "😀" (f0 9f 98 80) split across chunks.
    let r = h
        .post(
            &format!("/v1/sandboxes/{id}/exec?stream=true"),
            &h.alice,
            json!({"cmd":"chunks","args":["61c3","a9f09f","9880"]}),
        )
        .await;
    let f = frames(&r.body);
    let stdout: String = f
        .iter()
        .filter_map(|x| x["stdout"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(stdout, "aé😀");
    assert!(!stdout.contains('\u{FFFD}'));
}

#[tokio::test]
async fn stream_sends_heartbeats_while_silent() {
    let h = harness().await; // heartbeat every 50 ms
    let id = sandbox(&h).await;
    let r = h
        .post(
            &format!("/v1/sandboxes/{id}/exec?stream=true"),
            &h.alice,
            json!({"cmd":"sleep","args":["0.3"]}),
        )
        .await;
    let f = frames(&r.body);
    let beats = f.iter().filter(|x| **x == json!({"hb":true})).count();
    assert!(beats >= 2, "{f:?}");
    assert_eq!(f.last().unwrap(), &json!({"exit_code":0}));
}

#[tokio::test]
async fn stream_start_failure_is_an_error_frame_with_exit() {
    let h = harness().await;
    let id = sandbox(&h).await;
    let r = h
        .post(
            &format!("/v1/sandboxes/{id}/exec?stream=true"),
            &h.alice,
            json!({"cmd":"missing-tool"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let f = frames(&r.body);
    let last = f.last().unwrap();
    assert!(last["error"].as_str().unwrap().contains("missing-tool"));
    assert_eq!(last["exit_code"], -1);
}

#[tokio::test]
async fn stream_errors_before_start_are_jsend() {
    let h = harness().await;
    let r = h
        .post(
            "/v1/sandboxes/sb_01h00000000000000000000000/exec?stream=true",
            &h.alice,
            json!({"cmd":"true"}),
        )
        .await;
    assert_eq!(r.fail_code(404), "not_found");
    assert_eq!(r.headers["content-type"], "application/json");
}

#[tokio::test]
async fn client_disconnect_kills_the_command() {
    let h = harness().await;
    let id = sandbox(&h).await;
    let req = Request::post(format!("/v1/sandboxes/{id}/exec?stream=true"))
        .header("x-api-key", &h.alice)
        .body(Body::from(json!({"cmd":"sleep","args":["30"]}).to_string()))
        .unwrap();
    let resp = h.app().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body().into_data_stream();
    // Read one heartbeat, then hang up.
    let first = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"{\"hb\":true}\n");
    assert_eq!(h.mock.killed_streams(), 0);
    drop(body);
    assert_eq!(h.mock.killed_streams(), 1);
}

#[tokio::test]
async fn exec_ignores_response_body_collect_helper() {
    // The buffered path must not stream: one JSON document.
    let h = harness().await;
    let id = sandbox(&h).await;
    let req = Request::post(format!("/v1/sandboxes/{id}/exec"))
        .header("x-api-key", &h.alice)
        .body(Body::from(r#"{"cmd":"echo","args":["x"]}"#))
        .unwrap();
    let resp = h.app().oneshot(req).await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["status"], "success");
}

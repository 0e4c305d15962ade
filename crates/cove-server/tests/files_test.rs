//! Files API over `app(state)` with the mock runtime.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use common::{harness, Harness};

async fn sandbox(h: &Harness) -> String {
    h.create(&h.alice, json!({"shape":"s-1vcpu-256mb"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn put(h: &Harness, uri: &str, body: Vec<u8>) -> common::Reply {
    let req = Request::builder()
        .method(Method::PUT)
        .uri(uri)
        .header("x-api-key", &h.alice)
        .header("content-type", "application/octet-stream")
        .body(Body::from(body))
        .unwrap();
    h.send(req).await
}

#[tokio::test]
async fn binary_round_trip() {
    let h = harness().await;
    let id = sandbox(&h).await;
    let data: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let up = put(
        &h,
        &format!("/v1/sandboxes/{id}/files?path=/data/deep/blob.bin"),
        data.clone(),
    )
    .await;
    assert_eq!(up.status, StatusCode::OK);
    assert_eq!(
        up.data(),
        json!({"path":"/data/deep/blob.bin","bytes":300_000})
    );
    let down = h
        .get(
            &format!("/v1/sandboxes/{id}/files?path=/data/deep/blob.bin"),
            &h.alice,
        )
        .await;
    assert_eq!(down.status, StatusCode::OK);
    assert_eq!(down.headers["content-type"], "application/octet-stream");
    assert_eq!(down.headers["content-length"], "300000");
    assert_eq!(&down.body[..], &data[..]);
}

#[tokio::test]
async fn query_path_is_form_decoded() {
    let h = harness().await;
    let id = sandbox(&h).await;
    // PY/TS encoding of "/x y/ü&=+.bin".
    let up = put(
        &h,
        &format!("/v1/sandboxes/{id}/files?path=%2Fx+y%2F%C3%BC%26%3D%2B.bin"),
        b"hi".to_vec(),
    )
    .await;
    assert_eq!(up.data()["path"], "/x y/ü&=+.bin");
    let down = h
        .get(
            &format!("/v1/sandboxes/{id}/files?path=/x%20y/%C3%BC%26%3D%2B.bin"),
            &h.alice,
        )
        .await;
    assert_eq!(&down.body[..], b"hi");
}

#[tokio::test]
async fn empty_upload_creates_empty_file() {
    let h = harness().await;
    let id = sandbox(&h).await;
    let up = put(
        &h,
        &format!("/v1/sandboxes/{id}/files?path=/empty"),
        Vec::new(),
    )
    .await;
    assert_eq!(up.data()["bytes"], 0);
    let down = h
        .get(&format!("/v1/sandboxes/{id}/files?path=/empty"), &h.alice)
        .await;
    assert_eq!(down.status, StatusCode::OK);
    assert!(down.body.is_empty());
}

#[tokio::test]
async fn missing_file_is_404_and_bad_paths_are_400() {
    let h = harness().await;
    let id = sandbox(&h).await;
    let r = h
        .get(&format!("/v1/sandboxes/{id}/files?path=/nope"), &h.alice)
        .await;
    assert_eq!(r.fail_code(404), "not_found");
    for bad in ["relative/x", "/a/../etc/passwd", "", "/"] {
        let r = h
            .get(&format!("/v1/sandboxes/{id}/files?path={bad}"), &h.alice)
            .await;
        assert_eq!(r.fail_code(400), "invalid_path", "{bad:?}");
        let r = put(
            &h,
            &format!("/v1/sandboxes/{id}/files?path={bad}"),
            b"x".to_vec(),
        )
        .await;
        assert_eq!(r.fail_code(400), "invalid_path", "{bad:?}");
    }
    let r = h.get(&format!("/v1/sandboxes/{id}/files"), &h.alice).await;
    assert_eq!(r.fail_code(400), "invalid_path");
    put(
        &h,
        &format!("/v1/sandboxes/{id}/files?path=/dir/f"),
        b"x".to_vec(),
    )
    .await;
    let r = h
        .get(&format!("/v1/sandboxes/{id}/files?path=/dir"), &h.alice)
        .await;
    assert_eq!(r.fail_code(400), "is_a_directory");
}

#[tokio::test]
async fn files_need_auth_and_a_running_sandbox() {
    let h = harness().await;
    let id = sandbox(&h).await;
    let r = h
        .call(
            Method::GET,
            &format!("/v1/sandboxes/{id}/files?path=/x"),
            None,
            None,
        )
        .await;
    assert_eq!(r.fail_code(401), "unauthorized");
    h.call(
        Method::DELETE,
        &format!("/v1/sandboxes/{id}"),
        Some(&h.alice),
        None,
    )
    .await;
    let r = put(
        &h,
        &format!("/v1/sandboxes/{id}/files?path=/x"),
        b"x".to_vec(),
    )
    .await;
    assert_eq!(r.fail_code(409), "invalid_state");
}

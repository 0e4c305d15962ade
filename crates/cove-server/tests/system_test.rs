//! Health, catalog, identity, auth, request ids, OpenAPI, metrics, base path.

mod common;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use common::harness;

#[tokio::test]
async fn unauthenticated_endpoints_answer_without_a_key() {
    let h = harness().await;
    let r = h.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.json(), json!({"status":"success","data":{"up":true}}));
    let r = h.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.json(), json!({"status":"success","data":{"ready":true}}));
    let shapes = h
        .call(Method::GET, "/v1/shapes?limit=500&offset=0", None, None)
        .await
        .data();
    assert_eq!(shapes["pagination"]["total"], 5);
    let first = &shapes["data"][0];
    assert_eq!(
        first,
        &json!({"id":"s-1vcpu-256mb","vcpu":1,"mem_mib":256,"default_disk_mib":10240})
    );
    let page = h
        .call(Method::GET, "/v1/shapes?limit=2&offset=4", None, None)
        .await
        .data();
    assert_eq!(
        page["pagination"],
        json!({"total":5,"limit":2,"offset":4,"count":1})
    );
    let rootfs = h.call(Method::GET, "/v1/rootfs", None, None).await.data();
    assert_eq!(rootfs["rootfs"], json!(["devbox:1"]));
    assert_eq!(rootfs["default"], "devbox:1");
}

#[tokio::test]
async fn authenticated_endpoints_need_a_known_key() {
    let h = harness().await;
    for uri in ["/v1/whoami", "/v1/hosts", "/v1/sandboxes"] {
        assert_eq!(
            h.call(Method::GET, uri, None, None).await.fail_code(401),
            "unauthorized"
        );
        assert_eq!(
            h.get(uri, "cove_wrong").await.fail_code(401),
            "unauthorized"
        );
    }
    let r = h
        .call(
            Method::POST,
            "/v1/sandboxes",
            None,
            Some(json!({"shape":"s-1vcpu-256mb"})),
        )
        .await;
    assert_eq!(r.fail_code(401), "unauthorized");
    assert_eq!(h.mock.creates(), 0);
}

#[tokio::test]
async fn bearer_and_token_headers_authenticate() {
    let h = harness().await;
    for header in ["authorization", "x-auth-token", "x-access-token"] {
        let value = if header == "authorization" {
            format!("Bearer {}", h.alice)
        } else {
            h.alice.clone()
        };
        let req = Request::get("/v1/whoami")
            .header(header, value)
            .body(Body::empty())
            .unwrap();
        let r = h.send(req).await;
        assert_eq!(r.data()["user_id"], "alice", "{header}");
    }
    // The first header present wins, even when a later one is valid.
    let req = Request::get("/v1/whoami")
        .header("x-auth-token", "cove_wrong")
        .header("x-api-key", &h.alice)
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(req).await.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn whoami_counts_and_hosts_lists_this_host() {
    let h = harness().await;
    h.create(&h.alice, json!({"shape":"s-1vcpu-256mb"})).await;
    h.create(&h.alice, json!({"shape":"s-1vcpu-512mb"})).await;
    let who = h.get("/v1/whoami", &h.alice).await.data();
    assert_eq!(
        who,
        json!({"user_id":"alice","stats":{"running":2,"paused":0,"other":0,"total":2}})
    );
    let hosts = h.get("/v1/hosts?limit=500&offset=0", &h.alice).await.data();
    assert_eq!(hosts["pagination"]["total"], 1);
    let host = &hosts["data"][0];
    assert_eq!(host["id"], "local");
    assert_eq!(host["status"], "active");
    assert_eq!(host["vm_count"], 2);
    assert_eq!(host["free_mib"], 16 * 1024 - 256 - 512);
    assert_eq!(host["rootfses"], json!(["devbox:1"]));
}

#[tokio::test]
async fn every_response_has_a_request_id() {
    let h = harness().await;
    for uri in ["/healthz", "/v1/whoami", "/nope"] {
        let r = h.call(Method::GET, uri, None, None).await;
        assert!(!r.headers["x-request-id"].is_empty(), "{uri}");
    }
    let req = Request::get("/healthz")
        .header("x-request-id", "abc-123")
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(req).await.headers["x-request-id"], "abc-123");
}

#[tokio::test]
async fn unknown_routes_and_methods_get_jsend() {
    let h = harness().await;
    assert_eq!(
        h.call(Method::GET, "/v1/nothing", None, None)
            .await
            .fail_code(404),
        "not_found"
    );
    let r = h
        .call(Method::PUT, "/v1/sandboxes", Some(&h.alice), None)
        .await;
    assert_eq!(r.fail_code(405), "invalid_request");
}

#[tokio::test]
async fn malformed_json_gets_the_envelope() {
    let h = harness().await;
    let req = Request::post("/v1/sandboxes")
        .header("x-api-key", &h.alice)
        .header("content-type", "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    let r = h.send(req).await;
    assert_eq!(r.fail_code(400), "invalid_request");
    assert_eq!(r.headers["content-type"], "application/json");
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let h = harness().await;
    let r = h.call(Method::GET, "/openapi.json", None, None).await;
    let doc = r.json();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    for p in [
        "/healthz",
        "/readyz",
        "/v1/shapes",
        "/v1/rootfs",
        "/v1/whoami",
        "/v1/hosts",
        "/v1/sandboxes",
        "/v1/sandboxes/{id}",
        "/v1/sandboxes/by-ip/{ip}",
        "/v1/sandboxes/{id}/exec",
        "/v1/sandboxes/{id}/files",
    ] {
        assert!(paths.contains_key(p), "{p} missing");
    }
    assert!(doc["components"]["schemas"]["SandboxView"].is_object());
}

#[tokio::test]
async fn metrics_count_requests_sandboxes_and_latency() {
    let h = harness().await;
    h.create(&h.alice, json!({"shape":"s-1vcpu-256mb"})).await;
    h.call(Method::GET, "/v1/whoami", None, None).await;
    let r = h.call(Method::GET, "/metrics", None, None).await;
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(
        text.contains(
            r#"cove_http_requests_total{route="/v1/sandboxes",method="POST",status="200"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"cove_http_requests_total{route="/v1/whoami",method="GET",status="401"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"cove_sandboxes{status="running"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("cove_sandbox_create_seconds_count 1"),
        "{text}"
    );
    assert!(text.contains("cove_exec_seconds"), "{text}");
}

#[tokio::test]
async fn routes_also_work_under_a_base_path() {
    let config = cove_server::AppConfig {
        base_path: Some("/base".into()),
        ..Default::default()
    };
    let h = common::harness_with(config, cove_runtime::mock::MockRuntime::new()).await;
    assert_eq!(
        h.get("/base/v1/whoami", &h.alice).await.data()["user_id"],
        "alice"
    );
    assert_eq!(
        h.call(Method::GET, "/healthz", None, None).await.status,
        StatusCode::OK
    );
    assert_eq!(h.get("/v1/whoami", &h.alice).await.status, StatusCode::OK);
}

#[tokio::test]
async fn readyz_is_503_fail_when_the_runtime_is_down() {
    let h = harness().await;
    h.mock.set_capacity_down(true);
    let r = h.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.json(),
        json!({"status":"fail","data":{"ready":false,"reason":"runtime unavailable"}})
    );
    h.mock.set_capacity_down(false);
    assert_eq!(
        h.call(Method::GET, "/readyz", None, None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn json_bodies_up_to_16_mib_are_accepted() {
    let h = harness().await;
    let id = h.create(&h.alice, json!({"shape":"s-1vcpu-256mb"})).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stdin = "x".repeat(5 * 1024 * 1024);
    let r = h
        .post(
            &format!("/v1/sandboxes/{id}/exec"),
            &h.alice,
            json!({"cmd":"cat","stdin":stdin}),
        )
        .await;
    assert_eq!(
        r.data()["result"]["stdout"].as_str().unwrap().len(),
        5 * 1024 * 1024
    );
    let huge = "x".repeat(17 * 1024 * 1024);
    let r = h
        .post(
            &format!("/v1/sandboxes/{id}/exec"),
            &h.alice,
            json!({"cmd":"cat","stdin":huge}),
        )
        .await;
    assert_eq!(r.fail_code(400), "invalid_request");
}

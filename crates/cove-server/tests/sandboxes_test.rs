//! Sandbox CRUD over `app(state)` with the mock runtime: create, validation
//! codes, names, pagination, isolation, patch, destroy.

mod common;

use axum::http::{Method, StatusCode};
use cove_runtime::RuntimeError;
use serde_json::json;

use common::harness;

#[tokio::test]
async fn create_returns_running_view_with_spawn_ms_and_status() {
    let h = harness().await;
    let sb = h
        .create(
            &h.alice,
            json!({"shape":"s-1vcpu-512mb","envs":{"TOKEN":"sk-secret"},"egress":["pypi.org:443"]}),
        )
        .await;
    assert_eq!(sb["status"], "running");
    assert!(sb["id"].as_str().unwrap().starts_with("sb_"));
    assert!(sb["spawn_ms"].is_f64());
    assert_eq!(sb["rootfs"], "devbox:1");
    assert_eq!(sb["mem_mib"], 512);
    assert_eq!(sb["disk_mib"], 10240);
    assert_eq!(sb["bandwidth_quota_bytes"], -1);
    assert_eq!(sb["envs"], json!(["TOKEN"]));
    assert_eq!(sb["region"], "local");
    assert!(sb["ip"].as_str().unwrap().starts_with("10.99."));
    assert!(sb["created_at"].as_str().unwrap().ends_with('Z'));
    // Absent optional fields are omitted, never null.
    for (k, v) in sb.as_object().unwrap() {
        assert!(!v.is_null(), "{k} is null");
    }
    assert!(!serde_json::to_string(&sb).unwrap().contains("sk-secret"));
    let name = sb["name"].as_str().unwrap();
    assert_eq!(name.split('-').count(), 2, "{name}");
    let spec = h
        .mock
        .spec(&cove_api::ids::SandboxId::parse(sb["id"].as_str().unwrap()).unwrap())
        .unwrap();
    assert_eq!(spec.hostname, name);
}

#[tokio::test]
async fn get_list_and_by_ip_show_the_sandbox() {
    let h = harness().await;
    let sb = h
        .create(&h.alice, json!({"shape":"s-1vcpu-256mb","name":"web"}))
        .await;
    let id = sb["id"].as_str().unwrap();
    let got = h.get(&format!("/v1/sandboxes/{id}"), &h.alice).await.data();
    assert_eq!(got["name"], "web");
    assert_eq!(got["status"], "running");
    assert!(got["running_at"].is_string());
    let ip = sb["ip"].as_str().unwrap();
    let by_ip = h
        .get(&format!("/v1/sandboxes/by-ip/{ip}"), &h.alice)
        .await
        .data();
    assert_eq!(by_ip["id"], id);
    assert_eq!(
        h.get("/v1/sandboxes/by-ip/10.0.0.99", &h.alice)
            .await
            .fail_code(404),
        "not_found"
    );
    let list = h.get("/v1/sandboxes", &h.alice).await.data();
    assert_eq!(list["pagination"]["total"], 1);
    assert_eq!(list["data"][0]["id"], id);
}

#[tokio::test]
async fn validation_failures_have_codes() {
    let h = harness().await;
    let cases = [
        (json!({}), "validation_failed"),
        (json!({"shape":"s-64vcpu-1tb"}), "unknown_shape"),
        (
            json!({"shape":"s-1vcpu-256mb","rootfs":"ubuntu:99"}),
            "unknown_rootfs",
        ),
        (
            json!({"shape":"s-1vcpu-256mb","region":"mars"}),
            "invalid_region",
        ),
        (
            json!({"shape":"s-1vcpu-256mb","name":"bad name"}),
            "validation_failed",
        ),
        (
            json!({"shape":"s-1vcpu-256mb","envs":{"1BAD":"x"}}),
            "validation_failed",
        ),
        (
            json!({"shape":"s-1vcpu-256mb","egress":["http://x"]}),
            "validation_failed",
        ),
        (
            json!({"shape":"s-1vcpu-256mb","auto_pause_after_seconds":59}),
            "validation_failed",
        ),
        (
            json!({"shape":"s-1vcpu-256mb","host_id":"elsewhere"}),
            "unknown_host",
        ),
        (json!({"shape": 5}), "invalid_request"),
    ];
    for (body, code) in cases {
        let r = h.post("/v1/sandboxes", &h.alice, body.clone()).await;
        assert_eq!(r.fail_code(400), code, "{body}");
    }
    let r = h
        .call(Method::POST, "/v1/sandboxes", Some(&h.alice), None)
        .await;
    assert_eq!(
        r.fail_code(400),
        "validation_failed",
        "empty body is {{}}, so shape is missing"
    );
    let big: serde_json::Map<String, serde_json::Value> =
        (0..65).map(|i| (format!("K{i}"), json!("v"))).collect();
    let r = h
        .post(
            "/v1/sandboxes",
            &h.alice,
            json!({"shape":"s-1vcpu-256mb","envs":big}),
        )
        .await;
    assert_eq!(r.fail_code(400), "validation_failed");
    assert_eq!(h.mock.creates(), 0, "nothing reached the runtime");
}

#[tokio::test]
async fn region_and_host_matching_the_server_are_accepted() {
    let h = harness().await;
    let sb = h
        .create(
            &h.alice,
            json!({"shape":"s-1vcpu-256mb","region":"local","host_id":"local"}),
        )
        .await;
    assert_eq!(sb["status"], "running");
}

#[tokio::test]
async fn host_that_cannot_fit_is_503_with_retry_after() {
    let h = common::harness_with(
        Default::default(),
        cove_runtime::mock::MockRuntime::new().with_memory_mib(1024),
    )
    .await;
    let r = h
        .post(
            "/v1/sandboxes",
            &h.alice,
            json!({"shape":"s-4vcpu-4gb","host_id":"local"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.headers["retry-after"], "5");
    assert_eq!(r.json()["status"], "error");
    assert_eq!(r.json()["code"], 503);
}

#[tokio::test]
async fn names_are_unique_per_user_among_live_sandboxes() {
    let h = harness().await;
    let first = h
        .create(&h.alice, json!({"shape":"s-1vcpu-256mb","name":"dup"}))
        .await;
    let r = h
        .post(
            "/v1/sandboxes",
            &h.alice,
            json!({"shape":"s-1vcpu-256mb","name":"dup"}),
        )
        .await;
    assert_eq!(r.fail_code(409), "name_taken");
    // Another user may use it.
    h.create(&h.bob, json!({"shape":"s-1vcpu-256mb","name":"dup"}))
        .await;
    // After destroy the name is free again.
    let id = first["id"].as_str().unwrap();
    h.call(
        Method::DELETE,
        &format!("/v1/sandboxes/{id}"),
        Some(&h.alice),
        None,
    )
    .await;
    h.create(&h.alice, json!({"shape":"s-1vcpu-256mb","name":"dup"}))
        .await;
}

#[tokio::test]
async fn failed_create_leaves_failed_row_and_nothing_on_host() {
    let h = harness().await;
    let id = cove_api::ids::SandboxId::generate();
    h.mock.fail_next_create(RuntimeError::Failed {
        id,
        op: "start",
        message: "runc exploded".into(),
    });
    let r = h
        .post(
            "/v1/sandboxes",
            &h.alice,
            json!({"shape":"s-1vcpu-256mb","name":"doomed"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.json()["code"], 500);
    assert!(
        !String::from_utf8_lossy(&r.body).contains("runc exploded"),
        "detail stays in the row"
    );
    let list = h.get("/v1/sandboxes?status=failed", &h.alice).await.data();
    assert_eq!(list["pagination"]["total"], 1);
    let row = &list["data"][0];
    assert_eq!(row["status"], "failed");
    assert!(row["failure_reason"]
        .as_str()
        .unwrap()
        .contains("runc exploded"));
    assert!(row.get("ip").is_none());
    let sid = cove_api::ids::SandboxId::parse(row["id"].as_str().unwrap()).unwrap();
    assert!(
        h.mock.destroyed().contains(&sid),
        "rollback asked the runtime to clean up"
    );
    assert!(!h.mock.contains(&sid));
    // The name is free again.
    h.create(&h.alice, json!({"shape":"s-1vcpu-256mb","name":"doomed"}))
        .await;
}

#[tokio::test]
async fn runtime_out_of_capacity_is_503() {
    let h = harness().await;
    h.mock
        .fail_next_create(RuntimeError::NoCapacity("no memory".into()));
    let r = h
        .post("/v1/sandboxes", &h.alice, json!({"shape":"s-1vcpu-256mb"}))
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn other_users_sandbox_is_404_everywhere() {
    let h = harness().await;
    let sb = h.create(&h.alice, json!({"shape":"s-1vcpu-256mb"})).await;
    let id = sb["id"].as_str().unwrap();
    let ip = sb["ip"].as_str().unwrap();
    assert_eq!(
        h.get(&format!("/v1/sandboxes/{id}"), &h.bob)
            .await
            .fail_code(404),
        "not_found"
    );
    assert_eq!(
        h.get(&format!("/v1/sandboxes/by-ip/{ip}"), &h.bob)
            .await
            .fail_code(404),
        "not_found"
    );
    let patch = h
        .call(
            Method::PATCH,
            &format!("/v1/sandboxes/{id}"),
            Some(&h.bob),
            Some(json!({"ingress_enabled":true})),
        )
        .await;
    assert_eq!(patch.fail_code(404), "not_found");
    let del = h
        .call(
            Method::DELETE,
            &format!("/v1/sandboxes/{id}"),
            Some(&h.bob),
            None,
        )
        .await;
    assert_eq!(del.fail_code(404), "not_found");
    let exec = h
        .post(
            &format!("/v1/sandboxes/{id}/exec"),
            &h.bob,
            json!({"cmd":"true"}),
        )
        .await;
    assert_eq!(exec.fail_code(404), "not_found");
    let file = h
        .get(
            &format!("/v1/sandboxes/{id}/files?path=/etc/hostname"),
            &h.bob,
        )
        .await;
    assert_eq!(file.fail_code(404), "not_found");
    assert_eq!(
        h.get("/v1/sandboxes", &h.bob).await.data()["pagination"]["total"],
        0
    );
    assert_eq!(
        h.get(&format!("/v1/sandboxes/{id}"), &h.alice).await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.get("/v1/sandboxes/sb_not-an-id", &h.alice)
            .await
            .fail_code(404),
        "not_found"
    );
}

#[tokio::test]
async fn list_paginates_with_totals_and_filters() {
    let h = harness().await;
    for i in 0..5 {
        h.create(
            &h.alice,
            json!({"shape":"s-1vcpu-256mb","name":format!("n{i}")}),
        )
        .await;
    }
    let page = h
        .get("/v1/sandboxes?limit=2&offset=1", &h.alice)
        .await
        .data();
    assert_eq!(
        page["pagination"],
        json!({"total":5,"limit":2,"offset":1,"count":2})
    );
    assert_eq!(page["data"][0]["name"], "n1");
    let clamped = h.get("/v1/sandboxes?limit=100000", &h.alice).await.data();
    assert_eq!(clamped["pagination"]["limit"], 500);
    assert_eq!(clamped["pagination"]["count"], 5);
    let default = h.get("/v1/sandboxes", &h.alice).await.data();
    assert_eq!(default["pagination"]["limit"], 50);
    let running = h
        .get("/v1/sandboxes?status=running&limit=500&offset=0", &h.alice)
        .await
        .data();
    assert_eq!(running["pagination"]["total"], 5);
    let destroyed = h
        .get("/v1/sandboxes?offset=0&status=destroyed", &h.alice)
        .await
        .data();
    assert_eq!(destroyed["pagination"]["total"], 0);
    assert_eq!(
        h.get("/v1/sandboxes?status=zombie", &h.alice)
            .await
            .fail_code(400),
        "validation_failed"
    );
    assert_eq!(
        h.get("/v1/sandboxes?limit=-1", &h.alice)
            .await
            .fail_code(400),
        "invalid_request"
    );
}

#[tokio::test]
async fn patch_stores_and_returns_settings() {
    let h = harness().await;
    let sb = h
        .create(
            &h.alice,
            json!({"shape":"s-1vcpu-256mb","auto_pause_after_seconds":600}),
        )
        .await;
    assert_eq!(sb["auto_pause_after_seconds"], 600);
    let uri = format!("/v1/sandboxes/{}", sb["id"].as_str().unwrap());
    let patch = |body| h.call(Method::PATCH, &uri, Some(&h.alice), Some(body));
    let v = patch(json!({"ingress_enabled": true})).await.data();
    assert_eq!(v["ingress_enabled"], true);
    assert_eq!(v["auto_pause_after_seconds"], 600);
    let v = patch(json!({"auto_pause_after_seconds": 1800}))
        .await
        .data();
    assert_eq!(v["auto_pause_after_seconds"], 1800);
    let v = patch(json!({"disable_auto_pause": true})).await.data();
    assert!(
        v.get("auto_pause_after_seconds").is_none(),
        "absent when disabled"
    );
    assert_eq!(
        patch(json!({"auto_pause_after_seconds": 30}))
            .await
            .fail_code(400),
        "validation_failed"
    );
    let v = h.get(&uri, &h.alice).await.data();
    assert_eq!(v["ingress_enabled"], true);
    assert!(v.get("auto_pause_after_seconds").is_none());
    assert!(
        v.get("ingress_url_template").is_none(),
        "no ingress domain configured"
    );
}

#[tokio::test]
async fn ingress_template_follows_patch_when_domain_is_known() {
    let config = cove_server::AppConfig {
        ingress_domain: Some("sb.example.test".into()),
        ..Default::default()
    };
    let h = common::harness_with(config, cove_runtime::mock::MockRuntime::new()).await;
    let sb = h.create(&h.alice, json!({"shape":"s-1vcpu-256mb"})).await;
    let id = sb["id"].as_str().unwrap();
    let uri = format!("/v1/sandboxes/{id}");
    let on = h
        .call(
            Method::PATCH,
            &uri,
            Some(&h.alice),
            Some(json!({"ingress_enabled": true})),
        )
        .await
        .data();
    assert_eq!(
        on["ingress_url_template"],
        format!("https://{id}-<port>.sb.example.test")
    );
    let off = h
        .call(
            Method::PATCH,
            &uri,
            Some(&h.alice),
            Some(json!({"ingress_enabled": false})),
        )
        .await
        .data();
    assert!(off.get("ingress_url_template").is_none());
}

#[tokio::test]
async fn destroy_is_idempotent_and_row_stays_readable() {
    let h = harness().await;
    let sb = h.create(&h.alice, json!({"shape":"s-1vcpu-256mb"})).await;
    let id = sb["id"].as_str().unwrap();
    let sid = cove_api::ids::SandboxId::parse(id).unwrap();
    let uri = format!("/v1/sandboxes/{id}");
    let first = h
        .call(Method::DELETE, &uri, Some(&h.alice), None)
        .await
        .data();
    assert_eq!(first, json!({"id": id, "status": "destroyed"}));
    assert!(!h.mock.contains(&sid));
    let again = h
        .call(Method::DELETE, &uri, Some(&h.alice), None)
        .await
        .data();
    assert_eq!(again, json!({"id": id, "status": "destroyed"}));
    let got = h.get(&uri, &h.alice).await.data();
    assert_eq!(got["status"], "destroyed");
    assert!(got["destroyed_at"].is_string());
    assert!(got.get("ip").is_none());
    let exec = h
        .post(&format!("{uri}/exec"), &h.alice, json!({"cmd":"true"}))
        .await;
    assert_eq!(exec.fail_code(409), "invalid_state");
    let patch = h
        .call(
            Method::PATCH,
            &uri,
            Some(&h.alice),
            Some(json!({"ingress_enabled":true})),
        )
        .await;
    assert_eq!(patch.fail_code(409), "invalid_state");
    let who = h.get("/v1/whoami", &h.alice).await.data();
    assert_eq!(who["stats"]["total"], 0);
}

#[tokio::test]
async fn delete_while_another_worker_holds_the_sandbox_does_not_race() {
    let h = harness().await;
    let sb = h.create(&h.alice, json!({"shape":"s-1vcpu-256mb"})).await;
    let id = cove_api::ids::SandboxId::parse(sb["id"].as_str().unwrap()).unwrap();
    let busy = h.state.inflight.try_enter(&id).unwrap();
    let r = h
        .call(
            Method::DELETE,
            &format!("/v1/sandboxes/{id}"),
            Some(&h.alice),
            None,
        )
        .await;
    assert_eq!(r.data()["status"], "destroying");
    assert!(h.mock.contains(&id), "the busy worker owns the sandbox");
    drop(busy);
    let r = h
        .call(
            Method::DELETE,
            &format!("/v1/sandboxes/{id}"),
            Some(&h.alice),
            None,
        )
        .await;
    assert_eq!(r.data()["status"], "destroyed");
    assert!(!h.mock.contains(&id));
}

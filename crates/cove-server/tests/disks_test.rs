//! Disks and attachments over `app(state)` with the mock runtime and the
//! recording mounter: validation, idempotent registration, probe failures,
//! isolation, attach at create and live, detach, remount, delete rules,
//! and that credentials never come back. The real mounts (bucketfs on a
//! real S3 server, real sandboxes) are tested in `crates/cove/tests`.

mod common;

use axum::http::{Method, StatusCode};
use cove_api::ids::SandboxId;
use cove_runtime::RuntimeError;
use cove_server::mounts::MountError;
use serde_json::{json, Value};

use common::{harness, Harness};

const SECRET: &str = "wJalrXUtnFEMI-super-secret-key";

fn disk_body(name: &str) -> Value {
    json!({
        "name": name, "kind": "s3",
        "config": {"bucket": "my-bucket", "endpoint": "http://127.0.0.1:3900", "region": "garage", "use_path_style": true},
        "credentials": {"access_key": "GKACCESSKEY1", "secret_key": SECRET}
    })
}

async fn make_disk(h: &Harness, key: &str, name: &str) -> Value {
    let r = h.post("/v1/disks", key, disk_body(name)).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    r.data()
}

fn no_secret(v: &Value) {
    let text = v.to_string();
    assert!(
        !text.contains(SECRET) && !text.contains("GKACCESSKEY1"),
        "{text}"
    );
}

#[tokio::test]
async fn register_get_list_and_never_return_credentials() {
    let h = harness().await;
    let d = make_disk(&h, &h.alice, "data").await;
    assert!(d["id"].as_str().unwrap().starts_with("disk_"));
    assert_eq!(d["kind"], "s3");
    assert_eq!(d["config"]["bucket"], "my-bucket");
    assert!(d["config"].is_object());
    assert!(d.get("credentials").is_none());
    no_secret(&d);
    let id = d["id"].as_str().unwrap();
    for path in [format!("/v1/disks/{id}"), "/v1/disks/data".to_owned()] {
        let got = h.get(&path, &h.alice).await.data();
        assert_eq!(got["id"], d["id"]);
        no_secret(&got);
    }
    let list = h.get("/v1/disks?limit=10", &h.alice).await.data();
    assert_eq!(list["pagination"]["total"], 1);
    assert_eq!(list["data"][0]["id"], d["id"]);
    no_secret(&list);
}

#[tokio::test]
async fn same_name_same_config_is_idempotent_other_config_is_409() {
    let h = harness().await;
    let a = make_disk(&h, &h.alice, "data").await;
    let b = make_disk(&h, &h.alice, "data").await;
    assert_eq!(a["id"], b["id"]);
    let mut other = disk_body("data");
    other["config"]["bucket"] = json!("another-bucket");
    let r = h.post("/v1/disks", &h.alice, other).await;
    assert_eq!(r.fail_code(409), "name_taken");
    // Bob's namespace is his own.
    let c = make_disk(&h, &h.bob, "data").await;
    assert_ne!(a["id"], c["id"]);
}

#[tokio::test]
async fn invalid_bodies_are_400_with_codes() {
    let h = harness().await;
    let cases: Vec<(Value, &str)> = vec![
        (
            json!({"name": "Bad_Name", "kind": "s3", "config": {"bucket": "bb1", "endpoint": "http://h"}}),
            "validation_failed",
        ),
        (
            json!({"name": "d", "kind": "gcs", "config": {"bucket": "bb1", "endpoint": "http://h"}}),
            "validation_failed",
        ),
        (json!({"name": "d", "kind": "s3"}), "validation_failed"),
        (
            json!({"name": "d", "kind": "s3", "config": {"bucket": "bb1", "endpoint": "htp:/typo"}}),
            "invalid_endpoint",
        ),
        (
            json!({"name": "d", "kind": "s3", "config": {"bucket": "bb1", "endpoint": "http://h"}, "credentials": {"access_key": "", "secret_key": "x"}}),
            "validation_failed",
        ),
        (json!({"name": 5}), "invalid_request"),
    ];
    for (body, code) in cases {
        let r = h.post("/v1/disks", &h.alice, body.clone()).await;
        assert_eq!(r.fail_code(400), code, "{body}");
    }
    assert_eq!(
        h.get("/v1/disks", &h.alice).await.data()["pagination"]["total"],
        0
    );
}

#[tokio::test]
async fn a_failed_probe_stores_nothing_and_says_which_failure() {
    let h = harness().await;
    let cases = [
        (
            MountError::Unreachable {
                message: "connection refused".into(),
            },
            "endpoint_unreachable",
        ),
        (
            MountError::BucketNotFound {
                bucket: "my-bucket".into(),
            },
            "bucket_not_found",
        ),
        (
            MountError::AccessDenied {
                code: "InvalidAccessKeyId".into(),
            },
            "access_denied",
        ),
        (MountError::Timeout { secs: 5 }, "endpoint_timeout"),
    ];
    for (err, code) in cases {
        h.mounter.fail_probes(Some(err));
        let r = h.post("/v1/disks", &h.alice, disk_body("data")).await;
        assert_eq!(r.fail_code(400), code);
        no_secret(&r.json());
    }
    h.mounter.fail_probes(None);
    assert_eq!(
        h.get("/v1/disks", &h.alice).await.data()["pagination"]["total"],
        0
    );
}

#[tokio::test]
async fn another_users_disk_is_404_everywhere() {
    let h = harness().await;
    let d = make_disk(&h, &h.alice, "data").await;
    let id = d["id"].as_str().unwrap();
    assert_eq!(
        h.get(&format!("/v1/disks/{id}"), &h.bob)
            .await
            .fail_code(404),
        "not_found"
    );
    let r = h
        .call(
            Method::DELETE,
            &format!("/v1/disks/{id}"),
            Some(&h.bob),
            None,
        )
        .await;
    assert_eq!(r.fail_code(404), "not_found");
    let sb = h.create(&h.bob, json!({"shape": "s-1vcpu-256mb"})).await;
    let sid = sb["id"].as_str().unwrap();
    let r = h
        .post(
            &format!("/v1/sandboxes/{sid}/disks"),
            &h.bob,
            json!({"disk_id": id, "mount_path": "/data"}),
        )
        .await;
    assert_eq!(r.fail_code(404), "not_found");
    let r = h
        .post(
            "/v1/sandboxes",
            &h.bob,
            json!({"shape": "s-1vcpu-256mb", "disks": [{"disk_id": id, "mount_path": "/d"}]}),
        )
        .await;
    assert_eq!(r.fail_code(404), "not_found");
}

fn sandbox_id(v: &Value) -> SandboxId {
    SandboxId::parse(v["id"].as_str().unwrap()).unwrap()
}

#[tokio::test]
async fn create_with_disks_binds_them_from_the_start() {
    let h = harness().await;
    let d = make_disk(&h, &h.alice, "data").await;
    let sb = h
        .create(
            &h.alice,
            json!({"shape": "s-1vcpu-256mb", "disks": [
                {"disk_id": "data", "mount_path": "/mnt/data/", "sub_path": "proj//a/"},
                {"disk_id": d["id"], "mount_path": "/ro", "read_only": true}
            ]}),
        )
        .await;
    let id = sandbox_id(&sb);
    let spec = h.mock.spec(&id).unwrap();
    let mut paths: Vec<_> = spec
        .mounts
        .iter()
        .map(|m| (m.container_path.clone(), m.read_only))
        .collect();
    paths.sort();
    assert_eq!(
        paths,
        vec![("/mnt/data".to_owned(), false), ("/ro".to_owned(), true)]
    );
    let mounts = h.mounter.mounts();
    let data = mounts
        .iter()
        .find(|m| m.request.mount_path == "/mnt/data")
        .unwrap();
    assert_eq!(data.request.sub_path.as_deref(), Some("proj/a"));
    assert_eq!(data.request.owner, (100_000, 100_000));
    let list = h
        .get(&format!("/v1/sandboxes/{id}/disks"), &h.alice)
        .await
        .data();
    assert_eq!(list["pagination"]["total"], 2);
    for item in list["data"].as_array().unwrap() {
        assert_eq!(item["mount_status"], "mounted");
        assert_eq!(item["kind"], "s3");
    }
    no_secret(&list);
}

#[tokio::test]
async fn create_whose_mount_fails_leaves_nothing() {
    let h = harness().await;
    make_disk(&h, &h.alice, "data").await;
    h.mounter.fail_probes(Some(MountError::Unreachable {
        message: "connection refused".into(),
    }));
    let r = h
        .post("/v1/sandboxes", &h.alice, json!({"shape": "s-1vcpu-256mb", "name": "w", "disks": [{"disk_id": "data", "mount_path": "/d"}]}))
        .await;
    assert_eq!(r.fail_code(400), "endpoint_unreachable");
    assert_eq!(h.mock.creates(), 0);
    assert!(h.mounter.mounts().is_empty());
    let list = h.get("/v1/sandboxes?status=failed", &h.alice).await.data();
    assert_eq!(list["pagination"]["total"], 1);
    assert_eq!(list["data"][0]["name"], "w");
}

#[tokio::test]
async fn create_whose_runtime_fails_unmounts_its_disks() {
    let h = harness().await;
    make_disk(&h, &h.alice, "data").await;
    h.mock.fail_next_create(RuntimeError::NoSpace);
    let r = h
        .post(
            "/v1/sandboxes",
            &h.alice,
            json!({"shape": "s-1vcpu-256mb", "disks": [{"disk_id": "data", "mount_path": "/d"}]}),
        )
        .await;
    assert!(r.status.is_server_error() || r.status.is_client_error());
    assert!(h.mounter.mounts().is_empty());
}

#[tokio::test]
async fn bad_mount_paths_and_overlaps_are_refused() {
    let h = harness().await;
    make_disk(&h, &h.alice, "data").await;
    let sb = h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await;
    let sid = sb["id"].as_str().unwrap();
    let uri = format!("/v1/sandboxes/{sid}/disks");
    for bad in ["relative", "/", "/proc/x", "/sys", "/dev/x", "/a/../b"] {
        let r = h
            .post(
                &uri,
                &h.alice,
                json!({"disk_id": "data", "mount_path": bad}),
            )
            .await;
        assert_eq!(r.fail_code(400), "invalid_path", "{bad}");
    }
    for bad in ["/abs", "a/../b", ".."] {
        let r = h
            .post(
                &uri,
                &h.alice,
                json!({"disk_id": "data", "mount_path": "/m", "sub_path": bad}),
            )
            .await;
        assert_eq!(r.fail_code(400), "invalid_path", "{bad}");
    }
    let ok = h
        .post(
            &uri,
            &h.alice,
            json!({"disk_id": "data", "mount_path": "/mnt/a"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    for overlap in ["/mnt/a", "/mnt", "/mnt/a/b"] {
        let r = h
            .post(
                &uri,
                &h.alice,
                json!({"disk_id": "data", "mount_path": overlap}),
            )
            .await;
        assert_eq!(r.fail_code(409), "mount_path_in_use", "{overlap}");
    }
    let r = h
        .post(
            "/v1/sandboxes",
            &h.alice,
            json!({"shape": "s-1vcpu-256mb", "disks": [
            {"disk_id": "data", "mount_path": "/x"}, {"disk_id": "data", "mount_path": "/x/y"}]}),
        )
        .await;
    assert_eq!(r.fail_code(409), "mount_path_in_use");
}

#[tokio::test]
async fn live_attach_answers_both_sdks_and_is_visible_inside() {
    let h = harness().await;
    let d = make_disk(&h, &h.alice, "data").await;
    let sb = h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await;
    let id = sandbox_id(&sb);
    let r = h
        .post(
            &format!("/v1/sandboxes/{id}/disks"),
            &h.alice,
            json!({"disk_id": "data", "mount_path": "/data"}),
        )
        .await
        .data();
    assert_eq!(r["ok"], true);
    assert_eq!(r["id"], id.as_str());
    assert_eq!(r["disk_id"], d["id"]);
    let inside = h.mock.mounts(&id);
    assert_eq!(inside.len(), 1);
    assert_eq!(inside[0].container_path, "/data");
    // The same disk at a second path of the same sandbox, and in another sandbox.
    let ok = h
        .post(
            &format!("/v1/sandboxes/{id}/disks"),
            &h.alice,
            json!({"disk_id": "data", "mount_path": "/data2"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    let sb2 = h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await;
    let ok = h
        .post(
            &format!("/v1/sandboxes/{}/disks", sb2["id"].as_str().unwrap()),
            &h.alice,
            json!({"disk_id": "data", "mount_path": "/data"}),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(h.mounter.mounts().len(), 3);
}

#[tokio::test]
async fn live_attach_whose_sandbox_mount_fails_unmounts_the_host_side() {
    let h = harness().await;
    make_disk(&h, &h.alice, "data").await;
    let sb = h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await;
    let id = sandbox_id(&sb);
    h.mock.stop(&id);
    let r = h
        .post(
            &format!("/v1/sandboxes/{id}/disks"),
            &h.alice,
            json!({"disk_id": "data", "mount_path": "/data"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert!(h.mounter.mounts().is_empty());
    let list = h
        .get(&format!("/v1/sandboxes/{id}/disks"), &h.alice)
        .await
        .data();
    assert_eq!(list["pagination"]["total"], 0);
}

#[tokio::test]
async fn detach_flushes_first_and_keeps_the_mount_when_that_fails() {
    let h = harness().await;
    let d = make_disk(&h, &h.alice, "data").await;
    let did = d["id"].as_str().unwrap();
    let sb = h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await;
    let id = sandbox_id(&sb);
    h.post(
        &format!("/v1/sandboxes/{id}/disks"),
        &h.alice,
        json!({"disk_id": "data", "mount_path": "/data"}),
    )
    .await
    .data();
    h.mounter.fail_flushes(Some(MountError::FlushFailed {
        files: 1,
        message: "connection refused".into(),
    }));
    let uri = format!("/v1/sandboxes/{id}/disks/{did}?mount_path=/data");
    let r = h.call(Method::DELETE, &uri, Some(&h.alice), None).await;
    assert_eq!(r.fail_code(409), "flush_failed");
    assert_eq!(h.mock.mounts(&id).len(), 1, "still mounted inside");
    assert_eq!(h.mounter.mounts().len(), 1, "still mounted on the host");
    h.mounter.fail_flushes(None);
    let r = h
        .call(Method::DELETE, &uri, Some(&h.alice), None)
        .await
        .data();
    assert_eq!(r["detached"], true);
    assert!(h.mock.mounts(&id).is_empty());
    assert!(h.mounter.mounts().is_empty());
    let r = h.call(Method::DELETE, &uri, Some(&h.alice), None).await;
    assert_eq!(r.fail_code(404), "not_found");
}

#[tokio::test]
async fn detach_without_mount_path_needs_a_unique_attachment() {
    let h = harness().await;
    let d = make_disk(&h, &h.alice, "data").await;
    let did = d["id"].as_str().unwrap();
    let sb = h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await;
    let id = sandbox_id(&sb);
    for p in ["/a", "/b"] {
        h.post(
            &format!("/v1/sandboxes/{id}/disks"),
            &h.alice,
            json!({"disk_id": "data", "mount_path": p}),
        )
        .await
        .data();
    }
    let r = h
        .call(
            Method::DELETE,
            &format!("/v1/sandboxes/{id}/disks/{did}?mount_path="),
            Some(&h.alice),
            None,
        )
        .await;
    assert_eq!(r.fail_code(400), "validation_failed");
    // Detach matches the raw disk id, as CreateOS does: a name is not attached.
    let r = h
        .call(
            Method::DELETE,
            &format!("/v1/sandboxes/{id}/disks/data?mount_path=/a"),
            Some(&h.alice),
            None,
        )
        .await;
    assert_eq!(r.fail_code(404), "not_found");
    let r = h
        .call(
            Method::DELETE,
            &format!("/v1/sandboxes/{id}/disks/{did}?mount_path=/a"),
            Some(&h.alice),
            None,
        )
        .await;
    assert_eq!(r.data()["detached"], true);
    let r = h
        .call(
            Method::DELETE,
            &format!("/v1/sandboxes/{id}/disks/{did}?mount_path="),
            Some(&h.alice),
            None,
        )
        .await;
    assert_eq!(r.data()["detached"], true);
}

#[tokio::test]
async fn patch_remounts_with_new_options() {
    let h = harness().await;
    let d = make_disk(&h, &h.alice, "data").await;
    let did = d["id"].as_str().unwrap();
    let sb = h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await;
    let id = sandbox_id(&sb);
    h.post(
        &format!("/v1/sandboxes/{id}/disks"),
        &h.alice,
        json!({"disk_id": "data", "mount_path": "/data"}),
    )
    .await
    .data();
    let r = h
        .call(
            Method::PATCH,
            &format!("/v1/sandboxes/{id}/disks/{did}?mount_path=/data"),
            Some(&h.alice),
            Some(json!({"read_only": true, "sub_path": "x/y"})),
        )
        .await
        .data();
    assert_eq!(r["read_only"], true);
    assert_eq!(r["sub_path"], "x/y");
    let m = &h.mounter.mounts()[0];
    assert!(m.request.read_only);
    assert_eq!(m.request.sub_path.as_deref(), Some("x/y"));
    assert!(h.mock.mounts(&id)[0].read_only);
}

#[tokio::test]
async fn delete_is_refused_while_attached_and_allowed_after_destroy() {
    let h = harness().await;
    make_disk(&h, &h.alice, "data").await;
    let sb = h
        .create(
            &h.alice,
            json!({"shape": "s-1vcpu-256mb", "disks": [{"disk_id": "data", "mount_path": "/d"}]}),
        )
        .await;
    let id = sandbox_id(&sb);
    let r = h
        .call(Method::DELETE, "/v1/disks/data", Some(&h.alice), None)
        .await;
    assert_eq!(r.fail_code(409), "disk_in_use");
    let r = h
        .call(
            Method::DELETE,
            &format!("/v1/sandboxes/{id}"),
            Some(&h.alice),
            None,
        )
        .await;
    assert_eq!(r.data()["status"], "destroyed");
    assert!(h.mounter.mounts().is_empty(), "destroy unmounts the disks");
    let r = h
        .call(Method::DELETE, "/v1/disks/data", Some(&h.alice), None)
        .await;
    assert_eq!(r.data()["deleted"], true);
    assert_eq!(
        h.get("/v1/disks/data", &h.alice).await.fail_code(404),
        "not_found"
    );
}

#[tokio::test]
async fn destroy_whose_flush_fails_stays_destroying() {
    let h = harness().await;
    make_disk(&h, &h.alice, "data").await;
    let sb = h
        .create(
            &h.alice,
            json!({"shape": "s-1vcpu-256mb", "disks": [{"disk_id": "data", "mount_path": "/d"}]}),
        )
        .await;
    let id = sandbox_id(&sb);
    h.mounter.fail_flushes(Some(MountError::FlushFailed {
        files: 1,
        message: "refused".into(),
    }));
    let r = h
        .call(
            Method::DELETE,
            &format!("/v1/sandboxes/{id}"),
            Some(&h.alice),
            None,
        )
        .await;
    assert_eq!(r.data()["status"], "destroying");
    assert_eq!(h.mounter.mounts().len(), 1, "the data's mount stays");
    h.mounter.fail_flushes(None);
    let report = cove_server::jobs::reconciler::reconcile_once(&h.state)
        .await
        .unwrap();
    assert_eq!(report.destroyed, vec![id.clone()]);
    assert!(h.mounter.mounts().is_empty());
}

#[tokio::test]
async fn rotation_probes_the_new_keys_and_reaches_running_mounts() {
    let h = harness().await;
    let d = make_disk(&h, &h.alice, "data").await;
    let r = h
        .call(
            Method::PATCH,
            "/v1/disks/data",
            Some(&h.alice),
            Some(json!({"credentials": {"access_key": "", "secret_key": ""}})),
        )
        .await;
    assert_eq!(r.fail_code(400), "validation_failed");
    h.mounter.fail_probes(Some(MountError::AccessDenied {
        code: "InvalidAccessKeyId".into(),
    }));
    let r = h
        .call(
            Method::PATCH,
            "/v1/disks/data",
            Some(&h.alice),
            Some(json!({"credentials": {"access_key": "NEW", "secret_key": "wrong"}})),
        )
        .await;
    assert_eq!(r.fail_code(400), "access_denied");
    assert!(h.mounter.rotations().is_empty());
    h.mounter.fail_probes(None);
    let r = h
        .call(
            Method::PATCH,
            "/v1/disks/data",
            Some(&h.alice),
            Some(
                json!({"credentials": {"access_key": "NEWKEY", "secret_key": "new-secret-value"}}),
            ),
        )
        .await
        .data();
    assert_eq!(r["id"], d["id"]);
    assert!(!r.to_string().contains("new-secret-value"));
    let rot = h.mounter.rotations();
    assert_eq!(rot.len(), 1);
    assert_eq!(
        rot[0].1.as_ref().unwrap().secret_key.expose(),
        "new-secret-value"
    );
}

#[tokio::test]
async fn attach_to_a_sandbox_that_is_not_running_is_409() {
    let h = harness().await;
    make_disk(&h, &h.alice, "data").await;
    let sb = h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await;
    let id = sandbox_id(&sb);
    h.call(
        Method::DELETE,
        &format!("/v1/sandboxes/{id}"),
        Some(&h.alice),
        None,
    )
    .await
    .data();
    let r = h
        .post(
            &format!("/v1/sandboxes/{id}/disks"),
            &h.alice,
            json!({"disk_id": "data", "mount_path": "/data"}),
        )
        .await;
    assert_eq!(r.fail_code(409), "invalid_state");
}

//! Pause, resume, fork, resize and ssh-pubkeys over `app(state)` with the
//! mock runtime and the recording mounter: status rules, rollbacks, retries,
//! the disks across a checkpoint, and the reconciler after a crash. The
//! real checkpoints (CRIU) are tested in cove-runtime and crates/cove.

mod common;

use axum::http::{Method, StatusCode};
use cove_api::ids::SandboxId;
use cove_runtime::{RuntimeError, RuntimeState};
use cove_server::mounts::MountError;
use serde_json::{json, Value};

use common::{harness, Harness};

fn sid(v: &Value) -> SandboxId {
    SandboxId::parse(v["id"].as_str().unwrap()).unwrap()
}

async fn post(h: &Harness, uri: &str, body: Value) -> common::Reply {
    h.post(uri, &h.alice, body).await
}

#[tokio::test]
async fn pause_and_resume_move_through_the_statuses() {
    let h = harness().await;
    let sb = h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await;
    let id = sid(&sb);
    let paused = post(&h, &format!("/v1/sandboxes/{id}/pause"), json!({}))
        .await
        .data();
    assert_eq!(paused["status"], "paused");
    assert!(paused["paused_at"].is_string());
    assert_eq!(h.mock.state(&id), Some(RuntimeState::Checkpointed));
    // Paused: no exec, no second pause, no detach target.
    let r = post(
        &h,
        &format!("/v1/sandboxes/{id}/exec"),
        json!({"cmd": "true"}),
    )
    .await;
    assert_eq!(r.fail_code(409), "invalid_state");
    let r = post(&h, &format!("/v1/sandboxes/{id}/pause"), json!({})).await;
    assert_eq!(r.fail_code(409), "invalid_state");
    let list = h.get("/v1/sandboxes?status=paused", &h.alice).await.data();
    assert_eq!(list["pagination"]["total"], 1);
    let resumed = post(&h, &format!("/v1/sandboxes/{id}/resume"), json!({}))
        .await
        .data();
    assert_eq!(resumed["status"], "running");
    assert!(resumed["last_resumed_at"].is_string());
    assert_eq!(resumed["ip"], sb["ip"]);
    let r = post(&h, &format!("/v1/sandboxes/{id}/resume"), json!({})).await;
    assert_eq!(r.fail_code(409), "invalid_state");
    let ok = post(
        &h,
        &format!("/v1/sandboxes/{id}/exec"),
        json!({"cmd": "true"}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn a_failed_checkpoint_leaves_the_sandbox_running() {
    let h = harness().await;
    let sb = h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await;
    let id = sid(&sb);
    h.mock.fail_next_checkpoint(RuntimeError::Failed {
        id: id.clone(),
        op: "checkpoint",
        message: "criu dump failed".into(),
    });
    let r = post(&h, &format!("/v1/sandboxes/{id}/pause"), json!({})).await;
    assert_eq!(r.fail_code(409), "pause_failed");
    assert_eq!(
        h.get(&format!("/v1/sandboxes/{id}"), &h.alice).await.data()["status"],
        "running"
    );
    assert_eq!(h.mock.state(&id), Some(RuntimeState::Running));
}

#[tokio::test]
async fn resume_retries_then_parks_in_error_and_a_later_resume_works() {
    let h = harness().await;
    let sb = h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await;
    let id = sid(&sb);
    post(&h, &format!("/v1/sandboxes/{id}/pause"), json!({}))
        .await
        .data();
    h.mock.fail_restores(3);
    let r = post(&h, &format!("/v1/sandboxes/{id}/resume"), json!({})).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.json()["message"].as_str().unwrap().contains("resume"),
        "{}",
        r.json()
    );
    let view = h.get(&format!("/v1/sandboxes/{id}"), &h.alice).await.data();
    assert_eq!(view["status"], "error");
    assert_eq!(
        h.mock.state(&id),
        Some(RuntimeState::Checkpointed),
        "checkpoint kept"
    );
    // Two failures are within the retries.
    h.mock.fail_restores(2);
    let resumed = post(&h, &format!("/v1/sandboxes/{id}/resume"), json!({}))
        .await
        .data();
    assert_eq!(resumed["status"], "running");
}

#[tokio::test]
async fn fork_makes_a_new_sandbox_from_a_paused_one() {
    let h = harness().await;
    let sb = h
        .create(
            &h.alice,
            json!({"shape": "s-1vcpu-256mb", "envs": {"A": "1"}, "egress": ["pypi.org"]}),
        )
        .await;
    let id = sid(&sb);
    let r = post(&h, &format!("/v1/sandboxes/{id}/fork"), json!({})).await;
    assert_eq!(
        r.fail_code(409),
        "invalid_state",
        "a running source cannot be forked"
    );
    post(&h, &format!("/v1/sandboxes/{id}/pause"), json!({}))
        .await
        .data();
    let f1 = post(&h, &format!("/v1/sandboxes/{id}/fork"), json!({}))
        .await
        .data();
    let f2 = post(
        &h,
        &format!("/v1/sandboxes/{id}/fork"),
        json!({"envs": {"B": "2"}, "egress": [], "start_paused": true}),
    )
    .await
    .data();
    assert_eq!(f1["status"], "running");
    assert_eq!(f1["forked_from"], id.as_str());
    assert_ne!(f1["id"], sb["id"]);
    assert_ne!(f1["name"], sb["name"]);
    assert_ne!(f1["ip"], sb["ip"]);
    assert_eq!(f1["envs"], json!(["A"]));
    assert_eq!(f1["egress"], json!(["pypi.org"]));
    assert_eq!(f2["status"], "paused");
    assert_eq!(f2["envs"], json!(["B"]));
    assert_eq!(h.mock.state(&sid(&f2)), Some(RuntimeState::Checkpointed));
    let src = h.get(&format!("/v1/sandboxes/{id}"), &h.alice).await.data();
    assert_eq!(src["status"], "paused", "the source stays paused");
    let r = post(
        &h,
        &format!("/v1/sandboxes/{}/exec", f1["id"].as_str().unwrap()),
        json!({"cmd": "env"}),
    )
    .await
    .data();
    assert!(r["result"]["stdout"].as_str().unwrap().contains("A=1"));
}

#[tokio::test]
async fn a_failed_fork_leaves_a_failed_row_and_the_source_paused() {
    let h = harness().await;
    let sb = h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await;
    let id = sid(&sb);
    post(&h, &format!("/v1/sandboxes/{id}/pause"), json!({}))
        .await
        .data();
    h.mock.fail_restores(1);
    let r = post(&h, &format!("/v1/sandboxes/{id}/fork"), json!({})).await;
    assert!(r.status.is_server_error(), "{}", r.status);
    let failed = h.get("/v1/sandboxes?status=failed", &h.alice).await.data();
    assert_eq!(failed["pagination"]["total"], 1);
    assert_eq!(failed["data"][0]["forked_from"], id.as_str());
    assert_eq!(
        h.get(&format!("/v1/sandboxes/{id}"), &h.alice).await.data()["status"],
        "paused"
    );
}

#[tokio::test]
async fn disks_cross_a_checkpoint_declared_ones_as_binds_live_ones_again_live() {
    let h = harness().await;
    let disk = json!({"name": "data", "kind": "s3", "config": {"bucket": "bkt", "endpoint": "http://127.0.0.1:9"}});
    post(&h, "/v1/disks", disk).await.data();
    let sb = h
        .create(&h.alice, json!({"shape": "s-1vcpu-256mb", "disks": [{"disk_id": "data", "mount_path": "/boot"}]}))
        .await;
    let id = sid(&sb);
    post(
        &h,
        &format!("/v1/sandboxes/{id}/disks"),
        json!({"disk_id": "data", "mount_path": "/live"}),
    )
    .await
    .data();
    // A pending write that cannot be uploaded: nothing happens.
    h.mounter.fail_flushes(Some(MountError::FlushFailed {
        files: 1,
        message: "refused".into(),
    }));
    let r = post(&h, &format!("/v1/sandboxes/{id}/pause"), json!({})).await;
    assert_eq!(r.fail_code(409), "flush_failed");
    assert_eq!(h.mock.mounts(&id).len(), 2);
    h.mounter.fail_flushes(None);
    post(&h, &format!("/v1/sandboxes/{id}/pause"), json!({}))
        .await
        .data();
    assert!(
        h.mounter.mounts().is_empty(),
        "nothing of a paused sandbox stays mounted on the host"
    );
    let list = h
        .get(&format!("/v1/sandboxes/{id}/disks"), &h.alice)
        .await
        .data();
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["mount_status"] == "pending"),
        "{list}"
    );
    post(&h, &format!("/v1/sandboxes/{id}/resume"), json!({}))
        .await
        .data();
    let binds: Vec<String> = h
        .mock
        .last_mounts()
        .into_iter()
        .map(|m| m.container_path)
        .collect();
    assert_eq!(
        binds,
        ["/boot"],
        "the disk attached at create is declared at restore"
    );
    let mut inside: Vec<String> = h
        .mock
        .mounts(&id)
        .into_iter()
        .map(|m| m.container_path)
        .collect();
    inside.sort();
    assert_eq!(
        inside,
        ["/boot", "/live"],
        "the live one went in again after the restore"
    );
    assert_eq!(h.mounter.mounts().len(), 2);
    // A fork gets the same disks, mounted for it.
    post(&h, &format!("/v1/sandboxes/{id}/pause"), json!({}))
        .await
        .data();
    let f = post(&h, &format!("/v1/sandboxes/{id}/fork"), json!({}))
        .await
        .data();
    let fl = h
        .get(
            &format!("/v1/sandboxes/{}/disks", f["id"].as_str().unwrap()),
            &h.alice,
        )
        .await
        .data();
    assert_eq!(fl["pagination"]["total"], 2);
    assert_eq!(
        h.mock.mounts(&sid(&f)).len(),
        2,
        "the fork has both disks inside"
    );
    assert!(h
        .mounter
        .mounts()
        .iter()
        .all(|m| m.request.sandbox_id == sid(&f)));
}

#[tokio::test]
async fn resize_grows_only_and_ssh_keys_are_deduplicated() {
    let h = harness().await;
    let sb = h
        .create(
            &h.alice,
            json!({"shape": "s-1vcpu-256mb", "ssh_pubkeys": ["ssh-ed25519 AAAA one"]}),
        )
        .await;
    let id = sid(&sb);
    let disk = sb["disk_mib"].as_u64().unwrap();
    for bad in [disk, disk - 1] {
        let r = post(
            &h,
            &format!("/v1/sandboxes/{id}/resize"),
            json!({"disk_mib": bad}),
        )
        .await;
        assert_eq!(r.fail_code(400), "validation_failed");
    }
    let r = post(
        &h,
        &format!("/v1/sandboxes/{id}/resize"),
        json!({"disk_mib": disk + 1024}),
    )
    .await
    .data();
    assert_eq!(r, json!({"id": id.as_str(), "disk_mib": disk + 1024}));
    assert_eq!(
        h.get(&format!("/v1/sandboxes/{id}"), &h.alice).await.data()["disk_mib"],
        disk + 1024
    );
    let r = post(
        &h,
        &format!("/v1/sandboxes/{id}/ssh-pubkeys"),
        json!({"keys": ["ssh-ed25519 AAAA one", "ssh-ed25519 BBBB two", "ssh-ed25519 BBBB two"]}),
    )
    .await
    .data();
    assert_eq!(r["count"], 2);
    let r = post(
        &h,
        &format!("/v1/sandboxes/{id}/ssh-pubkeys"),
        json!({"keys": [""]}),
    )
    .await;
    assert_eq!(r.fail_code(400), "validation_failed");
    let r = h
        .call(
            Method::POST,
            &format!("/v1/sandboxes/{id}/pause"),
            Some(&h.bob),
            None,
        )
        .await;
    assert_eq!(r.fail_code(404), "not_found", "another user's sandbox");
}

#[tokio::test]
async fn a_host_without_online_grow_resizes_a_running_sandbox_offline() {
    let h = harness().await;
    h.mock.refuse_online_grow();
    let sb = h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await;
    let id = sid(&sb);
    let disk = sb["disk_mib"].as_u64().unwrap();
    let r = post(
        &h,
        &format!("/v1/sandboxes/{id}/resize"),
        json!({"disk_mib": disk + 512}),
    )
    .await
    .data();
    assert_eq!(r["disk_mib"], disk + 512);
    assert_eq!(h.mock.grows(), (0, 1), "grown while checkpointed");
    assert_eq!(h.mock.state(&id), Some(RuntimeState::Running));
    let view = h.get(&format!("/v1/sandboxes/{id}"), &h.alice).await.data();
    assert_eq!(
        (view["status"].clone(), view["disk_mib"].clone()),
        (json!("running"), json!(disk + 512))
    );
}

#[tokio::test]
async fn auto_pause_leaves_a_sandbox_in_use_alone() {
    let h = harness().await;
    let sb = h
        .create(
            &h.alice,
            json!({"shape": "s-1vcpu-256mb", "auto_pause_after_seconds": 60}),
        )
        .await;
    let id = sid(&sb);
    post(
        &h,
        &format!("/v1/sandboxes/{id}/exec"),
        json!({"cmd": "true"}),
    )
    .await
    .data();
    let paused = cove_server::jobs::auto_pause::auto_pause_once(&h.state)
        .await
        .unwrap();
    assert!(paused.is_empty(), "used just now");
    let r = h
        .call(
            Method::PATCH,
            &format!("/v1/sandboxes/{id}"),
            Some(&h.alice),
            Some(json!({"auto_pause_after_seconds": 30})),
        )
        .await;
    assert_eq!(
        r.fail_code(400),
        "validation_failed",
        "below the minimum of 60 s"
    );
}

#[tokio::test]
async fn the_reconciler_settles_a_pause_interrupted_by_a_crash() {
    let h = harness().await;
    let sb = h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await;
    let id = sid(&sb);
    // As if the server died after the checkpoint, before the row said so.
    let mut row = h.state.store.get_sandbox(&id).await.unwrap().unwrap();
    row.status = cove_api::sandbox::SandboxStatus::Pausing;
    assert!(h
        .state
        .store
        .update_sandbox(&row, cove_api::sandbox::SandboxStatus::Running)
        .await
        .unwrap());
    cove_runtime::Runtime::checkpoint(h.mock.as_ref(), &id)
        .await
        .unwrap();
    let report = cove_server::jobs::reconciler::reconcile_once(&h.state)
        .await
        .unwrap();
    assert_eq!(report.settled, vec![id.clone()]);
    assert_eq!(
        h.get(&format!("/v1/sandboxes/{id}"), &h.alice).await.data()["status"],
        "paused"
    );
    let resumed = post(&h, &format!("/v1/sandboxes/{id}/resume"), json!({}))
        .await
        .data();
    assert_eq!(resumed["status"], "running");
}

#[tokio::test]
async fn self_requests_pause_and_delete_with_their_reason() {
    use cove_api::agent::{SelfAction, SelfRequest};
    let h = harness().await;
    let a = sid(&h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await);
    let b = sid(&h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await);
    h.mock.request_self(
        &a,
        SelfRequest {
            action: SelfAction::Pause,
            reason: Some("waiting for input".into()),
        },
    );
    h.mock.request_self(
        &b,
        SelfRequest {
            action: SelfAction::Delete,
            reason: None,
        },
    );
    let acted = cove_server::jobs::self_requests::self_requests_once(&h.state)
        .await
        .unwrap();
    assert_eq!(acted, 2);
    let va = h.get(&format!("/v1/sandboxes/{a}"), &h.alice).await.data();
    assert_eq!(va["status"], "paused");
    assert_eq!(va["status_reason"], "waiting for input");
    let vb = h.get(&format!("/v1/sandboxes/{b}"), &h.alice).await.data();
    assert_eq!(vb["status"], "destroyed");
    // Taken once: the next pass has nothing to do.
    assert_eq!(
        cove_server::jobs::self_requests::self_requests_once(&h.state)
            .await
            .unwrap(),
        0
    );
}

/// A crash in the middle of a fork: a fork the runtime finished becomes
/// `running`, a half-made one `failed` with its leftovers removed; the
/// source stays paused either way.
#[tokio::test]
async fn the_reconciler_settles_forks_interrupted_by_a_crash() {
    use cove_api::sandbox::SandboxStatus;
    let h = harness().await;
    let src = h.create(&h.alice, json!({"shape": "s-1vcpu-256mb"})).await;
    let src_id = sid(&src);
    post(&h, &format!("/v1/sandboxes/{src_id}/pause"), json!({}))
        .await
        .data();
    let row = h.state.store.get_sandbox(&src_id).await.unwrap().unwrap();
    let mut made = Vec::new();
    for (name, on_host) in [
        ("done-fork", RuntimeState::Running),
        ("half-fork", RuntimeState::Partial),
    ] {
        let mut fork = row.clone();
        fork.id = SandboxId::generate();
        fork.name = name.into();
        fork.status = SandboxStatus::Forking;
        fork.forked_from = Some(src_id.clone());
        h.state
            .store
            .insert_sandbox(&fork, &Default::default())
            .await
            .unwrap();
        h.mock.insert_leftover(fork.id.clone(), on_host);
        made.push(fork.id);
    }
    let report = cove_server::jobs::reconciler::reconcile_once(&h.state)
        .await
        .unwrap();
    assert_eq!(report.settled, vec![made[0].clone()]);
    assert_eq!(report.failed, vec![made[1].clone()]);
    let done = h
        .get(&format!("/v1/sandboxes/{}", made[0]), &h.alice)
        .await
        .data();
    assert_eq!(done["status"], "running");
    let half = h
        .get(&format!("/v1/sandboxes/{}", made[1]), &h.alice)
        .await
        .data();
    assert_eq!(half["status"], "failed");
    assert!(
        !h.mock.contains(&made[1]),
        "the half-made fork is gone from the host"
    );
    let src = h
        .get(&format!("/v1/sandboxes/{src_id}"), &h.alice)
        .await
        .data();
    assert_eq!(src["status"], "paused");
}

//! The reconciler over the mock runtime and a real SQLite store.

mod common;

use std::collections::BTreeMap;

use cove_api::ids::SandboxId;
use cove_api::sandbox::SandboxStatus;
use cove_api::timestamp::Timestamp;
use cove_runtime::RuntimeState;
use cove_server::jobs::reconciler::reconcile_once;
use cove_store::SandboxRecord;
use serde_json::json;

use common::harness;

fn row(owner: &str, status: SandboxStatus) -> SandboxRecord {
    SandboxRecord {
        id: SandboxId::generate(),
        owner: owner.into(),
        name: format!("r{}", &SandboxId::generate().as_str()[20..]),
        status,
        failure_reason: None,
        shape: "s-1vcpu-256mb".into(),
        rootfs: "devbox:1".into(),
        region: "local".into(),
        host_id: "local".into(),
        vcpu: 1,
        cpu_quota_pct: None,
        mem_mib: 256,
        disk_mib: 10240,
        ip: None,
        ingress_enabled: false,
        auto_pause_after_seconds: None,
        egress: vec![],
        ssh_pubkeys: vec![],
        env_names: vec![],
        spawn_ms: None,
        created_by: "alice".into(),
        bandwidth_ingress_bytes: 0,
        forked_from: None,
        created_at: Timestamp::now(),
        running_at: None,
        paused_at: None,
        last_resumed_at: None,
        destroyed_at: None,
        status_reason: None,
    }
}

#[tokio::test]
async fn running_sandboxes_survive_a_restart_pass() {
    let h = harness().await;
    let sb = h.create(&h.alice, json!({"shape":"s-1vcpu-256mb"})).await;
    let report = reconcile_once(&h.state).await.unwrap();
    assert_eq!(report, Default::default());
    let id = sb["id"].as_str().unwrap();
    assert_eq!(
        h.get(&format!("/v1/sandboxes/{id}"), &h.alice).await.data()["status"],
        "running"
    );
    let r = h
        .post(
            &format!("/v1/sandboxes/{id}/exec"),
            &h.alice,
            json!({"cmd":"true"}),
        )
        .await;
    assert_eq!(r.data()["result"]["exit_code"], 0);
}

#[tokio::test]
async fn interrupted_create_is_cleaned_and_marked_failed() {
    let h = harness().await;
    let alice = h.state.store.ensure_user("alice").await.unwrap();
    let r = row(&alice.id, SandboxStatus::Creating);
    h.state
        .store
        .insert_sandbox(&r, &BTreeMap::new())
        .await
        .unwrap();
    h.mock.insert_leftover(r.id.clone(), RuntimeState::Partial);
    let report = reconcile_once(&h.state).await.unwrap();
    assert_eq!(report.failed, vec![r.id.clone()]);
    assert!(!h.mock.contains(&r.id));
    let got = h.state.store.get_sandbox(&r.id).await.unwrap().unwrap();
    assert_eq!(got.status, SandboxStatus::Failed);
    assert!(got.failure_reason.unwrap().contains("interrupted"));
}

#[tokio::test]
async fn destroying_rows_are_finished() {
    let h = harness().await;
    let alice = h.state.store.ensure_user("alice").await.unwrap();
    let r = row(&alice.id, SandboxStatus::Destroying);
    h.state
        .store
        .insert_sandbox(&r, &BTreeMap::new())
        .await
        .unwrap();
    h.mock.insert_leftover(r.id.clone(), RuntimeState::Running);
    let report = reconcile_once(&h.state).await.unwrap();
    assert_eq!(report.destroyed, vec![r.id.clone()]);
    assert!(!h.mock.contains(&r.id));
    let got = h.state.store.get_sandbox(&r.id).await.unwrap().unwrap();
    assert_eq!(got.status, SandboxStatus::Destroyed);
    assert!(got.destroyed_at.is_some());
}

#[tokio::test]
async fn vanished_or_stopped_running_sandboxes_become_failed() {
    let h = harness().await;
    let gone = h.create(&h.alice, json!({"shape":"s-1vcpu-256mb"})).await;
    let stopped = h.create(&h.alice, json!({"shape":"s-1vcpu-256mb"})).await;
    let gone_id = SandboxId::parse(gone["id"].as_str().unwrap()).unwrap();
    let stopped_id = SandboxId::parse(stopped["id"].as_str().unwrap()).unwrap();
    cove_runtime::Runtime::destroy(h.mock.as_ref(), &gone_id)
        .await
        .unwrap();
    h.mock.stop(&stopped_id);
    let mut report = reconcile_once(&h.state).await.unwrap();
    report.failed.sort();
    let mut want = vec![gone_id.clone(), stopped_id.clone()];
    want.sort();
    assert_eq!(report.failed, want);
    assert!(
        !h.mock.contains(&stopped_id),
        "stopped leftovers are removed"
    );
    let v = h
        .get(&format!("/v1/sandboxes/{gone_id}"), &h.alice)
        .await
        .data();
    assert_eq!(v["status"], "failed");
}

#[tokio::test]
async fn leftovers_without_a_live_row_are_removed() {
    let h = harness().await;
    let orphan = SandboxId::generate();
    h.mock
        .insert_leftover(orphan.clone(), RuntimeState::Running);
    let alice = h.state.store.ensure_user("alice").await.unwrap();
    let dead = row(&alice.id, SandboxStatus::Destroyed);
    h.state
        .store
        .insert_sandbox(&dead, &BTreeMap::new())
        .await
        .unwrap();
    h.mock
        .insert_leftover(dead.id.clone(), RuntimeState::Stopped);
    let mut report = reconcile_once(&h.state).await.unwrap();
    report.removed_leftovers.sort();
    let mut want = vec![orphan.clone(), dead.id.clone()];
    want.sort();
    assert_eq!(report.removed_leftovers, want);
    assert!(!h.mock.contains(&orphan));
}

#[tokio::test]
async fn in_flight_creates_are_left_alone() {
    let h = harness().await;
    let alice = h.state.store.ensure_user("alice").await.unwrap();
    let r = row(&alice.id, SandboxStatus::Creating);
    h.state
        .store
        .insert_sandbox(&r, &BTreeMap::new())
        .await
        .unwrap();
    h.mock.insert_leftover(r.id.clone(), RuntimeState::Partial);
    let _busy = h.state.inflight.try_enter(&r.id).unwrap();
    assert!(
        h.state.inflight.try_enter(&r.id).is_none(),
        "one worker at a time"
    );
    let report = reconcile_once(&h.state).await.unwrap();
    assert_eq!(report, Default::default());
    assert!(h.mock.contains(&r.id));
}

#[tokio::test]
async fn sandbox_created_after_the_row_scan_is_not_a_leftover() {
    // The runtime lists a sandbox whose live row exists (created between
    // the reconciler's two reads); it must survive.
    let h = harness().await;
    let alice = h.state.store.ensure_user("alice").await.unwrap();
    let mut r = row(&alice.id, SandboxStatus::Running);
    r.ip = Some("10.99.255.254".into());
    h.state
        .store
        .insert_sandbox(&r, &BTreeMap::new())
        .await
        .unwrap();
    h.mock.insert_leftover(r.id.clone(), RuntimeState::Running);
    let report = reconcile_once(&h.state).await.unwrap();
    assert_eq!(report, Default::default());
    assert!(h.mock.contains(&r.id));
}

//! The two back ends every store test runs on, and a sandbox row to insert.
#![allow(dead_code)]

use std::sync::Arc;

use cove_api::ids::SandboxId;
use cove_api::sandbox::SandboxStatus;
use cove_api::timestamp::Timestamp;
use cove_store::{PostgresStore, SandboxRecord, ServerKey, SqliteStore, Store};
use cove_testkit::postgres::TempPostgres;

/// Keeps the back end's temp dir or server alive while the store is used.
pub enum Guard {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Pg(#[allow(dead_code)] TempPostgres),
}

pub async fn sqlite() -> (Arc<dyn Store>, Guard) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("cove.db"), ServerKey::generate())
        .await
        .unwrap();
    (Arc::new(store), Guard::Dir(dir))
}

pub async fn postgres() -> (Arc<dyn Store>, Guard) {
    let pg = tokio::task::spawn_blocking(TempPostgres::start)
        .await
        .unwrap()
        .unwrap();
    let store = PostgresStore::connect(&pg.url(), ServerKey::generate())
        .await
        .unwrap();
    (Arc::new(store), Guard::Pg(pg))
}

/// Expands each case `async fn(Arc<dyn Store>)` into one test per back end.
macro_rules! suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite_backend {
            $(#[tokio::test] async fn $case() { let (s, _g) = crate::common::sqlite().await; super::$case(s).await; })*
        }
        mod postgres_backend {
            $(#[tokio::test] async fn $case() { let (s, _g) = crate::common::postgres().await; super::$case(s).await; })*
        }
    };
}

pub fn record(owner: &str, name: &str) -> SandboxRecord {
    SandboxRecord {
        id: SandboxId::generate(),
        owner: owner.into(),
        name: name.into(),
        status: SandboxStatus::Creating,
        failure_reason: None,
        shape: "s-1vcpu-256mb".into(),
        rootfs: "devbox:1".into(),
        region: "local".into(),
        host_id: "host-1".into(),
        vcpu: 1,
        cpu_quota_pct: Some(50),
        mem_mib: 256,
        disk_mib: 10240,
        ip: None,
        ingress_enabled: false,
        auto_pause_after_seconds: Some(600),
        egress: vec!["pypi.org:443".into()],
        ssh_pubkeys: vec!["ssh-ed25519 AAAA".into()],
        env_names: vec!["A".into()],
        spawn_ms: None,
        created_by: "alice".into(),
        bandwidth_ingress_bytes: 0,
        forked_from: None,
        created_at: Timestamp::now(),
        running_at: None,
        paused_at: None,
        last_resumed_at: None,
        destroyed_at: None,
    }
}

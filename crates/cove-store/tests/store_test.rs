//! One store test suite, run against SQLite (a temp file) and PostgreSQL
//! (Debian's server started on a loopback port by `TempPostgres`). Each case
//! is written once as `async fn(Arc<dyn Store>)` and expanded for both.

use std::collections::BTreeMap;
use std::sync::Arc;

#[macro_use]
mod common;

use common::record;
use cove_api::ids::SandboxId;
use cove_api::sandbox::SandboxStatus;
use cove_api::timestamp::Timestamp;
use cove_store::{SandboxFilter, Secret, ServerKey, SqliteStore, Store, StoreError};

suite!(
    users_are_created_once,
    api_keys_resolve_to_their_user_and_only_hashes_are_stored,
    sandbox_round_trips_every_field,
    live_names_are_unique_per_owner,
    list_filters_paginates_and_counts,
    update_is_compare_and_set,
    env_values_are_sealed_and_reopened,
    by_ip_prefers_live_sandbox,
    counts_by_status,
);

async fn users_are_created_once(s: Arc<dyn Store>) {
    let a = s.ensure_user("alice").await.unwrap();
    let again = s.ensure_user("alice").await.unwrap();
    let b = s.ensure_user("bob").await.unwrap();
    assert_eq!(a, again);
    assert_ne!(a.id, b.id);
    assert!(a.id.starts_with("usr_"));
}

async fn api_keys_resolve_to_their_user_and_only_hashes_are_stored(s: Arc<dyn Store>) {
    let alice = s.ensure_user("alice").await.unwrap();
    let bob = s.ensure_user("bob").await.unwrap();
    let ka = s.create_api_key(&alice.id).await.unwrap();
    let kb = s.create_api_key(&bob.id).await.unwrap();
    assert_eq!(
        s.user_by_api_key(ka.expose()).await.unwrap().unwrap().id,
        alice.id
    );
    assert_eq!(
        s.user_by_api_key(kb.expose()).await.unwrap().unwrap().id,
        bob.id
    );
    assert!(s.user_by_api_key("cove_wrong").await.unwrap().is_none());
    assert!(s.user_by_api_key("").await.unwrap().is_none());
    // Looking up by the stored hash itself must not work.
    let hash = cove_store::crypto::hash_api_key(ka.expose());
    assert!(s.user_by_api_key(&hash).await.unwrap().is_none());
}

async fn sandbox_round_trips_every_field(s: Arc<dyn Store>) {
    let u = s.ensure_user("alice").await.unwrap();
    let mut r = record(&u.id, "one");
    r.forked_from = Some(SandboxId::generate());
    r.failure_reason = Some("why".into());
    s.insert_sandbox(&r, &BTreeMap::new()).await.unwrap();
    assert_eq!(s.get_sandbox(&r.id).await.unwrap().unwrap(), r);
    assert!(s
        .get_sandbox(&SandboxId::generate())
        .await
        .unwrap()
        .is_none());
}

async fn live_names_are_unique_per_owner(s: Arc<dyn Store>) {
    let a = s.ensure_user("alice").await.unwrap();
    let b = s.ensure_user("bob").await.unwrap();
    let first = record(&a.id, "dup");
    s.insert_sandbox(&first, &BTreeMap::new()).await.unwrap();
    let err = s
        .insert_sandbox(&record(&a.id, "dup"), &BTreeMap::new())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NameTaken { .. }), "{err}");
    // Another owner may use the name.
    s.insert_sandbox(&record(&b.id, "dup"), &BTreeMap::new())
        .await
        .unwrap();
    // Once the first is terminal the name is free again.
    let mut gone = first.clone();
    gone.status = SandboxStatus::Destroyed;
    assert!(s
        .update_sandbox(&gone, SandboxStatus::Creating)
        .await
        .unwrap());
    s.insert_sandbox(&record(&a.id, "dup"), &BTreeMap::new())
        .await
        .unwrap();
}

async fn list_filters_paginates_and_counts(s: Arc<dyn Store>) {
    let a = s.ensure_user("alice").await.unwrap();
    let b = s.ensure_user("bob").await.unwrap();
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut r = record(&a.id, &format!("n{i}"));
        r.created_at = Timestamp::from_micros(1_000_000 + i);
        if i % 2 == 0 {
            r.status = SandboxStatus::Running;
        }
        s.insert_sandbox(&r, &BTreeMap::new()).await.unwrap();
        ids.push(r.id);
    }
    s.insert_sandbox(&record(&b.id, "other"), &BTreeMap::new())
        .await
        .unwrap();
    let mine = SandboxFilter {
        owner: Some(a.id.clone()),
        status: None,
    };
    let (page, total) = s.list_sandboxes(&mine, 3, 2).await.unwrap();
    assert_eq!(total, 7);
    assert_eq!(
        page.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        ids[2..5].to_vec()
    );
    let (past, total) = s.list_sandboxes(&mine, 3, 10).await.unwrap();
    assert!(past.is_empty());
    assert_eq!(total, 7);
    let running = SandboxFilter {
        owner: Some(a.id.clone()),
        status: Some(SandboxStatus::Running),
    };
    let (page, total) = s.list_sandboxes(&running, 500, 0).await.unwrap();
    assert_eq!(total, 4);
    assert!(page
        .iter()
        .all(|r| r.status == SandboxStatus::Running && r.owner == a.id));
    let (_, all) = s
        .list_sandboxes(&SandboxFilter::default(), 1, 0)
        .await
        .unwrap();
    assert_eq!(all, 8);
    assert_eq!(s.list_live_sandboxes().await.unwrap().len(), 8);
}

async fn update_is_compare_and_set(s: Arc<dyn Store>) {
    let a = s.ensure_user("alice").await.unwrap();
    let mut r = record(&a.id, "cas");
    s.insert_sandbox(&r, &BTreeMap::new()).await.unwrap();
    r.status = SandboxStatus::Running;
    r.ip = Some("10.0.0.2".into());
    r.spawn_ms = Some(87.5);
    r.running_at = Some(Timestamp::now());
    r.ingress_enabled = true;
    r.auto_pause_after_seconds = None;
    assert!(s.update_sandbox(&r, SandboxStatus::Creating).await.unwrap());
    // A second writer expecting the old status loses.
    let mut stale = r.clone();
    stale.status = SandboxStatus::Failed;
    assert!(!s
        .update_sandbox(&stale, SandboxStatus::Creating)
        .await
        .unwrap());
    assert_eq!(s.get_sandbox(&r.id).await.unwrap().unwrap(), r);
}

async fn env_values_are_sealed_and_reopened(s: Arc<dyn Store>) {
    let a = s.ensure_user("alice").await.unwrap();
    let r = record(&a.id, "envs");
    let envs = BTreeMap::from([
        ("A".to_string(), Secret::new("1".to_string())),
        ("TOKEN".to_string(), Secret::new("sk-secret ü".to_string())),
    ]);
    s.insert_sandbox(&r, &envs).await.unwrap();
    let back = s.sandbox_envs(&r.id).await.unwrap();
    assert_eq!(back.len(), 2);
    assert_eq!(back["TOKEN"].expose(), "sk-secret ü");
    assert!(s
        .sandbox_envs(&SandboxId::generate())
        .await
        .unwrap()
        .is_empty());
}

async fn by_ip_prefers_live_sandbox(s: Arc<dyn Store>) {
    let a = s.ensure_user("alice").await.unwrap();
    let b = s.ensure_user("bob").await.unwrap();
    let mut old = record(&a.id, "old");
    old.status = SandboxStatus::Destroyed;
    old.ip = Some("10.1.0.5".into());
    s.insert_sandbox(&old, &BTreeMap::new()).await.unwrap();
    let mut live = record(&a.id, "live");
    live.status = SandboxStatus::Running;
    live.ip = Some("10.1.0.5".into());
    live.created_at = Timestamp::from_micros(1);
    s.insert_sandbox(&live, &BTreeMap::new()).await.unwrap();
    assert_eq!(
        s.get_sandbox_by_ip(&a.id, "10.1.0.5")
            .await
            .unwrap()
            .unwrap()
            .id,
        live.id
    );
    assert!(s
        .get_sandbox_by_ip(&b.id, "10.1.0.5")
        .await
        .unwrap()
        .is_none());
    assert!(s
        .get_sandbox_by_ip(&a.id, "10.1.0.6")
        .await
        .unwrap()
        .is_none());
}

async fn counts_by_status(s: Arc<dyn Store>) {
    let a = s.ensure_user("alice").await.unwrap();
    let b = s.ensure_user("bob").await.unwrap();
    for (owner, status) in [
        (&a.id, SandboxStatus::Running),
        (&a.id, SandboxStatus::Running),
        (&a.id, SandboxStatus::Failed),
        (&b.id, SandboxStatus::Running),
    ] {
        let mut r = record(owner, &SandboxId::generate().to_string()[3..20]);
        r.status = status;
        s.insert_sandbox(&r, &BTreeMap::new()).await.unwrap();
    }
    let mut mine = s.count_by_status(Some(&a.id)).await.unwrap();
    mine.sort_by_key(|(st, _)| st.as_str());
    assert_eq!(
        mine,
        vec![(SandboxStatus::Failed, 1), (SandboxStatus::Running, 2)]
    );
    let all: u64 = s
        .count_by_status(None)
        .await
        .unwrap()
        .iter()
        .map(|(_, n)| n)
        .sum();
    assert_eq!(all, 4);
}

#[tokio::test]
async fn sqlite_file_is_shared_by_two_openers_in_wal_mode() {
    // `cove keys create` opens the same file while a server holds it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cove.db");
    let key = ServerKey::generate();
    let server = SqliteStore::open(&path, key.clone()).await.unwrap();
    let cli = SqliteStore::open(&path, key).await.unwrap();
    let u = cli.ensure_user("ops").await.unwrap();
    let k = cli.create_api_key(&u.id).await.unwrap();
    assert_eq!(
        server
            .user_by_api_key(k.expose())
            .await
            .unwrap()
            .unwrap()
            .name,
        "ops"
    );
    assert!(dir.path().join("cove.db-wal").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the database holds secrets");
    }
}

#[tokio::test]
async fn open_dispatches_on_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("x.db").display());
    let s = cove_store::open(&url, ServerKey::generate()).await.unwrap();
    s.ping().await.unwrap();
    assert!(matches!(
        cove_store::open("mysql://x", ServerKey::generate())
            .await
            .err(),
        Some(StoreError::UnsupportedUrl)
    ));
}

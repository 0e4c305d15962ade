//! Disks and attachments on both back ends: credentials sealed and bound
//! to their disk, names unique per owner, lookups by id or name scoped to
//! the owner, delete refused while a live sandbox uses the disk.

#[macro_use]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::record;
use cove_api::disk::DiskConfig;
use cove_api::ids::DiskId;
use cove_api::sandbox::SandboxStatus;
use cove_api::timestamp::Timestamp;
use cove_store::{
    AttachmentRecord, DiskDeletion, DiskRecord, DiskSecret, Secret, Store, StoreError,
};

suite!(
    disks_round_trip_and_are_scoped_to_their_owner,
    credentials_are_sealed_write_only_and_rotated,
    disk_names_are_unique_per_owner,
    attachments_round_trip_update_and_delete,
    delete_is_refused_while_a_live_sandbox_uses_the_disk,
);

fn disk(owner: &str, name: &str) -> DiskRecord {
    DiskRecord {
        id: DiskId::generate(),
        owner: owner.into(),
        name: name.into(),
        kind: "s3".into(),
        config: DiskConfig {
            bucket: "bucket-1".into(),
            endpoint: "http://127.0.0.1:3900".into(),
            region: Some("garage".into()),
            use_path_style: Some(true),
        },
        has_credentials: true,
        created_at: Timestamp::now(),
    }
}

fn secret(ak: &str, sk: &str) -> DiskSecret {
    DiskSecret {
        access_key: Secret::new(ak.into()),
        secret_key: Secret::new(sk.into()),
    }
}

async fn disks_round_trip_and_are_scoped_to_their_owner(s: Arc<dyn Store>) {
    let alice = s.ensure_user("alice").await.unwrap();
    let bob = s.ensure_user("bob").await.unwrap();
    let d = disk(&alice.id, "data");
    s.insert_disk(&d, Some(&secret("AK", "SK"))).await.unwrap();
    let mut public = disk(&alice.id, "public");
    public.has_credentials = false;
    s.insert_disk(&public, None).await.unwrap();
    assert_eq!(
        s.get_disk(&alice.id, d.id.as_str()).await.unwrap().unwrap(),
        d
    );
    assert_eq!(s.get_disk(&alice.id, "data").await.unwrap().unwrap(), d);
    assert_eq!(
        s.get_disk(&alice.id, "public").await.unwrap().unwrap(),
        public
    );
    assert!(s.get_disk(&bob.id, d.id.as_str()).await.unwrap().is_none());
    assert!(s.get_disk(&bob.id, "data").await.unwrap().is_none());
    let (page, total) = s.list_disks(&alice.id, 1, 1).await.unwrap();
    assert_eq!((page.len(), total), (1, 2));
    assert_eq!(s.list_disks(&bob.id, 10, 0).await.unwrap().1, 0);
    assert!(s.disk_credentials(&public.id).await.unwrap().is_none());
}

async fn credentials_are_sealed_write_only_and_rotated(s: Arc<dyn Store>) {
    let alice = s.ensure_user("alice").await.unwrap();
    let d = disk(&alice.id, "data");
    s.insert_disk(&d, Some(&secret("AKIDSEALED", "very-secret-value")))
        .await
        .unwrap();
    let opened = s.disk_credentials(&d.id).await.unwrap().unwrap();
    assert_eq!(opened, secret("AKIDSEALED", "very-secret-value"));
    assert!(!format!("{opened:?}").contains("very-secret-value"));
    assert!(s
        .update_disk_credentials(&d.id, &secret("AK2", "second"))
        .await
        .unwrap());
    assert_eq!(
        s.disk_credentials(&d.id).await.unwrap().unwrap(),
        secret("AK2", "second")
    );
    assert!(!s
        .update_disk_credentials(&DiskId::generate(), &secret("a", "b"))
        .await
        .unwrap());
}

async fn disk_names_are_unique_per_owner(s: Arc<dyn Store>) {
    let alice = s.ensure_user("alice").await.unwrap();
    let bob = s.ensure_user("bob").await.unwrap();
    s.insert_disk(&disk(&alice.id, "data"), None).await.unwrap();
    let again = s.insert_disk(&disk(&alice.id, "data"), None).await;
    assert!(
        matches!(again, Err(StoreError::NameTaken { .. })),
        "{again:?}"
    );
    s.insert_disk(&disk(&bob.id, "data"), None).await.unwrap();
}

async fn attachments_round_trip_update_and_delete(s: Arc<dyn Store>) {
    let alice = s.ensure_user("alice").await.unwrap();
    let d = disk(&alice.id, "data");
    s.insert_disk(&d, None).await.unwrap();
    let sb = record(&alice.id, "one");
    s.insert_sandbox(&sb, &BTreeMap::new()).await.unwrap();
    let mut a = AttachmentRecord {
        sandbox_id: sb.id.clone(),
        disk_id: d.id.clone(),
        mount_path: "/data".into(),
        sub_path: Some("p/q".into()),
        read_only: false,
        declared: true,
        created_at: Timestamp::from_micros(1),
    };
    s.insert_attachment(&a).await.unwrap();
    let same_path = s.insert_attachment(&a).await;
    assert!(
        matches!(same_path, Err(StoreError::NameTaken { .. })),
        "{same_path:?}"
    );
    let b = AttachmentRecord {
        mount_path: "/other".into(),
        sub_path: None,
        created_at: Timestamp::from_micros(2),
        ..a.clone()
    };
    s.insert_attachment(&b).await.unwrap();
    assert_eq!(
        s.list_attachments(&sb.id).await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    a.read_only = true;
    a.sub_path = None;
    a.declared = false;
    assert!(s.update_attachment(&a).await.unwrap());
    assert_eq!(s.list_attachments(&sb.id).await.unwrap()[0], a);
    assert!(s.delete_attachment(&sb.id, "/data").await.unwrap());
    assert!(!s.delete_attachment(&sb.id, "/data").await.unwrap());
    assert_eq!(s.list_attachments(&sb.id).await.unwrap(), vec![b]);
}

async fn delete_is_refused_while_a_live_sandbox_uses_the_disk(s: Arc<dyn Store>) {
    let alice = s.ensure_user("alice").await.unwrap();
    let d = disk(&alice.id, "data");
    s.insert_disk(&d, Some(&secret("a", "b"))).await.unwrap();
    let mut sb = record(&alice.id, "one");
    s.insert_sandbox(&sb, &BTreeMap::new()).await.unwrap();
    s.insert_attachment(&AttachmentRecord {
        sandbox_id: sb.id.clone(),
        disk_id: d.id.clone(),
        mount_path: "/data".into(),
        sub_path: None,
        read_only: false,
        declared: false,
        created_at: Timestamp::now(),
    })
    .await
    .unwrap();
    assert_eq!(s.delete_disk(&d.id).await.unwrap(), DiskDeletion::InUse);
    assert!(s.get_disk(&alice.id, "data").await.unwrap().is_some());
    sb.status = SandboxStatus::Destroyed;
    assert!(s
        .update_sandbox(&sb, SandboxStatus::Creating)
        .await
        .unwrap());
    assert_eq!(s.delete_disk(&d.id).await.unwrap(), DiskDeletion::Deleted);
    assert!(s.get_disk(&alice.id, "data").await.unwrap().is_none());
    assert_eq!(s.delete_disk(&d.id).await.unwrap(), DiskDeletion::NotFound);
}

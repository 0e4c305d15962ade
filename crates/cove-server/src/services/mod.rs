//! One service per resource; handlers call exactly one method of one.

pub mod attachments;
pub mod catalog;
pub mod disks;
pub mod exec;
pub mod files;
pub mod lifecycle;
pub mod sandboxes;
mod view;

use cove_api::ids::SandboxId;
use cove_store::{DiskRecord, SandboxRecord, Store, User};

use crate::error::ServiceError;

/// The caller's sandbox, or 404 (also for someone else's id).
pub(crate) async fn owned_sandbox(
    store: &dyn Store,
    user: &User,
    id: &str,
) -> Result<SandboxRecord, ServiceError> {
    let not_found = || ServiceError::NotFound {
        what: "sandbox",
        id: id.to_owned(),
    };
    let sid = SandboxId::parse(id).ok_or_else(not_found)?;
    match store.get_sandbox(&sid).await? {
        Some(r) if r.owner == user.id => Ok(r),
        _ => Err(not_found()),
    }
}

/// The caller's disk by id or name, or 404 (also for someone else's).
pub(crate) async fn owned_disk(
    store: &dyn Store,
    user: &User,
    id_or_name: &str,
) -> Result<DiskRecord, ServiceError> {
    store
        .get_disk(&user.id, id_or_name)
        .await?
        .ok_or_else(|| ServiceError::NotFound {
            what: "disk",
            id: id_or_name.to_owned(),
        })
}

//! `MemoryMounter`: a `Mounter` for the services' unit tests. It mounts
//! nothing: it keeps a table of what would be mounted, answers probes with
//! a configurable result, and can be told to fail flushes (a bucket that
//! went away), so the services' error paths can be driven. The real
//! behaviour is tested with `BucketfsMounter` on a real S3 server.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use cove_api::ids::{DiskId, SandboxId};
use cove_store::DiskSecret;

use super::{BucketAccess, MountError, MountHealth, MountRequest, Mounter};

/// One recorded mount.
#[derive(Clone, Debug)]
pub struct RecordedMount {
    pub request: MountRequest,
    pub host_path: PathBuf,
}

#[derive(Default)]
struct State {
    mounts: HashMap<(SandboxId, String), RecordedMount>,
    probe_error: Option<MountError>,
    flush_error: Option<MountError>,
    rotations: Vec<(DiskId, Option<DiskSecret>)>,
}

/// A recording `Mounter`.
#[derive(Default)]
pub struct MemoryMounter {
    state: Mutex<State>,
}

impl MemoryMounter {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every later probe (and mount) fails with `e` (`None`: succeed).
    pub fn fail_probes(&self, e: Option<MountError>) {
        self.lock().probe_error = e;
    }

    /// Every later flush (and unmount) fails with `e` (`None`: succeed).
    pub fn fail_flushes(&self, e: Option<MountError>) {
        self.lock().flush_error = e;
    }

    /// The mounts held now.
    pub fn mounts(&self) -> Vec<RecordedMount> {
        self.lock().mounts.values().cloned().collect()
    }

    /// Credential rotations received, in order.
    pub fn rotations(&self) -> Vec<(DiskId, Option<DiskSecret>)> {
        self.lock().rotations.clone()
    }
}

#[async_trait]
impl Mounter for MemoryMounter {
    async fn probe(&self, _bucket: &BucketAccess) -> Result<(), MountError> {
        match self.lock().probe_error.clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn mount(&self, req: &MountRequest) -> Result<PathBuf, MountError> {
        let mut st = self.lock();
        if let Some(e) = st.probe_error.clone() {
            return Err(e);
        }
        let key = (req.sandbox_id.clone(), req.mount_path.clone());
        if st.mounts.contains_key(&key) {
            return Err(MountError::Host {
                message: format!("{} is already mounted", req.mount_path),
            });
        }
        let host_path = PathBuf::from(format!(
            "/memory-mounts/{}{}",
            req.sandbox_id, req.mount_path
        ));
        st.mounts.insert(
            key,
            RecordedMount {
                request: req.clone(),
                host_path: host_path.clone(),
            },
        );
        Ok(host_path)
    }

    async fn flush(&self, sandbox: &SandboxId, mount_path: &str) -> Result<(), MountError> {
        let st = self.lock();
        if !st
            .mounts
            .contains_key(&(sandbox.clone(), mount_path.to_owned()))
        {
            return Err(MountError::NotMounted);
        }
        match st.flush_error.clone() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn unmount(&self, sandbox: &SandboxId, mount_path: &str) -> Result<(), MountError> {
        self.flush(sandbox, mount_path).await?;
        self.lock()
            .mounts
            .remove(&(sandbox.clone(), mount_path.to_owned()));
        Ok(())
    }

    fn host_path(&self, sandbox: &SandboxId, mount_path: &str) -> Option<PathBuf> {
        self.lock()
            .mounts
            .get(&(sandbox.clone(), mount_path.to_owned()))
            .map(|m| m.host_path.clone())
    }

    fn rotate_credentials(&self, disk: &DiskId, credentials: Option<DiskSecret>) {
        self.lock().rotations.push((disk.clone(), credentials));
    }

    async fn health(&self, sandbox: &SandboxId, mount_path: &str) -> MountHealth {
        let st = self.lock();
        if !st
            .mounts
            .contains_key(&(sandbox.clone(), mount_path.to_owned()))
        {
            return MountHealth::Absent;
        }
        match &st.probe_error {
            Some(e) => MountHealth::Error(e.to_string()),
            None => MountHealth::Mounted,
        }
    }
}

//! Where a sandbox's pieces live under the state dir. One place, so create,
//! destroy and list agree.
//!
//! ```text
//! <state>/sandboxes/<id>/record.json   what create decided (SandboxRecord)
//!                       config.json    the OCI config (runc bundle)
//!                       rootfs/        overlay mount: lower image + disk/upper
//!                       disk.img       sparse ext4 image (disk_mib), on a loop device
//!                       disk/          its mount: upper/ and work/
//!                       run/           agent dir, bound at /.cove/run (agent.sock)
//!                       etc/           hosts, resolv.conf bound read-only
//!                       criu.conf      CRIU options (nftables network lock), named in config.json
//!                       checkpoint/    complete CRIU images (renamed from checkpoint.tmp/)
//!                       criu-work/     logs of the last restore
//!                       dump-failed.log  CRIU's log of the last failed dump
//! <state>/runc/                        runc --root
//! <lower_dir>/<image>@<uid>/rootfs    base image shifted to the uid range (default <state>/lower)
//! <state>/net/<bridge>/leases/<ip>     address leases
//! ```

use std::path::{Path, PathBuf};

use cove_api::ids::SandboxId;

/// Paths of one sandbox.
#[derive(Clone, Debug)]
pub struct SandboxPaths {
    pub dir: PathBuf,
}

impl SandboxPaths {
    pub fn new(state_dir: &Path, id: &SandboxId) -> SandboxPaths {
        SandboxPaths {
            dir: sandboxes_dir(state_dir).join(id.as_str()),
        }
    }
    pub fn record(&self) -> PathBuf {
        self.dir.join("record.json")
    }
    pub fn config(&self) -> PathBuf {
        self.dir.join("config.json")
    }
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }
    pub fn disk_img(&self) -> PathBuf {
        self.dir.join("disk.img")
    }
    pub fn disk_mnt(&self) -> PathBuf {
        self.dir.join("disk")
    }
    pub fn upper(&self) -> PathBuf {
        self.disk_mnt().join("upper")
    }
    pub fn work(&self) -> PathBuf {
        self.disk_mnt().join("work")
    }
    pub fn run_dir(&self) -> PathBuf {
        self.dir.join("run")
    }
    pub fn socket(&self) -> PathBuf {
        self.run_dir().join(cove_api::agent::SOCKET_NAME)
    }
    pub fn etc(&self) -> PathBuf {
        self.dir.join("etc")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.dir.join("init.pid")
    }
    pub fn runc_log(&self) -> PathBuf {
        self.dir.join("runc.log")
    }
    pub fn criu_conf(&self) -> PathBuf {
        self.dir.join("criu.conf")
    }
    /// The complete checkpoint; it exists only once a dump finished.
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint")
    }
    /// Where a dump is written before it is complete.
    pub fn checkpoint_tmp(&self) -> PathBuf {
        self.dir.join("checkpoint.tmp")
    }
    pub fn criu_work(&self) -> PathBuf {
        self.dir.join("criu-work")
    }
}

pub fn sandboxes_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("sandboxes")
}

pub fn runc_root(state_dir: &Path) -> PathBuf {
    state_dir.join("runc")
}

pub fn leases_dir(state_dir: &Path, bridge: &str) -> PathBuf {
    state_dir.join("net").join(bridge).join("leases")
}

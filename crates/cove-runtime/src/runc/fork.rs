//! `fork`: a new sandbox restored from a copy of a checkpointed sandbox.
//!
//! record `forking` for the new id → new address → copy the source's disk
//! image (sparse; the source is checkpointed, so its disk is unmounted and
//! flushed) → the checkpoint's files hard-linked into the new bundle (CRIU
//! only reads images, and a new directory keeps restore's own files apart;
//! the source's files are never opened for writing) → mount the copy under
//! the same image → the new bundle's `/etc` files and `config.json` (new
//! id, hostname, cgroup, limits, binds) → the restore step of
//! `restore.rs`, which also sets the new hostname → agent answers →
//! record `running`, drop the linked checkpoint.
//!
//! The source is only read: it stays checkpointed and unchanged, and
//! several forks of it can run side by side. A failure at any step
//! destroys the new sandbox; a crash leaves it `forking`, which `list`
//! reports as `Partial` (the reconciler removes it).

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Instant;

use cove_api::ids::SandboxId;

use super::layout::SandboxPaths;
use super::record::{Phase, SandboxRecord};
use super::{create, destroy, disk, restore, Inner, RuncRuntime};
use crate::{BindMount, CreatedSandbox, RuntimeError, SandboxSpec};

fn fail(id: &SandboxId, message: String) -> RuntimeError {
    RuntimeError::Failed {
        id: id.clone(),
        op: "fork",
        message,
    }
}

/// Forks checkpointed `source` into `new`.
pub async fn fork(
    rt: &RuncRuntime,
    source: &SandboxId,
    new: &SandboxSpec,
    mounts: &[BindMount],
) -> Result<CreatedSandbox, RuntimeError> {
    let t0 = Instant::now();
    let state = &rt.inner.config.state_dir;
    let src = SandboxPaths::new(state, source);
    let src_rec =
        SandboxRecord::load(&src.record()).ok_or_else(|| RuntimeError::NotFound(source.clone()))?;
    if src_rec.phase != Phase::Checkpointed || !src.checkpoint().is_dir() {
        return Err(RuntimeError::NotCheckpointed(source.clone()));
    }
    if SandboxPaths::new(state, &new.id).dir.exists() {
        return Err(fail(&new.id, "sandbox already exists".into()));
    }
    let lower = rt.lower(&rt.image_of(&src_rec.image)).await?;
    let mut spec = new.clone();
    spec.rootfs = src_rec.image.clone();
    spec.disk_mib = src_rec.disk_mib;
    let (s, m) = (spec.clone(), mounts.to_vec());
    let prepared = rt
        .blocking(move |inner| {
            let paths = SandboxPaths::new(&inner.config.state_dir, &s.id);
            let mut rec = prepare(inner, &src, &s, &lower, &m)?;
            restore::restore_container(inner, &paths, &s.id, &mut rec, Some(&s.hostname), "fork")?;
            Ok(rec)
        })
        .await;
    let result = match prepared {
        Ok(rec) => {
            let ready = match rt.inner.agent(&spec.id) {
                Ok(agent) => agent
                    .wait_ready(rt.inner.config.agent_timeout)
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            };
            let id = spec.id.clone();
            match ready {
                Ok(()) => rt.blocking(move |inner| finish(inner, &id, rec)).await,
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(created) => {
            tracing::info!(sandbox_id = %spec.id, source = %source, ms = t0.elapsed().as_millis() as u64, "sandbox forked");
            Ok(created)
        }
        Err(e) => {
            tracing::warn!(sandbox_id = %spec.id, error = %e, "fork failed, removing the new sandbox");
            rt.inner.forget_agent(&spec.id);
            let id = spec.id.clone();
            if let Err(rb) = rt.blocking(move |inner| destroy::destroy(inner, &id)).await {
                tracing::error!(sandbox_id = %spec.id, error = %rb, "removing a failed fork failed");
            }
            Err(e)
        }
    }
}

/// The new bundle, up to the restore. Blocking.
fn prepare(
    inner: &Inner,
    src: &SandboxPaths,
    spec: &SandboxSpec,
    lower: &Path,
    mounts: &[BindMount],
) -> Result<SandboxRecord, RuntimeError> {
    let cfg = &inner.config;
    let paths = SandboxPaths::new(&cfg.state_dir, &spec.id);
    std::fs::create_dir(&paths.dir)?;
    std::fs::set_permissions(&paths.dir, std::fs::Permissions::from_mode(0o711))?;
    let mut rec = SandboxRecord {
        id: spec.id.to_string(),
        hostname: spec.hostname.clone(),
        image: spec.rootfs.clone(),
        ip: None,
        host_veth: None,
        mem_mib: spec.mem_mib,
        disk_mib: spec.disk_mib,
        phase: Phase::Forking,
    };
    rec.save(&paths.record())?;
    let ip = inner
        .net
        .allocate(spec.id.as_str())
        .map_err(|e| fail(&spec.id, e.to_string()))?;
    rec.ip = Some(ip);
    rec.save(&paths.record())?;
    // The source's disk is unmounted and flushed while it is checkpointed;
    // making sure costs nothing when it is.
    disk::unmount(inner.sys.as_ref(), src)?;
    if !disk::wait_released(src, std::time::Duration::from_secs(5)) {
        return Err(fail(
            &spec.id,
            "the source's disk is still in use 5 s after its unmount".into(),
        ));
    }
    copy_sparse(inner, &src.disk_img(), &paths.disk_img(), &spec.id)?;
    link_checkpoint(&src.checkpoint(), &paths.checkpoint())?;
    disk::remount(inner.sys.as_ref(), &paths, lower)?;
    create::make_run_dir(inner, &paths)?;
    create::write_etc(&paths, &spec.hostname, ip, &cfg.dns)?;
    create::write_config(inner, spec, &paths, mounts, "fork")?;
    Ok(rec)
}

fn copy_sparse(inner: &Inner, from: &Path, to: &Path, id: &SandboxId) -> Result<(), RuntimeError> {
    let args: Vec<OsString> = vec![
        "--sparse=always".into(),
        "--".into(),
        from.into(),
        to.into(),
    ];
    let out = inner.sys.run(Path::new("cp"), &args)?;
    if !out.success() {
        return Err(fail(id, format!("copying the disk: {}", out.stderr.trim())));
    }
    Ok(())
}

/// Hard-links every image file of `from` into a new directory `to`. CRIU's
/// own logs and statistics are not images and are left out, so nothing a
/// restore writes can reach the source's files.
fn link_checkpoint(from: &Path, to: &Path) -> Result<(), RuntimeError> {
    std::fs::create_dir(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let name = e.file_name();
        let n = name.to_string_lossy();
        if n.ends_with(".log") || n.starts_with("stats-") {
            continue;
        }
        std::fs::hard_link(e.path(), to.join(&name))?;
    }
    Ok(())
}

/// Records the fork running and drops its linked checkpoint.
fn finish(
    inner: &Inner,
    id: &SandboxId,
    mut rec: SandboxRecord,
) -> Result<CreatedSandbox, RuntimeError> {
    let paths = SandboxPaths::new(&inner.config.state_dir, id);
    rec.phase = Phase::Running;
    rec.save(&paths.record())?;
    std::fs::remove_dir_all(paths.checkpoint())?;
    let ip = rec.ip.ok_or_else(|| fail(id, "no address".into()))?;
    Ok(CreatedSandbox { ip })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::runc::RuncConfig;
    use crate::sys::RecordingSys;

    #[test]
    fn a_fork_copies_the_disk_links_the_images_and_gets_its_own_config() {
        let d = tempfile::tempdir().unwrap();
        let cfg = RuncConfig::for_state_dir(d.path());
        let sys = Arc::new(RecordingSys::default());
        let net_sys = Arc::new(cove_net::RecordingNetSys::default());
        let inner = Inner::for_tests(cfg, sys.clone(), net_sys);
        let src = SandboxPaths::new(d.path(), &SandboxId::generate());
        std::fs::create_dir_all(src.checkpoint()).unwrap();
        std::fs::write(src.checkpoint().join("pages-1.img"), b"pages").unwrap();
        std::fs::create_dir_all(d.path().join("sandboxes")).unwrap();
        let spec = SandboxSpec {
            id: SandboxId::generate(),
            hostname: "fork-1".into(),
            rootfs: "devbox:1".into(),
            vcpu: 1,
            cpu_quota_pct: None,
            mem_mib: 512,
            disk_mib: 256,
            pids_limit: 64,
            mounts: Vec::new(),
        };
        let lower = d.path().join("lower/rootfs");
        let rec = prepare(&inner, &src, &spec, &lower, &[]).unwrap();
        assert_eq!(rec.phase, Phase::Forking);
        assert!(rec.ip.is_some());
        let new = SandboxPaths::new(d.path(), &spec.id);
        let calls = sys.calls();
        assert_eq!(
            calls[0],
            format!(
                "cp --sparse=always -- {} {}",
                src.disk_img().display(),
                new.disk_img().display()
            )
        );
        assert_eq!(
            calls[1],
            format!("loop_attach {}", new.disk_img().display())
        );
        assert!(calls[3].starts_with(&format!(
            "mount overlay overlay {} lowerdir={},upperdir={}",
            new.rootfs().display(),
            lower.display(),
            new.upper().display()
        )));
        assert_eq!(
            std::fs::read(new.checkpoint().join("pages-1.img")).unwrap(),
            b"pages"
        );
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(new.config()).unwrap()).unwrap();
        assert_eq!(config["hostname"], "fork-1");
        assert_eq!(config["linux"]["cgroupsPath"], format!("/cove/{}", spec.id));
        let hosts = std::fs::read_to_string(new.etc().join("hosts")).unwrap();
        assert!(hosts.contains("fork-1"), "{hosts}");
    }

    #[test]
    fn checkpoint_images_are_linked_and_logs_left_out() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let from = d.path().join("a");
        std::fs::create_dir(&from).unwrap();
        for f in [
            "pages-1.img",
            "inventory.img",
            "dump.log",
            "stats-dump",
            "descriptors.json",
        ] {
            std::fs::write(from.join(f), f).unwrap();
        }
        let to = d.path().join("b");
        link_checkpoint(&from, &to).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&to)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["descriptors.json", "inventory.img", "pages-1.img"]);
        let (a, b) = (
            std::fs::metadata(from.join("pages-1.img")).unwrap(),
            std::fs::metadata(to.join("pages-1.img")).unwrap(),
        );
        assert_eq!(a.ino(), b.ino());
    }
}

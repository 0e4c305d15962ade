//! The sandbox's writable layer and its size limit. `disk_mib` is enforced
//! by putting the overlay's upper and work dirs on their own ext4
//! filesystem: a sparse file of `disk_mib` MiB (no space used until
//! written), formatted without a journal and with no reserved blocks, on a
//! loop device with autoclear (formatted ahead of time by `pool.rs`). Filling it gives ENOSPC inside the sandbox
//! and nothing else on the host notices. Unmounting frees the loop device.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::layout::SandboxPaths;
use super::pool::DiskPool;
use crate::sys::Sys;
use crate::RuntimeError;

fn io(msg: String) -> RuntimeError {
    RuntimeError::Io(std::io::Error::other(msg))
}

/// Makes (or takes from the pool) and mounts the disk, with `upper/` and
/// `work/` owned by the sandbox's root.
pub fn create(
    sys: &dyn Sys,
    paths: &SandboxPaths,
    disk_mib: u64,
    uid_base: u32,
    pool: &DiskPool,
) -> Result<(), RuntimeError> {
    let img = paths.disk_img();
    if !pool.take(disk_mib, &img) {
        super::pool::format(sys, &img, disk_mib)?;
    }
    let mnt = paths.disk_mnt();
    std::fs::create_dir_all(&mnt)?;
    let (dev, keep) = sys.loop_attach(&img)?;
    sys.mount(&dev.to_string_lossy(), &mnt, "ext4", "")?;
    drop(keep);
    for d in [paths.upper(), paths.work()] {
        std::fs::create_dir_all(&d)?;
        sys.chown(&d, uid_base, uid_base)?;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
    }
    Ok(())
}

/// Mounts the overlay root: the shifted image below, the disk's upper above.
pub fn mount_overlay(
    sys: &dyn Sys,
    paths: &SandboxPaths,
    lower: &Path,
) -> Result<(), RuntimeError> {
    let rootfs = paths.rootfs();
    std::fs::create_dir_all(&rootfs)?;
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.display(),
        paths.upper().display(),
        paths.work().display()
    );
    sys.mount("overlay", &rootfs, "overlay", &data)?;
    Ok(())
}

/// Mounts an existing disk image and the overlay on it again (restore
/// after a checkpoint unmounted them, or after a host reboot). What is
/// already mounted is kept.
pub fn remount(sys: &dyn Sys, paths: &SandboxPaths, lower: &Path) -> Result<(), RuntimeError> {
    let mounted = mounts_under(&paths.dir)?;
    if !mounted.contains(&paths.disk_mnt()) {
        attach_and_mount(sys, paths)?;
    }
    if !mounted.contains(&paths.rootfs()) {
        mount_overlay(sys, paths, lower)?;
    }
    Ok(())
}

fn attach_and_mount(sys: &dyn Sys, paths: &SandboxPaths) -> Result<(), RuntimeError> {
    let mnt = paths.disk_mnt();
    std::fs::create_dir_all(&mnt)?;
    let (dev, keep) = sys.loop_attach(&paths.disk_img())?;
    sys.mount(&dev.to_string_lossy(), &mnt, "ext4", "")?;
    drop(keep);
    Ok(())
}

/// Flushes the disk and unmounts the overlay and the disk (which frees the
/// loop device), keeping the image: afterwards `disk.img` holds every write
/// and can be copied. Idempotent.
pub fn unmount(sys: &dyn Sys, paths: &SandboxPaths) -> Result<(), RuntimeError> {
    let mounted = mounts_under(&paths.dir)?;
    if mounted.contains(&paths.disk_mnt()) {
        sys.sync_fs(&paths.disk_mnt())?;
    }
    for m in mounted.into_iter().rev() {
        sys.umount(&m)
            .map_err(|e| io(format!("unmounting {} failed: {e}", m.display())))?;
    }
    Ok(())
}

/// Waits until no loop device is backed by the sandbox's `disk.img`.
/// Unmounts are lazy, and a container's dying mount namespace can hold the
/// filesystem a little longer; ext4 writes its superblock when the last
/// reference goes, and only then does the loop device (autoclear) let go.
/// Until that moment the image can still change, so it is not copied (a
/// fork) or counted as final. Returns whether it was released in time.
pub fn wait_released(paths: &SandboxPaths, timeout: std::time::Duration) -> bool {
    let img = std::fs::canonicalize(paths.disk_img()).unwrap_or_else(|_| paths.disk_img());
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if !loop_backs(&img) {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// Whether some loop device is backed by `file`.
fn loop_backs(file: &Path) -> bool {
    let Ok(entries) = std::fs::read_dir("/sys/block") else {
        return false;
    };
    let want = file.to_string_lossy();
    entries.flatten().any(|e| {
        std::fs::read_to_string(e.path().join("loop/backing_file"))
            .is_ok_and(|b| b.trim_end() == want)
    })
}

/// Grows the disk image to `mib` and its ext4: online (`resize2fs` on the
/// mounted filesystem, which needs CAP_SYS_RESOURCE) when the sandbox runs,
/// offline (`e2fsck -f`, then `resize2fs` on the image) when its disk is
/// unmounted (checkpointed).
pub fn grow(sys: &dyn Sys, paths: &SandboxPaths, mib: u64) -> Result<(), RuntimeError> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(paths.disk_img())?;
    // A larger file than the filesystem is harmless (the rest is a hole),
    // so a failed resize below leaves nothing to undo.
    if f.metadata()?.len() < mib * 1024 * 1024 {
        f.set_len(mib * 1024 * 1024)?;
    }
    drop(f);
    match mount_source(&paths.disk_mnt())? {
        Some(dev) => grow_online(sys, &dev),
        None => grow_offline(sys, &paths.disk_img()),
    }
}

fn grow_online(sys: &dyn Sys, dev: &str) -> Result<(), RuntimeError> {
    sys.loop_set_capacity(Path::new(dev))?;
    let out = sys.run(Path::new("resize2fs"), &[dev.into()])?;
    if out.success() {
        return Ok(());
    }
    if out.stderr.contains("Permission denied") {
        // The kernel's online resize asks for CAP_SYS_RESOURCE, which some
        // hosts (containers, restricted VMs) do not give even to root.
        return Err(RuntimeError::Unsupported(
            "growing a running sandbox's disk needs CAP_SYS_RESOURCE, which this host's root lacks; pause the sandbox and grow it then".into(),
        ));
    }
    Err(io(format!("resize2fs {dev} failed: {}", out.stderr.trim())))
}

fn grow_offline(sys: &dyn Sys, img: &Path) -> Result<(), RuntimeError> {
    // resize2fs refuses an unmounted filesystem that was not checked since
    // its last mount. Exit 1 means "errors corrected".
    let out = sys.run(Path::new("e2fsck"), &["-f".into(), "-p".into(), img.into()])?;
    if out.code > 1 {
        return Err(io(format!(
            "e2fsck {} failed ({}): {}",
            img.display(),
            out.code,
            out.stderr.trim()
        )));
    }
    let out = sys.run(Path::new("resize2fs"), &[img.into()])?;
    if !out.success() {
        return Err(io(format!(
            "resize2fs {} failed: {}",
            img.display(),
            out.stderr.trim()
        )));
    }
    Ok(())
}

/// The source (device) of the mount at `target`, from mountinfo.
fn mount_source(target: &Path) -> Result<Option<String>, RuntimeError> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info.lines().find_map(|l| {
        let mut fields = l.split(' ');
        let point = fields.nth(4)?;
        if Path::new(&unescape(point)) != target {
            return None;
        }
        // After the optional fields: "- fstype source options".
        let rest = l.split(" - ").nth(1)?;
        rest.split(' ').nth(1).map(unescape)
    }))
}

/// Unmounts the overlay and the disk (which frees the loop device) and
/// removes the image. Idempotent: what is not mounted is skipped.
pub fn teardown(sys: &dyn Sys, paths: &SandboxPaths) -> Result<(), RuntimeError> {
    for m in mounts_under(&paths.dir)?.into_iter().rev() {
        sys.umount(&m)
            .map_err(|e| io(format!("unmounting {} failed: {e}", m.display())))?;
    }
    match std::fs::remove_file(paths.disk_img()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Mount points at or below `dir`, in mount order (unmount in reverse).
pub fn mounts_under(dir: &Path) -> Result<Vec<PathBuf>, RuntimeError> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::RecordingSys;

    #[test]
    fn create_formats_mounts_and_chowns_in_order() {
        let d = tempfile::tempdir().unwrap();
        let paths = SandboxPaths {
            dir: d.path().to_path_buf(),
        };
        let sys = RecordingSys::default();
        let pool = DiskPool::new(d.path().join("pool"), 0);
        create(&sys, &paths, 64, 100000, &pool).unwrap();
        let calls = sys.calls();
        assert!(calls[0].starts_with("mkfs.ext4 -q -F -m 0 -O ^has_journal"));
        assert_eq!(
            calls[1],
            format!("loop_attach {}", paths.disk_img().display())
        );
        assert_eq!(
            calls[2],
            format!("mount ext4 /dev/loop99 {} ", paths.disk_mnt().display())
        );
        assert_eq!(
            calls[3],
            format!("chown 100000:100000 {}", paths.upper().display())
        );
        assert_eq!(std::fs::metadata(paths.disk_img()).unwrap().len(), 64 << 20);
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/plain"), "/plain");
    }
}

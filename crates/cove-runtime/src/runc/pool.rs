//! A pool of pre-formatted sandbox disks. Formatting an ext4 image costs a
//! fork+exec of `mkfs.ext4` and ~15–30 ms here, on the create path. So the
//! runtime keeps a few formatted sparse images per size under
//! `<state>/pool/` (`<mib>-<n>.img`, renamed from `.tmp` when complete), a
//! create takes one by renaming it into its sandbox dir, and a background
//! thread formats a replacement. Sizes are learnt from creates (the shapes
//! in use); an empty pool just means create formats inline.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::sys::Sys;
use crate::RuntimeError;

/// Formats `img` as a sparse ext4 file of `mib` MiB: no journal (a
/// sandbox's scratch disk does not need crash consistency), no reserved
/// blocks (the sandbox gets all of `disk_mib`).
pub fn format(sys: &dyn Sys, img: &Path, mib: u64) -> Result<(), RuntimeError> {
    let f = std::fs::File::create(img)?;
    f.set_len(mib.max(16) * 1024 * 1024)?;
    drop(f);
    let args: Vec<std::ffi::OsString> = vec![
        "-q".into(),
        "-F".into(),
        "-m".into(),
        "0".into(),
        "-O".into(),
        "^has_journal".into(),
        "-E".into(),
        "nodiscard,lazy_itable_init=1".into(),
        img.into(),
    ];
    let out = sys.run(Path::new("mkfs.ext4"), &args)?;
    if !out.success() {
        let _ = std::fs::remove_file(img);
        return Err(RuntimeError::Io(std::io::Error::other(format!(
            "mkfs.ext4 failed: {}",
            out.stderr.trim()
        ))));
    }
    Ok(())
}

/// Formatted disks waiting for a sandbox.
pub struct DiskPool {
    dir: PathBuf,
    /// Images kept ready per size.
    target: usize,
    /// Sizes being refilled (one refill thread per size at a time).
    refilling: Mutex<HashSet<u64>>,
    seq: AtomicU64,
}

impl DiskPool {
    pub fn new(dir: PathBuf, target: usize) -> DiskPool {
        DiskPool {
            dir,
            target,
            refilling: Mutex::new(HashSet::new()),
            seq: AtomicU64::new(0),
        }
    }

    fn ready(&self, mib: u64) -> Vec<PathBuf> {
        let prefix = format!("{mib}-");
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                name.starts_with(&prefix) && name.ends_with(".img")
            })
            .collect()
    }

    /// Moves a formatted disk of `mib` MiB to `dest`; false when none is ready.
    pub fn take(&self, mib: u64, dest: &Path) -> bool {
        // A concurrent create may rename the same file first: try the next.
        self.ready(mib)
            .iter()
            .any(|p| std::fs::rename(p, dest).is_ok())
    }

    /// Formats disks of `mib` MiB in the background until `target` are ready.
    pub fn refill(self: &Arc<Self>, sys: Arc<dyn Sys>, mib: u64) {
        if self.target == 0 {
            return;
        }
        let started = self
            .refilling
            .lock()
            .map(|mut r| r.insert(mib))
            .unwrap_or(false);
        if !started {
            return;
        }
        let pool = self.clone();
        std::thread::spawn(move || {
            let _ = std::fs::create_dir_all(&pool.dir);
            while pool.ready(mib).len() < pool.target {
                let n = pool.seq.fetch_add(1, Ordering::Relaxed);
                let tmp = pool
                    .dir
                    .join(format!("{mib}-{}-{n}.tmp", std::process::id()));
                if let Err(e) = format(sys.as_ref(), &tmp, mib) {
                    tracing::warn!(error = %e, "formatting a pooled disk failed");
                    break;
                }
                if std::fs::rename(&tmp, tmp.with_extension("img")).is_err() {
                    let _ = std::fs::remove_file(&tmp);
                    break;
                }
            }
            if let Ok(mut r) = pool.refilling.lock() {
                r.remove(&mib);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_moves_a_ready_image_of_the_right_size_only() {
        let d = tempfile::tempdir().unwrap();
        let pool = DiskPool::new(d.path().join("pool"), 2);
        std::fs::create_dir_all(d.path().join("pool")).unwrap();
        std::fs::write(d.path().join("pool/64-1-0.img"), b"x").unwrap();
        std::fs::write(d.path().join("pool/64-1-1.tmp"), b"x").unwrap();
        let dest = d.path().join("disk.img");
        assert!(!pool.take(128, &dest));
        assert!(pool.take(64, &dest));
        assert!(dest.exists());
        assert!(
            !pool.take(64, &d.path().join("other.img")),
            "a .tmp image is not ready"
        );
    }
}

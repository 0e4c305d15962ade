//! Base images: a catalog name (`devbox:1`) names a directory of the images
//! dir (`devbox-1/rootfs`, with a `stamp` written last by
//! `scripts/lib/image.sh`). Sandboxes run in a user namespace mapping root
//! to `uid_base`, so each image is copied once per uid range with every
//! owner shifted by `uid_base` (`<state>/lower/devbox-1@100000/rootfs`); the
//! copy is the read-only lower layer of every overlay. Cached by a stamp
//! holding the source stamp, so a rebuilt image is shifted again.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::sys::Sys;
use crate::RuntimeError;

/// The directory name of a catalog name: `devbox:1` → `devbox-1`.
pub fn dir_name(catalog: &str) -> String {
    catalog.replace([':', '/'], "-")
}

/// The catalog names of the images present (directories with a stamp).
pub fn available(images_dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(images_dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.join("stamp").is_file() && p.join("rootfs").is_dir() {
            if let Some(name) = e.file_name().to_str() {
                // devbox-1 → devbox:1 (the last dash separates the tag).
                out.push(match name.rsplit_once('-') {
                    Some((n, tag)) => format!("{n}:{tag}"),
                    None => name.to_string(),
                });
            }
        }
    }
    out.sort();
    out
}

/// Returns the shifted lower dir of `catalog`, preparing it when missing or stale.
pub fn prepare_lower(
    sys: &dyn Sys,
    images_dir: &Path,
    lower_root: &Path,
    catalog: &str,
    uid_base: u32,
) -> Result<PathBuf, RuntimeError> {
    let name = dir_name(catalog);
    let src = images_dir.join(&name);
    let src_stamp = std::fs::read_to_string(src.join("stamp"))
        .map_err(|_| RuntimeError::UnknownImage(catalog.to_string()))?;
    let dst = lower_root.join(format!("{name}@{uid_base}"));
    let want_stamp = format!("{uid_base}\n{src_stamp}");
    if std::fs::read_to_string(dst.join("stamp")).ok().as_deref() == Some(want_stamp.as_str()) {
        return Ok(dst.join("rootfs"));
    }
    std::fs::create_dir_all(lower_root)?;
    set_mode(lower_root, 0o711)?;
    // Several runtimes (tests) may share the lower dir: one prepares, the
    // others wait and then find the stamp.
    let lock = std::fs::File::create(lower_root.join(format!(".{name}@{uid_base}.lock")))?;
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
        .map_err(std::io::Error::from)?;
    if std::fs::read_to_string(dst.join("stamp")).ok().as_deref() == Some(want_stamp.as_str()) {
        return Ok(dst.join("rootfs"));
    }
    let tmp = lower_root.join(format!(".{name}@{uid_base}.tmp"));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    set_mode(&tmp, 0o711)?;
    let out = sys.run(
        Path::new("cp"),
        &[
            "-a".into(),
            "--".into(),
            src.join("rootfs").into(),
            tmp.join("rootfs").into(),
        ],
    )?;
    if !out.success() {
        return Err(RuntimeError::Io(std::io::Error::other(format!(
            "copying image {catalog} failed: {}",
            out.stderr.trim()
        ))));
    }
    shift_tree(&tmp.join("rootfs"), uid_base)?;
    std::fs::write(tmp.join("stamp"), &want_stamp)?;
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::rename(&tmp, &dst)?;
    Ok(dst.join("rootfs"))
}

fn set_mode(p: &Path, mode: u32) -> std::io::Result<()> {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
}

/// Adds `base` to the owner and group of every inode under `root`. chown
/// clears setuid/setgid bits, so they are put back afterwards.
fn shift_tree(root: &Path, base: u32) -> std::io::Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let md = std::fs::symlink_metadata(&p)?;
        std::os::unix::fs::lchown(&p, Some(md.uid() + base), Some(md.gid() + base))?;
        if !md.file_type().is_symlink() && md.mode() & 0o6000 != 0 {
            set_mode(&p, md.mode() & 0o7777)?;
        }
        if md.is_dir() {
            for e in std::fs::read_dir(&p)? {
                stack.push(e?.path());
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_names_map_to_dirs() {
        assert_eq!(dir_name("devbox:1"), "devbox-1");
        assert_eq!(dir_name("nodeops/sandbox:debian"), "nodeops-sandbox-debian");
    }

    #[test]
    fn available_lists_stamped_images_only() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("devbox-1/rootfs")).unwrap();
        std::fs::write(d.path().join("devbox-1/stamp"), "x").unwrap();
        std::fs::create_dir_all(d.path().join("half-1/rootfs")).unwrap();
        assert_eq!(available(d.path()), vec!["devbox:1".to_string()]);
    }

    #[test]
    fn unknown_image_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        let sys = crate::sys::RecordingSys::default();
        let r = prepare_lower(&sys, d.path(), &d.path().join("lower"), "nope:1", 100000);
        assert!(matches!(r, Err(RuntimeError::UnknownImage(n)) if n == "nope:1"));
    }
}

//! The reference test through a real FUSE mount: the same operations as
//! `harness.rs`, done with syscalls (`std::fs`) on a mounted session, so it
//! runs against every session kind (in-memory, and garage when its session
//! creator is passed). The kernel follows symlinks where our path-based
//! harness does not, so operations whose path goes through a symlink are
//! skipped here (they are covered by `harness.rs`).

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::io::IntoRawFd;
use std::path::Path;

use super::model::{Model, Node};
use super::ops::{Op, PATHS};
use crate::common::Session;

fn errno(r: std::io::Result<()>) -> Result<(), i32> {
    r.map_err(|e| e.raw_os_error().unwrap_or(-1))
}

/// close(2) with its error (File's drop ignores it).
fn close(f: std::fs::File) -> std::io::Result<()> {
    let fd = f.into_raw_fd();
    // SAFETY: fd was just taken from a File, so it is open and ours.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn through_symlink(model: &Model, path: &str, include_self: bool) -> bool {
    let parts: Vec<&str> = path.split('/').collect();
    let upto = if include_self {
        parts.len()
    } else {
        parts.len() - 1
    };
    (1..=upto).any(|n| {
        matches!(
            model.nodes.get(&parts[..n].join("/")),
            Some(Node::Symlink(_))
        )
    })
}

fn write_at(root: &Path, path: &str, offset: u64, data: &[u8]) -> std::io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(root.join(path))?;
    f.seek(SeekFrom::Start(offset))?;
    let written = f.write_all(data);
    let closed = close(f);
    written.and(closed)
}

/// Run `ops` on `session` and the model, comparing after every step.
pub fn run(session: &mut Session, ops: &[Op]) {
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        let root = session.root().to_path_buf();
        let p = |i: &usize| PATHS[*i];
        let (got, want) = match op {
            Op::Write {
                path,
                offset,
                len,
                byte,
            } => {
                if through_symlink(&model, p(path), true) {
                    continue;
                }
                let data = vec![*byte; *len as usize];
                (
                    errno(write_at(&root, p(path), u64::from(*offset), &data)),
                    model.write_at(p(path), *offset as usize, &data),
                )
            }
            Op::Truncate { path, len } => {
                if through_symlink(&model, p(path), true) {
                    continue;
                }
                let r = std::fs::OpenOptions::new()
                    .write(true)
                    .open(root.join(p(path)))
                    .and_then(|f| {
                        let t = f.set_len(u64::from(*len));
                        t.and(close(f))
                    });
                (errno(r), model.truncate(p(path), *len as usize))
            }
            Op::Rename { from, to } => {
                if through_symlink(&model, p(from), false) || through_symlink(&model, p(to), false)
                {
                    continue;
                }
                (
                    errno(std::fs::rename(root.join(p(from)), root.join(p(to)))),
                    model.rename(p(from), p(to)),
                )
            }
            Op::Unlink { path } => {
                if through_symlink(&model, p(path), false) {
                    continue;
                }
                (
                    errno(std::fs::remove_file(root.join(p(path)))),
                    model.unlink(p(path)),
                )
            }
            Op::Mkdir { path } => {
                if through_symlink(&model, p(path), false) {
                    continue;
                }
                (
                    errno(std::fs::create_dir(root.join(p(path)))),
                    model.mkdir(p(path)),
                )
            }
            Op::Rmdir { path } => {
                if through_symlink(&model, p(path), false) {
                    continue;
                }
                (
                    errno(std::fs::remove_dir(root.join(p(path)))),
                    model.rmdir(p(path)),
                )
            }
            Op::Symlink { path, target } => {
                if through_symlink(&model, p(path), false) {
                    continue;
                }
                let r = std::os::unix::fs::symlink(p(target), root.join(p(path)));
                (errno(r), model.symlink(p(path), p(target)))
            }
            Op::Remount => {
                session.remount();
                (Ok(()), Ok(()))
            }
            Op::ExternalPut { path, len, byte } => {
                let data = vec![*byte; *len as usize];
                if model.external_put(p(path), &data) {
                    session.bucket.put(p(path), &data, Default::default());
                }
                (Ok(()), Ok(()))
            }
            Op::ExternalDelete { path } => {
                if model.external_delete(p(path)) {
                    session.bucket.delete(p(path));
                }
                (Ok(()), Ok(()))
            }
        };
        let got = normalise(got, &want);
        assert_eq!(got, want, "step {step}: {op:?}");
        compare(session, &model, step, op);
    }
}

/// Unlinking a directory is EISDIR in POSIX but Linux's unlink(2)
/// reports it that way too; rename of a file over a directory is EISDIR.
/// Nothing to normalise beyond identity today; kept as the one place to
/// document kernel-specific spellings.
fn normalise(got: Result<(), i32>, _want: &Result<(), i32>) -> Result<(), i32> {
    got
}

fn compare(session: &Session, model: &Model, step: usize, op: &Op) {
    let root = session.root();
    let mut seen = Vec::new();
    let mut dirs = vec![String::new()];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(root.join(&dir))
            .unwrap_or_else(|e| panic!("step {step} {op:?}: read_dir {dir:?}: {e}"))
        {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            let path = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            let meta = std::fs::symlink_metadata(root.join(&path))
                .unwrap_or_else(|e| panic!("step {step}: lstat {path}: {e}"));
            let node = if meta.is_dir() {
                dirs.push(path.clone());
                Node::Dir
            } else if meta.file_type().is_symlink() {
                Node::Symlink(
                    std::fs::read_link(root.join(&path))
                        .expect("readlink")
                        .to_string_lossy()
                        .into_owned(),
                )
            } else {
                Node::File(
                    std::fs::read(root.join(&path))
                        .unwrap_or_else(|e| panic!("step {step}: read {path}: {e}")),
                )
            };
            seen.push((path, node));
        }
    }
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    let want: Vec<(String, Node)> = model.nodes.clone().into_iter().collect();
    assert!(
        seen == want,
        "step {step}: tree differs after {op:?}:\n got {:?}\nwant {:?}",
        summary(&seen),
        summary(&want)
    );
    for (path, node) in &model.nodes {
        if let Node::File(bytes) = node {
            let body = session
                .bucket
                .get(path)
                .unwrap_or_else(|| panic!("step {step}: no object {path}"));
            assert!(body == *bytes, "step {step}: object {path} differs");
        }
    }
}

fn summary(nodes: &[(String, Node)]) -> Vec<String> {
    nodes
        .iter()
        .map(|(p, n)| match n {
            Node::File(b) => format!("{p}:file({})", b.len()),
            Node::Dir => format!("{p}:dir"),
            Node::Symlink(t) => format!("{p}->{t}"),
        })
        .collect()
}

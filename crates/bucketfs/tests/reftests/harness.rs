//! Runs a sequence of operations on the filesystem (over the in-memory
//! client) and on the model, comparing results after every step: the error
//! of each operation, the whole tree (kinds, bytes, symlink targets) and the
//! bucket itself (every file's object holds exactly its bytes after close).

use bucketfs::fs::FileKind;
use bucketfs::memory::MemoryClient;

use super::model::{Model, Node};
use super::ops::{Op, PATHS};
use crate::common::pathfs::PathFs;

/// Run `ops`; panics with the step on the first difference.
pub async fn run(ops: &[Op]) {
    let client = MemoryClient::new();
    let mut fs = PathFs::new(client.clone(), |_| {});
    let mut model = Model::default();
    for (step, op) in ops.iter().enumerate() {
        let (got, want) = apply(&mut fs, &client, &mut model, op).await;
        assert_eq!(got, want, "step {step}: {op:?} returned a different result");
        compare(&fs, &client, &model, step, op).await;
    }
}

async fn apply(
    fs: &mut PathFs<MemoryClient>,
    client: &MemoryClient,
    model: &mut Model,
    op: &Op,
) -> (Result<(), i32>, Result<(), i32>) {
    match op {
        Op::Write {
            path,
            offset,
            len,
            byte,
        } => {
            let data = vec![*byte; *len as usize];
            let p = PATHS[*path];
            (
                fs.write_at(p, u64::from(*offset), &data).await,
                model.write_at(p, *offset as usize, &data),
            )
        }
        Op::Truncate { path, len } => {
            let p = PATHS[*path];
            (
                fs.truncate(p, u64::from(*len)).await,
                model.truncate(p, *len as usize),
            )
        }
        Op::Rename { from, to } => {
            let (f, t) = (PATHS[*from], PATHS[*to]);
            (fs.rename(f, t).await, model.rename(f, t))
        }
        Op::Unlink { path } => (fs.unlink(PATHS[*path]).await, model.unlink(PATHS[*path])),
        Op::Mkdir { path } => (fs.mkdir(PATHS[*path]).await, model.mkdir(PATHS[*path])),
        Op::Rmdir { path } => (fs.rmdir(PATHS[*path]).await, model.rmdir(PATHS[*path])),
        Op::Symlink { path, target } => {
            let (p, t) = (PATHS[*path], PATHS[*target]);
            (fs.symlink(p, t).await, model.symlink(p, t))
        }
        Op::Remount => {
            fs.shutdown().await;
            *fs = PathFs::new(client.clone(), |_| {});
            (Ok(()), Ok(()))
        }
        Op::ExternalPut { path, len, byte } => {
            let data = vec![*byte; *len as usize];
            if model.external_put(PATHS[*path], &data) {
                client.insert(PATHS[*path], data, Default::default());
            }
            (Ok(()), Ok(()))
        }
        Op::ExternalDelete { path } => {
            if model.external_delete(PATHS[*path]) {
                client.remove(PATHS[*path]);
            }
            (Ok(()), Ok(()))
        }
    }
}

/// Walk the filesystem and compare it, and the bucket, with the model.
async fn compare(
    fs: &PathFs<MemoryClient>,
    client: &MemoryClient,
    model: &Model,
    step: usize,
    op: &Op,
) {
    let mut seen = Vec::new();
    let mut dirs = vec![String::new()];
    while let Some(dir) = dirs.pop() {
        let entries = fs
            .list(&dir)
            .await
            .unwrap_or_else(|e| panic!("step {step} ({op:?}): list {dir:?}: errno {e}"));
        for (name, _) in entries {
            let path = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            // A listing cannot tell symlinks from files (SEMANTICS.md); a
            // lookup can.
            let kind = fs
                .resolve(&path)
                .await
                .unwrap_or_else(|e| panic!("step {step} ({op:?}): lookup {path:?}: errno {e}"))
                .1
                .kind;
            let node = match kind {
                FileKind::Directory => {
                    dirs.push(path.clone());
                    Node::Dir
                }
                FileKind::File => {
                    Node::File(fs.read_file(&path).await.unwrap_or_else(|e| {
                        panic!("step {step} ({op:?}): read {path:?}: errno {e}")
                    }))
                }
                FileKind::Symlink => Node::Symlink(fs.readlink(&path).await.unwrap_or_default()),
            };
            seen.push((path, node));
        }
    }
    seen.sort_by(|a, b| a.0.cmp(&b.0));
    let want: Vec<(String, Node)> = model.nodes.clone().into_iter().collect();
    assert_eq!(seen, want, "step {step}: tree differs after {op:?}");
    for (path, node) in &model.nodes {
        match node {
            Node::File(bytes) => {
                let obj = client
                    .object(path)
                    .unwrap_or_else(|| panic!("step {step}: no object for {path}"));
                assert_eq!(
                    &obj.body[..],
                    &bytes[..],
                    "step {step}: object {path} differs"
                );
            }
            Node::Symlink(t) => {
                let obj = client
                    .object(path)
                    .unwrap_or_else(|| panic!("step {step}: no object for {path}"));
                assert_eq!(
                    &obj.body[..],
                    t.as_bytes(),
                    "step {step}: symlink object {path}"
                );
            }
            Node::Dir => {
                assert!(
                    client.object(&format!("{path}/")).is_some(),
                    "step {step}: no marker for {path}/"
                );
            }
        }
    }
}

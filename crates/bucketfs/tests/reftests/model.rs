//! The reference model: a plain map from path to node with POSIX
//! semantics (as narrowed by SEMANTICS.md), and the errno each operation
//! should fail with.

use std::collections::BTreeMap;

/// One node of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File(Vec<u8>),
    Dir,
    Symlink(String),
}

/// The whole tree (the root is implicit).
#[derive(Debug, Clone, Default)]
pub struct Model {
    pub nodes: BTreeMap<String, Node>,
}

pub type R = Result<(), i32>;

fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

impl Model {
    /// The parent of `path` must be a directory.
    fn check_parent(&self, path: &str) -> R {
        let parent = parent_of(path);
        if parent.is_empty() {
            return Ok(());
        }
        self.check_parent(parent)?;
        match self.nodes.get(parent) {
            None => Err(libc::ENOENT),
            Some(Node::Dir) => Ok(()),
            Some(_) => Err(libc::ENOTDIR),
        }
    }

    fn children(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{dir}/");
        self.nodes
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .cloned()
            .collect()
    }

    pub fn write_at(&mut self, path: &str, offset: usize, data: &[u8]) -> R {
        self.check_parent(path)?;
        match self.nodes.get_mut(path) {
            Some(Node::Dir) => Err(libc::EISDIR),
            Some(Node::Symlink(_)) => Err(libc::EINVAL),
            Some(Node::File(bytes)) => {
                if bytes.len() < offset + data.len() {
                    bytes.resize(offset + data.len(), 0);
                }
                bytes[offset..offset + data.len()].copy_from_slice(data);
                Ok(())
            }
            None => {
                let mut bytes = vec![0; offset];
                bytes.extend_from_slice(data);
                self.nodes.insert(path.to_string(), Node::File(bytes));
                Ok(())
            }
        }
    }

    pub fn truncate(&mut self, path: &str, len: usize) -> R {
        self.check_parent(path)?;
        match self.nodes.get_mut(path) {
            None => Err(libc::ENOENT),
            Some(Node::Dir) => Err(libc::EISDIR),
            Some(Node::Symlink(_)) => Err(libc::EINVAL),
            Some(Node::File(bytes)) => {
                bytes.resize(len, 0);
                Ok(())
            }
        }
    }

    pub fn mkdir(&mut self, path: &str) -> R {
        self.check_parent(path)?;
        if self.nodes.contains_key(path) {
            return Err(libc::EEXIST);
        }
        self.nodes.insert(path.to_string(), Node::Dir);
        Ok(())
    }

    pub fn rmdir(&mut self, path: &str) -> R {
        self.check_parent(path)?;
        match self.nodes.get(path) {
            None => Err(libc::ENOENT),
            Some(Node::Dir) if !self.children(path).is_empty() => Err(libc::ENOTEMPTY),
            Some(Node::Dir) => {
                self.nodes.remove(path);
                Ok(())
            }
            Some(_) => Err(libc::ENOTDIR),
        }
    }

    pub fn unlink(&mut self, path: &str) -> R {
        self.check_parent(path)?;
        match self.nodes.get(path) {
            None => Err(libc::ENOENT),
            Some(Node::Dir) => Err(libc::EISDIR),
            Some(_) => {
                self.nodes.remove(path);
                Ok(())
            }
        }
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> R {
        self.check_parent(path)?;
        if self.nodes.contains_key(path) {
            return Err(libc::EEXIST);
        }
        self.nodes
            .insert(path.to_string(), Node::Symlink(target.to_string()));
        Ok(())
    }

    pub fn rename(&mut self, from: &str, to: &str) -> R {
        self.check_parent(from)?;
        self.check_parent(to)?;
        let Some(src) = self.nodes.get(from).cloned() else {
            return Err(libc::ENOENT);
        };
        if src == Node::Dir && to.starts_with(&format!("{from}/")) {
            return Err(libc::EINVAL);
        }
        if from == to {
            return Ok(());
        }
        // Renaming onto an ancestor of the source: Linux answers ENOTEMPTY
        // (the ancestor holds the source) before comparing kinds.
        if from.starts_with(&format!("{to}/")) {
            return Err(libc::ENOTEMPTY);
        }
        match (&src, self.nodes.get(to)) {
            (Node::Dir, Some(Node::Dir)) if !self.children(to).is_empty() => {
                return Err(libc::ENOTEMPTY)
            }
            (Node::Dir, Some(Node::File(_) | Node::Symlink(_))) => return Err(libc::ENOTDIR),
            (Node::File(_) | Node::Symlink(_), Some(Node::Dir)) => return Err(libc::EISDIR),
            _ => {}
        }
        let moved: Vec<String> = std::iter::once(from.to_string())
            .chain(self.children(from))
            .collect();
        self.nodes.remove(to);
        for old in moved {
            let node = self.nodes.remove(&old).expect("listed above");
            let new = format!("{to}{}", &old[from.len()..]);
            self.nodes.insert(new, node);
        }
        Ok(())
    }

    /// Another client writes `path`: allowed only where the result is a
    /// valid tree (an existing directory as parent, no directory there).
    pub fn external_put(&mut self, path: &str, data: &[u8]) -> bool {
        if self.check_parent(path).is_err() || self.nodes.get(path) == Some(&Node::Dir) {
            return false;
        }
        self.nodes
            .insert(path.to_string(), Node::File(data.to_vec()));
        true
    }

    /// Another client deletes `path` (files and symlinks only).
    pub fn external_delete(&mut self, path: &str) -> bool {
        match self.nodes.get(path) {
            Some(Node::File(_) | Node::Symlink(_)) => {
                self.nodes.remove(path);
                true
            }
            _ => false,
        }
    }
}

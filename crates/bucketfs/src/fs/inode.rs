//! The inode table: inode numbers, names, cached attributes and what we know
//! about each inode's object. One `std::sync::Mutex` guards the whole table;
//! it is never held across an `.await` (requests to the bucket happen with
//! the lock released, and their results are applied afterwards).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use crate::client::ETag;
use crate::fs::meta::Attr;
use crate::fs::write::WriteSlot;

/// Most negative entries kept.
const MAX_MISSING: usize = 4096;

/// The root directory's inode number (FUSE's FUSE_ROOT_ID).
pub const ROOT_INO: u64 = 1;

/// What the server holds for an inode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// An object (file or symlink) at `key`, or a `dir/` marker.
    Object { etag: ETag },
    /// A directory that exists only as a common prefix (no marker).
    Implicit,
    /// Nothing yet: created here and not uploaded (or the root).
    Local,
}

/// One inode.
#[derive(Debug)]
pub struct Inode {
    pub ino: u64,
    pub parent: u64,
    pub name: String,
    /// Path from the mount root, `a/b/c` (no leading or trailing `/`).
    pub path: String,
    pub attr: Attr,
    pub remote: Remote,
    /// When `attr`/`remote` were last confirmed by the server; `None` for
    /// state that only exists here (authoritative until uploaded).
    pub validated: Option<Instant>,
    /// Whether `attr` came from object metadata (HEAD/GET) or was derived
    /// from a listing (size and LastModified only).
    pub meta_known: bool,
    /// Kernel lookup references (FUSE `forget` drops them).
    pub lookups: u64,
    /// Open file handles.
    pub handles: u32,
    /// Cached symlink target.
    pub target: Option<String>,
    /// For directories: when every child was known (a full listing, or a
    /// directory created here), so a missing name is ENOENT without asking.
    pub complete: Option<Instant>,
    /// The ETag whose bytes the kernel page cache holds (FUSE keep_cache).
    pub cached_etag: Option<ETag>,
    /// Staged data, when the file is or was open for writing.
    pub write: Option<Arc<WriteSlot>>,
    /// Set by unlink/rmdir/rename-over: the inode has no name any more.
    pub unlinked: bool,
}

/// The table. Children are indexed by (parent, name).
#[derive(Debug)]
pub struct InodeTable {
    pub inodes: HashMap<u64, Inode>,
    pub children: HashMap<u64, BTreeMap<String, u64>>,
    /// Names a probe found absent, and when (a negative cache bounded in
    /// size: cleared when it grows past `MAX_MISSING`).
    pub missing: HashMap<(u64, String), Instant>,
    next_ino: u64,
}

impl InodeTable {
    /// A table holding only the root.
    pub fn new(root_attr: Attr) -> Self {
        let root = Inode {
            ino: ROOT_INO,
            parent: ROOT_INO,
            name: String::new(),
            path: String::new(),
            attr: root_attr,
            remote: Remote::Local,
            validated: None,
            meta_known: true,
            lookups: 1,
            handles: 0,
            target: None,
            complete: None,
            cached_etag: None,
            write: None,
            unlinked: false,
        };
        let mut inodes = HashMap::new();
        inodes.insert(ROOT_INO, root);
        Self {
            inodes,
            children: HashMap::new(),
            missing: HashMap::new(),
            next_ino: ROOT_INO + 1,
        }
    }

    pub fn get(&self, ino: u64) -> Option<&Inode> {
        self.inodes.get(&ino)
    }

    pub fn get_mut(&mut self, ino: u64) -> Option<&mut Inode> {
        self.inodes.get_mut(&ino)
    }

    /// The child `name` of `parent`, if known.
    pub fn child(&self, parent: u64, name: &str) -> Option<u64> {
        self.children
            .get(&parent)
            .and_then(|c| c.get(name))
            .copied()
    }

    /// Insert a new inode as `parent/name`, replacing any previous child of
    /// that name (which becomes nameless).
    pub fn insert(
        &mut self,
        parent: u64,
        name: &str,
        attr: Attr,
        remote: Remote,
        validated: Option<Instant>,
        meta_known: bool,
    ) -> u64 {
        self.detach(parent, name);
        self.missing.remove(&(parent, name.to_string()));
        let ino = self.next_ino;
        self.next_ino += 1;
        let path = self.child_path(parent, name);
        self.inodes.insert(
            ino,
            Inode {
                ino,
                parent,
                name: name.to_string(),
                path,
                attr,
                remote,
                validated,
                meta_known,
                lookups: 0,
                handles: 0,
                target: None,
                complete: None,
                cached_etag: None,
                write: None,
                unlinked: false,
            },
        );
        self.children
            .entry(parent)
            .or_default()
            .insert(name.to_string(), ino);
        ino
    }

    /// Remember that `parent/name` was absent at `when`.
    pub fn remember_missing(&mut self, parent: u64, name: &str, when: Instant) {
        if self.missing.len() >= MAX_MISSING {
            self.missing.clear();
        }
        self.missing.insert((parent, name.to_string()), when);
    }

    /// The path of `name` under `parent`.
    pub fn child_path(&self, parent: u64, name: &str) -> String {
        match self.inodes.get(&parent) {
            Some(p) if !p.path.is_empty() => format!("{}/{}", p.path, name),
            _ => name.to_string(),
        }
    }

    /// Remove `parent/name` from the namespace; the inode lives on (open
    /// handles, kernel references) but is marked unlinked.
    pub fn detach(&mut self, parent: u64, name: &str) -> Option<u64> {
        let ino = self.children.get_mut(&parent)?.remove(name)?;
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.unlinked = true;
        }
        self.maybe_drop(ino);
        Some(ino)
    }

    /// Move `ino` to `new_parent/new_name`, replacing what was there, and
    /// rewrite the paths of everything under it.
    pub fn rename(&mut self, ino: u64, new_parent: u64, new_name: &str) {
        let Some((old_parent, old_name)) =
            self.inodes.get(&ino).map(|i| (i.parent, i.name.clone()))
        else {
            return;
        };
        if let Some(c) = self.children.get_mut(&old_parent) {
            if c.get(&old_name) == Some(&ino) {
                c.remove(&old_name);
            }
        }
        self.detach(new_parent, new_name);
        self.missing.remove(&(new_parent, new_name.to_string()));
        let path = self.child_path(new_parent, new_name);
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.parent = new_parent;
            inode.name = new_name.to_string();
            inode.path = path;
        }
        self.children
            .entry(new_parent)
            .or_default()
            .insert(new_name.to_string(), ino);
        self.repath_children(ino);
    }

    fn repath_children(&mut self, ino: u64) {
        let kids: Vec<u64> = self
            .children
            .get(&ino)
            .map(|c| c.values().copied().collect())
            .unwrap_or_default();
        for kid in kids {
            let Some(name) = self.inodes.get(&kid).map(|i| i.name.clone()) else {
                continue;
            };
            let path = self.child_path(ino, &name);
            if let Some(k) = self.inodes.get_mut(&kid) {
                k.path = path;
            }
            self.repath_children(kid);
        }
    }

    /// Drop the kernel's references; frees the inode when nothing holds it.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if let Some(inode) = self.inodes.get_mut(&ino) {
            inode.lookups = inode.lookups.saturating_sub(n);
        }
        self.maybe_drop(ino);
    }

    /// Free an unlinked inode nobody references. Named inodes stay (they
    /// are the metadata cache), except when forgotten by the kernel and
    /// clean, which bounds memory to what the kernel holds plus listings.
    pub fn maybe_drop(&mut self, ino: u64) {
        if ino == ROOT_INO {
            return;
        }
        let Some(inode) = self.inodes.get(&ino) else {
            return;
        };
        let busy = inode.lookups > 0
            || inode.handles > 0
            || inode.write.is_some()
            || self.children.get(&ino).is_some_and(|c| !c.is_empty());
        if busy {
            return;
        }
        let (parent, name, unlinked) = (inode.parent, inode.name.clone(), inode.unlinked);
        if !unlinked {
            if let Some(c) = self.children.get_mut(&parent) {
                if c.get(&name) == Some(&ino) {
                    c.remove(&name);
                }
            }
            // The parent no longer knows every child.
            if let Some(p) = self.inodes.get_mut(&parent) {
                p.complete = None;
            }
        }
        self.inodes.remove(&ino);
        self.children.remove(&ino);
    }

    /// Every inode at or under `path` (for directory renames).
    pub fn under(&self, ino: u64) -> Vec<u64> {
        let mut out = vec![ino];
        let mut i = 0;
        while i < out.len() {
            if let Some(c) = self.children.get(&out[i]) {
                out.extend(c.values().copied());
            }
            i += 1;
        }
        out
    }
}

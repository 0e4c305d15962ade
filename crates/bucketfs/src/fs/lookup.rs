//! lookup, getattr, readdir and forget: answering from the inode table while
//! it is fresh, and asking the bucket (HEAD + one-key LIST for a name, a
//! delimited LIST for a directory) when it is not.
//!
//! A name that is both an object `a` and a prefix `a/` is shown as the
//! directory (the object is hidden); `SEMANTICS.md` says so.

use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::client::{ListObjectsParams, ObjectClient, ObjectClientError};
use crate::fs::inode::Remote;
use crate::fs::meta::{Attr, FileKind};
use crate::fs::{check_name, Filesystem, FsError, FsResult, ROOT_INO};

/// A directory known completely before, with fewer entries than this (one
/// listing page), is re-listed rather than probed name by name.
const RELIST_MAX_ENTRIES: usize = 1000;

/// One directory entry with its attributes (for readdirplus).
#[derive(Debug, Clone)]
pub struct DirEntry {
    pub ino: u64,
    pub name: String,
    pub attr: Attr,
}

/// What the bucket holds at a path.
enum Probe {
    Missing,
    Object { attr: Attr, remote: Remote },
    Dir { attr: Attr, remote: Remote },
}

impl<C: ObjectClient> Filesystem<C> {
    /// Look `name` up in directory `parent`; counts one kernel reference.
    pub async fn lookup(&self, parent: u64, name: &str) -> FsResult<(u64, Attr)> {
        let (ino, attr) = self.resolve(parent, name).await?;
        if let Some(i) = self.table().get_mut(ino) {
            i.lookups += 1;
        }
        Ok((ino, attr))
    }

    /// Check that the bucket (and prefix) can be listed: one request, used
    /// at mount time so a wrong name or credentials fail the mount itself.
    pub async fn check_bucket(&self) -> FsResult<()> {
        let params = ListObjectsParams {
            prefix: self.config.prefix.clone(),
            delimiter: Some("/".into()),
            max_keys: Some(1),
            ..Default::default()
        };
        self.client
            .list_objects(&params)
            .await
            .map(|_| ())
            .map_err(|e| FsError::client("list", &self.config.prefix, e))
    }

    /// Add one kernel reference to `ino` (a readdirplus entry handed out).
    pub fn remember(&self, ino: u64) {
        if let Some(i) = self.table().get_mut(ino) {
            i.lookups += 1;
        }
    }

    /// Drop `n` kernel references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        self.table().forget(ino, n);
    }

    /// Resolve `parent/name` to an inode without counting a reference.
    pub(crate) async fn resolve(&self, parent: u64, name: &str) -> FsResult<(u64, Attr)> {
        check_name(name).map_err(|_| FsError::NotFound)?;
        let path = {
            let table = self.table();
            let p = table.get(parent).ok_or(FsError::Stale)?;
            if p.attr.kind != FileKind::Directory {
                return Err(FsError::NotDir);
            }
            if let Some(ino) = table.child(parent, name) {
                if let Some(i) = table.get(ino) {
                    if self.is_fresh(i.validated) || self.is_local(i) {
                        return Ok((ino, i.attr.clone()));
                    }
                }
            } else if p.complete.is_some_and(|t| self.is_fresh(Some(t)))
                || table
                    .missing
                    .get(&(parent, name.to_string()))
                    .is_some_and(|t| self.is_fresh(Some(*t)))
            {
                // Known absent: a full listing, or a recent probe (the
                // kernel's LOOKUP just before CREATE).
                return Err(FsError::NotFound);
            }
            let relist = p.complete.is_some()
                && self.config.metadata_ttl != Some(std::time::Duration::ZERO)
                && table.children.get(&parent).map_or(0, |c| c.len()) < RELIST_MAX_ENTRIES;
            (table.child_path(parent, name), relist)
        };
        let (path, relist) = path;
        if relist {
            // A small directory we knew completely: one listing revalidates
            // every name in it (cheaper than HEAD+LIST per name when a
            // program creates many files in a row).
            self.readdir(parent).await?;
            let table = self.table();
            return match table.child(parent, name).and_then(|i| table.get(i)) {
                Some(i) => Ok((i.ino, i.attr.clone())),
                None => Err(FsError::NotFound),
            };
        }
        let probe = self.probe(&path).await?;
        self.apply_probe(parent, name, probe)
    }

    /// Whether `inode` holds state the bucket does not have yet (a new file
    /// or unsaved writes): the table is then the authority.
    pub(crate) fn is_local(&self, inode: &super::inode::Inode) -> bool {
        inode.remote == Remote::Local
            || inode
                .write
                .as_ref()
                .is_some_and(|w| w.dirty.load(Ordering::Acquire))
    }

    async fn probe(&self, path: &str) -> FsResult<Probe> {
        let key = self.key(path);
        let dir_prefix = self.dir_prefix(path);
        let list = ListObjectsParams {
            prefix: dir_prefix.clone(),
            delimiter: Some("/".into()),
            max_keys: Some(1),
            ..Default::default()
        };
        let (head, listed) = tokio::join!(
            self.client.head_object(&key),
            self.client.list_objects(&list)
        );
        let listed = listed.map_err(|e| FsError::client("list", &dir_prefix, e))?;
        let defaults = self.config.defaults;
        if !listed.objects.is_empty() || !listed.common_prefixes.is_empty() {
            if listed.objects.first().is_some_and(|o| o.key == dir_prefix) {
                let marker = self
                    .client
                    .head_object(&dir_prefix)
                    .await
                    .map_err(|e| FsError::client("head", &dir_prefix, e))?;
                let attr = defaults
                    .from_metadata(&marker.metadata, 0, marker.last_modified, true)
                    .unwrap_or_else(|| defaults.attr(FileKind::Directory, 0, marker.last_modified));
                return Ok(Probe::Dir {
                    attr,
                    remote: Remote::Object { etag: marker.etag },
                });
            }
            let attr = defaults.attr(FileKind::Directory, 0, std::time::SystemTime::now());
            return Ok(Probe::Dir {
                attr,
                remote: Remote::Implicit,
            });
        }
        match head {
            Ok(h) => {
                let attr = defaults
                    .from_metadata(&h.metadata, h.size, h.last_modified, false)
                    .unwrap_or_else(|| defaults.attr(FileKind::File, h.size, h.last_modified));
                Ok(Probe::Object {
                    attr,
                    remote: Remote::Object { etag: h.etag },
                })
            }
            Err(ObjectClientError::NoSuchKey { .. }) => Ok(Probe::Missing),
            Err(e) => Err(FsError::client("head", &key, e)),
        }
    }

    fn apply_probe(&self, parent: u64, name: &str, probe: Probe) -> FsResult<(u64, Attr)> {
        let mut table = self.table();
        let existing = table.child(parent, name);
        let now = Instant::now();
        let (attr, remote) = match probe {
            Probe::Missing => {
                if let Some(ino) = existing {
                    if let Some(i) = table.get(ino).filter(|i| self.is_local(i)) {
                        return Ok((ino, i.attr.clone()));
                    }
                    table.detach(parent, name);
                }
                table.remember_missing(parent, name, now);
                return Err(FsError::NotFound);
            }
            Probe::Object { attr, remote } | Probe::Dir { attr, remote } => (attr, remote),
        };
        if let Some(ino) = existing {
            if let Some(i) = table.get_mut(ino) {
                if i.attr.kind == attr.kind {
                    if !self.is_local(i) {
                        if i.remote != remote && i.handles == 0 {
                            // Another version: staged copies of the old
                            // one are useless.
                            i.write = None;
                        }
                        i.attr = attr;
                        i.remote = remote;
                        i.meta_known = true;
                    }
                    i.validated = Some(now);
                    return Ok((ino, i.attr.clone()));
                }
            }
        }
        let ino = table.insert(parent, name, attr.clone(), remote, Some(now), true);
        Ok((ino, attr))
    }

    /// Attributes of `ino`, revalidated with the bucket after the TTL.
    pub async fn getattr(&self, ino: u64) -> FsResult<Attr> {
        let (parent, name) = {
            let table = self.table();
            let i = table.get(ino).ok_or(FsError::Stale)?;
            if ino == ROOT_INO || i.unlinked || self.is_fresh(i.validated) || self.is_local(i) {
                return Ok(i.attr.clone());
            }
            (i.parent, i.name.clone())
        };
        let (found, attr) = self.resolve(parent, &name).await?;
        if found == ino {
            Ok(attr)
        } else {
            // The name now refers to something else (replaced by another
            // client with a different kind).
            Err(FsError::Stale)
        }
    }

    /// Every entry of directory `ino` (without `.` and `..`), listed from
    /// the bucket and merged with files created here but not uploaded yet.
    /// Attributes of entries not seen before come from the listing.
    pub async fn readdir(&self, ino: u64) -> FsResult<Vec<DirEntry>> {
        let path = {
            let table = self.table();
            let i = table.get(ino).ok_or(FsError::Stale)?;
            if i.attr.kind != FileKind::Directory {
                return Err(FsError::NotDir);
            }
            i.path.clone()
        };
        let prefix = self.dir_prefix(&path);
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        let mut params = ListObjectsParams {
            prefix: prefix.clone(),
            delimiter: Some("/".into()),
            max_keys: Some(1000),
            ..Default::default()
        };
        loop {
            let page = self
                .client
                .list_objects(&params)
                .await
                .map_err(|e| FsError::client("list", &prefix, e))?;
            for o in page.objects {
                let name = o.key[prefix.len()..].to_string();
                if check_name(&name).is_ok() {
                    files.push((name, o));
                }
            }
            for cp in page.common_prefixes {
                let name = cp[prefix.len()..].trim_end_matches('/').to_string();
                if check_name(&name).is_ok() {
                    dirs.push(name);
                }
            }
            match page.next_continuation_token {
                Some(t) => params.continuation_token = Some(t),
                None => break,
            }
        }
        Ok(self.apply_listing(ino, files, dirs))
    }

    fn apply_listing(
        &self,
        dir: u64,
        files: Vec<(String, crate::client::ObjectInfo)>,
        dirs: Vec<String>,
    ) -> Vec<DirEntry> {
        let now = Instant::now();
        let defaults = self.config.defaults;
        let mut table = self.table();
        let mut seen = std::collections::BTreeMap::new();
        for name in dirs {
            let attr = defaults.attr(FileKind::Directory, 0, std::time::SystemTime::now());
            seen.insert(name, (attr, Remote::Implicit));
        }
        for (name, o) in files {
            if seen.contains_key(&name) {
                continue; // the directory hides the object
            }
            let attr = defaults.attr(FileKind::File, o.size, o.last_modified);
            seen.insert(name, (attr, Remote::Object { etag: o.etag }));
        }
        let known: Vec<(String, u64)> = table
            .children
            .get(&dir)
            .map(|c| c.iter().map(|(n, i)| (n.clone(), *i)).collect())
            .unwrap_or_default();
        for (name, ino) in known {
            if !seen.contains_key(&name) {
                let local = table.get(ino).is_some_and(|i| self.is_local(i));
                if !local {
                    table.detach(dir, &name);
                }
            }
        }
        for (name, (attr, remote)) in seen {
            let existing = table.child(dir, &name);
            let updated = existing.and_then(|ino| table.get_mut(ino)).and_then(|i| {
                if i.attr.kind == FileKind::Symlink && attr.kind == FileKind::File {
                    // Listings cannot tell symlinks from files; keep what a
                    // HEAD told us while the ETag is the same.
                    if i.remote == remote {
                        i.validated = Some(now);
                        return Some(i.ino);
                    }
                }
                if i.attr.kind != attr.kind {
                    return None;
                }
                if !self.is_local(i) {
                    let same_dir = attr.kind == FileKind::Directory;
                    if !same_dir && i.remote != remote {
                        i.attr.size = attr.size;
                        i.attr.mtime = attr.mtime;
                        i.remote = remote.clone();
                        i.meta_known = false;
                        if i.handles == 0 {
                            i.write = None;
                        }
                    }
                    i.validated = Some(now);
                }
                Some(i.ino)
            });
            if updated.is_none() {
                table.insert(dir, &name, attr, remote, Some(now), false);
            }
        }
        if let Some(d) = table.get_mut(dir) {
            d.complete = Some(now);
        }
        table
            .children
            .get(&dir)
            .map(|c| c.iter().map(|(n, i)| (n.clone(), *i)).collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(name, ino)| {
                table.get(ino).map(|i| DirEntry {
                    ino,
                    name,
                    attr: i.attr.clone(),
                })
            })
            .collect()
    }
}

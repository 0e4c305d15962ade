//! Write-back staging: every file open for writing has a local sparse file in
//! a bounded staging directory; writes land there and are uploaded on
//! flush/fsync/release (see `crate::upload`).
//!
//! A staged file mirrors the object in fixed blocks of [`BLOCK_SIZE`]. Each
//! block is *absent* (its bytes are still only in the remote base object),
//! *clean* (a local copy of the base) or *dirty* (changed here). A partial
//! write to an absent block first copies that block of the base in (so the
//! local file always holds whole blocks), which lets the uploader send dirty
//! blocks from disk and copy untouched ranges on the server with
//! UploadPartCopy. Bytes past the base's length that were never written are
//! zeros (the sparse file's holes), which is what POSIX says for a file
//! extended by truncate or a write past the end.
//!
//! Files up to 1 MiB are staged in memory and spill to their file when they
//! grow past it (or when they must be kept for recovery).
//!
//! The staging area counts the logical size of every staged file against a
//! limit; a write that would exceed it fails with `ENOSPC` rather than
//! evicting anything (staged data may be the only copy).
//!
//! Staged data is kept while the mount runs, also after failed uploads (they
//! are retried); a file still dirty when the mount stops is left in the
//! staging directory with a `.key` file naming its object, so it can be
//! recovered by hand.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Granularity of dirty tracking and of UploadPartCopy decisions (≥ 5 MiB,
/// S3's minimum part size).
pub const BLOCK_SIZE: u64 = 8 * 1024 * 1024;

/// The bounded directory holding staged files.
#[derive(Debug)]
pub struct StagingArea {
    dir: PathBuf,
    max_bytes: u64,
    /// Sum of the logical sizes of live staged files.
    used: AtomicU64,
    next_id: AtomicU64,
}

/// State of one block of a staged file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// Only in the base object.
    Absent,
    /// A local copy of the base (or zeros past it), unchanged.
    Clean,
    /// Written here since the last upload.
    Dirty,
}

impl StagingArea {
    /// A staging area in `dir` (created if missing) holding at most
    /// `max_bytes` of staged data.
    pub fn new(dir: &Path, max_bytes: u64) -> io::Result<Arc<Self>> {
        std::fs::create_dir_all(dir)?;
        Ok(Arc::new(Self {
            dir: dir.to_path_buf(),
            max_bytes,
            used: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
        }))
    }

    /// Bytes currently staged.
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// The limit.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    fn reserve(&self, bytes: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(bytes).filter(|n| *n <= self.max_bytes)
            })
            .is_ok()
    }

    fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// A new, empty staged file whose first `base_len` bytes are absent
    /// (still only in the remote object).
    pub fn create(self: &Arc<Self>, base_len: u64) -> io::Result<StagedFile> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("staged-{}-{id}", std::process::id()));
        let mut staged = StagedFile {
            area: Arc::clone(self),
            backing: Backing::Memory(Vec::new()),
            path,
            size: 0,
            blocks: Vec::new(),
            gens: Vec::new(),
            next_gen: 1,
            keep: false,
        };
        staged.set_len_inner(base_len, Block::Absent)?;
        Ok(staged)
    }
}

/// Staged files up to this size live in memory (no file to create, size
/// and unlink for every small file written); larger ones spill to disk.
const MEMORY_MAX: u64 = 1 << 20;

/// Where a staged file's bytes are.
#[derive(Debug)]
enum Backing {
    Memory(Vec<u8>),
    File(File),
}

impl Backing {
    fn write_all_at(&mut self, data: &[u8], offset: u64) -> io::Result<()> {
        match self {
            Self::File(f) => f.write_all_at(data, offset),
            Self::Memory(v) => {
                let end = offset as usize + data.len();
                if v.len() < end {
                    v.resize(end, 0);
                }
                v[offset as usize..end].copy_from_slice(data);
                Ok(())
            }
        }
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self {
            Self::File(f) => f.read_exact_at(buf, offset),
            Self::Memory(v) => {
                let start = offset as usize;
                let src = v.get(start..start + buf.len()).ok_or_else(|| {
                    io::Error::new(io::ErrorKind::UnexpectedEof, "read past staged data")
                })?;
                buf.copy_from_slice(src);
                Ok(())
            }
        }
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        match self {
            Self::File(f) => f.set_len(len),
            Self::Memory(v) => {
                v.resize(len as usize, 0);
                Ok(())
            }
        }
    }
}

/// A range of a staged file to read later (see
/// [`StagedFile::range_reader`]).
#[derive(Debug)]
pub enum RangeReader {
    /// `len` bytes from `start` of the spilled file (an own descriptor).
    File {
        file: Arc<File>,
        start: u64,
        len: u64,
    },
    /// A copy of in-memory staged bytes.
    Bytes(Vec<u8>),
}

/// One staged file. Not internally synchronised: the filesystem keeps it
/// behind the inode's write lock.
#[derive(Debug)]
pub struct StagedFile {
    area: Arc<StagingArea>,
    backing: Backing,
    /// Where the data lives once it spills to disk (or is kept).
    path: PathBuf,
    size: u64,
    blocks: Vec<Block>,
    /// Per block, a number that changes whenever its bytes change, so an
    /// upload of a block made earlier can be recognised as still current.
    gens: Vec<u64>,
    next_gen: u64,
    /// Leave the file on disk when dropped (unrecoverable upload at stop).
    keep: bool,
}

fn block_count(size: u64) -> usize {
    size.div_ceil(BLOCK_SIZE) as usize
}

impl StagedFile {
    /// Logical size.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// State of block `i`.
    pub fn block(&self, i: usize) -> Block {
        self.blocks.get(i).copied().unwrap_or(Block::Clean)
    }

    /// Generation of block `i` (changes with its bytes).
    pub fn generation(&self, i: usize) -> u64 {
        self.gens.get(i).copied().unwrap_or(0)
    }

    /// Number of blocks.
    pub fn blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Whether any block is dirty.
    pub fn any_dirty(&self) -> bool {
        self.blocks.contains(&Block::Dirty)
    }

    /// Mark every dirty block clean (after a successful upload).
    pub fn mark_all_clean(&mut self) {
        for b in &mut self.blocks {
            if *b == Block::Dirty {
                *b = Block::Clean;
            }
        }
    }

    /// Indices of absent blocks overlapping `range`.
    pub fn absent_in(&self, start: u64, end: u64) -> Vec<usize> {
        if end <= start {
            return Vec::new();
        }
        let first = (start / BLOCK_SIZE) as usize;
        let last = ((end - 1) / BLOCK_SIZE) as usize;
        (first..=last.min(self.blocks.len().saturating_sub(1)))
            .filter(|i| self.blocks.get(*i) == Some(&Block::Absent))
            .collect()
    }

    /// Fill absent block `i` with its bytes from the base object.
    pub fn fill(&mut self, i: usize, data: &[u8]) -> io::Result<()> {
        self.backing.write_all_at(data, i as u64 * BLOCK_SIZE)?;
        if let Some(b) = self.blocks.get_mut(i) {
            if *b == Block::Absent {
                *b = Block::Clean;
            }
        }
        Ok(())
    }

    /// Write `data` at `offset` (the caller filled absent blocks it only
    /// partly covers). Grows the file; fails with `StorageFull` past the
    /// staging limit.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> io::Result<()> {
        let end = offset + data.len() as u64;
        if end > self.size {
            self.set_len_inner(end, Block::Clean)?;
        }
        self.backing.write_all_at(data, offset)?;
        if !data.is_empty() {
            let first = (offset / BLOCK_SIZE) as usize;
            let last = ((end - 1) / BLOCK_SIZE) as usize;
            for b in &mut self.blocks[first..=last] {
                *b = Block::Dirty;
            }
            for g in &mut self.gens[first..=last] {
                *g = self.next_gen;
            }
            self.next_gen += 1;
        }
        Ok(())
    }

    /// Read into `buf` at `offset` (the caller filled absent blocks first).
    /// Returns the bytes read (short at end of file).
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let n = (self.size.saturating_sub(offset)).min(buf.len() as u64) as usize;
        self.backing.read_exact_at(&mut buf[..n], offset)?;
        Ok(n)
    }

    /// Something to read bytes `start..start + len` of the staged data
    /// from later, without this file's lock: an own descriptor of the
    /// spilled file (so the read can run on another thread), or a copy of
    /// in-memory data. Bytes changed after this call may or may not be
    /// seen; callers recognise that by the block generations.
    pub fn range_reader(&self, start: u64, len: u64) -> io::Result<RangeReader> {
        match &self.backing {
            Backing::File(f) => Ok(RangeReader::File {
                file: Arc::new(f.try_clone()?),
                start,
                len,
            }),
            Backing::Memory(_) => {
                let mut buf = vec![0u8; len as usize];
                let n = self.read(start, &mut buf)?;
                buf.truncate(n);
                Ok(RangeReader::Bytes(buf))
            }
        }
    }

    /// Truncate or extend. Bytes past the old size read as zeros.
    pub fn set_len(&mut self, len: u64) -> io::Result<()> {
        if len < self.size {
            // The block holding the new end keeps bytes beyond it in the
            // local file; zero them so a later extension reads zeros, and
            // mark the block dirty (it differs from the base now).
            let last = (len / BLOCK_SIZE) as usize;
            if !len.is_multiple_of(BLOCK_SIZE) && self.blocks.get(last) != Some(&Block::Absent) {
                let block_end = ((last as u64 + 1) * BLOCK_SIZE).min(self.size);
                let zeros = vec![0u8; (block_end - len) as usize];
                self.backing.write_all_at(&zeros, len)?;
                self.blocks[last] = Block::Dirty;
                self.gens[last] = self.next_gen;
                self.next_gen += 1;
            }
        }
        self.set_len_inner(len, Block::Clean)?;
        if let Some(b) = self.blocks.last_mut() {
            if !len.is_multiple_of(BLOCK_SIZE) && *b == Block::Clean {
                *b = Block::Dirty;
            }
        }
        Ok(())
    }

    fn set_len_inner(&mut self, len: u64, new_blocks: Block) -> io::Result<()> {
        if len > self.size {
            if !self.area.reserve(len - self.size) {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "staging area is full",
                ));
            }
        } else {
            self.area.release(self.size - len);
        }
        if len > MEMORY_MAX {
            self.spill()?;
        }
        self.backing.set_len(len)?;
        self.size = len;
        self.blocks.resize(block_count(len), new_blocks);
        self.gens.resize(block_count(len), self.next_gen);
        self.next_gen += 1;
        Ok(())
    }

    /// Move in-memory data to its file in the staging directory.
    fn spill(&mut self) -> io::Result<()> {
        if let Backing::Memory(v) = &self.backing {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&self.path)?;
            file.write_all_at(v, 0)?;
            self.backing = Backing::File(file);
        }
        Ok(())
    }

    /// Keep the local file when dropped, with a `.key` file naming `key`.
    pub fn keep_for_recovery(&mut self, key: &str) -> io::Result<PathBuf> {
        self.spill()?;
        self.keep = true;
        let mut sidecar = self.path.clone().into_os_string();
        sidecar.push(".key");
        std::fs::write(&sidecar, key)?;
        Ok(self.path.clone())
    }
}

impl StagedFile {
    /// Undo `keep_for_recovery` (the data was uploaded after all).
    pub fn release_recovery(&mut self) {
        if self.keep {
            self.keep = false;
            let mut sidecar = self.path.clone().into_os_string();
            sidecar.push(".key");
            let _ = std::fs::remove_file(sidecar);
        }
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        self.area.release(self.size);
        if !self.keep && matches!(self.backing, Backing::File(_)) {
            // Best effort: a leftover file is only wasted space.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_past_the_limit_fail_and_release_frees_space() {
        let dir = tempfile::tempdir().unwrap();
        let area = StagingArea::new(dir.path(), 100).unwrap();
        let mut f = area.create(0).unwrap();
        f.write(0, &[1; 60]).unwrap();
        let mut g = area.create(0).unwrap();
        let e = g.write(0, &[1; 60]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        drop(f);
        g.write(0, &[1; 60]).unwrap();
        assert_eq!(area.used_bytes(), 60);
    }

    #[test]
    fn truncate_then_extend_reads_zeros() {
        let dir = tempfile::tempdir().unwrap();
        let area = StagingArea::new(dir.path(), 1 << 30).unwrap();
        let mut f = area.create(0).unwrap();
        f.write(0, b"hello world").unwrap();
        f.set_len(5).unwrap();
        f.set_len(11).unwrap();
        let mut buf = [9u8; 11];
        assert_eq!(f.read(0, &mut buf).unwrap(), 11);
        assert_eq!(&buf, b"hello\0\0\0\0\0\0");
    }

    #[test]
    fn small_files_stay_in_memory_and_spill_when_they_grow() {
        let dir = tempfile::tempdir().unwrap();
        let area = StagingArea::new(dir.path(), u64::MAX).unwrap();
        let mut f = area.create(0).unwrap();
        f.write(0, b"small").unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        f.write(MEMORY_MAX, b"big").unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut buf = [0u8; 5];
        f.read(0, &mut buf).unwrap();
        assert_eq!(&buf, b"small");
        drop(f);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn base_blocks_start_absent() {
        let dir = tempfile::tempdir().unwrap();
        let area = StagingArea::new(dir.path(), u64::MAX).unwrap();
        let f = area.create(BLOCK_SIZE * 2 + 1).unwrap();
        assert_eq!(f.blocks(), 3);
        assert_eq!(f.absent_in(0, 10), vec![0]);
        assert_eq!(f.absent_in(BLOCK_SIZE - 1, BLOCK_SIZE + 1), vec![0, 1]);
    }
}

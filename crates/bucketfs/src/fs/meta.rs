//! File attributes and their encoding in object metadata, compatible with
//! s3fs: `mode` (decimal, with the S_IFMT type bits), `uid`, `gid` (decimal),
//! `mtime` and `ctime` (seconds, optionally `.` and 9 digits of nanoseconds;
//! s3fs writes integers, rclone fractions). Directories are `dir/` marker
//! objects with content type `application/x-directory` and S_IFDIR in mode;
//! symlinks are objects whose body is the target, with S_IFLNK in mode.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::client::ObjectMetadata;

/// Content type s3fs and the AWS console give directory markers.
pub const DIR_CONTENT_TYPE: &str = "application/x-directory";

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    File,
    Directory,
    Symlink,
}

impl FileKind {
    /// The S_IFMT bits of this kind.
    pub fn type_bits(self) -> u32 {
        match self {
            Self::File => libc::S_IFREG,
            Self::Directory => libc::S_IFDIR,
            Self::Symlink => libc::S_IFLNK,
        }
    }
}

/// The attributes of an inode (the FUSE adapter adds `ino`, blocks …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub kind: FileKind,
    pub size: u64,
    /// Permission bits only (no S_IFMT).
    pub perm: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    pub atime: SystemTime,
}

/// Defaults for objects that carry no metadata (written by other tools).
#[derive(Debug, Clone, Copy)]
pub struct AttrDefaults {
    pub uid: u32,
    pub gid: u32,
    pub file_perm: u32,
    pub dir_perm: u32,
}

impl AttrDefaults {
    /// Attributes of an object with no (or partial) metadata.
    pub fn attr(&self, kind: FileKind, size: u64, mtime: SystemTime) -> Attr {
        let perm = match kind {
            FileKind::Directory => self.dir_perm,
            FileKind::File => self.file_perm,
            FileKind::Symlink => 0o777,
        };
        Attr {
            kind,
            size,
            perm,
            uid: self.uid,
            gid: self.gid,
            mtime,
            ctime: mtime,
            atime: mtime,
        }
    }

    /// Attributes from object metadata, falling back to defaults for what is
    /// missing. `dir_hint` is true for `dir/` markers. Returns `None` for
    /// special files (fifo, socket, devices) we do not serve.
    pub fn from_metadata(
        &self,
        meta: &ObjectMetadata,
        size: u64,
        last_modified: SystemTime,
        dir_hint: bool,
    ) -> Option<Attr> {
        let mode = meta.get("mode").and_then(|m| m.trim().parse::<u32>().ok());
        let kind = match mode.map(|m| m & libc::S_IFMT) {
            Some(libc::S_IFDIR) => FileKind::Directory,
            Some(libc::S_IFLNK) => FileKind::Symlink,
            Some(libc::S_IFREG) => FileKind::File,
            Some(0) | None if dir_hint => FileKind::Directory,
            Some(0) | None => FileKind::File,
            Some(_) => return None,
        };
        // A marker is a directory whatever its mode says.
        let kind = if dir_hint { FileKind::Directory } else { kind };
        let mtime = meta
            .get("mtime")
            .and_then(|t| parse_time(t))
            .unwrap_or(last_modified);
        let ctime = meta
            .get("ctime")
            .and_then(|t| parse_time(t))
            .unwrap_or(mtime);
        let atime = meta
            .get("atime")
            .and_then(|t| parse_time(t))
            .unwrap_or(mtime);
        let mut attr = self.attr(kind, size, mtime);
        if let Some(m) = mode.filter(|m| m & 0o7777 != 0) {
            attr.perm = m & 0o7777;
        }
        if let Some(uid) = meta.get("uid").and_then(|u| u.trim().parse().ok()) {
            attr.uid = uid;
        }
        if let Some(gid) = meta.get("gid").and_then(|g| g.trim().parse().ok()) {
            attr.gid = gid;
        }
        attr.ctime = ctime;
        attr.atime = atime;
        Some(attr)
    }
}

/// The metadata s3fs writes for these attributes.
pub fn to_metadata(attr: &Attr) -> ObjectMetadata {
    let mut m = ObjectMetadata::new();
    m.insert(
        "mode".into(),
        (attr.kind.type_bits() | attr.perm).to_string(),
    );
    m.insert("uid".into(), attr.uid.to_string());
    m.insert("gid".into(), attr.gid.to_string());
    m.insert("mtime".into(), format_time(attr.mtime));
    m.insert("ctime".into(), format_time(attr.ctime));
    m.insert("atime".into(), format_time(attr.atime));
    m
}

/// `secs` or `secs.nnnnnnnnn` (s3fs's `str(timespec)`).
pub fn format_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
    }
}

/// Parses `secs`, `secs.frac` (any number of fraction digits).
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: u64 = secs.parse().ok()?;
    let mut nanos = 0u32;
    if !frac.is_empty() {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> AttrDefaults {
        AttrDefaults {
            uid: 1,
            gid: 2,
            file_perm: 0o644,
            dir_perm: 0o755,
        }
    }

    #[test]
    fn s3fs_symlink_metadata_parses_as_symlink() {
        let mut m = ObjectMetadata::new();
        m.insert("mode".into(), (libc::S_IFLNK | 0o777).to_string());
        m.insert("mtime".into(), "1700000000".into());
        let a = defaults().from_metadata(&m, 5, UNIX_EPOCH, false).unwrap();
        assert_eq!(a.kind, FileKind::Symlink);
        assert_eq!(a.mtime, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    }

    #[test]
    fn fractional_mtime_round_trips() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(format_time(t), "1700000000.123456789");
        assert_eq!(parse_time("1700000000.123456789"), Some(t));
        assert_eq!(
            parse_time("1700000000.5"),
            Some(UNIX_EPOCH + Duration::new(1_700_000_000, 500_000_000))
        );
        assert_eq!(parse_time("x"), None);
    }

    #[test]
    fn metadata_round_trips_and_uses_decimal_mode() {
        let a = Attr {
            kind: FileKind::File,
            size: 3,
            perm: 0o600,
            uid: 1000,
            gid: 1001,
            mtime: UNIX_EPOCH + Duration::from_secs(5),
            ctime: UNIX_EPOCH + Duration::from_secs(6),
            atime: UNIX_EPOCH + Duration::from_secs(5),
        };
        let m = to_metadata(&a);
        assert_eq!(m["mode"], "33152");
        assert_eq!(defaults().from_metadata(&m, 3, UNIX_EPOCH, false), Some(a));
    }

    #[test]
    fn object_without_metadata_gets_defaults() {
        let a = defaults()
            .from_metadata(&ObjectMetadata::new(), 0, UNIX_EPOCH, true)
            .unwrap();
        assert_eq!((a.kind, a.perm, a.uid), (FileKind::Directory, 0o755, 1));
    }
}

//! One test per line of `SEMANTICS.md`; each doc comment quotes its line.
//! Most drive the filesystem core directly (`PathFs`); those about kernel
//! behaviour go through a real FUSE mount.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bucketfs::client::{ClientCapabilities, ObjectClientError};
use bucketfs::faults::{Fault, FaultClient, Op};
use bucketfs::fs::{FileKind, SetAttr, ROOT_INO};
use bucketfs::memory::MemoryClient;
use common::pathfs::PathFs;
use common::{mem_session, SessionConfig};

type Faulty = Arc<FaultClient<MemoryClient>>;

fn faulty() -> (Faulty, PathFs<Faulty>) {
    let c = Arc::new(FaultClient::new(MemoryClient::new()));
    (Arc::clone(&c), PathFs::new(c, |_| {}))
}

fn mem() -> (MemoryClient, PathFs<MemoryClient>) {
    let c = MemoryClient::new();
    (c.clone(), PathFs::new(c, |_| {}))
}

fn meta(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// "`close()` and `fsync()` return success only when the file's bytes are in the bucket."
#[tokio::test]
async fn close_and_fsync_success_means_bytes_in_bucket() {
    let (c, fs) = mem();
    let (_, fh) = fs.open("f", libc::O_CREAT | libc::O_WRONLY).await.unwrap();
    fs.fs.write(fh, 0, b"abc").await.unwrap();
    fs.fs.fsync(fh).await.unwrap();
    assert_eq!(&c.object("f").unwrap().body[..], b"abc");
    fs.fs.write(fh, 3, b"def").await.unwrap();
    fs.close(fh).await.unwrap();
    assert_eq!(&c.object("f").unwrap().body[..], b"abcdef");
}

/// "A failed upload makes `close()`/`fsync()` return EIO (EACCES when the server answers 403); the data stays staged and is retried in the background until it is uploaded."
#[tokio::test]
async fn failed_upload_returns_eio_or_eacces_and_is_retried() {
    let (c, fs) = faulty();
    c.fail_nth(
        Op::Put,
        1,
        Fault::Error(ObjectClientError::ServerError {
            status: 500,
            code: "InternalError".into(),
        }),
    );
    assert_eq!(fs.write_file("a", b"one").await, Err(libc::EIO));
    c.fail_nth(
        Op::Put,
        1,
        Fault::Error(ObjectClientError::AccessDenied {
            code: "AccessDenied".into(),
        }),
    );
    assert_eq!(fs.fs.retry_pending().await, 1);
    c.fail_nth(
        Op::Put,
        1,
        Fault::Error(ObjectClientError::AccessDenied {
            code: "AccessDenied".into(),
        }),
    );
    assert_eq!(fs.write_file("b", b"two").await, Err(libc::EACCES));
    assert!(c.inner().object("a").is_none());
    assert_eq!(fs.fs.retry_pending().await, 0);
    assert_eq!(&c.inner().object("a").unwrap().body[..], b"one");
    assert_eq!(&c.inner().object("b").unwrap().body[..], b"two");
}

/// "After a failed upload the open file is poisoned: every later `write`, `fsync` and `close` on it returns EIO, even if a background retry later succeeds."
#[tokio::test]
async fn write_after_failed_upload_returns_eio() {
    let (c, fs) = faulty();
    let (_, fh) = fs.open("f", libc::O_CREAT | libc::O_WRONLY).await.unwrap();
    fs.fs.write(fh, 0, b"x").await.unwrap();
    c.fail_nth(Op::Put, 1, Fault::Error(ObjectClientError::Timeout));
    assert_eq!(fs.fs.fsync(fh).await.unwrap_err().errno(), libc::EIO);
    assert_eq!(
        fs.fs.write(fh, 1, b"y").await.unwrap_err().errno(),
        libc::EIO
    );
    assert_eq!(fs.fs.retry_pending().await, 0);
    assert_eq!(&c.inner().object("f").unwrap().body[..], b"x");
    assert_eq!(fs.fs.fsync(fh).await.unwrap_err().errno(), libc::EIO);
    assert_eq!(fs.close(fh).await, Err(libc::EIO));
}

/// "No upload ever replaces an object with a partial or empty one: objects are replaced only by a complete PutObject or CompleteMultipartUpload."
#[tokio::test]
async fn failed_multipart_upload_leaves_previous_object_whole() {
    let (c, fs) = faulty();
    fs.write_file("f", b"old content").await.unwrap();
    c.fail_nth(Op::UploadPart, 2, Fault::Error(ObjectClientError::Reset));
    assert_eq!(
        fs.write_file("f", &vec![7u8; 12 << 20]).await,
        Err(libc::EIO)
    );
    assert_eq!(&c.inner().object("f").unwrap().body[..], b"old content");
    assert_eq!(c.inner().open_uploads(), 0);
}

/// "Data written with `write()` is invisible to other clients until `close()` or `fsync()`."
#[tokio::test]
async fn writes_are_invisible_until_close() {
    let (c, fs) = mem();
    fs.write_file("f", b"v1").await.unwrap();
    let (_, fh) = fs.open("f", libc::O_WRONLY).await.unwrap();
    fs.fs.write(fh, 0, b"v2").await.unwrap();
    assert_eq!(&c.object("f").unwrap().body[..], b"v1");
    fs.close(fh).await.unwrap();
    assert_eq!(&c.object("f").unwrap().body[..], b"v2");
}

/// "A new file exists only in this mount until its first `close()`/`fsync()` uploads it (an empty object for an empty file)."
#[tokio::test]
async fn created_file_is_uploaded_on_close_even_when_empty() {
    let (c, fs) = mem();
    let (_, fh) = fs.open("e", libc::O_CREAT | libc::O_WRONLY).await.unwrap();
    assert!(c.object("e").is_none());
    assert_eq!(
        fs.list("").await.unwrap(),
        [("e".to_string(), FileKind::File)]
    );
    fs.close(fh).await.unwrap();
    assert_eq!(c.object("e").unwrap().body.len(), 0);
}

/// "Writes are staged in a local directory bounded by `--max-cache-size`; a write that would exceed it fails with ENOSPC."
#[tokio::test]
async fn write_past_staging_limit_is_enospc() {
    let c = MemoryClient::new();
    let fs = PathFs::new(c, |cfg| cfg.staging_max_bytes = 1000);
    assert_eq!(fs.write_file("f", &[1u8; 2000]).await, Err(libc::ENOSPC));
    fs.write_file("g", &[1u8; 500]).await.unwrap();
}

/// "Appending to or changing a few blocks of a large object re-uploads only the changed 8 MiB blocks; the rest is copied on the server (UploadPartCopy)."
#[tokio::test]
async fn append_to_large_file_sends_only_the_changed_block() {
    let (c, fs) = mem();
    let mut data = vec![3u8; 64 << 20];
    fs.write_file("big", &data).await.unwrap();
    let before = c.counts();
    fs.write_at("big", data.len() as u64, &[9u8; 4096])
        .await
        .unwrap();
    fs.write_at("big", 30 << 20, &[8u8; 4096]).await.unwrap();
    let after = c.counts();
    data.extend_from_slice(&[9u8; 4096]);
    data[30 << 20..(30 << 20) + 4096].fill(8);
    assert!(c.object("big").unwrap().body[..] == data[..]);
    assert!(
        after.upload_part_copy - before.upload_part_copy >= 14,
        "{after:?}"
    );
    // One 4 KiB tail part, then one 8 MiB block (and the tail again).
    assert!(
        after.bytes_uploaded - before.bytes_uploaded < 9 << 20,
        "{after:?}"
    );
}

/// "Files larger than 5 TiB cannot be written (EFBIG)."
#[tokio::test]
async fn writes_past_five_tib_are_efbig() {
    let (_, fs) = mem();
    assert_eq!(fs.write_at("f", 5 << 40, b"x").await, Err(libc::EFBIG));
}

/// "A large new file is uploaded while it is written, as a multipart upload that becomes the object only at `close()`; the mtime stored with it is the time that upload started (the mount shows the true mtime until it is remounted; a later `utimens`, as `cp -p` and rsync do, stores the exact time)."
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_new_file_is_streamed_and_keeps_its_start_mtime() {
    let (c, fs) = mem();
    let (ino, fh) = fs
        .open("big", libc::O_CREAT | libc::O_WRONLY)
        .await
        .unwrap();
    let chunk = vec![5u8; 1 << 20];
    for i in 0..20u64 {
        fs.fs.write(fh, i << 20, &chunk).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(c.counts().upload_part > 0);
    assert!(c.object("big").is_none());
    fs.close(fh).await.unwrap();
    assert_eq!(c.object("big").unwrap().body.len(), 20 << 20);
    let exact = SystemTime::UNIX_EPOCH + Duration::from_secs(1_234_567_890);
    let set = SetAttr {
        mtime: Some(exact),
        ..Default::default()
    };
    fs.fs.setattr(ino, set).await.unwrap();
    assert_eq!(c.object("big").unwrap().metadata["mtime"], "1234567890");
}

/// "Data still staged when the mount stops is uploaded first; what cannot be uploaded is left in the staging directory with a `.key` file naming its object, and `cove mount` exits non-zero."
#[tokio::test]
async fn shutdown_uploads_staged_data_or_keeps_it_with_its_key() {
    let (c, fs) = faulty();
    c.fail_nth(Op::Put, 1, Fault::Error(ObjectClientError::Timeout));
    assert_eq!(fs.write_file("a", b"later").await, Err(libc::EIO));
    c.set_down(true);
    c.fail_from(Op::Put, 1, Fault::Error(ObjectClientError::Timeout));
    let dir = fs.fs.config().staging_dir.clone();
    let failed = fs.fs.shutdown().await;
    assert_eq!(failed.len(), 1);
    let keys: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".key"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    assert_eq!(keys, ["a"]);
    c.heal();
    assert!(fs.fs.shutdown().await.is_empty());
    assert_eq!(&c.inner().object("a").unwrap().body[..], b"later");
}

/// "`rename` of a file is a server-side copy followed by a delete: not atomic; if interrupted between the two, both names exist."
#[tokio::test]
async fn rename_file_is_copy_then_delete() {
    let (c, fs) = faulty();
    fs.write_file("a", b"x").await.unwrap();
    c.fail_nth(Op::Delete, 1, Fault::Error(ObjectClientError::Timeout));
    assert_eq!(fs.rename("a", "b").await, Err(libc::EIO));
    assert!(c.inner().object("a").is_some() && c.inner().object("b").is_some());
    let before = c.inner().counts();
    fs.write_file("c", b"y").await.unwrap();
    fs.rename("c", "d").await.unwrap();
    let after = c.inner().counts();
    assert_eq!(
        (after.copy - before.copy, after.delete - before.delete),
        (1, 1)
    );
}

/// "`rename` of a directory copies every object under it, then deletes the originals: one request per object, not atomic, other clients may see both trees meanwhile; an interrupted rename leaves every original in place."
#[tokio::test]
async fn rename_directory_copies_everything_then_deletes() {
    let (c, fs) = faulty();
    fs.mkdir("d").await.unwrap();
    for i in 0..5 {
        fs.write_file(&format!("d/{i}"), b"z").await.unwrap();
    }
    c.fail_nth(Op::Delete, 2, Fault::Error(ObjectClientError::Timeout));
    assert_eq!(fs.rename("d", "e").await, Err(libc::EIO));
    for i in 0..5 {
        assert!(c.inner().object(&format!("e/{i}")).is_some());
    }
    let originals = (0..5)
        .filter(|i| c.inner().object(&format!("d/{i}")).is_some())
        .count();
    assert!(
        originals >= 4,
        "a delete failed, so at most one original is gone"
    );
    let before = c.inner().counts();
    fs.mkdir("m").await.unwrap();
    fs.write_file("m/x", b"1").await.unwrap();
    fs.rename("m", "n").await.unwrap();
    let after = c.inner().counts();
    assert_eq!(after.copy - before.copy, 2, "marker and one file");
}

/// "`renameat2` with RENAME_EXCHANGE fails with EOPNOTSUPP."
#[tokio::test]
async fn rename_exchange_is_unsupported() {
    let (_, fs) = mem();
    fs.write_file("a", b"1").await.unwrap();
    fs.write_file("b", b"2").await.unwrap();
    let e = fs
        .fs
        .rename(ROOT_INO, "a", ROOT_INO, "b", libc::RENAME_EXCHANGE)
        .await
        .unwrap_err();
    assert_eq!(e.errno(), libc::EOPNOTSUPP);
}

/// "Hard links, device files, FIFOs and sockets cannot be created (EPERM)."
#[test]
fn hard_links_and_fifos_are_eperm() {
    let s = mem_session(SessionConfig::default());
    std::fs::write(s.path("f"), b"x").unwrap();
    let e = std::fs::hard_link(s.path("f"), s.path("g")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    let p = std::ffi::CString::new(s.path("fifo").to_str().unwrap()).unwrap();
    // SAFETY: p is a valid NUL-terminated path.
    let r = unsafe { libc::mkfifo(p.as_ptr(), 0o644) };
    assert_eq!(r, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EPERM)
    );
}

/// "A directory exists if it has a `dir/` marker object or any object under its prefix; one without a marker disappears when its last entry is removed."
#[tokio::test]
async fn implicit_directory_disappears_with_its_last_entry() {
    let (c, fs) = mem();
    c.insert("imp/a", &b"1"[..], BTreeMap::new());
    assert_eq!(
        fs.list("").await.unwrap(),
        [("imp".to_string(), FileKind::Directory)]
    );
    assert_eq!(fs.read_file("imp/a").await.unwrap(), b"1");
    fs.unlink("imp/a").await.unwrap();
    assert!(fs.list("").await.unwrap().is_empty());
}

/// "`mkdir` writes a `dir/` marker, so an empty directory survives a remount."
#[tokio::test]
async fn empty_directory_survives_remount() {
    let (c, fs) = mem();
    fs.mkdir("d").await.unwrap();
    assert!(c.object("d/").is_some());
    fs.shutdown().await;
    let fs2 = PathFs::new(c, |_| {});
    assert_eq!(
        fs2.list("").await.unwrap(),
        [("d".to_string(), FileKind::Directory)]
    );
}

/// "When a key is both an object `a` and a prefix `a/`, the directory is shown and the object hidden."
#[tokio::test]
async fn directory_shadows_object_of_the_same_name() {
    let (c, fs) = mem();
    c.insert("a", &b"file"[..], BTreeMap::new());
    c.insert("a/b", &b"inner"[..], BTreeMap::new());
    assert_eq!(
        fs.list("").await.unwrap(),
        [("a".to_string(), FileKind::Directory)]
    );
    assert_eq!(fs.resolve("a").await.unwrap().1.kind, FileKind::Directory);
}

/// "Keys that cannot be file names (empty components, `.`, `..`, longer than 255 bytes) are not listed."
#[tokio::test]
async fn keys_that_cannot_be_names_are_hidden() {
    let (c, fs) = mem();
    for k in ["ok", "./x", "../y", "d//z", &"n".repeat(300)] {
        c.insert(k, &b"1"[..], BTreeMap::new());
    }
    let names: Vec<String> = fs
        .list("")
        .await
        .unwrap()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert_eq!(names, ["d", "ok"]);
    assert!(fs.list("d").await.unwrap().is_empty());
}

/// "`unlink` of an open file deletes the object at once; later writes through the still-open file are not uploaded."
#[tokio::test]
async fn unlinked_open_file_writes_are_not_uploaded() {
    let (c, fs) = mem();
    fs.write_file("f", b"1").await.unwrap();
    let (_, fh) = fs.open("f", libc::O_WRONLY).await.unwrap();
    fs.unlink("f").await.unwrap();
    assert!(c.object("f").is_none());
    fs.fs.write(fh, 0, b"2").await.unwrap();
    fs.close(fh).await.unwrap();
    assert!(c.object("f").is_none());
}

/// "Reading an open file that was deleted (here or by another client) fails with ESTALE once data not yet cached is needed."
#[tokio::test]
async fn reading_a_deleted_open_file_is_estale() {
    let (c, fs) = mem();
    c.insert("f", vec![1u8; 100_000], BTreeMap::new());
    let (_, fh) = fs.open("f", libc::O_RDONLY).await.unwrap();
    c.remove("f");
    assert_eq!(
        fs.fs.read(fh, 0, 10).await.unwrap_err().errno(),
        libc::ESTALE
    );
}

/// "Directory operations (mkdir, rmdir, unlink, rename, symlink, chmod) reach the bucket before they return; `fsync` of a directory succeeds and does nothing more."
#[test]
fn directory_operations_are_durable_and_fsync_of_a_directory_succeeds() {
    let s = mem_session(SessionConfig::default());
    std::fs::create_dir(s.path("d")).unwrap();
    assert!(s.bucket.get("d/").is_some());
    std::os::unix::fs::symlink("t", s.path("d/l")).unwrap();
    assert_eq!(s.bucket.get("d/l").unwrap(), b"t");
    std::fs::File::open(s.path("d"))
        .unwrap()
        .sync_all()
        .unwrap();
}

/// "Mode, owner, group and times are stored in s3fs's metadata headers (`x-amz-meta-mode`, `-uid`, `-gid`, `-mtime`, `-ctime`, `-atime`), and symlinks are objects whose body is the target with S_IFLNK in `mode`, so objects written by s3fs read the same and the reverse."
#[tokio::test]
async fn s3fs_metadata_is_read_and_written() {
    let (c, fs) = mem();
    let m = meta(&[
        ("mode", (libc::S_IFREG | 0o600).to_string()),
        ("uid", "42".into()),
        ("gid", "43".into()),
        ("mtime", "1600000000".into()),
    ]);
    c.insert("s3fs-file", &b"x"[..], m);
    c.insert(
        "s3fs-link",
        &b"s3fs-file"[..],
        meta(&[("mode", (libc::S_IFLNK | 0o777).to_string())]),
    );
    let a = fs.resolve("s3fs-file").await.unwrap().1;
    assert_eq!((a.perm, a.uid, a.gid), (0o600, 42, 43));
    assert_eq!(
        a.mtime,
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_600_000_000)
    );
    assert_eq!(fs.readlink("s3fs-link").await.unwrap(), "s3fs-file");
    fs.symlink("mine", "target").await.unwrap();
    fs.mkdir("dir").await.unwrap();
    let link = c.object("mine").unwrap();
    assert_eq!(&link.body[..], b"target");
    assert_eq!(link.metadata["mode"], (libc::S_IFLNK | 0o777).to_string());
    let dir = c.object("dir/").unwrap();
    assert_eq!(dir.metadata["mode"], (libc::S_IFDIR | 0o755).to_string());
    assert_eq!(dir.content_type.as_deref(), Some("application/x-directory"));
    for k in ["uid", "gid", "mtime", "ctime", "atime"] {
        assert!(dir.metadata.contains_key(k), "{k}");
    }
}

/// "Objects without that metadata get `--file-mode`/`--dir-mode`, `--uid`/`--gid`, and their LastModified as mtime."
#[tokio::test]
async fn objects_without_metadata_get_mount_defaults() {
    let (c, fs) = mem();
    c.insert("plain", &b"x"[..], BTreeMap::new());
    c.insert("dir/inner", &b"x"[..], BTreeMap::new());
    let lm = c.object("plain").unwrap().last_modified;
    let a = fs.resolve("plain").await.unwrap().1;
    assert_eq!((a.perm, a.uid, a.gid, a.mtime), (0o644, 1000, 1000, lm));
    assert_eq!(fs.resolve("dir").await.unwrap().1.perm, 0o755);
}

/// "`chmod`, `chown` and `utimens` of a file with nothing staged rewrite the object's metadata by copying it onto itself (its ETag and LastModified change)."
#[tokio::test]
async fn chmod_rewrites_the_object_metadata_in_place() {
    let (c, fs) = mem();
    fs.write_file("f", b"data").await.unwrap();
    let before = c.object("f").unwrap();
    let (ino, _) = fs.resolve("f").await.unwrap();
    let set = SetAttr {
        mode: Some(0o600),
        uid: Some(7),
        ..Default::default()
    };
    fs.fs.setattr(ino, set).await.unwrap();
    let after = c.object("f").unwrap();
    assert_eq!(&after.body[..], b"data");
    assert_ne!(after.etag, before.etag);
    assert_eq!(after.metadata["mode"], (libc::S_IFREG | 0o600).to_string());
    assert_eq!(after.metadata["uid"], "7");
}

/// "Changes to the attributes of the mount's root directory last only until unmount (the root has no object)."
#[tokio::test]
async fn root_attribute_changes_are_not_persisted() {
    let (c, fs) = mem();
    let set = SetAttr {
        mode: Some(0o700),
        ..Default::default()
    };
    assert_eq!(fs.fs.setattr(ROOT_INO, set).await.unwrap().perm, 0o700);
    assert!(c.objects().is_empty());
    let fs2 = PathFs::new(c, |_| {});
    assert_eq!(fs2.fs.getattr(ROOT_INO).await.unwrap().perm, 0o755);
}

/// "`atime` is not updated by reads."
#[tokio::test]
async fn reads_do_not_update_atime() {
    let (_, fs) = mem();
    fs.write_file("f", b"x").await.unwrap();
    let before = fs.resolve("f").await.unwrap().1.atime;
    tokio::time::sleep(Duration::from_millis(20)).await;
    fs.read_file("f").await.unwrap();
    assert_eq!(fs.resolve("f").await.unwrap().1.atime, before);
}

/// "`st_nlink` is 1 for files and 2 for directories."
#[test]
fn nlink_is_one_for_files_and_two_for_directories() {
    use std::os::unix::fs::MetadataExt;
    let s = mem_session(SessionConfig::default());
    std::fs::create_dir_all(s.path("d/e")).unwrap();
    std::fs::write(s.path("f"), b"x").unwrap();
    assert_eq!(std::fs::metadata(s.path("f")).unwrap().nlink(), 1);
    assert_eq!(std::fs::metadata(s.path("d")).unwrap().nlink(), 2);
}

/// "`statfs` reports a fixed large capacity."
#[tokio::test]
async fn statfs_reports_a_fixed_large_capacity() {
    let (_, fs) = mem();
    let a = fs.fs.statfs();
    fs.write_file("f", &[0u8; 10_000]).await.unwrap();
    let b = fs.fs.statfs();
    assert_eq!((a.blocks, a.bfree), (b.blocks, b.bfree));
    assert!(a.blocks * u64::from(a.bsize) >= 1 << 50);
}

/// "Extended attributes are not supported (EOPNOTSUPP)."
#[test]
fn extended_attributes_are_not_supported() {
    let s = mem_session(SessionConfig::default());
    std::fs::write(s.path("f"), b"x").unwrap();
    let p = std::ffi::CString::new(s.path("f").to_str().unwrap()).unwrap();
    let name = c"user.test";
    // SAFETY: valid NUL-terminated path and name; value points to 1 byte.
    let r = unsafe { libc::setxattr(p.as_ptr(), name.as_ptr(), b"v".as_ptr().cast(), 1, 0) };
    assert_eq!(r, -1);
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EOPNOTSUPP)
    );
}

/// "Metadata and listings are cached for `--metadata-ttl` (default 1 s): changes by other clients appear after it; with `indefinite` they never do (for buckets only this mount writes)."
#[tokio::test]
async fn other_clients_changes_appear_after_the_ttl() {
    let c = MemoryClient::new();
    let fs = PathFs::new(c.clone(), |cfg| {
        cfg.metadata_ttl = Some(Duration::from_millis(200))
    });
    let forever = PathFs::new(c.clone(), |cfg| cfg.metadata_ttl = None);
    c.insert("f", &b"1"[..], BTreeMap::new());
    assert_eq!(fs.resolve("f").await.unwrap().1.size, 1);
    assert_eq!(forever.resolve("f").await.unwrap().1.size, 1);
    c.insert("f", &b"22"[..], BTreeMap::new());
    assert_eq!(fs.resolve("f").await.unwrap().1.size, 1, "within the TTL");
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(fs.resolve("f").await.unwrap().1.size, 2, "after the TTL");
    assert_eq!(forever.resolve("f").await.unwrap().1.size, 1, "indefinite");
}

/// "Entries first seen in a listing carry attributes derived from it (size, LastModified, default mode and owner) until they are looked up after the metadata TTL; a symlink made by another client looks like a regular file until then."
#[tokio::test]
async fn listing_attributes_last_until_a_lookup() {
    let (c, fs) = mem();
    c.insert(
        "l",
        &b"target"[..],
        meta(&[("mode", (libc::S_IFLNK | 0o777).to_string())]),
    );
    assert_eq!(
        fs.list("").await.unwrap(),
        [("l".to_string(), FileKind::File)]
    );
    assert_eq!(fs.resolve("l").await.unwrap().1.kind, FileKind::Symlink);
}

/// "The page cache is kept across opens while the object's ETag is unchanged."
#[tokio::test]
async fn page_cache_is_kept_while_the_etag_is_unchanged() {
    let (c, fs) = mem();
    fs.write_file("f", b"1").await.unwrap();
    let (ino, _) = fs.resolve("f").await.unwrap();
    let r = fs.fs.open(ino, libc::O_RDONLY).await.unwrap();
    assert!(r.keep_cache);
    fs.fs.release(r.fh).await.unwrap();
    c.insert("f", &b"2"[..], BTreeMap::new());
    let (ino, _) = fs.resolve("f").await.unwrap();
    let r = fs.fs.open(ino, libc::O_RDONLY).await.unwrap();
    assert!(!r.keep_cache);
}

/// "Where the server honours conditional writes (If-Match / If-None-Match), an upload never overwrites an object another client changed since we read it: `close()` returns EIO and the data stays staged. On servers that ignore them (garage), the last writer wins."
#[tokio::test]
async fn conditional_writes_refuse_to_overwrite_a_newer_object() {
    let (c, fs) = mem();
    fs.write_file("f", b"ours").await.unwrap();
    let (_, fh) = fs.open("f", libc::O_WRONLY).await.unwrap();
    fs.fs.write(fh, 0, b"OURS").await.unwrap();
    c.insert("f", &b"theirs"[..], BTreeMap::new());
    assert_eq!(fs.close(fh).await, Err(libc::EIO));
    assert_eq!(&c.object("f").unwrap().body[..], b"theirs");
    assert_eq!(fs.fs.pending_uploads(), 1);

    let garage_like = MemoryClient::with_capabilities(ClientCapabilities::default());
    let fs = PathFs::new(garage_like.clone(), |_| {});
    fs.write_file("f", b"ours").await.unwrap();
    let (_, fh) = fs.open("f", libc::O_WRONLY).await.unwrap();
    fs.fs.write(fh, 0, b"OURS").await.unwrap();
    garage_like.insert("f", &b"theirs"[..], BTreeMap::new());
    fs.close(fh).await.unwrap();
    assert_eq!(&garage_like.object("f").unwrap().body[..], b"OURS");
}

/// "File locks (`flock`, `fcntl`) are local to this mount; other mounts of the bucket do not see them."
#[test]
fn file_locks_work_within_the_mount() {
    use std::os::fd::AsRawFd;
    let s = mem_session(SessionConfig::default());
    std::fs::write(s.path("f"), b"x").unwrap();
    let a = std::fs::File::open(s.path("f")).unwrap();
    let b = std::fs::File::open(s.path("f")).unwrap();
    // SAFETY: valid open descriptors.
    assert_eq!(
        unsafe { libc::flock(a.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::flock(b.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        -1
    );
}

/// "A read-only mount (`--read-only`) refuses every change with EROFS."
#[tokio::test]
async fn read_only_mount_refuses_changes_with_erofs() {
    let c = MemoryClient::new();
    c.insert("f", &b"x"[..], BTreeMap::new());
    let fs = PathFs::new(c, |cfg| cfg.read_only = true);
    assert_eq!(fs.read_file("f").await.unwrap(), b"x");
    assert_eq!(fs.write_file("g", b"y").await, Err(libc::EROFS));
    assert_eq!(fs.mkdir("d").await, Err(libc::EROFS));
    assert_eq!(fs.unlink("f").await, Err(libc::EROFS));
    assert_eq!(fs.rename("f", "h").await, Err(libc::EROFS));
}

/// Every line of SEMANTICS.md is quoted by a test's doc comment here.
#[test]
fn every_semantics_line_has_a_test() {
    let doc = include_str!("../SEMANTICS.md");
    let tests = include_str!("semantics_test.rs");
    for line in doc.lines().filter_map(|l| l.strip_prefix("- ")) {
        let quoted = format!("/// \"{line}\"");
        assert!(tests.contains(&quoted), "no test quotes: {line}");
    }
}

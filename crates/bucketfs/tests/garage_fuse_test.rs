//! Real FUSE mounts of bucketfs on a real garage S3 server: the server
//! killed in the middle of a 200 MiB write, read-only and prefix mounts, a
//! directory of 10,000 objects, and the other session-based bodies.
//! s3fs compatibility and public buckets live in their own files.

mod common;
#[path = "common/garage.rs"]
mod garage;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::IntoRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bucketfs::client::{ObjectClient, PutObjectParams};
use bytes::Bytes;
use common::fsutil::names;
use common::{SessionConfig, TestBucket};
use garage::{garage_session, garage_session_on, list_all_keys, GarageBucket};

const MIB: usize = 1024 * 1024;

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i / 4096) as u8) ^ (i as u8).wrapping_mul(7))
        .collect()
}

/// close(2) on the raw descriptor: `File`'s drop ignores close errors, and
/// close is where a FUSE filesystem reports a failed upload.
fn close_checked(f: std::fs::File) -> std::io::Result<()> {
    let fd = f.into_raw_fd();
    // SAFETY: `fd` was just taken out of a `File`, so it is open and owned here.
    if unsafe { libc::close(fd) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[test]
fn server_killed_mid_200mib_write_reports_the_error_and_loses_nothing() {
    let bucket = Arc::new(GarageBucket::start());
    let mut s = garage_session_on(bucket.clone(), SessionConfig::default());
    let data = Arc::new(pattern(200 * MIB));
    let path = s.path("crash.bin");
    let written = Arc::new(AtomicUsize::new(0));

    // The writer reports the first error of write, fsync or close, and how
    // many bytes the filesystem acknowledged before it.
    let writer = {
        let (data, written) = (data.clone(), written.clone());
        std::thread::spawn(move || -> (usize, std::io::Result<()>) {
            let mut f = std::fs::File::create(&path).expect("create");
            for chunk in data.chunks(MIB) {
                if let Err(e) = f.write_all(chunk) {
                    return (written.load(Ordering::SeqCst), Err(e));
                }
                written.fetch_add(chunk.len(), Ordering::SeqCst);
            }
            let n = written.load(Ordering::SeqCst);
            if let Err(e) = f.sync_all() {
                return (n, Err(e));
            }
            (n, close_checked(f))
        })
    };
    // Kill garage half-way through the write: bucketfs uploads parts of a
    // large file while it is being written, so this is mid-upload.
    while written.load(Ordering::SeqCst) < 100 * MIB {
        std::thread::sleep(Duration::from_millis(1));
    }
    bucket.server().kill();
    let (acknowledged, result) = writer.join().expect("writer thread");
    eprintln!("acknowledged {acknowledged} bytes, then {result:?}");
    let err = result.expect_err("garage was killed mid-write, yet write+fsync+close all succeeded");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");

    bucket.server().restart().expect("restart garage");
    // Right after the restart, the object is absent or whole: never empty
    // and never truncated.
    let whole = |body: &[u8]| {
        body == &data[..] || (body.len() == acknowledged && body == &data[..acknowledged])
    };
    if let Some(body) = bucket.get("crash.bin") {
        assert!(whole(&body), "partial object of {} bytes", body.len());
    }
    // The staged data is uploaded later: by the background retry, or at the
    // latest by the flush of an unmount (remount below).
    let deadline = Instant::now() + Duration::from_secs(20);
    while bucket.get("crash.bin").is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    s.remount();
    let body = bucket
        .get("crash.bin")
        .expect("uploaded after the server came back");
    assert!(
        whole(&body),
        "object of {} bytes is not the staged data",
        body.len()
    );
    assert_eq!(
        std::fs::read(s.path("crash.bin")).unwrap().len(),
        body.len()
    );
}

#[test]
fn read_only_mount_reads_objects_and_refuses_changes() {
    let bucket = Arc::new(GarageBucket::start());
    bucket.put("a.txt", b"alpha", Default::default());
    bucket.put("d/b.txt", b"beta", Default::default());
    let config = SessionConfig {
        read_only: true,
        ..Default::default()
    };
    let s = garage_session_on(bucket.clone(), config);
    assert_eq!(std::fs::read(s.path("a.txt")).unwrap(), b"alpha");
    assert_eq!(std::fs::read(s.path("d/b.txt")).unwrap(), b"beta");
    assert_eq!(names(s.root()), ["a.txt", "d"]);
    let erofs = |r: std::io::Result<()>| {
        let e = r.expect_err("read-only mount accepted a change");
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    };
    erofs(std::fs::write(s.path("new"), b"x"));
    erofs(std::fs::write(s.path("a.txt"), b"x"));
    erofs(std::fs::remove_file(s.path("a.txt")));
    erofs(std::fs::create_dir(s.path("e")));
    erofs(std::fs::rename(s.path("a.txt"), s.path("c.txt")));
    assert_eq!(bucket.keys(), ["a.txt", "d/b.txt"], "bucket untouched");
}

#[test]
fn prefix_mount_shows_and_writes_only_under_the_prefix() {
    let bucket = Arc::new(GarageBucket::start());
    bucket.put("team/a", b"1", Default::default());
    bucket.put("team/sub/b", b"2", Default::default());
    bucket.put("other/c", b"3", Default::default());
    bucket.put("teammate", b"4", Default::default());
    let config = SessionConfig {
        prefix: "team/".into(),
        ..Default::default()
    };
    let s = garage_session_on(bucket.clone(), config);
    assert_eq!(names(s.root()), ["a", "sub"]);
    assert_eq!(std::fs::read(s.path("sub/b")).unwrap(), b"2");
    std::fs::write(s.path("new"), b"5").unwrap();
    std::fs::create_dir(s.path("dir")).unwrap();
    std::fs::rename(s.path("a"), s.path("dir/a")).unwrap();
    let mut keys = bucket.keys();
    keys.sort();
    assert_eq!(
        keys,
        [
            "other/c",
            "team/dir/",
            "team/dir/a",
            "team/new",
            "team/sub/b",
            "teammate"
        ]
    );
}

#[test]
fn directory_of_10000_objects_is_listed_completely() {
    let bucket = Arc::new(GarageBucket::start());
    let names_want: Vec<String> = (0..10_000).map(|i| format!("f{i:05}")).collect();
    bucket.block_on(async {
        use futures::StreamExt;
        futures::stream::iter(names_want.iter())
            .for_each_concurrent(64, |n| {
                let c = bucket.client.clone();
                async move {
                    c.put_object(
                        &format!("big/{n}"),
                        Bytes::from(n.clone()),
                        &PutObjectParams::default(),
                    )
                    .await
                    .expect("put");
                }
            })
            .await;
    });
    assert_eq!(list_all_keys(&bucket, "big/").len(), 10_000);
    let s = garage_session_on(bucket.clone(), SessionConfig::default());
    assert_eq!(names(&s.path("big")), names_want);
    // `ls -l`: every entry stats with its size.
    for e in std::fs::read_dir(s.path("big")).unwrap() {
        let e = e.unwrap();
        assert_eq!(e.metadata().unwrap().len(), 6, "{:?}", e.file_name());
    }
    assert_eq!(std::fs::read(s.path("big/f09999")).unwrap(), b"f09999");
}

#[test]
fn write_read_rename_and_metadata_through_a_garage_mount() {
    let s = garage_session(SessionConfig::default());
    std::fs::create_dir(s.path("d")).unwrap();
    let data = pattern(12 * MIB + 123);
    std::fs::write(s.path("d/big"), &data).unwrap();
    assert!(s.bucket.get("d/big").unwrap() == data);
    std::fs::rename(s.path("d/big"), s.path("d/moved")).unwrap();
    assert!(s.bucket.get("d/big").is_none());
    assert!(std::fs::read(s.path("d/moved")).unwrap() == data);
    std::os::unix::fs::symlink("moved", s.path("d/link")).unwrap();
    assert_eq!(
        std::fs::read_link(s.path("d/link")).unwrap().to_str(),
        Some("moved")
    );
    std::fs::set_permissions(
        s.path("d/moved"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    assert_eq!(
        std::fs::metadata(s.path("d/moved")).unwrap().mode() & 0o7777,
        0o600
    );
    let meta = s.bucket.metadata("d/moved").unwrap();
    assert_eq!(
        meta.get("mode").map(String::as_str),
        Some("33152"),
        "{meta:?}"
    );
}

//! Real FUSE mounts: syscalls through the kernel into bucketfs, each test
//! body run against every session kind: the in-memory bucket and a real
//! garage S3 server on loopback (`garage_session`).

mod common;
#[path = "common/garage.rs"]
mod garage;

use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::fsutil::names;
use common::{mem_session, SessionConfig, SessionCreator};
use garage::garage_session;
use test_case::test_case;

#[test_case(mem_session ; "mem")]
#[test_case(garage_session ; "garage")]
fn write_then_read_back_and_object_holds_bytes(creator: SessionCreator) {
    let s = creator(SessionConfig::default());
    std::fs::write(s.path("hello.txt"), b"hello world").unwrap();
    assert_eq!(std::fs::read(s.path("hello.txt")).unwrap(), b"hello world");
    assert_eq!(s.bucket.get("hello.txt").unwrap(), b"hello world");
    assert_eq!(std::fs::metadata(s.path("hello.txt")).unwrap().len(), 11);
}

#[test_case(mem_session ; "mem")]
#[test_case(garage_session ; "garage")]
fn mkdir_nested_files_and_listing(creator: SessionCreator) {
    let s = creator(SessionConfig::default());
    std::fs::create_dir_all(s.path("a/b")).unwrap();
    std::fs::write(s.path("a/b/f"), b"1").unwrap();
    std::fs::write(s.path("a/g"), b"2").unwrap();
    assert_eq!(names(&s.path("a")), ["b", "g"]);
    assert_eq!(names(s.root()), ["a"]);
    assert!(s.bucket.get("a/").is_some(), "marker of a/");
    assert_eq!(s.bucket.get("a/b/f").unwrap(), b"1");
}

#[test_case(mem_session ; "mem")]
#[test_case(garage_session ; "garage")]
fn append_and_overwrite_in_the_middle(creator: SessionCreator) {
    let s = creator(SessionConfig::default());
    std::fs::write(s.path("f"), b"0123456789").unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(s.path("f"))
        .unwrap();
    f.write_all(b"abc").unwrap();
    drop(f);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(s.path("f"))
        .unwrap();
    f.seek(SeekFrom::Start(2)).unwrap();
    f.write_all(b"XY").unwrap();
    f.sync_all().unwrap();
    assert_eq!(s.bucket.get("f").unwrap(), b"01XY456789abc");
    drop(f);
    let mut got = String::new();
    std::fs::File::open(s.path("f"))
        .unwrap()
        .read_to_string(&mut got)
        .unwrap();
    assert_eq!(got, "01XY456789abc");
}

#[test_case(mem_session ; "mem")]
#[test_case(garage_session ; "garage")]
fn rename_file_and_directory(creator: SessionCreator) {
    let s = creator(SessionConfig::default());
    std::fs::create_dir(s.path("d")).unwrap();
    std::fs::write(s.path("d/x"), b"x").unwrap();
    std::fs::rename(s.path("d/x"), s.path("d/y")).unwrap();
    assert_eq!(names(&s.path("d")), ["y"]);
    std::fs::rename(s.path("d"), s.path("e")).unwrap();
    assert_eq!(names(s.root()), ["e"]);
    assert_eq!(std::fs::read(s.path("e/y")).unwrap(), b"x");
    assert_eq!(s.bucket.keys(), ["e/", "e/y"]);
}

#[test_case(mem_session ; "mem")]
#[test_case(garage_session ; "garage")]
fn symlink_chmod_truncate_unlink_rmdir(creator: SessionCreator) {
    let s = creator(SessionConfig::default());
    std::fs::write(s.path("t"), b"target").unwrap();
    std::os::unix::fs::symlink("t", s.path("l")).unwrap();
    assert_eq!(std::fs::read_link(s.path("l")).unwrap().to_str(), Some("t"));
    assert_eq!(std::fs::read(s.path("l")).unwrap(), b"target");
    std::fs::set_permissions(s.path("t"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        std::fs::metadata(s.path("t")).unwrap().mode() & 0o777,
        0o600
    );
    assert_eq!(
        s.bucket.metadata("t").unwrap()["mode"],
        (libc::S_IFREG | 0o600).to_string()
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(s.path("t"))
        .unwrap()
        .set_len(3)
        .unwrap();
    assert_eq!(std::fs::read(s.path("t")).unwrap(), b"tar");
    std::fs::remove_file(s.path("l")).unwrap();
    std::fs::create_dir(s.path("d")).unwrap();
    std::fs::remove_dir(s.path("d")).unwrap();
    assert_eq!(names(s.root()), ["t"]);
}

#[test_case(mem_session ; "mem")]
#[test_case(garage_session ; "garage")]
fn empty_directory_survives_remount(creator: SessionCreator) {
    let mut s = creator(SessionConfig::default());
    std::fs::create_dir(s.path("empty")).unwrap();
    s.remount();
    assert!(std::fs::metadata(s.path("empty")).unwrap().is_dir());
}

#[test_case(mem_session ; "mem")]
fn large_directory_lists_every_entry_once_with_attributes(creator: SessionCreator) {
    let s = creator(SessionConfig::default());
    for i in 0..2500 {
        s.bucket
            .put(&format!("big/{i:05}"), &[1u8; 3], Default::default());
    }
    let entries: Vec<_> = std::fs::read_dir(s.path("big"))
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(entries.len(), 2500);
    let mut names: Vec<String> = entries
        .iter()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 2500);
    for e in entries.iter().take(50) {
        assert_eq!(e.metadata().unwrap().len(), 3);
    }
}

/// Write-only descriptors bypass the page cache (direct I/O); a reader that
/// already cached the file must still see what they wrote, and so must an
/// mmap of a read-write descriptor opened afterwards.
#[test_case(mem_session ; "mem")]
#[test_case(garage_session ; "garage")]
fn write_only_writes_are_seen_by_cached_readers_and_mmap(creator: SessionCreator) {
    let s = creator(SessionConfig::default());
    std::fs::write(s.path("f"), b"aaaaaaaa").unwrap();
    let mut reader = std::fs::File::open(s.path("f")).unwrap();
    let mut got = Vec::new();
    reader.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"aaaaaaaa");
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(s.path("f"))
        .unwrap();
    writer.seek(SeekFrom::Start(2)).unwrap();
    writer.write_all(b"XY").unwrap();
    got.clear();
    reader.seek(SeekFrom::Start(0)).unwrap();
    reader.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"aaXYaaaa", "cached reader, before close");
    drop(writer);
    let rw = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(s.path("f"))
        .unwrap();
    // SAFETY: an 8-byte shared read mapping of an open 8-byte file,
    // unmapped below before `rw` is dropped.
    let mapped = unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            8,
            libc::PROT_READ,
            libc::MAP_SHARED,
            std::os::unix::io::AsRawFd::as_raw_fd(&rw),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        let bytes = std::slice::from_raw_parts(p as *const u8, 8).to_vec();
        libc::munmap(p, 8);
        bytes
    };
    assert_eq!(mapped, b"aaXYaaaa");
    assert_eq!(s.bucket.get("f").unwrap(), b"aaXYaaaa");
}

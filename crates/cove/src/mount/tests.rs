//! `cove mount` through `run_with` over an in-memory bucket: the same CLI
//! path as S3, with a real FUSE mount.

use std::time::{Duration, Instant};

use bucketfs::client::ObjectClientError;
use bucketfs::faults::{Fault, FaultClient, Op};
use bucketfs::memory::MemoryClient;
use clap::Parser;

use super::*;

#[derive(Parser)]
struct TestCli {
    #[command(flatten)]
    args: Args,
}

fn args(extra: &[&str], mountpoint: &Path) -> Args {
    let mut argv = vec!["cove-mount", "--foreground"];
    argv.extend_from_slice(extra);
    let mp = mountpoint.to_str().expect("utf-8 temp path");
    argv.extend_from_slice(&["bucket", mp]);
    TestCli::parse_from(argv).args
}

fn is_mounted(path: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let p = path.to_str().unwrap_or_default();
    mounts.lines().any(|l| l.split(' ').nth(4) == Some(p))
}

fn wait_mounted(path: &Path) {
    let start = Instant::now();
    while !is_mounted(path) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "mount did not appear"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fusermount_u(path: &Path) {
    let status = std::process::Command::new("fusermount3")
        .arg("-u")
        .arg(path)
        .status()
        .expect("fusermount3 (package fuse3) is needed");
    assert!(status.success());
}

#[test]
fn mount_write_and_fusermount_unmount_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let client = MemoryClient::new();
    let c2 = client.clone();
    let a = args(
        &["--prefix", "p", "--metadata-ttl", "indefinite"],
        dir.path(),
    );
    let t = std::thread::spawn(move || run_with(move |_| Ok(c2), a));
    wait_mounted(dir.path());
    std::fs::write(dir.path().join("f"), b"data").unwrap();
    assert_eq!(&client.object("p/f").unwrap().body[..], b"data");
    fusermount_u(dir.path());
    t.join().unwrap().unwrap();
    assert!(!is_mounted(dir.path()));
}

#[test]
fn sigterm_unmounts_and_uploads_what_failed_before() {
    let dir = tempfile::tempdir().unwrap();
    let client = Arc::new(FaultClient::new(MemoryClient::new()));
    let c2 = Arc::clone(&client);
    let a = args(&[], dir.path());
    let t = std::thread::spawn(move || run_with(move |_| Ok(c2), a));
    wait_mounted(dir.path());
    client.fail_from(Op::Put, 1, Fault::Error(ObjectClientError::Timeout));
    // std::fs::write would drop the close(2) error; fsync reports it.
    let mut f = std::fs::File::create(dir.path().join("f")).unwrap();
    std::io::Write::write_all(&mut f, b"kept").unwrap();
    let e = f.sync_all().unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EIO));
    drop(f);
    assert!(client.inner().object("f").is_none());
    client.heal();
    // SAFETY: sending a signal to our own process; run_with has installed
    // a handler for it.
    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    t.join().unwrap().unwrap();
    assert_eq!(&client.inner().object("f").unwrap().body[..], b"kept");
}

/// The handlers exist before the mount is visible: a SIGTERM sent the moment
/// the mount appears unmounts cleanly instead of killing the process. (With
/// the handlers installed after mounting, a test sending SIGTERM right after
/// the mount appeared was killed by the default action in a CI run; the
/// window is narrow, so this test exercises the path rather than the race.)
#[test]
fn sigterm_as_soon_as_mounted_unmounts_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let client = MemoryClient::new();
    let c2 = client.clone();
    let a = args(&[], dir.path());
    let t = std::thread::spawn(move || run_with(move |_| Ok(c2), a));
    wait_mounted(dir.path());
    // SAFETY: signalling our own process; run_with installed its handler
    // before mounting.
    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    t.join().unwrap().unwrap();
    assert!(!is_mounted(dir.path()));
}

#[test]
fn sigterm_with_a_file_open_keeps_the_mount_until_it_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let client = MemoryClient::new();
    let c2 = client.clone();
    let a = args(&[], dir.path());
    let t = std::thread::spawn(move || run_with(move |_| Ok(c2), a));
    wait_mounted(dir.path());
    let mut f = std::fs::File::create(dir.path().join("open")).unwrap();
    // SAFETY: signalling our own process, which has a handler installed.
    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(500));
    assert!(is_mounted(dir.path()), "unmounted under an open file");
    std::io::Write::write_all(&mut f, b"still here").unwrap();
    f.sync_all().unwrap();
    drop(f);
    // SAFETY: as above.
    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
    t.join().unwrap().unwrap();
    assert!(!is_mounted(dir.path()));
    assert_eq!(&client.object("open").unwrap().body[..], b"still here");
}

#[test]
fn bad_mode_and_ttl_are_refused() {
    assert!(parse_mode("999").is_err());
    assert_eq!(parse_mode("0640"), Ok(0o640));
    assert_eq!(parse_ttl("indefinite"), Ok(Ttl(None)));
    assert_eq!(parse_ttl("1.5"), Ok(Ttl(Some(Duration::from_millis(1500)))));
    assert!(parse_ttl("-1").is_err());
    assert!(endpoint_is_local("http://127.0.0.1:3900"));
    assert!(!endpoint_is_local("https://s3.example.com"));
}

//! Escape attempts through the files API never reach host files: `..`,
//! absolute and relative symlinks to host paths, `/proc/self/root` and
//! `/proc/1/root`, symlinked parent directories; and one sandbox cannot
//! read another's files.

mod common;

use anyhow::Result;
use common::TestRuntime;
use cove_runtime::Runtime;

/// A host directory with a secret file, removed on drop.
struct HostSecret {
    dir: tempfile::TempDir,
}

impl HostSecret {
    fn new() -> Result<HostSecret> {
        let dir = tempfile::Builder::new().prefix("cove-escape-").tempdir()?;
        std::fs::write(dir.path().join("secret"), b"host-secret")?;
        Ok(HostSecret { dir })
    }
    fn path(&self) -> String {
        self.dir.path().display().to_string()
    }
    fn untouched(&self) -> bool {
        let names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        names.len() == 1 && std::fs::read(self.dir.path().join("secret")).unwrap() == b"host-secret"
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn files_api_escapes_never_touch_host_files() -> Result<()> {
    let host = HostSecret::new()?;
    let h = host.path();
    let t = TestRuntime::start().await?;
    let sb = t.sandbox().await?;
    sb.sh(&format!(
        "ln -s {h}/secret /root/abs && ln -s {h} /root/absdir && \
         ln -s ../../../../../../..{h} /root/reldir && ln -s /proc/self/root /root/procroot"
    ))
    .await?;

    let reads = [
        format!("/../../../../..{h}/secret"),
        format!("/root/../../..{h}/secret"),
        "/root/abs".to_string(),
        "/root/absdir/secret".to_string(),
        "/root/reldir/secret".to_string(),
        format!("/proc/self/root{h}/secret"),
        format!("/proc/1/root{h}/secret"),
        format!("/root/procroot{h}/secret"),
    ];
    for p in &reads {
        let got = sb.read(p).await;
        assert!(
            !matches!(&got, Ok(b) if b == b"host-secret"),
            "read {p} returned the host's secret"
        );
        assert!(got.is_err(), "read {p} found a file: {got:?}");
    }
    let writes = [
        format!("/../../..{h}/pwned"),
        "/root/abs".to_string(),
        "/root/absdir/pwned".to_string(),
        "/root/reldir/pwned".to_string(),
        format!("/proc/self/root{h}/pwned"),
        format!("/proc/1/root{h}/secret"),
    ];
    for p in &writes {
        // Whether the write lands inside the sandbox or is refused, the host is untouched.
        let _ = sb.write(p, b"pwned".to_vec()).await;
        assert!(host.untouched(), "write {p} changed the host directory");
    }
    // The symlink writes landed inside the sandbox's own tree.
    let out = sb.sh(&format!("cat {h}/pwned")).await?;
    assert_eq!(common::text(&out.stdout), "pwned");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn one_sandbox_cannot_read_another_sandboxs_files() -> Result<()> {
    let t = TestRuntime::start().await?;
    let a = t.sandbox().await?;
    let b = t.sandbox().await?;
    a.write("/root/a-only", b"a-secret".to_vec()).await?;
    assert_eq!(a.read("/root/a-only").await?, b"a-secret");
    assert!(b.read("/root/a-only").await.is_err());
    // Not through the host path of a's writable layer either.
    let upper = t
        .dir
        .path()
        .join("sandboxes")
        .join(a.id.as_str())
        .join("disk/upper/root/a-only");
    assert!(upper.exists());
    assert!(b.read(&upper.display().to_string()).await.is_err());
    // Nor through a's processes: b's pid namespace does not contain them.
    let out = b
        .sh("cat /proc/*/root/root/a-only 2>/dev/null; ls /proc | grep -c '^[0-9]'")
        .await?;
    assert!(!common::text(&out.stdout).contains("a-secret"));
    assert!(t.rt.read_file(&b.id, "/root/a-only").await.is_err());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sandbox_cannot_redirect_the_host_to_another_socket() -> Result<()> {
    use std::io::Read;
    let t = TestRuntime::start().await?;
    let b = t.sandbox().await?;
    // A host socket the sandbox would like the host to talk to.
    let host_dir = tempfile::tempdir()?;
    let host_sock = host_dir.path().join("host.sock");
    let listener = std::os::unix::net::UnixListener::bind(&host_sock)?;
    listener.set_nonblocking(true)?;
    let b_sock = t
        .dir
        .path()
        .join("sandboxes")
        .join(b.id.as_str())
        .join("run/agent.sock");
    for target in [
        host_sock.display().to_string(),
        b_sock.display().to_string(),
    ] {
        // A fresh sandbox a swaps its agent socket for a symlink to `target`
        // (after that only connections opened before reach its agent).
        let a = t.sandbox().await?;
        a.sh(&format!("ln -sf {target} /.cove/run/agent.sock.new && mv -f /.cove/run/agent.sock.new /.cove/run/agent.sock")).await?;
        // A runtime without pooled connections (as after a restart).
        let fresh = cove_runtime::runc::RuncRuntime::start(t.rt.config().clone()).await?;
        let r = fresh
            .exec(
                &a.id,
                cove_runtime::ExecSpec {
                    cmd: "hostname".into(),
                    ..Default::default()
                },
            )
            .await;
        assert!(
            r.is_err(),
            "exec through a redirected socket answered: {r:?}"
        );
    }
    // Whatever connected to the host socket never got a byte.
    if let Ok((mut conn, _)) = listener.accept() {
        conn.set_read_timeout(Some(std::time::Duration::from_millis(200)))?;
        let mut buf = [0u8; 16];
        assert!(
            matches!(conn.read(&mut buf), Ok(0) | Err(_)),
            "the host socket received data"
        );
    }
    Ok(())
}

/// Docker's default seccomp profile holds in every sandbox (the agent loads
/// it as PID 1, before any command runs): namespaces, keyrings and vsock
/// are refused with EPERM, `clone3` answers ENOSYS so libc falls back to
/// `clone`, ordinary calls work, and the program file is gone.
#[tokio::test(flavor = "multi_thread")]
async fn sandbox_syscalls_are_filtered_by_dockers_seccomp_profile() -> Result<()> {
    let t = TestRuntime::start().await?;
    let sb = t.sandbox().await?;
    let status = sb
        .sh("grep -E '^Seccomp(_filters)?:' /proc/self/status /proc/1/status")
        .await?;
    let out = String::from_utf8_lossy(&status.stdout).to_string();
    for pid in ["self", "1"] {
        assert!(
            out.contains(&format!("/proc/{pid}/status:Seccomp:\t2")),
            "{out}"
        );
        assert!(
            out.contains(&format!("/proc/{pid}/status:Seccomp_filters:\t1")),
            "{out}"
        );
    }
    let probe = r#"
import ctypes, os, socket
libc = ctypes.CDLL(None, use_errno=True)
def errno_of(nr, *args):
    r = libc.syscall(nr, *args)
    return 0 if r >= 0 else ctypes.get_errno()
print("unshare", errno_of(272, 0x10000000))          # CLONE_NEWUSER
print("keyctl", errno_of(250, 0, 0, 0, 0, 0))
print("clone3", errno_of(435, 0, 0))
try:
    socket.socket(40, socket.SOCK_STREAM)            # AF_VSOCK
    print("vsock", 0)
except OSError as e:
    print("vsock", e.errno)
print("getpid", errno_of(39))
"#;
    let r = sb.run("python3", &["-c", probe]).await?;
    assert_eq!(r.exit_code, 0, "{}", String::from_utf8_lossy(&r.stderr));
    let got = String::from_utf8_lossy(&r.stdout).to_string();
    for want in ["unshare 1", "keyctl 1", "clone3 38", "vsock 1", "getpid 0"] {
        assert!(got.lines().any(|l| l == want), "{want} in {got}");
    }
    let left = sb.sh("test -e /.cove/run/seccomp.bpf").await?;
    assert_ne!(
        left.exit_code, 0,
        "the program file is removed after the load"
    );
    Ok(())
}

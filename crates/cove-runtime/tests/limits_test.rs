//! Limits hold and only the sandbox feels them: disk (ENOSPC inside), pids
//! (a fork bomb is contained), memory (only the hog dies, the agent lives).

mod common;

use anyhow::Result;
use bytes::Bytes;
use common::{text, TestRuntime};
use cove_runtime::{Runtime, RuntimeError, RuntimeState};

#[tokio::test(flavor = "multi_thread")]
async fn writing_past_disk_mib_gives_enospc_inside() -> Result<()> {
    let t = TestRuntime::start().await?;
    let sb = t.sandbox_with(|s| s.disk_mib = 64).await?;
    let out = sb
        .sh("dd if=/dev/zero of=/root/fill bs=1M count=200 2>&1; echo rc=$?")
        .await?;
    let s = text(&out.stdout);
    assert!(s.contains("No space left on device"), "{s}");
    assert!(!s.contains("rc=0"), "{s}");
    // The files API reports it as NoSpace.
    let body = futures::stream::iter(
        (0..100).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 1 << 20]))),
    );
    let r = t.rt.write_file(&sb.id, "/root/more", Box::pin(body)).await;
    assert!(matches!(r, Err(RuntimeError::NoSpace)), "{r:?}");
    // Freeing space makes writes work again; the host disk never saw the data.
    sb.sh("rm -f /root/fill /root/more").await?;
    assert_eq!(sb.write("/root/ok", b"fine".to_vec()).await?, 4);
    let img = t
        .dir
        .path()
        .join("sandboxes")
        .join(sb.id.as_str())
        .join("disk.img");
    let used = std::fs::metadata(&img).map(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512)?;
    assert!(used <= 70 << 20, "disk image uses {used} bytes on the host");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fork_bomb_is_contained_by_the_pids_limit() -> Result<()> {
    let t = TestRuntime::start().await?;
    let sb = t.sandbox_with(|s| s.pids_limit = 64).await?;
    let script = r#"
import os, errno, signal, time
kids = []
err = None
for _ in range(10000):
    try:
        pid = os.fork()
    except OSError as e:
        err = e.errno
        break
    if pid == 0:
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
for k in kids:
    os.kill(k, signal.SIGKILL)
for k in kids:
    os.waitpid(k, 0)
print(len(kids), errno.errorcode.get(err, err))
"#;
    let out = sb.run("python3", &["-c", script]).await?;
    let s = text(&out.stdout);
    let mut it = s.split_whitespace();
    let forks: u32 = it.next().unwrap_or("0").parse()?;
    assert_eq!(it.next(), Some("EAGAIN"), "{s} {}", text(&out.stderr));
    assert!(forks > 10 && forks < 64, "{forks} forks");
    // The sandbox still works afterwards, and so does a shell-style bomb's cleanup.
    assert_eq!(text(&sb.run("echo", &["alive"]).await?.stdout), "alive\n");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_exhaustion_kills_only_the_hog() -> Result<()> {
    let t = TestRuntime::start().await?;
    let sb = t.sandbox_with(|s| s.mem_mib = 128).await?;
    let out = sb
        .run("python3", &["-c", "b = b'x' * (512 << 20); print(len(b))"])
        .await?;
    assert_eq!(
        out.exit_code,
        128 + 9,
        "stdout {} stderr {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // The agent (PID 1) survived and the sandbox is still running.
    assert_eq!(text(&sb.run("echo", &["alive"]).await?.stdout), "alive\n");
    let list = t.rt.list().await?;
    assert_eq!(
        list.iter().find(|s| s.id == sb.id).map(|s| s.state),
        Some(RuntimeState::Running)
    );
    Ok(())
}

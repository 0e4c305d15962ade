//! Growing a sandbox's disk (`resize_disk`) while it runs and while it is
//! checkpointed; shrinking is refused. Growing a mounted ext4 needs
//! CAP_SYS_RESOURCE: where root lacks it (this dev VM), the running case
//! must say so instead.

mod common;

use anyhow::{Context, Result};
use common::{text, TestRuntime, TestSandbox};
use cove_runtime::{Runtime, RuntimeError};

/// Size of the sandbox's writable layer in MiB, as `df` inside sees it.
async fn disk_mib(sb: &TestSandbox) -> Result<u64> {
    let out = sb.run("df", &["-B1M", "--output=size", "/"]).await?;
    text(&out.stdout)
        .lines()
        .nth(1)
        .context("no df line")?
        .trim()
        .parse()
        .context("df size")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_grows_running_and_checkpointed_but_never_shrinks() -> Result<()> {
    let rt = TestRuntime::start().await?;
    let sb = rt.sandbox_with(|s| s.disk_mib = 256).await?;
    let start = disk_mib(&sb).await?;
    assert!((200..=256).contains(&start), "{start} MiB");
    sb.write("/root/keep.txt", b"kept".to_vec()).await?;

    let grown = if has_cap_sys_resource()? {
        rt.rt
            .resize_disk(&sb.id, 512)
            .await
            .context("grow running")?;
        let grown = disk_mib(&sb).await?;
        assert!(grown > start + 200, "{start} -> {grown} MiB");
        grown
    } else {
        let err = rt.rt.resize_disk(&sb.id, 512).await.unwrap_err();
        assert!(
            matches!(&err, RuntimeError::Unsupported(m) if m.contains("CAP_SYS_RESOURCE")),
            "{err}"
        );
        assert_eq!(
            disk_mib(&sb).await?,
            start,
            "a refused grow changes nothing"
        );
        start
    };

    rt.rt.checkpoint(&sb.id).await?;
    rt.rt
        .resize_disk(&sb.id, 768)
        .await
        .context("grow checkpointed")?;
    rt.rt.restore(&sb.id, &[]).await?;
    let again = disk_mib(&sb).await?;
    assert!(again > grown + 200, "{grown} -> {again} MiB");
    assert_eq!(sb.read("/root/keep.txt").await?, b"kept".to_vec());

    assert!(matches!(
        rt.rt.resize_disk(&sb.id, 256).await,
        Err(RuntimeError::DiskShrink {
            current_mib: 768,
            requested_mib: 256,
            ..
        })
    ));
    Ok(())
}

/// Whether this process may grow a mounted ext4 (capability 24).
fn has_cap_sys_resource() -> Result<bool> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .context("no CapEff")?;
    Ok(u64::from_str_radix(eff.trim(), 16)? & (1 << 24) != 0)
}

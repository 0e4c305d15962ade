//! Fork with real CRIU: two forks of one checkpointed sandbox run side by
//! side with their own ids, hostnames, addresses and files, continue the
//! source's memory, and leave the source's checkpoint and disk unchanged.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use common::workload::{ask, ask_from_host, start_server};
use common::{spec_for_tests, text, TestRuntime, TestSandbox};
use cove_runtime::{Runtime, RuntimeState};

/// Name → (size, mtime) of every file of a directory.
fn snapshot(dir: &Path) -> Result<BTreeMap<String, (u64, i64)>> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let m = e.metadata()?;
        out.insert(
            e.file_name().to_string_lossy().into_owned(),
            (m.len(), m.mtime()),
        );
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread")]
async fn two_forks_run_side_by_side_without_sharing_files() -> Result<()> {
    let rt = TestRuntime::start().await?;
    let source = rt.sandbox_with(|s| s.hostname = "source".into()).await?;
    let first = start_server(&source, 16, "/root/held.txt").await?;
    source.write("/root/shared.txt", b"source".to_vec()).await?;
    rt.rt.checkpoint(&source.id).await?;
    let dir = rt.rt.state_dir().join("sandboxes").join(source.id.as_str());
    let before = snapshot(&dir.join("checkpoint"))?;
    let disk_before = std::fs::read(dir.join("disk.img"))?;

    let mut forks = Vec::new();
    for n in 1..=2 {
        let mut spec = spec_for_tests();
        spec.hostname = format!("fork-{n}");
        let created = rt.rt.fork(&source.id, &spec, &[]).await.context("fork")?;
        forks.push(TestSandbox {
            rt: rt.rt.clone(),
            id: spec.id,
            ip: created.ip,
        });
    }
    assert_ne!(forks[0].ip, forks[1].ip);
    assert_ne!(forks[0].ip, source.ip);
    for (n, fork) in forks.iter().enumerate() {
        let host = fork.run("hostname", &[]).await?;
        assert_eq!(text(&host.stdout).trim(), format!("fork-{}", n + 1));
        let a = ask(fork).await?;
        assert_eq!(a.digest, first.digest0, "the fork has the source's memory");
        assert_eq!(a.count, 2, "and continues its counter");
        let b = ask_from_host(fork.ip)?;
        assert_eq!(b.count, 3, "answers on its own address");
        fork.write("/root/shared.txt", format!("fork-{}", n + 1).into_bytes())
            .await?;
    }
    for (n, fork) in forks.iter().enumerate() {
        assert_eq!(
            fork.read("/root/shared.txt").await?,
            format!("fork-{}", n + 1).into_bytes()
        );
    }
    let states: BTreeMap<_, _> = rt
        .rt
        .list()
        .await?
        .into_iter()
        .map(|s| (s.id, s.state))
        .collect();
    assert_eq!(states.get(&source.id), Some(&RuntimeState::Checkpointed));
    assert_eq!(
        snapshot(&dir.join("checkpoint"))?,
        before,
        "source checkpoint unchanged"
    );
    assert!(
        std::fs::read(dir.join("disk.img"))? == disk_before,
        "source disk unchanged"
    );

    // Destroying a fork does not touch the source; the source resumes as it was.
    drop(forks.pop());
    rt.rt
        .restore(&source.id, &[])
        .await
        .context("restore the source")?;
    assert_eq!(source.read("/root/shared.txt").await?, b"source".to_vec());
    assert_eq!(ask(&source).await?.count, 2);
    assert_eq!(
        text(&source.run("hostname", &[]).await?.stdout).trim(),
        "source"
    );
    assert_eq!(forks[0].read("/root/shared.txt").await?, b"fork-1".to_vec());
    Ok(())
}

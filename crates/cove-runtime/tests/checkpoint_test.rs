//! Pause and resume with real CRIU checkpoints (runc + CRIU 4.x): a sandbox
//! running a Python HTTP server with 64 MiB of random data is checkpointed
//! (nothing of it stays on the host), restored (same memory, counter
//! continues, server answers on loopback and over its veth), and a failed
//! restore keeps the checkpoint for a good retry.

mod common;

use anyhow::{Context, Result};
use common::workload::{self, ask, ask_from_host, assert_nothing_on_host, start_server};
use common::TestRuntime;
use cove_runtime::{Runtime, RuntimeError, RuntimeState};

async fn state_of(rt: &TestRuntime, id: &cove_api::ids::SandboxId) -> Result<Option<RuntimeState>> {
    Ok(rt
        .rt
        .list()
        .await?
        .into_iter()
        .find(|s| &s.id == id)
        .map(|s| s.state))
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoint_frees_the_host_and_restore_continues_memory_files_and_server() -> Result<()> {
    let rt = TestRuntime::start().await?;
    let sb = rt.sandbox_with(|s| s.mem_mib = 512).await?;
    let first = start_server(&sb, 64, "/root/held.txt").await?;
    assert_eq!(first.count, 1);
    assert_eq!(first.digest0, first.digest);
    let state = rt.rt.state_dir();
    for cycle in 0..2u64 {
        let pid = workload::init_pid(&state, &sb.id).context("no init pid")?;
        let info = rt.rt.checkpoint(&sb.id).await.context("checkpoint")?;
        assert!(
            info.size_bytes > 64 << 20,
            "checkpoint of {} bytes",
            info.size_bytes
        );
        assert!(
            info.memory_freed_bytes.unwrap_or(0) > 64 << 20,
            "freed {:?}",
            info.memory_freed_bytes
        );
        assert_nothing_on_host(&state, &sb.id, pid)?;
        // Crash recovery tells complete images by this debug line (CRIU
        // logs it after the images are flushed, before it kills the tasks).
        let log = std::fs::read_to_string(
            state
                .join("sandboxes")
                .join(sb.id.as_str())
                .join("checkpoint")
                .join("dump.log"),
        )?;
        assert!(log.contains("Running post-dump scripts"));
        assert_eq!(
            state_of(&rt, &sb.id).await?,
            Some(RuntimeState::Checkpointed)
        );
        assert!(matches!(
            sb.run("true", &[])
                .await
                .unwrap_err()
                .downcast::<RuntimeError>()?,
            RuntimeError::NotRunning(_)
        ));
        assert!(matches!(
            rt.rt.checkpoint(&sb.id).await,
            Err(RuntimeError::NotRunning(_))
        ));

        let created = rt.rt.restore(&sb.id, &[]).await.context("restore")?;
        assert_eq!(created.ip, sb.ip, "the address is kept");
        assert_eq!(state_of(&rt, &sb.id).await?, Some(RuntimeState::Running));
        let inside = ask(&sb).await?;
        assert_eq!(inside.digest0, first.digest0, "same data in memory");
        assert_eq!(inside.digest, first.digest0, "data unchanged");
        assert_eq!(inside.count, 2 + 2 * cycle, "the counter continues");
        assert_eq!(inside.pid, first.pid, "same process");
        assert_eq!(inside.cwd, "/root/work");
        assert_eq!(
            inside.held_first_line, "held-open",
            "the open file still reads"
        );
        let outside = ask_from_host(sb.ip)?;
        assert_eq!(outside.count, 3 + 2 * cycle, "answers over the veth too");
        assert!(
            !state
                .join("sandboxes")
                .join(sb.id.as_str())
                .join("checkpoint")
                .exists(),
            "the checkpoint is deleted after a good restore"
        );
    }
    // Every request appended through the file held open across both cycles.
    let held = String::from_utf8(sb.read("/root/held.txt").await?)?;
    assert_eq!(
        held.lines().collect::<Vec<_>>(),
        [
            "held-open",
            "request 1",
            "request 2",
            "request 3",
            "request 4",
            "request 5"
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_restore_keeps_the_checkpoint_and_a_retry_works() -> Result<()> {
    let rt = TestRuntime::start().await?;
    let sb = rt.sandbox().await?;
    let first = start_server(&sb, 4, "/root/held.txt").await?;
    let pid = workload::init_pid(&rt.rt.state_dir(), &sb.id).context("no init pid")?;
    rt.rt.checkpoint(&sb.id).await?;
    let ck = rt
        .rt
        .state_dir()
        .join("sandboxes")
        .join(sb.id.as_str())
        .join("checkpoint");
    // Hide one image: CRIU fails to restore.
    std::fs::rename(ck.join("inventory.img"), ck.join("inventory.img.hidden"))?;
    let err = rt
        .rt
        .restore(&sb.id, &[])
        .await
        .expect_err("restore without inventory");
    assert!(err.to_string().contains("restore"), "{err}");
    assert!(ck.join("pages-1.img").exists(), "the checkpoint is intact");
    assert_nothing_on_host(&rt.rt.state_dir(), &sb.id, pid)?;
    assert_eq!(
        state_of(&rt, &sb.id).await?,
        Some(RuntimeState::Checkpointed)
    );

    std::fs::rename(ck.join("inventory.img.hidden"), ck.join("inventory.img"))?;
    rt.rt.restore(&sb.id, &[]).await.context("retry")?;
    let again = ask(&sb).await?;
    assert_eq!(again.digest, first.digest0);
    assert_eq!(again.count, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn restore_and_fork_of_a_running_sandbox_are_refused() -> Result<()> {
    let rt = TestRuntime::start().await?;
    let sb = rt.sandbox().await?;
    assert!(matches!(
        rt.rt.restore(&sb.id, &[]).await,
        Err(RuntimeError::NotCheckpointed(_))
    ));
    let mut spec = common::spec_for_tests();
    spec.hostname = "nope".into();
    assert!(matches!(
        rt.rt.fork(&sb.id, &spec, &[]).await,
        Err(RuntimeError::NotCheckpointed(_))
    ));
    assert!(!rt
        .rt
        .state_dir()
        .join("sandboxes")
        .join(spec.id.as_str())
        .exists());
    assert_eq!(sb.run("true", &[]).await?.exit_code, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_held_open_on_a_declared_bind_survives_checkpoint_and_restore() -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let rt = TestRuntime::start().await?;
    let host = tempfile::tempdir()?;
    // The sandbox's root (an unprivileged host uid) traverses to the dir and writes in it.
    std::fs::set_permissions(host.path(), std::fs::Permissions::from_mode(0o711))?;
    let data = host.path().join("data");
    std::fs::create_dir(&data)?;
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777))?;
    let mounts = [cove_runtime::BindMount {
        host_path: data.clone(),
        container_path: "/mnt/data".into(),
        read_only: false,
    }];
    let spec = common::spec_for_tests();
    let created = rt.rt.create_with_mounts(&spec, &mounts).await?;
    let sb = common::TestSandbox {
        rt: rt.rt.clone(),
        id: spec.id.clone(),
        ip: created.ip,
    };
    let first = start_server(&sb, 4, "/mnt/data/held.txt").await?;
    assert_eq!(first.held_first_line, "held-open");
    rt.rt.checkpoint(&sb.id).await.context("checkpoint")?;
    assert_eq!(
        std::fs::read_to_string(data.join("held.txt"))?,
        "held-open\nrequest 1\n"
    );
    rt.rt.restore(&sb.id, &mounts).await.context("restore")?;
    let again = ask(&sb).await?;
    assert_eq!(again.count, 2);
    assert_eq!(again.held_first_line, "held-open");
    // The write went through the descriptor kept open across the checkpoint
    // to the host directory.
    assert_eq!(
        std::fs::read_to_string(data.join("held.txt"))?,
        "held-open\nrequest 1\nrequest 2\n"
    );
    let ls = sb.run("ls", &["/mnt/data"]).await?;
    assert_eq!(common::text(&ls.stdout), "held.txt\n");
    drop(sb);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn destroying_a_checkpointed_sandbox_removes_everything() -> Result<()> {
    let rt = TestRuntime::start().await?;
    let sb = rt.sandbox().await?;
    rt.rt.checkpoint(&sb.id).await?;
    let state = rt.rt.state_dir();
    rt.rt.destroy(&sb.id).await?;
    assert!(!state.join("sandboxes").join(sb.id.as_str()).exists());
    assert!(rt.rt.list().await?.is_empty());
    let leases = std::fs::read_dir(state.join("net").join(&rt.bridge).join("leases"))?.count();
    assert_eq!(leases, 0, "the address lease is released");
    assert!(matches!(
        rt.rt.restore(&sb.id, &[]).await,
        Err(RuntimeError::NotFound(_))
    ));
    Ok(())
}

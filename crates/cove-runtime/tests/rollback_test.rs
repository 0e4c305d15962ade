//! Failure paths: a create whose agent never answers is rolled back
//! completely; a stopped container lists as `Stopped` and refuses exec;
//! leftovers of a half-done create list as `Partial` and destroy removes them.

mod common;

use std::time::Duration;

use anyhow::Result;
use cove_api::ids::SandboxId;
use cove_runtime::runc::RuncRuntime;
use cove_runtime::{ExecSpec, Runtime, RuntimeError, RuntimeState, SandboxSpec};

/// Deletes the test's bridge even when an assertion fails.
struct BridgeGuard(String);

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .status();
    }
}

fn spec() -> SandboxSpec {
    SandboxSpec {
        id: SandboxId::generate(),
        hostname: "rb".into(),
        rootfs: "devbox:1".into(),
        vcpu: 1,
        cpu_quota_pct: None,
        mem_mib: 128,
        disk_mib: 64,
        pids_limit: 64,
        mounts: Vec::new(),
    }
}

fn nothing_left(state: &std::path::Path, id: &SandboxId) {
    assert!(
        !state.join("sandboxes").join(id.as_str()).exists(),
        "sandbox dir left"
    );
    assert!(
        !state.join("runc").join(id.as_str()).exists(),
        "runc state left"
    );
    assert!(
        !std::path::Path::new("/run/netns")
            .join(format!("cove-{id}"))
            .exists(),
        "netns left"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(id.as_str()), "mount left");
    let leases = std::fs::read_dir(state.join("net"))
        .into_iter()
        .flatten()
        .flatten();
    for bridge in leases {
        for l in std::fs::read_dir(bridge.path().join("leases"))
            .into_iter()
            .flatten()
            .flatten()
        {
            assert_ne!(
                std::fs::read_to_string(l.path()).unwrap(),
                id.as_str(),
                "lease left"
            );
        }
    }
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        assert!(
            !h.path().join("cove-test").join(id.as_str()).exists(),
            "cgroup left"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_whose_agent_never_answers_is_rolled_back() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cfg = common::test_config(dir.path())?;
    let _bridge = BridgeGuard(cfg.bridge.clone());
    // An "agent" that runs but never answers.
    let fake = dir.path().join("fake-agent");
    std::fs::write(&fake, "#!/bin/sh\nexec sleep 1000\n")?;
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    cfg.agent_bin = fake;
    cfg.agent_timeout = Duration::from_millis(1500);
    let rt = RuncRuntime::start(cfg).await?;
    let s = spec();
    let err = rt.create(&s).await.expect_err("create must fail");
    assert!(
        matches!(err, RuntimeError::AgentUnreachable { .. }),
        "{err}"
    );
    nothing_left(dir.path(), &s.id);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn stopped_and_partial_sandboxes_are_listed_as_such_and_destroyed() -> Result<()> {
    let t = common::TestRuntime::start().await?;
    let sb = t.sandbox().await?;
    // Kill the container behind the runtime's back.
    let st = std::process::Command::new("runc")
        .arg("--root")
        .arg(t.dir.path().join("runc"))
        .args(["kill", sb.id.as_str(), "KILL"])
        .status()?;
    assert!(st.success());
    let mut state = None;
    for _ in 0..50 {
        state =
            t.rt.list()
                .await?
                .iter()
                .find(|s| s.id == sb.id)
                .map(|s| s.state);
        if state == Some(RuntimeState::Stopped) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, Some(RuntimeState::Stopped));
    let r =
        t.rt.exec(
            &sb.id,
            ExecSpec {
                cmd: "true".into(),
                ..Default::default()
            },
        )
        .await;
    assert!(matches!(r, Err(RuntimeError::NotRunning(_))), "{r:?}");

    // A half-done create: a record still `creating` and a bare dir.
    let half = SandboxId::generate();
    let d = t.dir.path().join("sandboxes").join(half.as_str());
    std::fs::create_dir_all(d.join("rootfs"))?;
    std::fs::write(
        d.join("record.json"),
        format!(
            r#"{{"id":"{half}","hostname":"h","image":"devbox:1","ip":null,"host_veth":null,"mem_mib":1,"disk_mib":1,"phase":"creating"}}"#
        ),
    )?;
    let list = t.rt.list().await?;
    assert_eq!(
        list.iter().find(|s| s.id == half).map(|s| s.state),
        Some(RuntimeState::Partial)
    );
    t.rt.destroy(&half).await?;
    t.rt.destroy(&sb.id).await?;
    nothing_left(t.dir.path(), &half);
    nothing_left(t.dir.path(), &sb.id);
    assert!(t.rt.list().await?.is_empty());
    std::mem::forget(sb);
    Ok(())
}

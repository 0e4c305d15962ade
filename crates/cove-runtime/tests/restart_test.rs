//! Restart safety: a process that created a sandbox is killed with SIGKILL;
//! a new runtime on the same state dir lists the sandbox as running, execs
//! in it, moves files, and destroys it cleanly.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use common::text;
use cove_api::ids::SandboxId;
use cove_runtime::runc::RuncRuntime;
use cove_runtime::{ExecSpec, Runtime, RuntimeState, SandboxSpec};

const ENV_STATE: &str = "COVE_RESTART_TEST_STATE";
const ENV_BRIDGE: &str = "COVE_RESTART_TEST_BRIDGE";
const ENV_SUBNET: &str = "COVE_RESTART_TEST_SUBNET";

/// Deletes the test bridge at the end.
struct BridgeGuard(String);

impl Drop for BridgeGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}

fn config_from_env(state: &std::path::Path) -> Result<cove_runtime::runc::RuncConfig> {
    let mut cfg = common::test_config(state)?;
    if let (Ok(b), Ok(s)) = (std::env::var(ENV_BRIDGE), std::env::var(ENV_SUBNET)) {
        cfg.bridge = b;
        cfg.subnet = s.parse()?;
    }
    Ok(cfg)
}

/// Not a test of its own: the child process of the restart test. Creates a
/// sandbox, prints its id, then waits to be killed.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "helper process for a_new_runtime_after_kill_9_finds_and_uses_running_sandboxes"]
async fn helper_create_sandbox_and_wait() -> Result<()> {
    let Ok(state) = std::env::var(ENV_STATE) else {
        return Ok(());
    };
    let rt = RuncRuntime::start(config_from_env(std::path::Path::new(&state))?).await?;
    let spec = SandboxSpec {
        id: SandboxId::generate(),
        hostname: "survivor".into(),
        rootfs: "devbox:1".into(),
        vcpu: 1,
        cpu_quota_pct: None,
        mem_mib: 256,
        disk_mib: 128,
        pids_limit: 64,
        mounts: Vec::new(),
    };
    let created = rt.create(&spec).await?;
    println!("SANDBOX {} {}", spec.id, created.ip);
    tokio::time::sleep(std::time::Duration::from_secs(600)).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_runtime_after_kill_9_finds_and_uses_running_sandboxes() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let cfg = common::test_config(dir.path())?;
    let _bridge = BridgeGuard(cfg.bridge.clone());
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "helper_create_sandbox_and_wait",
            "--ignored",
            "--nocapture",
        ])
        .env(ENV_STATE, dir.path())
        .env(ENV_BRIDGE, &cfg.bridge)
        .env(ENV_SUBNET, cfg.subnet.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut line = String::new();
    let mut found = None;
    for l in BufReader::new(stdout).lines() {
        line = l?;
        if let Some(rest) = line.strip_prefix("SANDBOX ") {
            found = Some(rest.to_string());
            break;
        }
    }
    let Some(found) = found else {
        let _ = child.kill();
        bail!("the helper never printed a sandbox (last line {line:?})");
    };
    let (id, ip) = found.split_once(' ').context("bad helper line")?;
    let id = SandboxId::parse(id).context("bad id")?;
    child.kill()?; // SIGKILL
    child.wait()?;

    let rt = RuncRuntime::start(cfg).await?;
    let list = rt.list().await?;
    let me = list
        .iter()
        .find(|s| s.id == id)
        .context("sandbox not listed after restart")?;
    assert_eq!(me.state, RuntimeState::Running);
    assert_eq!(me.ip.map(|i| i.to_string()).as_deref(), Some(ip));
    let out = rt
        .exec(
            &id,
            ExecSpec {
                cmd: "hostname".into(),
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(text(&out.stdout), "survivor\n");
    let body = futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from_static(
        b"still here",
    ))]);
    rt.write_file(&id, "/root/after-restart", Box::pin(body))
        .await?;
    let out = rt
        .exec(
            &id,
            ExecSpec {
                cmd: "cat".into(),
                args: vec!["/root/after-restart".into()],
                ..Default::default()
            },
        )
        .await?;
    assert_eq!(text(&out.stdout), "still here");
    rt.destroy(&id).await?;
    assert!(rt.list().await?.is_empty());
    Ok(())
}

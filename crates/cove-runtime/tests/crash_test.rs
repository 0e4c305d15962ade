//! Crash safety of pause and resume: a process that checkpoints and
//! restores a sandbox in a loop is killed with SIGKILL at several moments
//! (during the dump, during the restore, between them); a new runtime on the
//! same state dir finds the sandbox running or checkpointed, never lost,
//! and it pauses and resumes again with its memory intact.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use common::workload::{ask_on, start_server_on};
use cove_api::ids::SandboxId;
use cove_runtime::runc::RuncRuntime;
use cove_runtime::{Runtime, RuntimeState};

const ENV_STATE: &str = "COVE_CRASH_TEST_STATE";
const ENV_BRIDGE: &str = "COVE_CRASH_TEST_BRIDGE";
const ENV_SUBNET: &str = "COVE_CRASH_TEST_SUBNET";
const ENV_ID: &str = "COVE_CRASH_TEST_ID";

/// Destroys the sandbox at the end, through a runtime of its own.
struct Destroy(cove_runtime::runc::RuncConfig, SandboxId);

impl Drop for Destroy {
    fn drop(&mut self) {
        let (cfg, id) = (self.0.clone(), self.1.clone());
        let _ = std::thread::spawn(move || {
            if let Ok(r) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                let _ = r.block_on(async {
                    let rt = RuncRuntime::start(cfg).await?;
                    rt.destroy(&id).await
                });
            }
        })
        .join();
    }
}

/// Another runtime's keep-alive connections to the agent would be unix
/// sockets with a peer outside the sandbox, which CRIU refuses to dump;
/// only one runtime runs per state dir in real life. Dropping the runtime
/// closes them once their tasks notice.
async fn drop_agent_connections(rt: RuncRuntime) {
    drop(rt);
    tokio::time::sleep(Duration::from_millis(100)).await;
}

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

/// Not a test of its own: the child process. Checkpoints and restores the
/// sandbox in `ENV_ID` forever, printing each step before it starts.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "helper process for a_kill_9_during_pause_or_resume_never_loses_the_sandbox"]
async fn helper_pause_and_resume_forever() -> Result<()> {
    let (Ok(state), Ok(id)) = (std::env::var(ENV_STATE), std::env::var(ENV_ID)) else {
        return Ok(());
    };
    let id = SandboxId::parse(&id).context("bad id")?;
    let rt = RuncRuntime::start(config_from_env(std::path::Path::new(&state))?).await?;
    loop {
        let state = rt
            .list()
            .await?
            .into_iter()
            .find(|s| s.id == id)
            .map(|s| s.state);
        if state == Some(RuntimeState::Running) {
            println!("CHECKPOINT");
            rt.checkpoint(&id).await?;
        }
        println!("RESTORE");
        rt.restore(&id, &[]).await?;
    }
}

/// Runs the helper until `marker` was printed `nth` times, waits `ms`,
/// then kills it with SIGKILL (and runc and CRIU with it when
/// `with_tools`) and waits for the runc and CRIU it started.
fn kill_helper_at(
    state: &std::path::Path,
    cfg: &cove_runtime::runc::RuncConfig,
    id: &SandboxId,
    (marker, nth, ms, with_tools): (&str, usize, u64, bool),
) -> Result<()> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "--exact",
            "helper_pause_and_resume_forever",
            "--ignored",
            "--nocapture",
        ])
        .env(ENV_STATE, state)
        .env(ENV_BRIDGE, &cfg.bridge)
        .env(ENV_SUBNET, cfg.subnet.to_string())
        .env(ENV_ID, id.as_str())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(state.join("helper.log"))?)
        .spawn()?;
    let stdout = child.stdout.take().context("child stdout")?;
    // Read before the marker: the dump kills this process.
    let init = common::workload::init_pid(state, id);
    let mut seen = 0;
    for l in BufReader::new(stdout).lines() {
        if l? == marker {
            seen += 1;
            if seen == nth {
                break;
            }
        }
    }
    if seen < nth {
        let _ = child.kill();
        let _ = child.wait();
        let log = std::fs::read_to_string(state.join("helper.log")).unwrap_or_default();
        bail!("the helper stopped before {marker} #{nth}: {log}");
    }
    if ms == TASKS_GONE {
        wait_until_gone(init.context("no init pid before the dump")?)?;
    } else {
        std::thread::sleep(Duration::from_millis(ms));
    }
    child.kill()?;
    child.wait()?;
    if with_tools {
        kill_runc_and_criu(state)?;
    }
    // runc and CRIU are not children that die with it: let them finish, as
    // they would while a real server restarts.
    let needle = state.to_string_lossy().into_owned();
    for _ in 0..200 {
        let busy = std::fs::read_dir("/proc")?.flatten().any(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            (cmd.starts_with("runc") || cmd.contains("criu")) && cmd.contains(&needle)
        });
        if !busy {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("runc or criu still running 10 s after the kill")
}

/// A kill moment: as soon as CRIU has killed the dumped tasks (the images
/// are all written then), before runc removes the container.
const TASKS_GONE: u64 = u64::MAX;

fn wait_until_gone(pid: u32) -> Result<()> {
    for _ in 0..5000 {
        // A zombie is gone as far as the dump goes.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat.is_empty()
            || stat
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'))
        {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!("the init {pid} still runs 10 s into the dump")
}

/// SIGKILLs the runc processes working on `state` (the helper started them)
/// and their CRIU children: a crash that takes the tools down too (an OOM
/// kill, a service manager killing the whole group).
fn kill_runc_and_criu(state: &std::path::Path) -> Result<()> {
    let needle = state.to_string_lossy().into_owned();
    let mut runcs = Vec::new();
    let mut parents = Vec::new();
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmd =
            String::from_utf8_lossy(&std::fs::read(e.path().join("cmdline")).unwrap_or_default())
                .into_owned();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let ppid: i32 = stat
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().nth(1))
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        if cmd.starts_with("runc") && cmd.contains(&needle) {
            runcs.push(pid);
        }
        let cwd = std::fs::read_link(e.path().join("cwd")).unwrap_or_default();
        if cmd.contains("criu") && !cmd.starts_with("runc") {
            parents.push((pid, ppid, cwd.starts_with(state)));
        }
    }
    // CRIU works in a directory of the sandbox; a CRIU whose runc is
    // already gone has the host's init as parent.
    for (pid, ppid, in_state) in parents {
        if in_state || runcs.contains(&ppid) {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_raw(pid).context("pid")?,
                rustix::process::Signal::KILL,
            );
        }
    }
    for pid in runcs {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid).context("pid")?,
            rustix::process::Signal::KILL,
        );
    }
    Ok(())
}

/// Kills the helper at `case` (and runc and CRIU with it when `with_tools`),
/// starts a new runtime (which recovers) and returns it with what it lists.
async fn crash_and_recover(
    dir: &std::path::Path,
    cfg: &cove_runtime::runc::RuncConfig,
    id: &SandboxId,
    case: (&str, usize, u64, bool),
) -> Result<(RuncRuntime, Option<RuntimeState>)> {
    kill_helper_at(dir, cfg, id, case)?;
    let record =
        std::fs::read_to_string(dir.join("sandboxes").join(id.as_str()).join("record.json"))?;
    let phase = record
        .lines()
        .find(|l| l.contains("phase"))
        .unwrap_or("")
        .trim()
        .to_string();
    let rt = RuncRuntime::start(cfg.clone()).await?;
    let state = rt
        .list()
        .await?
        .into_iter()
        .find(|s| &s.id == id)
        .map(|s| s.state);
    println!("kill at {case:?}: record {phase}, after recovery {state:?}");
    match state {
        Some(RuntimeState::Running) => {}
        Some(RuntimeState::Checkpointed) => {
            rt.restore(id, &[])
                .await
                .with_context(|| format!("restore after a kill at {case:?}"))?;
        }
        other => bail!("after a kill at {case:?} the sandbox is {other:?}"),
    }
    Ok((rt, state))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_9_during_pause_or_resume_never_loses_the_sandbox() -> Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("cove_runtime=warn")
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir()?;
    let cfg = common::test_config(dir.path())?;
    let _bridge = BridgeGuard(cfg.bridge.clone());
    let spec = common::spec_for_tests();
    let _cleanup = Destroy(cfg.clone(), spec.id.clone());
    let id = spec.id.clone();
    let first = {
        let rt = RuncRuntime::start(cfg.clone()).await?;
        rt.create(&spec).await?;
        let first = start_server_on(&rt, &id, 8, "/root/held.txt").await?;
        drop_agent_connections(rt).await;
        first
    };
    let mut count = first.count;
    // (marker, its occurrence, ms after it, runc and CRIU killed too).
    // Only the server is killed: inside the dump, around its end, inside
    // the restore. Runc and CRIU too, during a restore: the checkpoint is
    // the only copy and must still restore.
    let cases = [
        ("CHECKPOINT", 1, 0, false),
        ("CHECKPOINT", 1, 60, false),
        ("CHECKPOINT", 2, 150, false),
        ("RESTORE", 1, 40, false),
        ("RESTORE", 1, 120, false),
        ("RESTORE", 2, 250, false),
        ("RESTORE", 1, 60, true),
        ("RESTORE", 2, 150, true),
    ];
    for case in cases {
        let (rt, _) = crash_and_recover(dir.path(), &cfg, &id, case).await?;
        // Through the new runtime, as a restarted server would.
        let a = ask_on(&rt, &id)
            .await
            .with_context(|| format!("after a kill at {case:?}"))?;
        assert_eq!(
            a.digest, first.digest0,
            "memory intact after a kill at {case:?}"
        );
        assert_eq!(a.count, count + 1, "counter after a kill at {case:?}");
        count = a.count;
        drop_agent_connections(rt).await;
    }
    let rt = RuncRuntime::start(cfg.clone()).await?;
    rt.checkpoint(&id).await?;
    rt.restore(&id, &[]).await?;
    assert_eq!(ask_on(&rt, &id).await?.count, count + 1);
    drop_agent_connections(rt).await;

    // CRIU killed in the middle of a dump may leave a process it was
    // working on damaged (its parasite code was still inside), so here only
    // the sandbox is checked: it runs again (thawed, network lock removed,
    // network plugged) and its agent answers.
    for case in [
        ("CHECKPOINT", 1, 80, true),
        ("CHECKPOINT", 2, 150, true),
        ("CHECKPOINT", 1, TASKS_GONE, true),
    ] {
        let (rt, _) = crash_and_recover(dir.path(), &cfg, &id, case).await?;
        let out = rt
            .exec(
                &id,
                cove_runtime::ExecSpec {
                    cmd: "true".into(),
                    ..Default::default()
                },
            )
            .await
            .with_context(|| format!("after a kill at {case:?}"))?;
        assert_eq!(out.exit_code, 0);
        drop_agent_connections(rt).await;
    }
    Ok(())
}

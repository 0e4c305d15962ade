//! Resource exhaustion inside a sandbox, each proven contained: a fork bomb
//! (the pids limit holds, the host and a neighbour sandbox stay responsive),
//! memory exhaustion (only the greedy process dies, at the shape's limit),
//! and writing past `disk_mib` (ENOSPC inside, the host disk unaffected).

mod common;

use std::time::{Duration, Instant};

use common::TempServer;
use serde_json::json;

fn host_process_count() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().parse::<u32>().is_ok())
                .count()
        })
        .unwrap_or(0)
}

/// Forks until the kernel refuses, reports how many children it got, then
/// kills and reaps them so the sandbox has pids again.
const FORK_UNTIL_REFUSED: &str = r#"
import os, signal, time
pids = []
while len(pids) < 100000:
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        time.sleep(120)
        os._exit(0)
    pids.append(pid)
print(len(pids), flush=True)
for p in pids:
    os.kill(p, signal.SIGKILL)
for p in pids:
    os.waitpid(p, 0)
"#;

#[tokio::test(flavor = "multi_thread")]
async fn fork_bomb_is_contained_by_the_pids_limit() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let api = server.user("bomber")?;
    let victim = api.create(json!({})).await?["id"]
        .as_str()
        .unwrap()
        .to_string();
    let neighbour = api.create(json!({})).await?["id"]
        .as_str()
        .unwrap()
        .to_string();
    let baseline = host_process_count();

    let out = api
        .exec(&victim, "python3", &["-c", FORK_UNTIL_REFUSED])
        .await?;
    let forked: usize = out.stdout.trim().parse().map_err(|_| {
        anyhow::anyhow!(
            "fork counter printed {:?} (stderr {:?})",
            out.stdout,
            out.stderr
        )
    })?;
    eprintln!("the sandbox could fork {forked} processes");
    assert!(
        forked > 0 && forked < 10_000,
        "pids limit not enforced: {forked} forks"
    );
    assert_eq!(
        api.exec(&victim, "echo", &["after"]).await?.stdout,
        "after\n"
    );

    // The real thing, left running while the host is checked.
    let bomb = api
        .exec_stream(
            &victim,
            json!({ "cmd": "bash", "args": ["-c", ":(){ :|:& };:"] }),
        )
        .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let during = host_process_count();
    eprintln!("host processes: {baseline} before, {during} during the bomb");
    assert!(
        during < baseline + 10_000,
        "the bomb spread: {during} host processes"
    );
    let t = Instant::now();
    let health = common::http_client()
        .get(format!("{}/healthz", server.base()))
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    assert_eq!(health.status(), 200);
    eprintln!("healthz during the bomb: {:?}", t.elapsed());
    assert!(
        std::process::Command::new("true").status()?.success(),
        "the host can still fork"
    );
    let n = api.exec(&neighbour, "echo", &["neighbour ok"]).await?;
    assert_eq!(
        n.stdout, "neighbour ok\n",
        "a neighbour sandbox still runs commands"
    );

    drop(bomb);
    api.destroy(&victim).await?;
    let after = host_process_count();
    assert!(
        after < baseline + 300,
        "bomb processes left on the host: {baseline} -> {after}"
    );
    assert_eq!(api.exec(&neighbour, "true", &[]).await?.exit_code, 0);
    Ok(())
}

/// Allocates and touches 16 MiB at a time, printing the running total, until
/// it is killed.
const EAT_MEMORY: &str = r#"
import sys
chunks = []
while True:
    chunks.append(b"x" * (16 << 20))
    print(len(chunks) * 16, flush=True)
"#;

#[tokio::test(flavor = "multi_thread")]
async fn memory_exhaustion_kills_only_the_greedy_process() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let api = server.user("greedy")?;
    let sb = api.create(json!({})).await?;
    let id = sb["id"].as_str().unwrap().to_string();
    let mem_mib = sb["mem_mib"].as_u64().unwrap();
    let serve_pid = server.pid();
    api.sh(&id, "setsid sleep 313131 >/dev/null 2>&1 < /dev/null &")
        .await?;

    let out = api.exec(&id, "python3", &["-c", EAT_MEMORY]).await?;
    let reached: u64 = out
        .stdout
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    eprintln!(
        "allocated {reached} MiB of {mem_mib} MiB before dying (exit {})",
        out.exit_code
    );
    assert_ne!(out.exit_code, 0, "the greedy process must die");
    assert!(
        reached <= mem_mib + 32,
        "allocated {reached} MiB past the {mem_mib} MiB limit"
    );

    // Everything else survived: the agent (exec works), the other process in
    // the sandbox, the sandbox itself, and the server.
    assert_eq!(api.exec(&id, "echo", &["alive"]).await?.stdout, "alive\n");
    let ps = api.exec(&id, "ps", &["-eo", "args"]).await?;
    assert!(
        ps.stdout.contains("sleep 313131"),
        "a bystander process was killed:\n{}",
        ps.stdout
    );
    assert_eq!(api.sandbox(&id).await?["status"], "running");
    assert_eq!(server.pid(), serve_pid);
    assert!(
        std::path::Path::new(&format!("/proc/{serve_pid}")).exists(),
        "cove serve died"
    );
    assert_eq!(api.get("/v1/whoami").await?["stats"]["running"], 1);
    Ok(())
}

/// Bytes allocated on the host's disk under `dir` (like `du -sx`): files on
/// `dir`'s own filesystem, so a sandbox's loop-mounted disk image counts by
/// what it takes on the host, and mounts inside it are not counted twice.
/// Other jobs on the machine write to the same filesystem, so the whole
/// filesystem's free space would be a noisy measure.
fn host_bytes_under(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(dev) = std::fs::symlink_metadata(dir).map(|m| m.dev()) else {
        return 0;
    };
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if m.dev() != dev {
                continue;
            }
            total += m.blocks() * 512;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread")]
async fn writing_past_disk_mib_is_enospc_inside_only() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let api = server.user("filler")?;
    let disk_mib = 256u64;
    let sb = api.create(json!({ "disk_mib": disk_mib })).await?;
    assert_eq!(sb["disk_mib"], disk_mib);
    let id = sb["id"].as_str().unwrap().to_string();
    let host_before = host_bytes_under(server.state_dir());

    let out = api
        .sh(
            &id,
            &format!(
                "dd if=/dev/zero of=/root/fill bs=1M count={} 2>&1; echo rc=$?",
                disk_mib * 2
            ),
        )
        .await?;
    eprintln!("{}", out.stdout);
    assert!(
        out.stdout.contains("No space left on device"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("rc=0"));
    let written: u64 = api
        .exec(&id, "stat", &["-c", "%s", "/root/fill"])
        .await?
        .stdout
        .trim()
        .parse()?;
    assert!(
        written <= (disk_mib + 16) << 20,
        "wrote {written} bytes into a {disk_mib} MiB disk"
    );

    // The files API meets the same wall, and says so.
    let big = vec![7u8; (disk_mib as usize) << 20];
    let r = api.upload(&id, "/root/more", big).await?;
    assert!(!r.status.is_success(), "an upload past disk_mib succeeded");

    let host_after = host_bytes_under(server.state_dir());
    let used = host_after.saturating_sub(host_before);
    eprintln!("host disk used by the filling: {} MiB", used >> 20);
    assert!(
        used < (disk_mib + 64) << 20,
        "the host lost {} MiB to a {disk_mib} MiB disk",
        used >> 20
    );

    // Freeing space inside makes writes work again; the sandbox is fine.
    api.exec(&id, "rm", &["-f", "/root/fill", "/root/more"])
        .await?;
    let ok = api
        .sh(
            &id,
            "dd if=/dev/zero of=/root/small bs=1M count=8 2>&1 && echo written",
        )
        .await?;
    assert!(ok.stdout.contains("written"), "{}", ok.stdout);
    assert_eq!(api.sandbox(&id).await?["status"], "running");
    Ok(())
}

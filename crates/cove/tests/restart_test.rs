//! `kill -9` of `cove serve` and a restart on the same state dir: running
//! sandboxes keep running while the server is down (the same processes, not
//! recreated ones) and are usable again afterwards.

mod common;

use std::time::Duration;

use common::TempServer;
use serde_json::json;

/// Host pids whose command line contains `needle`.
fn host_pids_with(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                pids.push(pid);
            }
        }
    }
    pids
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_and_restart_keeps_sandboxes_running_and_usable() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let api = server.user("crash")?;
    let key = api.key().to_string();
    let sb = api.create(json!({ "envs": { "KEPT": "yes" } })).await?;
    let id = sb["id"].as_str().unwrap().to_string();
    let marker = "8765431";
    let started = api
        .sh(
            &id,
            &format!("setsid sleep {marker} >/dev/null 2>&1 < /dev/null & sleep 0.3; pgrep -xf 'sleep {marker}'"),
        )
        .await?;
    let inner_pid = started.stdout.trim().to_string();
    assert!(!inner_pid.is_empty());
    api.upload(&id, "/root/before.txt", "written before the crash")
        .await?;
    let host_before = host_pids_with(&format!("sleep {marker}"));
    assert_eq!(
        host_before.len(),
        1,
        "the background process is visible on the host"
    );

    server.kill9()?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        host_pids_with(&format!("sleep {marker}")),
        host_before,
        "the sandbox's processes outlive the server"
    );

    server.restart().await?;
    let api = server.api_for(&key);
    let view = api.sandbox(&id).await?;
    assert_eq!(view["status"], "running", "{view}");
    assert_eq!(view["ip"], sb["ip"]);
    let ps = api
        .exec(&id, "ps", &["-o", "pid=", "-p", &inner_pid])
        .await?;
    assert_eq!(
        ps.stdout.trim(),
        inner_pid,
        "the same process is still running"
    );
    assert_eq!(
        &api.download(&id, "/root/before.txt").await?.body[..],
        b"written before the crash"
    );
    assert_eq!(api.exec(&id, "printenv", &["KEPT"]).await?.stdout, "yes\n");
    let s = api
        .exec_stream(&id, json!({ "cmd": "echo", "args": ["streamed"] }))
        .await?;
    let (out, _, code, _) = s.finish().await?;
    assert_eq!((out.as_str(), code), ("streamed\n", Some(0)));

    // A second crash right after a create; the server still manages both.
    let second = api.create(json!({})).await?;
    let second_id = second["id"].as_str().unwrap().to_string();
    server.restart().await?;
    let api = server.api_for(&key);
    assert_eq!(api.sandbox(&second_id).await?["status"], "running");
    assert_eq!(api.exec(&second_id, "true", &[]).await?.exit_code, 0);
    let running = api.get("/v1/sandboxes?status=running").await?;
    assert_eq!(running["pagination"]["total"], 2);

    api.destroy(&id).await?;
    assert!(
        host_pids_with(&format!("sleep {marker}")).is_empty(),
        "destroy after a restart stops the sandbox's processes"
    );
    Ok(())
}

/// Ids of the containers runc knows in the server's runc root.
fn runc_ids(state_dir: &std::path::Path) -> anyhow::Result<Vec<String>> {
    let out = std::process::Command::new("runc")
        .arg("--root")
        .arg(state_dir.join("runc"))
        .args(["list", "-q"])
        .output()?;
    let mut ids: Vec<String> = String::from_utf8(out.stdout)?
        .lines()
        .map(str::to_string)
        .collect();
    ids.sort();
    Ok(ids)
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_creates_leaves_no_half_made_sandbox() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let api = server.user("midcreate")?;
    let key = api.key().to_string();
    let shape = api.shape().await?["id"].clone();
    // Kill at different points of a create: before, during and after the
    // container starts. Whatever the point, after a restart each sandbox is
    // either running and usable or failed with nothing left on the host.
    for delay_ms in [5u64, 40, 90, 160, 300] {
        let api = server.api_for(&key);
        let body = json!({ "shape": shape });
        let create = tokio::spawn(async move {
            api.send(reqwest::Method::POST, "/v1/sandboxes", Some(body))
                .await
        });
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        server.kill9()?;
        let _ = create.await?; // a reset connection, or a create that finished first
        server.restart().await?;
    }
    let api = server.api_for(&key);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let rows = loop {
        let page = api.get("/v1/sandboxes?limit=500").await?;
        let rows = page["data"].as_array().unwrap().clone();
        if rows
            .iter()
            .all(|r| r["status"] == "running" || r["status"] == "failed")
        {
            break rows;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rows still in flight 90 s after the restarts: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let mut running: Vec<String> = rows
        .iter()
        .filter(|r| r["status"] == "running")
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    running.sort();
    eprintln!(
        "{} rows after 5 crashes mid-create: {} running",
        rows.len(),
        running.len()
    );
    for id in &running {
        assert_eq!(api.exec(id, "echo", &["ok"]).await?.stdout, "ok\n", "{id}");
    }
    assert_eq!(
        runc_ids(server.state_dir())?,
        running,
        "runc containers must be exactly the running sandboxes"
    );
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    for r in rows.iter().filter(|r| r["status"] == "failed") {
        let id = r["id"].as_str().unwrap();
        assert!(!mounts.contains(id), "a failed sandbox {id} left a mount");
        assert!(
            !server.state_dir().join("sandboxes").join(id).exists(),
            "a failed sandbox {id} left its directory"
        );
    }
    // The server still creates sandboxes normally afterwards.
    let fresh = api.create(json!({})).await?;
    assert_eq!(fresh["status"], "running");
    Ok(())
}

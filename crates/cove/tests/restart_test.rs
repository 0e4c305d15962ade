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

//! Pause, resume and fork with real CRIU checkpoints through a live
//! `cove serve`: a Python HTTP server holding 64 MiB of random data and a
//! counter in memory survives a pause with nothing of it left on the host;
//! two forks run side by side with their own files; a disk with a file
//! held open across the pause keeps it open and loses no byte.

mod common;

use anyhow::{Context, Result};
use bucketfs::client::{GetObjectParams, ObjectClient};
use bucketfs::s3::{Credentials, S3Client, S3Config};
use common::{Api, TempServer};
use cove_testkit::garage::TempGarage;
use reqwest::Method;
use serde_json::{json, Value};

/// 64 MiB of random bytes and a request counter, served on 127.0.0.1:8080;
/// answers `<sha256 of the data> <count>`. The marker in argv finds it on
/// the host.
const SERVER: &str = r#"
import hashlib, http.server, os, sys
data = os.urandom(64 << 20)
digest = hashlib.sha256(data).hexdigest()
count = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global count
        count += 1
        body = ("%s %d" % (hashlib.sha256(data).hexdigest(), count)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
open("/root/digest", "w").write(digest)
http.server.HTTPServer(("127.0.0.1", 8080), H).serve_forever()
"#;

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_owned()
}

/// Host pids whose command line contains `needle`.
fn host_pids_with(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) {
                pids.push(pid);
            }
        }
    }
    pids
}

async fn start_server(api: &Api, sid: &str, marker: &str) -> Result<String> {
    let r = api
        .exec_body(sid, json!({"cmd": "bash", "args": ["-c", format!("setsid python3 -c \"$(cat)\" {marker} >/dev/null 2>&1 </dev/null & for i in $(seq 100); do curl -sf 127.0.0.1:8080 >/dev/null && break; sleep 0.1; done; cat /root/digest")], "stdin": SERVER}))
        .await?;
    anyhow::ensure!(r.stdout.len() == 64, "the server did not start: {r:?}");
    Ok(r.stdout)
}

/// `(digest, count)` from the in-memory server.
async fn ask(api: &Api, sid: &str) -> Result<(String, u64)> {
    let r = api.exec(sid, "curl", &["-sf", "127.0.0.1:8080"]).await?;
    let (d, c) = r
        .stdout
        .split_once(' ')
        .with_context(|| format!("answer: {r:?}"))?;
    Ok((d.to_owned(), c.parse()?))
}

async fn call(api: &Api, path: &str, body: Value) -> Result<Value> {
    api.send(Method::POST, path, Some(body)).await?.data()
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_survives_a_pause_and_forks_are_isolated() -> Result<()> {
    let mut server = TempServer::start().await?;
    let api = server.user("pause")?;
    let sb = api.create(json!({})).await?;
    let sid = id(&sb);
    let marker = format!("mem-{}", &sid[sid.len() - 8..]);
    let digest = start_server(&api, &sid, &marker).await?;
    assert_eq!(ask(&api, &sid).await?, (digest.clone(), 2));
    api.sh(&sid, "cd /tmp && echo source > /root/who").await?;
    assert_eq!(host_pids_with(&marker).len(), 1);

    let paused = call(&api, &format!("/v1/sandboxes/{sid}/pause"), json!({})).await?;
    assert_eq!(paused["status"], "paused");
    assert!(
        host_pids_with(&marker).is_empty(),
        "a paused sandbox leaves no process on the host"
    );
    let (code, _) = fail(
        &api,
        &format!("/v1/sandboxes/{sid}/exec"),
        json!({"cmd": "true"}),
    )
    .await?;
    assert_eq!(code, 409);

    let resumed = call(&api, &format!("/v1/sandboxes/{sid}/resume"), json!({})).await?;
    assert_eq!(resumed["status"], "running");
    assert!(resumed["last_resumed_at"].is_string());
    assert_eq!(
        ask(&api, &sid).await?,
        (digest.clone(), 3),
        "same memory, counter goes on"
    );

    // Two forks of the paused source: each its own sandbox and files.
    call(&api, &format!("/v1/sandboxes/{sid}/pause"), json!({})).await?;
    let f1 = id(&call(&api, &format!("/v1/sandboxes/{sid}/fork"), json!({})).await?);
    let f2 = id(&call(&api, &format!("/v1/sandboxes/{sid}/fork"), json!({})).await?);
    for (f, name) in [(&f1, "one"), (&f2, "two")] {
        assert_eq!(
            ask(&api, f).await?,
            (digest.clone(), 4),
            "{name}: the source's memory"
        );
        api.sh(f, &format!("echo {name} > /root/who")).await?;
    }
    assert_eq!(api.sh(&f1, "cat /root/who").await?.stdout, "one\n");
    assert_eq!(api.sh(&f2, "cat /root/who").await?.stdout, "two\n");
    assert_eq!(ask(&api, &f1).await?.1, 5);
    assert_eq!(ask(&api, &f2).await?.1, 5);
    let view = api.sandbox(&f1).await?;
    assert_eq!(view["forked_from"], sid.as_str());
    assert_ne!(view["ip"], sb["ip"]);
    let src = api.sandbox(&sid).await?;
    assert_eq!(src["status"], "paused", "the source stays paused");
    call(&api, &format!("/v1/sandboxes/{sid}/resume"), json!({})).await?;
    assert_eq!(api.sh(&sid, "cat /root/who").await?.stdout, "source\n");
    assert_eq!(ask(&api, &sid).await?, (digest, 4));
    Ok(())
}

async fn fail(api: &Api, path: &str, body: Value) -> Result<(u16, String)> {
    let r = api.send(Method::POST, path, Some(body)).await?;
    Ok((r.status.as_u16(), r.fail_code().unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_open_on_a_disk_across_a_pause_loses_nothing() -> Result<()> {
    let garage = TempGarage::start()?;
    let bucket = garage.create_unique_bucket("pause")?;
    let client = S3Client::new(
        S3Config::new(&bucket, garage.region())
            .with_endpoint(garage.endpoint())
            .with_credentials(Credentials::new(garage.key_id(), garage.secret_key())),
    )?;
    let mut server = TempServer::start().await?;
    let api = server.user("pdisk")?;
    call(
        &api,
        "/v1/disks",
        json!({"name": "data", "kind": "s3",
               "config": {"bucket": bucket, "endpoint": garage.endpoint(), "region": garage.region(), "use_path_style": true},
               "credentials": {"access_key": garage.key_id(), "secret_key": garage.secret_key()}}),
    )
    .await?;
    let sid = id(&api
        .create(json!({"disks": [{"disk_id": "data", "mount_path": "/data"}]}))
        .await?);
    // Opens, writes, waits for a file to appear, writes again, closes.
    let writer = "import os, time\nfd = os.open('/data/log.txt', os.O_WRONLY | os.O_CREAT | os.O_TRUNC)\nos.write(fd, b'before-pause;')\nwhile not os.path.exists('/root/go'):\n    time.sleep(0.1)\nos.write(fd, b'after-resume')\nos.close(fd)\nopen('/root/done', 'w').close()\n";
    let r = api
        .exec_body(&sid, json!({"cmd": "bash", "args": ["-c", "setsid python3 -c \"$(cat)\" >/dev/null 2>&1 </dev/null & sleep 1"], "stdin": writer}))
        .await?;
    assert_eq!(r.exit_code, 0, "{r:?}");

    call(&api, &format!("/v1/sandboxes/{sid}/pause"), json!({})).await?;
    // The pending write was flushed before the checkpoint.
    let got = client
        .get_object("log.txt", &GetObjectParams::default())
        .await?;
    assert_eq!(&got.body[..], b"before-pause;");
    call(&api, &format!("/v1/sandboxes/{sid}/resume"), json!({})).await?;
    let r = api.sh(&sid, "touch /root/go; for i in $(seq 100); do [ -e /root/done ] && break; sleep 0.1; done; ls /root/done").await?;
    assert_eq!(r.exit_code, 0, "the writer finished after resume: {r:?}");
    let got = client
        .get_object("log.txt", &GetObjectParams::default())
        .await?;
    assert_eq!(&got.body[..], b"before-pause;after-resume");
    let list = api.get(&format!("/v1/sandboxes/{sid}/disks")).await?;
    assert_eq!(list["data"][0]["mount_status"], "mounted", "{list}");
    Ok(())
}

/// The configured minimum (60 s) with the server's 5 s pass: bounded at
/// about 70 s. A running exec stream counts as activity.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_sandbox_is_auto_paused_after_its_threshold() -> Result<()> {
    let mut server = TempServer::start().await?;
    let api = server.user("auto")?;
    let idle = id(&api.create(json!({"auto_pause_after_seconds": 60})).await?);
    let busy = id(&api.create(json!({"auto_pause_after_seconds": 60})).await?);
    let off = id(&api.create(json!({"auto_pause_after_seconds": 60})).await?);
    api.send(
        Method::PATCH,
        &format!("/v1/sandboxes/{off}"),
        Some(json!({"disable_auto_pause": true})),
    )
    .await?
    .data()?;
    // A stream that stays open (and silent) longer than the threshold.
    let mut stream = api
        .exec_stream(&busy, json!({"cmd": "sleep", "args": ["75"]}))
        .await?;
    let started = std::time::Instant::now();
    loop {
        let s = api.sandbox(&idle).await?;
        if s["status"] == "paused" {
            break;
        }
        anyhow::ensure!(
            started.elapsed().as_secs() < 75,
            "not auto-paused after {:?}: {s}",
            started.elapsed()
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert!(
        started.elapsed().as_secs() >= 55,
        "paused too early: {:?}",
        started.elapsed()
    );
    assert_eq!(
        api.sandbox(&busy).await?["status"],
        "running",
        "a running exec counts as activity"
    );
    assert_eq!(
        api.sandbox(&off).await?["status"],
        "running",
        "disable_auto_pause wins"
    );
    let _ = stream.next().await;
    drop(stream);
    let resumed = call(&api, &format!("/v1/sandboxes/{idle}/resume"), json!({})).await?;
    assert_eq!(resumed["status"], "running");
    Ok(())
}

/// What the SDKs' `selfPause` / `selfDelete` send, from inside the sandbox.
#[tokio::test(flavor = "multi_thread")]
async fn code_inside_can_pause_and_delete_its_sandbox() -> Result<()> {
    let mut server = TempServer::start().await?;
    let api = server.user("selfapi")?;
    let sid = id(&api.create(json!({})).await?);
    let r = api
        .sh(&sid, "curl -s -o /dev/null -w '%{http_code}' -X POST 'http://127.0.0.1:1029/self/pause?reason=done+for+now'")
        .await?;
    assert_eq!(r.stdout, "202", "{r:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let view = loop {
        let v = api.sandbox(&sid).await?;
        if v["status"] == "paused" || std::time::Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(view["status"], "paused", "{view}");
    assert_eq!(view["status_reason"], "done for now");
    call(&api, &format!("/v1/sandboxes/{sid}/resume"), json!({})).await?;
    let r = api
        .sh(&sid, "curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:1029/self/delete; curl -s -o /dev/null -w ' %{http_code}' http://127.0.0.1:1029/other")
        .await?;
    assert_eq!(r.stdout, "202 404", "{r:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let v = api.sandbox(&sid).await?;
        if v["status"] == "destroyed" {
            break;
        }
        anyhow::ensure!(std::time::Instant::now() < deadline, "not destroyed: {v}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    Ok(())
}

/// A disk attached live cannot be carried by a checkpoint while a file is
/// open on it: the pause is refused (409) and nothing changes.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_open_on_a_live_attached_disk_refuses_the_pause() -> Result<()> {
    let garage = TempGarage::start()?;
    let bucket = garage.create_unique_bucket("live")?;
    let mut server = TempServer::start().await?;
    let api = server.user("plive")?;
    call(
        &api,
        "/v1/disks",
        json!({"name": "data", "kind": "s3",
               "config": {"bucket": bucket, "endpoint": garage.endpoint(), "region": garage.region(), "use_path_style": true},
               "credentials": {"access_key": garage.key_id(), "secret_key": garage.secret_key()}}),
    )
    .await?;
    let sid = id(&api.create(json!({})).await?);
    call(
        &api,
        &format!("/v1/sandboxes/{sid}/disks"),
        json!({"disk_id": "data", "mount_path": "/live"}),
    )
    .await?;
    let writer = "import os, time\nfd = os.open('/live/held.txt', os.O_WRONLY | os.O_CREAT)\nos.write(fd, b'held')\ntime.sleep(600)\n";
    api.exec_body(&sid, json!({"cmd": "bash", "args": ["-c", "setsid python3 -c \"$(cat)\" >/dev/null 2>&1 </dev/null & sleep 1"], "stdin": writer}))
        .await?;
    let (code, fail_code) = fail(&api, &format!("/v1/sandboxes/{sid}/pause"), json!({})).await?;
    assert_eq!((code, fail_code.as_str()), (409, "pause_failed"));
    assert_eq!(api.sandbox(&sid).await?["status"], "running");
    let r = api.sh(&sid, "echo more > /live/after.txt && cat /live/after.txt && pgrep -f held.txt >/dev/null && echo writer-alive").await?;
    assert_eq!(r.stdout, "more\nwriter-alive\n", "{r:?}");
    // Without the open file the same sandbox pauses and resumes.
    api.sh(&sid, "pkill -f held.txt; sleep 0.5").await?;
    call(&api, &format!("/v1/sandboxes/{sid}/pause"), json!({})).await?;
    call(&api, &format!("/v1/sandboxes/{sid}/resume"), json!({})).await?;
    let r = api.sh(&sid, "cat /live/held.txt /live/after.txt").await?;
    assert_eq!(r.stdout, "heldmore\n", "{r:?}");
    Ok(())
}

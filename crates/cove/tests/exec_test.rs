//! Exec against a live `cove serve` with a real sandbox: buffered and
//! streamed output, stdin, env (sandbox `envs` and per-exec), non-zero exit,
//! a command printing 10 MiB, a disconnect mid-stream killing the command,
//! heartbeats, and the NDJSON framing rules of API.md §5.

mod common;

use std::time::{Duration, Instant};

use common::{Api, TempServer};
use futures_util::StreamExt;
use serde_json::json;

async fn one_sandbox(
    server: &mut TempServer,
    envs: serde_json::Value,
) -> anyhow::Result<(Api, String)> {
    let api = server.user("exec")?;
    let sb = api.create(json!({ "envs": envs })).await?;
    Ok((api, sb["id"].as_str().unwrap().to_string()))
}

#[tokio::test(flavor = "multi_thread")]
async fn buffered_exec_argv_exit_codes_stdin_and_env() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let (api, id) = one_sandbox(
        &mut server,
        json!({ "SB_VAR": "from sandbox", "SHARED": "sandbox" }),
    )
    .await?;

    let out = api.exec(&id, "echo", &["a", "b"]).await?;
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str(), out.exit_code),
        ("a b\n", "", 0)
    );
    assert!(out.error.is_none());
    assert!(out.exec_ms >= 0.0);

    // An argv, never a shell string.
    let out = api.exec(&id, "echo", &["$HOME", "a;b", "$(id)"]).await?;
    assert_eq!(out.stdout, "$HOME a;b $(id)\n");

    let out = api.sh(&id, "echo o; echo e >&2; exit 42").await?;
    assert_eq!(
        (out.stdout.as_str(), out.stderr.as_str(), out.exit_code),
        ("o\n", "e\n", 42)
    );

    let out = api.sh(&id, "kill -TERM $$").await?;
    assert_ne!(out.exit_code, 0, "killed by a signal is not success");

    let out = api.exec(&id, "/no/such/program", &[]).await?;
    assert!(out.error.is_some() || out.exit_code != 0, "{out:?}");

    let stdin = "line one\nline two\n".repeat(1000);
    let out = api
        .exec_body(&id, json!({ "cmd": "sha256sum", "stdin": stdin }))
        .await?;
    let want = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(stdin.as_bytes()))
    };
    assert_eq!(out.stdout.split_whitespace().next(), Some(want.as_str()));

    let out = api
        .exec_body(
            &id,
            json!({ "cmd": "bash", "args": ["-c", "echo \"$SB_VAR|$PER|$SHARED\""],
                    "env": { "PER": "per exec", "SHARED": "exec wins" } }),
        )
        .await?;
    assert_eq!(out.stdout, "from sandbox|per exec|exec wins\n");
    let out = api.sh(&id, "echo \"[$PER]\"").await?;
    assert_eq!(out.stdout, "[]\n", "per-exec env does not persist");

    // Many execs at once in one sandbox each get their own output.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let api = api.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            api.sh(&id, &format!("sleep 0.3; echo {i}")).await
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.await??.stdout, format!("{i}\n"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_exec_frames_arrive_as_produced_and_end_with_exit() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let (api, id) = one_sandbox(&mut server, json!({ "SB_VAR": "v" })).await?;

    let mut s = api
        .exec_stream(
            &id,
            json!({ "cmd": "bash", "args": ["-c", "echo first; sleep 2; echo second >&2; exit 3"] }),
        )
        .await?;
    let ct = s.headers()["content-type"].to_str()?.to_string();
    assert!(ct.starts_with("application/x-ndjson"), "{ct}");
    let start = Instant::now();
    let mut first_at = None;
    let (mut out, mut err, mut code) = (String::new(), String::new(), None);
    while let Some(f) = s.next().await? {
        assert!(code.is_none(), "frame after exit_code: {f}");
        for (k, v) in f.as_object().unwrap() {
            assert!(!v.is_null(), "null field {k} in {f}");
        }
        if let Some(o) = f["stdout"].as_str() {
            first_at.get_or_insert(start.elapsed());
            out.push_str(o);
        }
        if let Some(e) = f["stderr"].as_str() {
            err.push_str(e);
        }
        code = code.or(f["exit_code"].as_i64());
    }
    let total = start.elapsed();
    assert_eq!(
        (out.as_str(), err.as_str(), code),
        ("first\n", "second\n", Some(3))
    );
    let first_at = first_at.unwrap();
    assert!(
        first_at + Duration::from_secs(1) < total,
        "first frame at {first_at:?} of {total:?}: not flushed"
    );

    // stdin and env work in a stream too.
    let s = api
        .exec_stream(
            &id,
            json!({ "cmd": "bash", "args": ["-c", "cat; echo \"$SB_VAR$E\""], "stdin": "in\n", "env": { "E": "e" } }),
        )
        .await?;
    let (out, _, code, _) = s.finish().await?;
    assert_eq!((out.as_str(), code), ("in\nve\n", Some(0)));

    // A quiet command gets heartbeats at least every 5 s.
    let s = api
        .exec_stream(&id, json!({ "cmd": "sleep", "args": ["11"] }))
        .await?;
    let (_, _, code, hb) = s.finish().await?;
    assert_eq!(code, Some(0));
    assert!(hb >= 2, "{hb} heartbeats in 11 s");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn stream_escapes_line_separators_and_keeps_utf8_whole() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let (api, id) = one_sandbox(&mut server, json!({})).await?;
    let s = api
        .exec_stream(
            &id,
            json!({ "cmd": "printf", "args": ["%s", "a\u{2028}b\u{2029}c\u{85}d"] }),
        )
        .await?;
    let mut raw = Vec::new();
    let mut body = s.into_stream();
    while let Some(chunk) = body.next().await {
        raw.extend_from_slice(&chunk?);
    }
    let raw = String::from_utf8(raw)?;
    for bad in ['\u{2028}', '\u{2029}', '\u{85}'] {
        assert!(!raw.contains(bad), "raw {bad:?} in the stream: {raw:?}");
    }
    assert!(raw.contains("\\u2028"), "{raw}");

    // 3-byte characters split across reads must not turn into U+FFFD.
    let script = "import sys; sys.stdout.write('é€' * 400000); sys.stdout.flush()";
    let s = api
        .exec_stream(&id, json!({ "cmd": "python3", "args": ["-c", script] }))
        .await?;
    let (out, _, code, _) = s.finish().await?;
    assert_eq!(code, Some(0));
    assert!(!out.contains('\u{fffd}'), "a character was split");
    assert_eq!(out, "é€".repeat(400_000));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_mib_of_output_buffered_and_streamed() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let (api, id) = one_sandbox(&mut server, json!({})).await?;
    const N: usize = 10 * 1024 * 1024;
    let script = format!("yes 0123456789abcde | head -c {N}");
    let out = api.sh(&id, &script).await?;
    assert_eq!(out.exit_code, 0);
    assert_eq!(out.stdout.len(), N);
    assert!(out.stdout.lines().all(|l| l == "0123456789abcde"));

    let s = api
        .exec_stream(&id, json!({ "cmd": "bash", "args": ["-c", script] }))
        .await?;
    let (out, _, code, _) = s.finish().await?;
    assert_eq!(code, Some(0));
    assert_eq!(out.len(), N);
    assert!(out.lines().all(|l| l == "0123456789abcde"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn disconnect_mid_stream_kills_the_command() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let (api, id) = one_sandbox(&mut server, json!({})).await?;
    let marker = "987654";
    let mut s = api
        .exec_stream(
            &id,
            json!({ "cmd": "bash", "args": ["-c", format!("echo started; exec sleep {marker}")] }),
        )
        .await?;
    loop {
        let f = s
            .next()
            .await?
            .expect("stream ended before the first output");
        if f["stdout"].as_str().is_some_and(|o| o.contains("started")) {
            break;
        }
    }
    let running = api.exec(&id, "ps", &["-eo", "pid,args"]).await?;
    assert!(
        running.stdout.contains(&format!("sleep {marker}")),
        "{}",
        running.stdout
    );
    drop(s);

    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ps = api.exec(&id, "ps", &["-eo", "pid,args"]).await?;
        if !ps.stdout.contains(&format!("sleep {marker}")) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running 15 s after the disconnect:\n{}",
            ps.stdout
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The sandbox itself is unharmed.
    assert_eq!(api.exec(&id, "echo", &["ok"]).await?.stdout, "ok\n");
    Ok(())
}

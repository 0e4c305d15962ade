//! Exec through the agent in a real sandbox: buffered, streamed, stdin,
//! env, cwd, exit codes, large output, kill on drop.

mod common;

use std::time::Duration;

use anyhow::Result;
use bytes::Bytes;
use common::{text, TestRuntime};
use cove_runtime::{ExecEvent, ExecSpec, Runtime};
use futures::StreamExt;

fn spec(cmd: &str, args: &[&str]) -> ExecSpec {
    ExecSpec {
        cmd: cmd.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_handles_stdin_env_cwd_exit_codes_and_large_output() -> Result<()> {
    let t = TestRuntime::start().await?;
    let sb = t.sandbox().await?;

    let mut s = spec("cat", &[]);
    s.stdin = Some(Bytes::from_static(b"bin\0ary\nin"));
    let out = t.rt.exec(&sb.id, s).await?;
    assert_eq!(&out.stdout[..], b"bin\0ary\nin");

    let mut s = spec("bash", &["-c", "echo $FOO-$BAR; pwd; echo err >&2; exit 3"]);
    s.env = vec![
        ("FOO".into(), "a b".into()),
        ("BAR".into(), "x".into()),
        ("BAR".into(), "y".into()),
    ];
    s.cwd = Some("/tmp".into());
    let out = t.rt.exec(&sb.id, s).await?;
    assert_eq!(text(&out.stdout), "a b-y\n/tmp\n");
    assert_eq!(text(&out.stderr), "err\n");
    assert_eq!(out.exit_code, 3);

    let out = t.rt.exec(&sb.id, spec("no-such-command", &[])).await?;
    assert_eq!(out.exit_code, -1);
    assert!(
        out.error
            .as_deref()
            .unwrap_or("")
            .contains("no-such-command"),
        "{:?}",
        out.error
    );

    let out =
        t.rt.exec(&sb.id, spec("head", &["-c", "10485760", "/dev/urandom"]))
            .await?;
    assert_eq!(out.stdout.len(), 10 << 20);
    assert_eq!(out.exit_code, 0);

    // bash with /dev/tcp and GNU timeout, as the SDKs' wait_for_port uses.
    let out = sb
        .sh("timeout 2 bash -c 'echo > /dev/tcp/127.0.0.1/1' 2>/dev/null; echo rc=$?")
        .await?;
    assert_eq!(text(&out.stdout), "rc=1\n");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_exec_yields_output_in_order_then_exit() -> Result<()> {
    let t = TestRuntime::start().await?;
    let sb = t.sandbox().await?;
    let mut s =
        t.rt.exec_stream(
            &sb.id,
            spec(
                "bash",
                &[
                    "-c",
                    "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.05; done; exit 7",
                ],
            ),
        )
        .await?;
    let (mut out, mut err, mut exit) = (String::new(), String::new(), None);
    while let Some(ev) = s.next().await {
        match ev {
            ExecEvent::Stdout(b) => out.push_str(&text(&b)),
            ExecEvent::Stderr(b) => err.push_str(&text(&b)),
            ExecEvent::Exit(c) => exit = Some(c),
            ExecEvent::Error(e) => panic!("error event: {e}"),
        }
    }
    assert_eq!(out, "out1\nout2\nout3\n");
    assert_eq!(err, "err1\nerr2\nerr3\n");
    assert_eq!(exit, Some(7));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn dropping_a_stream_kills_the_command() -> Result<()> {
    let t = TestRuntime::start().await?;
    let sb = t.sandbox().await?;
    let mut s =
        t.rt.exec_stream(
            &sb.id,
            spec("bash", &["-c", "sleep 1000 & echo started; wait"]),
        )
        .await?;
    match s.next().await {
        Some(ExecEvent::Stdout(b)) => assert_eq!(text(&b), "started\n"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(text(&sb.run("ps", &["-eo", "comm"]).await?.stdout).contains("sleep"));
    drop(s);
    let mut gone = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !text(&sb.run("ps", &["-eo", "comm"]).await?.stdout).contains("sleep") {
            gone = true;
            break;
        }
    }
    assert!(
        gone,
        "the command's process group survived the dropped stream"
    );
    Ok(())
}

//! One running command: spawn it in its own process group, feed its stdin
//! from the request frames, read stdout and stderr, and report through a
//! channel of encoded frames. The response body is that channel's receiver:
//! when the client disconnects, hyper drops it, `tx.closed()` fires and the
//! whole process group gets SIGKILL. Heartbeats every second make a write
//! happen even while the command is silent, so a vanished client is noticed.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cove_api::agent::{encode_frame, encode_int_frame, ExecRequest, FrameKind, MAX_FRAME_LEN};
use rustix::process::{kill_process_group, Pid, Signal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use super::request::RequestFrames;
use crate::server::State;

/// Where output goes: forwarded as produced, or kept for one frame at the end.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Stream,
    Buffer,
}

pub type FrameTx = mpsc::Sender<Result<Bytes, std::io::Error>>;

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Spawns the command under the reaper's lock (see `reaper.rs`).
fn spawn(state: &State, req: &ExecRequest) -> std::io::Result<(Child, i32)> {
    let mut cmd = Command::new(&req.cmd);
    cmd.args(&req.args)
        .env_clear()
        .env("PATH", DEFAULT_PATH)
        .env("HOME", "/root")
        .env("TERM", "xterm")
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .stdin(if req.has_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let cwd = match &req.cwd {
        Some(c) => c.clone(),
        None if std::path::Path::new("/root").is_dir() => "/root".to_string(),
        None => "/".to_string(),
    };
    cmd.current_dir(cwd);
    // SAFETY: the closure runs in the forked child before exec and calls
    // only async-signal-safe functions (open, write, close) on static data.
    unsafe {
        cmd.pre_exec(|| {
            raise_oom_score();
            Ok(())
        });
    }
    let mut owned = state.reaper.lock();
    let child = cmd.spawn()?;
    let pid = child.id().map(|p| p as i32).unwrap_or(0);
    owned.insert(pid);
    Ok((child, pid))
}

/// Commands get a higher OOM score than the agent, so a sandbox that runs
/// out of memory loses the runaway command, not its PID 1 (lowering the
/// agent's own score is not allowed inside a user namespace; raising a
/// child's is). Best effort.
fn raise_oom_score() {
    const PATH: &[u8] = b"/proc/self/oom_score_adj\0";
    // SAFETY: PATH is NUL-terminated; the fd is closed before returning.
    unsafe {
        let fd = libc::open(PATH.as_ptr().cast(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd >= 0 {
            let _ = libc::write(fd, b"500".as_ptr().cast(), 3);
            libc::close(fd);
        }
    }
}

async fn send(tx: &FrameTx, kind: FrameKind, payload: &[u8]) -> bool {
    for chunk in payload
        .chunks(MAX_FRAME_LEN)
        .chain(payload.is_empty().then_some(&[][..]))
    {
        if tx
            .send(Ok(Bytes::from(encode_frame(kind, chunk))))
            .await
            .is_err()
        {
            return false;
        }
    }
    true
}

/// Runs the command and reports on `tx` until its `Exit` or `Error` frame.
pub async fn drive(
    state: Arc<State>,
    req: ExecRequest,
    frames: RequestFrames,
    tx: FrameTx,
    mode: Mode,
) {
    let (mut child, pid) = match spawn(&state, &req) {
        Ok(c) => c,
        Err(e) => {
            let _ = send(
                &tx,
                FrameKind::Error,
                format!("cannot run {:?}: {e}", req.cmd).as_bytes(),
            )
            .await;
            return;
        }
    };
    let _ = tx
        .send(Ok(Bytes::from(encode_int_frame(FrameKind::Start, pid))))
        .await;
    if let Some(stdin) = child.stdin.take() {
        tokio::spawn(pump_stdin(frames, stdin));
    }
    let out = child
        .stdout
        .take()
        .map(|s| tokio::spawn(read_pipe(s, FrameKind::Stdout, tx.clone(), mode)));
    let err = child
        .stderr
        .take()
        .map(|s| tokio::spawn(read_pipe(s, FrameKind::Stderr, tx.clone(), mode)));
    let mut heartbeat = tokio::time::interval(Duration::from_secs(1));
    heartbeat.tick().await;
    let status = loop {
        tokio::select! {
            status = child.wait() => break status,
            _ = tx.closed() => {
                kill_group(pid);
                let _ = child.wait().await;
                state.reaper.release(pid);
                return;
            }
            _ = heartbeat.tick() => {
                let _ = tx.try_send(Ok(Bytes::from(encode_frame(FrameKind::Heartbeat, b""))));
            }
        }
    };
    state.reaper.release(pid);
    // Output written just before exit is still in the pipes; a background
    // child holding them open must not keep the call alive, hence the bound.
    let mut buffered = [Vec::new(), Vec::new()];
    for (i, task) in [out, err].into_iter().enumerate() {
        if let Some(mut task) = task {
            match tokio::time::timeout(Duration::from_millis(500), &mut task).await {
                Ok(Ok(bytes)) => buffered[i] = bytes,
                _ => task.abort(),
            }
        }
    }
    if mode == Mode::Buffer {
        if !buffered[0].is_empty() && !send(&tx, FrameKind::Stdout, &buffered[0]).await {
            return;
        }
        if !buffered[1].is_empty() && !send(&tx, FrameKind::Stderr, &buffered[1]).await {
            return;
        }
    }
    let code = match status {
        Ok(s) => s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0)),
        Err(e) => {
            let _ = send(
                &tx,
                FrameKind::Error,
                format!("waiting for the command: {e}").as_bytes(),
            )
            .await;
            return;
        }
    };
    let _ = tx
        .send(Ok(Bytes::from(encode_int_frame(FrameKind::Exit, code))))
        .await;
}

fn kill_group(pid: i32) {
    if let Some(p) = Pid::from_raw(pid) {
        // ESRCH: the group is already gone, which is what we want.
        let _ = kill_process_group(p, Signal::KILL);
    }
}

async fn pump_stdin(mut frames: RequestFrames, mut stdin: ChildStdin) {
    while let Ok(Some((kind, data))) = frames.next().await {
        if kind == FrameKind::Stdin && stdin.write_all(&data).await.is_err() {
            // The command closed its stdin; the rest is not wanted.
            return;
        }
    }
    // Dropping stdin closes it: the command sees EOF.
}

/// Reads a pipe to EOF; in stream mode forwards chunks, in buffer mode returns them.
async fn read_pipe<R: AsyncReadExt + Unpin>(
    mut pipe: R,
    kind: FrameKind,
    tx: FrameTx,
    mode: Mode,
) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => match mode {
                Mode::Buffer => kept.extend_from_slice(&buf[..n]),
                Mode::Stream => {
                    if !send(&tx, kind, &buf[..n]).await {
                        return kept;
                    }
                }
            },
        }
    }
}

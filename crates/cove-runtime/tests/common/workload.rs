//! The checkpoint tests' workload: a Python HTTP server inside a sandbox
//! holding random data and a counter in memory, a file open for appending
//! and a working directory of its own; and checks that nothing of a
//! checkpointed sandbox is left on the host.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use cove_api::ids::SandboxId;

use super::{text, TestSandbox};

/// Answers `GET /` with: the hash taken at start, the hash now, the request
/// counter, its pid, its cwd and the first line of the file it holds open.
pub const SERVER: &str = r#"
import hashlib, http.server, os
MB = int(os.environ.get("MB", "64"))
data = bytearray(os.urandom(MB << 20))
digest0 = hashlib.sha256(data).hexdigest()
held = open(os.environ.get("HELD", "/root/held.txt"), "a+")
held.write("held-open\n"); held.flush()
os.makedirs("/root/work", exist_ok=True); os.chdir("/root/work")
count = 0
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global count
        count += 1
        held.write(f"request {count}\n"); held.flush()
        held.seek(0); first = held.readline().strip()
        body = f"{digest0} {hashlib.sha256(data).hexdigest()} {count} {os.getpid()} {os.getcwd()} {first}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("0.0.0.0", 8080), H).serve_forever()
"#;

const CLIENT: &str = "import urllib.request as u; print(u.urlopen('http://127.0.0.1:8080/', timeout=20).read().decode().strip())";

/// One answer of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub digest0: String,
    pub digest: String,
    pub count: u64,
    pub pid: u32,
    pub cwd: String,
    pub held_first_line: String,
}

fn parse(s: &str) -> Result<Answer> {
    let f: Vec<&str> = s.split_whitespace().collect();
    if f.len() != 6 {
        bail!("unexpected answer {s:?}");
    }
    Ok(Answer {
        digest0: f[0].into(),
        digest: f[1].into(),
        count: f[2].parse()?,
        pid: f[3].parse()?,
        cwd: f[4].into(),
        held_first_line: f[5].into(),
    })
}

/// Starts the server with `mib` MiB of data and the held file at `held`,
/// and waits until it answers.
pub async fn start_server(sb: &TestSandbox, mib: u32, held: &str) -> Result<Answer> {
    start_server_on(&sb.rt, &sb.id, mib, held).await
}

/// [`start_server`] through a given runtime.
pub async fn start_server_on(
    rt: &dyn cove_runtime::Runtime,
    id: &SandboxId,
    mib: u32,
    held: &str,
) -> Result<Answer> {
    let sh = |script: String| {
        rt.exec(
            id,
            cove_runtime::ExecSpec {
                cmd: "bash".into(),
                args: vec!["-c".into(), script],
                ..Default::default()
            },
        )
    };
    let body = futures::stream::iter(vec![Ok::<_, std::io::Error>(bytes::Bytes::from_static(
        SERVER.as_bytes(),
    ))]);
    rt.write_file(id, "/root/srv.py", Box::pin(body)).await?;
    let out = sh(format!(
        "cd /root && MB={mib} HELD={held} nohup python3 srv.py >/root/srv.log 2>&1 </dev/null &"
    ))
    .await?;
    if out.exit_code != 0 {
        bail!("starting the server: {}", text(&out.stderr));
    }
    for _ in 0..200 {
        let probe = sh(
            "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 8080), 1)' 2>/dev/null"
                .into(),
        )
        .await?;
        if probe.exit_code == 0 {
            return ask_on(rt, id).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = sh("cat /root/srv.log".into()).await?;
    bail!("the server never listened: {}", text(&log.stdout))
}

/// Asks the server from inside the sandbox (loopback).
pub async fn ask(sb: &TestSandbox) -> Result<Answer> {
    ask_on(&sb.rt, &sb.id).await
}

/// [`ask`] through a given runtime.
pub async fn ask_on(rt: &dyn cove_runtime::Runtime, id: &SandboxId) -> Result<Answer> {
    let spec = cove_runtime::ExecSpec {
        cmd: "python3".into(),
        args: vec!["-c".into(), CLIENT.into()],
        ..Default::default()
    };
    let out = rt.exec(id, spec).await?;
    if out.exit_code != 0 {
        bail!("client failed: {} {}", text(&out.stdout), text(&out.stderr));
    }
    parse(&text(&out.stdout))
}

/// Asks the server from the host, over the bridge and the sandbox's veth.
pub fn ask_from_host(ip: Ipv4Addr) -> Result<Answer> {
    let addr = SocketAddr::from((ip, 8080));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let body = resp
        .split("\r\n\r\n")
        .nth(1)
        .context("no body in the answer")?;
    parse(body)
}

/// The sandbox's init pid on the host, from the runtime's state dir.
pub fn init_pid(state_dir: &std::path::Path, id: &SandboxId) -> Option<u32> {
    std::fs::read_to_string(
        state_dir
            .join("sandboxes")
            .join(id.as_str())
            .join("init.pid"),
    )
    .ok()?
    .trim()
    .parse()
    .ok()
}

/// Fails when any process, cgroup or mount of `id` is still on the host.
pub fn assert_nothing_on_host(
    state_dir: &std::path::Path,
    id: &SandboxId,
    old_pid: u32,
) -> Result<()> {
    if std::path::Path::new(&format!("/proc/{old_pid}")).exists() {
        let comm = std::fs::read_to_string(format!("/proc/{old_pid}/comm")).unwrap_or_default();
        if comm.trim() == "cove-agent" {
            bail!("the sandbox's init (pid {old_pid}) is still alive");
        }
    }
    let needle = format!("/cove-test/{id}");
    for e in std::fs::read_dir("/proc")?.flatten() {
        let name = e.file_name();
        if !name.to_string_lossy().bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cg = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
        if cg.contains(&needle) {
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            // A zombie holds no memory, only its exit status, until its
            // parent (the host's init, once runc exited) reaps it.
            if status
                .lines()
                .any(|l| l.starts_with("State:") && l.contains("zombie"))
            {
                continue;
            }
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            bail!(
                "process {} is still in the sandbox's cgroup: {:?} {}",
                name.to_string_lossy(),
                String::from_utf8_lossy(&cmdline),
                status.lines().take(7).collect::<Vec<_>>().join(" ")
            );
        }
    }
    for e in std::fs::read_dir("/sys/fs/cgroup")?.flatten() {
        let dir = e.path().join("cove-test").join(id.as_str());
        if dir.exists() {
            bail!("cgroup {} is left", dir.display());
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    let dir = state_dir.join("sandboxes").join(id.as_str());
    if mounts.contains(&*dir.to_string_lossy()) {
        bail!("a mount under {} is left", dir.display());
    }
    let runc = std::process::Command::new("runc")
        .arg("--root")
        .arg(state_dir.join("runc"))
        .args(["state", id.as_str()])
        .output()?;
    if runc.status.success() {
        bail!("runc still knows the container");
    }
    Ok(())
}

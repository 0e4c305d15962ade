//! `NetSys`: the external commands networking needs (`ip`, `nft`, `sysctl`
//! writes), passed in. `CommandNetSys` runs them; `RecordingNetSys` records
//! them for unit tests and answers from a script.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::netlink::Plug;
use crate::NetError;

/// The system calls and commands of the network layer.
pub trait NetSys: Send + Sync {
    /// Runs `program args…` with `stdin`, returning stdout; non-zero exit is an error.
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, NetError>;
    /// Whether a network interface of that name exists on the host.
    fn link_exists(&self, name: &str) -> bool;
    /// Whether a file exists (named network namespaces).
    fn path_exists(&self, path: &std::path::Path) -> bool;
    /// Writes a `/proc/sys` value.
    fn write_sysctl(&self, key: &str, value: &str) -> Result<(), NetError>;
    /// Names a sandbox's namespace and wires it to the bridge (see
    /// `netlink.rs`).
    fn plug(&self, plug: &Plug) -> Result<(), NetError>;
}

/// The real implementation: runs the commands.
pub struct CommandNetSys;

impl NetSys for CommandNetSys {
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, NetError> {
        let command = format!("{program} {}", args.join(" "));
        let mut child = Command::new(program)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| NetError::Command {
                command: command.clone(),
                stderr: e.to_string(),
            })?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(input.as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(NetError::Command { command, stderr });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn link_exists(&self, name: &str) -> bool {
        std::path::Path::new("/sys/class/net").join(name).exists()
    }

    fn path_exists(&self, path: &std::path::Path) -> bool {
        path.exists()
    }

    fn write_sysctl(&self, key: &str, value: &str) -> Result<(), NetError> {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(path, value)?;
        Ok(())
    }

    fn plug(&self, plug: &Plug) -> Result<(), NetError> {
        crate::netlink::plug(plug)
    }
}

/// Records every call; `link_exists`/`path_exists` answer from sets the test fills.
#[cfg(any(test, feature = "testing"))]
#[derive(Default)]
pub struct RecordingNetSys {
    pub calls: std::sync::Mutex<Vec<String>>,
    pub links: std::sync::Mutex<std::collections::HashSet<String>>,
    pub fail_on: std::sync::Mutex<Option<String>>,
}

#[cfg(any(test, feature = "testing"))]
impl RecordingNetSys {
    /// The calls so far, one string each (`ip link add …`, `nft <stdin>`).
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Records `line`; fails it if it contains `fail_on`.
    fn record(&self, line: String) -> Result<(), NetError> {
        if let Ok(mut c) = self.calls.lock() {
            c.push(line.clone());
        }
        if let Ok(f) = self.fail_on.lock() {
            if f.as_deref().is_some_and(|f| line.contains(f)) {
                return Err(NetError::Command {
                    command: line,
                    stderr: "injected".into(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(any(test, feature = "testing"))]
impl NetSys for RecordingNetSys {
    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, NetError> {
        let mut line = format!("{program} {}", args.join(" "));
        if let Some(s) = stdin {
            line.push_str(" <<");
            line.push_str(s);
        }
        self.record(line).map(|()| String::new())
    }

    fn link_exists(&self, name: &str) -> bool {
        self.links.lock().map(|l| l.contains(name)).unwrap_or(false)
    }

    fn path_exists(&self, _path: &std::path::Path) -> bool {
        false
    }

    fn write_sysctl(&self, key: &str, value: &str) -> Result<(), NetError> {
        if let Ok(mut c) = self.calls.lock() {
            c.push(format!("sysctl {key}={value}"));
        }
        Ok(())
    }

    /// Recorded as `plug <netns> pid=… veth=… master=… addr=…/… gw=…`.
    fn plug(&self, p: &Plug) -> Result<(), NetError> {
        let line = format!(
            "plug {} pid={} veth={} master={} addr={}/{} gw={}",
            p.netns, p.pid, p.host_veth, p.bridge, p.ip, p.prefix, p.gateway
        );
        self.record(line)
    }
}

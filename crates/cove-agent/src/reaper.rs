//! Child reaping for PID 1. Orphans re-parented to the agent would stay
//! zombies forever, so on every SIGCHLD (and once a second) the reaper scans
//! `/proc` for zombie children of this process and reaps them, except those
//! the exec engine spawned: tokio waits for those itself, and reaping one
//! here would steal its exit status. Spawning happens under the same lock as
//! the scan, so a child can never be seen before it is registered.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustix::process::{Pid, WaitOptions};
use tokio::signal::unix::{signal, SignalKind};

/// The set of children owned by the exec engine.
pub struct Reaper {
    /// Pids spawned by exec and still awaited by tokio. Held while spawning
    /// and while scanning, so the two never interleave.
    owned: Mutex<HashSet<i32>>,
}

impl Reaper {
    /// Starts the reaper task on the current runtime.
    pub fn start() -> std::io::Result<Arc<Reaper>> {
        let reaper = Arc::new(Reaper {
            owned: Mutex::new(HashSet::new()),
        });
        let mut sigchld = signal(SignalKind::child())?;
        let r = reaper.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = sigchld.recv() => {}
                    _ = tick.tick() => {}
                }
                r.scan();
            }
        });
        Ok(reaper)
    }

    /// Locks the owned set; spawn while holding it, then [`own`](Self::own) the pid.
    pub fn lock(&self) -> MutexGuard<'_, HashSet<i32>> {
        // A poisoned lock only means a panic elsewhere; the set is still valid.
        self.owned.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets a child tokio has finished waiting for.
    pub fn release(&self, pid: i32) {
        self.lock().remove(&pid);
    }

    fn scan(&self) {
        let owned = self.lock();
        let me = std::process::id() as i32;
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if owned.contains(&pid) {
                continue;
            }
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // Fields after the last ')' (the comm may contain spaces): state ppid …
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let mut f = rest.split_whitespace();
            let (Some(state), Some(ppid)) = (f.next(), f.next()) else {
                continue;
            };
            if state == "Z" && ppid.parse::<i32>().ok() == Some(me) {
                if let Some(p) = Pid::from_raw(pid) {
                    let _ = rustix::process::waitpid(Some(p), WaitOptions::NOHANG);
                }
            }
        }
    }
}

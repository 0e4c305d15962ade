//! When each sandbox was last used, for auto-pause: every exec and file
//! transfer touches it, and an exec (buffered or streamed) counts as
//! activity for as long as it runs. In memory only: after a server start a
//! sandbox's idle time counts from the first time it is looked at, so a
//! restart never pauses a sandbox that was in use just before.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use cove_api::ids::SandboxId;

/// Last use and running calls, by sandbox.
#[derive(Debug, Default)]
pub struct Activity(Mutex<HashMap<SandboxId, (Instant, u32)>>);

impl Activity {
    fn lock(&self) -> MutexGuard<'_, HashMap<SandboxId, (Instant, u32)>> {
        // Plain counters and instants: a panic elsewhere cannot tear them.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The sandbox was used now.
    pub fn touch(&self, id: &SandboxId) {
        self.lock()
            .entry(id.clone())
            .and_modify(|e| e.0 = Instant::now())
            .or_insert((Instant::now(), 0));
    }

    /// A call that counts as activity until the guard drops.
    pub fn begin(self: &Arc<Self>, id: &SandboxId) -> ActivityGuard {
        let mut map = self.lock();
        let e = map.entry(id.clone()).or_insert((Instant::now(), 0));
        e.0 = Instant::now();
        e.1 += 1;
        ActivityGuard {
            activity: Arc::clone(self),
            id: id.clone(),
        }
    }

    /// How long the sandbox has been idle; `None` while a call runs.
    pub fn idle_for(&self, id: &SandboxId) -> Option<Duration> {
        let mut map = self.lock();
        let e = map.entry(id.clone()).or_insert((Instant::now(), 0));
        (e.1 == 0).then(|| e.0.elapsed())
    }
}

/// Ends a running call's activity (and touches the sandbox) when dropped.
pub struct ActivityGuard {
    activity: Arc<Activity>,
    id: SandboxId,
}

impl Drop for ActivityGuard {
    fn drop(&mut self) {
        if let Some(e) = self.activity.lock().get_mut(&self.id) {
            e.0 = Instant::now();
            e.1 = e.1.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_call_is_never_idle_and_its_end_touches() {
        let a = Arc::new(Activity::default());
        let id = SandboxId::generate();
        assert!(a.idle_for(&id).is_some());
        let g = a.begin(&id);
        let g2 = a.begin(&id);
        assert_eq!(a.idle_for(&id), None);
        drop(g);
        assert_eq!(a.idle_for(&id), None, "one call still runs");
        std::thread::sleep(Duration::from_millis(20));
        drop(g2);
        assert!(a.idle_for(&id).unwrap() < Duration::from_millis(20));
    }
}

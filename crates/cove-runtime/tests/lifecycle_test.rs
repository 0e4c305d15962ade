//! Create, exec and destroy with real runc; destroy leaves nothing behind.

mod common;

use anyhow::Result;
use common::{text, TestRuntime};
use cove_runtime::{Runtime, RuntimeError, RuntimeState};

#[tokio::test(flavor = "multi_thread")]
async fn create_exec_destroy_leaves_nothing_behind() -> Result<()> {
    let t = TestRuntime::start().await?;
    let sb = t.sandbox().await?;
    let out = sb.run("echo", &["hello"]).await?;
    assert_eq!(text(&out.stdout), "hello\n");
    assert_eq!(out.exit_code, 0);

    // Hostname, address, PID 1 and the user namespace are what create set.
    let out = sb.sh("hostname; cat /proc/1/cmdline | tr '\\0' ' '; echo; ip -4 -o addr show eth0; cat /proc/self/uid_map").await?;
    let s = text(&out.stdout);
    assert!(s.starts_with("test-box\n/.cove/agent"), "{s}");
    assert!(s.contains(&format!("inet {}/24", sb.ip)), "{s}");
    assert!(s.contains("0     100000      65536"), "{s}");

    let list = t.rt.list().await?;
    let me = list.iter().find(|s| s.id == sb.id).expect("listed");
    assert_eq!(me.state, RuntimeState::Running);
    assert_eq!(me.ip, Some(sb.ip));

    let id = sb.id.clone();
    let dir = t.dir.path().join("sandboxes").join(id.as_str());
    let veth = format!("ct{}", &id.as_str()[id.as_str().len() - 13..]);
    assert!(std::path::Path::new("/sys/class/net").join(&veth).exists());
    t.rt.destroy(&id).await?;
    t.rt.destroy(&id).await?; // idempotent

    assert!(!dir.exists(), "sandbox dir left behind");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")?;
    assert!(!mounts.contains(id.as_str()), "a mount is left behind");
    assert!(
        !std::path::Path::new("/sys/class/net").join(&veth).exists(),
        "veth left behind"
    );
    assert!(
        !std::path::Path::new("/run/netns")
            .join(format!("cove-{id}"))
            .exists(),
        "netns left behind"
    );
    for h in std::fs::read_dir("/sys/fs/cgroup")?.flatten() {
        assert!(
            !h.path().join("cove-test").join(id.as_str()).exists(),
            "cgroup left in {:?}",
            h.path()
        );
    }
    assert!(
        !t.dir.path().join("runc").join(id.as_str()).exists(),
        "runc state left behind"
    );
    assert!(t.rt.list().await?.iter().all(|s| s.id != id));
    assert!(matches!(
        t.rt.exec(&id, Default::default()).await,
        Err(RuntimeError::NotFound(_))
    ));
    std::mem::forget(sb); // already destroyed
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn create_with_unknown_image_fails_and_leaves_nothing() -> Result<()> {
    let t = TestRuntime::start().await?;
    let err = t
        .sandbox_with(|s| s.rootfs = "nope:9".into())
        .await
        .err()
        .expect("create must fail");
    assert!(format!("{err:#}").contains("unknown image"), "{err:#}");
    let left: Vec<_> = std::fs::read_dir(t.dir.path().join("sandboxes"))?.collect();
    assert!(left.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn capacity_reports_memory_and_images() -> Result<()> {
    let t = TestRuntime::start().await?;
    let c = t.rt.capacity().await?;
    assert!(c.total_mib > 0 && c.free_mib <= c.total_mib);
    assert!(c.images.contains(&"devbox:1".to_string()), "{:?}", c.images);
    Ok(())
}

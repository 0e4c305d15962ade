//! Tests of the mock runtime's own behaviour.

use super::*;

fn spec(id: &SandboxId) -> SandboxSpec {
    SandboxSpec {
        id: id.clone(),
        hostname: "a".into(),
        rootfs: "devbox:1".into(),
        vcpu: 1,
        cpu_quota_pct: None,
        mem_mib: 256,
        disk_mib: 1024,
        pids_limit: 64,
        mounts: Vec::new(),
    }
}

async fn write(rt: &MockRuntime, id: &SandboxId, path: &str, data: &'static [u8]) {
    let body = futures::stream::iter(vec![Ok(Bytes::from_static(data))]).boxed();
    rt.write_file(id, path, body).await.unwrap();
}

#[tokio::test]
async fn pause_resume_and_fork_follow_the_runc_rules() {
    let rt = MockRuntime::new();
    let a = SandboxId::generate();
    rt.create(&spec(&a)).await.unwrap();
    write(&rt, &a, "/f", b"source").await;
    assert!(matches!(
        rt.restore(&a, &[]).await,
        Err(RuntimeError::NotCheckpointed(_))
    ));
    let info = rt.checkpoint(&a).await.unwrap();
    assert_eq!(info.size_bytes, 256 << 20);
    assert_eq!(rt.capacity().await.unwrap().free_mib, 16 * 1024);
    assert!(matches!(
        rt.checkpoint(&a).await,
        Err(RuntimeError::NotRunning(_))
    ));
    assert!(matches!(
        rt.read_file(&a, "/f").await,
        Err(RuntimeError::NotRunning(_))
    ));
    assert_eq!(rt.state(&a), Some(RuntimeState::Checkpointed));

    let b = SandboxId::generate();
    let mut s = spec(&b);
    s.disk_mib = 1;
    let fork_ip = rt.fork(&a, &s, &[]).await.unwrap().ip;
    assert_eq!(
        rt.spec(&b).unwrap().disk_mib,
        1024,
        "a fork keeps the source's disk"
    );
    write(&rt, &b, "/f", b"fork").await;
    assert_eq!(rt.state(&a), Some(RuntimeState::Checkpointed));

    rt.fail_next_restore(RuntimeError::Unsupported("injected".into()));
    assert!(rt.restore(&a, &[]).await.is_err());
    assert_eq!(rt.state(&a), Some(RuntimeState::Checkpointed));
    let ip = rt.restore(&a, &[]).await.unwrap().ip;
    assert_ne!(ip, fork_ip);
    let (_, mut body) = rt.read_file(&a, "/f").await.unwrap();
    assert_eq!(
        body.next().await.unwrap().unwrap(),
        Bytes::from_static(b"source")
    );
    assert!(matches!(
        rt.fork(&a, &spec(&SandboxId::generate()), &[]).await,
        Err(RuntimeError::NotCheckpointed(_))
    ));
}

#[tokio::test]
async fn disks_only_grow() {
    let rt = MockRuntime::new();
    let a = SandboxId::generate();
    rt.create(&spec(&a)).await.unwrap();
    rt.resize_disk(&a, 2048).await.unwrap();
    assert!(matches!(
        rt.resize_disk(&a, 1024).await,
        Err(RuntimeError::DiskShrink {
            current_mib: 2048,
            ..
        })
    ));
}

//! Files through the agent: binary round trips, a large streamed file,
//! parents created on write, and the error cases.

mod common;

use anyhow::Result;
use bytes::Bytes;
use common::{text, TestRuntime};
use cove_runtime::{Runtime, RuntimeError};
use futures::StreamExt;
use rand::RngCore;

/// Deterministic bytes for chunk `i` (so a large file is checked without keeping it).
fn chunk(i: u64, len: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn random_bytes_round_trip_and_parents_are_created() -> Result<()> {
    let t = TestRuntime::start().await?;
    let sb = t.sandbox().await?;
    let mut data = vec![0u8; (1 << 20) + 17];
    rand::rng().fill_bytes(&mut data);
    assert_eq!(
        sb.write("/root/new/deep/dir/f.bin", data.clone()).await?,
        data.len() as u64
    );
    assert_eq!(sb.read("/root/new/deep/dir/f.bin").await?, data);
    // Visible to commands in the sandbox, owned by its root.
    let out = sb.sh("stat -c '%s %u' /root/new/deep/dir/f.bin").await?;
    assert_eq!(text(&out.stdout), format!("{} 0\n", data.len()));
    // Overwrite truncates.
    sb.write("/root/new/deep/dir/f.bin", b"short".to_vec())
        .await?;
    assert_eq!(sb.read("/root/new/deep/dir/f.bin").await?, b"short");
    // Empty file.
    sb.write("/root/empty", Vec::new()).await?;
    assert_eq!(sb.read("/root/empty").await?, b"");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_large_file_streams_both_ways() -> Result<()> {
    let t = TestRuntime::start().await?;
    let sb = t.sandbox_with(|s| s.disk_mib = 1024).await?;
    const CHUNKS: u64 = 192;
    const LEN: usize = 1 << 20;
    let body = futures::stream::iter(
        (0..CHUNKS).map(|i| Ok::<_, std::io::Error>(Bytes::from(chunk(i, LEN)))),
    );
    let n =
        t.rt.write_file(&sb.id, "/root/big.bin", Box::pin(body))
            .await?;
    assert_eq!(n, CHUNKS * LEN as u64);
    let (size, mut s) = t.rt.read_file(&sb.id, "/root/big.bin").await?;
    assert_eq!(size, CHUNKS * LEN as u64);
    let mut buf = Vec::new();
    let mut i = 0;
    while let Some(c) = s.next().await {
        buf.extend_from_slice(&c?);
        while buf.len() >= LEN {
            let rest = buf.split_off(LEN);
            assert!(buf == chunk(i, LEN), "chunk {i} differs");
            buf = rest;
            i += 1;
        }
    }
    assert_eq!(i, CHUNKS);
    assert!(buf.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn files_errors_are_typed() -> Result<()> {
    let t = TestRuntime::start().await?;
    let sb = t.sandbox().await?;
    assert!(matches!(
        t.rt.read_file(&sb.id, "/no/such/file").await,
        Err(RuntimeError::FileNotFound(_))
    ));
    assert!(matches!(
        t.rt.read_file(&sb.id, "/etc").await,
        Err(RuntimeError::IsDirectory(_))
    ));
    assert!(matches!(
        t.rt.read_file(&sb.id, "relative/path").await,
        Err(RuntimeError::InvalidPath(_))
    ));
    assert!(matches!(
        t.rt.read_file(&sb.id, "/a\0b").await,
        Err(RuntimeError::InvalidPath(_))
    ));
    let body = Box::pin(futures::stream::iter(vec![Ok::<_, std::io::Error>(
        Bytes::from_static(b"x"),
    )]));
    assert!(matches!(
        t.rt.write_file(&sb.id, "/etc", body).await,
        Err(RuntimeError::IsDirectory(_))
    ));
    // A FIFO is not read (it would block forever).
    sb.sh("mkfifo /root/fifo").await?;
    assert!(matches!(
        t.rt.read_file(&sb.id, "/root/fifo").await,
        Err(RuntimeError::InvalidPath(_))
    ));
    Ok(())
}

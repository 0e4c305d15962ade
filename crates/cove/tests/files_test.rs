//! Files against a live `cove serve` with a real sandbox: binary round trips
//! of random bytes, parent directories, 1 GiB streamed both ways while the
//! server's peak RSS stays small, 404 for a missing file, 400 for bad paths.

mod common;

use common::{vm_hwm_kib, Api, PseudoRandom, Resp, TempServer};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::json;
use sha2::{Digest, Sha256};

async fn one_sandbox(server: &mut TempServer) -> anyhow::Result<(Api, String)> {
    let api = server.user("files")?;
    let sb = api.create(json!({})).await?;
    Ok((api, sb["id"].as_str().unwrap().to_string()))
}

/// An upload answers 204 with no body, or a JSend success (API.md §4.5).
fn assert_upload_ok(r: &Resp) {
    if r.status == 204 {
        assert!(r.body.is_empty());
    } else {
        r.data().expect("upload answers a JSend success or 204");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn random_bytes_round_trip_and_parents_are_created() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let (api, id) = one_sandbox(&mut server).await?;
    for (i, size) in [0usize, 1, 255, 65_537, 3 * 1024 * 1024 + 3]
        .into_iter()
        .enumerate()
    {
        let mut data = vec![0u8; size];
        rand::fill(&mut data[..]);
        let path = format!("/root/new/dir{i}/nested/blob.bin");
        let r = api.upload(&id, &path, data.clone()).await?;
        assert_upload_ok(&r);
        let back = api.download(&id, &path).await?;
        assert_eq!(back.status, 200, "{}", back.text());
        assert_eq!(back.body.len(), size);
        assert!(back.body[..] == data[..], "bytes differ at size {size}");
        let ct = back
            .headers
            .get("content-type")
            .map(|v| v.to_str().unwrap_or(""));
        assert!(
            !ct.is_some_and(|c| c.contains("json")),
            "download is raw bytes, not {ct:?}"
        );
        let sum = api.exec(&id, "sha256sum", &[&path]).await?;
        assert_eq!(
            sum.stdout.split_whitespace().next(),
            Some(format!("{:x}", Sha256::digest(&data)).as_str())
        );
    }
    // A file made by exec downloads; an upload overwrites (truncates).
    api.sh(&id, "printf 'made by exec' > /root/e.txt").await?;
    assert_eq!(
        &api.download(&id, "/root/e.txt").await?.body[..],
        b"made by exec"
    );
    assert_upload_ok(&api.upload(&id, "/root/e.txt", "short").await?);
    assert_eq!(&api.download(&id, "/root/e.txt").await?.body[..], b"short");
    // Odd characters survive the form-encoded query (`+` is a space there).
    let odd = "/root/x y/ü&=+%.bin";
    assert_upload_ok(&api.upload(&id, odd, "odd").await?);
    assert_eq!(api.exec(&id, "cat", &[odd]).await?.stdout, "odd");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_file_is_404_and_bad_paths_are_400() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let (api, id) = one_sandbox(&mut server).await?;
    let r = api.download(&id, "/root/not/here").await?;
    assert_eq!(r.status, 404, "{}", r.text());
    assert!(!r.fail_code()?.is_empty());
    let r = api
        .download("sb_00000000000000000000000000", "/etc/hostname")
        .await?;
    assert_eq!(r.status, 404);
    let r = api.download(&id, "/root").await?;
    assert!(
        !r.status.is_success(),
        "a directory is not a file: {}",
        r.status
    );
    for bad in ["relative/path", "", "/root/nul\0byte", "./x"] {
        let r = api.download(&id, bad).await?;
        assert_eq!(r.status, 400, "GET {bad:?}: {}", r.text());
        assert!(!r.fail_code()?.is_empty());
        let r = api.upload(&id, bad, "x").await?;
        assert_eq!(r.status, 400, "PUT {bad:?}: {}", r.text());
    }
    let r = api
        .send(Method::GET, &format!("/v1/sandboxes/{id}/files"), None)
        .await?;
    assert_eq!(r.status, 400, "no path parameter: {}", r.text());
    // Devices are not files: an endless /dev/zero must not be streamed out
    // (or read into memory), and writes to devices are refused too.
    for dev in ["/dev/zero", "/dev/urandom"] {
        let r = tokio::time::timeout(std::time::Duration::from_secs(30), api.download(&id, dev))
            .await
            .map_err(|_| anyhow::anyhow!("GET {dev} streamed for 30 s"))??;
        assert!(!r.status.is_success(), "GET {dev}: {}", r.status);
    }
    let r = api.upload(&id, "/dev/full", "x").await?;
    assert!(!r.status.is_success(), "PUT /dev/full: {}", r.status);
    Ok(())
}

const GIB: u64 = 1024 * 1024 * 1024;
const CHUNK: usize = 1024 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn one_gib_streams_both_ways_with_small_server_memory() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let (api, id) = one_sandbox(&mut server).await?;
    let pid = server.pid();
    let before = vm_hwm_kib(pid)?;

    // Upload: a generated stream, never held whole on either side.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let producer = tokio::spawn(async move {
        let mut rng = PseudoRandom::new(0xC0FE);
        let mut hash = Sha256::new();
        for _ in 0..(GIB as usize / CHUNK) {
            let mut buf = vec![0u8; CHUNK];
            rng.fill(&mut buf);
            hash.update(&buf);
            if tx.send(Ok(buf)).await.is_err() {
                break;
            }
        }
        format!("{:x}", hash.finalize())
    });
    let body = reqwest::Body::wrap_stream(tokio_stream_from(rx));
    let r = api.upload(&id, "/root/big.bin", body).await?;
    assert_upload_ok(&r);
    let want = producer.await?;

    let size = api
        .exec(&id, "stat", &["-c", "%s", "/root/big.bin"])
        .await?;
    assert_eq!(size.stdout.trim(), GIB.to_string());
    let sum = api.exec(&id, "sha256sum", &["/root/big.bin"]).await?;
    assert_eq!(
        sum.stdout.split_whitespace().next(),
        Some(want.as_str()),
        "sha256 inside the sandbox"
    );

    // Download: hash as it arrives.
    let resp = api.download_stream(&id, "/root/big.bin").await?;
    assert_eq!(resp.status(), 200);
    let mut hash = Sha256::new();
    let mut n = 0u64;
    let mut body = resp.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        n += chunk.len() as u64;
        hash.update(&chunk);
    }
    assert_eq!(n, GIB);
    assert_eq!(format!("{:x}", hash.finalize()), want);

    let after = vm_hwm_kib(pid)?;
    eprintln!("cove serve VmHWM: {before} KiB before, {after} KiB after 2 GiB moved");
    assert!(
        after < before + 128 * 1024,
        "server peak RSS grew from {before} KiB to {after} KiB: the file was buffered"
    );
    api.exec(&id, "rm", &["/root/big.bin"]).await?;
    Ok(())
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Vec<u8>, std::io::Error>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

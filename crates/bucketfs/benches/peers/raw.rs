//! The ceiling: the same operations done directly with the raw S3 client,
//! with the parallelism a filesystem could use (8 MiB parts, 8 at a time).
//! Edits of large objects use UploadPartCopy for the unchanged ranges, the
//! best any client can do on S3.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use bucketfs::client::{
    CompletedPart, CopyObjectParams, CreateMultipartUploadParams, GetObjectParams,
    ListObjectsParams, MetadataDirective, ObjectClient, PutObjectParams, UploadPartCopyParams,
};
use bucketfs::s3::S3Client;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::workload::seq_data;
use crate::{Figures, Sizes, KIB, MIB};

const PART: u64 = 8 * MIB;
const PARALLEL: usize = 8;

/// Multipart upload of `body` with parallel parts.
pub async fn put_large(c: &S3Client, key: &str, body: Bytes) -> Result<()> {
    if (body.len() as u64) < PART {
        c.put_object(key, body, &PutObjectParams::default()).await?;
        return Ok(());
    }
    let id = c
        .create_multipart_upload(key, &CreateMultipartUploadParams::default())
        .await?;
    let n = (body.len() as u64).div_ceil(PART);
    let mut parts: Vec<CompletedPart> = futures::stream::iter(0..n)
        .map(|i| {
            let piece =
                body.slice((i * PART) as usize..((i + 1) * PART).min(body.len() as u64) as usize);
            let (c, id) = (c.clone(), id.clone());
            async move {
                let r = c.upload_part(key, &id, i as u32 + 1, piece).await?;
                Ok::<_, anyhow::Error>(CompletedPart {
                    part_number: i as u32 + 1,
                    etag: r.etag,
                })
            }
        })
        .buffer_unordered(PARALLEL)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_>>()?;
    parts.sort_by_key(|p| p.part_number);
    c.complete_multipart_upload(key, &id, &parts, None).await?;
    Ok(())
}

/// Parallel ranged GETs of a whole object, reassembled in order.
async fn get_large(c: &S3Client, key: &str, size: u64) -> Result<Bytes> {
    let n = size.div_ceil(PART);
    let pieces: Vec<Bytes> = futures::stream::iter(0..n)
        .map(|i| {
            let c = c.clone();
            async move {
                let params = GetObjectParams {
                    range: Some(i * PART..((i + 1) * PART).min(size)),
                    if_match: None,
                };
                c.get_object(key, &params).await.map(|r| r.body)
            }
        })
        .buffered(PARALLEL)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let mut out = BytesMut::with_capacity(size as usize);
    for p in pieces {
        out.extend_from_slice(&p);
    }
    Ok(out.freeze())
}

/// Keys under `prefix` (all pages).
pub async fn count(c: &S3Client, prefix: &str) -> Result<usize> {
    let mut params = ListObjectsParams {
        prefix: prefix.into(),
        ..Default::default()
    };
    let mut n = 0;
    loop {
        let page = c.list_objects(&params).await?;
        n += page.objects.len();
        match page.next_continuation_token {
            Some(t) => params.continuation_token = Some(t),
            None => return Ok(n),
        }
    }
}

/// Rewrites `key` (size `size`) with `patch` at `at`: unchanged ranges are
/// copied on the server; the part holding the change is read, patched and
/// uploaded (at least 5 MiB unless it is the last part).
async fn patch(c: &S3Client, key: &str, size: u64, at: u64, patch: &[u8]) -> Result<()> {
    let id = c
        .create_multipart_upload(key, &CreateMultipartUploadParams::default())
        .await?;
    let mut parts = Vec::new();
    let mut n = 1;
    let start = if at >= 5 * MIB { at } else { 0 };
    if start > 0 {
        let p = UploadPartCopyParams {
            source_key: key.into(),
            source_range: 0..start,
            source_if_match: None,
        };
        parts.push(CompletedPart {
            part_number: n,
            etag: c.upload_part_copy(key, &id, n, &p).await?.etag,
        });
        n += 1;
    }
    let end = (at + patch.len() as u64)
        .max(start + 5 * MIB)
        .min(size.max(at + patch.len() as u64));
    let mut body = BytesMut::new();
    if start < size {
        let params = GetObjectParams {
            range: Some(start..end.min(size)),
            if_match: None,
        };
        body.extend_from_slice(&c.get_object(key, &params).await?.body);
    }
    body.resize((end - start) as usize, 0);
    body[(at - start) as usize..(at - start) as usize + patch.len()].copy_from_slice(patch);
    parts.push(CompletedPart {
        part_number: n,
        etag: c.upload_part(key, &id, n, body.freeze()).await?.etag,
    });
    n += 1;
    if end < size {
        let p = UploadPartCopyParams {
            source_key: key.into(),
            source_range: end..size,
            source_if_match: None,
        };
        parts.push(CompletedPart {
            part_number: n,
            etag: c.upload_part_copy(key, &id, n, &p).await?.etag,
        });
    }
    c.complete_multipart_upload(key, &id, &parts, None).await?;
    Ok(())
}

/// One extra sequential write round with the raw client (see `main`).
pub async fn seq_write_round(c: &S3Client, s: &Sizes, key: &str) -> Result<Duration> {
    let took = timed_seq_write(c, seq_data(s), key).await?;
    c.delete_object(key).await?;
    Ok(took)
}

/// Puts `seq` at `key` (after `settle`), timed.
async fn timed_seq_write(c: &S3Client, seq: Bytes, key: &str) -> Result<Duration> {
    tokio::task::spawn_blocking(crate::workload::settle).await?;
    let t0 = Instant::now();
    put_large(c, key, seq).await?;
    Ok(t0.elapsed())
}

/// Every workload done with the raw client.
pub async fn run(c: &S3Client, s: &Sizes) -> Result<Figures> {
    let mut f = Figures::default();
    let seq = seq_data(s);
    f.seq_write = Some(timed_seq_write(c, seq.clone(), "seq.bin").await?);
    let t0 = Instant::now();
    let got = get_large(c, "seq.bin", s.seq).await?;
    f.seq_read = Some(t0.elapsed());
    if got != seq {
        bail!("raw read differs");
    }
    drop(got);
    let t0 = Instant::now();
    let one = c
        .get_object("seq.bin", &GetObjectParams::default())
        .await?
        .body;
    f.seq_read_one_stream = Some(t0.elapsed());
    if one != seq {
        bail!("raw single-stream read differs");
    }

    let small = Bytes::from(vec![7u8; 4 * KIB as usize]);
    let t0 = Instant::now();
    for i in 0..s.creates {
        c.put_object(
            &format!("small/f{i:04}"),
            small.clone(),
            &PutObjectParams::default(),
        )
        .await?;
    }
    f.creates = Some(t0.elapsed());

    for warm in [false, true] {
        let t0 = Instant::now();
        let n = count(c, "ls10k/").await?;
        if n != s.list_files {
            bail!("raw listed {n}");
        }
        let took: Duration = t0.elapsed();
        if warm {
            f.ls_warm = Some(took)
        } else {
            f.ls_cold = Some(took)
        }
    }

    let t0 = Instant::now();
    let copy = CopyObjectParams {
        metadata_directive: MetadataDirective::Copy,
        source_if_match: None,
    };
    c.copy_object("rename.bin", "renamed.bin", &copy).await?;
    c.delete_object("rename.bin").await?;
    f.rename = Some(t0.elapsed());

    let tail = vec![0xA5u8; 4 * KIB as usize];
    let t0 = Instant::now();
    patch(c, "append.bin", s.edit, s.edit, &tail).await?;
    f.append = Some(t0.elapsed());
    if c.head_object("append.bin").await?.size != s.edit + 4 * KIB {
        bail!("raw append has the wrong size");
    }
    let t0 = Instant::now();
    patch(c, "middle.bin", s.edit, s.edit / 2, &tail).await?;
    f.mid_write = Some(t0.elapsed());
    Ok(f)
}

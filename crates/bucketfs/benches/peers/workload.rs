//! The workload run through a mount, and the bucket preparation shared by
//! every system (a 10,000-object directory, the file to rename and the two
//! files to edit, written with the raw client so each system starts equal).
//!
//! Data is pseudo-random per MiB (garage deduplicates identical blocks, so
//! a repeated pattern would flatter every writer).

use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bucketfs::client::{GetObjectParams, ObjectClient, ObjectClientError, PutObjectParams};
use bucketfs::s3::S3Client;
use bytes::Bytes;
use cove_testkit::garage::TempGarage;
use futures::StreamExt;

use crate::mounts::{Kind, Mount};
use crate::{Figures, Sizes, KIB, MIB};

/// Deterministic pseudo-random MiB number `i` (xorshift64*).
pub fn chunk(i: u64) -> Vec<u8> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (i.wrapping_add(1)).wrapping_mul(0xD1B5_4A32_D192_ED03);
    let mut out = Vec::with_capacity(MIB as usize);
    for _ in 0..MIB / 8 {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out
}

/// `len` bytes made of chunks `seed..`.
pub fn data(len: u64, seed: u64) -> Bytes {
    let mut v = Vec::with_capacity(len as usize);
    let mut i = seed;
    while (v.len() as u64) < len {
        v.extend_from_slice(&chunk(i));
        i += 1;
    }
    v.truncate(len as usize);
    v.into()
}

/// The sequential file's bytes for one system (`Sizes::seq_seed`),
/// generated once per system (outside every timing).
pub fn seq_data(s: &Sizes) -> Bytes {
    static DATA: std::sync::Mutex<Option<(u64, Bytes)>> = std::sync::Mutex::new(None);
    let mut cached = DATA.lock().unwrap_or_else(|e| e.into_inner());
    match &*cached {
        Some((seed, bytes)) if *seed == s.seq_seed && bytes.len() as u64 == s.seq => bytes.clone(),
        _ => {
            // Drop the previous system's data before making this one's.
            *cached = None;
            let bytes = data(s.seq, s.seq_seed);
            *cached = Some((s.seq_seed, bytes.clone()));
            bytes
        }
    }
}

/// Right before a timed sequential write: flushes the host's dirty pages
/// (what `prepare` and earlier systems wrote) so their writeback does not
/// land in this system's timing, drops the clean page cache, then lets
/// garage's own background work settle. Without the sync the first system
/// measured got an idle disk and every later one a busy one (raw ran
/// first: 338 vs bucketfs 196 MiB/s in one run, where `dd` onto a fresh
/// mount on an idle host did 300 MiB/s). Without dropping the cache, a
/// full run fills the host's memory with garage's data by the later
/// rounds (2 GiB free of 24), and from then on every page a system
/// allocates is reclaimed first: a cost that grows with the round and
/// falls hardest on the systems that stage data (bucketfs's ratio to raw
/// fell from 89 % in round 1 to 83 % in round 3).
pub fn settle() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    if let Err(e) = std::fs::write("/proc/sys/vm/drop_caches", "3") {
        eprintln!("could not drop the page cache: {e}");
    }
    std::thread::sleep(Duration::from_secs(1));
}

/// Puts the objects every system's run starts from.
pub async fn prepare(c: &S3Client, s: &Sizes) -> Result<()> {
    futures::stream::iter(0..s.list_files)
        .map(|i| {
            let c = c.clone();
            async move {
                let body = Bytes::from(format!("{i:08}"));
                c.put_object(&format!("ls10k/f{i:05}"), body, &PutObjectParams::default())
                    .await
            }
        })
        .buffer_unordered(64)
        .for_each(|r| async move {
            r.expect("put listing object");
        })
        .await;
    crate::raw::put_large(c, "rename.bin", data(s.rename, 1000)).await?;
    crate::raw::put_large(c, "append.bin", data(s.edit, 2000)).await?;
    crate::raw::put_large(c, "middle.bin", data(s.edit, 3000)).await?;
    Ok(())
}

/// Waits until `check` holds on the bucket (polling every 5 ms) and
/// returns the time since `t0`.
pub async fn until_durable<F, Fut>(t0: Instant, what: &str, mut check: F) -> Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = t0 + Duration::from_secs(300);
    while !check().await {
        if Instant::now() > deadline {
            bail!("{what} not durable after 300 s");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(t0.elapsed())
}

async fn size_is(c: &S3Client, key: &str, size: u64) -> bool {
    matches!(c.head_object(key).await, Ok(h) if h.size == size)
}

/// Writes `seq` to `key` on `m` in 1 MiB writes, then fsync and close,
/// timed until the object is whole in the bucket (after [`settle`]).
fn timed_seq_write(
    rt: &tokio::runtime::Runtime,
    m: &Mount,
    c: &S3Client,
    seq: &Bytes,
    key: &str,
) -> Result<Duration> {
    settle();
    let t0 = Instant::now();
    let mut file = std::fs::File::create(m.path(key))?;
    for piece in seq.chunks(MIB as usize) {
        file.write_all(piece)?;
    }
    file.sync_all()?;
    drop(file);
    rt.block_on(until_durable(t0, "seq write", || {
        size_is(c, key, seq.len() as u64)
    }))
}

/// One extra sequential write round (see `main`): a fresh `kind` mount,
/// `s`'s data to `key` timed until durable, unmounted, object deleted.
pub fn seq_write_round(
    rt: &tokio::runtime::Runtime,
    garage: &TempGarage,
    bucket: &str,
    c: &S3Client,
    kind: Kind,
    s: &Sizes,
    key: &str,
) -> Result<Duration> {
    let seq = seq_data(s);
    let (m, _) = Mount::start(kind, garage, bucket)?;
    let took = timed_seq_write(rt, &m, c, &seq, key)?;
    m.unmount()?;
    rt.block_on(c.delete_object(key))?;
    Ok(took)
}

/// Runs every workload on a `kind` mount of `bucket`.
pub fn run_mounted(
    rt: &tokio::runtime::Runtime,
    garage: &TempGarage,
    bucket: &str,
    c: &S3Client,
    kind: Kind,
    s: &Sizes,
) -> Result<Figures> {
    let mut f = Figures::default();
    let (m, took) = Mount::start(kind, garage, bucket)?;
    f.mount = Some(took);
    std::thread::sleep(Duration::from_millis(500));
    f.idle_rss_kib = m.rss_kib();

    // Sequential write, timed until the object is whole in the bucket.
    let seq = seq_data(s);
    f.seq_write = Some(timed_seq_write(rt, &m, c, &seq, "seq.bin")?);
    let mut peak = m.peak_rss_kib().unwrap_or(0);
    m.unmount()?;

    // Sequential read on a fresh mount (no page cache), checked.
    let (m, _) = Mount::start(kind, garage, bucket)?;
    let t0 = Instant::now();
    let mut file = std::fs::File::open(m.path("seq.bin"))?;
    let mut buf = vec![0u8; MIB as usize];
    let mut total = 0usize;
    let mut same = true;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        same &= seq.get(total..total + n) == Some(&buf[..n]);
        total += n;
    }
    f.seq_read = Some(t0.elapsed());
    drop(file);
    if total as u64 != s.seq || !same {
        bail!(
            "{kind:?} read {total} bytes of {}, same content: {same}",
            s.seq
        );
    }
    peak = peak.max(m.peak_rss_kib().unwrap_or(0));
    f.peak_rss_kib = Some(peak);

    // Small files, each closed; timed until all are listed in the bucket.
    std::fs::create_dir(m.path("small"))?;
    let small = vec![7u8; 4 * KIB as usize];
    let t0 = Instant::now();
    for i in 0..s.creates {
        std::fs::write(m.path(&format!("small/f{i:04}")), &small)?;
    }
    let want = s.creates;
    f.creates = Some(rt.block_on(until_durable(t0, "creates", || async {
        crate::raw::count(c, "small/").await.unwrap_or(0) >= want
    }))?);
    m.unmount()?;

    edits_on_fresh_mount(rt, garage, bucket, c, kind, s, &mut f)?;
    Ok(f)
}

/// `ls -l` cold and warm, rename, append and a write in the middle.
fn edits_on_fresh_mount(
    rt: &tokio::runtime::Runtime,
    garage: &TempGarage,
    bucket: &str,
    c: &S3Client,
    kind: Kind,
    s: &Sizes,
    f: &mut Figures,
) -> Result<()> {
    let (m, _) = Mount::start(kind, garage, bucket)?;
    for warm in [false, true] {
        let t0 = Instant::now();
        let out = std::process::Command::new("ls")
            .arg("-l")
            .arg(m.path("ls10k"))
            .output()?;
        let took = t0.elapsed();
        let lines = out.stdout.iter().filter(|b| **b == b'\n').count();
        if !out.status.success() || lines != s.list_files + 1 {
            bail!("{kind:?}: ls -l listed {} lines", lines);
        }
        if warm {
            f.ls_warm = Some(took);
        } else {
            f.ls_cold = Some(took);
        }
    }

    let t0 = Instant::now();
    std::fs::rename(m.path("rename.bin"), m.path("renamed.bin"))?;
    f.rename = Some(rt.block_on(until_durable(t0, "rename", || async {
        size_is(c, "renamed.bin", s.rename).await
            && matches!(
                c.head_object("rename.bin").await,
                Err(ObjectClientError::NoSuchKey { .. })
            )
    }))?);

    let tail = vec![0xA5u8; 4 * KIB as usize];
    let t0 = Instant::now();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(m.path("append.bin"))?;
    file.write_all(&tail)?;
    file.sync_all()?;
    drop(file);
    let want = s.edit + 4 * KIB;
    f.append = Some(rt.block_on(until_durable(t0, "append", || {
        size_is(c, "append.bin", want)
    }))?);

    let before = rt.block_on(c.head_object("middle.bin"))?.etag;
    let t0 = Instant::now();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(m.path("middle.bin"))?;
    file.seek(SeekFrom::Start(s.edit / 2))?;
    file.write_all(&tail)?;
    file.sync_all()?;
    drop(file);
    f.mid_write = Some(rt.block_on(until_durable(t0, "middle write", || async {
        matches!(c.head_object("middle.bin").await, Ok(h) if h.etag != before && h.size == s.edit)
    }))?);
    // Check the edit landed where it should, and nothing else moved.
    let params = GetObjectParams {
        range: Some(s.edit / 2 - 1..s.edit / 2 + 4 * KIB + 1),
        if_match: None,
    };
    let got = rt.block_on(c.get_object("middle.bin", &params))?.body;
    let orig = data(s.edit, 3000);
    let mid = (s.edit / 2) as usize;
    if got[0] != orig[mid - 1]
        || got[1..got.len() - 1] != tail[..]
        || got[got.len() - 1] != orig[mid + 4096]
    {
        bail!("{kind:?}: the middle write is not in the bucket as written");
    }
    m.unmount().context("final unmount")
}

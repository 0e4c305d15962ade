//! The bucketfs benchmark: bucketfs (`cove mount`), s3fs (Debian) and
//! rclone mount (Debian, `--vfs-cache-mode writes`) side by side on one
//! garage on loopback, with the raw S3 client (`bucketfs::s3::S3Client`,
//! parallel parts and ranged GETs) as the ceiling. One run; figures printed
//! as a table. Not a timed test: nothing here asserts a speed.
//!
//! Run: `bench/bucketfs/run.sh` (builds `cove` in release, then this).
//! Env: `COVE_BIN` (the cove binary), `BENCH_SIZE_MIB` (sequential file
//! size, default 1024), `BENCH_SYSTEMS` (comma list of raw,bucketfs,s3fs,rclone),
//! `BENCH_ROUNDS` (interleaved sequential-write rounds, default 3),
//! `BENCH_ROUNDS_ONLY` (set: only those rounds, their figures, no table).
//!
//! Every write is timed until it is *durable*: the object is complete in the
//! bucket (checked with HEAD by the raw client), not when `close` returns,
//! because rclone acknowledges writes seconds before uploading them.

mod mounts;
mod raw;
mod workload;

use std::time::Duration;

use anyhow::{Context, Result};
use bucketfs::s3::{Credentials, S3Client, S3Config};
use cove_testkit::garage::TempGarage;

pub const MIB: u64 = 1024 * 1024;
pub const KIB: u64 = 1024;

/// Sizes of the run.
#[derive(Clone, Copy, Debug)]
pub struct Sizes {
    /// Sequential write/read file.
    pub seq: u64,
    /// First MiB number of the sequential file's data. Each system writes
    /// its own data: garage deduplicates blocks across buckets, so a system
    /// writing bytes an earlier one already stored would skip the server's
    /// own writes and look faster than the systems before it.
    pub seq_seed: u64,
    /// Renamed file.
    pub rename: u64,
    /// File appended to / written in the middle.
    pub edit: u64,
    /// Files in the listed directory.
    pub list_files: usize,
    /// Small files created.
    pub creates: usize,
}

/// One system's figures; `None` where a metric does not apply.
#[derive(Default, Debug, Clone)]
pub struct Figures {
    pub mount: Option<Duration>,
    pub seq_write: Option<Duration>,
    /// The interleaved extra rounds of the sequential write.
    pub seq_write_rounds: Vec<Duration>,
    pub seq_read: Option<Duration>,
    /// Raw client only: the whole object in one GET (one connection).
    pub seq_read_one_stream: Option<Duration>,
    pub creates: Option<Duration>,
    pub ls_cold: Option<Duration>,
    pub ls_warm: Option<Duration>,
    pub rename: Option<Duration>,
    pub append: Option<Duration>,
    pub mid_write: Option<Duration>,
    pub idle_rss_kib: Option<u64>,
    pub peak_rss_kib: Option<u64>,
}

/// A client on `bucket` of `garage` (what the harness uses to prepare and check).
pub fn client(garage: &TempGarage, bucket: &str) -> Result<S3Client> {
    let config = S3Config::new(bucket, garage.region())
        .with_endpoint(garage.endpoint())
        .with_credentials(Credentials::new(garage.key_id(), garage.secret_key()));
    S3Client::new(config).context("s3 client")
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; there are no other arguments.
    let size_mib: u64 = std::env::var("BENCH_SIZE_MIB")
        .ok()
        .map(|s| s.parse().context("BENCH_SIZE_MIB"))
        .transpose()?
        .unwrap_or(1024);
    let sizes = Sizes {
        seq: size_mib * MIB,
        seq_seed: 0,
        rename: (100 * MIB).min(size_mib * MIB),
        edit: (64 * MIB).min(size_mib * MIB),
        list_files: 10_000,
        creates: 1_000,
    };
    let systems: Vec<String> = std::env::var("BENCH_SYSTEMS")
        .unwrap_or_else(|_| "raw,bucketfs,s3fs,rclone".into())
        .split(',')
        .map(str::to_owned)
        .collect();
    let garage = TempGarage::start().context("start garage")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    eprintln!("garage on {}, sizes {sizes:?}", garage.endpoint());

    let rounds: u64 = std::env::var("BENCH_ROUNDS")
        .ok()
        .map(|s| s.parse().context("BENCH_ROUNDS"))
        .transpose()?
        .unwrap_or(3);
    // Each system's own data (`Sizes::seq_seed`): distinct per system and
    // round, and far from the seeds of `prepare`'s files (1000.., 2000..,
    // 3000..).
    let sizes_of = |n: usize, round: u64| Sizes {
        seq_seed: 1_000_000 * (n as u64 + 1) + 10_000 * round,
        ..sizes
    };
    let mut buckets = Vec::new();
    for (n, system) in systems.iter().enumerate() {
        let bucket = garage.create_unique_bucket(system)?;
        let c = client(&garage, &bucket)?;
        rt.block_on(workload::prepare(&c, &sizes_of(n, 0)))?;
        buckets.push((bucket, c));
    }
    // The sequential write, interleaved: round 1 of every system, then
    // round 2, ... Run one system after the other, whichever wrote first
    // was the fastest (raw first: raw 401, bucketfs 275 MiB/s; bucketfs
    // first: bucketfs 340, raw 335); interleaving spreads the server's and
    // the host's drift over every system, and the median is reported.
    let mut seq_rounds: Vec<Vec<Duration>> = vec![Vec::new(); systems.len()];
    for round in 1..=rounds {
        for (n, system) in systems.iter().enumerate() {
            let (bucket, c) = &buckets[n];
            let s = sizes_of(n, round);
            let key = format!("seq-round-{round}.bin");
            let took = match system.as_str() {
                "raw" => rt.block_on(raw::seq_write_round(c, &s, &key))?,
                other => {
                    let kind = mounts::Kind::parse(other)?;
                    workload::seq_write_round(&rt, &garage, bucket, c, kind, &s, &key)?
                }
            };
            eprintln!("seq write round {round} {system}: {took:?}");
            seq_rounds[n].push(took);
        }
    }

    if std::env::var_os("BENCH_ROUNDS_ONLY").is_some() {
        // A quick look at the sequential write alone (no table).
        for (n, system) in systems.iter().enumerate() {
            let rounds = &seq_rounds[n];
            println!(
                "{system}: median {} MiB/s, rounds {:?}",
                rate(sizes.seq, median(rounds)),
                rounds
                    .iter()
                    .map(|d| rate(sizes.seq, Some(*d)))
                    .collect::<Vec<_>>()
            );
        }
        return Ok(());
    }
    let mut results = Vec::new();
    for (n, system) in systems.iter().enumerate() {
        eprintln!("== {system}");
        let sizes = sizes_of(n, 0);
        let (bucket, c) = &buckets[n];
        let mut figures = match system.as_str() {
            "raw" => rt.block_on(raw::run(c, &sizes))?,
            other => {
                let kind = mounts::Kind::parse(other)?;
                workload::run_mounted(&rt, &garage, bucket, c, kind, &sizes)?
            }
        };
        figures.seq_write_rounds = std::mem::take(&mut seq_rounds[n]);
        eprintln!("{figures:?}");
        results.push((system.clone(), figures));
    }
    print_table(&results, &sizes);
    Ok(())
}

fn median(v: &[Duration]) -> Option<Duration> {
    let mut v = v.to_vec();
    v.sort();
    v.get(v.len() / 2).copied()
}

fn secs(d: Option<Duration>) -> String {
    d.map_or("–".into(), |d| format!("{:.3}", d.as_secs_f64()))
}

fn rate(bytes: u64, d: Option<Duration>) -> String {
    d.map_or("–".into(), |d| {
        format!("{:.0}", bytes as f64 / MIB as f64 / d.as_secs_f64())
    })
}

fn mib(k: Option<u64>) -> String {
    k.map_or("–".into(), |k| format!("{:.1}", k as f64 / 1024.0))
}

/// A table row: its label and how to render one system's cell.
type Row<'a> = (String, Box<dyn Fn(&Figures) -> String + 'a>);

fn print_table(results: &[(String, Figures)], s: &Sizes) {
    let rows: Vec<Row<'_>> = vec![
        ("mount, s".into(), Box::new(|f: &Figures| secs(f.mount))),
        (
            format!("seq write {} MiB until durable, MiB/s", s.seq / MIB),
            Box::new(move |f: &Figures| rate(s.seq, f.seq_write)),
        ),
        (
            format!(
                "seq write {} MiB until durable, median of the interleaved rounds, MiB/s",
                s.seq / MIB
            ),
            Box::new(move |f: &Figures| rate(s.seq, median(&f.seq_write_rounds))),
        ),
        (
            format!("seq read {} MiB (fresh mount), MiB/s", s.seq / MIB),
            Box::new(move |f: &Figures| rate(s.seq, f.seq_read)),
        ),
        (
            format!("seq read {} MiB, one GET stream, MiB/s", s.seq / MIB),
            Box::new(move |f: &Figures| rate(s.seq, f.seq_read_one_stream)),
        ),
        (
            format!("{} × 4 KiB creates until durable, s", s.creates),
            Box::new(|f: &Figures| secs(f.creates)),
        ),
        (
            format!("`ls -l` {} objects cold, s", s.list_files),
            Box::new(|f: &Figures| secs(f.ls_cold)),
        ),
        (
            format!("`ls -l` {} objects warm, s", s.list_files),
            Box::new(|f: &Figures| secs(f.ls_warm)),
        ),
        (
            format!("rename {} MiB file until durable, s", s.rename / MIB),
            Box::new(|f: &Figures| secs(f.rename)),
        ),
        (
            format!("append 4 KiB to {} MiB file until durable, s", s.edit / MIB),
            Box::new(|f: &Figures| secs(f.append)),
        ),
        (
            format!("4 KiB write mid {} MiB file until durable, s", s.edit / MIB),
            Box::new(|f: &Figures| secs(f.mid_write)),
        ),
        (
            "idle RSS, MiB".into(),
            Box::new(|f: &Figures| mib(f.idle_rss_kib)),
        ),
        (
            "peak RSS (seq write + read), MiB".into(),
            Box::new(|f: &Figures| mib(f.peak_rss_kib)),
        ),
    ];
    let mut header = "| metric |".to_string();
    let mut rule = "|---|".to_string();
    for (name, _) in results {
        header.push_str(&format!(" {name} |"));
        rule.push_str("---|");
    }
    println!("\n{header}\n{rule}");
    for (label, f) in &rows {
        let mut line = format!("| {label} |");
        for (_, figures) in results {
            line.push_str(&format!(" {} |", f(figures)));
        }
        println!("{line}");
    }
}

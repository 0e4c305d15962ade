//! `test-garage`: starts a throw-away garage on loopback (as the Rust tests
//! do), makes one bucket, prints one JSON line with the endpoint, region,
//! bucket and a key for it, and keeps garage running until its standard
//! input closes. For scripts that need a real S3 server: the SDK
//! conformance suite and the benchmarks.

use std::io::Read;

use anyhow::Result;
use cove_testkit::garage::TempGarage;

fn main() -> Result<()> {
    let garage = TempGarage::start()?;
    let bucket = garage.create_unique_bucket("sdk")?;
    println!(
        "{}",
        serde_json::json!({
            "endpoint": garage.endpoint(),
            "region": garage.region(),
            "bucket": bucket,
            "access_key": garage.key_id(),
            "secret_key": garage.secret_key(),
        })
    );
    // Until the caller closes our stdin (or exits): then garage is killed
    // and its directory removed by the guard.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(garage);
    Ok(())
}

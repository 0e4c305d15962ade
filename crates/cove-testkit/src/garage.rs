//! A garage S3 server on loopback ports in a temp dir, stopped on drop.
//!
//! [`TempGarage::start`] writes a single-node config (replication factor 1,
//! lmdb, RPC/S3/web/admin on free `127.0.0.1` ports, a random RPC secret and
//! admin token), starts `garage server`, then configures it through the admin
//! HTTP API (v2) rather than the `garage` CLI: the CLI opens an RPC session per
//! call, which makes first-start setup take seconds, while the admin API does
//! the same in a few milliseconds. Setup = assign the node a role, apply layout
//! version 1, import a random key allowed to create buckets.
//!
//! The binary comes from `COVE_GARAGE_BIN` (default
//! `/var/cache/cove/garage/bin/garage`, built by `scripts/lib/garage.sh`); a
//! missing binary is an error naming both, never a skipped test.
//!
//! Garage refuses anonymous S3 requests ("Garage does not support anonymous
//! access yet", `garage_api_common::signature::payload`), so public-bucket
//! tests need another server; [`TempGarage::allow_website`] only exposes a
//! bucket on garage's separate static-website endpoint (GET by key, no list).

use std::fs::{self, File};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// Env var naming the garage binary.
pub const GARAGE_BIN_ENV: &str = "COVE_GARAGE_BIN";
/// Where `scripts/lib/garage.sh` installs garage.
pub const DEFAULT_GARAGE_BIN: &str = "/var/cache/cove/garage/bin/garage";
/// The S3 region garage is configured with.
pub const GARAGE_REGION: &str = "garage";

/// How long to wait for garage to answer after a (re)start.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running single-node garage; killed and its directory removed on drop.
pub struct TempGarage {
    dir: tempfile::TempDir,
    bin: PathBuf,
    child: Option<Child>,
    s3_port: u16,
    web_port: u16,
    admin_port: u16,
    admin_token: String,
    key_id: String,
    secret_key: String,
    agent: ureq::Agent,
}

impl TempGarage {
    /// Starts a fresh garage with one key (see [`Self::key_id`]) and no buckets.
    pub fn start() -> Result<Self> {
        let bin = garage_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("cove-garage-")
            .tempdir()
            .context("temp dir for garage")?;
        let ports = free_ports(4)?;
        let (s3_port, rpc_port, web_port, admin_port) = (ports[0], ports[1], ports[2], ports[3]);
        let admin_token = random_hex(32);
        let config = format!(
            r#"metadata_dir = "{meta}"
data_dir = "{data}"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:{rpc_port}"
rpc_public_addr = "127.0.0.1:{rpc_port}"
rpc_secret = "{rpc_secret}"

[s3_api]
s3_region = "{GARAGE_REGION}"
api_bind_addr = "127.0.0.1:{s3_port}"
root_domain = ".s3.garage.localhost"

[s3_web]
bind_addr = "127.0.0.1:{web_port}"
root_domain = ".web.garage.localhost"
index = "index.html"

[admin]
api_bind_addr = "127.0.0.1:{admin_port}"
admin_token = "{admin_token}"
"#,
            meta = dir.path().join("meta").display(),
            data = dir.path().join("data").display(),
            rpc_secret = random_hex(32),
        );
        fs::write(dir.path().join("garage.toml"), config).context("write garage.toml")?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut garage = TempGarage {
            dir,
            bin,
            child: None,
            s3_port,
            web_port,
            admin_port,
            admin_token,
            key_id: format!("GK{}", random_hex(12)),
            secret_key: random_hex(32),
            agent,
        };
        garage.spawn()?;
        garage.initialise()?;
        Ok(garage)
    }

    /// `http://127.0.0.1:PORT`, the S3 API endpoint (path-style addressing).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.s3_port)
    }

    /// The S3 API port.
    pub fn s3_port(&self) -> u16 {
        self.s3_port
    }

    /// The region garage signs for.
    pub fn region(&self) -> &str {
        GARAGE_REGION
    }

    /// Access key id of the key allowed on every bucket made by [`Self::create_bucket`].
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Secret of [`Self::key_id`].
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// The garage process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The server log (stdout and stderr of every start), for failure messages.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("garage.log")).unwrap_or_default()
    }

    /// Creates bucket `name` (a global alias) with read, write and owner rights
    /// for the test key.
    pub fn create_bucket(&self, name: &str) -> Result<()> {
        let info = self.admin("CreateBucket", json!({ "globalAlias": name }))?;
        let id = info["id"]
            .as_str()
            .ok_or_else(|| anyhow!("CreateBucket answered without an id: {info}"))?;
        self.admin(
            "AllowBucketKey",
            json!({
                "bucketId": id,
                "accessKeyId": self.key_id,
                "permissions": { "read": true, "write": true, "owner": true },
            }),
        )?;
        Ok(())
    }

    /// Creates another access key and returns its id and secret.
    pub fn create_key(&self, name: &str) -> Result<(String, String)> {
        let info = self.admin("CreateKey", json!({ "name": name }))?;
        let id = info["accessKeyId"].as_str();
        let secret = info["secretAccessKey"].as_str();
        match (id, secret) {
            (Some(id), Some(secret)) => Ok((id.to_owned(), secret.to_owned())),
            _ => bail!("CreateKey answered without a key: {info}"),
        }
    }

    /// Gives `key_id` read and write rights on `bucket`.
    pub fn allow_key(&self, bucket: &str, key_id: &str) -> Result<()> {
        let info = self.admin_get(&format!("GetBucketInfo?globalAlias={bucket}"))?;
        let id = info["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no bucket {bucket}"))?;
        self.admin(
            "AllowBucketKey",
            json!({
                "bucketId": id,
                "accessKeyId": key_id,
                "permissions": { "read": true, "write": true, "owner": false },
            }),
        )?;
        Ok(())
    }

    /// Deletes an access key: requests signed with it fail from now on.
    pub fn delete_key(&self, key_id: &str) -> Result<()> {
        self.admin(&format!("DeleteKey?id={key_id}"), json!({}))?;
        Ok(())
    }

    /// Creates a bucket named `<prefix>-<random>` (valid S3 name) and returns the name.
    pub fn create_unique_bucket(&self, prefix: &str) -> Result<String> {
        let name = format!("{prefix}-{}", random_hex(6));
        self.create_bucket(&name)?;
        Ok(name)
    }

    /// Serves `bucket` on garage's static-website endpoint (unsigned GET of a
    /// key at `http://127.0.0.1:WEB_PORT/key` with `Host: <bucket>.web.garage.localhost`).
    /// This is not anonymous S3 access: listing stays signed-only.
    pub fn allow_website(&self, bucket: &str) -> Result<()> {
        let info = self.admin_get(&format!("GetBucketInfo?globalAlias={bucket}"))?;
        let id = info["id"]
            .as_str()
            .ok_or_else(|| anyhow!("no bucket {bucket}"))?;
        self.admin(
            &format!("UpdateBucket?id={id}"),
            json!({ "websiteAccess": { "enabled": true, "indexDocument": "index.html" } }),
        )?;
        Ok(())
    }

    /// The static-website port (see [`Self::allow_website`]).
    pub fn web_port(&self) -> u16 {
        self.web_port
    }

    /// SIGKILLs garage (a crash: nothing is flushed) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts garage again on the same ports and data (after [`Self::kill`];
    /// kills a running one first) and waits until S3 requests can be served.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()?;
        self.wait_healthy()
    }

    fn spawn(&mut self) -> Result<()> {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.dir.path().join("garage.log"))
            .context("open garage.log")?;
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(self.dir.path().join("garage.toml"))
            .arg("server")
            .env("RUST_LOG", "garage=warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("dup garage.log")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", self.bin.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// First start: layout and key, retried until garage has its RPC and
    /// tables up (a few ms after the admin port opens).
    fn initialise(&mut self) -> Result<()> {
        let status = self.until_ok("GetClusterStatus", || self.admin_get("GetClusterStatus"))?;
        let node = status["nodes"][0]["id"]
            .as_str()
            .ok_or_else(|| anyhow!("GetClusterStatus without a node id: {status}"))?
            .to_owned();
        let role = json!({ "roles": [{ "id": node, "zone": "dc1", "capacity": 20u64 << 30, "tags": [] }] });
        self.admin("UpdateClusterLayout", role)?;
        self.admin("ApplyClusterLayout", json!({ "version": 1 }))?;
        let import = json!({ "accessKeyId": self.key_id, "secretAccessKey": self.secret_key, "name": "test" });
        self.until_ok("ImportKey", || self.admin("ImportKey", import.clone()))?;
        self.admin(
            &format!("UpdateKey?id={}", self.key_id),
            json!({ "allow": { "createBucket": true } }),
        )?;
        Ok(())
    }

    fn wait_healthy(&self) -> Result<()> {
        self.until_ok("health", || {
            let resp = self
                .agent
                .get(format!("http://127.0.0.1:{}/health", self.admin_port))
                .call()?;
            if resp.status().is_success() {
                Ok(Value::Null)
            } else {
                bail!("health answered {}", resp.status())
            }
        })?;
        Ok(())
    }

    fn until_ok(&self, what: &str, mut f: impl FnMut() -> Result<Value>) -> Result<Value> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match f() {
                Ok(v) => return Ok(v),
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    return Err(e.context(format!(
                        "garage did not answer {what} within {START_TIMEOUT:?}; log:\n{}",
                        self.log()
                    )))
                }
            }
        }
    }

    fn admin_get(&self, call: &str) -> Result<Value> {
        let resp = self
            .agent
            .get(format!("http://127.0.0.1:{}/v2/{call}", self.admin_port))
            .header("Authorization", &format!("Bearer {}", self.admin_token))
            .call()?;
        read_json(call, resp)
    }

    fn admin(&self, call: &str, body: Value) -> Result<Value> {
        let resp = self
            .agent
            .post(format!("http://127.0.0.1:{}/v2/{call}", self.admin_port))
            .header("Authorization", &format!("Bearer {}", self.admin_token))
            .send_json(body)?;
        read_json(call, resp)
    }

    /// The directory holding config, metadata, data and the log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for TempGarage {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_json(call: &str, resp: ureq::http::Response<ureq::Body>) -> Result<Value> {
    let status = resp.status();
    let mut text = String::new();
    resp.into_body()
        .into_reader()
        .read_to_string(&mut text)
        .with_context(|| format!("read {call} answer"))?;
    if !status.is_success() {
        bail!("garage admin {call} answered {status}: {text}");
    }
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("parse {call} answer: {text}"))
}

/// The garage binary: `COVE_GARAGE_BIN` or the cache default; an error says
/// how to get it.
pub fn garage_bin() -> Result<PathBuf> {
    let bin = std::env::var_os(GARAGE_BIN_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_GARAGE_BIN));
    if !bin.is_file() {
        bail!(
            "garage binary not found at {} (set {GARAGE_BIN_ENV}, or run scripts/lib/garage.sh to build it)",
            bin.display()
        );
    }
    Ok(bin)
}

/// `n` distinct free TCP ports on 127.0.0.1 (all held open until all are chosen).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()
        .context("bind a free port")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

/// `bytes` random bytes as lowercase hex.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS random source works on Linux");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

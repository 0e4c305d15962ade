//! Bring your own S3, end to end: a live `cove serve`, real runc sandboxes,
//! bucketfs mounts on the host and a real S3 server (garage) on loopback,
//! read and written behind the mount's back with a plain S3 client.

mod common;
#[path = "../../bucketfs/tests/common/garage_moto.rs"]
mod garage_moto;

use anyhow::{Context, Result};
use bucketfs::client::{GetObjectParams, ObjectClient, ObjectClientError, PutObjectParams};
use bucketfs::s3::{Credentials, S3Client, S3Config};
use bytes::Bytes;
use common::{Api, TempServer};
use cove_testkit::garage::TempGarage;
use reqwest::Method;
use serde_json::{json, Value};

/// A bucket read and written directly (not through cove).
struct Bucket {
    client: S3Client,
}

impl Bucket {
    fn on(garage: &TempGarage, name: &str) -> Result<Self> {
        let config = S3Config::new(name, garage.region())
            .with_endpoint(garage.endpoint())
            .with_credentials(Credentials::new(garage.key_id(), garage.secret_key()));
        Ok(Self {
            client: S3Client::new(config)?,
        })
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self
            .client
            .get_object(key, &GetObjectParams::default())
            .await
        {
            Ok(r) => Ok(Some(r.body.to_vec())),
            Err(ObjectClientError::NoSuchKey { .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("get {key}")),
        }
    }

    async fn put(&self, key: &str, body: &[u8]) -> Result<()> {
        self.client
            .put_object(
                key,
                Bytes::copy_from_slice(body),
                &PutObjectParams::default(),
            )
            .await
            .with_context(|| format!("put {key}"))?;
        Ok(())
    }
}

fn disk_body(name: &str, garage: &TempGarage, bucket: &str) -> Value {
    json!({
        "name": name, "kind": "s3",
        "config": {"bucket": bucket, "endpoint": garage.endpoint(), "region": garage.region(), "use_path_style": true},
        "credentials": {"access_key": garage.key_id(), "secret_key": garage.secret_key()}
    })
}

async fn register(api: &Api, body: Value) -> Result<Value> {
    api.send(Method::POST, "/v1/disks", Some(body))
        .await?
        .data()
}

async fn fail_code(
    api: &Api,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, String)> {
    let r = api.send(method, path, body).await?;
    Ok((r.status.as_u16(), r.fail_code()?))
}

fn id(v: &Value) -> String {
    v["id"].as_str().unwrap_or_default().to_owned()
}

/// Random bytes as lowercase hex (printable, so they cross exec's JSON).
fn random_hex(len: usize) -> String {
    let mut buf = vec![0u8; len / 2];
    common::PseudoRandom::new(len as u64 * 7919).fill(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts a process in the sandbox that opens `path`, waits `delay` seconds,
/// writes `text` (into the kernel: no close, no fsync) and keeps the file
/// open. One process and no children: a child inheriting the descriptor
/// would close a copy on exit, and that close alone uploads the file.
async fn hold_open(api: &Api, sid: &str, path: &str, text: &str, delay: u32) -> Result<()> {
    let script = format!(
        "import os, time\nfd = os.open({path:?}, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)\ntime.sleep({delay})\nos.write(fd, {text:?}.encode())\ntime.sleep(600)\n"
    );
    let r = api
        .exec_body(sid, json!({"cmd": "bash", "args": ["-c", "setsid python3 -c \"$(cat)\" >/dev/null 2>&1 </dev/null & sleep 0.5"], "stdin": script}))
        .await?;
    anyhow::ensure!(r.exit_code == 0, "starting the writer failed: {r:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn registration_probes_the_bucket_and_says_what_is_wrong() -> Result<()> {
    let garage = TempGarage::start()?;
    let bucket = garage.create_unique_bucket("reg")?;
    let mut server = TempServer::start().await?;
    let api = server.user("reg")?;

    let d = register(&api, disk_body("good", &garage, &bucket)).await?;
    assert!(id(&d).starts_with("disk_"));

    // Nothing listens on this loopback port: connection refused.
    let refused = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut typo = disk_body("typo", &garage, &bucket);
    typo["config"]["endpoint"] = json!(format!("http://127.0.0.1:{refused}"));
    let (status, code) = fail_code(&api, Method::POST, "/v1/disks", Some(typo)).await?;
    assert_eq!((status, code.as_str()), (400, "endpoint_unreachable"));

    let mut bad_key = disk_body("badkey", &garage, &bucket);
    bad_key["credentials"]["secret_key"] = json!("0".repeat(64));
    let (status, code) = fail_code(&api, Method::POST, "/v1/disks", Some(bad_key)).await?;
    assert_eq!((status, code.as_str()), (400, "access_denied"));

    let missing = disk_body("missing", &garage, "no-such-bucket-here");
    let (status, code) = fail_code(&api, Method::POST, "/v1/disks", Some(missing)).await?;
    assert_eq!(status, 400);
    // Garage answers a key without rights on a bucket it does not know
    // with 403 or 404 depending on the key; both say the bucket cannot be used.
    assert!(
        code == "bucket_not_found" || code == "access_denied",
        "{code}"
    );

    // Accepts and never answers: a timeout, not a hang.
    let silent = std::net::TcpListener::bind("127.0.0.1:0")?;
    let mut slow = disk_body("slow", &garage, &bucket);
    slow["config"]["endpoint"] = json!(format!("http://{}", silent.local_addr()?));
    let (status, code) = fail_code(&api, Method::POST, "/v1/disks", Some(slow)).await?;
    assert_eq!((status, code.as_str()), (400, "endpoint_timeout"));

    let list = api.get("/v1/disks").await?;
    assert_eq!(
        list["pagination"]["total"], 1,
        "only the good disk is stored: {list}"
    );
    drop(silent);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disk_attached_at_create_is_the_bucket_byte_for_byte_both_ways() -> Result<()> {
    let garage = TempGarage::start()?;
    let name = garage.create_unique_bucket("rw")?;
    let bucket = Bucket::on(&garage, &name)?;
    let mut server = TempServer::start().await?;
    let api = server.user("rw")?;
    register(&api, disk_body("data", &garage, &name)).await?;
    let sb = api
        .create(json!({"disks": [{"disk_id": "data", "mount_path": "/mnt/data"}]}))
        .await?;
    let sid = id(&sb);

    // Sandbox → bucket.
    let payload = random_hex(300_000);
    let w = api
        .exec_body(&sid, json!({"cmd": "bash", "args": ["-c", "cat > /mnt/data/from-sandbox.txt"], "stdin": payload}))
        .await?;
    assert_eq!(w.exit_code, 0, "{w:?}");
    assert_eq!(
        bucket.get("from-sandbox.txt").await?.as_deref(),
        Some(payload.as_bytes())
    );

    // Bucket → sandbox (a new name: no cache to wait out).
    bucket
        .put("dir/from-s3.txt", b"written by another client")
        .await?;
    let r = api
        .sh(
            &sid,
            "cat /mnt/data/dir/from-s3.txt; stat -c %U /mnt/data/from-sandbox.txt",
        )
        .await?;
    assert_eq!(r.stdout, "written by another clientroot\n", "{r:?}");

    let list = api.get(&format!("/v1/sandboxes/{sid}/disks")).await?;
    assert_eq!(list["data"][0]["mount_status"], "mounted", "{list}");
    assert_eq!(list["data"][0]["mount_path"], "/mnt/data");

    // Destroy with a write still open: a process holds the file open.
    hold_open(&api, &sid, "/mnt/data/pending.txt", "kept-at-destroy", 0).await?;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let before = bucket.get("pending.txt").await?;
    assert!(
        before.is_none_or(|b| b.is_empty()),
        "written but not closed: not in the bucket yet"
    );
    api.destroy(&sid).await?;
    assert_eq!(
        bucket.get("pending.txt").await?.as_deref(),
        Some(&b"kept-at-destroy"[..])
    );
    // The disk can go now; the bucket is untouched.
    api.send(Method::DELETE, "/v1/disks/data", None)
        .await?
        .data()?;
    assert!(bucket.get("from-sandbox.txt").await?.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn live_attach_sub_path_read_only_sharing_and_detach() -> Result<()> {
    let garage = TempGarage::start()?;
    let name = garage.create_unique_bucket("live")?;
    let bucket = Bucket::on(&garage, &name)?;
    bucket.put("outside.txt", b"not under the sub path").await?;
    bucket.put("proj/inside.txt", b"under the sub path").await?;
    let mut server = TempServer::start().await?;
    let api = server.user("live")?;
    let disk = register(&api, disk_body("data", &garage, &name)).await?;
    let did = id(&disk);
    let a = id(&api.create(json!({})).await?);
    let b = id(&api.create(json!({})).await?);

    let r = api
        .send(
            Method::POST,
            &format!("/v1/sandboxes/{a}/disks"),
            Some(json!({"disk_id": did, "mount_path": "/work/proj", "sub_path": "proj"})),
        )
        .await?
        .data()?;
    assert_eq!((r["ok"].clone(), r["id"].clone()), (json!(true), json!(a)));
    // Usable as soon as the call returned.
    let r = api
        .sh(
            &a,
            "cat /work/proj/inside.txt; ls /work/proj; cat /work/proj/../outside.txt 2>&1 || true",
        )
        .await?;
    assert!(
        r.stdout.starts_with("under the sub pathinside.txt\n"),
        "{r:?}"
    );
    assert!(!r.stdout.contains("not under"), "{r:?}");

    // Read-only in sandbox b, same disk: every write is EROFS.
    api.send(
        Method::POST,
        &format!("/v1/sandboxes/{b}/disks"),
        Some(json!({"disk_id": "data", "mount_path": "/ro", "read_only": true})),
    )
    .await?
    .data()?;
    let r = api
        .sh(&b, "cat /ro/outside.txt; echo x > /ro/new.txt")
        .await?;
    assert_ne!(r.exit_code, 0);
    assert!(r.stderr.contains("Read-only file system"), "{r:?}");
    assert_eq!(r.stdout, "not under the sub path");

    // Two sandboxes share the disk: a's write is in the bucket and b sees it.
    api.sh(&a, "printf shared > /work/proj/shared.txt").await?;
    assert_eq!(
        bucket.get("proj/shared.txt").await?.as_deref(),
        Some(&b"shared"[..])
    );
    let r = api.sh(&b, "cat /ro/proj/shared.txt").await?;
    assert_eq!(r.stdout, "shared");

    // Detach with a write pending in a file still open: flushed first.
    hold_open(&api, &a, "/work/proj/open.txt", "pending-at-detach", 0).await?;
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let before = bucket.get("proj/open.txt").await?;
    assert!(
        before.is_none_or(|b| b.is_empty()),
        "written but not closed: not in the bucket yet"
    );
    let r = api
        .send(
            Method::DELETE,
            &format!("/v1/sandboxes/{a}/disks/{did}?mount_path=/work/proj"),
            None,
        )
        .await?
        .data()?;
    assert_eq!(r["detached"], true);
    assert_eq!(
        bucket.get("proj/open.txt").await?.as_deref(),
        Some(&b"pending-at-detach"[..])
    );
    let list = api.get(&format!("/v1/sandboxes/{a}/disks")).await?;
    assert_eq!(list["pagination"]["total"], 0);

    // PATCH remounts b's attachment writable with a sub path.
    let r = api
        .send(
            Method::PATCH,
            &format!("/v1/sandboxes/{b}/disks/{did}?mount_path=/ro"),
            Some(json!({"read_only": false, "sub_path": "proj"})),
        )
        .await?
        .data()?;
    assert_eq!(
        (r["read_only"].clone(), r["sub_path"].clone()),
        (json!(false), json!("proj"))
    );
    let r = api
        .sh(&b, "ls /ro && printf patched > /ro/patched.txt")
        .await?;
    assert_eq!(r.exit_code, 0, "{r:?}");
    assert_eq!(
        bucket.get("proj/patched.txt").await?.as_deref(),
        Some(&b"patched"[..])
    );

    let (status, code) = fail_code(&api, Method::DELETE, "/v1/disks/data", None).await?;
    assert_eq!((status, code.as_str()), (409, "disk_in_use"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn detach_while_the_bucket_is_down_keeps_the_data_until_it_is_back() -> Result<()> {
    let mut garage = TempGarage::start()?;
    let name = garage.create_unique_bucket("down")?;
    let bucket = Bucket::on(&garage, &name)?;
    let mut server = TempServer::start().await?;
    let api = server.user("down")?;
    let disk = register(&api, disk_body("data", &garage, &name)).await?;
    let did = id(&disk);
    let sid = id(&api
        .create(json!({"disks": [{"disk_id": "data", "mount_path": "/data"}]}))
        .await?);

    // A process opens the file while the bucket is up and writes to it
    // once the bucket is down, keeping it open: the data is only staged.
    hold_open(&api, &sid, "/data/kept.txt", "survives the outage", 2).await?;
    garage.kill();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let list = api.get(&format!("/v1/sandboxes/{sid}/disks")).await?;
    assert_eq!(list["data"][0]["mount_status"], "error", "{list}");
    assert!(
        list["data"][0]["mount_error"]
            .as_str()
            .unwrap_or("")
            .contains("connect"),
        "{list}"
    );
    let uri = format!("/v1/sandboxes/{sid}/disks/{did}?mount_path=/data");
    let (status, code) = fail_code(&api, Method::DELETE, &uri, None).await?;
    assert_eq!((status, code.as_str()), (409, "flush_failed"));
    let r = api
        .sh(&sid, "mountpoint -q /data && echo still-mounted")
        .await?;
    assert_eq!(r.stdout, "still-mounted\n");

    garage.restart()?;
    api.send(Method::DELETE, &uri, None).await?.data()?;
    assert_eq!(
        bucket.get("kept.txt").await?.as_deref(),
        Some(&b"survives the outage"[..])
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn rotated_credentials_reach_the_running_mount() -> Result<()> {
    let garage = TempGarage::start()?;
    let name = garage.create_unique_bucket("rot")?;
    let bucket = Bucket::on(&garage, &name)?;
    let (old_id, old_secret) = garage.create_key("old")?;
    garage.allow_key(&name, &old_id)?;
    let mut server = TempServer::start().await?;
    let api = server.user("rot")?;
    let mut body = disk_body("data", &garage, &name);
    body["credentials"] = json!({"access_key": old_id, "secret_key": old_secret});
    register(&api, body).await?;
    let sid = id(&api
        .create(json!({"disks": [{"disk_id": "data", "mount_path": "/data"}]}))
        .await?);
    api.sh(&sid, "printf one > /data/one.txt").await?;

    let (new_id, new_secret) = garage.create_key("new")?;
    garage.allow_key(&name, &new_id)?;
    let r = api
        .send(
            Method::PATCH,
            "/v1/disks/data",
            Some(json!({"credentials": {"access_key": new_id, "secret_key": new_secret}})),
        )
        .await?
        .data()?;
    assert!(!r.to_string().contains(&new_secret));
    garage.delete_key(&old_id)?;
    let r = api
        .sh(&sid, "printf two > /data/two.txt && cat /data/one.txt")
        .await?;
    assert_eq!((r.exit_code, r.stdout.as_str()), (0, "one"), "{r:?}");
    assert_eq!(bucket.get("two.txt").await?.as_deref(), Some(&b"two"[..]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_public_bucket_mounts_without_credentials() -> Result<()> {
    let moto = garage_moto::TempMoto::start();
    moto.create_bucket("public-data", true);
    // The owner writes (signed); the disk reads without any credentials.
    let owner = S3Client::new(
        S3Config::new("public-data", "us-east-1")
            .with_endpoint(moto.endpoint())
            .with_credentials(Credentials::new("owner", "owner-secret")),
    )?;
    owner
        .put_object(
            "hello.txt",
            Bytes::from_static(b"hello public"),
            &PutObjectParams::default(),
        )
        .await?;
    let mut server = TempServer::start().await?;
    let api = server.user("pub")?;
    register(
        &api,
        json!({"name": "pub", "kind": "s3", "config": {"bucket": "public-data", "endpoint": moto.endpoint(), "use_path_style": true}}),
    )
    .await?;
    let sid = id(&api
        .create(json!({"disks": [{"disk_id": "pub", "mount_path": "/pub", "read_only": true}]}))
        .await?);
    let r = api.sh(&sid, "cat /pub/hello.txt").await?;
    assert_eq!(r.stdout, "hello public", "{r:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_of_the_server_and_a_restart_bring_the_mounts_back() -> Result<()> {
    let garage = TempGarage::start()?;
    let name = garage.create_unique_bucket("crash")?;
    let bucket = Bucket::on(&garage, &name)?;
    let mut server = TempServer::start().await?;
    let api = server.user("crash")?;
    let key = api.key().to_owned();
    register(&api, disk_body("data", &garage, &name)).await?;
    let sid = id(&api
        .create(json!({"disks": [{"disk_id": "data", "mount_path": "/boot-disk"}]}))
        .await?);
    api.send(
        Method::POST,
        &format!("/v1/sandboxes/{sid}/disks"),
        Some(json!({"disk_id": "data", "mount_path": "/live-disk"})),
    )
    .await?
    .data()?;
    api.sh(&sid, "printf before > /boot-disk/before.txt")
        .await?;

    server.restart().await?;
    let api = server.api_for(&key);
    for path in ["/boot-disk", "/live-disk"] {
        let r = api
            .sh(
                &sid,
                &format!(
                    "cat {path}/before.txt && printf after > {path}/after-{}.txt",
                    &path[1..]
                ),
            )
            .await?;
        assert_eq!(
            (r.exit_code, r.stdout.as_str()),
            (0, "before"),
            "{path}: {r:?}"
        );
    }
    assert_eq!(
        bucket.get("after-boot-disk.txt").await?.as_deref(),
        Some(&b"after"[..])
    );
    assert_eq!(
        bucket.get("after-live-disk.txt").await?.as_deref(),
        Some(&b"after"[..])
    );
    let list = api.get(&format!("/v1/sandboxes/{sid}/disks")).await?;
    for d in list["data"].as_array().context("list")? {
        assert_eq!(d["mount_status"], "mounted", "{list}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn symlinks_and_dot_dot_in_the_bucket_resolve_inside_the_sandbox() -> Result<()> {
    let garage = TempGarage::start()?;
    let name = garage.create_unique_bucket("esc")?;
    let bucket = Bucket::on(&garage, &name)?;
    bucket.put("escape.txt", b"outside the sub path").await?;
    let mut server = TempServer::start().await?;
    let api = server.user("esc")?;
    register(&api, disk_body("data", &garage, &name)).await?;
    let sid = id(&api
        .create(json!({"disks": [{"disk_id": "data", "mount_path": "/d", "sub_path": "sub"}]}))
        .await?);
    // A symlink to an absolute path resolves in the sandbox's own tree: it
    // reaches a file that exists only inside the sandbox (not on the host).
    let marker = "/root/only-inside-the-sandbox";
    assert!(!std::path::Path::new(marker).exists());
    let r = api
        .sh(&sid, &format!("echo inside-marker > {marker} && ln -s {marker} /d/link && cat /d/link && ls -a /d && readlink /d/link && cat /d/../escape.txt 2>/dev/null; true"))
        .await?;
    assert_eq!(r.exit_code, 0, "{r:?}");
    assert_eq!(
        r.stdout,
        format!("inside-marker\n.\n..\nlink\n{marker}\n"),
        "{r:?}"
    );
    // The symlink is an object in the bucket, under the sub path, with its target.
    assert!(bucket.get("sub/link").await?.is_some());
    // Attaching over a symlink the sandbox planted is refused.
    api.sh(&sid, "ln -s /etc /planted").await?;
    let (status, code) = fail_code(
        &api,
        Method::POST,
        &format!("/v1/sandboxes/{sid}/disks"),
        Some(json!({"disk_id": "data", "mount_path": "/planted/x"})),
    )
    .await?;
    assert_eq!((status, code.as_str()), (400, "invalid_path"));
    Ok(())
}

/// Searches the sandbox for the two strings read from stdin: every process's
/// command line and environment, the mount tables, the exec environment and
/// every readable file. Only shell builtins see the strings, so the search
/// itself never puts them in a command line or a file.
const SEARCH: &str = r#"read -r A; read -r S
for f in /proc/[0-9]*/cmdline /proc/[0-9]*/environ /proc/self/mountinfo /proc/mounts; do
  c=$(tr '\0' ' ' < "$f" 2>/dev/null)
  [[ $c == *"$A"* || $c == *"$S"* ]] && echo "HIT $f"
done
e=$(env); [[ $e == *"$A"* || $e == *"$S"* ]] && echo "HIT env"
grep -rlaF -D skip -f <(printf '%s\n' "$A" "$S") / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 2>/dev/null | sed 's/^/HIT /'
echo searched"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_bucket_credentials_are_nowhere_the_sandbox_or_the_api_can_show() -> Result<()> {
    let garage = TempGarage::start()?;
    let name = garage.create_unique_bucket("sec")?;
    let mut server = TempServer::start().await?;
    let api = server.user("sec")?;
    let (ak, sk) = (garage.key_id().to_owned(), garage.secret_key().to_owned());
    let mut responses = Vec::new();
    let reg = api
        .send(
            Method::POST,
            "/v1/disks",
            Some(disk_body("data", &garage, &name)),
        )
        .await?;
    responses.push(reg.text());
    let sb = api
        .create(json!({"disks": [{"disk_id": "data", "mount_path": "/boot"}]}))
        .await?;
    responses.push(sb.to_string());
    let sid = id(&sb);
    let live = api
        .send(
            Method::POST,
            &format!("/v1/sandboxes/{sid}/disks"),
            Some(json!({"disk_id": "data", "mount_path": "/live"})),
        )
        .await?;
    responses.push(live.text());
    api.sh(&sid, "echo data > /boot/a.txt && cat /live/a.txt")
        .await?;
    for path in [
        "/v1/disks",
        "/v1/disks/data",
        &format!("/v1/sandboxes/{sid}/disks"),
        &format!("/v1/sandboxes/{sid}"),
    ] {
        responses.push(api.send(Method::GET, path, None).await?.text());
    }
    let rotated = api
        .send(
            Method::PATCH,
            "/v1/disks/data",
            Some(json!({"credentials": {"access_key": ak, "secret_key": sk}})),
        )
        .await?;
    responses.push(rotated.text());
    for r in &responses {
        assert!(
            !r.contains(&ak) && !r.contains(&sk),
            "a response shows a credential: {r}"
        );
    }

    let found = api
        .exec_body(
            &sid,
            json!({"cmd": "bash", "args": ["-c", SEARCH], "stdin": format!("{ak}\n{sk}\n")}),
        )
        .await?;
    assert!(
        found.stdout.ends_with("searched\n"),
        "the search did not finish: {found:?}"
    );
    assert!(
        !found.stdout.contains("HIT"),
        "credentials visible in the sandbox: {}",
        found.stdout
    );
    // The search is not blind: the same search finds a planted copy.
    api.exec_body(&sid, json!({"cmd": "bash", "args": ["-c", "read -r A; printf '%s' \"$A\" > /root/planted"], "stdin": format!("{ak}\n")}))
        .await?;
    let planted = api
        .exec_body(
            &sid,
            json!({"cmd": "bash", "args": ["-c", SEARCH], "stdin": format!("{ak}\n{sk}\n")}),
        )
        .await?;
    assert!(planted.stdout.contains("HIT /root/planted"), "{planted:?}");

    let log = std::fs::read_to_string(server.state_dir().with_extension("log")).unwrap_or_default();
    assert!(!log.is_empty(), "the server log is empty");
    assert!(
        !log.contains(&ak) && !log.contains(&sk),
        "the server log shows a credential"
    );
    // Nor on a command line on the host.
    for entry in std::fs::read_dir("/proc")?.flatten() {
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd);
            assert!(!cmd.contains(&sk), "a host command line shows the secret");
        }
    }
    Ok(())
}

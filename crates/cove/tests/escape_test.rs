//! Escape attempts against a live `cove serve`, each proven harmless:
//! the files API with `..`, absolute symlinks and `/proc/self/root` tricks
//! aimed at a host file with unique content; reading another sandbox's files.
//! Resource exhaustion (fork bomb, memory, disk) is in `limits_test.rs`.

mod common;

use std::path::{Path, PathBuf};

use common::{unique, Api, TempServer};
use serde_json::json;

/// A host directory with one file of unique content, checked unchanged at
/// the end; lives outside any state dir, like any host file would.
struct HostSecret {
    dir: tempfile::TempDir,
    content: String,
}

impl HostSecret {
    fn new() -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("cove-escape-")
            .tempdir_in("/tmp")?;
        let content = format!("HOST-SECRET-{}", unique("x"));
        std::fs::write(dir.path().join("secret.txt"), &content)?;
        Ok(Self { dir, content })
    }

    fn file(&self) -> String {
        self.dir
            .path()
            .join("secret.txt")
            .to_string_lossy()
            .into_owned()
    }

    fn dir(&self) -> String {
        self.dir.path().to_string_lossy().into_owned()
    }

    /// The host file is intact and nothing was added next to it.
    fn assert_untouched(&self) {
        let names: Vec<_> = std::fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["secret.txt"], "a file appeared in the host dir");
        assert_eq!(std::fs::read_to_string(self.file()).unwrap(), self.content);
    }
}

/// Path spellings that reach `target` (a host path) if the server resolved
/// sandbox paths on the host, or followed `..` above the sandbox root.
fn tricks(target: &str, serve_pid: u32) -> Vec<String> {
    let me = std::process::id();
    vec![
        target.to_string(),
        format!("/../../../../../../..{target}"),
        format!("/root/../../../../../..{target}"),
        format!("/proc/self/root{target}"),
        format!("/proc/1/root{target}"),
        format!("/proc/self/cwd/../../../../..{target}"),
        format!("/proc/1/root/../../../..{target}"),
        format!("/proc/{serve_pid}/root{target}"),
        format!("/proc/{me}/root{target}"),
        format!("/proc/thread-self/root{target}"),
        format!(
            "/root/abs-dir-link/{}",
            Path::new(target).file_name().unwrap().to_string_lossy()
        ),
        "/root/abs-link".to_string(),
        "/root/rel-link".to_string(),
        format!(
            "/root/proc-link/{}",
            Path::new(target).file_name().unwrap().to_string_lossy()
        ),
        format!("/root/slash-link{target}"),
        format!("/root/selfroot-link{target}"),
    ]
}

/// Symlinks planted inside the sandbox, all pointing at host locations.
async fn plant_links(api: &Api, id: &str, file: &str, dir: &str) -> anyhow::Result<()> {
    let script = format!(
        "set -e; cd /root; \
         ln -s {file} abs-link; ln -s {dir} abs-dir-link; \
         ln -s ../../../../../../../..{file} rel-link; \
         ln -s /proc/1/root{dir} proc-link; ln -s / slash-link; \
         ln -s /proc/self/root selfroot-link; ls -l /root"
    );
    let out = api.sh(id, &script).await?;
    assert_eq!(out.exit_code, 0, "planting links: {}", out.stderr);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn files_api_never_reaches_host_files() -> anyhow::Result<()> {
    let secret = HostSecret::new()?;
    let mut server = TempServer::start().await?;
    let api = server.user("attacker")?;
    let id = api.create(json!({})).await?["id"]
        .as_str()
        .unwrap()
        .to_string();
    plant_links(&api, &id, &secret.file(), &secret.dir()).await?;
    let serve_pid = server.pid();

    for path in tricks(&secret.file(), serve_pid) {
        let r = api.download(&id, &path).await?;
        assert!(
            !r.text().contains(&secret.content),
            "GET {path} returned the host file"
        );
        assert!(
            r.status == 404 || r.status == 400,
            "GET {path}: {} {}",
            r.status,
            r.text()
        );
    }
    // Writes: through each spelling, at the host file and next to it.
    let pwned = format!("PWNED-{}", unique("w"));
    let new_file = format!("{}/pwned.txt", secret.dir());
    for path in tricks(&secret.file(), serve_pid)
        .into_iter()
        .chain(tricks(&new_file, serve_pid))
    {
        let r = api.upload(&id, &path, pwned.clone()).await?;
        assert!(
            r.status.as_u16() < 500,
            "PUT {path}: {} {}",
            r.status,
            r.text()
        );
        secret.assert_untouched();
    }
    // The sandbox's own view: the host path does not exist in it, and what
    // the writes created stayed inside.
    let cat = api.exec(&id, "cat", &[&secret.file()]).await?;
    assert!(!cat.stdout.contains(&secret.content));
    secret.assert_untouched();
    // No host file anywhere else got the payload either (the state dir is
    // where the sandbox's own files legitimately live).
    assert!(
        !grep_host_tree(Path::new("/tmp"), &pwned, server.state_dir()),
        "the payload reached a host file outside the state dir"
    );
    Ok(())
}

/// True when a regular file under `root` (not under `skip`, and not on
/// another filesystem) contains `needle`.
fn grep_host_tree(root: &Path, needle: &str, skip: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(dev) = std::fs::metadata(root).map(|m| m.dev()) else {
        return false;
    };
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        if dir.starts_with(skip) {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if meta.dev() != dev {
                continue;
            }
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.is_file() && meta.len() < 1 << 20 {
                if let Ok(bytes) = std::fs::read(e.path()) {
                    if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                        eprintln!("payload found in {}", e.path().display());
                        return true;
                    }
                }
            }
        }
    }
    false
}

/// Host paths under `root` whose file name is `name` (where the runtime
/// keeps a sandbox's writable layer, if it is visible on the host).
fn find_on_host(root: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if e.file_name().to_string_lossy() == name {
                found.push(e.path());
            }
            if meta.is_dir() && !e.path().ends_with("proc") && !e.path().ends_with("sys") {
                stack.push(e.path());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sandbox_cannot_read_another_sandboxs_files() -> anyhow::Result<()> {
    let mut server = TempServer::start().await?;
    let api = server.user("two")?;
    let a = api.create(json!({})).await?["id"]
        .as_str()
        .unwrap()
        .to_string();
    let b = api.create(json!({})).await?["id"]
        .as_str()
        .unwrap()
        .to_string();
    let name = format!("{}.txt", unique("a-secret"));
    let content = format!("SANDBOX-A-{}", unique("c"));
    let a_path = format!("/root/{name}");
    api.upload(&a, &a_path, content.clone()).await?;
    api.sh(&a, "setsid sleep 424242 >/dev/null 2>&1 < /dev/null &")
        .await?;

    // Where A's file lives on the host, if anywhere visible: B aims there.
    let mut targets: Vec<String> = find_on_host(server.state_dir(), &name)
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    eprintln!("A's file on the host: {targets:?}");
    targets.push(a_path.clone());
    let pid = server.pid();
    for target in &targets {
        for path in tricks(target, pid) {
            let r = api.download(&b, &path).await?;
            assert!(
                !r.text().contains(&content),
                "B read A's file through GET {path}"
            );
        }
        let out = api
            .sh(
                &b,
                &format!("cat {target} /proc/*/root{target} 2>/dev/null; true"),
            )
            .await?;
        assert!(
            !out.stdout.contains(&content),
            "B read A's file with cat {target}"
        );
    }
    let out = api
        .sh(
            &b,
            &format!(
                "find / -xdev -name '{name}' 2>/dev/null; ls /proc/*/root/root/ 2>/dev/null; true"
            ),
        )
        .await?;
    assert!(
        !out.stdout.contains(&name),
        "B sees A's file: {}",
        out.stdout
    );
    // B's processes are alone in its pid namespace; A's are not visible.
    let ps = api.exec(&a, "ps", &["-eo", "args"]).await?;
    assert!(ps.stdout.contains("sleep 424242"), "{}", ps.stdout);
    let ps = api.exec(&b, "ps", &["-eo", "args"]).await?;
    assert!(!ps.stdout.contains("sleep 424242"), "{}", ps.stdout);
    // A still has its file, unchanged.
    assert_eq!(api.download(&a, &a_path).await?.text(), content);
    Ok(())
}

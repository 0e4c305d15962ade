//! moto's S3 server on a loopback port, stopped on drop: the second test
//! server, for what garage cannot do. Garage refuses every anonymous
//! request ("does not support anonymous access yet"), so public-bucket
//! (unsigned) mounts are tested here. moto accepts unsigned requests.
//! Installed by `scripts/lib/garage.sh` into `/var/cache/cove/moto`.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Env var naming the `moto_server` binary.
pub const MOTO_BIN_ENV: &str = "COVE_MOTO_BIN";
const DEFAULT_MOTO_BIN: &str = "/var/cache/cove/moto/bin/moto_server";

/// A running moto S3 server.
pub struct TempMoto {
    child: Child,
    port: u16,
}

impl TempMoto {
    /// Starts moto on a free port and waits until it answers.
    pub fn start() -> Self {
        let bin = std::env::var(MOTO_BIN_ENV).unwrap_or_else(|_| DEFAULT_MOTO_BIN.into());
        assert!(
            Path::new(&bin).is_file(),
            "moto_server not found at {bin} (run scripts/lib/garage.sh, or set {MOTO_BIN_ENV})"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn moto_server");
        let moto = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        moto
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (moto needs no signature for it); `public` gives it
    /// the `public-read` canned ACL, which moto enforces on anonymous GETs.
    pub fn create_bucket(&self, name: &str, public: bool) {
        let acl = if public {
            "x-amz-acl: public-read"
        } else {
            "x-amz-acl: private"
        };
        let status = Command::new("curl")
            .args(["-sf", "-o", "/dev/null", "-X", "PUT", "-H", acl])
            .arg(format!("{}/{name}", self.endpoint()))
            .status()
            .expect("run curl");
        assert!(status.success(), "create bucket {name} on moto");
    }
}

impl Drop for TempMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

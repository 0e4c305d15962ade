//! A PostgreSQL server on a loopback port in a temp dir, stopped on drop.
//!
//! Uses Debian's `postgresql` package (binaries in
//! `/usr/lib/postgresql/15/bin`, or `COVE_PG_BIN_DIR`). PostgreSQL refuses
//! to run as root, so when the tests run as root (as `./scripts/test` does)
//! `initdb` and `pg_ctl` run as the `postgres` user through `runuser`, and the
//! data dir is handed to that user. Authentication is `trust` on 127.0.0.1
//! only; the server listens on a free port and its socket lives in the temp dir.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// Default location of Debian's PostgreSQL 15 binaries.
pub const DEFAULT_PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// A running throw-away PostgreSQL server; stopped and deleted on drop.
pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn is_root() -> bool {
    // `id -u` avoids a libc dependency for one call.
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(listener.local_addr()?.port())
}

impl TempPostgres {
    /// Initialises and starts a server; fails with a message naming what is
    /// missing when PostgreSQL is not installed.
    pub fn start() -> Result<Self> {
        let bin = std::env::var_os("COVE_PG_BIN_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PG_BIN_DIR));
        if !bin.join("initdb").exists() || !bin.join("pg_ctl").exists() {
            bail!(
                "PostgreSQL binaries not found in {} (install Debian's `postgresql` package, \
                 or point COVE_PG_BIN_DIR at a directory holding initdb and pg_ctl)",
                bin.display()
            );
        }
        let as_postgres = is_root();
        let dir = tempfile::Builder::new().prefix("cove-pg-").tempdir()?;
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .context("chown of the PostgreSQL temp dir")?;
            if !status.success() {
                bail!(
                    "chown postgres {} failed (is there a `postgres` user?)",
                    dir.path().display()
                );
            }
        }
        let mut pg = Self {
            dir,
            bin,
            port: 0,
            as_postgres,
        };
        let data = pg.data_dir();
        pg.run(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        )?;
        // Two starts racing for one port is possible with free_port(); retry.
        let mut last_err = None;
        for _ in 0..5 {
            pg.port = free_port()?;
            let opts = format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                pg.port,
                path_str(pg.dir.path())?
            );
            let log = pg.dir.path().join("server.log");
            match pg.run(
                "pg_ctl",
                &[
                    "-D",
                    path_str(&data)?,
                    "-o",
                    &opts,
                    "-l",
                    path_str(&log)?,
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            ) {
                Ok(()) => return Ok(pg),
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow::anyhow!("PostgreSQL did not start")))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<()> {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .with_context(|| format!("running {tool}"))?;
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            bail!(
                "{tool} failed: {}\n{}\n{log}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The loopback port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A connection URL for the built-in `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str().context("temp path is not UTF-8")
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if self.port != 0 {
            if let Ok(data) = path_str(&self.data_dir()).map(str::to_owned) {
                let _ = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
            }
        }
    }
}

//! cove-agent: PID 1 inside every sandbox. Parses its arguments, starts the
//! child reaper and serves the host on a unix socket (see `server.rs`). It
//! never writes to stdio: the server that started the sandbox may be gone.

#![deny(clippy::undocumented_unsafe_blocks)]

mod body;
mod exec;
mod files;
mod reaper;
mod seccomp;
mod self_api;
mod server;

use std::path::PathBuf;
use std::process::ExitCode;

use cove_api::agent::{GUEST_RUN_DIR, SOCKET_NAME};

/// Command-line options.
struct Args {
    root: PathBuf,
    socket: PathBuf,
    /// A seccomp filter to load before anything else (in a sandbox, always).
    seccomp: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        root: PathBuf::from("/"),
        socket: PathBuf::from(GUEST_RUN_DIR).join(SOCKET_NAME),
        seccomp: None,
    };
    let mut it = std::env::args_os().skip(1);
    while let Some(a) = it.next() {
        let value = |it: &mut dyn Iterator<Item = std::ffi::OsString>| {
            it.next()
                .map(PathBuf::from)
                .ok_or_else(|| format!("{a:?} needs a value"))
        };
        match a.to_str() {
            Some("--root") => args.root = value(&mut it)?,
            Some("--socket") => args.socket = value(&mut it)?,
            Some("--seccomp") => args.seccomp = Some(value(&mut it)?),
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cove-agent: {e}");
            return ExitCode::from(2);
        }
    };
    // Before the runtime starts any thread; a sandbox never runs without
    // its filter, so a failed load ends the agent (and the sandbox).
    if let Some(path) = &args.seccomp {
        if let Err(e) = seccomp::load(path) {
            eprintln!("cove-agent: {e}");
            return ExitCode::from(1);
        }
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cove-agent: tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(server::run(args.root, args.socket)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cove-agent: {e}");
            ExitCode::from(1)
        }
    }
}

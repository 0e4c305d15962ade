//! The `cove` binary: `cove serve`, `cove keys`, `cove mount`.
//! Each subcommand lives in its own module with an `Args` type and a `run`;
//! logs of `serve` and `keys` go to stderr, filtered by `RUST_LOG` (default `info,sqlx=warn`).

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod keys;
mod mount;
mod serve;

#[derive(Parser)]
#[command(
    name = "cove",
    version,
    about = "Self-hostable sandboxes with bring-your-own S3"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the control plane.
    Serve(serve::Args),
    /// Manage API keys.
    Keys(keys::Args),
    /// Mount an S3 bucket on a directory (bucketfs).
    Mount(mount::Args),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            init_logs();
            serve::run(args)
        }
        Command::Keys(args) => {
            init_logs();
            keys::run(args)
        }
        // `cove mount` sets up its own logging (it may fork first).
        Command::Mount(args) => mount::run(args),
    }
}

fn init_logs() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: `scripts/run` sends the log to a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

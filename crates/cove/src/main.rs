//! The `cove` binary: `cove serve`, `cove keys`, `cove mount`.
//! Each subcommand lives in its own module with an `Args` type and a `run`.

use clap::{Parser, Subcommand};

mod keys;
mod mount;
mod serve;

#[derive(Parser)]
#[command(name = "cove", version, about = "Self-hostable sandboxes with bring-your-own S3")]
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
        Command::Serve(args) => serve::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Mount(args) => mount::run(args),
    }
}

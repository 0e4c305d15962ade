//! `cove keys create [--user U]`: creates the user if new and prints a new
//! API key alone on the last line of stdout. Works while a server uses the
//! same state dir (SQLite in WAL mode with a busy timeout, or PostgreSQL).

use anyhow::Context;

use crate::serve::{open_store, StoreArgs};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Create an API key (and the user, if new).
    Create {
        /// The user the key belongs to.
        #[arg(long, default_value = "default")]
        user: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match args.command {
        Command::Create { user, store } => rt.block_on(async {
            let name = user.trim();
            if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                anyhow::bail!("user name must be 1-128 printable characters");
            }
            let store = open_store(&store).await?;
            let user = store.ensure_user(name).await.context("creating the user")?;
            let key = store
                .create_api_key(&user.id)
                .await
                .context("creating the key")?;
            println!("created an API key for user {} ({})", user.name, user.id);
            // The key alone on the last line, for scripts (`| tail -n1`).
            println!("{}", key.expose());
            Ok(())
        }),
    }
}

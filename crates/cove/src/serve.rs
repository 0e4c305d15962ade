//! `cove serve`: opens the store (SQLite in the state dir unless
//! `--database-url` names PostgreSQL), starts the runc runtime, reconciles
//! the store with what is on the machine, then serves the API until SIGINT
//! or SIGTERM, with the reconciler running periodically.
//!
//! Secrets never come from argv: the server key is `<state>/server.key`
//! (created 0600 on first start), or the file named by
//! `COVE_SERVER_KEY_FILE`, or 64 hex characters in `COVE_SERVER_KEY`.

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cove_runtime::runc::{RuncConfig, RuncRuntime};
use cove_server::jobs::{auto_pause, reconciler};
use cove_server::mounts::bucketfs::BucketfsMounter;
use cove_server::mounts::Mounter;
use cove_server::{app, AppConfig, AppState};
use cove_store::{ServerKey, Store};

/// Where the state lives and which database holds it (shared with `cove keys`).
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Directory for the database, the server key and the runtime's state.
    #[arg(long, env = "COVE_STATE_DIR", default_value = "/var/lib/cove")]
    pub state_dir: PathBuf,
    /// `postgres://…` for PostgreSQL; default `sqlite:<state-dir>/cove.db`.
    #[arg(long, env = "COVE_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Address to listen on.
    #[arg(long, env = "COVE_LISTEN", default_value = "127.0.0.1:7070")]
    pub listen: SocketAddr,
    /// The region this control plane serves (create requests must match).
    #[arg(long, env = "COVE_REGION", default_value = "local")]
    pub region: String,
    /// This host's id in `/v1/hosts` and for `host_id` pinning.
    #[arg(long, env = "COVE_HOST_ID", default_value = "local")]
    pub host_id: String,
    /// Also serve every route under this path prefix (e.g. `/api`).
    #[arg(long, env = "COVE_BASE_PATH")]
    pub base_path: Option<String>,
    /// Domain for ingress URL templates (`https://<id>-<port>.<domain>`).
    #[arg(long, env = "COVE_INGRESS_DOMAIN")]
    pub ingress_domain: Option<String>,
    /// Seconds between reconciler passes.
    #[arg(long, env = "COVE_RECONCILE_SECS", default_value_t = 30)]
    pub reconcile_secs: u64,
    /// Most data staged for upload per disk mount, in MiB (writes past it
    /// fail with ENOSPC inside the sandbox).
    #[arg(long, env = "COVE_DISK_STAGING_MIB", default_value_t = 4096)]
    pub disk_staging_mib: u64,
}

/// The server key: `COVE_SERVER_KEY` (hex), else the file in
/// `COVE_SERVER_KEY_FILE`, else `<state>/server.key` (created when missing).
pub fn server_key(state_dir: &Path) -> anyhow::Result<ServerKey> {
    if let Ok(hex) = std::env::var("COVE_SERVER_KEY") {
        return ServerKey::from_hex(&hex).context("COVE_SERVER_KEY");
    }
    let path = std::env::var_os("COVE_SERVER_KEY_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| state_dir.join("server.key"));
    ServerKey::load_or_create(&path).context("loading the server key")
}

/// Creates the state dir and opens the store it names. The dir itself stays
/// traversable (sandbox roots under it are entered by user-namespaced
/// processes); the secrets in it (server key, database) are files of mode 0600.
pub async fn open_store(args: &StoreArgs) -> anyhow::Result<Arc<dyn Store>> {
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating state dir {}", args.state_dir.display()))?;
    // 0711: others may traverse (user-namespaced sandbox roots live below)
    // but not list; a `mktemp -d` state dir (0700) would block the sandboxes.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&args.state_dir, std::fs::Permissions::from_mode(0o711))
            .with_context(|| format!("chmod 0711 {}", args.state_dir.display()))?;
    }
    let key = server_key(&args.state_dir)?;
    let url = match &args.database_url {
        Some(url) => url.clone(),
        None => format!("sqlite:{}", args.state_dir.join("cove.db").display()),
    };
    // The URL may hold a password: never put it in the error.
    cove_store::open(&url, key)
        .await
        .context("opening the database")
}

/// How long a stopping server waits for open requests.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub fn run(args: Args) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(serve(args))
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let store = open_store(&args.store).await?;
    let runtime = RuncRuntime::start(RuncConfig::for_state_dir(&args.store.state_dir))
        .await
        .context("starting the runc runtime")?;
    let config = AppConfig {
        region: args.region,
        host_id: args.host_id,
        base_path: args.base_path,
        ingress_domain: args.ingress_domain,
        reconcile_interval: Duration::from_secs(args.reconcile_secs.max(1)),
        ..AppConfig::default()
    };
    let mounter = Arc::new(BucketfsMounter::new(
        &args.store.state_dir,
        args.disk_staging_mib.saturating_mul(1 << 20),
    ));
    let state = AppState::new(store, Arc::new(runtime), mounter.clone(), config);
    match reconciler::reconcile_once(&state).await {
        Ok(report) => tracing::info!(?report, "startup reconciliation done"),
        Err(e) => tracing::error!(error = %e, "startup reconciliation failed; continuing"),
    }
    // The disks of running sandboxes were served by the previous process.
    match state.attachments.remount_all().await {
        Ok(0) => {}
        Ok(n) => tracing::info!(mounts = n, "disks of running sandboxes mounted again"),
        Err(e) => tracing::error!(error = %e, "re-mounting disks failed"),
    }
    let jobs = reconciler::spawn(state.clone(), state.config.reconcile_interval);
    let auto_pause = auto_pause::spawn(state.clone(), state.config.auto_pause_tick);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    tracing::info!(addr = %listener.local_addr()?, "cove serve listening");
    // Graceful shutdown waits for open requests, but a streamed exec may run
    // for hours: give them a grace period, then exit (sandboxes keep running).
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let server = axum::serve(listener, app(state)).with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let grace = async move {
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        result = server.into_future() => result?,
        () = grace => tracing::warn!("open requests did not finish within the grace period; exiting"),
    }
    jobs.abort();
    auto_pause.abort();
    flush_disks(&mounter).await;
    Ok(())
}

/// On the way out: upload what the disks hold (the sandboxes keep running;
/// their disks come back when the server starts again).
async fn flush_disks(mounter: &BucketfsMounter) {
    for (sandbox, mount_path) in mounter.keys() {
        if let Err(e) = mounter.flush(&sandbox, &mount_path).await {
            tracing::error!(sandbox_id = %sandbox, mount_path, error = %e, "flushing a disk at shutdown failed; its data stays staged");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down; running sandboxes keep running");
}

//! The SQLite store: one file in the state dir, WAL journal so `cove keys
//! create` can write while a server holds the database open, and a busy
//! timeout so the two wait for each other instead of failing.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use crate::{ServerKey, StoreError};

/// The SQLite implementation of `Store`.
pub struct SqliteStore {
    pool: SqlitePool,
    key: ServerKey,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file and migrates it.
    /// A new file is created with mode 0600 (SQLite gives its `-wal` and
    /// `-shm` files the same mode): it holds key hashes and sealed secrets.
    pub async fn open(path: &Path, key: ServerKey) -> Result<Self, StoreError> {
        create_private(path)?;
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL is durable across process crashes in WAL mode; only a
            // power cut can lose the last transactions.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(opts)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool, key })
    }
}

fn create_private(path: &Path) -> Result<(), StoreError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Database(sqlx::Error::Io(e))),
    }
}

crate::sql::impl_store!(SqliteStore, sqlx::sqlite::SqliteRow);
crate::disks::impl_disk_store!(SqliteStore, sqlx::sqlite::SqliteRow);

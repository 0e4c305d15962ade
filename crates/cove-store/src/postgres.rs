//! The PostgreSQL store, for several hosts sharing one control plane.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

use crate::{ServerKey, StoreError};

/// The PostgreSQL implementation of `Store`.
pub struct PostgresStore {
    pool: PgPool,
    key: ServerKey,
}

impl PostgresStore {
    /// Connects and migrates.
    pub async fn connect(url: &str, key: ServerKey) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        Ok(Self { pool, key })
    }
}

crate::sql::impl_store!(PostgresStore, sqlx::postgres::PgRow);
crate::disks::impl_disk_store!(PostgresStore, sqlx::postgres::PgRow);

//! The SQL shared by both back ends. The statements use `$N` placeholders,
//! which sqlx accepts on SQLite too, and only types both databases map the
//! same way (TEXT, 64-bit integers, booleans, blobs, doubles), so one body of
//! code, expanded once per back end by `impl_store!`, serves both.

use cove_api::ids::SandboxId;
use cove_api::sandbox::SandboxStatus;
use cove_api::timestamp::Timestamp;

use crate::StoreError;

/// Columns of `sandboxes` in the order `record_from_row` reads them.
pub(crate) const SANDBOX_COLUMNS: &str = "id, owner, name, status, failure_reason, shape, rootfs, \
    region, host_id, vcpu, cpu_quota_pct, mem_mib, disk_mib, ip, ingress_enabled, \
    auto_pause_after_seconds, egress, ssh_pubkeys, env_names, spawn_ms, created_by, \
    bandwidth_ingress_bytes, forked_from, created_at, running_at, paused_at, last_resumed_at, \
    destroyed_at, status_reason";

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(id: &str, what: &str, v: i64) -> Result<u64, StoreError> {
    u64::try_from(v).map_err(|_| corrupt(id, what))
}

pub(crate) fn to_u32(id: &str, what: &str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| corrupt(id, what))
}

pub(crate) fn corrupt(id: &str, what: &str) -> StoreError {
    StoreError::Corrupt {
        id: id.to_owned(),
        what: what.to_owned(),
    }
}

pub(crate) fn json_list(list: &[String]) -> String {
    serde_json::Value::from(list.to_vec()).to_string()
}

pub(crate) fn parse_list(id: &str, what: &str, text: &str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|_| corrupt(id, what))
}

pub(crate) fn parse_status(id: &str, text: &str) -> Result<SandboxStatus, StoreError> {
    SandboxStatus::parse(text).ok_or_else(|| corrupt(id, "status"))
}

pub(crate) fn parse_id(text: &str) -> Result<SandboxId, StoreError> {
    SandboxId::parse(text).ok_or_else(|| corrupt(text, "id"))
}

pub(crate) fn ts(v: Option<i64>) -> Option<Timestamp> {
    v.map(Timestamp::from_micros)
}

/// Implements `Store` for `$store` (holding `pool` and `key`) whose rows are `$row`.
macro_rules! impl_store {
    ($store:ident, $row:ty) => {
        use std::collections::BTreeMap;

        use async_trait::async_trait;
        use cove_api::ids::SandboxId;
        use cove_api::sandbox::SandboxStatus;
        use cove_api::timestamp::Timestamp;
        use sqlx::Row;

        use crate::crypto::{generate_api_key, hash_api_key};
        use crate::sql::{
            corrupt, json_list, parse_id, parse_list, parse_status, to_i64, to_u32, to_u64, ts,
            SANDBOX_COLUMNS,
        };
        use crate::{SandboxFilter, SandboxRecord, Secret, Store, User};

        fn record_from_row(row: &$row) -> Result<SandboxRecord, StoreError> {
            let id: String = row.try_get("id")?;
            let forked: Option<String> = row.try_get("forked_from")?;
            Ok(SandboxRecord {
                id: parse_id(&id)?,
                owner: row.try_get("owner")?,
                name: row.try_get("name")?,
                status: parse_status(&id, &row.try_get::<String, _>("status")?)?,
                failure_reason: row.try_get("failure_reason")?,
                shape: row.try_get("shape")?,
                rootfs: row.try_get("rootfs")?,
                region: row.try_get("region")?,
                host_id: row.try_get("host_id")?,
                vcpu: to_u32(&id, "vcpu", row.try_get("vcpu")?)?,
                cpu_quota_pct: row
                    .try_get::<Option<i64>, _>("cpu_quota_pct")?
                    .map(|v| to_u32(&id, "cpu_quota_pct", v))
                    .transpose()?,
                mem_mib: to_u64(&id, "mem_mib", row.try_get("mem_mib")?)?,
                disk_mib: to_u64(&id, "disk_mib", row.try_get("disk_mib")?)?,
                ip: row.try_get("ip")?,
                ingress_enabled: row.try_get("ingress_enabled")?,
                auto_pause_after_seconds: row
                    .try_get::<Option<i64>, _>("auto_pause_after_seconds")?
                    .map(|v| to_u32(&id, "auto_pause_after_seconds", v))
                    .transpose()?,
                egress: parse_list(&id, "egress", &row.try_get::<String, _>("egress")?)?,
                ssh_pubkeys: parse_list(&id, "ssh_pubkeys", &row.try_get::<String, _>("ssh_pubkeys")?)?,
                env_names: parse_list(&id, "env_names", &row.try_get::<String, _>("env_names")?)?,
                spawn_ms: row.try_get("spawn_ms")?,
                created_by: row.try_get("created_by")?,
                bandwidth_ingress_bytes: to_u64(
                    &id,
                    "bandwidth_ingress_bytes",
                    row.try_get("bandwidth_ingress_bytes")?,
                )?,
                forked_from: forked.as_deref().map(parse_id).transpose()?,
                created_at: Timestamp::from_micros(row.try_get("created_at")?),
                running_at: ts(row.try_get("running_at")?),
                paused_at: ts(row.try_get("paused_at")?),
                last_resumed_at: ts(row.try_get("last_resumed_at")?),
                destroyed_at: ts(row.try_get("destroyed_at")?),
                status_reason: row.try_get("status_reason")?,
            })
        }

        fn user_from_row(row: &$row) -> Result<User, StoreError> {
            Ok(User {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
                created_at: Timestamp::from_micros(row.try_get("created_at")?),
            })
        }

        #[async_trait]
        impl Store for $store {
            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn ensure_user(&self, name: &str) -> Result<User, StoreError> {
                let id = format!("usr_{}", ulid::Ulid::new().to_string().to_lowercase());
                sqlx::query(
                    "INSERT INTO users (id, name, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(&id)
                .bind(name)
                .bind(Timestamp::now().as_micros())
                .execute(&self.pool)
                .await?;
                let row = sqlx::query("SELECT id, name, created_at FROM users WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool)
                    .await?;
                user_from_row(&row)
            }

            async fn create_api_key(&self, user_id: &str) -> Result<Secret<String>, StoreError> {
                let key = generate_api_key();
                let prefix: String = key.expose().chars().take(12).collect();
                sqlx::query(
                    "INSERT INTO api_keys (key_hash, user_id, prefix, created_at) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(hash_api_key(key.expose()))
                .bind(user_id)
                .bind(prefix)
                .bind(Timestamp::now().as_micros())
                .execute(&self.pool)
                .await?;
                Ok(key)
            }

            async fn user_by_api_key(&self, key: &str) -> Result<Option<User>, StoreError> {
                let row = sqlx::query(
                    "SELECT u.id, u.name, u.created_at FROM api_keys k \
                     JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1",
                )
                .bind(hash_api_key(key))
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(user_from_row).transpose()
            }

            async fn insert_sandbox(
                &self,
                r: &SandboxRecord,
                envs: &BTreeMap<String, Secret<String>>,
            ) -> Result<(), StoreError> {
                let plain: BTreeMap<&str, &str> =
                    envs.iter().map(|(k, v)| (k.as_str(), v.expose().as_str())).collect();
                let plain = Secret::new(serde_json::to_vec(&plain).map_err(|_| corrupt(r.id.as_str(), "envs"))?);
                let sealed = self.key.seal(plain.expose(), r.id.as_str().as_bytes())?;
                let res = sqlx::query(&format!(
                    "INSERT INTO sandboxes ({SANDBOX_COLUMNS}, env_values, updated_at) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
                     $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31)"
                ))
                .bind(r.id.as_str())
                .bind(&r.owner)
                .bind(&r.name)
                .bind(r.status.as_str())
                .bind(&r.failure_reason)
                .bind(&r.shape)
                .bind(&r.rootfs)
                .bind(&r.region)
                .bind(&r.host_id)
                .bind(i64::from(r.vcpu))
                .bind(r.cpu_quota_pct.map(i64::from))
                .bind(to_i64(r.mem_mib))
                .bind(to_i64(r.disk_mib))
                .bind(&r.ip)
                .bind(r.ingress_enabled)
                .bind(r.auto_pause_after_seconds.map(i64::from))
                .bind(json_list(&r.egress))
                .bind(json_list(&r.ssh_pubkeys))
                .bind(json_list(&r.env_names))
                .bind(r.spawn_ms)
                .bind(&r.created_by)
                .bind(to_i64(r.bandwidth_ingress_bytes))
                .bind(r.forked_from.as_ref().map(|f| f.as_str().to_owned()))
                .bind(r.created_at.as_micros())
                .bind(r.running_at.map(Timestamp::as_micros))
                .bind(r.paused_at.map(Timestamp::as_micros))
                .bind(r.last_resumed_at.map(Timestamp::as_micros))
                .bind(r.destroyed_at.map(Timestamp::as_micros))
                .bind(&r.status_reason)
                .bind(sealed)
                .bind(Timestamp::now().as_micros())
                .execute(&self.pool)
                .await;
                match res {
                    Ok(_) => Ok(()),
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        Err(StoreError::NameTaken { name: r.name.clone() })
                    }
                    Err(e) => Err(e.into()),
                }
            }

            async fn get_sandbox(&self, id: &SandboxId) -> Result<Option<SandboxRecord>, StoreError> {
                let row = sqlx::query(&format!("SELECT {SANDBOX_COLUMNS} FROM sandboxes WHERE id = $1"))
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(record_from_row).transpose()
            }

            async fn get_sandbox_by_ip(
                &self,
                owner: &str,
                ip: &str,
            ) -> Result<Option<SandboxRecord>, StoreError> {
                // A live sandbox first, then the most recent terminal one
                // (addresses are reused once a sandbox is gone).
                let row = sqlx::query(&format!(
                    "SELECT {SANDBOX_COLUMNS} FROM sandboxes WHERE owner = $1 AND ip = $2 \
                     ORDER BY CASE WHEN status IN ('destroyed', 'failed') THEN 1 ELSE 0 END, \
                     created_at DESC LIMIT 1"
                ))
                .bind(owner)
                .bind(ip)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(record_from_row).transpose()
            }

            async fn list_sandboxes(
                &self,
                filter: &SandboxFilter,
                limit: u32,
                offset: u64,
            ) -> Result<(Vec<SandboxRecord>, u64), StoreError> {
                let status = filter.status.map(|s| s.as_str().to_owned());
                let total: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM sandboxes WHERE ($1 IS NULL OR owner = $1) \
                     AND ($2 IS NULL OR status = $2)",
                )
                .bind(&filter.owner)
                .bind(&status)
                .fetch_one(&self.pool)
                .await?;
                let rows = sqlx::query(&format!(
                    "SELECT {SANDBOX_COLUMNS} FROM sandboxes WHERE ($1 IS NULL OR owner = $1) \
                     AND ($2 IS NULL OR status = $2) ORDER BY created_at, id LIMIT $3 OFFSET $4"
                ))
                .bind(&filter.owner)
                .bind(&status)
                .bind(i64::from(limit))
                .bind(to_i64(offset))
                .fetch_all(&self.pool)
                .await?;
                let items = rows.iter().map(record_from_row).collect::<Result<Vec<_>, _>>()?;
                Ok((items, u64::try_from(total).unwrap_or(0)))
            }

            async fn list_live_sandboxes(&self) -> Result<Vec<SandboxRecord>, StoreError> {
                let rows = sqlx::query(&format!(
                    "SELECT {SANDBOX_COLUMNS} FROM sandboxes \
                     WHERE status NOT IN ('destroyed', 'failed') ORDER BY created_at"
                ))
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(record_from_row).collect()
            }

            async fn update_sandbox(
                &self,
                r: &SandboxRecord,
                expected: SandboxStatus,
            ) -> Result<bool, StoreError> {
                let res = sqlx::query(
                    "UPDATE sandboxes SET status = $1, failure_reason = $2, ip = $3, \
                     ingress_enabled = $4, auto_pause_after_seconds = $5, egress = $6, \
                     ssh_pubkeys = $7, spawn_ms = $8, bandwidth_ingress_bytes = $9, \
                     running_at = $10, paused_at = $11, last_resumed_at = $12, destroyed_at = $13, \
                     disk_mib = $14, status_reason = $15, updated_at = $16 WHERE id = $17 AND status = $18",
                )
                .bind(r.status.as_str())
                .bind(&r.failure_reason)
                .bind(&r.ip)
                .bind(r.ingress_enabled)
                .bind(r.auto_pause_after_seconds.map(i64::from))
                .bind(json_list(&r.egress))
                .bind(json_list(&r.ssh_pubkeys))
                .bind(r.spawn_ms)
                .bind(to_i64(r.bandwidth_ingress_bytes))
                .bind(r.running_at.map(Timestamp::as_micros))
                .bind(r.paused_at.map(Timestamp::as_micros))
                .bind(r.last_resumed_at.map(Timestamp::as_micros))
                .bind(r.destroyed_at.map(Timestamp::as_micros))
                .bind(to_i64(r.disk_mib))
                .bind(&r.status_reason)
                .bind(Timestamp::now().as_micros())
                .bind(r.id.as_str())
                .bind(expected.as_str())
                .execute(&self.pool)
                .await;
                match res {
                    Ok(done) => Ok(done.rows_affected() == 1),
                    // Only reachable when a terminal row comes back to life
                    // under a name taken meanwhile.
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                        Err(StoreError::NameTaken { name: r.name.clone() })
                    }
                    Err(e) => Err(e.into()),
                }
            }

            async fn sandbox_envs(
                &self,
                id: &SandboxId,
            ) -> Result<BTreeMap<String, Secret<String>>, StoreError> {
                let sealed: Option<Option<Vec<u8>>> =
                    sqlx::query_scalar("SELECT env_values FROM sandboxes WHERE id = $1")
                        .bind(id.as_str())
                        .fetch_optional(&self.pool)
                        .await?;
                let Some(Some(sealed)) = sealed else { return Ok(BTreeMap::new()) };
                let plain = Secret::new(self.key.open(&sealed, id.as_str().as_bytes())?);
                let map: BTreeMap<String, String> = serde_json::from_slice(plain.expose())
                    .map_err(|_| corrupt(id.as_str(), "env_values"))?;
                Ok(map.into_iter().map(|(k, v)| (k, Secret::new(v))).collect())
            }

            async fn count_by_status(
                &self,
                owner: Option<&str>,
            ) -> Result<Vec<(SandboxStatus, u64)>, StoreError> {
                let rows = sqlx::query(
                    "SELECT status, COUNT(*) AS n FROM sandboxes WHERE ($1 IS NULL OR owner = $1) \
                     GROUP BY status",
                )
                .bind(owner)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let status: String = row.try_get("status")?;
                        let n: i64 = row.try_get("n")?;
                        Ok((parse_status("count", &status)?, u64::try_from(n).unwrap_or(0)))
                    })
                    .collect()
            }
        }
    };
}

pub(crate) use impl_store;

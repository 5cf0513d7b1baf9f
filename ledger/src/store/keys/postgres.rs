//! Subject keys in PostgreSQL's `subject_keys` table (created by migration 2).

use super::{KeyStore, StoredKey, same_or_conflict};
use crate::sealing::KeyId;
use crate::store::StoreError;
use async_trait::async_trait;
use deadpool_postgres::Pool;

const COLUMNS: &str = "key_id, family, label, kek_id, wrapped, created_at, destroyed_at";

/// The migration that brings the key table.
pub(crate) const MIGRATION: &str = "
CREATE TABLE subject_keys (
    key_id       BYTEA  PRIMARY KEY,
    family       TEXT   NOT NULL,
    label        TEXT   NOT NULL,
    kek_id       TEXT   NOT NULL,
    wrapped      BYTEA,
    created_at   BIGINT NOT NULL,
    destroyed_at BIGINT
);
CREATE INDEX subject_keys_by_group ON subject_keys (family, label);";

/// Subject keys over the event store's connection pool.
#[derive(Clone)]
pub struct PostgresKeyStore {
    pool: Pool,
}

impl PostgresKeyStore {
    pub(crate) fn new(pool: Pool) -> Self {
        Self { pool }
    }

    async fn query(
        &self,
        filter: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<StoredKey>, StoreError> {
        let client = self.pool.get().await.map_err(|e| backend(e.to_string()))?;
        let rows = client.query(&format!("SELECT {COLUMNS} FROM subject_keys {filter}"), params).await.map_err(pg)?;
        rows.iter().map(row_to_key).collect()
    }
}

fn row_to_key(r: &tokio_postgres::Row) -> Result<StoredKey, StoreError> {
    let id: Vec<u8> = r.try_get(0).map_err(pg)?;
    Ok(StoredKey {
        key_id: KeyId(id.try_into().map_err(|_| StoreError::Corrupt("a key id is not 16 bytes".into()))?),
        family: r.try_get(1).map_err(pg)?,
        label: r.try_get(2).map_err(pg)?,
        kek_id: r.try_get(3).map_err(pg)?,
        wrapped: r.try_get(4).map_err(pg)?,
        created_at_micros: r.try_get(5).map_err(pg)?,
        destroyed_at_micros: r.try_get(6).map_err(pg)?,
    })
}

#[async_trait]
impl KeyStore for PostgresKeyStore {
    async fn insert(&self, key: &StoredKey) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(|e| backend(e.to_string()))?;
        let inserted = client
            .execute(
                "INSERT INTO subject_keys (key_id, family, label, kek_id, wrapped, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key_id) DO NOTHING",
                &[&&key.key_id.0[..], &key.family, &key.label, &key.kek_id, &key.wrapped, &key.created_at_micros],
            )
            .await
            .map_err(pg)?;
        if inserted == 1 {
            return Ok(());
        }
        match self.get(key.key_id).await? {
            Some(existing) => same_or_conflict(&existing, key),
            None => Err(StoreError::Corrupt(format!("key {} neither inserted nor found", key.key_id))),
        }
    }

    async fn get(&self, key_id: KeyId) -> Result<Option<StoredKey>, StoreError> {
        Ok(self.query("WHERE key_id = $1", &[&&key_id.0[..]]).await?.into_iter().next())
    }

    async fn live(&self, family: &str, label: &str) -> Result<Option<StoredKey>, StoreError> {
        let filter = "WHERE family = $1 AND label = $2 AND wrapped IS NOT NULL ORDER BY created_at, key_id LIMIT 1";
        Ok(self.query(filter, &[&family, &label]).await?.into_iter().next())
    }

    async fn of_family(&self, family: &str) -> Result<Vec<StoredKey>, StoreError> {
        self.query("WHERE family = $1 ORDER BY created_at, key_id", &[&family]).await
    }

    async fn all(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.query("ORDER BY created_at, key_id", &[]).await
    }

    async fn destroy(&self, key_ids: &[KeyId], at_micros: i64) -> Result<usize, StoreError> {
        let client = self.pool.get().await.map_err(|e| backend(e.to_string()))?;
        let ids: Vec<&[u8]> = key_ids.iter().map(|k| &k.0[..]).collect();
        let n = client
            .execute(
                "UPDATE subject_keys SET wrapped = NULL, destroyed_at = $2 WHERE key_id = ANY($1) AND wrapped IS NOT NULL",
                &[&ids, &at_micros],
            )
            .await
            .map_err(pg)?;
        // The old row version, wrapped key included, stays in the table file until a vacuum.
        if n > 0
            && let Err(e) = client.batch_execute("VACUUM subject_keys").await
        {
            tracing::warn!(error = %e, "vacuum of subject_keys after a key destruction failed; autovacuum will follow");
        }
        Ok(n as usize)
    }

    async fn rewrap(&self, key_id: KeyId, kek_id: &str, wrapped: &[u8]) -> Result<(), StoreError> {
        let client = self.pool.get().await.map_err(|e| backend(e.to_string()))?;
        client
            .execute(
                "UPDATE subject_keys SET kek_id = $2, wrapped = $3 WHERE key_id = $1 AND wrapped IS NOT NULL",
                &[&&key_id.0[..], &kek_id, &wrapped],
            )
            .await
            .map(drop)
            .map_err(pg)
    }
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(format!("key store: {e}"))
}

fn backend(msg: String) -> StoreError {
    StoreError::Backend(format!("key store: {msg}"))
}

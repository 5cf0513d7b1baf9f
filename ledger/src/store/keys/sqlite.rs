//! Subject keys in `keys.sqlite3` beside the embedded store's events.

use super::{KeyStore, StoredKey, same_or_conflict};
use crate::sealing::KeyId;
use crate::store::StoreError;
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::Arc;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "keys.sqlite3";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS subject_keys (
    key_id       BLOB    PRIMARY KEY,
    family       TEXT    NOT NULL,
    label        TEXT    NOT NULL,
    kek_id       TEXT    NOT NULL,
    wrapped      BLOB,
    created_at   INTEGER NOT NULL,
    destroyed_at INTEGER
);
CREATE INDEX IF NOT EXISTS subject_keys_by_group ON subject_keys (family, label);";

const COLUMNS: &str = "key_id, family, label, kek_id, wrapped, created_at, destroyed_at";

/// Subject keys in their own SQLite file (one connection; key traffic is light: a key is
/// made once per group and then cached).
///
/// The connection's lock is taken before a blocking thread is: a call waits for it as a
/// task, not as a thread. Each insert syncs the file several times (rollback journal), and
/// while one did, every new family's first append used to hold a blocking thread of its
/// own waiting behind it: 148 threads in one run of the sustained-load bench, 17–31 since.
#[derive(Clone)]
pub struct SqliteKeyStore {
    conn: Arc<tokio::sync::Mutex<Connection>>,
}

impl SqliteKeyStore {
    /// Opens (creating if needed) the key file in `dir`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the file cannot be opened or set up.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| backend(format!("create data dir {}: {e}", dir.display())))?;
        let conn = Connection::open(dir.join(KEY_FILE)).map_err(sql)?;
        conn.execute_batch(
            "PRAGMA journal_mode=DELETE; PRAGMA synchronous=FULL; PRAGMA secure_delete=ON; PRAGMA busy_timeout=5000;",
        )
        .map_err(sql)?;
        conn.execute_batch(SCHEMA).map_err(sql)?;
        Ok(Self { conn: Arc::new(tokio::sync::Mutex::new(conn)) })
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || f(&mut conn))
            .await
            .map_err(|e| backend(format!("key store task failed: {e}")))?
    }

    async fn query(&self, filter: &'static str, args: Vec<String>) -> Result<Vec<StoredKey>, StoreError> {
        self.run(move |c| {
            let mut stmt = c.prepare_cached(&format!("SELECT {COLUMNS} FROM subject_keys {filter}")).map_err(sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), row_to_key).map_err(sql)?;
            rows.map(|r| r.map_err(sql)?).collect()
        })
        .await
    }
}

fn row_to_key(r: &rusqlite::Row<'_>) -> rusqlite::Result<Result<StoredKey, StoreError>> {
    let id: Vec<u8> = r.get(0)?;
    let key = (|| {
        Ok(StoredKey {
            key_id: KeyId(id.try_into().map_err(|_| StoreError::Corrupt("a key id is not 16 bytes".into()))?),
            family: r.get(1).map_err(sql)?,
            label: r.get(2).map_err(sql)?,
            kek_id: r.get(3).map_err(sql)?,
            wrapped: r.get(4).map_err(sql)?,
            created_at_micros: r.get(5).map_err(sql)?,
            destroyed_at_micros: r.get(6).map_err(sql)?,
        })
    })();
    Ok(key)
}

#[async_trait]
impl KeyStore for SqliteKeyStore {
    async fn insert(&self, key: &StoredKey) -> Result<(), StoreError> {
        let key = key.clone();
        self.run(move |c| {
            let txn = c.transaction().map_err(sql)?;
            let existing = txn
                .query_row(&format!("SELECT {COLUMNS} FROM subject_keys WHERE key_id = ?1"), [&key.key_id.0[..]], row_to_key)
                .optional()
                .map_err(sql)?
                .transpose()?;
            if let Some(existing) = existing {
                return same_or_conflict(&existing, &key);
            }
            txn.execute(
                "INSERT INTO subject_keys (key_id, family, label, kek_id, wrapped, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![&key.key_id.0[..], key.family, key.label, key.kek_id, key.wrapped, key.created_at_micros],
            )
            .map_err(sql)?;
            txn.commit().map_err(sql)
        })
        .await
    }

    async fn get(&self, key_id: KeyId) -> Result<Option<StoredKey>, StoreError> {
        self.run(move |c| {
            c.query_row(&format!("SELECT {COLUMNS} FROM subject_keys WHERE key_id = ?1"), [&key_id.0[..]], row_to_key)
                .optional()
                .map_err(sql)?
                .transpose()
        })
        .await
    }

    async fn live(&self, family: &str, label: &str) -> Result<Option<StoredKey>, StoreError> {
        let filter = "WHERE family = ?1 AND label = ?2 AND wrapped IS NOT NULL ORDER BY created_at, key_id LIMIT 1";
        Ok(self.query(filter, vec![family.to_owned(), label.to_owned()]).await?.into_iter().next())
    }

    async fn of_family(&self, family: &str) -> Result<Vec<StoredKey>, StoreError> {
        self.query("WHERE family = ?1 ORDER BY created_at, key_id", vec![family.to_owned()]).await
    }

    async fn all(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.query("ORDER BY created_at, key_id", Vec::new()).await
    }

    async fn destroy(&self, key_ids: &[KeyId], at_micros: i64) -> Result<usize, StoreError> {
        let ids = key_ids.to_vec();
        self.run(move |c| {
            let txn = c.transaction().map_err(sql)?;
            let mut n = 0;
            for id in &ids {
                n += txn
                    .execute(
                        "UPDATE subject_keys SET wrapped = NULL, destroyed_at = ?2 WHERE key_id = ?1 AND wrapped IS NOT NULL",
                        params![&id.0[..], at_micros],
                    )
                    .map_err(sql)?;
            }
            txn.commit().map_err(sql)?;
            Ok(n)
        })
        .await
    }

    async fn rewrap(&self, key_id: KeyId, kek_id: &str, wrapped: &[u8]) -> Result<(), StoreError> {
        let (kek_id, wrapped) = (kek_id.to_owned(), wrapped.to_vec());
        self.run(move |c| {
            c.execute(
                "UPDATE subject_keys SET kek_id = ?2, wrapped = ?3 WHERE key_id = ?1 AND wrapped IS NOT NULL",
                params![&key_id.0[..], kek_id, wrapped],
            )
            .map(drop)
            .map_err(sql)
        })
        .await
    }
}

fn sql(e: rusqlite::Error) -> StoreError {
    StoreError::Backend(format!("key store: {e}"))
}

fn backend(msg: String) -> StoreError {
    StoreError::Backend(msg)
}

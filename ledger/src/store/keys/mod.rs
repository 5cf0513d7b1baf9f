//! Where subject keys live: beside the events, in each backend, wrapped by the KEK.
//! The event log is immutable; this is the one place that forgets on purpose. Every backend
//! passes the key contract in `ledger/tests/store_contract.rs`.
//!
//! - [`MemoryKeyStore`]: for tests and tools.
//! - [`sqlite::SqliteKeyStore`]: `keys.sqlite3` beside the embedded store's events, with a
//!   rollback journal and `secure_delete`, so a destroyed key is overwritten in the file
//!   (a WAL would keep old page images until a checkpoint).
//! - [`postgres::PostgresKeyStore`]: the `subject_keys` table, vacuumed after each
//!   destruction so the old row version goes too.
//! - [`kurrent::KurrentKeyStore`]: one KurrentDB stream per key; destroying truncates the
//!   stream before a `key.destroyed` event, so the wrapped key is unreadable at once and
//!   gone from disk at the next scavenge.

pub mod kurrent;
pub mod postgres;
pub mod sqlite;

use crate::sealing::KeyId;
use crate::store::StoreError;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;

/// One subject key as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub key_id: KeyId,
    pub family: String,
    /// The [`crate::sealing::KeyGroup`] label: which payloads the key seals. Ids and
    /// categories only, never data.
    pub label: String,
    /// The KEK that wrapped it.
    pub kek_id: String,
    /// The wrapped key; `None` once destroyed.
    pub wrapped: Option<Vec<u8>>,
    pub created_at_micros: i64,
    pub destroyed_at_micros: Option<i64>,
}

impl StoredKey {
    pub fn is_destroyed(&self) -> bool {
        self.wrapped.is_none()
    }
}

/// The contract every key backend meets.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Stores a new key. Storing the same id again with the same content is a no-op.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for an id already used by other content, or a backend failure.
    async fn insert(&self, key: &StoredKey) -> Result<(), StoreError>;

    /// The key with this id, destroyed or not.
    ///
    /// # Errors
    /// A backend failure.
    async fn get(&self, key_id: KeyId) -> Result<Option<StoredKey>, StoreError>;

    /// The oldest key not destroyed for this family and group, if any: every replica picks
    /// the same one, so a retried append seals the same bytes.
    ///
    /// # Errors
    /// A backend failure.
    async fn live(&self, family: &str, label: &str) -> Result<Option<StoredKey>, StoreError>;

    /// Every key of the family, destroyed ones included.
    ///
    /// # Errors
    /// A backend failure.
    async fn of_family(&self, family: &str) -> Result<Vec<StoredKey>, StoreError>;

    /// Every key, for rotation and for `verify`.
    ///
    /// # Errors
    /// A backend failure.
    async fn all(&self) -> Result<Vec<StoredKey>, StoreError>;

    /// Destroys the keys: their wrapped bytes are gone for good. Destroying a destroyed or
    /// unknown key is a no-op. Returns how many were destroyed now.
    ///
    /// # Errors
    /// A backend failure.
    async fn destroy(&self, key_ids: &[KeyId], at_micros: i64) -> Result<usize, StoreError>;

    /// Replaces a live key's wrapping (KEK rotation); a destroyed key stays destroyed.
    ///
    /// # Errors
    /// A backend failure.
    async fn rewrap(&self, key_id: KeyId, kek_id: &str, wrapped: &[u8]) -> Result<(), StoreError>;
}

/// Checks an insert against what the id already holds.
pub(crate) fn same_or_conflict(existing: &StoredKey, new: &StoredKey) -> Result<(), StoreError> {
    if existing.family == new.family && existing.label == new.label {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!("key id {} is already used for another group", new.key_id)))
    }
}

/// Keys in memory.
#[derive(Default)]
pub struct MemoryKeyStore {
    keys: Mutex<HashMap<KeyId, StoredKey>>,
}

impl MemoryKeyStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<KeyId, StoredKey>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl KeyStore for MemoryKeyStore {
    async fn insert(&self, key: &StoredKey) -> Result<(), StoreError> {
        let mut keys = self.lock();
        match keys.get(&key.key_id) {
            Some(existing) => same_or_conflict(existing, key),
            None => {
                keys.insert(key.key_id, key.clone());
                Ok(())
            }
        }
    }

    async fn get(&self, key_id: KeyId) -> Result<Option<StoredKey>, StoreError> {
        Ok(self.lock().get(&key_id).cloned())
    }

    async fn live(&self, family: &str, label: &str) -> Result<Option<StoredKey>, StoreError> {
        Ok(self
            .lock()
            .values()
            .filter(|k| k.family == family && k.label == label && !k.is_destroyed())
            .min_by_key(|k| (k.created_at_micros, k.key_id))
            .cloned())
    }

    async fn of_family(&self, family: &str) -> Result<Vec<StoredKey>, StoreError> {
        let mut keys: Vec<_> = self.lock().values().filter(|k| k.family == family).cloned().collect();
        keys.sort_by_key(|k| (k.created_at_micros, k.key_id));
        Ok(keys)
    }

    async fn all(&self) -> Result<Vec<StoredKey>, StoreError> {
        let mut keys: Vec<_> = self.lock().values().cloned().collect();
        keys.sort_by_key(|k| (k.created_at_micros, k.key_id));
        Ok(keys)
    }

    async fn destroy(&self, key_ids: &[KeyId], at_micros: i64) -> Result<usize, StoreError> {
        let mut keys = self.lock();
        let mut n = 0;
        for id in key_ids {
            if let Some(k) = keys.get_mut(id)
                && k.wrapped.is_some()
            {
                k.wrapped = None;
                k.destroyed_at_micros = Some(at_micros);
                n += 1;
            }
        }
        Ok(n)
    }

    async fn rewrap(&self, key_id: KeyId, kek_id: &str, wrapped: &[u8]) -> Result<(), StoreError> {
        if let Some(k) = self.lock().get_mut(&key_id)
            && k.wrapped.is_some()
        {
            k.kek_id = kek_id.to_owned();
            k.wrapped = Some(wrapped.to_vec());
        }
        Ok(())
    }
}

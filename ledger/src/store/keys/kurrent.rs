//! Subject keys on KurrentDB: the stream `{namespace}-key:{key id}` holds `key.created`, then
//! any `key.rewrapped`, and at the end `key.destroyed`. Destroying appends that last event
//! (which names the family and group, never key material) and sets the stream's
//! truncate-before to it: reads skip the wrapped key at once, and a scavenge removes it.

use super::{KeyStore, StoredKey, same_or_conflict};
use crate::sealing::KeyId;
use crate::store::StoreError;
use crate::store::kurrent::mapping::{Failure, store_error, translate};
use async_trait::async_trait;
use bytes::Bytes;
use kurrentdb::{
    AppendToStreamOptions, Client, EventData, ReadAllOptions, ReadEvent, ReadStreamOptions, StreamMetadata,
    StreamState, SubscriptionFilter,
};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most events read for one listing; key streams are few and short.
const MAX_KEY_EVENTS: usize = 1_000_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Created {
    family: String,
    label: String,
    kek_id: String,
    wrapped: String,
    created_at: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rewrapped {
    kek_id: String,
    wrapped: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Destroyed {
    family: String,
    label: String,
    created_at: i64,
    at: i64,
}

/// Subject keys over the event store's KurrentDB client.
#[derive(Clone)]
pub struct KurrentKeyStore {
    client: Client,
    prefix: String,
}

impl KurrentKeyStore {
    pub(crate) fn new(client: Client, prefix: String) -> Self {
        Self { client, prefix }
    }

    fn stream(&self, key_id: KeyId) -> String {
        format!("{}{}", self.prefix, key_id.to_hex())
    }

    async fn append(&self, key_id: KeyId, state: StreamState, event_type: &str, body: Vec<u8>) -> Result<u64, Failure> {
        let event = EventData::binary(event_type, Bytes::from(body)).id(uuid::Uuid::new_v4());
        let options = AppendToStreamOptions::default().stream_state(state);
        match self.client.append_to_stream(self.stream(key_id), &options, event).await {
            Ok(w) => Ok(w.next_expected_version),
            Err(e) => Err(translate(e)),
        }
    }

    async fn read(&self, key_id: KeyId) -> Result<Option<StoredKey>, StoreError> {
        let options = ReadStreamOptions::default().forwards().max_count(MAX_KEY_EVENTS).requires_leader(true);
        let collect = async {
            let mut read = self.client.read_stream(self.stream(key_id), &options).await?;
            let mut out = Vec::new();
            while let Some(item) = read.next_read_event().await? {
                if let ReadEvent::Event(resolved) = item
                    && let Some(event) = resolved.event
                {
                    out.push((event.event_type.clone(), event.data.to_vec()));
                }
            }
            Ok::<_, kurrentdb::Error>(out)
        };
        match collect.await {
            Ok(events) => fold(key_id, &events),
            Err(e) => match translate(e) {
                Failure::NoStream => Ok(None),
                other => Err(other.into_store_error()),
            },
        }
    }
}

/// A key's state from its stream's events.
fn fold(key_id: KeyId, events: &[(String, Vec<u8>)]) -> Result<Option<StoredKey>, StoreError> {
    let corrupt = |e: serde_json::Error| StoreError::Corrupt(format!("key stream {key_id}: {e}"));
    let bytes = |hex: &str| hex::decode(hex).map_err(|_| StoreError::Corrupt(format!("key stream {key_id}: not hex")));
    let mut key: Option<StoredKey> = None;
    for (event_type, data) in events {
        match event_type.as_str() {
            "key.created" => {
                let c: Created = serde_json::from_slice(data).map_err(corrupt)?;
                key = Some(StoredKey {
                    key_id,
                    family: c.family,
                    label: c.label,
                    kek_id: c.kek_id,
                    wrapped: Some(bytes(&c.wrapped)?),
                    created_at_micros: c.created_at,
                    destroyed_at_micros: None,
                });
            }
            "key.rewrapped" => {
                let r: Rewrapped = serde_json::from_slice(data).map_err(corrupt)?;
                if let Some(k) = key.as_mut().filter(|k| k.wrapped.is_some()) {
                    k.kek_id = r.kek_id;
                    k.wrapped = Some(bytes(&r.wrapped)?);
                }
            }
            "key.destroyed" => {
                let d: Destroyed = serde_json::from_slice(data).map_err(corrupt)?;
                let kek_id = key.as_ref().map(|k| k.kek_id.clone()).unwrap_or_default();
                key = Some(StoredKey {
                    key_id,
                    family: d.family,
                    label: d.label,
                    kek_id,
                    wrapped: None,
                    created_at_micros: d.created_at,
                    destroyed_at_micros: Some(d.at),
                });
            }
            // `$metadata` and anything newer than this build: not key material.
            _ => {}
        }
    }
    Ok(key)
}

#[async_trait]
impl KeyStore for KurrentKeyStore {
    async fn insert(&self, key: &StoredKey) -> Result<(), StoreError> {
        let created = Created {
            family: key.family.clone(),
            label: key.label.clone(),
            kek_id: key.kek_id.clone(),
            wrapped: key.wrapped.as_deref().map(hex::encode).unwrap_or_default(),
            created_at: key.created_at_micros,
        };
        match self.append(key.key_id, StreamState::NoStream, "key.created", crate::codec::to_json(&created)).await {
            Ok(_) => Ok(()),
            Err(Failure::Raced { .. }) => match self.read(key.key_id).await? {
                Some(existing) => same_or_conflict(&existing, key),
                None => Err(StoreError::Corrupt(format!("key {} neither inserted nor found", key.key_id))),
            },
            Err(other) => Err(other.into_store_error()),
        }
    }

    async fn get(&self, key_id: KeyId) -> Result<Option<StoredKey>, StoreError> {
        self.read(key_id).await
    }

    async fn live(&self, family: &str, label: &str) -> Result<Option<StoredKey>, StoreError> {
        Ok(self
            .all()
            .await?
            .into_iter()
            .filter(|k| k.family == family && k.label == label && !k.is_destroyed())
            .min_by_key(|k| (k.created_at_micros, k.key_id)))
    }

    async fn of_family(&self, family: &str) -> Result<Vec<StoredKey>, StoreError> {
        Ok(self.all().await?.into_iter().filter(|k| k.family == family).collect())
    }

    async fn all(&self) -> Result<Vec<StoredKey>, StoreError> {
        let options = ReadAllOptions::default()
            .forwards()
            .filter(SubscriptionFilter::on_stream_name().add_prefix(&self.prefix))
            .max_count(MAX_KEY_EVENTS)
            .requires_leader(true);
        let mut read = self.client.read_all(&options).await.map_err(store_error)?;
        let mut streams: BTreeMap<String, Vec<(String, Vec<u8>)>> = BTreeMap::new();
        while let Some(item) = read.next_read_event().await.map_err(store_error)? {
            if let ReadEvent::Event(resolved) = item
                && let Some(event) = resolved.event
            {
                streams
                    .entry(event.stream_id().to_owned())
                    .or_default()
                    .push((event.event_type.clone(), event.data.to_vec()));
            }
        }
        let mut keys = Vec::new();
        for (name, events) in streams {
            let Some(id) = name.strip_prefix(&self.prefix).and_then(|hex| KeyId::parse(hex).ok()) else { continue };
            keys.extend(fold(id, &events)?);
        }
        keys.sort_by_key(|k| (k.created_at_micros, k.key_id));
        Ok(keys)
    }

    async fn destroy(&self, key_ids: &[KeyId], at_micros: i64) -> Result<usize, StoreError> {
        let mut n = 0;
        for id in key_ids {
            let Some(key) = self.read(*id).await?.filter(|k| !k.is_destroyed()) else { continue };
            let destroyed =
                Destroyed { family: key.family, label: key.label, created_at: key.created_at_micros, at: at_micros };
            let revision = self
                .append(*id, StreamState::StreamExists, "key.destroyed", crate::codec::to_json(&destroyed))
                .await
                .map_err(Failure::into_store_error)?;
            let metadata = StreamMetadata::builder().truncate_before(revision).build();
            self.client
                .set_stream_metadata(self.stream(*id), &AppendToStreamOptions::default(), &metadata)
                .await
                .map_err(store_error)?;
            n += 1;
        }
        Ok(n)
    }

    async fn rewrap(&self, key_id: KeyId, kek_id: &str, wrapped: &[u8]) -> Result<(), StoreError> {
        if self.read(key_id).await?.is_none_or(|k| k.is_destroyed()) {
            return Ok(());
        }
        let body = crate::codec::to_json(&Rewrapped { kek_id: kek_id.to_owned(), wrapped: hex::encode(wrapped) });
        self.append(key_id, StreamState::StreamExists, "key.rewrapped", body)
            .await
            .map(drop)
            .map_err(Failure::into_store_error)
    }
}

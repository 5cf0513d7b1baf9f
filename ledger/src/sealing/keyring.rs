//! The keyring: subject keys from the key store, unwrapped with the configured KEKs and
//! cached, so that a family can be rebuilt without waiting on the key store per event.
//!
//! Applying events is synchronous, so readers first [`Keyring::prefetch`] the keys a page
//! of events names, then open each event through [`Opener`].

use super::{Kek, KeyGroup, KeyId, SealError, SubjectKey, sealed_with};
use crate::envelope::RecordedEvent;
use crate::store::keys::{KeyStore, StoredKey};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// A payload as a reader may see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened<'a> {
    /// The subject key it was sealed under; `None` for an old plaintext payload.
    pub key: Option<KeyId>,
    pub content: Content<'a>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content<'a> {
    /// The payload's JSON.
    Plain(Cow<'a, [u8]>),
    /// Its key is destroyed: the content is gone for good.
    Shredded {
        /// When the key was destroyed, where known.
        erased_at_micros: Option<i64>,
        /// Whose data it was, by group, where the key store still says.
        group: Option<KeyGroup>,
    },
}

/// Opens stored payloads.
pub trait Opener: Sync {
    /// # Errors
    /// [`SealError`] when the payload is malformed, does not open, or names a key not loaded.
    fn open<'a>(&self, event: &'a RecordedEvent) -> Result<Opened<'a>, SealError>;

    /// An erasure destroyed these keys (perhaps on another replica): their payloads read as
    /// shredded from now on.
    fn erased(&self, _key_ids: &[KeyId], _at_micros: i64) {}

    /// The salt of line `index` of `event`'s line commitments, while its key is live here.
    fn line_salt(&self, _event: &RecordedEvent, _index: usize) -> Option<[u8; 32]> {
        None
    }
}

/// For tools that hold no KEK: old plaintext payloads open, sealed ones read as content
/// left out.
#[derive(Debug, Default, Clone, Copy)]
pub struct Plaintext;

impl Opener for Plaintext {
    fn open<'a>(&self, event: &'a RecordedEvent) -> Result<Opened<'a>, SealError> {
        Ok(match sealed_with(&event.payload)? {
            None => Opened { key: None, content: Content::Plain(Cow::Borrowed(&event.payload)) },
            Some(id) => Opened { key: Some(id), content: Content::Shredded { erased_at_micros: None, group: None } },
        })
    }
}

/// A key as this process knows it. A live key keeps no group: one key per family and group
/// stays cached for the life of the process, and a group (a few hundred bytes of sets and
/// strings) was most of each entry. When a live key is forgotten, the next prefetch reads
/// its group from the key store, as for a key forgotten before it was ever loaded.
///
/// The group of a destroyed key is boxed: inline it made every entry, live ones too, about
/// 100 bytes instead of 40.
enum Cached {
    Live { key: SubjectKey },
    Destroyed { at: Option<i64>, group: Option<Box<KeyGroup>> },
}

/// A (family, group label) pair as the sealing map holds it: the SHA-256 of both, so that
/// an entry is 48 bytes with nothing on the heap. The map keeps one per family and group for
/// the life of the process, and a label (the group as JSON) is often a hundred bytes; a heap
/// profile at 20,000 families found the map and the keys at about 720 bytes a family.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct SealingSlot([u8; 32]);

impl SealingSlot {
    fn of(family: &str, label: &str) -> Self {
        let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
        // The length first, so that no two pairs hash the same bytes.
        digest.update(&(family.len() as u64).to_be_bytes());
        digest.update(family.as_bytes());
        digest.update(label.as_bytes());
        let mut slot = [0; 32];
        slot.copy_from_slice(digest.finish().as_ref());
        Self(slot)
    }
}

/// Subject keys for one process.
pub struct Keyring {
    store: Arc<dyn KeyStore>,
    /// The first wraps new keys; the others only unwrap (during a KEK rotation).
    keks: Vec<Kek>,
    keys: Mutex<HashMap<KeyId, Cached>>,
    /// The key each (family, group label) seals under now.
    sealing: Mutex<HashMap<SealingSlot, KeyId>>,
    /// Keys that payloads name and the key store does not hold.
    absent: Mutex<HashSet<KeyId>>,
    /// How many times keys were forgotten: what was opened before may no longer open.
    forgotten: std::sync::atomic::AtomicU64,
}

impl Keyring {
    /// # Errors
    /// [`SealError::BadKek`] when no KEK is given.
    pub fn new(store: Arc<dyn KeyStore>, keks: Vec<Kek>) -> Result<Self, SealError> {
        if keks.is_empty() {
            return Err(SealError::BadKek("no key-encryption key configured".into()));
        }
        Ok(Self {
            store,
            keks,
            keys: Mutex::default(),
            sealing: Mutex::default(),
            absent: Mutex::default(),
            forgotten: Default::default(),
        })
    }

    /// A keyring over an in-memory key store with a random KEK: for tests and benchmarks.
    ///
    /// # Errors
    /// [`SealError::BadKek`] when the random source fails.
    pub fn ephemeral() -> Result<Self, SealError> {
        let kek = Kek::from_hex(&Kek::generate_hex()?)?;
        Self::new(Arc::new(crate::store::keys::MemoryKeyStore::default()), vec![kek])
    }

    pub fn key_store(&self) -> &Arc<dyn KeyStore> {
        &self.store
    }

    fn kek(&self, id: &str) -> Option<&Kek> {
        self.keks.iter().find(|k| k.id() == id)
    }

    fn primary(&self) -> &Kek {
        // `new` refuses an empty list.
        &self.keks[0]
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<KeyId, Cached>> {
        self.keys.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn sealing(&self) -> std::sync::MutexGuard<'_, HashMap<SealingSlot, KeyId>> {
        self.sealing.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn absent(&self, id: KeyId) -> bool {
        self.absent.lock().unwrap_or_else(|e| e.into_inner()).contains(&id)
    }

    fn remember(&self, stored: &StoredKey) -> Result<(), SealError> {
        let cached = match &stored.wrapped {
            None => Cached::Destroyed {
                at: stored.destroyed_at_micros,
                group: KeyGroup::from_label(&stored.label).ok().map(Box::new),
            },
            Some(wrapped) => {
                let kek = self
                    .kek(&stored.kek_id)
                    .ok_or_else(|| SealError::UnknownKek { key: stored.key_id, kek: stored.kek_id.clone() })?;
                Cached::Live { key: kek.unwrap_key(stored.key_id, &stored.label, wrapped)? }
            }
        };
        self.cache().insert(stored.key_id, cached);
        Ok(())
    }

    /// Seals one payload of `family` under its group's key, making the key first when the
    /// group has none (the key is durable before any event needs it).
    ///
    /// # Errors
    /// A key store failure, or [`SealError`] from the cipher.
    pub async fn seal(
        &self,
        family: &str,
        group: &KeyGroup,
        event_id: &uuid::Uuid,
        event_type: &str,
        plaintext: &[u8],
        now_micros: i64,
    ) -> Result<Vec<u8>, SealError> {
        let label = group.label();
        let (id, key) = self.sealing_key(family, &label, now_micros).await?;
        super::seal(id, &key, event_id, event_type, plaintext)
    }

    /// Seals `event`'s plaintext payload as [`Keyring::seal`] does, committing to each of
    /// `lines` in the payload's header (see the module doc of [`crate::sealing`]).
    ///
    /// # Errors
    /// As [`Keyring::seal`].
    pub async fn seal_with_lines(
        &self,
        family: &str,
        group: &KeyGroup,
        event: &crate::envelope::ProposedEvent,
        lines: &[Vec<u8>],
    ) -> Result<Vec<u8>, SealError> {
        let label = group.label();
        let (id, key) = self.sealing_key(family, &label, event.recorded_at_micros).await?;
        super::seal_with_lines(id, &key, &event.event_id, &event.event_type, &event.payload, lines)
    }

    async fn sealing_key(&self, family: &str, label: &str, now_micros: i64) -> Result<(KeyId, SubjectKey), SealError> {
        let slot = SealingSlot::of(family, label);
        let cached = self.sealing().get(&slot).copied();
        if let Some(id) = cached
            && let Some(Cached::Live { key, .. }) = self.cache().get(&id)
        {
            return Ok((id, key.clone()));
        }
        let stored = match self.store.live(family, label).await? {
            Some(stored) => stored,
            None => {
                let key_id = KeyId::random()?;
                let key = SubjectKey::generate()?;
                let stored = StoredKey {
                    key_id,
                    family: family.to_owned(),
                    label: label.to_owned(),
                    kek_id: self.primary().id().to_owned(),
                    wrapped: Some(self.primary().wrap(key_id, label, &key)?),
                    created_at_micros: now_micros,
                    destroyed_at_micros: None,
                };
                self.store.insert(&stored).await?;
                // Another replica may have made one at the same moment: all take the oldest.
                self.store.live(family, label).await?.unwrap_or(stored)
            }
        };
        self.remember(&stored)?;
        self.sealing().insert(slot, stored.key_id);
        match self.cache().get(&stored.key_id) {
            Some(Cached::Live { key, .. }) => Ok((stored.key_id, key.clone())),
            _ => Err(SealError::KeyNotLoaded(stored.key_id)),
        }
    }

    /// Loads every key that `events` are sealed under and this process has not loaded.
    ///
    /// # Errors
    /// A key store failure, a malformed payload, or a key that no configured KEK unwraps.
    pub async fn prefetch(&self, events: &[RecordedEvent]) -> Result<(), SealError> {
        let mut missing = HashSet::new();
        {
            let cache = self.cache();
            for event in events {
                let Some(id) = sealed_with(&event.payload)? else { continue };
                // A key forgotten before it was ever loaded here still needs its group.
                let needed = match cache.get(&id) {
                    None => true,
                    Some(Cached::Destroyed { group, .. }) => group.is_none() && !self.absent(id),
                    Some(Cached::Live { .. }) => false,
                };
                if needed {
                    missing.insert(id);
                }
            }
        }
        for id in missing {
            match self.store.get(id).await? {
                Some(stored) => {
                    let forgotten = match self.cache().get(&id) {
                        Some(Cached::Destroyed { at, .. }) => Some(*at),
                        _ => None,
                    };
                    match forgotten {
                        // An erasure said so: destroyed here, whatever the store holds yet.
                        Some(at) => {
                            let group = KeyGroup::from_label(&stored.label).ok().map(Box::new);
                            self.cache().insert(id, Cached::Destroyed { at: at.or(stored.destroyed_at_micros), group });
                        }
                        None => self.remember(&stored)?,
                    }
                }
                // A key that never reached the store cannot open anything: treat as gone.
                None => {
                    tracing::warn!(key_id = %id, "a payload names a key the key store does not hold");
                    self.absent.lock().unwrap_or_else(|e| e.into_inner()).insert(id);
                    self.cache().entry(id).or_insert(Cached::Destroyed { at: None, group: None });
                }
            }
        }
        Ok(())
    }

    /// Forgets keys an erasure destroyed (seen in a family stream, perhaps from another
    /// replica): from now on their payloads read as shredded here, whatever the key store
    /// says.
    pub fn forget(&self, key_ids: &[KeyId], at_micros: i64) {
        let mut cache = self.cache();
        for id in key_ids {
            let group = match cache.get(id) {
                Some(Cached::Destroyed { group, .. }) => group.clone(),
                Some(Cached::Live { .. }) | None => None,
            };
            cache.insert(*id, Cached::Destroyed { at: Some(at_micros), group });
        }
        drop(cache);
        let gone: HashSet<&KeyId> = key_ids.iter().collect();
        self.sealing().retain(|_, id| !gone.contains(id));
        self.forgotten.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many times keys were forgotten so far: whoever keeps what it opened drops it
    /// when this changes.
    pub fn forgotten(&self) -> u64 {
        self.forgotten.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Destroys keys in the key store and forgets them here.
    ///
    /// # Errors
    /// A key store failure (nothing is forgotten then).
    pub async fn destroy(&self, key_ids: &[KeyId], at_micros: i64) -> Result<usize, SealError> {
        let n = self.store.destroy(key_ids, at_micros).await?;
        self.forget(key_ids, at_micros);
        Ok(n)
    }

    /// Rewraps every live key under the first KEK; returns how many were rewrapped. Events
    /// are not touched: they are sealed under the subject keys, which stay the same.
    ///
    /// # Errors
    /// A key store failure, or a key that no configured KEK unwraps (nothing after it is
    /// rewrapped; a rerun continues).
    pub async fn rotate(&self) -> Result<usize, SealError> {
        let primary = self.primary();
        let mut n = 0;
        for stored in self.store.all().await? {
            let Some(wrapped) = &stored.wrapped else { continue };
            if stored.kek_id == primary.id() {
                continue;
            }
            let kek = self
                .kek(&stored.kek_id)
                .ok_or_else(|| SealError::UnknownKek { key: stored.key_id, kek: stored.kek_id.clone() })?;
            let key = kek.unwrap_key(stored.key_id, &stored.label, wrapped)?;
            let rewrapped = primary.wrap(stored.key_id, &stored.label, &key)?;
            self.store.rewrap(stored.key_id, primary.id(), &rewrapped).await?;
            n += 1;
        }
        Ok(n)
    }
}

impl Opener for Keyring {
    fn erased(&self, key_ids: &[KeyId], at_micros: i64) {
        self.forget(key_ids, at_micros);
    }

    fn line_salt(&self, event: &RecordedEvent, index: usize) -> Option<[u8; 32]> {
        let id = sealed_with(&event.payload).ok()??;
        match self.cache().get(&id) {
            Some(Cached::Live { key, .. }) => super::line_salt_of(key, &event.event_id, index).ok(),
            _ => None,
        }
    }

    fn open<'a>(&self, event: &'a RecordedEvent) -> Result<Opened<'a>, SealError> {
        let Some(id) = sealed_with(&event.payload)? else {
            return Ok(Opened { key: None, content: Content::Plain(Cow::Borrowed(&event.payload)) });
        };
        let content = match self.cache().get(&id) {
            None => return Err(SealError::KeyNotLoaded(id)),
            Some(Cached::Destroyed { at, group }) => {
                Content::Shredded { erased_at_micros: *at, group: group.as_deref().cloned() }
            }
            Some(Cached::Live { key, .. }) => {
                Content::Plain(Cow::Owned(super::open(id, key, &event.event_id, &event.event_type, &event.payload)?))
            }
        };
        Ok(Opened { key: Some(id), content })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::EventHash;
    use crate::envelope::StreamId;

    fn sealed_event(keys: &Keyring, group: &KeyGroup) -> RecordedEvent {
        let event_id = uuid::Uuid::new_v4();
        let payload = futures::executor::block_on(keys.seal("f1", group, &event_id, "case.note", b"{}", 0)).unwrap();
        RecordedEvent {
            stream: StreamId::new("family-f1").unwrap(),
            revision: 0,
            position: 0,
            event_id,
            event_type: "case.note".into(),
            recorded_at_micros: 0,
            payload,
            prev_hash: EventHash::GENESIS,
            hash: EventHash::GENESIS,
        }
    }

    #[test]
    fn a_live_key_forgotten_reads_as_shredded_with_its_group_once_prefetched() {
        let keys = Keyring::ephemeral().unwrap();
        let group = KeyGroup::access_log(2026);
        let event = sealed_event(&keys, &group);
        let opened = keys.open(&event).unwrap();
        assert!(matches!(opened.content, Content::Plain(_)));
        let key = opened.key.unwrap();

        keys.forget(&[key], 7);
        // The live key kept no group: until the key store is asked, the group is unknown.
        let forgotten = keys.open(&event).unwrap().content;
        assert_eq!(forgotten, Content::Shredded { erased_at_micros: Some(7), group: None });
        futures::executor::block_on(keys.prefetch(std::slice::from_ref(&event))).unwrap();
        let prefetched = keys.open(&event).unwrap().content;
        assert_eq!(prefetched, Content::Shredded { erased_at_micros: Some(7), group: Some(group) });
    }

    #[test]
    fn each_family_and_group_seals_under_one_key_of_its_own() {
        let keys = Keyring::ephemeral().unwrap();
        let key_of = |family: &str, group: &KeyGroup| {
            let id = uuid::Uuid::new_v4();
            let payload = futures::executor::block_on(keys.seal(family, group, &id, "case.note", b"{}", 0)).unwrap();
            sealed_with(&payload).unwrap().unwrap()
        };
        let (a, b) = (KeyGroup::access_log(2025), KeyGroup::access_log(2026));
        let first = key_of("f1", &a);
        assert_eq!(key_of("f1", &a), first, "the same family and group reuse their key");
        let others = [key_of("f1", &b), key_of("f2", &a), key_of("f", &a), key_of("f1f1", &a)];
        let mut all: HashSet<KeyId> = others.into_iter().collect();
        all.insert(first);
        assert_eq!(all.len(), 5, "another family or group never shares a key");
    }

    #[test]
    fn a_cached_key_takes_no_more_than_its_key_and_a_tag() {
        // One is kept per key used, for the life of the process.
        assert!(std::mem::size_of::<Cached>() <= 40, "{} bytes", std::mem::size_of::<Cached>());
    }
}

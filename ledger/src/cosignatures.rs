//! Witness cosignatures of our checkpoints, kept in the log itself: each is an event of the
//! `log-cosignatures` stream holding the head it cosigns and the witness's signature line.
//! Later heads therefore commit to which witnesses vouched for earlier ones.
//!
//! A head is *published* once at least `required` of the configured witnesses cosigned it
//! ([`WitnessPolicy`]); lines from witnesses that are not configured, or that do not verify,
//! never count.

use crate::envelope::{ExpectedRevision, ProposedEvent, RecordedEvent, StreamId};
use crate::note::{Note, NoteSignature, VerifierKey};
use crate::store::{EventStore, StoreError};
use crate::treehead::SignedTreeHead;
use serde::{Deserialize, Serialize};

/// Event type of a recorded cosignature.
pub const EVENT_TYPE: &str = "log.cosignature";
/// How many recent cosignature events a reader looks through.
pub const RECENT: usize = 256;

pub fn stream() -> StreamId {
    StreamId::new("log-cosignatures").unwrap_or_else(|_| unreachable!("a valid literal stream id"))
}

/// One witness's cosignature of one head.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cosignature {
    pub head: SignedTreeHead,
    /// The signature line exactly as the witness sent it.
    pub line: String,
}

/// Which witnesses count, and how many must cosign before a head is published.
#[derive(Debug, Clone, Default)]
pub struct WitnessPolicy {
    pub witnesses: Vec<VerifierKey>,
    pub required: usize,
}

/// A head with the cosignatures that verify under the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CosignedHead {
    pub head: SignedTreeHead,
    /// The checkpoint note with the log's signature and every counted cosignature.
    pub note: String,
    pub cosignatures: usize,
    pub published: bool,
}

impl WitnessPolicy {
    /// The witness key that made `line` over `head`'s checkpoint, if it is configured and
    /// the line verifies.
    pub fn check(&self, head: &SignedTreeHead, line: &str) -> Option<&VerifierKey> {
        self.checked(head, line).map(|(key, _)| key)
    }

    /// [`WitnessPolicy::check`], with the parsed signature line.
    fn checked(&self, head: &SignedTreeHead, line: &str) -> Option<(&VerifierKey, NoteSignature)> {
        let text = head.checkpoint.as_deref()?;
        let with_line = format!("{text}{}\n", line.trim_end_matches('\n'));
        let mut note = Note::parse(&with_line).ok()?;
        let signature = note.signatures.last()?;
        let key = self.witnesses.iter().find(|k| k.name == signature.name && k.key_id == signature.key_id)?;
        note.verify(std::slice::from_ref(key)).ok()?;
        Some((key, note.signatures.pop()?))
    }

    /// `head` with those of `recorded` that are its verified cosignatures.
    pub fn cosign(&self, head: &SignedTreeHead, recorded: &[Cosignature]) -> CosignedHead {
        let mut note = head.checkpoint.as_deref().and_then(|c| Note::parse(c).ok());
        let mut counted: Vec<&VerifierKey> = Vec::new();
        for c in recorded.iter().filter(|c| c.head.size == head.size && c.head.root == head.root) {
            let Some((key, signature)) = self.checked(head, &c.line) else { continue };
            if counted.contains(&key) {
                continue;
            }
            counted.push(key);
            if let Some(note) = note.as_mut() {
                note.add_signature(signature);
            }
        }
        CosignedHead {
            head: head.clone(),
            note: note.map(|n| n.to_string()).unwrap_or_default(),
            cosignatures: counted.len(),
            published: counted.len() >= self.required,
        }
    }

    /// The newest of `recorded`'s heads that is published, with its cosignatures.
    pub fn latest_published(&self, recorded: &[Cosignature]) -> Option<CosignedHead> {
        let mut sizes: Vec<&SignedTreeHead> = recorded.iter().map(|c| &c.head).collect();
        sizes.sort_by_key(|h| std::cmp::Reverse(h.size));
        sizes.dedup_by_key(|h| h.size);
        sizes.into_iter().map(|h| self.cosign(h, recorded)).find(|c| c.published)
    }
}

/// Records a cosignature (already checked by the caller).
///
/// # Errors
/// A store failure.
pub async fn record(store: &dyn EventStore, cosignature: &Cosignature) -> Result<(), StoreError> {
    let event = ProposedEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: EVENT_TYPE.to_owned(),
        recorded_at_micros: chrono::Utc::now().timestamp_micros(),
        payload: crate::codec::to_json(cosignature),
    };
    store.append(&stream(), ExpectedRevision::Any, vec![event]).await.map(drop)
}

/// The last [`RECENT`] cosignatures recorded.
///
/// # Errors
/// A store failure, or an event that is not a cosignature.
pub async fn recent(store: &dyn EventStore) -> Result<Vec<Cosignature>, StoreError> {
    let Some(last) = store.stream_revision(&stream()).await? else { return Ok(Vec::new()) };
    let from = last.saturating_sub(RECENT as u64 - 1);
    let events = store.read_stream(&stream(), from, RECENT).await?;
    events.iter().map(from_event).collect()
}

fn from_event(event: &RecordedEvent) -> Result<Cosignature, StoreError> {
    if event.event_type != EVENT_TYPE {
        return Err(StoreError::Corrupt(format!("{} in the cosignature stream", event.event_type)));
    }
    serde_json::from_slice(&event.payload).map_err(|e| StoreError::Corrupt(format!("cosignature event: {e}")))
}

/// Parses configured witness vkeys, which must be cosigner keys.
///
/// # Errors
/// A sentence naming the bad key.
pub fn witness_keys(vkeys: &[String]) -> Result<Vec<VerifierKey>, String> {
    vkeys
        .iter()
        .map(|v| {
            let key = VerifierKey::parse(v).map_err(|e| e.to_string())?;
            if key.signature_type != crate::note::TYPE_COSIGNATURE_V1 {
                return Err(format!("witness key {} is not a cosignature/v1 (type 0x04) key", key.name));
            }
            Ok(key)
        })
        .collect()
}

//! The per-stream hash chain: each event's hash covers its canonical bytes, which include
//! the hash of its predecessor in the same stream. Changing, dropping or reordering any
//! event breaks every later link.

use crate::envelope::{CanonicalFields, RecordedEvent, canonical_bytes};
use ring::digest::{SHA256, digest};
use std::fmt;

/// A SHA-256 digest of an event's canonical bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventHash([u8; 32]);

impl EventHash {
    /// The predecessor of the first event of every stream.
    pub const GENESIS: EventHash = EventHash([0; 32]);

    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Reads a hash from untrusted bytes.
    ///
    /// # Errors
    /// Returns the length found when it is not 32.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, usize> {
        <[u8; 32]>::try_from(bytes).map(Self).map_err(|_| bytes.len())
    }

    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventHash({})", self.to_hex())
    }
}

impl fmt::Display for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// The hash an event with these fields must carry.
pub fn hash_event(fields: &CanonicalFields<'_>) -> EventHash {
    hash_canonical(&canonical_bytes(fields))
}

/// SHA-256 of canonical bytes.
pub fn hash_canonical(bytes: &[u8]) -> EventHash {
    let d = digest(&SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    EventHash(out)
}

/// The first place where a stream's chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    #[error("stream {stream}: expected revision {expected} but found {found} (event missing or reordered)")]
    RevisionGap { stream: String, expected: u64, found: u64 },
    #[error("stream {stream} revision {revision}: prev_hash does not match the previous event's hash")]
    BrokenLink { stream: String, revision: u64 },
    #[error("stream {stream} revision {revision}: stored hash does not match the event's bytes")]
    HashMismatch { stream: String, revision: u64 },
}

/// Checks one stream's events, in revision order from revision 0.
///
/// # Errors
/// The first [`ChainBreak`] found.
pub fn verify_stream<'a>(events: impl IntoIterator<Item = &'a RecordedEvent>) -> Result<(), ChainBreak> {
    let mut verifier = ChainVerifier::default();
    events.into_iter().try_for_each(|e| verifier.push(e))
}

/// Incremental form of [`verify_stream`], for verifying a stream while it is read in pages.
#[derive(Debug, Default)]
pub struct ChainVerifier {
    next_revision: u64,
    prev: Option<EventHash>,
}

impl ChainVerifier {
    /// Checks the next event of the stream.
    ///
    /// # Errors
    /// The [`ChainBreak`] this event causes.
    pub fn push(&mut self, event: &RecordedEvent) -> Result<(), ChainBreak> {
        self.push_hashed(event, hash_canonical(&event.canonical_bytes()))
    }

    /// [`ChainVerifier::push`] with the hash of the event's canonical bytes already computed
    /// (the verifier hashes those bytes into the Merkle tree too, in the same pass).
    ///
    /// # Errors
    /// The [`ChainBreak`] this event causes.
    pub fn push_hashed(&mut self, event: &RecordedEvent, computed: EventHash) -> Result<(), ChainBreak> {
        self.check_link(event.stream.as_str(), event.revision, &event.prev_hash)?;
        if computed != event.hash {
            return Err(ChainBreak::HashMismatch { stream: event.stream.to_string(), revision: event.revision });
        }
        self.advance(event.hash);
        Ok(())
    }

    /// Checks the next event of an export of canonical bytes, which holds no stored hash:
    /// `hash` is the one computed from its bytes, and the next event must link to it.
    ///
    /// # Errors
    /// The [`ChainBreak`] this event causes.
    pub fn push_computed(
        &mut self,
        stream: &str,
        revision: u64,
        prev_hash: &EventHash,
        hash: EventHash,
    ) -> Result<(), ChainBreak> {
        self.check_link(stream, revision, prev_hash)?;
        self.advance(hash);
        Ok(())
    }

    fn check_link(&self, stream: &str, revision: u64, prev_hash: &EventHash) -> Result<(), ChainBreak> {
        if revision != self.next_revision {
            return Err(ChainBreak::RevisionGap {
                stream: stream.to_owned(),
                expected: self.next_revision,
                found: revision,
            });
        }
        if *prev_hash != self.prev.unwrap_or(EventHash::GENESIS) {
            return Err(ChainBreak::BrokenLink { stream: stream.to_owned(), revision });
        }
        Ok(())
    }

    fn advance(&mut self, hash: EventHash) {
        self.prev = Some(hash);
        self.next_revision += 1;
    }
}

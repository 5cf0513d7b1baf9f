//! The event store: one trait, several backends, one contract suite
//! (`ledger/tests/store_contract.rs`) that every backend passes.
//!
//! - [`EventStore`]: append with an expected revision, idempotent retry by event id, read a
//!   stream, read the global log, subscribe to the global log (catch-up, then live).
//! - [`sqlite`]: the embedded default (WAL, `synchronous=FULL`, one writer with group commit).
//! - [`postgres`]: PostgreSQL for several replicas (gapless commit-ordered log under a
//!   row lock, group commit, versioned migrations).
//! - [`kurrent`]: KurrentDB for deployments that run a KurrentDB cluster (gapless ordinals
//!   derived from `$all`, retries recognised by event id).
//! - [`keys`]: subject keys beside the events, for sealing and crypto-shredding.
//! - [`group_commit`]: the queue and batch draining every group-committing writer shares.
//! - [`faulty`]: a fault-injecting wrapper for tests (fail before or after writing, break a
//!   subscription).
//! - [`commit_watch`]: a wrapper that says whether commits work now, for health.
//! - [`subscription`]: catch-up-then-live built on `read_all` plus a head signal, shared by
//!   backends.

pub mod commit_watch;
pub mod fanout;
pub mod faulty;
pub mod group_commit;
pub mod keys;
pub mod kurrent;
pub mod postgres;
pub mod sqlite;
pub mod subscription;

use crate::chain::EventHash;
use crate::envelope::{EventId, ExpectedRevision, ProposedEvent, RecordedEvent, StreamId};
use async_trait::async_trait;
use futures::stream::BoxStream;

/// Most events accepted in one append.
pub const MAX_EVENTS_PER_APPEND: usize = 1_000;

/// Where an append landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendOutcome {
    /// The stream's revision after the append: the revision of its last event.
    pub stream_revision: u64,
    /// Global position of each appended event, in order.
    pub positions: Vec<u64>,
    /// Hash of each appended event, in order; the last is the stream's new head.
    pub hashes: Vec<EventHash>,
    /// Hash of the event before the first appended one ([`EventHash::GENESIS`] at revision 0).
    pub prev_hash: EventHash,
    /// True when the events were already stored by an earlier identical append; nothing new
    /// was written.
    pub deduplicated: bool,
}

/// Everything an event store can refuse or fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("wrong expected revision on stream {stream}: expected {expected}, actual {}", actual.map_or("no stream".to_string(), |r| format!("revision {r}")))]
    WrongExpectedRevision { stream: StreamId, expected: ExpectedRevision, actual: Option<u64> },
    #[error("event id {event_id} is already used by different content or in another place")]
    EventIdConflict { event_id: EventId },
    #[error("invalid append: {0}")]
    InvalidAppend(String),
    #[error("the store is shut down")]
    Closed,
    #[error("store data is inconsistent: {0}")]
    Corrupt(String),
    #[error("store backend failed: {0}")]
    Backend(String),
    /// The connection broke after the commit was sent: the append may or may not be stored.
    /// Retrying with the same event ids is safe (retries are idempotent).
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
}

impl StoreError {
    /// Whether this says the store itself is failing (rather than refusing this append).
    pub fn is_store_failure(&self) -> bool {
        matches!(self, Self::Backend(_) | Self::OutcomeUnknown(_))
    }
}

/// The contract every backend meets. Positions are gapless and in commit order; revisions
/// start at 0; appends are all-or-nothing and acknowledged only once durable.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if the stream is at `expected`. When the first event id is
    /// already stored in this stream, the append is a retry: if every event matches what is
    /// stored (id, type, payload) the original outcome is returned with `deduplicated`
    /// set and nothing is written.
    ///
    /// # Errors
    /// [`StoreError::WrongExpectedRevision`], [`StoreError::EventIdConflict`] for a reused id
    /// with other content, [`StoreError::InvalidAppend`] for an empty or oversized batch, or
    /// a backend failure. On error nothing is written.
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendOutcome, StoreError>;

    /// Up to `limit` events of `stream` from revision `from`, in revision order. A missing
    /// stream reads as empty.
    ///
    /// # Errors
    /// A backend failure.
    async fn read_stream(&self, stream: &StreamId, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Up to `limit` events of the global log from position `from`, in position order.
    ///
    /// # Errors
    /// A backend failure.
    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError>;

    /// The revision of the stream's last event, or `None` when it has none.
    ///
    /// # Errors
    /// A backend failure.
    async fn stream_revision(&self, stream: &StreamId) -> Result<Option<u64>, StoreError>;

    /// Every event from global position `from` on: first those already stored, then each new
    /// one as it commits, without gaps or repeats.
    fn subscribe_all(&self, from: u64) -> BoxStream<'static, Result<RecordedEvent, StoreError>>;

    /// Proves that the store can commit now, without writing to the log: SQLite and
    /// PostgreSQL run a small write transaction on their writer's own connection (which
    /// also reconnects it); other backends read, which proves only that they are reachable.
    /// Health uses it to learn that commits work again while no append arrives.
    ///
    /// # Errors
    /// The backend's failure.
    async fn probe_writes(&self) -> Result<(), StoreError> {
        self.stream_revision(&crate::treehead::stream()).await.map(drop)
    }

    /// Lets every queued append commit, then stops accepting appends (they fail with
    /// [`StoreError::Closed`]) and releases what the store holds.
    async fn shutdown(&self);
}

/// Where one proposed event lands: computed once, before any backend writes a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub position: u64,
    pub revision: u64,
    pub prev_hash: EventHash,
    pub hash: EventHash,
}

/// Chains `events` onto a stream whose last event is `head` (revision and hash), at global
/// positions from `first_position`: the revisions, positions and hash chain every backend
/// stores.
pub fn link(
    stream: &StreamId,
    head: Option<(u64, EventHash)>,
    first_position: u64,
    events: &[ProposedEvent],
) -> Vec<Link> {
    let mut prev_hash = head.map_or(EventHash::GENESIS, |h| h.1);
    let first_revision = head.map_or(0, |h| h.0 + 1);
    events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let revision = first_revision + i as u64;
            let hash = crate::chain::hash_event(&crate::envelope::CanonicalFields {
                stream,
                revision,
                event_id: &event.event_id,
                event_type: &event.event_type,
                recorded_at_micros: event.recorded_at_micros,
                payload: &event.payload,
                prev_hash: &prev_hash,
            });
            let link = Link { position: first_position + i as u64, revision, prev_hash, hash };
            prev_hash = hash;
            link
        })
        .collect()
}

impl AppendOutcome {
    /// The outcome of a fresh append whose events landed at `links` (at least one).
    pub fn written(links: &[Link]) -> Self {
        Self {
            stream_revision: links.last().map_or(0, |l| l.revision),
            positions: links.iter().map(|l| l.position).collect(),
            hashes: links.iter().map(|l| l.hash).collect(),
            prev_hash: links.first().map_or(EventHash::GENESIS, |l| l.prev_hash),
            deduplicated: false,
        }
    }
}

/// Checks the shape of a batch before any backend sees it.
///
/// # Errors
/// [`StoreError::InvalidAppend`] for an empty or oversized batch or a repeated event id.
pub fn check_batch(events: &[ProposedEvent]) -> Result<(), StoreError> {
    if events.is_empty() {
        return Err(StoreError::InvalidAppend("no events to append".into()));
    }
    if events.len() > MAX_EVENTS_PER_APPEND {
        return Err(StoreError::InvalidAppend(format!(
            "{} events in one append; at most {MAX_EVENTS_PER_APPEND}",
            events.len()
        )));
    }
    let mut seen = std::collections::HashSet::with_capacity(events.len());
    if let Some(dup) = events.iter().find(|e| !seen.insert(e.event_id)) {
        return Err(StoreError::InvalidAppend(format!("event id {} appears twice in one append", dup.event_id)));
    }
    Ok(())
}

/// Whether a stream at `actual` satisfies `expected`.
pub fn revision_matches(expected: ExpectedRevision, actual: Option<u64>) -> bool {
    match expected {
        ExpectedRevision::Any => true,
        ExpectedRevision::NoStream => actual.is_none(),
        ExpectedRevision::Exact(n) => actual == Some(n),
    }
}

/// What an append whose first id is already stored gets: the earlier append's outcome when
/// it is a faithful retry, a conflict when not ([`resolve_retry`]); `None` when its first id
/// is new. `stored` holds the stored events with the append's ids, in the append's order.
pub fn earlier_append(
    stream: &StreamId,
    proposed: &[ProposedEvent],
    stored: &[Option<RecordedEvent>],
) -> Option<Result<AppendOutcome, StoreError>> {
    stored.first().and_then(Option::as_ref).map(|_| resolve_retry(stream, proposed, stored))
}

/// Decides whether a batch whose first id is already stored is a faithful retry.
/// `stored` holds the stored events with the batch's ids, in the batch's order.
///
/// # Errors
/// [`StoreError::EventIdConflict`] naming the first id that differs.
pub fn resolve_retry(
    stream: &StreamId,
    proposed: &[ProposedEvent],
    stored: &[Option<RecordedEvent>],
) -> Result<AppendOutcome, StoreError> {
    let mut positions = Vec::with_capacity(proposed.len());
    let mut hashes = Vec::with_capacity(proposed.len());
    let mut prev: Option<&RecordedEvent> = None;
    for (p, s) in proposed.iter().zip(stored) {
        let conflict = || StoreError::EventIdConflict { event_id: p.event_id };
        let s = s.as_ref().ok_or_else(conflict)?;
        let contiguous = prev.is_none_or(|prev| s.revision == prev.revision + 1);
        if &s.stream != stream || !contiguous || !p.same_content_as(s) {
            return Err(conflict());
        }
        positions.push(s.position);
        hashes.push(s.hash);
        prev = Some(s);
    }
    let last = prev.ok_or_else(|| StoreError::InvalidAppend("no events to append".into()))?;
    let prev_hash = stored.first().and_then(Option::as_ref).map_or(EventHash::GENESIS, |e| e.prev_hash);
    Ok(AppendOutcome { stream_revision: last.revision, positions, hashes, prev_hash, deduplicated: true })
}

impl AppendOutcome {
    /// The hash of the stream's last appended event.
    pub fn last_hash(&self) -> EventHash {
        self.hashes.last().copied().unwrap_or(EventHash::GENESIS)
    }

    /// The outcome of `len` events starting at the `from`th of this append, as if they had
    /// been appended alone (a family's group commit answers each append with its part).
    pub fn part(&self, from: usize, len: usize) -> AppendOutcome {
        let to = from + len;
        let last_revision = self.stream_revision + 1 - self.positions.len() as u64 + to as u64 - 1;
        AppendOutcome {
            stream_revision: last_revision,
            positions: self.positions[from..to].to_vec(),
            hashes: self.hashes[from..to].to_vec(),
            prev_hash: if from == 0 { self.prev_hash } else { self.hashes[from - 1] },
            deduplicated: self.deduplicated,
        }
    }

    /// The stored form of `events`, the batch this outcome answers, without reading it back.
    pub fn recorded(&self, stream: &StreamId, events: &[ProposedEvent]) -> Vec<RecordedEvent> {
        self.into_recorded(stream, events.to_vec())
    }

    /// [`AppendOutcome::recorded`], taking the events rather than copying them.
    pub fn into_recorded(&self, stream: &StreamId, events: Vec<ProposedEvent>) -> Vec<RecordedEvent> {
        let first_revision = self.stream_revision + 1 - events.len() as u64;
        let mut prev_hash = self.prev_hash;
        events
            .into_iter()
            .zip(self.positions.iter().zip(&self.hashes))
            .enumerate()
            .map(|(i, (e, (&position, &hash)))| {
                let event = RecordedEvent {
                    stream: stream.clone(),
                    revision: first_revision + i as u64,
                    position,
                    event_id: e.event_id,
                    event_type: e.event_type,
                    recorded_at_micros: e.recorded_at_micros,
                    payload: e.payload,
                    prev_hash,
                    hash,
                };
                prev_hash = hash;
                event
            })
            .collect()
    }
}

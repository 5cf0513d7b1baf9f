//! Publishes signed tree heads while the service runs: it follows the global log into the
//! proof index ([`crate::proof_index`], whose full tiles it persists), and every N events or
//! T seconds signs the current size and appends it to the tree-head stream.
//!
//! Several replicas may publish over one shared store. Each append expects the tree-head
//! stream's exact revision, so the heads form one linear chain: a replica that loses the
//! race reloads the latest head and publishes again only once its own view has grown
//! past it. Roots are a function of the log, so two heads for one size cannot disagree.

use crate::clock::Clock;
use crate::envelope::{ExpectedRevision, ProposedEvent};
use crate::merkle::leaf_hash;
use crate::proof_index::LogIndex;
use crate::store::{EventStore, StoreError};
use crate::treehead::{self, SignedTreeHead, TreeHeadSigner};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// When to publish.
#[derive(Debug, Clone, Copy)]
pub struct PublishPolicy {
    /// Publish once this many new events (other than tree heads) have been logged.
    pub every_events: u64,
    /// Publish at least this often while new events arrive.
    pub every: Duration,
}

/// The latest head as published, to chain the next one onto.
#[derive(Debug, Clone, Copy, Default)]
struct Latest {
    revision: Option<u64>,
    size: u64,
    timestamp_micros: i64,
}

/// What the publisher is doing, for health: how far it has indexed, and how much of the
/// log no signed head covers yet.
#[derive(Debug, Clone, Default)]
pub struct PublisherStatus {
    /// Events in the proof index.
    pub indexed: u64,
    /// The index holds every event under the latest signed head it found when it (re)started:
    /// proofs against published heads can be served.
    pub caught_up: bool,
    /// Size of the latest signed head this publisher knows.
    pub signed_size: u64,
    /// Events (other than tree heads) indexed since that head.
    pub uncovered: u64,
    /// When the oldest of those arrived.
    pub uncovered_since: Option<Instant>,
    /// When the publisher stopped on an error, while it waits to restart.
    pub stopped_since: Option<Instant>,
    pub restarts: u64,
}

/// The first wait before restarting after an error, doubled per failed attempt.
const FIRST_RESTART_BACKOFF: Duration = Duration::from_millis(100);
const MAX_RESTART_BACKOFF: Duration = Duration::from_secs(5);

/// Follows the log and publishes heads until the store's subscription ends (the store shut
/// down) or the task is aborted. A store failure stops one run; the publisher then restarts
/// with backoff, resuming from what the index already holds, and says so in the log.
pub async fn run(
    store: Arc<dyn EventStore>,
    signer: Arc<TreeHeadSigner>,
    clock: Arc<dyn Clock>,
    policy: PublishPolicy,
    index: LogIndex,
    status: watch::Sender<PublisherStatus>,
) {
    let mut backoff = FIRST_RESTART_BACKOFF;
    loop {
        let indexed_before = index.size();
        let result = run_once(&*store, &signer, &*clock, policy, &index, &status).await;
        let Err(e) = result else { return };
        if index.size() > indexed_before {
            backoff = FIRST_RESTART_BACKOFF;
        }
        let restarts = status.borrow().restarts + 1;
        status.send_modify(|s| {
            s.restarts = restarts;
            s.stopped_since.get_or_insert_with(Instant::now);
        });
        tracing::warn!(error = %e, restarts, retry_in_ms = backoff.as_millis() as u64, "tree-head publisher stopped; restarting");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_RESTART_BACKOFF);
    }
}

/// One run: from the index's size, until the subscription ends or fails.
async fn run_once(
    store: &dyn EventStore,
    signer: &TreeHeadSigner,
    clock: &dyn Clock,
    policy: PublishPolicy,
    index: &LogIndex,
    status: &watch::Sender<PublisherStatus>,
) -> Result<(), StoreError> {
    let heads = treehead::stream();
    let cosignatures = crate::cosignatures::stream();
    let restored = index.restore().await?;
    tracing::info!(size = restored.size, tiles_read = restored.tiles_read, "proof index restored from its tiles");
    let mut latest = load_latest(store).await?;
    let start_target = latest.size;
    let mut log = store.subscribe_all(index.size());
    let mut ticker = tokio::time::interval(policy.every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    status.send_modify(|s| {
        s.stopped_since = None;
        s.signed_size = latest.size;
        s.indexed = index.size();
        s.caught_up = index.size() >= start_target;
    });
    loop {
        let due = tokio::select! {
            next = log.next() => {
                let Some(event) = next else { return Ok(()) };
                let event = event?;
                let full = index.push(leaf_hash(&event.canonical_bytes()));
                if !full.is_empty() {
                    index.persist(&full).await?;
                }
                let size = index.size();
                // Heads, their cosignatures and tiles alone never call for a new head: each
                // would call for the next, forever.
                let is_head = event.stream == heads
                    || event.stream == cosignatures
                    || crate::proof_index::is_tile_stream(&event.stream);
                status.send_modify(|s| {
                    s.indexed = size;
                    s.caught_up = size >= start_target;
                    if !is_head && size > s.signed_size {
                        s.uncovered += 1;
                        s.uncovered_since.get_or_insert_with(Instant::now);
                    }
                    metrics::gauge!("gezinsdossier_tree_head_lag_events").set(s.uncovered as f64);
                });
                status.borrow().uncovered >= policy.every_events
            }
            _ = ticker.tick() => status.borrow().uncovered > 0,
        };
        let size = index.size();
        if !due || size <= latest.size {
            continue;
        }
        let timestamp_micros = clock.now().timestamp_micros().max(latest.timestamp_micros);
        let Ok(root) = index.root(size).await else { continue };
        let head = signer.sign(size, &root, timestamp_micros);
        let expected = latest.revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
        match store.append(&heads, expected, vec![published(&head)]).await {
            Ok(outcome) => {
                tracing::info!(size = head.size, "tree head published");
                latest = Latest { revision: Some(outcome.stream_revision), size: head.size, timestamp_micros };
                status.send_modify(|s| s.covered_up_to(head.size));
            }
            Err(StoreError::WrongExpectedRevision { .. }) => {
                // Another replica published first; chain onto its head.
                latest = load_latest(store).await?;
                if latest.size >= size {
                    status.send_modify(|s| s.covered_up_to(latest.size));
                }
            }
            Err(e) => tracing::warn!(error = %e, "tree head not published; will retry"),
        }
    }
}

impl PublisherStatus {
    fn covered_up_to(&mut self, size: u64) {
        self.signed_size = self.signed_size.max(size);
        // What arrived while signing is at most this much, and counts from now.
        self.uncovered = self.indexed.saturating_sub(self.signed_size);
        self.uncovered_since = (self.uncovered > 0).then(Instant::now);
        metrics::gauge!("gezinsdossier_tree_head_lag_events").set(self.uncovered as f64);
        metrics::gauge!("gezinsdossier_tree_head_size").set(self.signed_size as f64);
    }
}

fn published(head: &SignedTreeHead) -> ProposedEvent {
    ProposedEvent {
        event_id: uuid::Uuid::new_v4(),
        event_type: treehead::EVENT_TYPE.to_owned(),
        recorded_at_micros: head.timestamp_micros,
        payload: crate::codec::to_json(head),
    }
}

/// The latest published tree head, if any.
///
/// # Errors
/// A store failure, or a tree-head event that cannot be read.
pub async fn latest_head(store: &dyn EventStore) -> Result<Option<SignedTreeHead>, StoreError> {
    let heads = treehead::stream();
    let Some(revision) = store.stream_revision(&heads).await? else { return Ok(None) };
    let event = store
        .read_stream(&heads, revision, 1)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("tree-head stream revision without its event".into()))?;
    SignedTreeHead::from_event(&event).map(Some).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// The origin the latest tree head's checkpoint was signed as (its first line, by the
/// C2SP format), if any head carries one.
///
/// # Errors
/// As [`latest_head`].
pub async fn latest_origin(store: &dyn EventStore) -> Result<Option<String>, StoreError> {
    let head = latest_head(store).await?;
    Ok(head.and_then(|h| h.checkpoint).and_then(|note| note.lines().next().map(str::to_owned)))
}

async fn load_latest(store: &dyn EventStore) -> Result<Latest, StoreError> {
    let revision = store.stream_revision(&treehead::stream()).await?;
    Ok(match latest_head(store).await? {
        Some(head) => Latest { revision, size: head.size, timestamp_micros: head.timestamp_micros },
        None => Latest::default(),
    })
}

//! Publishes signed tree heads while the service runs: it follows the global log, keeps the
//! Merkle root in a compact range, and every N events or T seconds signs the current size
//! and appends it to the tree-head stream.
//!
//! Several replicas may publish over one shared store. Each append expects the tree-head
//! stream's exact revision, so the heads form one linear chain: a replica that loses the
//! race reloads the latest head and publishes again only once its own view has grown
//! past it. Roots are a function of the log, so two heads for one size cannot disagree.

use crate::clock::Clock;
use crate::envelope::{ExpectedRevision, ProposedEvent};
use crate::merkle::{CompactRange, leaf_hash};
use crate::store::{EventStore, StoreError};
use crate::treehead::{self, SignedTreeHead, TreeHeadSigner};
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;

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

/// Runs until the store's subscription ends (the store shut down) or the task is aborted.
///
/// # Errors
/// A store failure while following the log.
pub async fn run(
    store: Arc<dyn EventStore>,
    signer: Arc<TreeHeadSigner>,
    clock: Arc<dyn Clock>,
    policy: PublishPolicy,
) -> Result<(), StoreError> {
    let heads = treehead::stream();
    let mut latest = load_latest(&*store).await?;
    let mut range = CompactRange::new();
    let mut unsigned = 0u64;
    let mut log = store.subscribe_all(0);
    let mut ticker = tokio::time::interval(policy.every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due = tokio::select! {
            next = log.next() => {
                let Some(event) = next else { return Ok(()) };
                let event = event?;
                range.push(leaf_hash(&event.canonical_bytes()));
                if event.stream != heads {
                    unsigned += 1;
                }
                unsigned >= policy.every_events
            }
            _ = ticker.tick() => unsigned > 0,
        };
        if !due || range.size() <= latest.size {
            continue;
        }
        let timestamp_micros = clock.now().timestamp_micros().max(latest.timestamp_micros);
        let head = signer.sign(range.size(), &range.root(), timestamp_micros);
        let expected = latest.revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
        match store.append(&heads, expected, vec![published(&head)]).await {
            Ok(outcome) => {
                tracing::info!(size = head.size, "tree head published");
                latest = Latest { revision: Some(outcome.stream_revision), size: head.size, timestamp_micros };
                unsigned = 0;
            }
            Err(StoreError::WrongExpectedRevision { .. }) => {
                // Another replica published first; chain onto its head.
                latest = load_latest(&*store).await?;
                if latest.size >= range.size() {
                    unsigned = 0;
                }
            }
            Err(e) => tracing::warn!(error = %e, "tree head not published; will retry"),
        }
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

async fn load_latest(store: &dyn EventStore) -> Result<Latest, StoreError> {
    let heads = treehead::stream();
    let Some(revision) = store.stream_revision(&heads).await? else { return Ok(Latest::default()) };
    let event = store
        .read_stream(&heads, revision, 1)
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("tree-head stream revision without its event".into()))?;
    let head = SignedTreeHead::from_event(&event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Latest { revision: Some(revision), size: head.size, timestamp_micros: head.timestamp_micros })
}

//! Routes each commit, once, to the subscribers to every family that it may concern, so
//! that a subscriber looks only at its own families' events instead of the whole log.
//!
//! Routing is an optimisation, never the check: a subscriber still decides what it may see
//! (`Families::feed_concerns`, then the dossier rules). A commit whose family's cached state
//! cannot be read without waiting goes to every subscriber, so nothing is ever withheld by
//! routing.

use futures::StreamExt;
use gezinsdossier_ledger::authorisation::Caller;
use gezinsdossier_ledger::envelope::RecordedEvent;
use gezinsdossier_ledger::families::{Families, family_of, notice_in};
use gezinsdossier_ledger::proof_index::LogIndex;
use gezinsdossier_ledger::store::StoreError;
use gezinsdossier_ledger::store::fanout::Fanout;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Routed events queued per subscriber; one that lets its queue fill is dropped (its stream
/// ends, and it resumes from its last token).
const QUEUE: usize = 8192;

pub type Routed = Result<Arc<RecordedEvent>, StoreError>;

struct Subscriber {
    caller: Caller,
    tx: mpsc::Sender<Routed>,
}

#[derive(Default)]
struct Registry {
    /// The next global position to route; `None` until the router runs.
    next: Option<u64>,
    subscribers: Vec<Subscriber>,
}

pub struct FeedRouter {
    families: Arc<Families>,
    log: Arc<Fanout>,
    index: LogIndex,
    registry: Arc<Mutex<Registry>>,
}

impl FeedRouter {
    pub fn new(families: Arc<Families>, log: Arc<Fanout>, index: LogIndex) -> Self {
        Self { families, log, index, registry: Arc::default() }
    }

    /// Registers `caller`: returns the first position that will be routed to it, and its
    /// queue. Everything before that position is the subscriber's to read itself.
    pub fn register(&self, caller: Caller) -> (u64, mpsc::Receiver<Routed>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let next = match registry.next {
            Some(next) => next,
            None => {
                let from = self.index.size();
                registry.next = Some(from);
                tokio::spawn(route(self.families.clone(), self.log.follow(from), self.registry.clone()));
                from
            }
        };
        registry.subscribers.push(Subscriber { caller, tx });
        (next, rx)
    }
}

async fn route(
    families: Arc<Families>,
    mut log: futures::stream::BoxStream<'static, Routed>,
    registry: Arc<Mutex<Registry>>,
) {
    while let Some(mut event) = log.next().await {
        if let Ok(e) = &event
            && let Err(failed) = families.load_notice_keys([&**e]).await
        {
            event = Err(StoreError::Backend(failed.to_string()));
        }
        let mut registry = registry.lock().unwrap_or_else(|e| e.into_inner());
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                // Every subscriber is told; the next registration starts a new read.
                for s in registry.subscribers.drain(..) {
                    let _ = s.tx.try_send(Err(e.clone()));
                }
                registry.next = None;
                return;
            }
        };
        registry.next = Some(event.position + 1);
        let audience: Option<Vec<bool>> = if let Some(family) = family_of(&event) {
            families.feed_audience(&family, event.revision, registry.subscribers.iter().map(|s| &s.caller))
        } else if let Some((_, _, notice)) = notice_in(&event, &**families.keys()) {
            Some(
                registry
                    .subscribers
                    .iter()
                    .map(|s| s.caller.organisation() == notice.recipient_organisation_id)
                    .collect(),
            )
        } else {
            // Disclosures, tree heads and the like concern no subscriber.
            continue;
        };
        let mut i = 0;
        registry.subscribers.retain(|s| {
            let routed = audience.as_ref().is_none_or(|a| a.get(i).copied().unwrap_or(true));
            i += 1;
            // A full or closed queue drops the subscriber: its stream ends and it resumes.
            !s.tx.is_closed() && (!routed || s.tx.try_send(Ok(event.clone())).is_ok())
        });
    }
}

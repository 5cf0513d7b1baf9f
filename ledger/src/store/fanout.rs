//! One live read of the global log shared by many followers (the change feed's
//! subscribers), so that a hundred subscribers cost one read of each new event, not a
//! hundred.
//!
//! A follower subscribes to the shared broadcast first, then catches up from the store up
//! to what the broadcast carries; whenever the broadcast skips ahead (the follower lagged
//! behind its bounded buffer, or it started earlier), the gap is read from the store. So
//! every follower still sees every event from its start, in order, exactly once.

use super::{EventStore, StoreError, subscription::PAGE};
use crate::envelope::RecordedEvent;
use futures::StreamExt;
use futures::stream::BoxStream;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Events held for followers that read slowly; one that falls further behind reads the
/// gap from the store instead.
const BUFFERED: usize = 4096;

type Shared = Result<Arc<RecordedEvent>, StoreError>;

/// The shared live read, started by the first follower and restarted by the next one after
/// it ended (a store failure ends it, and every follower with it).
pub struct Fanout {
    store: Arc<dyn EventStore>,
    live: Mutex<Option<broadcast::Sender<Shared>>>,
}

impl Fanout {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self { store, live: Mutex::new(None) }
    }

    /// Every event from global position `from` on, then each new one as it commits.
    pub fn follow(self: &Arc<Self>, from: u64) -> BoxStream<'static, Result<Arc<RecordedEvent>, StoreError>> {
        let mut live = self.live_from(from);
        let store = self.store.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(PAGE);
        tokio::spawn(async move {
            let mut next = from;
            // Catch up with what is committed now; what commits meanwhile is in `live` too.
            if !fill(&*store, &mut next, None, &tx).await {
                return;
            }
            loop {
                let event = tokio::select! {
                    event = live.recv() => event,
                    () = tx.closed() => return,
                };
                match event {
                    Ok(Ok(event)) if event.position < next => {}
                    Ok(Ok(event)) => {
                        if !fill(&*store, &mut next, Some(event.position), &tx).await {
                            return;
                        }
                        next += 1;
                        if tx.send(Ok(event)).await.is_err() {
                            return;
                        }
                    }
                    Ok(Err(e)) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    // Fell behind the broadcast: the next event it gets shows the gap.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))
    }

    /// A receiver of the shared read, starting that read at `from` when none runs.
    fn live_from(self: &Arc<Self>, from: u64) -> broadcast::Receiver<Shared> {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = live.as_ref() {
            return sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(BUFFERED);
        *live = Some(sender.clone());
        let mut log = self.store.subscribe_all(from);
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                let event = log.next().await.unwrap_or(Err(StoreError::Closed));
                let failed = event.is_err();
                let unheard = sender.send(event.map(Arc::new)).is_err();
                // Ended, or nobody listens: the next follower starts a new read. Decided
                // under the lock, so that no follower subscribes to a read that stopped.
                if failed || unheard {
                    let mut live = this.live.lock().unwrap_or_else(|e| e.into_inner());
                    if failed || sender.receiver_count() == 0 {
                        *live = None;
                        return;
                    }
                }
            }
        });
        receiver
    }
}

/// Sends the store's events from `*next` up to `until` (exclusive; with `None`, up to the
/// head), advancing `*next`. Returns whether the follower goes on.
async fn fill(
    store: &dyn EventStore,
    next: &mut u64,
    until: Option<u64>,
    tx: &tokio::sync::mpsc::Sender<Result<Arc<RecordedEvent>, StoreError>>,
) -> bool {
    loop {
        if until.is_some_and(|u| *next >= u) {
            return true;
        }
        let limit = until.map_or(PAGE, |u| PAGE.min((u - *next) as usize));
        let page = match store.read_all(*next, limit).await {
            Ok(page) => page,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return false;
            }
        };
        let short = page.len() < limit;
        for event in page {
            if event.position != *next {
                let why = format!("global log jumped from {next} to {}", event.position);
                let _ = tx.send(Err(StoreError::Corrupt(why))).await;
                return false;
            }
            *next += 1;
            if tx.send(Ok(Arc::new(event))).await.is_err() {
                return false;
            }
        }
        if short {
            // Up to `until`, the store holds every position: the shared read saw it.
            if until.is_some_and(|u| *next < u) {
                let _ = tx.send(Err(StoreError::Corrupt(format!("global log has no event at {next}")))).await;
                return false;
            }
            return true;
        }
    }
}

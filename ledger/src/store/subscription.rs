//! Catch-up-then-live subscriptions over the global log, for any backend that can read the
//! log by position and signal that its head moved.

use super::StoreError;
use crate::envelope::RecordedEvent;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// How many events one catch-up read fetches.
pub const PAGE: usize = 512;

/// Reads the global log: `(from, limit)` to events.
pub type ReadAll = Arc<dyn Fn(u64, usize) -> BoxFuture<'static, Result<Vec<RecordedEvent>, StoreError>> + Send + Sync>;

/// Events a store's writer hands over as they commit, a batch at a time, so that a
/// subscriber in the same process need not read them back. Sent before the head moves past
/// them.
pub type Committed = Arc<[RecordedEvent]>;

/// Batches of [`Committed`] events held for a subscriber that has not taken them yet; one
/// that falls further behind reads the rest from the store. A batch is dropped once every
/// subscriber took it, so a lagging one holds at most this many, of at most
/// [`TAPPED_EVENTS`] events each (~32 at 64 appending clients).
pub const TAPPED_BATCHES: usize = 32;

/// Most events one group commit hands over; subscribers read a larger one from the store.
pub const TAPPED_EVENTS: usize = 512;

/// Yields every event from `from`, reading pages until caught up, then waiting for `head`
/// (the next unused global position) to move past what it has delivered. With `tap`, new
/// events are taken from what the writer handed over, and read from the store only where
/// the tap has a gap (it lagged, or another process appended).
///
/// Gaps cannot occur because positions are gapless and only committed events are readable;
/// the loop asks for exactly the next position each time.
pub fn catch_up_then_live(
    read_all: ReadAll,
    mut head: watch::Receiver<u64>,
    mut tap: Option<broadcast::Receiver<Committed>>,
    from: u64,
) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
    let stream = async_stream_like(move |tx| async move {
        let mut next = from;
        // Caught up once the store returned a short page: from then on, wait for the head.
        let mut caught_up = false;
        loop {
            if caught_up {
                // Wait until the committed head is past what we delivered.
                while *head.borrow_and_update() <= next {
                    tokio::select! {
                        changed = head.changed() => if changed.is_err() { return },
                        () = tx.closed() => return,
                    }
                }
                if let Some(receiver) = tap.as_mut() {
                    match take_tapped(receiver, &mut next, &tx).await {
                        None => return,
                        Some(false) => tap = None,
                        Some(true) => {}
                    }
                    if *head.borrow() <= next {
                        continue;
                    }
                }
            }
            let page = match read_all(next, PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            caught_up = page.len() < PAGE;
            for event in page {
                if event.position != next {
                    let _ = tx
                        .send(Err(StoreError::Corrupt(format!("global log jumped from {next} to {}", event.position))))
                        .await;
                    return;
                }
                next += 1;
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        }
    });
    Box::pin(stream)
}

/// Sends what the tap holds from `*next` on, up to its first gap. `None`: the subscriber
/// went away; `Some(false)`: the tap closed.
async fn take_tapped(
    tap: &mut broadcast::Receiver<Committed>,
    next: &mut u64,
    tx: &tokio::sync::mpsc::Sender<Result<RecordedEvent, StoreError>>,
) -> Option<bool> {
    loop {
        let batch = match tap.try_recv() {
            Ok(batch) => batch,
            Err(broadcast::error::TryRecvError::Empty) => return Some(true),
            // What was skipped is read from the store.
            Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
            Err(broadcast::error::TryRecvError::Closed) => return Some(false),
        };
        let from = *next;
        for event in batch.iter().filter(|e| e.position >= from) {
            if event.position != *next {
                // A gap: the store has it; the rest of this batch is read with it.
                return Some(true);
            }
            *next += 1;
            tx.send(Ok(event.clone())).await.ok()?;
        }
    }
}

/// [`catch_up_then_live`] over a store's own `read_all`.
pub fn follow<S: super::EventStore + Clone>(
    store: &S,
    head: watch::Receiver<u64>,
    tap: Option<broadcast::Receiver<Committed>>,
    from: u64,
) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
    let store = store.clone();
    let read_all: ReadAll = Arc::new(move |from, limit| {
        let store = store.clone();
        Box::pin(async move { store.read_all(from, limit).await })
    });
    catch_up_then_live(read_all, head, tap, from)
}

/// A channel-backed stream driven by a spawned task: the task ends when the consumer drops.
pub(super) fn async_stream_like<F, Fut>(
    body: F,
) -> tokio_stream::wrappers::ReceiverStream<Result<RecordedEvent, StoreError>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Result<RecordedEvent, StoreError>>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(PAGE);
    tokio::spawn(body(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

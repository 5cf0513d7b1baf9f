//! Catch-up-then-live subscriptions over the global log, for any backend that can read the
//! log by position and signal that its head moved.

use super::StoreError;
use crate::envelope::RecordedEvent;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use std::sync::Arc;
use tokio::sync::watch;

/// How many events one catch-up read fetches.
pub const PAGE: usize = 512;

/// Reads the global log: `(from, limit)` to events.
pub type ReadAll = Arc<dyn Fn(u64, usize) -> BoxFuture<'static, Result<Vec<RecordedEvent>, StoreError>> + Send + Sync>;

/// Yields every event from `from`, reading pages until caught up, then waiting for `head`
/// (the next unused global position) to move past what it has delivered.
///
/// Gaps cannot occur because positions are gapless and only committed events are readable;
/// the loop asks for exactly the next position each time.
pub fn catch_up_then_live(
    read_all: ReadAll,
    mut head: watch::Receiver<u64>,
    from: u64,
) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
    let stream = async_stream_like(move |tx| async move {
        let mut next = from;
        loop {
            let page = match read_all(next, PAGE).await {
                Ok(page) => page,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            let full = page.len() == PAGE;
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
            if full {
                continue;
            }
            // Wait until the committed head is past what we delivered.
            loop {
                if *head.borrow_and_update() > next {
                    break;
                }
                tokio::select! {
                    changed = head.changed() => if changed.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        }
    });
    Box::pin(stream)
}

/// [`catch_up_then_live`] over a store's own `read_all`.
pub fn follow<S: super::EventStore + Clone>(
    store: &S,
    head: watch::Receiver<u64>,
    from: u64,
) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
    let store = store.clone();
    let read_all: ReadAll = Arc::new(move |from, limit| {
        let store = store.clone();
        Box::pin(async move { store.read_all(from, limit).await })
    });
    catch_up_then_live(read_all, head, from)
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

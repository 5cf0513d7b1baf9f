//! A fault-injecting wrapper around any store, for tests that must prove derived state and
//! the log stay in step when the store fails: before writing, or after writing but
//! reporting an error ("wrote it, but said it failed"), a slow write, and a subscription
//! that breaks.

use super::{AppendOutcome, EventStore, StoreError};
use crate::envelope::{ExpectedRevision, ProposedEvent, RecordedEvent, StreamId};
use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use std::sync::{Arc, Mutex};

/// When an injected fault strikes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Refuse the append; nothing is written.
    BeforeWrite,
    /// Write, then report a failure anyway.
    AfterWrite,
    /// Write, but this much later (a slow disk), so that appends arriving meanwhile queue.
    Slow(std::time::Duration),
}

/// Wraps a store; appends to streams whose name starts with a chosen prefix fail.
pub struct FaultyStore<S> {
    inner: S,
    rule: Mutex<Option<(String, Fault)>>,
    /// One subscription fails, once, instead of delivering this global position.
    break_subscription: Arc<Mutex<Option<u64>>>,
    /// Appends the rule has met.
    met: std::sync::atomic::AtomicUsize,
}

impl<S> FaultyStore<S> {
    pub fn new(inner: S) -> Self {
        Self { inner, rule: Mutex::new(None), break_subscription: Arc::default(), met: Default::default() }
    }

    /// Makes the first subscription that reaches global position `position` fail there
    /// once (a read error), and end.
    pub fn break_subscription_at(&self, position: u64) {
        *self.break_subscription.lock().unwrap_or_else(|e| e.into_inner()) = Some(position);
    }

    /// Makes appends to streams starting with `prefix` fail as `fault`, until cleared.
    pub fn fail_appends(&self, prefix: &str, fault: Fault) {
        *self.rule.lock().unwrap_or_else(|e| e.into_inner()) = Some((prefix.to_owned(), fault));
    }

    /// How many appends the rules have met so far.
    pub fn appends_met(&self) -> usize {
        self.met.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn clear(&self) {
        *self.rule.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn fault_for(&self, stream: &StreamId) -> Option<Fault> {
        let rule = self.rule.lock().unwrap_or_else(|e| e.into_inner());
        let fault = rule.as_ref().filter(|(prefix, _)| stream.as_str().starts_with(prefix.as_str())).map(|(_, f)| *f);
        if fault.is_some() {
            self.met.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        fault
    }
}

#[async_trait]
impl<S: EventStore> EventStore for FaultyStore<S> {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        let injected = || StoreError::Backend("injected fault".into());
        match self.fault_for(stream) {
            Some(Fault::BeforeWrite) => Err(injected()),
            Some(Fault::AfterWrite) => {
                self.inner.append(stream, expected, events).await?;
                Err(injected())
            }
            Some(Fault::Slow(by)) => {
                tokio::time::sleep(by).await;
                self.inner.append(stream, expected, events).await
            }
            None => self.inner.append(stream, expected, events).await,
        }
    }

    async fn read_stream(&self, stream: &StreamId, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from, limit).await
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_all(from, limit).await
    }

    async fn stream_revision(&self, stream: &StreamId) -> Result<Option<u64>, StoreError> {
        self.inner.stream_revision(stream).await
    }

    fn subscribe_all(&self, from: u64) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
        let armed = self.break_subscription.clone();
        let breaks_here = move |event: &Result<RecordedEvent, StoreError>| {
            let mut armed = armed.lock().unwrap_or_else(|e| e.into_inner());
            let hit = matches!((event, *armed), (Ok(e), Some(p)) if e.position == p);
            if hit {
                *armed = None;
            }
            hit
        };
        let stream = self.inner.subscribe_all(from).map(move |event| {
            if breaks_here(&event) { Err(StoreError::Backend("injected read fault".into())) } else { event }
        });
        // A failed subscription ends after its error, as a real one does.
        let mut failed = false;
        Box::pin(stream.take_while(move |event| {
            let go_on = !failed;
            failed |= event.is_err();
            futures::future::ready(go_on)
        }))
    }

    /// Fails while every append fails before writing (a full disk, a lost database).
    async fn probe_writes(&self) -> Result<(), StoreError> {
        let every_stream_fails = matches!(
            &*self.rule.lock().unwrap_or_else(|e| e.into_inner()),
            Some((prefix, Fault::BeforeWrite)) if prefix.is_empty()
        );
        if every_stream_fails {
            return Err(StoreError::Backend("injected fault".into()));
        }
        self.inner.probe_writes().await
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await;
    }
}

//! Whether commits work right now: a wrapper that watches the outcome of every append and
//! write probe, so that health can say NOT_SERVING while the store cannot commit and
//! SERVING again once it can.

use super::{AppendOutcome, EventStore, StoreError};
use crate::envelope::{ExpectedRevision, ProposedEvent, RecordedEvent, StreamId};
use async_trait::async_trait;
use futures::stream::BoxStream;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::time::Instant;

/// The last word on commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitState {
    /// The last append or probe committed, or was refused for its own reasons (a revision
    /// conflict proves the store works).
    Working,
    /// The store failed since `since`; `error` is the latest failure.
    Failing { since: Instant, error: String },
}

/// Wraps a store and publishes its [`CommitState`].
pub struct CommitWatch {
    inner: Arc<dyn EventStore>,
    state: watch::Sender<CommitState>,
}

impl CommitWatch {
    pub fn new(inner: Arc<dyn EventStore>) -> Self {
        Self { inner, state: watch::channel(CommitState::Working).0 }
    }

    pub fn state(&self) -> watch::Receiver<CommitState> {
        self.state.subscribe()
    }

    fn observe<T>(&self, result: &Result<T, StoreError>) {
        match result {
            Err(e) if e.is_store_failure() => self.state.send_modify(|state| match state {
                CommitState::Failing { error, .. } => *error = e.to_string(),
                CommitState::Working => {
                    tracing::warn!(error = %e, "commits are failing");
                    *state = CommitState::Failing { since: Instant::now(), error: e.to_string() };
                }
            }),
            _ => {
                self.state.send_if_modified(|state| {
                    let was_failing = matches!(state, CommitState::Failing { .. });
                    if was_failing {
                        tracing::info!("commits work again");
                        *state = CommitState::Working;
                    }
                    was_failing
                });
            }
        }
    }
}

#[async_trait]
impl EventStore for CommitWatch {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        let result = self.inner.append(stream, expected, events).await;
        if !matches!(result, Err(StoreError::Closed)) {
            self.observe(&result);
        }
        result
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
        self.inner.subscribe_all(from)
    }

    async fn probe_writes(&self) -> Result<(), StoreError> {
        let result = self.inner.probe_writes().await;
        self.observe(&result);
        result
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await;
    }
}

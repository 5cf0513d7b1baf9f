//! What every writer with group commit shares: the queued append requests, and draining
//! the queue into one batch. Each backend then commits the batch its own way.

use super::subscription::{Committed, TAPPED_EVENTS};
use super::{AppendOutcome, StoreError};
use crate::envelope::{ExpectedRevision, ProposedEvent, StreamId};
use std::time::Instant;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// A message to a backend's writer.
pub enum WriterMsg {
    Append(AppendRequest),
    /// Check that the writer can commit (see [`super::EventStore::probe_writes`]); answered
    /// after the batch it was drained with.
    Probe(ProbeReply),
    /// Commit everything queued before this, then stop and acknowledge.
    Shutdown(oneshot::Sender<()>),
}

/// Where a write probe's answer goes.
pub type ProbeReply = oneshot::Sender<Result<(), StoreError>>;

/// One caller's append, waiting for its group commit.
pub struct AppendRequest {
    pub stream: StreamId,
    pub expected: ExpectedRevision,
    pub events: Vec<ProposedEvent>,
    pub reply: oneshot::Sender<Result<AppendOutcome, StoreError>>,
}

/// The append path of every group-committing store: check the batch, queue it for the
/// writer, wait for its commit.
///
/// # Errors
/// [`StoreError::InvalidAppend`] for a malformed batch, [`StoreError::Closed`] after
/// shutdown, or whatever the commit reports.
pub async fn submit(
    writer: &mpsc::Sender<WriterMsg>,
    stream: &StreamId,
    expected: ExpectedRevision,
    events: Vec<ProposedEvent>,
) -> Result<AppendOutcome, StoreError> {
    super::check_batch(&events)?;
    let (reply, rx) = oneshot::channel();
    let request = AppendRequest { stream: stream.clone(), expected, events, reply };
    writer.send(WriterMsg::Append(request)).await.map_err(|_| StoreError::Closed)?;
    rx.await.map_err(|_| StoreError::Closed)?
}

/// Asks the writer to prove it can commit, and waits for the answer.
///
/// # Errors
/// [`StoreError::Closed`] after shutdown, or the backend's failure.
pub async fn probe(writer: &mpsc::Sender<WriterMsg>) -> Result<(), StoreError> {
    let (reply, rx) = oneshot::channel();
    writer.send(WriterMsg::Probe(reply)).await.map_err(|_| StoreError::Closed)?;
    rx.await.map_err(|_| StoreError::Closed)?
}

/// Asks the writer to commit what is queued and stop, and waits until it has.
pub async fn stop(writer: &mpsc::Sender<WriterMsg>) {
    let (tx, rx) = oneshot::channel();
    if writer.send(WriterMsg::Shutdown(tx)).await.is_ok() {
        let _ = rx.await;
    }
}

/// Moves `first` and whatever else is already queued (up to `max_batch`) into `batch`, and
/// write probes into `probes`. Returns the shutdown acknowledgement if a shutdown was
/// reached; appends queued after it stay unread, and fail with [`StoreError::Closed`] once
/// the writer drops the queue.
pub fn drain(
    first: WriterMsg,
    rx: &mut mpsc::Receiver<WriterMsg>,
    max_batch: usize,
    batch: &mut Vec<AppendRequest>,
    probes: &mut Vec<ProbeReply>,
) -> Option<oneshot::Sender<()>> {
    let mut next = Some(first);
    while let Some(msg) = next.take() {
        match msg {
            WriterMsg::Append(req) => batch.push(req),
            WriterMsg::Probe(reply) => probes.push(reply),
            WriterMsg::Shutdown(ack) => return Some(ack),
        }
        if batch.len() < max_batch {
            next = rx.try_recv().ok();
        }
    }
    metrics::gauge!("gezinsdossier_write_queue_depth").set(rx.len() as f64);
    None
}

/// One group commit, for the metrics: taken before the commit consumes the batch, recorded
/// after it with how long the commit (with the backend's sync: fsync on SQLite, the WAL
/// flush on PostgreSQL) took.
pub struct CommitObservation {
    backend: &'static str,
    appends: usize,
    events: usize,
    started: Instant,
}

impl CommitObservation {
    pub fn start(backend: &'static str, batch: &[AppendRequest]) -> Self {
        let events = batch.iter().map(|r| r.events.len()).sum();
        Self { backend, appends: batch.len(), events, started: Instant::now() }
    }

    pub fn committed(self) {
        let backend = self.backend;
        metrics::histogram!("gezinsdossier_commit_seconds", "backend" => backend)
            .record(self.started.elapsed().as_secs_f64());
        metrics::histogram!("gezinsdossier_commit_batch_appends", "backend" => backend).record(self.appends as f64);
        metrics::counter!("gezinsdossier_appends_total", "backend" => backend).increment(self.appends as u64);
        metrics::counter!("gezinsdossier_events_total", "backend" => backend).increment(self.events as u64);
    }
}

/// Answers each append of a committed batch. With anyone listening on `tap`, the events
/// written (at most [`TAPPED_EVENTS`]) then move there, uncopied, so that subscribers in
/// this process need not read back what was just written (see
/// [`super::subscription::catch_up_then_live`]). Call before the head moves past them.
pub fn answer_committed(
    batch: &mut Vec<AppendRequest>,
    results: Vec<Result<AppendOutcome, StoreError>>,
    tap: &broadcast::Sender<Committed>,
) {
    let written: usize = batch
        .iter()
        .zip(&results)
        .filter(|(_, result)| result.as_ref().is_ok_and(|outcome| !outcome.deduplicated))
        .map(|(req, _)| req.events.len())
        .sum();
    let tapped = written <= TAPPED_EVENTS && tap.receiver_count() > 0;
    let mut committed = Vec::new();
    for (req, result) in batch.drain(..).zip(results) {
        let AppendRequest { stream, events, reply, .. } = req;
        match result {
            Ok(outcome) if tapped && !outcome.deduplicated => {
                committed.extend(outcome.into_recorded(&stream, events));
                let _ = reply.send(Ok(outcome));
            }
            result => {
                let _ = reply.send(result);
            }
        }
    }
    if !committed.is_empty() {
        let _ = tap.send(committed.into());
    }
}

/// Tells subscribers the committed head moved to `next` (never backwards).
pub fn advance_head(head: &watch::Sender<u64>, next: u64) {
    head.send_if_modified(|current| {
        let moved = next > *current;
        if moved {
            *current = next;
        }
        moved
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::EventHash;

    /// What lagging subscribers can hold is bounded in events: a commit larger than
    /// [`TAPPED_EVENTS`] is answered but not handed over (they read it from the store).
    #[test]
    fn a_commit_over_the_hand_over_bound_is_answered_and_left_to_the_store() {
        let (tap, mut handed_over) = broadcast::channel(4);
        for (n, expected) in [(TAPPED_EVENTS, true), (TAPPED_EVENTS + 1, false)] {
            let (reply, answer) = oneshot::channel();
            let events = (0..n)
                .map(|_| ProposedEvent {
                    event_id: uuid::Uuid::new_v4(),
                    event_type: "test".into(),
                    recorded_at_micros: 0,
                    payload: b"{}".to_vec(),
                })
                .collect();
            let outcome = AppendOutcome {
                stream_revision: n as u64 - 1,
                positions: (0..n as u64).collect(),
                hashes: vec![EventHash::GENESIS; n],
                prev_hash: EventHash::GENESIS,
                deduplicated: false,
            };
            let stream = StreamId::new("family-bound").unwrap();
            let mut batch = vec![AppendRequest { stream, expected: ExpectedRevision::Any, events, reply }];
            answer_committed(&mut batch, vec![Ok(outcome.clone())], &tap);
            assert_eq!(answer.blocking_recv().unwrap(), Ok(outcome));
            assert_eq!(handed_over.try_recv().map(|b| b.len()).ok(), expected.then_some(n), "{n} events");
        }
    }
}

//! Appending case events: checked against the family as it stands, all or nothing, with
//! idempotent retries. The optimistic write path here is shared with consent events.
//!
//! Appends to one family take turns under its lock, which is held across the durable
//! commit. So that a busy family is not limited to one commit per disk sync, appends queue
//! as they arrive and whoever takes the lock next commits every waiting one that fits
//! together in one checked, chained append ([`Families::commit_waiting`]). Each is judged
//! exactly as if it had come alone, against the revision it lands on, and gets its own
//! outcome. A commit that gathered others' appends runs as a task of its own, so that their
//! answers never depend on the one caller that happened to take the lock staying connected.

use super::cache::{self, Slot};
use super::{Families, FamilyError, Target};
use crate::authorisation::{Action, Caller, authorise};
use crate::case::CaseRecord;
use crate::case::validate::validate_batch;
use crate::case::{CaseEvent, CaseEventKind};
use crate::codec::{FamilyEvent, encode_case};
use crate::envelope::{EventId, ExpectedRevision, ProposedEvent, RecordedEvent};
use crate::family::{ApplyError, FamilyId, FamilyState};
use crate::sealing::{KeyGroup, Opener, groups};
use crate::store::{AppendOutcome, MAX_EVENTS_PER_APPEND, StoreError, revision_matches};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::oneshot;
use tracing::Instrument;

/// How often an append re-checks after losing a race to another writer.
const MAX_ATTEMPTS: usize = 4;

/// Case events to append to one family, by one author.
#[derive(Debug, Clone)]
pub struct CaseAppend {
    pub family: FamilyId,
    pub expected: ExpectedRevision,
    pub author: Caller,
    pub events: Vec<(EventId, CaseEvent)>,
}

impl CaseAppend {
    fn corrections(&self) -> Vec<(EventId, EventId)> {
        self.events
            .iter()
            .filter_map(|(id, e)| match &e.kind {
                CaseEventKind::Correction(c) => Some((*id, c.corrects)),
                _ => None,
            })
            .collect()
    }

    fn plaintext(&self, recorded_at_micros: i64) -> Encoded {
        let (events, records) = self
            .events
            .iter()
            .map(|(id, event)| {
                let record = CaseRecord { author: self.author.actor.clone(), event: event.clone() };
                let (event_type, payload) = encode_case(&record);
                (ProposedEvent { event_id: *id, event_type, recorded_at_micros, payload }, FamilyEvent::Case(record))
            })
            .unzip();
        Encoded { events, records }
    }
}

/// Events about to be appended: their plaintext payloads, and the record each encodes (taken
/// into the family state once they are committed).
#[derive(Default)]
pub(super) struct Encoded {
    pub events: Vec<ProposedEvent>,
    pub records: Vec<FamilyEvent>,
}

/// An append waiting for its family's next group commit.
pub(super) struct WaitingAppend {
    request: CaseAppend,
    /// Its events, stamped when the request came in.
    encoded: Encoded,
    answer: oneshot::Sender<Result<AppendOutcome, FamilyError>>,
}

impl WaitingAppend {
    fn answer(self, outcome: Result<AppendOutcome, FamilyError>) {
        // A caller that went away no longer needs its answer; a retry finds its events.
        let _ = self.answer.send(outcome);
    }
}

/// What a waiting append hears when the commit it waited for ended without answering it (it
/// panicked, or the runtime shut down under it).
fn leader_gone() -> FamilyError {
    StoreError::OutcomeUnknown(
        "the commit this append waited for was interrupted; retry with the same event ids".into(),
    )
    .into()
}

impl Families {
    /// Checks and appends case events, all or nothing. A retry of an earlier append (same
    /// event ids and content) returns the original outcome.
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded) for a caller the policy refuses,
    /// [`FamilyError::Validation`] for an event that breaks a rule,
    /// [`StoreError::WrongExpectedRevision`] (with the actual revision) when `expected` does
    /// not hold, [`StoreError::EventIdConflict`] for a reused id, or a store failure.
    pub async fn append_case_events(self: &Arc<Self>, request: CaseAppend) -> Result<AppendOutcome, FamilyError> {
        let encoded = request.plaintext(self.clock.now().timestamp_micros());
        let family = request.family.clone();
        let entry = self.cache.loaded(&*self.store, &self.keys, &family).await?;
        let (answer, mut answered) = oneshot::channel();
        entry.wait(WaitingAppend { request, encoded, answer });
        let mut slot = {
            let lock = entry.lock();
            tokio::pin!(lock);
            tokio::select! {
                biased;
                outcome = &mut answered => return outcome.unwrap_or_else(|_| Err(leader_gone())),
                slot = &mut lock => slot,
            }
        };
        match answered.try_recv() {
            // Answered by the commit that held the lock just before.
            Ok(outcome) => outcome,
            Err(oneshot::error::TryRecvError::Closed) => Err(leader_gone()),
            Err(oneshot::error::TryRecvError::Empty) => {
                let waiting = entry.take_waiting();
                if waiting.len() == 1 {
                    // Only this caller's own append: nobody else waits on this commit.
                    self.commit_waiting(&family, waiting, &mut slot).await;
                } else {
                    // The commit runs as a task of its own, holding the lock: if this caller
                    // goes away mid-commit, the others' appends it gathered still get their
                    // outcome.
                    let families = Arc::clone(self);
                    let commit = async move { families.commit_waiting(&family, waiting, &mut slot).await };
                    tokio::spawn(commit.instrument(tracing::Span::current()));
                }
                answered.await.unwrap_or_else(|_| Err(leader_gone()))
            }
        }
    }

    /// Commits `waiting` (taken from the family under its lock), in arrival order: each
    /// round takes the longest run that can be judged together against the state as it
    /// stands, and one that cannot goes alone.
    async fn commit_waiting(&self, family: &FamilyId, mut waiting: VecDeque<WaitingAppend>, slot: &mut Slot) {
        while let Some(first) = waiting.pop_front() {
            let mut batch = vec![first];
            // A lone append skips the batch checks: the single path makes them itself.
            if !waiting.is_empty() && fits_alone(&slot.state, &batch[0]) {
                while let Some(next) = waiting.front()
                    && fits_after(&slot.state, &batch, next)
                {
                    batch.extend(waiting.pop_front());
                }
            }
            if batch.len() == 1 {
                self.answer_alone(slot, batch.remove(0)).await;
                continue;
            }
            metrics::histogram!("gezinsdossier_family_batch_appends").record(batch.len() as f64);
            if let Err(e) = self.commit_together(family, slot, &mut batch).await {
                // Judged together they could not be committed: each goes again, alone.
                tracing::debug!(family_id = %family, error = %e, "group commit of one family fell back to single appends");
                for one in batch.into_iter().rev() {
                    waiting.push_front(one);
                }
                while let Some(one) = waiting.pop_front() {
                    self.answer_alone(slot, one).await;
                }
            }
        }
    }

    /// Appends `one` alone and answers it.
    async fn answer_alone(&self, slot: &mut Slot, mut one: WaitingAppend) {
        let encoded = std::mem::take(&mut one.encoded);
        let outcome = self.append_alone(slot, &one.request, encoded).await;
        one.answer(outcome);
    }

    /// One append under the family's lock, exactly as it is judged alone.
    async fn append_alone(
        &self,
        slot: &mut Slot,
        request: &CaseAppend,
        encoded: Encoded,
    ) -> Result<AppendOutcome, FamilyError> {
        let author = request.author.organisation();
        let group_of = |state: &FamilyState, i: usize| Some(groups::of_case(state, author, &request.events[i].1));
        let exists = slot.state.revision.is_some();
        let decision = authorise(&request.author, &Action::AppendCaseEvents { family: exists.then_some(&slot.state) });
        self.enforce(&request.author, Target::family(&request.family, exists), decision).await?;
        let corrections = request.corrections();
        if corrections.iter().any(|(_, original)| slot.state.item(original).is_none()) {
            cache::catch_up(&*self.store, &self.keys, &request.family, &mut slot.state).await?;
        }
        for (_, original) in &corrections {
            // An unknown original is the validation's to refuse, naming the field.
            let Some(author) = slot.state.item(original).map(|i| i.author.organisation_id.clone()) else { continue };
            let decision = authorise(&request.author, &Action::CorrectEvent { author: &author });
            let target = Target::family(&request.family, exists).with(format!("correction of event {original}"));
            self.enforce(&request.author, target, decision).await?;
        }
        let check = |state: &FamilyState| validate_batch(state, &request.events).map_err(FamilyError::from);
        let outcome = self.append_checked(&request.family, slot, request.expected, encoded, group_of, check).await?;
        if !corrections.is_empty() {
            let ids: Vec<EventId> = corrections.iter().map(|(id, _)| *id).collect();
            self.notify_earlier_recipients(&request.family, &slot.state, &ids).await?;
        }
        Ok(outcome)
    }

    /// Commits appends that [`fits_after`] judged together as one append at the family's
    /// current revision, and answers each with its own part of the outcome. On an error
    /// nobody is answered, and the appends are left in `batch`: a lost race with another
    /// replica is retried after catching up, anything else is the caller's to judge alone.
    async fn commit_together(
        &self,
        family: &FamilyId,
        slot: &mut Slot,
        batch: &mut Vec<WaitingAppend>,
    ) -> Result<(), FamilyError> {
        let stream = family.stream();
        for _ in 0..MAX_ATTEMPTS {
            if !fits_together(&slot.state, batch) {
                return Err(StoreError::InvalidAppend("the family changed under the batch".into()).into());
            }
            let expected = slot.state.revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
            let mut sealed = Vec::with_capacity(batch.iter().map(|one| one.encoded.events.len()).sum());
            for one in batch.iter() {
                let author = one.request.author.organisation();
                for (event, (_, case)) in one.encoded.events.iter().zip(&one.request.events) {
                    let group = groups::of_case(&slot.state, author, case);
                    sealed.push(self.seal(family.as_str(), &group, event).await?);
                }
            }
            match self.store.append(&stream, expected, sealed.clone()).await {
                Ok(outcome) if !outcome.deduplicated => {
                    let records = batch.iter_mut().flat_map(|one| std::mem::take(&mut one.encoded.records)).collect();
                    apply_committed(&mut slot.state, &outcome.recorded(&stream, &sealed), records, &*self.keys)?;
                    cache::rebuild_if_needed(&*self.store, &self.keys, family, &mut slot.state).await?;
                    let mut from = 0;
                    for one in batch.drain(..) {
                        let part = outcome.part(from, one.encoded.events.len());
                        from += one.encoded.events.len();
                        one.answer(Ok(part));
                    }
                    return Ok(());
                }
                Ok(_) => return Err(StoreError::InvalidAppend("a batch of new events was deduplicated".into()).into()),
                Err(StoreError::WrongExpectedRevision { .. }) => {
                    cache::catch_up(&*self.store, &self.keys, family, &mut slot.state).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::WrongExpectedRevision { stream, expected: ExpectedRevision::Any, actual: slot.state.revision }
            .into())
    }

    /// The checked, optimistic append shared by every kind of family event. Each attempt
    /// seals the plaintext payloads under `group_of` the state it was checked against (an
    /// erasure seen in a catch-up retires a key).
    pub(super) async fn append_checked(
        &self,
        family: &FamilyId,
        slot: &mut Slot,
        client_expected: ExpectedRevision,
        encoded: Encoded,
        group_of: impl Fn(&FamilyState, usize) -> Option<KeyGroup>,
        check: impl Fn(&FamilyState) -> Result<(), FamilyError>,
    ) -> Result<AppendOutcome, FamilyError> {
        let Encoded { events: proposed, records } = encoded;
        let stream = family.stream();
        let first_id = proposed.first().map(|e| e.event_id);
        for attempt in 0..MAX_ATTEMPTS {
            let fresh = attempt > 0;
            // A retry of stored events goes straight to the store, which compares content.
            let is_retry = first_id.is_some_and(|id| slot.state.events.contains_key(&id));
            if !is_retry {
                let checked = if revision_matches(client_expected, slot.state.revision) {
                    check(&slot.state)
                } else {
                    Err(FamilyError::Store(StoreError::WrongExpectedRevision {
                        stream: stream.clone(),
                        expected: client_expected,
                        actual: slot.state.revision,
                    }))
                };
                if let Err(e) = checked {
                    if fresh {
                        return Err(e);
                    }
                    // The cache may be behind another replica: judge against the latest.
                    cache::catch_up(&*self.store, &self.keys, family, &mut slot.state).await?;
                    continue;
                }
            }
            let expected = slot.state.revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
            let mut sealed = Vec::with_capacity(proposed.len());
            for (i, event) in proposed.iter().enumerate() {
                sealed.push(match group_of(&slot.state, i) {
                    Some(group) => self.seal(family.as_str(), &group, event).await?,
                    None => event.clone(),
                });
            }
            match self.store.append(&stream, expected, sealed.clone()).await {
                Ok(outcome) => {
                    if !outcome.deduplicated {
                        apply_committed(&mut slot.state, &outcome.recorded(&stream, &sealed), records, &*self.keys)?;
                        cache::rebuild_if_needed(&*self.store, &self.keys, family, &mut slot.state).await?;
                    }
                    return Ok(outcome);
                }
                Err(StoreError::WrongExpectedRevision { .. }) => {
                    cache::catch_up(&*self.store, &self.keys, family, &mut slot.state).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        tracing::warn!(family_id = %family, attempts = MAX_ATTEMPTS, "append lost every race");
        Err(StoreError::WrongExpectedRevision { stream, expected: client_expected, actual: slot.state.revision }.into())
    }
}

/// Takes the events just committed into the family state: from the records their payloads
/// encode, or, where not every event has its record (a batch that fell back to single
/// appends after its records were taken), by reading the payloads back.
fn apply_committed(
    state: &mut FamilyState,
    events: &[RecordedEvent],
    records: Vec<FamilyEvent>,
    opener: &dyn Opener,
) -> Result<(), ApplyError> {
    if records.len() == events.len() {
        for (event, record) in events.iter().zip(records) {
            state.apply_written(event, record, opener)?;
        }
    } else {
        for event in events {
            state.apply(event, opener)?;
        }
    }
    Ok(())
}

/// Whether `one` can be committed in a batch at the family's current state: the policy
/// lets its author append, its expected revision holds there, its events pass validation
/// there, and nothing about it needs the single path (a new family, a correction, which
/// is authorised against its original and notifies earlier recipients, or a retry of
/// stored events, which the store compares).
fn fits_alone(state: &FamilyState, one: &WaitingAppend) -> bool {
    fits_landing_after(state, one, state.revision)
}

/// As [`fits_alone`], with its expected revision judged against `revision`, the one it
/// would land after.
fn fits_landing_after(state: &FamilyState, one: &WaitingAppend, revision: Option<u64>) -> bool {
    let request = &one.request;
    state.revision.is_some()
        && request.corrections().is_empty()
        && !request.events.iter().any(|(id, _)| state.events.contains_key(id))
        && revision_matches(request.expected, revision)
        && authorise(&request.author, &Action::AppendCaseEvents { family: Some(state) }).is_ok()
        && validate_batch(state, &request.events).is_ok()
}

/// Whether `next` can follow `batch` in one commit with the same result as if each came
/// alone in turn. Appends before it must leave members and gezag as they were (the facts
/// its validation reads; ids it might name from them fail validation and so wait for the
/// next round), its ids must be new to the batch, and its expected revision must hold
/// where it lands.
fn fits_after(state: &FamilyState, batch: &[WaitingAppend], next: &WaitingAppend) -> bool {
    let events: usize = batch.iter().map(|one| one.encoded.events.len()).sum();
    let ids: HashSet<&EventId> = batch.iter().flat_map(|one| one.request.events.iter().map(|(id, _)| id)).collect();
    events + next.encoded.events.len() <= MAX_EVENTS_PER_APPEND
        && !batch.iter().any(|one| one.request.events.iter().any(|(_, e)| e.kind.changes_members()))
        && !next.request.events.iter().any(|(id, _)| ids.contains(id))
        && fits_landing_after(state, next, state.revision.map(|r| r + events as u64))
}

/// Whether the whole batch still fits the state (after catching up with another writer).
fn fits_together(state: &FamilyState, batch: &[WaitingAppend]) -> bool {
    batch.first().is_some_and(|first| fits_alone(state, first))
        && (1..batch.len()).all(|i| fits_after(state, &batch[..i], &batch[i]))
}

//! Appending case events: checked against the family as it stands, all or nothing, with
//! idempotent retries. The optimistic write path here is shared with consent events.

use super::cache::{self, Slot};
use super::{Families, FamilyError, Target};
use crate::authorisation::{Action, Caller, authorise};
use crate::case::CaseRecord;
use crate::case::validate::validate_batch;
use crate::case::{CaseEvent, CaseEventKind};
use crate::codec::encode_case;
use crate::envelope::{EventId, ExpectedRevision, ProposedEvent};
use crate::family::{ApplyError, FamilyId, FamilyState};
use crate::sealing::{KeyGroup, groups};
use crate::store::{AppendOutcome, StoreError, revision_matches};

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

impl Families {
    /// Checks and appends case events, all or nothing. A retry of an earlier append (same
    /// event ids and content) returns the original outcome.
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded) for a caller the policy refuses,
    /// [`FamilyError::Validation`] for an event that breaks a rule,
    /// [`StoreError::WrongExpectedRevision`] (with the actual revision) when `expected` does
    /// not hold, [`StoreError::EventIdConflict`] for a reused id, or a store failure.
    pub async fn append_case_events(&self, request: CaseAppend) -> Result<AppendOutcome, FamilyError> {
        let recorded_at_micros = self.clock.now().timestamp_micros();
        let proposed: Vec<ProposedEvent> = request
            .events
            .iter()
            .map(|(id, event)| {
                let (event_type, payload) =
                    encode_case(&CaseRecord { author: request.author.actor.clone(), event: event.clone() });
                ProposedEvent { event_id: *id, event_type, recorded_at_micros, payload }
            })
            .collect();
        let author = request.author.organisation();
        let group_of = |state: &FamilyState, i: usize| Some(groups::of_case(state, author, &request.events[i].1));
        let slot = self.cache.loaded(&*self.store, &self.keys, &request.family).await?;
        let mut slot = slot.lock().await;
        let exists = slot.state.revision.is_some();
        let decision = authorise(&request.author, &Action::AppendCaseEvents { family: exists.then_some(&slot.state) });
        self.enforce(&request.author, Target::family(&request.family, exists), decision).await?;
        let corrections: Vec<(EventId, EventId)> = request
            .events
            .iter()
            .filter_map(|(id, e)| match &e.kind {
                CaseEventKind::Correction(c) => Some((*id, c.corrects)),
                _ => None,
            })
            .collect();
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
        let outcome =
            self.append_checked(&request.family, &mut slot, request.expected, proposed, group_of, check).await?;
        if !corrections.is_empty() {
            let ids: Vec<EventId> = corrections.iter().map(|(id, _)| *id).collect();
            self.notify_earlier_recipients(&request.family, &slot.state, &ids).await?;
        }
        Ok(outcome)
    }

    /// The checked, optimistic append shared by every kind of family event. `proposed`
    /// holds plaintext payloads; each attempt seals them under `group_of` the state it was
    /// checked against (an erasure seen in a catch-up retires a key).
    pub(super) async fn append_checked(
        &self,
        family: &FamilyId,
        slot: &mut Slot,
        client_expected: ExpectedRevision,
        proposed: Vec<ProposedEvent>,
        group_of: impl Fn(&FamilyState, usize) -> Option<KeyGroup>,
        check: impl Fn(&FamilyState) -> Result<(), FamilyError>,
    ) -> Result<AppendOutcome, FamilyError> {
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
                let Some(group) = group_of(&slot.state, i) else {
                    sealed.push(event.clone());
                    continue;
                };
                let payload = self
                    .keys
                    .seal(
                        family.as_str(),
                        &group,
                        &event.event_id,
                        &event.event_type,
                        &event.payload,
                        event.recorded_at_micros,
                    )
                    .await
                    .map_err(ApplyError::from)?;
                sealed.push(ProposedEvent { payload, ..event.clone() });
            }
            match self.store.append(&stream, expected, sealed.clone()).await {
                Ok(outcome) => {
                    if !outcome.deduplicated {
                        for event in outcome.recorded(&stream, &sealed) {
                            slot.state.apply(&event, &*self.keys)?;
                        }
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

//! Erasing what an organisation wrote about a member (AVG art. 17, Jeugdwet 7.3.9, WGBO
//! 7:455): plan against the law's exceptions, record the erasure, destroy the keys, tell
//! earlier recipients.

use super::{Families, FamilyError, Target, cache};
use crate::authorisation::{Action, Caller, authorise};
use crate::case::{InformationCategory, MemberId};
use crate::disclosure::{self, AccessLogEvent};
use crate::envelope::{ExpectedRevision, ProposedEvent};
use crate::erasure::{self, ErasureGround, ErasureRecord, Kept, RequestedBy};
use crate::family::{ApplyError, FamilyId, FamilyState};
use std::collections::{BTreeMap, BTreeSet};

/// An erasure as a privacy officer asks for it.
#[derive(Debug, Clone)]
pub struct ErasureRequest {
    pub family: FamilyId,
    pub officer: Caller,
    pub subject: MemberId,
    /// Empty: the whole record.
    pub categories: BTreeSet<InformationCategory>,
    pub ground: ErasureGround,
    pub requested_by: RequestedBy,
}

/// What an erasure did.
#[derive(Debug, Clone)]
pub struct ErasureOutcome {
    pub record: ErasureRecord,
    /// Events in scope that the law keeps, by reason.
    pub kept: BTreeMap<Kept, u64>,
    /// The erasure event's place in the global log.
    pub position: u64,
    pub notices_sent: usize,
}

impl Families {
    /// Erases what the officer's organisation wrote about the subject alone.
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded) for a caller that is not the privacy office
    /// of an organisation in the family; [`FamilyError::ErasureRefused`] (recorded) for an
    /// unknown member, a measure in force, or nothing the law lets go; a store failure.
    pub async fn erase(&self, request: ErasureRequest) -> Result<ErasureOutcome, FamilyError> {
        let family = &request.family;
        let slot = self.cache.loaded(&*self.store, &self.keys, family).await?;
        let mut slot = slot.lock().await;
        cache::catch_up(&*self.store, &self.keys, family, &mut slot.state).await?;
        let exists = slot.state.revision.is_some();
        let decision = authorise(&request.officer, &Action::EraseRecords { family: &slot.state });
        let target = Target::family(family, exists).with("erasure");
        self.enforce(&request.officer, target, decision).await?;

        let now = self.clock.now();
        let keys = self.keys.key_store().of_family(family.as_str()).await?;
        let org = request.officer.organisation();
        let plan = match erasure::plan(&slot.state, &keys, org, &request.subject, &request.categories, now) {
            Ok(plan) => plan,
            Err(refused) => {
                let refusal = disclosure::FunctionRefusal {
                    caller: request.officer.actor.clone(),
                    function: crate::authorisation::Function::EraseRecords,
                    at: now,
                    target: format!("family {family}, erasure"),
                    reasons: vec![refused.to_string()],
                };
                self.commit_access_log_event(family, AccessLogEvent::FunctionRefused(refusal)).await?;
                return Err(FamilyError::ErasureRefused(refused));
            }
        };
        let erased_items: Vec<_> =
            plan.shredded_event_ids.iter().filter_map(|id| slot.state.item(id).cloned()).collect();
        let record = ErasureRecord {
            erasure_id: uuid::Uuid::new_v4(),
            ground: request.ground,
            requested_by: request.requested_by,
            by: Some(request.officer.actor.clone()),
            categories: request.categories.clone(),
            destroyed_keys: plan.destroy.clone(),
            shredded_events: plan.shredded_events,
            kept_events: plan.kept.values().sum(),
            at: now,
        };
        let position = self.record_erasure(family, &mut slot.state, &record).await?;
        drop(slot);

        // Recipients are told after the keys are gone; a failure here leaves the erasure done.
        let log = self.access_log(family).await?;
        let decoded = super::notices::decode(&log, &*self.keys);
        let refs: Vec<_> = erased_items.iter().map(|i| &**i).collect();
        let notices = erasure::notices(&refs, &record, &request.officer.actor, &decoded);
        let notices_sent = notices.len();
        for chunk in notices.chunks(crate::store::MAX_EVENTS_PER_APPEND) {
            let events = chunk.iter().map(|(id, n)| (*id, AccessLogEvent::Notified(n.clone()))).collect();
            self.commit_many(&disclosure::stream(family), events, now).await?;
        }
        tracing::info!(
            family_id = %family,
            erasure_id = %record.erasure_id,
            keys = record.destroyed_keys.len(),
            shredded = record.shredded_events,
            kept = record.kept_events,
            notices = notices_sent,
            "erasure recorded and keys destroyed"
        );
        Ok(ErasureOutcome { kept: plan.kept, position, record, notices_sent })
    }

    /// Appends the erasure event, then destroys its keys, then rebuilds the family state.
    /// The event comes first: should destroying fail, every process that reads the event
    /// treats its keys as destroyed all the same, and a retention run destroys them later.
    pub(super) async fn record_erasure(
        &self,
        family: &FamilyId,
        state: &mut FamilyState,
        record: &ErasureRecord,
    ) -> Result<u64, FamilyError> {
        let event = ProposedEvent {
            event_id: record.erasure_id,
            event_type: erasure::EVENT_TYPE.to_owned(),
            recorded_at_micros: record.at.timestamp_micros(),
            payload: crate::codec::to_json(record),
        };
        // Any revision: an event sealed meanwhile under a key in the plan is in scope too.
        let outcome = self.store.append(&family.stream(), ExpectedRevision::Any, vec![event]).await?;
        self.keys.destroy(&record.destroyed_keys, record.at.timestamp_micros()).await.map_err(ApplyError::from)?;
        cache::catch_up(&*self.store, &self.keys, family, state).await?;
        cache::rebuild_if_needed(&*self.store, &self.keys, family, state).await?;
        Ok(outcome.positions.first().copied().unwrap_or_default())
    }
}

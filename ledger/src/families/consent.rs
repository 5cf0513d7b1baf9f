//! The consent ledger's use cases: recording grants, agreements, refusals, withdrawals and
//! legal bases; listing the consents a caller may know of; dry-run access checks.

use super::append::Encoded;
use super::cache::Slot;
use super::{Families, FamilyError, Target};
use crate::authorisation::{Action, Caller, Grant, authorise, names_organisation};
use crate::case::InformationCategory;
use crate::codec::{FamilyEvent, encode_consent};
use crate::consent::{self, AccessQuery, ConsentEvent, ConsentRecord, ConsentState, ConsentStatus, Decision, Purpose};
use crate::disclosure::{AccessCheck, AccessLogEvent};
use crate::envelope::{EventId, ExpectedRevision, ProposedEvent};
use crate::family::{FamilyId, FamilyState};
use crate::sealing::groups;
use crate::store::AppendOutcome;
use chrono::{DateTime, Utc};

/// A consent as its listing shows it.
#[derive(Debug, Clone)]
pub struct ConsentListing {
    pub consent: ConsentState,
    pub status: ConsentStatus,
}

impl Families {
    /// Checks and records one consent-ledger event (grant, agreement, refusal, withdrawal or
    /// legal basis).
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded) for a caller that takes no part in the
    /// family or asserts no care role, [`FamilyError::Consent`] for an event the rules
    /// refuse, or a store failure.
    pub async fn append_consent_event(
        &self,
        family: &FamilyId,
        recorded_by: &Caller,
        event_id: EventId,
        event: ConsentEvent,
    ) -> Result<AppendOutcome, FamilyError> {
        let slot = self.cache.loaded(&*self.store, &self.keys, family).await?;
        let mut slot = slot.lock().await;
        let exists = slot.state.revision.is_some();
        let decision = authorise(recorded_by, &Action::RecordConsentEvent { family: &slot.state });
        self.enforce(recorded_by, Target::family(family, exists).with(event.event_type()), decision).await?;
        let record = ConsentRecord { recorded_by: recorded_by.actor.clone(), event };
        self.append_consent_locked(family, &mut slot, record, event_id).await
    }

    pub(super) async fn append_consent_locked(
        &self,
        family: &FamilyId,
        slot: &mut Slot,
        record: ConsentRecord,
        event_id: EventId,
    ) -> Result<AppendOutcome, FamilyError> {
        let now = self.clock.now();
        let (event_type, payload) = encode_consent(&record);
        let proposed =
            vec![ProposedEvent { event_id, event_type, recorded_at_micros: now.timestamp_micros(), payload }];
        let check = |state: &FamilyState| {
            if state.revision.is_none() {
                return Err(FamilyError::UnknownFamily);
            }
            consent::validate::validate(state, &record, now).map_err(FamilyError::from)
        };
        let group_of = |state: &FamilyState, _: usize| Some(groups::of_consent(state, &record));
        let encoded = Encoded { events: proposed, records: vec![FamilyEvent::Consent(record.clone())] };
        self.append_checked(family, slot, ExpectedRevision::Any, encoded, group_of, check).await
    }

    /// The consents of the family that the caller's organisation may know of: those it
    /// recorded and those that name it as recipient (a care role only where its role is
    /// covered), optionally of one subject, with their status at `at`.
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded), or a store failure.
    pub async fn list_consents(
        &self,
        family: &FamilyId,
        caller: &Caller,
        subject: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<Vec<ConsentListing>, FamilyError> {
        let (exists, decision, listings) = self
            .with_state_or_empty(family, |state| {
                let decision = authorise(caller, &Action::ListConsents { family: state });
                let by_office = decision == Ok(Grant::PrivacyOffice);
                let listings: Vec<ConsentListing> = state
                    .consents
                    .values()
                    .filter(|c| subject.is_none_or(|s| c.grant.subject == s))
                    .filter(|c| {
                        // Consents name organisations and so reveal care: only those involved
                        // see them. A privacy office sees its organisation's, whatever role.
                        c.recorded_by.organisation_id == caller.actor.organisation_id
                            || c.grant
                                .recipients
                                .iter()
                                .any(|r| r.covers(&caller.actor) || (by_office && names_organisation(r, caller)))
                    })
                    .filter_map(|c| {
                        let member = state.members.get(&c.grant.subject)?;
                        Some(ConsentListing { consent: c.clone(), status: c.status_at(member, at) })
                    })
                    .collect();
                (state.revision.is_some(), decision, listings)
            })
            .await?;
        self.enforce(caller, Target::family(family, exists), decision).await?;
        Ok(listings)
    }

    /// A dry run: would `query` be granted now? Discloses nothing; the check is logged.
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded), [`FamilyError::UnknownFamily`] or a store
    /// failure.
    pub async fn check_access(
        &self,
        family: &FamilyId,
        caller: &Caller,
        purpose: Purpose,
        subject: &str,
        category: InformationCategory,
        as_of: Option<DateTime<Utc>>,
    ) -> Result<Decision, FamilyError> {
        let at = self.clock.now();
        let asked = as_of.unwrap_or(at);
        let requester = &caller.actor;
        let (exists, allowed, decision, known) = self
            .with_state_or_empty(family, |state| {
                let allowed = authorise(caller, &Action::CheckAccess { family: state });
                let decision = allowed
                    .is_ok()
                    .then(|| consent::decide(state, AccessQuery { requester, purpose, subject, category, at: asked }));
                (state.revision.is_some(), allowed, decision, state.members.contains_key(subject))
            })
            .await?;
        self.enforce(caller, Target::family(family, exists), allowed).await?;
        let decision = decision.ok_or(FamilyError::UnknownFamily)?;
        // Only a caller the policy lets ask learns who is a member.
        if !known {
            return Err(FamilyError::UnknownMember { field: "subject_member_id", member: subject.to_owned() });
        }
        let check = AccessCheck {
            requester: requester.clone(),
            purpose,
            at,
            as_of,
            subject: subject.to_owned(),
            category,
            granted: decision.basis().cloned(),
        };
        self.commit_access_log_event(family, AccessLogEvent::Checked(check)).await?;
        Ok(decision)
    }
}

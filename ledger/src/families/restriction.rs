//! Restricting and lifting (AVG art. 18): the author organisation's privacy officer marks
//! what it wrote about a member; the dossier rules then hold it back (see
//! [`crate::restriction`]).

use super::{Families, FamilyError, Logged, Target, cache};
use crate::authorisation::{Action, Caller, authorise};
use crate::case::{InformationCategory, MemberId};
use crate::envelope::{ExpectedRevision, ProposedEvent};
use crate::family::FamilyId;
use crate::restriction::{self, RestrictionRecord};
use std::collections::BTreeSet;

/// What a restriction step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restricted {
    pub restriction_id: uuid::Uuid,
    pub logged: Logged,
}

/// Which step.
#[derive(Debug, Clone)]
pub enum RestrictionStep {
    Apply { subject: MemberId, categories: BTreeSet<InformationCategory> },
    Lift { restriction_id: uuid::Uuid },
}

impl Families {
    /// Applies or lifts a restriction of the officer's organisation's records.
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded); [`FamilyError::RestrictionRefused`] for an
    /// unknown member, or a restriction that is not the organisation's or is lifted
    /// already; a store failure.
    pub async fn restrict(
        &self,
        family: &FamilyId,
        officer: &Caller,
        step: RestrictionStep,
    ) -> Result<Restricted, FamilyError> {
        let slot = self.cache.loaded(&*self.store, &self.keys, family).await?;
        let mut slot = slot.lock().await;
        cache::catch_up(&*self.store, &self.keys, family, &mut slot.state).await?;
        let exists = slot.state.revision.is_some();
        let decision = authorise(officer, &Action::RestrictRecords { family: &slot.state });
        self.enforce(officer, Target::family(family, exists).with("restriction"), decision).await?;
        let at = self.clock.now();
        let org = officer.organisation();
        let record = match step {
            RestrictionStep::Apply { subject, categories } => {
                if !slot.state.members.contains_key(&subject) {
                    return Err(FamilyError::RestrictionRefused(
                        "subject_member_id: no such member in this family".into(),
                    ));
                }
                let restriction_id = uuid::Uuid::new_v4();
                RestrictionRecord::Applied { restriction_id, subject, categories, by: officer.actor.clone(), at }
            }
            RestrictionStep::Lift { restriction_id } => {
                match slot.state.restrictions.get(&restriction_id) {
                    Some(r) if r.author == org && r.lifted_at.is_none() => {}
                    Some(r) if r.author != org => {
                        return Err(FamilyError::RestrictionRefused(
                            "restriction_id: another organisation's restriction".into(),
                        ));
                    }
                    Some(_) => return Err(FamilyError::RestrictionRefused("restriction_id: lifted already".into())),
                    None => return Err(FamilyError::RestrictionRefused("restriction_id: no such restriction".into())),
                }
                RestrictionRecord::Lifted { restriction_id, by: officer.actor.clone(), at }
            }
        };
        let restriction_id = match &record {
            RestrictionRecord::Applied { restriction_id, .. } | RestrictionRecord::Lifted { restriction_id, .. } => {
                *restriction_id
            }
        };
        let event_id = uuid::Uuid::new_v4();
        let event = ProposedEvent {
            event_id,
            event_type: restriction::EVENT_TYPE.to_owned(),
            recorded_at_micros: at.timestamp_micros(),
            payload: crate::codec::to_json(&record),
        };
        let outcome = self.store.append(&family.stream(), ExpectedRevision::Any, vec![event]).await?;
        cache::catch_up(&*self.store, &self.keys, family, &mut slot.state).await?;
        let position = outcome.positions.first().copied().unwrap_or_default();
        tracing::info!(family_id = %family, %restriction_id, "restriction step recorded");
        Ok(Restricted { restriction_id, logged: Logged { event_id, position } })
    }
}

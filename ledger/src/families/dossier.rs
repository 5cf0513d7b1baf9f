//! The gezinsdossier: one requester's view, built from the family and the consents and
//! legal bases in force, and disclosed only after the disclosure is committed. Also the
//! privacy officer's investigation of what someone could have seen.

use super::{Families, FamilyError, Logged, Target, cache};
use crate::actor::Actor;
use crate::authorisation::{Action, Caller, authorise};
use crate::case::InformationCategory;
use crate::case::MemberId;
use crate::consent::Basis;
use crate::consent::{ConsentEvent, ConsentRecord, DenialReason, LegalBasis, LegalBasisKind, Purpose, Recipient};
use crate::correction::notice_id;
use crate::disclosure::{self, AccessLogEvent, Disclosure, Investigation, Notice, NoticeKind, Refusal};
use crate::dossier::{self, DossierView, Shown, VisibleItem};
use crate::family::{FamilyId, FamilyState};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A request for a gezinsdossier.
#[derive(Debug, Clone)]
pub struct DossierRequest {
    pub family: FamilyId,
    pub requester: Caller,
    pub purpose: Purpose,
    /// Acute danger: the reason, recorded as a break-the-glass legal basis before the view
    /// is built.
    pub break_the_glass: Option<String>,
}

/// How long an inline break-the-glass basis stays in force.
const BREAK_THE_GLASS_HOURS: i64 = 1;

/// A break-the-glass basis: every member, every category, for the requester only.
fn break_the_glass_basis(state: &FamilyState, requester: &Actor, reason: &str, now: DateTime<Utc>) -> LegalBasis {
    LegalBasis {
        basis_id: format!("btg-{}", Uuid::new_v4()),
        kind: LegalBasisKind::BreakTheGlass,
        justification: reason.to_owned(),
        responsible: requester.clone(),
        measure_id: None,
        subjects: state.members.keys().cloned().collect(),
        categories: InformationCategory::ALL.into_iter().collect(),
        recipients: vec![Recipient::Organisation { organisation_id: requester.organisation_id.clone() }],
        valid_from: now,
        valid_until: Some(now + chrono::Duration::hours(BREAK_THE_GLASS_HOURS)),
    }
}

impl Families {
    /// Builds the requester's gezinsdossier and commits the disclosure before returning it.
    /// With `break_the_glass`, a break-the-glass legal basis is recorded first.
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded) for a role that receives no care data;
    /// [`FamilyError::UnknownFamily`]; [`FamilyError::Denied`] (after committing a refusal)
    /// when no basis covers anything and the requester has no records of its own; a store
    /// failure, in which case nothing is returned.
    pub async fn dossier(&self, request: DossierRequest) -> Result<(DossierView, Logged), FamilyError> {
        let caller = &request.requester;
        let requester = &caller.actor;
        let slot = self.cache.loaded(&*self.store, &self.keys, &request.family).await?;
        let view = {
            let mut slot = slot.lock().await;
            cache::catch_up(&*self.store, &self.keys, &request.family, &mut slot.state).await?;
            let exists = slot.state.revision.is_some();
            self.enforce(caller, Target::family(&request.family, exists), authorise(caller, &Action::GetDossier))
                .await?;
            if !exists {
                return Err(FamilyError::UnknownFamily);
            }
            if let Some(reason) = &request.break_the_glass {
                let basis = break_the_glass_basis(&slot.state, requester, reason, self.clock.now());
                let record = ConsentRecord { recorded_by: requester.clone(), event: ConsentEvent::LegalBasis(basis) };
                self.append_consent_locked(&request.family, &mut slot, record, Uuid::new_v4()).await?;
            }
            dossier::build(&slot.state, requester, request.purpose, self.clock.now())
        };
        let at = self.clock.now();
        if view.is_refusal() {
            return Err(self.refuse_view(&request.family, requester, request.purpose, &view, at).await);
        }
        let logged = self.commit_disclosure(&request, &view, at).await?;
        Ok((view, logged))
    }

    /// The record of showing `items` (with the `shown` pairs and their bases) to `requester`:
    /// the dossier and the feed describe what they disclose the same way.
    pub(super) fn disclosure_of(
        &self,
        requester: &Actor,
        purpose: Purpose,
        at: DateTime<Utc>,
        family_revision: Option<u64>,
        shown: BTreeMap<MemberId, BTreeMap<InformationCategory, Basis>>,
        items: &[VisibleItem],
    ) -> Disclosure {
        let review_required = shown.values().flat_map(|c| c.values()).any(Basis::needs_review);
        Disclosure {
            requester: requester.clone(),
            purpose,
            at,
            family_revision,
            shown,
            own_records: items.iter().filter(|v| v.shown == Shown::OwnRecord).count(),
            review_required,
            review_due: review_required.then(|| at + self.review_within),
            break_the_glass: None,
            authors: items
                .iter()
                .filter(|v| v.shown == Shown::Disclosed)
                .map(|v| v.item.author.organisation_id.clone())
                .collect(),
            via_feed: false,
        }
    }

    /// Records that `requester` may see nothing at all of the family, and why; the error to
    /// return (the record's failure, if it could not be committed).
    pub(super) async fn refuse_view(
        &self,
        family: &FamilyId,
        requester: &Actor,
        purpose: Purpose,
        view: &DossierView,
        at: DateTime<Utc>,
    ) -> FamilyError {
        {
            let refusal = Refusal {
                requester: requester.clone(),
                purpose,
                at,
                family_revision: view.family_revision,
                reasons: view
                    .notices
                    .iter()
                    .cloned()
                    .chain(std::iter::once(DenialReason {
                        consent_id: None,
                        explanation: "no consent or legal basis in force covers any data of this family for this \
                                      organisation, role and purpose"
                            .into(),
                        must_consent: Default::default(),
                    }))
                    .collect(),
            };
            match self.commit_access_log_event(family, AccessLogEvent::Refused(refusal.clone())).await {
                Ok(_) => FamilyError::Denied(refusal.reasons),
                Err(e) => e,
            }
        }
    }

    /// Invariant 1: the disclosure is durable before the view leaves.
    async fn commit_disclosure(
        &self,
        request: &DossierRequest,
        view: &DossierView,
        at: DateTime<Utc>,
    ) -> Result<Logged, FamilyError> {
        let mut disclosure = self.disclosure_of(
            &request.requester.actor,
            request.purpose,
            at,
            view.family_revision,
            view.disclosed.clone(),
            &view.timeline,
        );
        disclosure.break_the_glass = request.break_the_glass.clone();
        let authors = disclosure.authors.clone();
        let logged = self.commit_access_log_event(&request.family, AccessLogEvent::Disclosed(disclosure)).await?;
        if request.break_the_glass.is_some() {
            // Every organisation whose data was seen hears of it, before the data leaves.
            let notices = authors.into_iter().map(|author| {
                let notice = Notice {
                    kind: NoticeKind::BreakTheGlass,
                    recipient_organisation_id: author.clone(),
                    about_event_id: logged.event_id,
                    cause_event_id: logged.event_id,
                    from: request.requester.actor.clone(),
                    at,
                };
                (notice_id(logged.event_id, &author), AccessLogEvent::Notified(notice))
            });
            self.commit_many(&disclosure::stream(&request.family), notices.collect(), at).await?;
        }
        Ok(logged)
    }

    /// Rebuilds what `investigated` could have seen at `as_of`, for a privacy officer. The
    /// investigation is logged; it is not a disclosure to `investigated`.
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded) outside the privacy office's scope,
    /// [`FamilyError::UnknownFamily`] or a store failure.
    pub async fn investigate(
        &self,
        family: &FamilyId,
        officer: &Caller,
        investigated: &Actor,
        purpose: Purpose,
        as_of: DateTime<Utc>,
    ) -> Result<DossierView, FamilyError> {
        let log = self.access_log(family).await?;
        let received_callers_data = log.iter().any(|e| {
            matches!(
                crate::disclosure::open_line(e, &*self.keys),
                Some(AccessLogEvent::Disclosed(d))
                    if d.requester.organisation_id == investigated.organisation_id
                        && d.authors.contains(&officer.actor.organisation_id)
            )
        });
        let (exists, decision) = self
            .with_state_or_empty(family, |state| {
                let action = Action::InvestigateDossier {
                    family: state,
                    investigated: &investigated.organisation_id,
                    received_callers_data,
                };
                (state.revision.is_some(), authorise(officer, &action))
            })
            .await?;
        let target = Target::family(family, exists).with(format!("as {}", investigated.organisation_id));
        self.enforce(officer, target, decision).await?;

        let mut state = FamilyState::default();
        let stop = cache::Replay { recorded_until: Some(as_of.timestamp_micros()), ..cache::Replay::default() };
        cache::replay(&*self.store, &self.keys, family, &mut state, stop).await?;
        if state.revision.is_none() {
            return Err(FamilyError::UnknownFamily);
        }
        let view = dossier::build(&state, investigated, purpose, as_of);
        let investigation = Investigation {
            privacy_officer: officer.actor.clone(),
            at: self.clock.now(),
            as_of,
            investigated: investigated.clone(),
            purpose,
            family_revision: view.family_revision,
        };
        self.commit_access_log_event(family, AccessLogEvent::Investigated(investigation)).await?;
        Ok(view)
    }
}

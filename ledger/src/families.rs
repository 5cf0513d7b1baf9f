//! The write path of family streams: append case events after checking them against the
//! family as it stands.
//!
//! Each family's state is cached and kept current by applying what this process appends.
//! Another replica may have appended meanwhile, so the cache is used optimistically: the
//! append goes to the store with the exact revision the checks ran against, and a conflict
//! means "catch up and check again", never "write anyway".

use crate::actor::Actor;
use crate::audit::{self, AuditFilter, AuditRow};
use crate::case::validate::{ValidationError, validate_batch};
use crate::case::{CaseEvent, CaseRecord, InformationCategory};
use crate::clock::Clock;
use crate::codec::{encode_case, encode_consent};
use crate::consent::validate::ConsentRuleError;
use crate::consent::{
    self, AccessQuery, ConsentEvent, ConsentRecord, Decision, DenialReason, LegalBasis, LegalBasisKind, Purpose,
    Recipient, decide,
};
use crate::disclosure::{
    self, AccessCheck, AccessLogEvent, AuditAccess, Disclosure, Investigation, Refusal, Review, ReviewOutcome,
};
use crate::dossier::{self, DossierView, Shown};
use crate::envelope::{EventId, ExpectedRevision, ProposedEvent};
use crate::family::{ApplyError, FamilyId, FamilyState};
use crate::store::{AppendOutcome, EventStore, StoreError, revision_matches};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

/// How often an append re-checks after losing a race to another writer.
const MAX_ATTEMPTS: usize = 4;
/// Events read per page when catching a family up.
const CATCH_UP_PAGE: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FamilyError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("family stream cannot be read: {0}")]
    Unreadable(#[from] ApplyError),
    #[error(transparent)]
    Consent(#[from] ConsentRuleError),
    #[error("no such family")]
    UnknownFamily,
    #[error("no disclosure {0} in this family's access log")]
    UnknownDisclosure(uuid::Uuid),
    #[error("disclosure cannot be reviewed: {0}")]
    NotReviewable(String),
    #[error(transparent)]
    Report(#[from] crate::report::ReportDenied),
    /// Refused, and the refusal is recorded.
    #[error("access denied: {}", .0.iter().map(|r| r.explanation.as_str()).collect::<Vec<_>>().join("; "))]
    Denied(Vec<DenialReason>),
}

/// A request for a gezinsdossier.
#[derive(Debug, Clone)]
pub struct DossierRequest {
    pub family: FamilyId,
    pub requester: Actor,
    pub purpose: Purpose,
    /// Acute danger: the reason, recorded as a break-the-glass legal basis before the view
    /// is built.
    pub break_the_glass: Option<String>,
}

/// Where an access-log event was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logged {
    pub event_id: EventId,
    pub position: u64,
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

/// Case events to append to one family, by one author.
#[derive(Debug, Clone)]
pub struct CaseAppend {
    pub family: FamilyId,
    pub expected: ExpectedRevision,
    pub author: Actor,
    pub events: Vec<(EventId, CaseEvent)>,
}

#[derive(Default)]
struct Slot {
    state: FamilyState,
    loaded: bool,
}

/// Family streams over one event store.
pub struct Families {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    slots: Mutex<HashMap<FamilyId, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl Families {
    pub fn new(store: Arc<dyn EventStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock, slots: Mutex::new(HashMap::new()) }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Checks and appends case events, all or nothing. A retry of an earlier append (same
    /// event ids and content) returns the original outcome.
    ///
    /// # Errors
    /// [`FamilyError::Validation`] for an event that breaks a rule,
    /// [`StoreError::WrongExpectedRevision`] (with the actual revision) when `expected` does
    /// not hold, [`StoreError::EventIdConflict`] for a reused id, or a store failure.
    pub async fn append_case_events(&self, request: CaseAppend) -> Result<AppendOutcome, FamilyError> {
        let recorded_at_micros = self.clock.now().timestamp_micros();
        let proposed = request
            .events
            .iter()
            .map(|(id, event)| {
                let (event_type, payload) =
                    encode_case(&CaseRecord { author: request.author.clone(), event: event.clone() });
                ProposedEvent { event_id: *id, event_type, recorded_at_micros, payload }
            })
            .collect();
        let slot = self.loaded_slot(&request.family).await?;
        let mut slot = slot.lock().await;
        let check = |state: &FamilyState| validate_batch(state, &request.events).map_err(FamilyError::from);
        self.append_checked(&request.family, &mut slot, request.expected, proposed, check).await
    }

    /// Checks and records one consent-ledger event (grant, agreement, refusal, withdrawal or
    /// legal basis).
    ///
    /// # Errors
    /// [`FamilyError::Consent`] for an event the rules refuse, [`FamilyError::UnknownFamily`],
    /// or a store failure.
    pub async fn append_consent_event(
        &self,
        family: &FamilyId,
        recorded_by: Actor,
        event_id: EventId,
        event: ConsentEvent,
    ) -> Result<AppendOutcome, FamilyError> {
        let slot = self.loaded_slot(family).await?;
        let mut slot = slot.lock().await;
        self.append_consent_locked(family, &mut slot, ConsentRecord { recorded_by, event }, event_id).await
    }

    async fn append_consent_locked(
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
        self.append_checked(family, slot, ExpectedRevision::Any, proposed, check).await
    }

    /// The checked, optimistic append shared by every kind of family event.
    async fn append_checked(
        &self,
        family: &FamilyId,
        slot: &mut Slot,
        client_expected: ExpectedRevision,
        proposed: Vec<ProposedEvent>,
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
                    self.catch_up(family, &mut slot.state).await?;
                    continue;
                }
            }
            let expected = slot.state.revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
            match self.store.append(&stream, expected, proposed.clone()).await {
                Ok(outcome) => {
                    if !outcome.deduplicated {
                        for event in outcome.recorded(&stream, &proposed) {
                            slot.state.apply(&event)?;
                        }
                    }
                    return Ok(outcome);
                }
                Err(StoreError::WrongExpectedRevision { .. }) => self.catch_up(family, &mut slot.state).await?,
                Err(e) => return Err(e.into()),
            }
        }
        tracing::warn!(family_id = %family, attempts = MAX_ATTEMPTS, "append lost every race");
        Err(StoreError::WrongExpectedRevision { stream, expected: client_expected, actual: slot.state.revision }.into())
    }

    /// Builds the requester's gezinsdossier and commits the disclosure before returning it.
    /// With `break_the_glass`, a break-the-glass legal basis is recorded first.
    ///
    /// # Errors
    /// [`FamilyError::UnknownFamily`]; [`FamilyError::Denied`] (after committing a refusal)
    /// when no basis covers anything and the requester has no records of its own; a store
    /// failure, in which case nothing is returned.
    pub async fn dossier(&self, request: DossierRequest) -> Result<(DossierView, Logged), FamilyError> {
        let slot = self.loaded_slot(&request.family).await?;
        let view = {
            let mut slot = slot.lock().await;
            self.catch_up(&request.family, &mut slot.state).await?;
            if slot.state.revision.is_none() {
                return Err(FamilyError::UnknownFamily);
            }
            if let Some(reason) = &request.break_the_glass {
                let basis = break_the_glass_basis(&slot.state, &request.requester, reason, self.clock.now());
                let record =
                    ConsentRecord { recorded_by: request.requester.clone(), event: ConsentEvent::LegalBasis(basis) };
                self.append_consent_locked(&request.family, &mut slot, record, Uuid::new_v4()).await?;
            }
            dossier::build(&slot.state, &request.requester, request.purpose, self.clock.now())
        };
        let at = self.clock.now();
        if view.is_refusal() {
            let refusal = Refusal {
                requester: request.requester.clone(),
                purpose: request.purpose,
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
            self.log(&request.family, AccessLogEvent::Refused(refusal.clone())).await?;
            return Err(FamilyError::Denied(refusal.reasons));
        }
        let disclosure = Disclosure {
            requester: request.requester,
            purpose: request.purpose,
            at,
            family_revision: view.family_revision,
            shown: view.disclosed.clone(),
            own_records: view.timeline.iter().filter(|v| v.shown == Shown::OwnRecord).count(),
            review_required: view.needs_review(),
            break_the_glass: request.break_the_glass,
        };
        let logged = self.log(&request.family, AccessLogEvent::Disclosed(disclosure)).await?;
        Ok((view, logged))
    }

    /// A dry run: would `query` be granted now? Discloses nothing; the check is logged.
    ///
    /// # Errors
    /// [`FamilyError::UnknownFamily`] or a store failure.
    pub async fn check_access(
        &self,
        family: &FamilyId,
        requester: &Actor,
        purpose: Purpose,
        subject: &str,
        category: InformationCategory,
    ) -> Result<Decision, FamilyError> {
        let at = self.clock.now();
        let decision = self
            .with_fresh_state(family, |state| decide(state, AccessQuery { requester, purpose, subject, category, at }))
            .await?;
        let check = AccessCheck {
            requester: requester.clone(),
            purpose,
            at,
            subject: subject.to_owned(),
            category,
            granted: decision.basis().cloned(),
        };
        self.log(family, AccessLogEvent::Checked(check)).await?;
        Ok(decision)
    }

    /// Rebuilds what `investigated` could have seen at `as_of`, for a privacy officer. The
    /// investigation is logged; it is not a disclosure to `investigated`.
    ///
    /// # Errors
    /// [`FamilyError::UnknownFamily`] or a store failure.
    pub async fn investigate(
        &self,
        family: &FamilyId,
        privacy_officer: &Actor,
        investigated: &Actor,
        purpose: Purpose,
        as_of: DateTime<Utc>,
    ) -> Result<DossierView, FamilyError> {
        let mut state = FamilyState::default();
        let stream = family.stream();
        'read: loop {
            let from = state.revision.map_or(0, |r| r + 1);
            let page = self.store.read_stream(&stream, from, CATCH_UP_PAGE).await?;
            for event in &page {
                if event.recorded_at_micros > as_of.timestamp_micros() {
                    break 'read;
                }
                state.apply(event)?;
            }
            if page.len() < CATCH_UP_PAGE {
                break;
            }
        }
        if state.revision.is_none() {
            return Err(FamilyError::UnknownFamily);
        }
        let view = dossier::build(&state, investigated, purpose, as_of);
        let investigation = Investigation {
            privacy_officer: privacy_officer.clone(),
            at: self.clock.now(),
            as_of,
            investigated: investigated.clone(),
            purpose,
            family_revision: view.family_revision,
        };
        self.log(family, AccessLogEvent::Investigated(investigation)).await?;
        Ok(view)
    }

    /// The family's disclosures and refusals that `filter` selects, for a privacy officer.
    /// The query itself is logged (filters and row count, never results).
    ///
    /// # Errors
    /// [`FamilyError::UnknownFamily`] or a store failure.
    pub async fn audit(
        &self,
        family: &FamilyId,
        officer: &Actor,
        filter: &AuditFilter,
        query: String,
    ) -> Result<Vec<AuditRow>, FamilyError> {
        self.with_fresh_state(family, |_| ()).await?;
        let rows = audit::rows(&self.access_log(family).await?, filter);
        let access =
            AuditAccess { privacy_officer: officer.clone(), at: self.clock.now(), query, rows: rows.len() as u64 };
        self.log(family, AccessLogEvent::Audited(access)).await?;
        Ok(rows)
    }

    /// Disclosures and refusals across every family that `filter` selects (e.g. everything one
    /// organisation saw), in log order. This reads the whole global log; the query is logged
    /// in the cross-family audit stream.
    ///
    /// # Errors
    /// A store failure.
    pub async fn audit_all(
        &self,
        officer: &Actor,
        filter: &AuditFilter,
        query: String,
    ) -> Result<Vec<AuditRow>, FamilyError> {
        let mut logs: HashMap<String, Vec<crate::envelope::RecordedEvent>> = HashMap::new();
        let mut from = 0;
        loop {
            let page = self.store.read_all(from, CATCH_UP_PAGE).await?;
            let Some(last) = page.last() else { break };
            from = last.position + 1;
            for event in page {
                if event.stream.as_str().starts_with(disclosure::STREAM_PREFIX) {
                    logs.entry(event.stream.as_str().to_owned()).or_default().push(event);
                }
            }
        }
        let mut rows: Vec<AuditRow> = logs.values().flat_map(|events| audit::rows(events, filter)).collect();
        rows.sort_by_key(|r| r.position);
        let access =
            AuditAccess { privacy_officer: officer.clone(), at: self.clock.now(), query, rows: rows.len() as u64 };
        let event = AccessLogEvent::Audited(access);
        let proposed = ProposedEvent {
            event_id: Uuid::new_v4(),
            event_type: event.event_type().to_owned(),
            recorded_at_micros: self.clock.now().timestamp_micros(),
            payload: crate::codec::to_json(&event),
        };
        self.store.append(&disclosure::cross_family_audit_stream(), ExpectedRevision::Any, vec![proposed]).await?;
        Ok(rows)
    }

    /// Records a privacy officer's review of a disclosure that waits for one.
    ///
    /// # Errors
    /// [`FamilyError::UnknownDisclosure`], [`FamilyError::NotReviewable`] (no legal basis
    /// used, or already reviewed), or a store failure.
    pub async fn review(
        &self,
        family: &FamilyId,
        reviewer: &Actor,
        disclosure_event_id: uuid::Uuid,
        outcome: ReviewOutcome,
        note: String,
    ) -> Result<Logged, FamilyError> {
        let all = audit::rows(&self.access_log(family).await?, &AuditFilter::default());
        let row = all
            .iter()
            .find(|r| r.event_id == disclosure_event_id)
            .ok_or(FamilyError::UnknownDisclosure(disclosure_event_id))?;
        if !row.review_required {
            return Err(FamilyError::NotReviewable("it used no legal basis".into()));
        }
        if let Some(done) = &row.review {
            return Err(FamilyError::NotReviewable(format!("already reviewed at {}", done.at.to_rfc3339())));
        }
        let review = Review { reviewer: reviewer.clone(), at: self.clock.now(), disclosure_event_id, outcome, note };
        self.log(family, AccessLogEvent::Reviewed(review)).await
    }

    /// The who-saw-what report about `subject`, asked for by `requested_by` through a
    /// portal. The request is logged.
    ///
    /// # Errors
    /// [`FamilyError::Report`] when `requested_by` may not see it, [`FamilyError::UnknownFamily`],
    /// or a store failure.
    pub async fn report(
        &self,
        family: &FamilyId,
        portal: &Actor,
        requested_by: &str,
        subject: &str,
    ) -> Result<crate::report::AccessReport, FamilyError> {
        let at = self.clock.now();
        let log = self.access_log(family).await?;
        let report = self
            .with_fresh_state(family, |state| {
                crate::report::may_request(state, requested_by, subject, at)?;
                Ok::<_, FamilyError>(crate::report::build(state, &log, subject, at))
            })
            .await??;
        let access = disclosure::ReportAccess {
            portal: portal.clone(),
            at,
            requested_by: requested_by.to_owned(),
            subject: subject.to_owned(),
        };
        self.log(family, AccessLogEvent::Reported(access)).await?;
        Ok(report)
    }

    async fn access_log(&self, family: &FamilyId) -> Result<Vec<crate::envelope::RecordedEvent>, FamilyError> {
        let stream = disclosure::stream(family);
        let mut events = Vec::new();
        loop {
            let page = self.store.read_stream(&stream, events.len() as u64, CATCH_UP_PAGE).await?;
            let done = page.len() < CATCH_UP_PAGE;
            events.extend(page);
            if done {
                return Ok(events);
            }
        }
    }

    /// Runs `f` on the family state after catching up with the store.
    ///
    /// # Errors
    /// [`FamilyError::UnknownFamily`] or a store failure.
    pub async fn with_fresh_state<T>(
        &self,
        family: &FamilyId,
        f: impl FnOnce(&FamilyState) -> T,
    ) -> Result<T, FamilyError> {
        let slot = self.loaded_slot(family).await?;
        let mut slot = slot.lock().await;
        self.catch_up(family, &mut slot.state).await?;
        if slot.state.revision.is_none() {
            return Err(FamilyError::UnknownFamily);
        }
        Ok(f(&slot.state))
    }

    /// Commits one access-log event; nothing may be shown unless this succeeds.
    async fn log(&self, family: &FamilyId, event: AccessLogEvent) -> Result<Logged, FamilyError> {
        let event_id = Uuid::new_v4();
        let proposed = ProposedEvent {
            event_id,
            event_type: event.event_type().to_owned(),
            recorded_at_micros: self.clock.now().timestamp_micros(),
            payload: crate::codec::to_json(&event),
        };
        let outcome = self.store.append(&disclosure::stream(family), ExpectedRevision::Any, vec![proposed]).await?;
        Ok(Logged { event_id, position: outcome.positions.first().copied().unwrap_or_default() })
    }

    async fn loaded_slot(&self, family: &FamilyId) -> Result<Arc<tokio::sync::Mutex<Slot>>, FamilyError> {
        let slot = self.slot(family);
        {
            let mut guard = slot.lock().await;
            if !guard.loaded {
                self.catch_up(family, &mut guard.state).await?;
                guard.loaded = true;
            }
        }
        Ok(slot)
    }

    fn slot(&self, family: &FamilyId) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(family.clone()).or_default().clone()
    }

    async fn catch_up(&self, family: &FamilyId, state: &mut FamilyState) -> Result<(), FamilyError> {
        let stream = family.stream();
        loop {
            let from = state.revision.map_or(0, |r| r + 1);
            let page = self.store.read_stream(&stream, from, CATCH_UP_PAGE).await?;
            for event in &page {
                state.apply(event)?;
            }
            if page.len() < CATCH_UP_PAGE {
                return Ok(());
            }
        }
    }
}

//! The privacy office's use cases: queries over the access log and reviews of sharing
//! without consent, each bounded to the office's own organisation (`authorisation`).

use super::{Families, FamilyError, Logged, Target};
use crate::audit::{self, AuditFilter, AuditRow};
use crate::authorisation::{Action, Caller, authorise, row_in_scope};
use crate::disclosure::{self, AccessLogEvent, AuditAccess, Review, ReviewOutcome};
use crate::family::FamilyId;

impl Families {
    /// The family's disclosures and refusals that `filter` selects and that lie within the
    /// officer's scope: requests by its organisation, and disclosures of data its
    /// organisation wrote. The query itself is logged (filters and row count, never results).
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded), or a store failure.
    pub async fn audit(
        &self,
        family: &FamilyId,
        officer: &Caller,
        filter: &AuditFilter,
        query: String,
    ) -> Result<Vec<AuditRow>, FamilyError> {
        let (exists, decision) = self
            .with_state_or_empty(family, |state| {
                (state.revision.is_some(), authorise(officer, &Action::QueryAccessLog { family: Some(state) }))
            })
            .await?;
        self.enforce(officer, Target::family(family, exists), decision).await?;
        let rows = in_scope(officer, audit::rows(&self.access_log(family).await?, &*self.keys, filter));
        let access = AuditAccess {
            privacy_officer: officer.actor.clone(),
            at: self.clock.now(),
            query,
            rows: rows.len() as u64,
        };
        self.commit_access_log_event(family, AccessLogEvent::Audited(access)).await?;
        Ok(rows)
    }

    /// Disclosures and refusals across every family that `filter` selects, within the
    /// officer's scope, in log order. This reads the whole global log; the query is logged
    /// in the cross-family audit stream.
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded), or a store failure.
    pub async fn audit_all(
        &self,
        officer: &Caller,
        filter: &AuditFilter,
        query: String,
    ) -> Result<Vec<AuditRow>, FamilyError> {
        let decision = authorise(officer, &Action::QueryAccessLog { family: None });
        self.enforce(officer, Target { family: None, family_exists: false, detail: "all families".into() }, decision)
            .await?;
        let logs = self.all_access_logs().await?;
        let mut rows =
            in_scope(officer, logs.values().flat_map(|events| audit::rows(events, &*self.keys, filter)).collect());
        rows.sort_by_key(|r| r.position);
        let access = AuditAccess {
            privacy_officer: officer.actor.clone(),
            at: self.clock.now(),
            query,
            rows: rows.len() as u64,
        };
        self.commit_to(&disclosure::cross_family_audit_stream(), AccessLogEvent::Audited(access)).await?;
        Ok(rows)
    }

    /// Records a privacy officer's review of a disclosure that waits for one.
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded) for a disclosure outside the officer's
    /// scope, [`FamilyError::UnknownDisclosure`], [`FamilyError::NotReviewable`] (no legal
    /// basis used, or already reviewed), or a store failure.
    pub async fn review(
        &self,
        family: &FamilyId,
        reviewer: &Caller,
        disclosure_event_id: uuid::Uuid,
        outcome: ReviewOutcome,
        note: String,
    ) -> Result<Logged, FamilyError> {
        let all = audit::rows(&self.access_log(family).await?, &*self.keys, &AuditFilter::default());
        let row = all.iter().find(|r| r.event_id == disclosure_event_id);
        let (exists, decision) = self
            .with_state_or_empty(family, |state| {
                let decision = match row {
                    Some(row) => {
                        authorise(reviewer, &Action::RecordReview { family: state, disclosure: row.parties() })
                    }
                    // An unknown disclosure may be named only within the office's scope.
                    None => authorise(reviewer, &Action::QueryAccessLog { family: Some(state) }),
                };
                (state.revision.is_some(), decision)
            })
            .await?;
        let target = Target::family(family, exists).with(format!("disclosure {disclosure_event_id}"));
        self.enforce(reviewer, target, decision).await?;
        let row = row.ok_or(FamilyError::UnknownDisclosure(disclosure_event_id))?;
        if !row.review_required {
            return Err(FamilyError::NotReviewable("it used no legal basis".into()));
        }
        if let Some(done) = &row.review {
            return Err(FamilyError::NotReviewable(format!("already reviewed at {}", done.at.to_rfc3339())));
        }
        let review =
            Review { reviewer: reviewer.actor.clone(), at: self.clock.now(), disclosure_event_id, outcome, note };
        self.commit_access_log_event(family, AccessLogEvent::Reviewed(review)).await
    }
}

/// The rows a privacy office may see: its organisation's requests, and disclosures of the
/// data its organisation wrote.
fn in_scope(officer: &Caller, rows: Vec<AuditRow>) -> Vec<AuditRow> {
    rows.into_iter().filter(|r| row_in_scope(&officer.actor.organisation_id, r.parties())).collect()
}

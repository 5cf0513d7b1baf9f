//! The privacy officer's view of the access log: disclosures and refusals as rows, with
//! their review state, filtered by subject, organisation, basis type, purpose and period.

use crate::actor::Actor;
use crate::authorisation::{DisclosureParties, Function};
use crate::case::{InformationCategory, MemberId};
use crate::consent::{Basis, LegalBasisKind, Purpose};
use crate::disclosure::{AccessLogEvent, Review};
use crate::envelope::{EventId, RecordedEvent};
use crate::merkle::{TreeHash, leaf_hash};
use crate::sealing::Opener;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How a disclosure was allowed, for filtering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BasisType {
    Consent,
    Legal(LegalBasisKind),
}

/// One disclosure or refusal, as a privacy officer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    /// The family whose access log holds this row.
    pub family: String,
    pub event_id: EventId,
    pub position: u64,
    /// The event's Merkle leaf hash, to check an inclusion proof against.
    pub leaf_hash: TreeHash,
    pub at: DateTime<Utc>,
    pub requester: Actor,
    /// `None` for a function the authorisation policy refused (it states no purpose).
    pub purpose: Option<Purpose>,
    /// For a refusal by the authorisation policy: the function refused.
    pub function: Option<Function>,
    /// The organisations whose records were disclosed (the requester's own excluded).
    pub authors: BTreeSet<String>,
    /// `None` for a refusal.
    pub shown: Option<BTreeMap<MemberId, BTreeMap<InformationCategory, Basis>>>,
    pub refusal_reasons: Vec<String>,
    pub break_the_glass: Option<String>,
    pub review_required: bool,
    /// When the review is due (with `review_required`).
    pub review_due: Option<DateTime<Utc>>,
    /// Delivered through the change feed.
    pub via_feed: bool,
    pub review: Option<Review>,
}

impl AuditRow {
    /// Waits for a review whose deadline passed before `now`.
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        self.review.is_none() && self.review_due.is_some_and(|due| due < now)
    }

    /// Who received this disclosure and whose data was in it, for the policy's scope.
    pub fn parties(&self) -> DisclosureParties<'_> {
        DisclosureParties { requester_organisation: &self.requester.organisation_id, authors: &self.authors }
    }

    /// The kinds of basis this disclosure used.
    pub fn basis_types(&self) -> BTreeSet<BasisType> {
        self.shown
            .iter()
            .flat_map(|s| s.values().flat_map(|c| c.values()))
            .map(|b| match b {
                Basis::Consent { .. } => BasisType::Consent,
                Basis::LegalBasis { kind, .. } => BasisType::Legal(*kind),
            })
            .collect()
    }
}

/// What to select. Every filter is optional; all given ones must hold.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub subject: Option<MemberId>,
    pub organisation_id: Option<String>,
    pub basis: Option<BasisType>,
    pub purpose: Option<Purpose>,
    pub from: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub include_refusals: bool,
    /// Only legal-basis uses that still wait for a review.
    pub pending_review_only: bool,
    /// Only reviews overdue at this time.
    pub overdue_at: Option<DateTime<Utc>>,
}

impl AuditFilter {
    fn accepts(&self, row: &AuditRow) -> bool {
        let subject_ok =
            self.subject.as_ref().is_none_or(|s| row.shown.as_ref().is_some_and(|shown| shown.contains_key(s)));
        let org_ok = self.organisation_id.as_ref().is_none_or(|o| *o == row.requester.organisation_id);
        let basis_ok = self.basis.is_none_or(|b| row.basis_types().contains(&b));
        let purpose_ok = self.purpose.is_none_or(|p| row.purpose == Some(p));
        let period_ok = self.from.is_none_or(|f| row.at >= f) && self.until.is_none_or(|u| row.at < u);
        let kind_ok = row.shown.is_some() || self.include_refusals;
        let pending_ok = !self.pending_review_only || (row.review_required && row.review.is_none());
        let overdue_ok = self.overdue_at.is_none_or(|now| row.overdue(now));
        subject_ok && org_ok && basis_ok && purpose_ok && period_ok && kind_ok && pending_ok && overdue_ok
    }
}

/// Folds one family's access-log events into rows (reviews attached to what they review)
/// and keeps those `filter` accepts, oldest first.
pub fn rows(events: &[RecordedEvent], opener: &dyn Opener, filter: &AuditFilter) -> Vec<AuditRow> {
    let family = events
        .first()
        .and_then(|e| e.stream.as_str().strip_prefix(crate::disclosure::STREAM_PREFIX))
        .unwrap_or_default()
        .to_owned();
    let mut rows: Vec<AuditRow> = Vec::new();
    let mut by_id: HashMap<EventId, usize> = HashMap::new();
    for event in events {
        let Some(entry) = crate::disclosure::open_line(event, opener) else { continue };
        match entry {
            AccessLogEvent::Disclosed(d) => {
                by_id.insert(event.event_id, rows.len());
                let review_due = d.review_due_at();
                rows.push(AuditRow {
                    family: family.clone(),
                    event_id: event.event_id,
                    position: event.position,
                    leaf_hash: leaf_hash(&event.canonical_bytes()),
                    at: d.at,
                    requester: d.requester,
                    purpose: Some(d.purpose),
                    function: None,
                    authors: d.authors,
                    shown: Some(d.shown),
                    refusal_reasons: Vec::new(),
                    break_the_glass: d.break_the_glass,
                    review_required: d.review_required,
                    review_due,
                    via_feed: d.via_feed,
                    review: None,
                });
            }
            AccessLogEvent::Refused(r) => {
                let reasons = r.reasons.into_iter().map(|x| x.explanation).collect();
                rows.push(refusal_row(&family, event, r.at, r.requester, Some(r.purpose), None, reasons));
            }
            AccessLogEvent::FunctionRefused(f) => {
                rows.push(refusal_row(&family, event, f.at, f.caller, None, Some(f.function), f.reasons));
            }
            AccessLogEvent::Reviewed(review) => {
                if let Some(&i) = by_id.get(&review.disclosure_event_id) {
                    rows[i].review = Some(review);
                }
            }
            AccessLogEvent::Checked(_)
            | AccessLogEvent::Investigated(_)
            | AccessLogEvent::Audited(_)
            | AccessLogEvent::Reported(_)
            | AccessLogEvent::Notified(_)
            | AccessLogEvent::NoticeAcknowledged(_) => {}
        }
    }
    rows.into_iter().filter(|r| filter.accepts(r)).collect()
}

/// A refused request, by the consent engine (with its purpose) or by the authorisation
/// policy (with the function asked for).
fn refusal_row(
    family: &str,
    event: &RecordedEvent,
    at: DateTime<Utc>,
    requester: Actor,
    purpose: Option<Purpose>,
    function: Option<Function>,
    refusal_reasons: Vec<String>,
) -> AuditRow {
    AuditRow {
        family: family.to_owned(),
        event_id: event.event_id,
        position: event.position,
        leaf_hash: leaf_hash(&event.canonical_bytes()),
        at,
        requester,
        purpose,
        function,
        authors: BTreeSet::new(),
        shown: None,
        refusal_reasons,
        break_the_glass: None,
        review_required: false,
        review_due: None,
        via_feed: false,
        review: None,
    }
}

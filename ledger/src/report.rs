//! The who-saw-what report for a family member: who may ask for whose report, and what it
//! lists. Rendering (Dutch B1, English) belongs to the service.
//!
//! Who may ask:
//! - a member, for their own data;
//! - a parent with gezag, for their children under 16;
//! - a young person of 16 or over, for their own data only: from then on their parents
//!   may no longer see it;
//! - never a parent under a contact ban, for a child: the report names the organisations
//!   where the child is in care, and so where the child can be found. The ban changes
//!   nothing about who must consent. A parent with gezag but no contact (no omgang) is
//!   served as any parent with gezag.

use crate::actor::{OrganisationType, ProfessionalRole};
use crate::audit::{AuditFilter, rows};
use crate::case::{InformationCategory, MemberId, MemberRole};
use crate::consent::authority::age_on;
use crate::consent::{Basis, ConsentStatus, LegalBasisKind, Purpose, Recipient};
use crate::envelope::{EventId, RecordedEvent};
use crate::family::FamilyState;
use crate::merkle::TreeHash;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// Why a report is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportDenied {
    #[error("{0:?} is not a member of this family")]
    UnknownMember(MemberId),
    #[error("{requester:?} may not see the report of {subject:?}: {why}")]
    NotAllowed { requester: MemberId, subject: MemberId, why: &'static str },
}

/// Checks whether `requester` may see the report about `subject` on `at`.
///
/// # Errors
/// [`ReportDenied`] saying why not.
pub fn may_request(
    family: &FamilyState,
    requester: &str,
    subject: &str,
    at: DateTime<Utc>,
) -> Result<(), ReportDenied> {
    // A member whose record was erased still may see who saw their data before (AVG art. 15).
    if requester == subject
        && !family.members.contains_key(subject)
        && family.erased_members().iter().any(|m| m.as_str() == subject)
    {
        return Ok(());
    }
    let asking = family.members.get(requester).ok_or_else(|| ReportDenied::UnknownMember(requester.to_owned()))?;
    let about = family.members.get(subject).ok_or_else(|| ReportDenied::UnknownMember(subject.to_owned()))?;
    if requester == subject {
        return Ok(());
    }
    let denied =
        |why| Err(ReportDenied::NotAllowed { requester: requester.to_owned(), subject: subject.to_owned(), why });
    if !asking.role.is_adult_role() || !matches!(about.role, MemberRole::Child | MemberRole::UnbornChild) {
        return denied("only a parent with gezag may see a child's report");
    }
    if !about.gezag.as_ref().is_some_and(|g| g.holders.contains(requester)) {
        return denied("this parent does not hold gezag over the child");
    }
    if asking.contact_restricted {
        // The report names the organisations where the child is in care, and so where the
        // child can be found; a contact ban keeps gezag (and consent) but not this.
        return denied("a parent under a contact ban is not served the child's report");
    }
    if age_on(about, at.date_naive()).is_some_and(|age| age >= 16) {
        return denied("from 16 a young person's report is theirs alone");
    }
    Ok(())
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportEntry {
    /// Data of the subject was shown.
    Seen {
        event_id: EventId,
        /// Global log position of the access-log event (for its inclusion proof).
        position: u64,
        leaf_hash: TreeHash,
        at: DateTime<Utc>,
        organisation_id: String,
        role: ProfessionalRole,
        categories: Vec<InformationCategory>,
        purpose: Purpose,
        /// The consents used, by id.
        consents: Vec<String>,
        /// The legal grounds used.
        legal_grounds: Vec<LegalBasisKind>,
        /// Break-the-glass: the reason given.
        emergency: Option<String>,
        /// Received through the change feed, not asked for by a professional.
        via_feed: bool,
        /// The line's own bytes, to check against the signed log; `None` when part of the
        /// line is withheld from this reader, or the event predates line commitments.
        line: Option<CheckableLine>,
    },
    /// Someone asked and was refused; nothing was shown.
    Refused {
        event_id: EventId,
        position: u64,
        leaf_hash: TreeHash,
        at: DateTime<Utc>,
        organisation_id: String,
        role: ProfessionalRole,
        purpose: Purpose,
        line: Option<CheckableLine>,
    },
}

/// What a reader needs to check one report line without our code: the line's bytes
/// ([`crate::disclosure::ReportLineFacts`]), its salt and index among the event's line
/// commitments, and the access-log event's canonical bytes, whose leaf the inclusion proof
/// places under a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckableLine {
    pub index: usize,
    pub bytes: Vec<u8>,
    pub salt: [u8; 32],
    pub canonical_event: Vec<u8>,
}

/// The checkable form of the line of `event` that `pick` chooses among `lines` (the lines
/// the event made, rebuilt from its audit row), when the event commits to them and its key
/// is live.
fn checkable(
    event: &RecordedEvent,
    opener: &dyn crate::sealing::Opener,
    lines: &[crate::disclosure::ReportLineFacts],
    pick: impl Fn(&crate::disclosure::ReportLineFacts) -> bool,
) -> Option<CheckableLine> {
    let commitments = crate::sealing::line_commitments(&event.payload).ok()?;
    let index = lines.iter().position(pick)?;
    let bytes = lines[index].bytes();
    let salt = opener.line_salt(event, index)?;
    (commitments.get(index) == Some(&crate::sealing::line_commitment(&salt, &bytes))).then(|| CheckableLine {
        index,
        bytes,
        salt,
        canonical_event: event.canonical_bytes(),
    })
}

/// A consent in force over the subject's data, and who may withdraw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentInForce {
    pub consent_id: String,
    pub categories: Vec<InformationCategory>,
    pub recipients: Vec<RecipientName>,
    pub purpose: Purpose,
    pub until: Option<DateTime<Utc>>,
    /// Members who may withdraw it (those who agreed).
    pub may_withdraw: Vec<MemberId>,
}

/// A recipient, by organisation id or by type and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientName {
    Organisation(String),
    Type(OrganisationType, Option<ProfessionalRole>),
    RoleAt(String, ProfessionalRole),
}

/// Data about the subject that its author corrected or retracted (AVG art. 16), and which
/// earlier recipients were told (art. 19).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrectionLine {
    pub at: DateTime<Utc>,
    /// The organisation that corrected it.
    pub organisation_id: String,
    pub retraction: bool,
    /// The organisations told, by id.
    pub told: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessReport {
    pub subject: MemberId,
    pub at: DateTime<Utc>,
    /// Oldest first; shared with the report index, which keeps them.
    pub entries: std::sync::Arc<Vec<ReportEntry>>,
    pub consents: Vec<ConsentInForce>,
    /// Oldest first.
    pub corrections: Vec<CorrectionLine>,
    /// Lines were left out because the child's provider shields information from this
    /// parent (WGBO 7:457): the report must say so.
    pub withheld: bool,
}

/// What is shielded from `parent` about `child` (WGBO 7:457): `None` nothing, an empty set
/// everything, else those categories.
fn shielded(
    family: &FamilyState,
    child: &str,
    parent: &str,
    at: DateTime<Utc>,
) -> Option<std::collections::BTreeSet<InformationCategory>> {
    let mut shield: Option<std::collections::BTreeSet<InformationCategory>> = None;
    for item in family.items.iter().take_while(|i| i.recorded_at <= at) {
        if let crate::case::CaseEventKind::Shielding { child: c, parent: p, categories, .. } = &item.event.kind
            && c == child
            && p == parent
        {
            let all = categories.is_empty() || shield.as_ref().is_some_and(|s| s.is_empty());
            let mut set = shield.take().unwrap_or_default();
            set.extend(categories.iter().copied());
            shield = Some(if all { Default::default() } else { set });
        }
    }
    shield
}

/// Builds the report about `subject` for `requested_by` from the family and its access
/// log. Its cost follows the family's access log, not the whole ledger.
pub fn build(
    family: &FamilyState,
    access_log: &[RecordedEvent],
    opener: &dyn crate::sealing::Opener,
    request: &crate::families::ReportRequest<'_>,
    at: DateTime<Utc>,
) -> AccessReport {
    let (subject, requested_by) = (request.subject, request.requested_by);
    let shield = if requested_by == subject { None } else { shielded(family, subject, requested_by, at) };
    let hides = |c: &InformationCategory| shield.as_ref().is_some_and(|s| s.is_empty() || s.contains(c));
    let mut withheld = false;
    let filter = AuditFilter { include_refusals: true, ..Default::default() };
    let events: std::collections::HashMap<u64, &RecordedEvent> = access_log.iter().map(|e| (e.position, e)).collect();
    // The row already holds what the event's lines were made of: no second opening.
    let checkable_line = |row: &crate::audit::AuditRow, pick: &dyn Fn(&crate::disclosure::ReportLineFacts) -> bool| {
        if !request.checkable_lines {
            return None;
        }
        let purpose = row.purpose?;
        let lines = match &row.shown {
            Some(shown) => crate::disclosure::disclosure_lines(
                row.at,
                &row.requester,
                purpose,
                shown,
                &row.break_the_glass,
                row.via_feed,
            ),
            None => vec![crate::disclosure::refusal_line(row.at, &row.requester, purpose)],
        };
        events.get(&row.position).and_then(|event| checkable(event, opener, &lines, pick))
    };
    let entries = rows(access_log, opener, &filter)
        .into_iter()
        .filter_map(|row| match &row.shown {
            Some(_) => {
                let (mut entry, whole) = seen_entry(&row, subject, &hides)?;
                withheld |= !whole;
                if whole && let Some(ReportEntry::Seen { line, .. }) = &mut entry {
                    *line = checkable_line(&row, &|l| l.subject.as_deref() == Some(subject));
                }
                entry
            }
            // Refusals of a dossier request; refused functions (audit, reports) name no
            // purpose and are the privacy officer's to see.
            None if shield.as_ref().is_some_and(|s| s.is_empty()) => {
                withheld = true;
                None
            }
            None => {
                let mut entry = refused_entry(&row)?;
                if let ReportEntry::Refused { line, .. } = &mut entry {
                    *line = checkable_line(&row, &|l| l.refused);
                }
                Some(entry)
            }
        })
        .collect();
    let hides_all = shield.as_ref().is_some_and(|s| s.is_empty());
    complete(
        family,
        subject,
        at,
        std::sync::Arc::new(entries),
        &told_by_notices(access_log, opener),
        hides_all,
        withheld,
    )
}

/// The report's other parts (consents in force, corrections with whom their notices told)
/// around its `entries`.
fn complete(
    family: &FamilyState,
    subject: &str,
    at: DateTime<Utc>,
    entries: std::sync::Arc<Vec<ReportEntry>>,
    told: &std::collections::HashMap<EventId, Vec<String>>,
    hides_all: bool,
    mut withheld: bool,
) -> AccessReport {
    let consents = family
        .consents
        .values()
        .filter(|c| c.grant.subject == subject)
        .filter(|c| family.members.get(subject).is_some_and(|m| c.status_at(m, at) == ConsentStatus::Active))
        .map(|c| ConsentInForce {
            consent_id: c.grant.consent_id.clone(),
            categories: c.grant.categories.iter().copied().collect(),
            recipients: c
                .grant
                .recipients
                .iter()
                .map(|r| match r {
                    Recipient::Organisation { organisation_id } => RecipientName::Organisation(organisation_id.clone()),
                    Recipient::TypeAndRole { organisation_type, role } => {
                        RecipientName::Type(*organisation_type, *role)
                    }
                    Recipient::OrganisationRole { organisation_id, role } => {
                        RecipientName::RoleAt(organisation_id.clone(), *role)
                    }
                })
                .collect(),
            purpose: c.grant.purpose,
            until: c.grant.valid_until,
            may_withdraw: c.agreements.keys().cloned().collect(),
        })
        .collect();
    let mut corrections = corrections_about(family, told, subject, at);
    if hides_all && !corrections.is_empty() {
        corrections.clear();
        withheld = true;
    }
    AccessReport { subject: subject.to_owned(), at, entries, consents, corrections, withheld }
}

/// Corrections by their author of events about `subject` (before or after), with the
/// organisations their notices went to.
fn corrections_about(
    family: &FamilyState,
    told: &std::collections::HashMap<EventId, Vec<String>>,
    subject: &str,
    at: DateTime<Utc>,
) -> Vec<CorrectionLine> {
    family
        .items
        .iter()
        .take_while(|i| i.recorded_at <= at)
        .filter_map(|item| {
            let crate::case::CaseEventKind::Correction(c) = &item.event.kind else { return None };
            let original = family.item(&c.corrects)?;
            let by_author = original.author.organisation_id == item.author.organisation_id;
            let about_subject = original.event.subjects.contains(subject) || item.event.subjects.contains(subject);
            (by_author && about_subject).then(|| CorrectionLine {
                at: item.recorded_at,
                organisation_id: item.author.organisation_id.clone(),
                retraction: c.replacement.is_none(),
                told: told.get(&item.event_id).cloned().unwrap_or_default(),
            })
        })
        .collect()
}

/// The organisations each correction's notices went to, by the correction's event id.
fn told_by_notices(
    access_log: &[RecordedEvent],
    opener: &dyn crate::sealing::Opener,
) -> std::collections::HashMap<EventId, Vec<String>> {
    let mut told = ReportLines::default();
    told.add_notices(access_log, opener);
    told.told
}

/// A family's report lines, per subject, as its access log gave them so far: kept by
/// [`crate::families::Families`] and extended with each new part of the log, so that a
/// report costs what it lists, not what the family's log holds. Lines are kept whole (no
/// parent's shield applied) and without their checkable form; a report that needs either
/// is built from the log itself.
#[derive(Debug, Default)]
pub struct ReportLines {
    /// Each member's report lines: what was seen of them, and every refusal.
    by_subject: std::collections::HashMap<MemberId, std::sync::Arc<Vec<ReportEntry>>>,
    /// Every refusal: a member's list starts with those before its first line.
    refused: Vec<ReportEntry>,
    told: std::collections::HashMap<EventId, Vec<String>>,
    /// The access-log revision to read from next.
    pub next_revision: u64,
    /// Estimated heap bytes.
    pub approx_bytes: usize,
}

impl ReportLines {
    /// Takes in the next part of the family's access log (from `next_revision` on).
    pub fn add(&mut self, access_log: &[RecordedEvent], opener: &dyn crate::sealing::Opener) {
        let filter = AuditFilter { include_refusals: true, ..Default::default() };
        for row in rows(access_log, opener, &filter) {
            match &row.shown {
                Some(shown) => {
                    for subject in shown.keys() {
                        if let Some((Some(entry), _)) = seen_entry(&row, subject, &|_| false) {
                            self.approx_bytes += entry_bytes(&entry);
                            let list = self
                                .by_subject
                                .entry(subject.clone())
                                .or_insert_with(|| std::sync::Arc::new(self.refused.clone()));
                            // Copies the list only while a report still holds it.
                            std::sync::Arc::make_mut(list).push(entry);
                        }
                    }
                }
                None => {
                    if let Some(entry) = refused_entry(&row) {
                        self.approx_bytes += entry_bytes(&entry) * (1 + self.by_subject.len());
                        for list in self.by_subject.values_mut() {
                            std::sync::Arc::make_mut(list).push(entry.clone());
                        }
                        self.refused.push(entry);
                    }
                }
            }
        }
        self.add_notices(access_log, opener);
        self.next_revision += access_log.len() as u64;
    }

    fn add_notices(&mut self, access_log: &[RecordedEvent], opener: &dyn crate::sealing::Opener) {
        for event in access_log {
            if let Some(crate::disclosure::AccessLogEvent::Notified(n)) = crate::disclosure::open_line(event, opener) {
                self.approx_bytes += 48 + n.recipient_organisation_id.len();
                self.told.entry(n.cause_event_id).or_default().push(n.recipient_organisation_id);
            }
        }
    }

    /// The report from these lines, or `None` when it needs the log itself: a parent's
    /// shield applies, or the lines' checkable form was asked for.
    pub fn report(
        &self,
        family: &FamilyState,
        request: &crate::families::ReportRequest<'_>,
        at: DateTime<Utc>,
    ) -> Option<AccessReport> {
        let subject = request.subject;
        let shielded = request.requested_by != subject && shielded(family, subject, request.requested_by, at).is_some();
        if shielded || request.checkable_lines {
            return None;
        }
        let entries = match self.by_subject.get(subject) {
            Some(list) => list.clone(),
            None => std::sync::Arc::new(self.refused.clone()),
        };
        Some(complete(family, subject, at, entries, &self.told, false, false))
    }
}

/// A line's estimated heap bytes, for the bound on kept lines.
fn entry_bytes(entry: &ReportEntry) -> usize {
    let size = std::mem::size_of::<ReportEntry>();
    match entry {
        ReportEntry::Seen { organisation_id, categories, consents, emergency, .. } => {
            size + organisation_id.len()
                + categories.len()
                + consents.iter().map(|c| c.len() + 24).sum::<usize>()
                + emergency.as_ref().map_or(0, String::len)
                + 64
        }
        ReportEntry::Refused { organisation_id, .. } => size + organisation_id.len(),
    }
}

/// The line of a disclosure `row` about `subject`, without the categories `hides` leaves
/// out: `None` when the row showed nothing of the subject; else the line (`None` when every
/// category was hidden) and whether it is whole. No checkable form yet.
pub(crate) fn seen_entry(
    row: &crate::audit::AuditRow,
    subject: &str,
    hides: &dyn Fn(&InformationCategory) -> bool,
) -> Option<(Option<ReportEntry>, bool)> {
    let all_of_subject = row.shown.as_ref()?.get(subject)?;
    let of_subject: BTreeMap<_, _> = all_of_subject.iter().filter(|(c, _)| !hides(c)).collect();
    let whole = of_subject.len() == all_of_subject.len();
    if of_subject.is_empty() {
        return Some((None, whole));
    }
    let consents = of_subject
        .values()
        .filter_map(|b| match b {
            Basis::Consent { consent_id, .. } => Some(consent_id.clone()),
            Basis::LegalBasis { .. } => None,
        })
        .collect::<std::collections::BTreeSet<_>>();
    let legal_grounds = of_subject
        .values()
        .filter_map(|b| match b {
            Basis::LegalBasis { kind, .. } => Some(*kind),
            Basis::Consent { .. } => None,
        })
        .collect::<std::collections::BTreeSet<_>>();
    let entry = ReportEntry::Seen {
        event_id: row.event_id,
        position: row.position,
        leaf_hash: row.leaf_hash,
        at: row.at,
        organisation_id: row.requester.organisation_id.clone(),
        role: row.requester.role,
        categories: of_subject.keys().map(|c| **c).collect(),
        purpose: row.purpose?,
        consents: consents.into_iter().collect(),
        legal_grounds: legal_grounds.into_iter().collect(),
        emergency: row.break_the_glass.clone(),
        via_feed: row.via_feed,
        line: None,
    };
    Some((Some(entry), whole))
}

/// The line of a refused dossier request; `None` for a refused function (audit, reports),
/// which names no purpose and is the privacy officer's to see. No checkable form yet.
pub(crate) fn refused_entry(row: &crate::audit::AuditRow) -> Option<ReportEntry> {
    Some(ReportEntry::Refused {
        event_id: row.event_id,
        position: row.position,
        leaf_hash: row.leaf_hash,
        at: row.at,
        organisation_id: row.requester.organisation_id.clone(),
        role: row.requester.role,
        purpose: row.purpose?,
        line: None,
    })
}

impl ReportEntry {
    /// The line's checkable form, when it has one.
    pub fn checkable(&self) -> Option<&CheckableLine> {
        match self {
            Self::Seen { line, .. } | Self::Refused { line, .. } => line.as_ref(),
        }
    }

    /// The access-log event's global position and leaf hash.
    pub fn leaf(&self) -> (u64, TreeHash) {
        match self {
            Self::Seen { position, leaf_hash, .. } | Self::Refused { position, leaf_hash, .. } => {
                (*position, *leaf_hash)
            }
        }
    }
}

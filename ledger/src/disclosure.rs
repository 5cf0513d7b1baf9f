//! The access log: every disclosure, refusal, dry-run check and investigation, as events
//! in the family's `disclosures-<family>` stream. A disclosure is committed before any data
//! leaves; if it cannot be, nothing is shown.
//!
//! Lines are sealed under their year's key (see [`crate::sealing`]): read them with
//! [`open_line`], after the keyring has prefetched the page they are on.

use crate::actor::{Actor, ProfessionalRole};
use crate::authorisation::{Function, MemberAuthentication};
use crate::case::{InformationCategory, MemberId};
use crate::consent::{Basis, DenialReason, Purpose};
use crate::envelope::{RecordedEvent, StreamId};
use crate::family::FamilyId;
use crate::sealing::{Content, KeyGroup, Opener};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Access-log streams are named this prefix plus the family id.
pub const STREAM_PREFIX: &str = "disclosures-";

/// The name an access-log stream's year keys are kept under: the family's id, or the
/// stream's own name for the cross-family logs.
pub fn key_owner(stream: &StreamId) -> &str {
    stream.as_str().strip_prefix(STREAM_PREFIX).unwrap_or(stream.as_str())
}

/// The key group of a line recorded at `recorded_at_micros`.
pub fn line_group(recorded_at_micros: i64) -> KeyGroup {
    use chrono::Datelike;
    KeyGroup::access_log(DateTime::from_timestamp_micros(recorded_at_micros).unwrap_or_default().year())
}

/// What one line of a parents' report shows, as the line's own bytes
/// ([`ReportLineFacts::bytes`]): who (organisation and role, never the professional's
/// name), when, for what, whose data, which categories on which basis. An access-log event
/// commits to each of its lines in its sealed header (see [`crate::sealing`]), so a parent
/// given one line's bytes and salt can check it against the signed log without learning
/// the event's other lines (another member's, say).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportLineFacts {
    pub at: DateTime<Utc>,
    pub organisation_id: String,
    pub role: ProfessionalRole,
    pub purpose: Purpose,
    /// Whose data; absent for a refusal, which showed nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<MemberId>,
    /// Per category shown, the basis that allowed it; empty for a refusal.
    pub shown: BTreeMap<InformationCategory, Basis>,
    pub refused: bool,
    pub break_the_glass: Option<String>,
    pub via_feed: bool,
}

impl ReportLineFacts {
    /// The line's bytes: its JSON, fields in declaration order, maps in key order.
    pub fn bytes(&self) -> Vec<u8> {
        crate::codec::to_json(self)
    }
}

/// The report lines an access-log event makes, in commitment order: a disclosure one per
/// subject shown, a refusal one; other events none.
pub fn lines(event: &AccessLogEvent) -> Vec<ReportLineFacts> {
    match event {
        AccessLogEvent::Disclosed(d) => {
            disclosure_lines(d.at, &d.requester, d.purpose, &d.shown, &d.break_the_glass, d.via_feed)
        }
        AccessLogEvent::Refused(r) => vec![refusal_line(r.at, &r.requester, r.purpose)],
        _ => Vec::new(),
    }
}

/// The lines of a disclosure, from its parts (as an audit row also holds them).
pub fn disclosure_lines(
    at: DateTime<Utc>,
    requester: &Actor,
    purpose: Purpose,
    shown: &BTreeMap<MemberId, BTreeMap<InformationCategory, Basis>>,
    break_the_glass: &Option<String>,
    via_feed: bool,
) -> Vec<ReportLineFacts> {
    shown
        .iter()
        .map(|(subject, shown)| ReportLineFacts {
            at,
            organisation_id: requester.organisation_id.clone(),
            role: requester.role,
            purpose,
            subject: Some(subject.clone()),
            shown: shown.clone(),
            refused: false,
            break_the_glass: break_the_glass.clone(),
            via_feed,
        })
        .collect()
}

/// The one line of a refusal: nothing was shown.
pub fn refusal_line(at: DateTime<Utc>, requester: &Actor, purpose: Purpose) -> ReportLineFacts {
    ReportLineFacts {
        at,
        organisation_id: requester.organisation_id.clone(),
        role: requester.role,
        purpose,
        subject: None,
        shown: BTreeMap::new(),
        refused: true,
        break_the_glass: None,
        via_feed: false,
    }
}

/// One access-log line, opened; `None` when its year's key was destroyed (the retention
/// run shredded it) or it is not an access-log line.
pub fn open_line(event: &RecordedEvent, opener: &dyn Opener) -> Option<AccessLogEvent> {
    let opened = match opener.open(event) {
        Ok(opened) => opened,
        Err(e) => {
            // A reader that forgot to prefetch would hide lines: say so loudly.
            tracing::error!(event_id = %event.event_id, error = %e, "an access-log line does not open");
            return None;
        }
    };
    match opened.content {
        Content::Plain(payload) => serde_json::from_slice(&payload).ok(),
        Content::Shredded { .. } => None,
    }
}

/// The stream that logs access to a family's data.
pub fn stream(family: &FamilyId) -> StreamId {
    StreamId::new(format!("{STREAM_PREFIX}{}", family.as_str()))
        .unwrap_or_else(|_| unreachable!("family ids are valid stream ids"))
}

/// Where audit queries across families are logged (NEN 7513: access to the log is logged).
pub fn cross_family_audit_stream() -> StreamId {
    StreamId::new("audit-queries").unwrap_or_else(|_| unreachable!("a valid literal stream id"))
}

/// Where refusals are logged whose target is no family that exists (NEN 7513: refused
/// access is logged too).
pub fn cross_family_refusal_stream() -> StreamId {
    StreamId::new("access-refusals").unwrap_or_else(|_| unreachable!("a valid literal stream id"))
}

/// What one request saw, pinned to the family revision and the bases used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disclosure {
    pub requester: Actor,
    pub purpose: Purpose,
    pub at: DateTime<Utc>,
    pub family_revision: Option<u64>,
    /// Per subject, per category shown, the basis that allowed it.
    pub shown: BTreeMap<MemberId, BTreeMap<InformationCategory, Basis>>,
    /// How many of the requester's own records were in the view (not a disclosure).
    pub own_records: usize,
    /// The reason given when break-the-glass was invoked for this request.
    pub break_the_glass: Option<String>,
    /// A legal basis was used: waits for a privacy officer's review.
    pub review_required: bool,
    /// The organisations whose records were in the view (the requester's own excluded):
    /// their privacy officers audit and review this disclosure.
    #[serde(default)]
    pub authors: BTreeSet<String>,
    /// With `review_required`: when the review is due. Older records have none; they are
    /// due [`DEFAULT_REVIEW_WITHIN`] after `at`.
    #[serde(default)]
    pub review_due: Option<DateTime<Utc>>,
    /// Delivered through the change feed (one disclosure per delivered batch), not asked
    /// for by a professional: the parents' report says "received through the feed".
    #[serde(default)]
    pub via_feed: bool,
}

/// How long a privacy officer has to review a use of a legal basis, unless configured.
pub const DEFAULT_REVIEW_WITHIN: chrono::Duration = chrono::Duration::days(7);

impl Disclosure {
    /// When its review is due, if it needs one.
    pub fn review_due_at(&self) -> Option<DateTime<Utc>> {
        self.review_required.then(|| self.review_due.unwrap_or(self.at + DEFAULT_REVIEW_WITHIN))
    }
}

/// A request that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub requester: Actor,
    pub purpose: Purpose,
    pub at: DateTime<Utc>,
    pub family_revision: Option<u64>,
    pub reasons: Vec<DenialReason>,
}

/// A dry run of the rules: what would happen, with nothing disclosed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessCheck {
    pub requester: Actor,
    pub purpose: Purpose,
    pub at: DateTime<Utc>,
    /// The time asked about, when not `at` ("could I have seen this then?").
    #[serde(default)]
    pub as_of: Option<DateTime<Utc>>,
    pub subject: MemberId,
    pub category: InformationCategory,
    pub granted: Option<Basis>,
}

/// A privacy officer rebuilt what a requester could see at a past time. Not a disclosure
/// to that requester.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Investigation {
    pub privacy_officer: Actor,
    pub at: DateTime<Utc>,
    pub as_of: DateTime<Utc>,
    pub investigated: Actor,
    pub purpose: Purpose,
    pub family_revision: Option<u64>,
}

/// A privacy officer's review of a disclosure that used a legal basis (or break-the-glass).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Review {
    pub reviewer: Actor,
    pub at: DateTime<Utc>,
    /// The reviewed disclosure's event id.
    pub disclosure_event_id: uuid::Uuid,
    pub outcome: ReviewOutcome,
    pub note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewOutcome {
    /// The use of the basis was justified.
    Justified,
    /// It was not; follow-up is recorded elsewhere (incident, data breach register).
    Unjustified,
    /// More information is needed before a verdict.
    NeedsFollowUp,
}

/// A privacy officer read the access log itself (NEN 7513: access to the log is logged).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAccess {
    pub privacy_officer: Actor,
    pub at: DateTime<Utc>,
    /// What was asked, in words (filters only; never results).
    pub query: String,
    pub rows: u64,
}

/// A who-saw-what report was produced for a family member, through a portal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportAccess {
    /// The portal's organisation and the professional or service account that asked.
    pub portal: Actor,
    pub at: DateTime<Utc>,
    /// The member who asked (authenticated by the portal).
    pub requested_by: MemberId,
    /// Whose data the report is about.
    pub subject: MemberId,
    /// How the portal says it authenticated the member.
    #[serde(default)]
    pub member_authentication: Option<MemberAuthentication>,
}

/// The authorisation policy refused a function (`crate::authorisation`). Nothing was read or
/// written but this record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionRefusal {
    pub caller: Actor,
    pub function: Function,
    pub at: DateTime<Utc>,
    /// What was asked for, in words (family id, position, requester; never results).
    pub target: String,
    pub reasons: Vec<String>,
}

/// What a notice tells its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    /// An event the recipient received was corrected (AVG art. 19): the dossier now shows
    /// the corrected content.
    Correction,
    /// An event the recipient received was retracted (AVG art. 19): it is shown to nobody
    /// any more; remove or mark it in the recipient's own record.
    Retraction,
    /// Another organisation broke the glass and saw data the recipient wrote: its privacy
    /// officer may review that use (`about_event_id` is the disclosure).
    BreakTheGlass,
    /// An event the recipient received was erased (AVG art. 17, 19): its content is gone
    /// for good; remove it from the recipient's own record too.
    Erasure,
}

impl NoticeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Correction => "correction",
            Self::Retraction => "retraction",
            Self::BreakTheGlass => "break_the_glass",
            Self::Erasure => "erasure",
        }
    }
}

/// A notice to one organisation, open until that organisation acknowledges it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    pub kind: NoticeKind,
    /// The organisation told.
    pub recipient_organisation_id: String,
    /// The event the notice is about (the corrected or retracted original; for
    /// break-the-glass, the disclosure).
    pub about_event_id: uuid::Uuid,
    /// The event that caused it (the correction; the disclosure).
    pub cause_event_id: uuid::Uuid,
    /// Who caused it.
    pub from: Actor,
    pub at: DateTime<Utc>,
}

/// The recipient confirms it has acted on a notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoticeAcknowledgement {
    /// The access-log event id of the notice.
    pub notice_id: uuid::Uuid,
    pub by: Actor,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AccessLogEvent {
    Disclosed(Disclosure),
    Refused(Refusal),
    Checked(AccessCheck),
    Investigated(Investigation),
    Reviewed(Review),
    Audited(AuditAccess),
    Reported(ReportAccess),
    FunctionRefused(FunctionRefusal),
    Notified(Notice),
    NoticeAcknowledged(NoticeAcknowledgement),
}

impl AccessLogEvent {
    /// The event type of [`AccessLogEvent::Notified`] (the feed wakes on it).
    pub const NOTIFIED: &'static str = "access.notified";

    /// Counts this committed event in the metrics: disclosures, refusals and the rest by
    /// type, break-the-glass disclosures apart.
    pub fn count_committed(&self) {
        metrics::counter!("gezinsdossier_access_log_events_total", "type" => self.event_type()).increment(1);
        if let Self::Disclosed(d) = self
            && d.break_the_glass.is_some()
        {
            metrics::counter!("gezinsdossier_break_the_glass_total").increment(1);
        }
    }

    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Disclosed(_) => "access.disclosed",
            Self::Refused(_) => "access.refused",
            Self::Checked(_) => "access.checked",
            Self::Investigated(_) => "access.investigated",
            Self::Reviewed(_) => "access.reviewed",
            Self::Audited(_) => "access.audited",
            Self::Reported(_) => "access.reported",
            Self::FunctionRefused(_) => "access.function_refused",
            Self::Notified(_) => Self::NOTIFIED,
            Self::NoticeAcknowledged(_) => "access.notice_acknowledged",
        }
    }

    /// The organisation on whose behalf this entry was made (who asked, audited or reviewed).
    pub fn actor(&self) -> &Actor {
        match self {
            Self::Disclosed(d) => &d.requester,
            Self::Refused(r) => &r.requester,
            Self::Checked(c) => &c.requester,
            Self::Investigated(i) => &i.privacy_officer,
            Self::Reviewed(r) => &r.reviewer,
            Self::Audited(a) => &a.privacy_officer,
            Self::Reported(r) => &r.portal,
            Self::FunctionRefused(f) => &f.caller,
            Self::Notified(n) => &n.from,
            Self::NoticeAcknowledged(a) => &a.by,
        }
    }
}

//! Rectification and retraction (AVG art. 16 and 19): what a correction means for every
//! view, and who must be told.
//!
//! - Only the organisation that wrote an event may correct or retract it (the policy in
//!   [`crate::authorisation`] refuses anyone else); a subject's request for rectification is
//!   recorded by that organisation's EPD. Corrections by another organisation, accepted
//!   before that rule, have no effect.
//! - A correction replaces the original in every view: the view shows the replacement,
//!   tagged with the correction's subjects and categories, and says that and when it was
//!   corrected. The correction event itself is not a separate item.
//! - A retraction (a correction without replacement) stops all disclosure of the original,
//!   to everyone, from then on. Both events stay in the log; their hashes still verify.
//! - Art. 19: every organisation that received the item before it was corrected gets one
//!   [`Notice`] in the family's access log, open until it acknowledges it. The access log
//!   says who received it: a disclosure shows an item exactly when every (subject,
//!   category) pair the item carried is in the disclosure's `shown`.

use crate::case::{CaseEvent, CaseEventKind};
use crate::disclosure::{AccessLogEvent, Disclosure, Notice, NoticeKind};
use crate::envelope::EventId;
use crate::family::{CaseItem, FamilyState};
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// The latest correction of an event by its own author.
#[derive(Debug, Clone)]
pub struct Amendment {
    pub correction: Arc<CaseItem>,
    /// The corrected content; `None`: retracted.
    pub replacement: Option<CaseEventKind>,
}

impl Amendment {
    /// What `original` says after this amendment; `None` when it was retracted.
    pub fn applied_to(&self, original: &CaseEvent) -> Option<CaseEvent> {
        let kind = self.replacement.clone()?;
        Some(CaseEvent {
            occurred_at: original.occurred_at,
            subjects: self.correction.event.subjects.clone(),
            categories: self.correction.event.categories.clone(),
            kind,
        })
    }
}

/// For each corrected event, its latest correction by its author recorded up to `at`,
/// among the corrections after revision `after` (all of them with `None`).
pub fn amendments(family: &FamilyState, at: DateTime<Utc>, after: Option<u64>) -> HashMap<EventId, Amendment> {
    let mut latest = HashMap::new();
    for item in family.items_after(after).iter().take_while(|i| i.recorded_at <= at) {
        if let CaseEventKind::Correction(c) = &item.event.kind
            && family.item(&c.corrects).is_some_and(|original| {
                original.revision < item.revision && original.author.organisation_id == item.author.organisation_id
            })
        {
            let replacement = c.replacement.as_deref().cloned();
            latest.insert(c.corrects, Amendment { correction: item.clone(), replacement });
        }
    }
    latest
}

/// Whether `disclosure` showed the item in one of its `versions` (the original, then each
/// earlier correction, oldest first): a version recorded before the disclosure whose every
/// (subject, category) pair was disclosed. The author's own views are not disclosures of it.
pub(crate) fn received(versions: &[&CaseItem], author: &str, disclosure: &Disclosure) -> bool {
    disclosure.requester.organisation_id != author
        && versions.iter().any(|v| {
            v.recorded_at <= disclosure.at
                && v.event.subjects.iter().all(|s| {
                    let shown = disclosure.shown.get(s);
                    v.event.categories.iter().all(|c| shown.is_some_and(|cats| cats.contains_key(c)))
                })
        })
}

/// The notices that `correction` of `original` creates: one per organisation that received
/// the item before, each with an id derived from the correction and the recipient (so that
/// a retried append writes each notice once). `access_log` is the family's, decoded.
pub fn notices_for(
    family: &FamilyState,
    original: &CaseItem,
    correction: &CaseItem,
    access_log: &[(EventId, AccessLogEvent)],
) -> Vec<(EventId, Notice)> {
    let retraction = matches!(&correction.event.kind, CaseEventKind::Correction(c) if c.replacement.is_none());
    let author = original.author.organisation_id.as_str();
    // The item as earlier recipients could have seen it: the original and its corrections
    // before this one.
    let mut versions: Vec<&CaseItem> = vec![original];
    versions.extend(family.items.iter().map(|i| &**i).filter(|i| {
        i.recorded_at < correction.recorded_at
            && i.author.organisation_id == author
            && matches!(&i.event.kind, CaseEventKind::Correction(c) if c.corrects == original.event_id)
    }));
    let recipients: BTreeSet<&str> = access_log
        .iter()
        .filter_map(|(_, e)| match e {
            // Stored times have microsecond precision; the clock may have more.
            AccessLogEvent::Disclosed(d)
                if d.at.timestamp_micros() <= correction.recorded_at.timestamp_micros()
                    && received(&versions, author, d) =>
            {
                Some(d.requester.organisation_id.as_str())
            }
            _ => None,
        })
        .collect();
    recipients
        .into_iter()
        .map(|recipient| {
            let notice = Notice {
                kind: if retraction { NoticeKind::Retraction } else { NoticeKind::Correction },
                recipient_organisation_id: recipient.to_owned(),
                about_event_id: original.event_id,
                cause_event_id: correction.event_id,
                from: correction.author.clone(),
                at: correction.recorded_at,
            };
            (notice_id(correction.event_id, recipient), notice)
        })
        .collect()
}

/// A notice's event id: the same for the same cause and recipient, whoever computes it.
pub fn notice_id(cause: EventId, recipient: &str) -> EventId {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    digest.update(b"gezinsdossier notice v1\0");
    digest.update(cause.as_bytes());
    digest.update(recipient.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest.finish().as_ref()[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// A notice with its state, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeState {
    pub notice_id: EventId,
    pub notice: Notice,
    pub acknowledged: Option<(crate::actor::Actor, DateTime<Utc>)>,
}

/// The notices in a family's access log, with their acknowledgements.
pub fn notice_states(access_log: &[(EventId, AccessLogEvent)]) -> Vec<NoticeState> {
    let mut states: Vec<NoticeState> = Vec::new();
    let mut index: HashMap<EventId, usize> = HashMap::new();
    for (id, event) in access_log {
        match event {
            AccessLogEvent::Notified(n) => {
                index.insert(*id, states.len());
                states.push(NoticeState { notice_id: *id, notice: n.clone(), acknowledged: None });
            }
            AccessLogEvent::NoticeAcknowledged(a) => {
                if let Some(&i) = index.get(&a.notice_id) {
                    states[i].acknowledged.get_or_insert_with(|| (a.by.clone(), a.at));
                }
            }
            _ => {}
        }
    }
    states
}

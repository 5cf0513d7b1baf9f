//! Which key group each family event is sealed under (see the module doc of
//! [`crate::sealing`] for why).

use super::{KeyGroup, RecordKind};
use crate::case::{CaseEvent, CaseEventKind};
use crate::consent::{ConsentEvent, ConsentRecord};
use crate::family::FamilyState;
use std::collections::BTreeSet;

/// A case event's group: its author, subjects and categories; a correction takes the group
/// of the event it corrects, so the two are erased together.
pub fn of_case(state: &FamilyState, author: &str, event: &CaseEvent) -> KeyGroup {
    if let CaseEventKind::Correction(c) = &event.kind
        && let Some(original) = state.item(&c.corrects)
    {
        return case_group(&original.author.organisation_id, &original.event);
    }
    case_group(author, event)
}

fn case_group(author: &str, event: &CaseEvent) -> KeyGroup {
    KeyGroup {
        author: author.to_owned(),
        subjects: event.subjects.clone(),
        categories: event.categories.clone(),
        record: RecordKind::Case,
    }
}

/// A consent-ledger event's group: every event of one consent takes its grant's (recorder,
/// subject), every record of one legal basis its first record's.
pub fn of_consent(state: &FamilyState, record: &ConsentRecord) -> KeyGroup {
    let consent = |author: &str, subject: &str| KeyGroup {
        author: author.to_owned(),
        subjects: BTreeSet::from([subject.to_owned()]),
        categories: BTreeSet::new(),
        record: RecordKind::Consent,
    };
    let recorder = &record.recorded_by.organisation_id;
    match &record.event {
        ConsentEvent::Granted(g) => consent(recorder, &g.subject),
        ConsentEvent::AgreementAdded { consent_id, .. }
        | ConsentEvent::Refused { consent_id, .. }
        | ConsentEvent::Withdrawn { consent_id, .. } => match state.consents.get(consent_id) {
            Some(c) => consent(&c.recorded_by.organisation_id, &c.grant.subject),
            // Validation refuses an unknown consent; the group does not matter then.
            None => consent(recorder, ""),
        },
        ConsentEvent::LegalBasis(b) => {
            let first = state.legal_bases.get(&b.basis_id).map_or(b, |s| &s.basis);
            KeyGroup {
                author: first.responsible.organisation_id.clone(),
                subjects: first.subjects.clone(),
                categories: BTreeSet::new(),
                record: RecordKind::LegalBasis,
            }
        }
    }
}

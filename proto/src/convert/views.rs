//! Wire encoders for the views the ledger builds: the dossier, access-log rows and consent
//! listings. Handlers call these and hold no encoding of their own.

use super::outbound;
use crate::v1 as pb;
use gezinsdossier_ledger::audit::AuditRow;
use gezinsdossier_ledger::consent::ConsentStatus;
use gezinsdossier_ledger::disclosure::{Notice, NoticeKind, ReviewOutcome};
use gezinsdossier_ledger::dossier::{DossierView, Shown, VisibleItem};
use gezinsdossier_ledger::families::ConsentListing;

/// One visible item on the wire, as the dossier and the feed show it.
pub fn dossier_item(v: &VisibleItem) -> pb::DossierItem {
    pb::DossierItem {
        event_id: v.item.event_id.to_string(),
        revision: v.item.revision,
        recorded_at: Some(outbound::timestamp(v.item.recorded_at)),
        event: Some(outbound::case_event(&v.item.event_id, v.event())),
        author_organisation_id: if v.show_author { v.item.author.organisation_id.clone() } else { String::new() },
        author_role: if v.show_author { outbound::role(v.item.author.role) } else { 0 },
        own_record: v.shown == Shown::OwnRecord,
        corrected_by_event_id: v.corrected.as_ref().map(|c| c.correction_event_id.to_string()).unwrap_or_default(),
        corrected_at: v.corrected.as_ref().map(|c| outbound::timestamp(c.at)),
        ..Default::default()
    }
}

/// A requester's view on the wire; `disclosure_event_id` is empty for an investigation.
pub fn dossier(family_id: &str, view: &DossierView, disclosure_event_id: String) -> pb::Dossier {
    let item = dossier_item;
    let by_id = |id: &uuid::Uuid| view.timeline.iter().find(|v| v.item.event_id == *id).map(item);
    pb::Dossier {
        family_id: family_id.to_owned(),
        family_revision: view.family_revision.unwrap_or_default(),
        disclosure_event_id,
        members: view
            .members
            .iter()
            .map(|m| pb::VisibleMember {
                member_id: m.id.clone(),
                role: outbound::member_role(m.role),
                birth_date: m.birth_date.map(outbound::date),
                gezag: m.gezag.as_ref().map(outbound::gezag),
            })
            .collect(),
        plans: view.plans.iter().filter_map(|p| by_id(&p.event_id)).collect(),
        roster: view
            .roster
            .iter()
            .map(|r| pb::RosterEntry {
                organisation_id: r.organisation_id.clone(),
                roles: r.roles.iter().map(|x| outbound::role(*x)).collect(),
            })
            .collect(),
        coordinator: view.coordinator.as_ref().map(outbound::participant),
        open_referrals: view.open_referrals.iter().filter_map(|p| by_id(&p.event_id)).collect(),
        timeline: timeline(view),
        disclosed: view
            .disclosed
            .iter()
            .flat_map(|(subject, categories)| {
                categories.iter().map(move |(c, b)| pb::DisclosedCategory {
                    subject_member_id: subject.clone(),
                    category: outbound::category(*c),
                    basis: Some(outbound::basis(b)),
                })
            })
            .collect(),
        review_required: view.needs_review(),
        notices: view.notices.iter().map(outbound::denial_reason).collect(),
    }
}

/// The visible items and the erased ones, in stream order.
fn timeline(view: &DossierView) -> Vec<pb::DossierItem> {
    let mut items: Vec<pb::DossierItem> = view.timeline.iter().map(dossier_item).collect();
    items.extend(view.erased.iter().map(|e| pb::DossierItem {
        event_id: e.event_id.to_string(),
        revision: e.revision,
        recorded_at: Some(outbound::timestamp(e.recorded_at)),
        // The epoch when the date is unknown (a key the key store never held).
        erased_at: Some(e.erased_at.map(outbound::timestamp).unwrap_or_default()),
        ..Default::default()
    }));
    items.sort_by_key(|i| i.revision);
    items
}

/// One access-log row; the proof fields are left for the caller to fill.
/// `now` decides whether a pending review is overdue.
pub fn access_log_entry(row: &AuditRow, now: chrono::DateTime<chrono::Utc>) -> pb::AccessLogEntry {
    pb::AccessLogEntry {
        event_id: row.event_id.to_string(),
        family_id: row.family.clone(),
        global_position: row.position,
        at: Some(outbound::timestamp(row.at)),
        organisation_id: row.requester.organisation_id.clone(),
        professional_id: row.requester.professional_id.clone(),
        role: outbound::role(row.requester.role),
        purpose: row.purpose.map_or(0, outbound::purpose),
        refused: row.shown.is_none(),
        shown: row
            .shown
            .iter()
            .flat_map(|shown| {
                shown.iter().flat_map(|(subject, categories)| {
                    categories.iter().map(move |(c, b)| pb::DisclosedItem {
                        subject_member_id: subject.clone(),
                        category: outbound::category(*c),
                        basis: Some(outbound::basis(b)),
                    })
                })
            })
            .collect(),
        refusal_reasons: row.refusal_reasons.clone(),
        break_the_glass_reason: row.break_the_glass.clone().unwrap_or_default(),
        review_required: row.review_required,
        review_due_at: row.review_due.map(outbound::timestamp),
        overdue: row.overdue(now),
        leaf_hash: row.leaf_hash.to_hex(),
        inclusion_proof: Vec::new(),
        tree_head: None,
        refused_function: row.function.map(|f| f.as_str().to_owned()).unwrap_or_default(),
        review: row.review.as_ref().map(|v| pb::ReviewRecord {
            reviewer_professional_id: v.reviewer.professional_id.clone(),
            reviewer_organisation_id: v.reviewer.organisation_id.clone(),
            at: Some(outbound::timestamp(v.at)),
            outcome: (match v.outcome {
                ReviewOutcome::Justified => pb::ReviewOutcome::Justified,
                ReviewOutcome::Unjustified => pb::ReviewOutcome::Unjustified,
                ReviewOutcome::NeedsFollowUp => pb::ReviewOutcome::NeedsFollowUp,
            }) as i32,
            note: v.note.clone(),
        }),
    }
}

/// One consent with its status, as `ListConsents` returns it.
// `status` is deprecated for `state` but still filled for older clients.
#[allow(deprecated)]
pub fn consent_summary(listing: &ConsentListing) -> pb::ConsentSummary {
    let c = &listing.consent;
    let must = match &listing.status {
        ConsentStatus::Incomplete { missing } => missing.clone(),
        ConsentStatus::AgeRuleChanged { must_consent, .. } => must_consent.clone(),
        _ => Default::default(),
    };
    pb::ConsentSummary {
        consent_id: c.grant.consent_id.clone(),
        subject_member_id: c.grant.subject.clone(),
        categories: c.grant.categories.iter().map(|x| outbound::category(*x)).collect(),
        recipients: c.grant.recipients.iter().map(outbound::recipient).collect(),
        purpose: outbound::purpose(c.grant.purpose),
        valid_from: Some(outbound::timestamp(c.grant.valid_from)),
        valid_until: c.grant.valid_until.map(outbound::timestamp),
        agreed_member_ids: c.agreements.keys().cloned().collect(),
        status: listing.status.as_str().to_owned(),
        state: by_state(&listing.status) as i32,
        explanation: listing.status.explain(),
        must_consent_member_ids: must.into_iter().collect(),
        grant_event_id: c.event_id.to_string(),
    }
}

fn by_state(status: &ConsentStatus) -> pb::ConsentState {
    match status {
        ConsentStatus::Active => pb::ConsentState::Active,
        ConsentStatus::Incomplete { .. } => pb::ConsentState::Incomplete,
        ConsentStatus::Refused { .. } => pb::ConsentState::Refused,
        ConsentStatus::Withdrawn { .. } => pb::ConsentState::Withdrawn,
        ConsentStatus::NotYetValid { .. } => pb::ConsentState::NotYetValid,
        ConsentStatus::Expired { .. } => pb::ConsentState::Expired,
        ConsentStatus::AgeRuleChanged { .. } => pb::ConsentState::AgeRuleChanged,
    }
}

/// A notice on the wire, as `ListNotices` and the feed send it.
pub fn notice_message(
    family_id: &str,
    notice_id: uuid::Uuid,
    notice: &Notice,
    acknowledged_at: Option<chrono::DateTime<chrono::Utc>>,
) -> pb::Notice {
    pb::Notice {
        notice_id: notice_id.to_string(),
        family_id: family_id.to_owned(),
        kind: match notice.kind {
            NoticeKind::Correction => pb::NoticeKind::Correction,
            NoticeKind::Retraction => pb::NoticeKind::Retraction,
            NoticeKind::BreakTheGlass => pb::NoticeKind::BreakTheGlass,
            NoticeKind::Erasure => pb::NoticeKind::Erasure,
        } as i32,
        recipient_organisation_id: notice.recipient_organisation_id.clone(),
        about_event_id: notice.about_event_id.to_string(),
        cause_event_id: notice.cause_event_id.to_string(),
        from_organisation_id: notice.from.organisation_id.clone(),
        at: Some(outbound::timestamp(notice.at)),
        acknowledged_at: acknowledged_at.map(outbound::timestamp),
    }
}

//! Ledger types to wire messages, for responses.

use crate::v1 as pb;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use gezinsdossier_ledger::actor::{OrganisationType, ProfessionalRole};
use gezinsdossier_ledger::case::{self as case, CaseEvent, CaseEventKind, InformationCategory};
use gezinsdossier_ledger::consent::{Basis, DenialReason, LegalBasisKind, Purpose, Recipient};

pub fn timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    // Sub-second nanos of a valid DateTime are below 2e9 and fit i32.
    prost_types::Timestamp { seconds: t.timestamp(), nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0) }
}

pub fn date(d: NaiveDate) -> pb::CalendarDate {
    // Month and day are at most 12 and 31.
    pb::CalendarDate { year: d.year(), month: d.month() as i32, day: d.day() as i32 }
}

pub fn category(c: InformationCategory) -> i32 {
    use InformationCategory as C;
    use pb::InformationCategory as P;
    (match c {
        C::Identity => P::Identity,
        C::Contact => P::Contact,
        C::Involvement => P::Involvement,
        C::Plan => P::Plan,
        C::SafetyPlan => P::SafetyPlan,
        C::MentalHealthDiagnosis => P::MentalHealthDiagnosis,
        C::BehaviourAffectingChild => P::BehaviourAffectingChild,
        C::TreatmentNotes => P::TreatmentNotes,
        C::Addiction => P::Addiction,
        C::ChildProtection => P::ChildProtection,
        C::Safety => P::Safety,
        C::DomesticViolence => P::DomesticViolence,
        C::SocialContext => P::SocialContext,
    }) as i32
}

/// Wire enums are named `<PREFIX>_<LEDGER NAME IN CAPITALS>`, so the mapping is by name.
fn by_name<E>(prefix: &str, name: &str, parse: fn(&str) -> Option<E>) -> Option<E> {
    parse(&format!("{prefix}{}", name.to_ascii_uppercase()))
}

pub fn organisation_type(t: OrganisationType) -> i32 {
    by_name("ORGANISATION_TYPE_", t.as_str(), pb::OrganisationType::from_str_name).map_or(0, |v| v as i32)
}

pub fn role(r: ProfessionalRole) -> i32 {
    by_name("PROFESSIONAL_ROLE_", r.as_str(), pb::ProfessionalRole::from_str_name).map_or(0, |v| v as i32)
}

pub fn purpose(p: Purpose) -> i32 {
    by_name("PURPOSE_", p.as_str(), pb::Purpose::from_str_name).map_or(0, |v| v as i32)
}

pub fn legal_basis_kind(k: LegalBasisKind) -> i32 {
    by_name("LEGAL_BASIS_KIND_", k.as_str(), pb::LegalBasisKind::from_str_name).map_or(0, |v| v as i32)
}

pub fn recipient(r: &Recipient) -> pb::Recipient {
    use pb::recipient::Recipient as R;
    pb::Recipient {
        recipient: Some(match r {
            Recipient::Organisation { organisation_id } => R::OrganisationId(organisation_id.clone()),
            Recipient::TypeAndRole { organisation_type: t, role: r } => {
                R::TypeAndRole(pb::TypeAndRole { organisation_type: organisation_type(*t), role: r.map_or(0, role) })
            }
            Recipient::OrganisationRole { organisation_id, role: r } => {
                R::OrganisationAndRole(pb::OrganisationAndRole {
                    organisation_id: organisation_id.clone(),
                    role: role(*r),
                })
            }
        }),
    }
}

pub fn basis(b: &Basis) -> pb::DisclosureBasis {
    use pb::disclosure_basis::Basis as B;
    match b {
        Basis::Consent { consent_id, event_id, event_hash } => pb::DisclosureBasis {
            basis: Some(B::ConsentId(consent_id.clone())),
            legal_basis_kind: 0,
            event_id: event_id.to_string(),
            event_hash: event_hash.clone(),
            review_required: false,
        },
        Basis::LegalBasis { basis_id, kind, event_id, event_hash } => pb::DisclosureBasis {
            basis: Some(B::LegalBasisId(basis_id.clone())),
            legal_basis_kind: legal_basis_kind(*kind),
            event_id: event_id.to_string(),
            event_hash: event_hash.clone(),
            review_required: true,
        },
    }
}

pub fn denial_reason(r: &DenialReason) -> pb::DenialReason {
    pb::DenialReason {
        consent_id: r.consent_id.clone().unwrap_or_default(),
        explanation: r.explanation.clone(),
        must_consent_member_ids: r.must_consent.iter().cloned().collect(),
    }
}

pub fn member_role(r: case::MemberRole) -> i32 {
    (match r {
        case::MemberRole::Parent => pb::MemberRole::Parent,
        case::MemberRole::Carer => pb::MemberRole::Carer,
        case::MemberRole::Child => pb::MemberRole::Child,
        case::MemberRole::UnbornChild => pb::MemberRole::UnbornChild,
    }) as i32
}

pub fn gezag(g: &case::Gezag) -> pb::Gezag {
    pb::Gezag {
        holder_member_ids: g.holders.iter().cloned().collect(),
        guardian_organisation_id: g.guardian_organisation_id.clone().unwrap_or_default(),
    }
}

pub fn participant(p: &case::Participant) -> pb::Participant {
    pb::Participant {
        organisation_id: p.organisation_id.clone().unwrap_or_default(),
        professional_id: p.professional_id.clone().unwrap_or_default(),
        role: p.role.map_or(0, role),
        member_id: p.member_id.clone().unwrap_or_default(),
    }
}

/// A case event as appended, without its author.
pub fn case_event(event_id: &uuid::Uuid, e: &CaseEvent) -> pb::CaseEvent {
    pb::CaseEvent {
        event_id: event_id.to_string(),
        occurred_at: Some(timestamp(e.occurred_at)),
        subject_member_ids: e.subjects.iter().cloned().collect(),
        categories: e.categories.iter().map(|c| category(*c)).collect(),
        kind: Some(kind(&e.kind)),
    }
}

fn kind(k: &CaseEventKind) -> pb::case_event::Kind {
    use pb::case_event::Kind as K;
    match k {
        CaseEventKind::Registration { referral_route, reason } => K::Registration(pb::Registration {
            referral_route: referral_route_value(*referral_route),
            reason: reason.clone(),
        }),
        CaseEventKind::MemberAdded(m) => K::MemberAdded(pb::MemberAdded {
            member_id: m.member_id.clone(),
            role: member_role(m.role),
            display_name: m.display_name.clone(),
            birth_date: m.birth_date.map(date),
            expected_birth_date: m.expected_birth_date.map(date),
            gezag: m.gezag.as_ref().map(gezag),
            contact_restricted: m.contact_restricted,
            carried_by_member_id: m.carried_by.clone().unwrap_or_default(),
            no_contact: m.no_contact,
        }),
        CaseEventKind::GezagChanged { child, gezag: g, reason } => K::GezagChanged(pb::GezagChanged {
            child_member_id: child.clone(),
            gezag: Some(gezag(g)),
            reason: reason.clone(),
        }),
        CaseEventKind::Intake { summary } => K::Intake(pb::Intake { summary: summary.clone() }),
        CaseEventKind::Analysis { summary, life_domains } => {
            K::Analysis(pb::Analysis { summary: summary.clone(), life_domains: life_domains.clone() })
        }
        CaseEventKind::PlanAgreed(p) => K::PlanAgreed(pb::PlanAgreed {
            plan_kind: (match p.plan_kind {
                case::PlanKind::Gezinsplan => pb::PlanKind::Gezinsplan,
                case::PlanKind::Behandelplan => pb::PlanKind::Behandelplan,
                case::PlanKind::Veiligheidsplan => pb::PlanKind::Veiligheidsplan,
            }) as i32,
            plan_id: p.plan_id.clone(),
            summary: p.summary.clone(),
            goals: p.goals.clone(),
            warning_signs: p.warning_signs.clone(),
            actions: p
                .actions
                .iter()
                .map(|a| pb::SafetyAction { who: a.who.clone(), what: a.what.clone(), when: a.when.clone() })
                .collect(),
        }),
        CaseEventKind::MdoHeld { participants, summary, next_mdo_on } => K::MdoHeld(pb::MdoHeld {
            participants: participants.iter().map(participant).collect(),
            summary: summary.clone(),
            next_mdo_on: next_mdo_on.map(date),
        }),
        CaseEventKind::CoordinatorAssigned { coordinator, handed_over_from } => {
            K::CoordinatorAssigned(pb::CoordinatorAssigned {
                coordinator: Some(participant(coordinator)),
                handed_over_from: handed_over_from.as_ref().map(participant),
            })
        }
        CaseEventKind::ReferralOut { to_organisation_type, to_organisation_id, reason, warm_handover } => {
            K::ReferralOut(pb::ReferralOut {
                to_organisation_type: organisation_type(*to_organisation_type),
                to_organisation_id: to_organisation_id.clone().unwrap_or_default(),
                reason: reason.clone(),
                warm_handover: *warm_handover,
            })
        }
        CaseEventKind::WaitingList { organisation_id, expected_start_on } => K::WaitingList(pb::WaitingList {
            organisation_id: organisation_id.clone(),
            expected_start_on: expected_start_on.map(date),
        }),
        CaseEventKind::InterventionStarted { intervention_id, description } => {
            K::InterventionStarted(pb::InterventionStarted {
                intervention_id: intervention_id.clone(),
                description: description.clone(),
            })
        }
        CaseEventKind::InterventionEnded { intervention_id, outcome } => K::InterventionEnded(pb::InterventionEnded {
            intervention_id: intervention_id.clone(),
            outcome: outcome.clone(),
        }),
        CaseEventKind::Crisis { description, actions_taken } => {
            K::Crisis(pb::Crisis { description: description.clone(), actions_taken: actions_taken.clone() })
        }
        CaseEventKind::MeasureImposed(m) => K::MeasureImposed(pb::MeasureImposed {
            measure_id: m.measure_id.clone(),
            measure: (match m.measure {
                case::MeasureKind::Ots => pb::MeasureKind::Ots,
                case::MeasureKind::Voogdij => pb::MeasureKind::Voogdij,
                case::MeasureKind::Uithuisplaatsing => pb::MeasureKind::Uithuisplaatsing,
            }) as i32,
            child_member_id: m.child.clone(),
            certified_institution_id: m.certified_institution_id.clone(),
            valid_from: Some(date(m.valid_from)),
            valid_until: m.valid_until.map(date),
        }),
        CaseEventKind::MeasureEnded { measure_id, reason } => {
            K::MeasureEnded(pb::MeasureEnded { measure_id: measure_id.clone(), reason: reason.clone() })
        }
        CaseEventKind::Note { text } => K::Note(pb::Note { text: text.clone() }),
        CaseEventKind::Shielding { child, parent, categories, reason } => K::Shielding(pb::Shielding {
            child_member_id: child.clone(),
            parent_member_id: parent.clone(),
            categories: categories.iter().map(|c| category(*c)).collect(),
            reason: reason.clone(),
        }),
        CaseEventKind::Birth { child, born_on, gezag: g } => {
            K::Birth(pb::Birth { child_member_id: child.clone(), born_on: Some(date(*born_on)), gezag: Some(gezag(g)) })
        }
        CaseEventKind::CaseClosed { reason, informed_organisation_ids } => K::CaseClosed(pb::CaseClosed {
            reason: reason.clone(),
            informed_organisation_ids: informed_organisation_ids.clone(),
        }),
        CaseEventKind::Correction(c) => K::Correction(pb::Correction {
            corrects_event_id: c.corrects.to_string(),
            reason: c.reason.clone(),
            replacement: c.replacement.as_ref().map(|r| pb::CorrectedContent { kind: corrected(kind(r)) }),
        }),
    }
}

/// The inverse of the inbound mapping: correction content holds any kind but a correction.
fn corrected(k: pb::case_event::Kind) -> Option<pb::corrected_content::Kind> {
    use pb::case_event::Kind as E;
    use pb::corrected_content::Kind as C;
    Some(match k {
        E::Registration(x) => C::Registration(x),
        E::MemberAdded(x) => C::MemberAdded(x),
        E::GezagChanged(x) => C::GezagChanged(x),
        E::Intake(x) => C::Intake(x),
        E::Analysis(x) => C::Analysis(x),
        E::PlanAgreed(x) => C::PlanAgreed(x),
        E::MdoHeld(x) => C::MdoHeld(x),
        E::CoordinatorAssigned(x) => C::CoordinatorAssigned(x),
        E::ReferralOut(x) => C::ReferralOut(x),
        E::WaitingList(x) => C::WaitingList(x),
        E::InterventionStarted(x) => C::InterventionStarted(x),
        E::InterventionEnded(x) => C::InterventionEnded(x),
        E::Crisis(x) => C::Crisis(x),
        E::MeasureImposed(x) => C::MeasureImposed(x),
        E::MeasureEnded(x) => C::MeasureEnded(x),
        E::Note(x) => C::Note(x),
        E::CaseClosed(x) => C::CaseClosed(x),
        E::Birth(x) => C::Birth(x),
        E::Shielding(x) => C::Shielding(x),
        E::Correction(_) => return None,
    })
}

fn referral_route_value(r: case::ReferralRoute) -> i32 {
    use case::ReferralRoute as R;
    (match r {
        R::Huisarts => pb::ReferralRoute::Huisarts,
        R::Wijkteam => pb::ReferralRoute::Wijkteam,
        R::VeiligThuis => pb::ReferralRoute::VeiligThuis,
        R::Police => pb::ReferralRoute::Police,
        R::Hospital => pb::ReferralRoute::Hospital,
        R::SelfReferral => pb::ReferralRoute::SelfReferral,
        R::Other => pb::ReferralRoute::Other,
    }) as i32
}

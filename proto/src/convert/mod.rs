//! Wire messages to ledger types (validating, naming the field that is wrong) and back.
//!
//! Field paths use the `.proto` field names, relative to the message being converted
//! (`member_added.birth_date`); the caller adds the outer prefix (`events[2].`).

pub mod consent;
pub mod outbound;
pub mod views;

use crate::v1 as pb;
use chrono::{DateTime, NaiveDate, Utc};
use gezinsdossier_ledger::actor::{OrganisationType, ProfessionalRole};
use gezinsdossier_ledger::case::{self as case, CaseEvent, CaseEventKind, InformationCategory};
use gezinsdossier_ledger::envelope::{EventId, ExpectedRevision};
use std::collections::BTreeSet;

/// A field that is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct FieldError {
    pub field: String,
    pub problem: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into() }
    }

    /// The same error, seen from an enclosing message.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = format!("{prefix}{}", self.field);
        self
    }
}

pub type Result<T> = std::result::Result<T, FieldError>;

/// Reads a client-chosen event id.
///
/// # Errors
/// A [`FieldError`] on `field` when it is not a UUID.
pub fn event_id(raw: &str, field: &str) -> Result<EventId> {
    uuid::Uuid::parse_str(raw).map_err(|_| FieldError::new(field, format!("must be a UUID, got {raw:?}")))
}

/// # Errors
/// When no expectation is set.
pub fn expected_revision(raw: Option<pb::ExpectedRevision>) -> Result<ExpectedRevision> {
    use pb::expected_revision::Expectation;
    match raw.and_then(|e| e.expectation) {
        Some(Expectation::Any(())) => Ok(ExpectedRevision::Any),
        Some(Expectation::NoStream(())) => Ok(ExpectedRevision::NoStream),
        Some(Expectation::Exact(n)) => Ok(ExpectedRevision::Exact(n)),
        None => Err(FieldError::new("expected_revision", "required: set any, no_stream or exact")),
    }
}

/// Converts one case event, returning its id and content.
///
/// # Errors
/// The first field that is missing or wrong.
pub fn case_event(raw: pb::CaseEvent) -> Result<(EventId, CaseEvent)> {
    let id = event_id(&raw.event_id, "event_id")?;
    let occurred_at = timestamp(raw.occurred_at, "occurred_at")?;
    let mut categories = BTreeSet::new();
    for (i, c) in raw.categories.iter().enumerate() {
        categories.insert(category(*c, &format!("categories[{i}]"))?);
    }
    let mut subjects = BTreeSet::new();
    for (i, s) in raw.subject_member_ids.into_iter().enumerate() {
        subjects.insert(identifier(s, &format!("subject_member_ids[{i}]"))?);
    }
    let kind = kind(raw.kind.ok_or_else(|| FieldError::new("kind", "required: set exactly one event kind"))?)?;
    if let CaseEventKind::MemberAdded(m) = &kind {
        subjects.insert(m.member_id.clone());
    }
    Ok((id, CaseEvent { occurred_at, subjects, categories, kind }))
}

fn kind(raw: pb::case_event::Kind) -> Result<CaseEventKind> {
    use pb::case_event::Kind as K;
    Ok(match raw {
        K::Registration(r) => CaseEventKind::Registration {
            referral_route: referral_route(r.referral_route).map_err(|e| e.within("registration."))?,
            reason: r.reason,
        },
        K::MemberAdded(m) => CaseEventKind::MemberAdded(member_added(m).map_err(|e| e.within("member_added."))?),
        K::GezagChanged(g) => {
            let inner = || -> Result<CaseEventKind> {
                Ok(CaseEventKind::GezagChanged {
                    child: identifier(g.child_member_id, "child_member_id")?,
                    gezag: gezag(g.gezag.ok_or_else(|| FieldError::new("gezag", "required"))?),
                    reason: g.reason,
                })
            };
            inner().map_err(|e| e.within("gezag_changed."))?
        }
        K::Intake(i) => CaseEventKind::Intake { summary: i.summary },
        K::Analysis(a) => CaseEventKind::Analysis { summary: a.summary, life_domains: a.life_domains },
        K::PlanAgreed(p) => CaseEventKind::PlanAgreed(plan(p).map_err(|e| e.within("plan_agreed."))?),
        K::MdoHeld(m) => {
            let inner = || -> Result<CaseEventKind> {
                let participants = m
                    .participants
                    .into_iter()
                    .enumerate()
                    .map(|(i, p)| participant(p).map_err(|e| e.within(&format!("participants[{i}]."))))
                    .collect::<Result<_>>()?;
                Ok(CaseEventKind::MdoHeld {
                    participants,
                    summary: m.summary,
                    next_mdo_on: date(m.next_mdo_on, "next_mdo_on")?,
                })
            };
            inner().map_err(|e| e.within("mdo_held."))?
        }
        K::CoordinatorAssigned(c) => {
            let inner = || -> Result<CaseEventKind> {
                Ok(CaseEventKind::CoordinatorAssigned {
                    coordinator: participant(c.coordinator.ok_or_else(|| FieldError::new("coordinator", "required"))?)
                        .map_err(|e| e.within("coordinator."))?,
                    handed_over_from: c
                        .handed_over_from
                        .map(participant)
                        .transpose()
                        .map_err(|e| e.within("handed_over_from."))?,
                })
            };
            inner().map_err(|e| e.within("coordinator_assigned."))?
        }
        K::ReferralOut(r) => CaseEventKind::ReferralOut {
            to_organisation_type: organisation_type(r.to_organisation_type, "referral_out.to_organisation_type")?,
            to_organisation_id: optional(r.to_organisation_id),
            reason: r.reason,
            warm_handover: r.warm_handover,
        },
        K::WaitingList(w) => CaseEventKind::WaitingList {
            organisation_id: identifier(w.organisation_id, "waiting_list.organisation_id")?,
            expected_start_on: date(w.expected_start_on, "waiting_list.expected_start_on")?,
        },
        K::InterventionStarted(i) => CaseEventKind::InterventionStarted {
            intervention_id: identifier(i.intervention_id, "intervention_started.intervention_id")?,
            description: i.description,
        },
        K::InterventionEnded(i) => CaseEventKind::InterventionEnded {
            intervention_id: identifier(i.intervention_id, "intervention_ended.intervention_id")?,
            outcome: i.outcome,
        },
        K::Crisis(c) => CaseEventKind::Crisis { description: c.description, actions_taken: c.actions_taken },
        K::MeasureImposed(m) => CaseEventKind::MeasureImposed(measure(m).map_err(|e| e.within("measure_imposed."))?),
        K::MeasureEnded(m) => CaseEventKind::MeasureEnded {
            measure_id: identifier(m.measure_id, "measure_ended.measure_id")?,
            reason: m.reason,
        },
        K::Note(n) => CaseEventKind::Note { text: required(n.text, "note.text")? },
        K::CaseClosed(c) => {
            CaseEventKind::CaseClosed { reason: c.reason, informed_organisation_ids: c.informed_organisation_ids }
        }
        K::Correction(c) => CaseEventKind::Correction(correction(c).map_err(|e| e.within("correction."))?),
        K::Shielding(x) => CaseEventKind::Shielding {
            child: identifier(x.child_member_id, "shielding.child_member_id")?,
            parent: identifier(x.parent_member_id, "shielding.parent_member_id")?,
            categories: x
                .categories
                .iter()
                .enumerate()
                .map(|(i, c)| category(*c, &format!("shielding.categories[{i}]")))
                .collect::<Result<_>>()?,
            reason: x.reason,
        },
        K::Birth(b) => CaseEventKind::Birth {
            child: identifier(b.child_member_id, "birth.child_member_id")?,
            born_on: date(b.born_on, "birth.born_on")?.ok_or_else(|| FieldError::new("birth.born_on", "required"))?,
            gezag: b.gezag.map(gezag).unwrap_or_default(),
        },
    })
}

fn correction(c: pb::Correction) -> Result<case::Correction> {
    let corrects = event_id(&c.corrects_event_id, "corrects_event_id")?;
    let replacement = match c.replacement.map(|r| r.kind) {
        None => None,
        Some(None) => return Err(FieldError::new("replacement.kind", "set one kind, or leave replacement empty")),
        Some(Some(k)) => Some(Box::new(kind(replaced_kind(k)).map_err(|e| e.within("replacement."))?)),
    };
    Ok(case::Correction { corrects, reason: c.reason, replacement })
}

/// The corrected content's kinds are the case event kinds minus `correction`.
fn replaced_kind(k: pb::corrected_content::Kind) -> pb::case_event::Kind {
    use pb::case_event::Kind as E;
    use pb::corrected_content::Kind as C;
    match k {
        C::Registration(x) => E::Registration(x),
        C::MemberAdded(x) => E::MemberAdded(x),
        C::GezagChanged(x) => E::GezagChanged(x),
        C::Intake(x) => E::Intake(x),
        C::Analysis(x) => E::Analysis(x),
        C::PlanAgreed(x) => E::PlanAgreed(x),
        C::MdoHeld(x) => E::MdoHeld(x),
        C::CoordinatorAssigned(x) => E::CoordinatorAssigned(x),
        C::ReferralOut(x) => E::ReferralOut(x),
        C::WaitingList(x) => E::WaitingList(x),
        C::InterventionStarted(x) => E::InterventionStarted(x),
        C::InterventionEnded(x) => E::InterventionEnded(x),
        C::Crisis(x) => E::Crisis(x),
        C::MeasureImposed(x) => E::MeasureImposed(x),
        C::MeasureEnded(x) => E::MeasureEnded(x),
        C::Note(x) => E::Note(x),
        C::CaseClosed(x) => E::CaseClosed(x),
        C::Birth(x) => E::Birth(x),
        C::Shielding(x) => E::Shielding(x),
    }
}

fn member_added(m: pb::MemberAdded) -> Result<case::MemberAdded> {
    let role = match pb::MemberRole::try_from(m.role) {
        Ok(pb::MemberRole::Parent) => case::MemberRole::Parent,
        Ok(pb::MemberRole::Carer) => case::MemberRole::Carer,
        Ok(pb::MemberRole::Child) => case::MemberRole::Child,
        Ok(pb::MemberRole::UnbornChild) => case::MemberRole::UnbornChild,
        Ok(pb::MemberRole::Unspecified) => {
            return Err(FieldError::new("role", "required: parent, carer, child or unborn child"));
        }
        Err(_) => return Err(FieldError::new("role", format!("unknown member role {}", m.role))),
    };
    Ok(case::MemberAdded {
        member_id: identifier(m.member_id, "member_id")?,
        role,
        display_name: m.display_name,
        birth_date: date(m.birth_date, "birth_date")?,
        expected_birth_date: date(m.expected_birth_date, "expected_birth_date")?,
        gezag: m.gezag.map(gezag),
        contact_restricted: m.contact_restricted,
        carried_by: optional(m.carried_by_member_id),
        no_contact: m.no_contact,
    })
}

fn gezag(g: pb::Gezag) -> case::Gezag {
    case::Gezag {
        holders: g.holder_member_ids.into_iter().collect(),
        guardian_organisation_id: optional(g.guardian_organisation_id),
    }
}

fn plan(p: pb::PlanAgreed) -> Result<case::PlanAgreed> {
    let plan_kind = match pb::PlanKind::try_from(p.plan_kind) {
        Ok(pb::PlanKind::Gezinsplan) => case::PlanKind::Gezinsplan,
        Ok(pb::PlanKind::Behandelplan) => case::PlanKind::Behandelplan,
        Ok(pb::PlanKind::Veiligheidsplan) => case::PlanKind::Veiligheidsplan,
        Ok(pb::PlanKind::Unspecified) => {
            return Err(FieldError::new("plan_kind", "required: gezinsplan, behandelplan or veiligheidsplan"));
        }
        Err(_) => return Err(FieldError::new("plan_kind", format!("unknown plan kind {}", p.plan_kind))),
    };
    Ok(case::PlanAgreed {
        plan_kind,
        plan_id: identifier(p.plan_id, "plan_id")?,
        summary: p.summary,
        goals: p.goals,
        warning_signs: p.warning_signs,
        actions: p.actions.into_iter().map(|a| case::SafetyAction { who: a.who, what: a.what, when: a.when }).collect(),
    })
}

fn participant(p: pb::Participant) -> Result<case::Participant> {
    let role = if p.role == 0 { None } else { Some(professional_role(p.role, "role")?) };
    let p = case::Participant {
        organisation_id: optional(p.organisation_id),
        professional_id: optional(p.professional_id),
        role,
        member_id: optional(p.member_id),
    };
    if p.organisation_id.is_none() && p.member_id.is_none() {
        return Err(FieldError::new("organisation_id", "a participant names an organisation or a family member"));
    }
    Ok(p)
}

fn measure(m: pb::MeasureImposed) -> Result<case::MeasureImposed> {
    let kind = match pb::MeasureKind::try_from(m.measure) {
        Ok(pb::MeasureKind::Ots) => case::MeasureKind::Ots,
        Ok(pb::MeasureKind::Voogdij) => case::MeasureKind::Voogdij,
        Ok(pb::MeasureKind::Uithuisplaatsing) => case::MeasureKind::Uithuisplaatsing,
        Ok(pb::MeasureKind::Unspecified) => {
            return Err(FieldError::new("measure", "required: ots, voogdij or uithuisplaatsing"));
        }
        Err(_) => return Err(FieldError::new("measure", format!("unknown measure {}", m.measure))),
    };
    Ok(case::MeasureImposed {
        measure_id: identifier(m.measure_id, "measure_id")?,
        measure: kind,
        child: identifier(m.child_member_id, "child_member_id")?,
        certified_institution_id: identifier(m.certified_institution_id, "certified_institution_id")?,
        valid_from: date(m.valid_from, "valid_from")?.ok_or_else(|| FieldError::new("valid_from", "required"))?,
        valid_until: date(m.valid_until, "valid_until")?,
    })
}

fn referral_route(raw: i32) -> Result<case::ReferralRoute> {
    use case::ReferralRoute as R;
    Ok(match pb::ReferralRoute::try_from(raw) {
        Ok(pb::ReferralRoute::Huisarts) => R::Huisarts,
        Ok(pb::ReferralRoute::Wijkteam) => R::Wijkteam,
        Ok(pb::ReferralRoute::VeiligThuis) => R::VeiligThuis,
        Ok(pb::ReferralRoute::Police) => R::Police,
        Ok(pb::ReferralRoute::Hospital) => R::Hospital,
        Ok(pb::ReferralRoute::SelfReferral) => R::SelfReferral,
        Ok(pb::ReferralRoute::Other) => R::Other,
        Ok(pb::ReferralRoute::Unspecified) => return Err(FieldError::new("referral_route", "required")),
        Err(_) => return Err(FieldError::new("referral_route", format!("unknown referral route {raw}"))),
    })
}

/// # Errors
/// When the value is unspecified or unknown.
pub fn category(raw: i32, field: &str) -> Result<InformationCategory> {
    use InformationCategory as C;
    use pb::InformationCategory as P;
    Ok(match P::try_from(raw) {
        Ok(P::Identity) => C::Identity,
        Ok(P::Contact) => C::Contact,
        Ok(P::Involvement) => C::Involvement,
        Ok(P::Plan) => C::Plan,
        Ok(P::SafetyPlan) => C::SafetyPlan,
        Ok(P::MentalHealthDiagnosis) => C::MentalHealthDiagnosis,
        Ok(P::BehaviourAffectingChild) => C::BehaviourAffectingChild,
        Ok(P::TreatmentNotes) => C::TreatmentNotes,
        Ok(P::Addiction) => C::Addiction,
        Ok(P::ChildProtection) => C::ChildProtection,
        Ok(P::Safety) => C::Safety,
        Ok(P::DomesticViolence) => C::DomesticViolence,
        Ok(P::SocialContext) => C::SocialContext,
        Ok(P::Unspecified) => return Err(FieldError::new(field, "information category is unspecified")),
        Err(_) => return Err(FieldError::new(field, format!("unknown information category {raw}"))),
    })
}

/// # Errors
/// When the value is unspecified or unknown.
pub fn organisation_type(raw: i32, field: &str) -> Result<OrganisationType> {
    pb::OrganisationType::try_from(raw)
        .ok()
        .and_then(|t| {
            OrganisationType::parse(&t.as_str_name().trim_start_matches("ORGANISATION_TYPE_").to_ascii_lowercase())
        })
        .ok_or_else(|| FieldError::new(field, format!("unknown or unspecified organisation type {raw}")))
}

/// # Errors
/// When the value is unspecified or unknown.
pub fn professional_role(raw: i32, field: &str) -> Result<ProfessionalRole> {
    pb::ProfessionalRole::try_from(raw)
        .ok()
        .and_then(|r| {
            ProfessionalRole::parse(&r.as_str_name().trim_start_matches("PROFESSIONAL_ROLE_").to_ascii_lowercase())
        })
        .ok_or_else(|| FieldError::new(field, format!("unknown or unspecified professional role {raw}")))
}

/// Years a time or date in a care record can plausibly fall in (a birth in 1900, a consent
/// valid until 2199); anything else is a client's mistake, such as the year 20000.
const PLAUSIBLE_YEARS: std::ops::Range<i32> = 1900..2200;

/// # Errors
/// When missing, not a time, or outside [`PLAUSIBLE_YEARS`].
pub fn timestamp(raw: Option<prost_types::Timestamp>, field: &str) -> Result<DateTime<Utc>> {
    let ts = raw.ok_or_else(|| FieldError::new(field, "required"))?;
    let at = u32::try_from(ts.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(ts.seconds, nanos))
        .ok_or_else(|| FieldError::new(field, "not a valid timestamp"))?;
    if !PLAUSIBLE_YEARS.contains(&chrono::Datelike::year(&at)) {
        return Err(FieldError::new(field, "must fall in the years 1900 to 2199"));
    }
    Ok(at)
}

fn date(raw: Option<pb::CalendarDate>, field: &str) -> Result<Option<NaiveDate>> {
    raw.map(|d| {
        if !PLAUSIBLE_YEARS.contains(&d.year) {
            return Err(FieldError::new(field, "must fall in the years 1900 to 2199"));
        }
        u32::try_from(d.month)
            .ok()
            .zip(u32::try_from(d.day).ok())
            .and_then(|(m, day)| NaiveDate::from_ymd_opt(d.year, m, day))
            .ok_or_else(|| FieldError::new(field, format!("{}-{}-{} is not a calendar date", d.year, d.month, d.day)))
    })
    .transpose()
}

/// Longest client-chosen id (member, consent, basis, plan, measure, organisation…), in bytes.
pub const MAX_ID_LEN: usize = 128;
/// Longest free text (a note, a reason), in bytes.
pub const MAX_TEXT_LEN: usize = 128 * 1024;

/// Free text: not blank, at most [`MAX_TEXT_LEN`] bytes.
///
/// # Errors
/// When empty, blank or too long.
pub fn required(s: String, field: &str) -> Result<String> {
    if s.trim().is_empty() {
        return Err(FieldError::new(field, "required"));
    }
    if s.len() > MAX_TEXT_LEN {
        return Err(FieldError::new(field, format!("{} bytes; at most {MAX_TEXT_LEN}", s.len())));
    }
    Ok(s)
}

/// Optional free text: at most [`MAX_TEXT_LEN`] bytes.
///
/// # Errors
/// When too long.
pub fn text(s: String, field: &str) -> Result<String> {
    if s.len() > MAX_TEXT_LEN {
        return Err(FieldError::new(field, format!("{} bytes; at most {MAX_TEXT_LEN}", s.len())));
    }
    Ok(s)
}

/// A client-chosen id: 1 to [`MAX_ID_LEN`] bytes of letters, digits and `- _ . : @ /`. The
/// error quotes at most a short prefix of what was sent.
///
/// # Errors
/// When empty, too long, or of other characters.
pub fn identifier(s: String, field: &str) -> Result<String> {
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@' | '/');
    if s.is_empty() {
        return Err(FieldError::new(field, "required"));
    }
    if s.len() > MAX_ID_LEN || !s.chars().all(allowed) {
        let prefix: String = s.chars().take(16).collect();
        return Err(FieldError::new(
            field,
            format!(
                "{prefix:?}… must be 1 to {MAX_ID_LEN} bytes of letters, digits and - _ . : @ / ({} bytes sent)",
                s.len()
            ),
        ));
    }
    Ok(s)
}

fn optional(s: String) -> Option<String> {
    if s.trim().is_empty() { None } else { Some(s) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_dates_outside_plausible_years_are_refused_naming_the_field() {
        let at = |seconds| Some(prost_types::Timestamp { seconds, nanos: 0 });
        assert!(timestamp(at(1_760_000_000), "occurred_at").is_ok());
        // The year 20000, and 1899.
        let far = timestamp(at(569_000_000_000), "occurred_at").unwrap_err();
        assert_eq!((far.field.as_str(), far.problem.as_str()), ("occurred_at", "must fall in the years 1900 to 2199"));
        assert!(timestamp(at(-2_209_075_200), "occurred_at").is_err());
        let day = |year| Some(pb::CalendarDate { year, month: 1, day: 1 });
        assert!(date(day(2014), "birth_date").unwrap().is_some());
        assert_eq!(date(day(20000), "birth_date").unwrap_err().field, "birth_date");
        assert!(date(day(1899), "birth_date").is_err());
    }

    #[test]
    fn every_wire_category_maps() {
        for c in 1..=13 {
            assert!(category(c, "c").is_ok(), "{c}");
        }
        assert_eq!(category(0, "categories[0]").unwrap_err().field, "categories[0]");
        assert!(category(99, "c").unwrap_err().problem.contains("unknown"));
    }

    #[test]
    fn case_events_survive_the_round_trip_through_the_wire() {
        use gezinsdossier_ledger::case::*;
        let d = chrono::NaiveDate::from_ymd_opt(2014, 3, 9).unwrap();
        let kinds = vec![
            CaseEventKind::MemberAdded(MemberAdded {
                member_id: "k".into(),
                role: MemberRole::Child,
                display_name: "K".into(),
                birth_date: Some(d),
                expected_birth_date: None,
                gezag: Some(Gezag { holders: ["m".to_string()].into(), guardian_organisation_id: None }),
                contact_restricted: true,
                carried_by: None,
                no_contact: true,
            }),
            CaseEventKind::MemberAdded(MemberAdded {
                member_id: "k".into(),
                role: MemberRole::UnbornChild,
                display_name: "U".into(),
                birth_date: None,
                expected_birth_date: Some(d),
                gezag: None,
                contact_restricted: false,
                carried_by: Some("m".into()),
                no_contact: false,
            }),
            CaseEventKind::Birth {
                child: "u".into(),
                born_on: d,
                gezag: Gezag { holders: ["m".to_string(), "p".to_string()].into(), guardian_organisation_id: None },
            },
            CaseEventKind::PlanAgreed(PlanAgreed {
                plan_kind: PlanKind::Veiligheidsplan,
                plan_id: "p".into(),
                summary: "s".into(),
                goals: vec!["g".into()],
                warning_signs: vec!["w".into()],
                actions: vec![SafetyAction { who: "a".into(), what: "b".into(), when: "c".into() }],
            }),
            CaseEventKind::MeasureImposed(MeasureImposed {
                measure_id: "ots".into(),
                measure: MeasureKind::Ots,
                child: "k".into(),
                certified_institution_id: "gi".into(),
                valid_from: d,
                valid_until: None,
            }),
            CaseEventKind::Correction(Correction {
                corrects: uuid::Uuid::nil(),
                reason: "r".into(),
                replacement: Some(Box::new(CaseEventKind::Note { text: "t".into() })),
            }),
            CaseEventKind::ReferralOut {
                to_organisation_type: OrganisationType::VGgz,
                to_organisation_id: None,
                reason: "r".into(),
                warm_handover: true,
            },
        ];
        for kind in kinds {
            let event = CaseEvent {
                occurred_at: chrono::DateTime::from_timestamp(1_700_000_000, 5).unwrap(),
                subjects: ["k".to_string()].into(),
                categories: [InformationCategory::Plan, InformationCategory::Identity].into(),
                kind,
            };
            let id = uuid::Uuid::new_v4();
            let wire = outbound::case_event(&id, &event);
            assert_eq!(case_event(wire).unwrap(), (id, event));
        }
    }

    #[test]
    fn every_wire_enum_maps_to_a_ledger_value() {
        for t in 1..=11 {
            assert!(organisation_type(t, "t").is_ok(), "{t}");
        }
        for r in 1..=14 {
            assert!(professional_role(r, "r").is_ok(), "{r}");
        }
        assert!(organisation_type(0, "t").is_err());
        for t in OrganisationType::ALL {
            assert_eq!(organisation_type(outbound::organisation_type(t), "t").unwrap(), t);
        }
        for r in ProfessionalRole::ALL {
            assert_eq!(professional_role(outbound::role(r), "r").unwrap(), r);
        }
        for p in gezinsdossier_ledger::consent::Purpose::ALL {
            assert_eq!(consent::purpose(outbound::purpose(p), "p").unwrap(), p);
        }
    }
}

//! Checks a batch of case events against the family as it stands: the rules that need
//! context (members exist, gezag holders are adults, a correction points at a real event).
//! Shape checks that need no context happen where the request is decoded.

use super::{CaseEvent, CaseEventKind, Gezag, MemberRole, PlanKind};
use crate::envelope::EventId;
use crate::family::{FamilyState, Member};
use chrono::NaiveDate;
use std::collections::{BTreeMap, HashSet};

/// A rule an event breaks, with the field that breaks it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("events[{index}].{field}: {problem}")]
pub struct ValidationError {
    /// The event's place in the batch.
    pub index: usize,
    /// Field path inside the event, in the API's field names.
    pub field: String,
    pub problem: String,
}

/// Checks `batch` in order, each event seeing the members and event ids added before it.
///
/// # Errors
/// The first [`ValidationError`].
pub fn validate_batch(state: &FamilyState, batch: &[(EventId, CaseEvent)]) -> Result<(), ValidationError> {
    let mut scratch = Scratch { state, added: BTreeMap::new(), ids: HashSet::new() };
    // Members added anywhere in the batch may be named as subjects by any event in it.
    for (_, event) in batch {
        if let CaseEventKind::MemberAdded(m) = &event.kind {
            scratch.added.entry(m.member_id.clone()).or_insert_with(|| Member::from(m));
        }
    }
    let added_in_batch: HashSet<_> = scratch.added.keys().cloned().collect();
    scratch.added.clear();
    for (index, (id, event)) in batch.iter().enumerate() {
        let fail = |field: &str, problem: String| ValidationError { index, field: field.to_owned(), problem };
        if event.categories.is_empty() {
            return Err(fail("categories", "at least one information category is required".into()));
        }
        if event.subjects.is_empty() {
            return Err(fail("subject_member_ids", "name at least one family member this event concerns".into()));
        }
        for subject in &event.subjects {
            if scratch.member(subject).is_none() && !added_in_batch.contains(subject) {
                return Err(fail("subject_member_ids", format!("{subject:?} is not a member of this family")));
            }
        }
        check_kind(&scratch, &event.kind, "", event.occurred_at.date_naive())
            .map_err(|(field, problem)| fail(&field, problem))?;
        if let CaseEventKind::MemberAdded(m) = &event.kind {
            scratch.added.insert(m.member_id.clone(), Member::from(m));
        }
        scratch.ids.insert(*id);
    }
    Ok(())
}

struct Scratch<'a> {
    state: &'a FamilyState,
    added: BTreeMap<String, Member>,
    ids: HashSet<EventId>,
}

impl Scratch<'_> {
    fn member(&self, id: &str) -> Option<&Member> {
        self.added.get(id).or_else(|| self.state.members.get(id))
    }

    fn case_event_exists(&self, id: &EventId) -> bool {
        self.ids.contains(id) || self.state.events.get(id).is_some_and(|e| e.event_type.starts_with("case."))
    }
}

type Problem = (String, String);

/// `event_date` is the day the event happened (ages are counted on it).
fn check_kind(s: &Scratch<'_>, kind: &CaseEventKind, prefix: &str, event_date: NaiveDate) -> Result<(), Problem> {
    let fail = |field: &str, problem: String| Err((format!("{prefix}{field}"), problem));
    match kind {
        CaseEventKind::MemberAdded(m) => {
            if m.member_id.trim().is_empty() {
                return fail("member_added.member_id", "must not be empty".into());
            }
            if m.member_id.contains(':') {
                return fail("member_added.member_id", "must not contain ':' (it marks organisation parties)".into());
            }
            if prefix.is_empty() && s.member(&m.member_id).is_some() {
                return fail("member_added.member_id", format!("{:?} is already a member of this family", m.member_id));
            }
            match m.role {
                MemberRole::Child if m.birth_date.is_none() => {
                    return fail("member_added.birth_date", "a child needs a birth date".into());
                }
                MemberRole::UnbornChild if m.expected_birth_date.is_none() => {
                    return fail(
                        "member_added.expected_birth_date",
                        "an unborn child needs an expected birth date".into(),
                    );
                }
                MemberRole::UnbornChild if m.gezag.is_some() => {
                    return fail(
                        "member_added.gezag",
                        "there is no gezag before birth (BW 1:245); name the mother in carried_by_member_id, and \
                         record gezag with the birth"
                            .into(),
                    );
                }
                MemberRole::UnbornChild => match m.carried_by.as_deref().map(|c| s.member(c)) {
                    Some(Some(mother)) if mother.role.is_adult_role() => {}
                    Some(_) => {
                        return fail(
                            "member_added.carried_by_member_id",
                            "must name a parent in this family who carries the child".into(),
                        );
                    }
                    None => {
                        return fail(
                            "member_added.carried_by_member_id",
                            "an unborn child needs the member who carries it: she consents for it before birth".into(),
                        );
                    }
                },
                role if role.is_adult_role() && m.gezag.is_some() => {
                    return fail("member_added.gezag", "gezag is recorded on the child, not on the adult".into());
                }
                _ => {}
            }
            if m.role != MemberRole::UnbornChild && m.carried_by.is_some() {
                return fail("member_added.carried_by_member_id", "only for an unborn child".into());
            }
            if let Some(g) = &m.gezag {
                check_gezag(s, g, &format!("{prefix}member_added.gezag"))?;
            }
        }
        CaseEventKind::GezagChanged { child, gezag, .. } => {
            match s.member(child) {
                Some(m) if m.role == MemberRole::Child => {}
                Some(m) if m.role == MemberRole::UnbornChild => {
                    return fail(
                        "gezag_changed.child_member_id",
                        format!("{child:?} is not born yet: there is no gezag before birth (record the birth)"),
                    );
                }
                Some(_) => {
                    return fail("gezag_changed.child_member_id", format!("{child:?} is not a child"));
                }
                None => {
                    return fail("gezag_changed.child_member_id", format!("{child:?} is not a member of this family"));
                }
            }
            check_gezag(s, gezag, &format!("{prefix}gezag_changed.gezag"))?;
        }
        CaseEventKind::Shielding { child, parent, reason, .. } => {
            let Some(c) = s.member(child).filter(|m| m.role == MemberRole::Child) else {
                return fail("shielding.child_member_id", format!("{child:?} is not a child of this family"));
            };
            // WGBO 7:465 lid 2: from 12 to 15 the parents' rights stand beside the child's.
            let age = crate::consent::authority::age_on(c, event_date);
            if !age.is_some_and(|a| (12..16).contains(&a)) {
                return fail(
                    "shielding.child_member_id",
                    "shielding from a parent applies to a child of 12 to 15 (WGBO 7:465 lid 2): younger, the parent \
                     decides; from 16, the parent sees nothing anyway"
                        .into(),
                );
            }
            if !c.gezag.as_ref().is_some_and(|g| g.holders.contains(parent)) {
                return fail("shielding.parent_member_id", format!("{parent:?} does not hold gezag over {child:?}"));
            }
            if reason.trim().is_empty() {
                return fail("shielding.reason", "say why informing this parent is incompatible with good care".into());
            }
        }
        CaseEventKind::Birth { child, gezag, .. } => {
            if !s.member(child).is_some_and(|m| m.role == MemberRole::UnbornChild) {
                return fail("birth.child_member_id", format!("{child:?} is not an unborn child of this family"));
            }
            check_gezag(s, gezag, &format!("{prefix}birth.gezag"))?;
        }
        CaseEventKind::PlanAgreed(p) => {
            if p.plan_id.trim().is_empty() {
                return fail("plan_agreed.plan_id", "must not be empty".into());
            }
            if p.plan_kind == PlanKind::Veiligheidsplan {
                if p.warning_signs.is_empty() {
                    return fail(
                        "plan_agreed.warning_signs",
                        "a veiligheidsplan lists at least one warning sign".into(),
                    );
                }
                if p.actions.is_empty() {
                    return fail("plan_agreed.actions", "a veiligheidsplan says who does what, when".into());
                }
            }
        }
        CaseEventKind::MdoHeld { participants, .. } if participants.is_empty() => {
            return fail("mdo_held.participants", "an MDO has participants".into());
        }
        CaseEventKind::CoordinatorAssigned { coordinator, .. }
            if coordinator.organisation_id.as_deref().is_none_or(|o| o.trim().is_empty()) =>
        {
            return fail(
                "coordinator_assigned.coordinator.organisation_id",
                "the coordinator's organisation is required".into(),
            );
        }
        CaseEventKind::MeasureImposed(m) => {
            match s.member(&m.child) {
                Some(c) if c.role == MemberRole::Child => {}
                Some(_) => {
                    return fail("measure_imposed.child_member_id", format!("{:?} is not a child", m.child));
                }
                None => {
                    return fail(
                        "measure_imposed.child_member_id",
                        format!("{:?} is not a member of this family", m.child),
                    );
                }
            }
            if m.certified_institution_id.trim().is_empty() {
                return fail("measure_imposed.certified_institution_id", "must not be empty".into());
            }
            if m.valid_until.is_some_and(|until| until < m.valid_from) {
                return fail("measure_imposed.valid_until", "ends before it starts".into());
            }
        }
        CaseEventKind::Correction(c) => {
            if !s.case_event_exists(&c.corrects) {
                return fail("correction.corrects_event_id", format!("no case event {} in this family", c.corrects));
            }
            if s.state.events.get(&c.corrects).is_some_and(|e| e.event_type == "case.correction") {
                return fail(
                    "correction.corrects_event_id",
                    format!("{} is a correction; correct the original event again instead", c.corrects),
                );
            }
            if c.reason.trim().is_empty() {
                return fail("correction.reason", "say why the earlier event is corrected".into());
            }
            if let Some(replacement) = &c.replacement {
                if matches!(**replacement, CaseEventKind::Correction(_)) {
                    return fail("correction.replacement", "a replacement cannot itself be a correction".into());
                }
                check_kind(s, replacement, &format!("{prefix}correction.replacement."), event_date)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_gezag(s: &Scratch<'_>, gezag: &Gezag, field: &str) -> Result<(), Problem> {
    for holder in &gezag.holders {
        match s.member(holder) {
            Some(m) if m.role.is_adult_role() => {}
            Some(_) => {
                return Err((format!("{field}.holder_member_ids"), format!("{holder:?} is not a parent or carer")));
            }
            None => {
                return Err((
                    format!("{field}.holder_member_ids"),
                    format!("{holder:?} is not a member of this family"),
                ));
            }
        }
    }
    Ok(())
}

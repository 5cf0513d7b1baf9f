//! The gezinsdossier: one requester's view of a family, rebuilt from the family state.
//!
//! Everything is filtered per subject and per category:
//! - a case item is shown when the requester authored it, or when every (subject,
//!   category) pair it carries is covered by a basis in force. Anything else is left out
//!   entirely; no placeholder hints that it exists;
//! - an item's author organisation is shown only to its own organisation or where
//!   `involvement` is covered for all the item's subjects: the mere fact of a v-ggz
//!   treatment is protected;
//! - a parent's data inside a child's record needs a basis for that parent too, because
//!   the item names the parent as a subject;
//! - a corrected item shows its corrected content (with the correction's subjects and
//!   categories), and a retracted one is shown to nobody (see [`crate::correction`]);
//! - every field that names another organisation (MDO participants, coordinators, the
//!   organisations told of a closure) is left out, and referrals and waiting lists are not
//!   shown, unless `involvement` is covered for all the item's subjects: that an MDO had a
//!   v-ggz at the table tells that a parent is in v-ggz care.

use crate::actor::Actor;
use crate::case::{CaseEvent, CaseEventKind, InformationCategory, MemberId, Participant, PlanKind};
use crate::consent::{AccessQuery, Basis, ConsentStatus, Decision, DenialReason, Purpose, decide};
use crate::envelope::EventId;
use crate::family::{CaseItem, FamilyState, Member};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

/// Why one item is in the view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shown {
    /// The requester's own organisation wrote it.
    OwnRecord,
    /// Disclosed: every (subject, category) it carries has its basis in
    /// [`DossierView::disclosed`].
    Disclosed,
}

#[derive(Debug, Clone)]
pub struct VisibleItem {
    /// The event as recorded (its id, time and author).
    pub item: Arc<CaseItem>,
    pub shown: Shown,
    /// Whether the author organisation may be named to this requester.
    pub show_author: bool,
    /// The correction whose content this item shows instead of the original.
    pub corrected: Option<Corrected>,
    /// What the item shows when that is not the event as recorded: corrected, or with
    /// other organisations left out.
    pub content: Option<CaseEvent>,
}

/// An item shows corrected content.
#[derive(Debug, Clone)]
pub struct Corrected {
    pub correction_event_id: EventId,
    /// The correction's revision in the family stream.
    pub revision: u64,
    pub at: DateTime<Utc>,
}

impl VisibleItem {
    /// What the item says to this requester.
    pub fn event(&self) -> &CaseEvent {
        self.content.as_ref().unwrap_or(&self.item.event)
    }
}

/// Whether an event of this kind is about another organisation's involvement as such: it
/// is shown only where `involvement` is covered.
fn is_about_involvement(kind: &CaseEventKind) -> bool {
    matches!(kind, CaseEventKind::ReferralOut { .. } | CaseEventKind::WaitingList { .. })
}

/// `event` without the organisations other than `own` that it names; `None` when it names
/// none.
fn without_other_organisations(event: &CaseEvent, own: &str) -> Option<CaseEvent> {
    let foreign = |org: &Option<String>| org.as_deref().is_some_and(|o| o != own);
    let anonymous = |p: &Participant| {
        if foreign(&p.organisation_id) {
            Participant { organisation_id: None, professional_id: None, role: None, member_id: p.member_id.clone() }
        } else {
            p.clone()
        }
    };
    let kind = match &event.kind {
        CaseEventKind::MdoHeld { participants, summary, next_mdo_on } => CaseEventKind::MdoHeld {
            participants: participants.iter().filter(|p| !foreign(&p.organisation_id)).cloned().collect(),
            summary: summary.clone(),
            next_mdo_on: *next_mdo_on,
        },
        CaseEventKind::CoordinatorAssigned { coordinator, handed_over_from } => CaseEventKind::CoordinatorAssigned {
            coordinator: anonymous(coordinator),
            handed_over_from: handed_over_from.as_ref().map(anonymous),
        },
        CaseEventKind::CaseClosed { reason, informed_organisation_ids } => CaseEventKind::CaseClosed {
            reason: reason.clone(),
            informed_organisation_ids: informed_organisation_ids.iter().filter(|o| *o == own).cloned().collect(),
        },
        _ => return None,
    };
    (kind != event.kind).then(|| CaseEvent { kind, ..event.clone() })
}

/// An organisation the requester may know to be involved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RosterEntry {
    pub organisation_id: String,
    pub roles: BTreeSet<crate::actor::ProfessionalRole>,
}

/// One requester's gezinsdossier.
#[derive(Debug, Clone)]
pub struct DossierView {
    /// The family-stream revision this view was built from.
    pub family_revision: Option<u64>,
    /// Members whose identity the requester may see.
    pub members: Vec<Member>,
    /// The latest visible version of each plan, safety plans included.
    pub plans: Vec<Arc<CaseItem>>,
    pub roster: Vec<RosterEntry>,
    pub coordinator: Option<Participant>,
    pub open_referrals: Vec<Arc<CaseItem>>,
    pub timeline: Vec<VisibleItem>,
    /// Items whose content was erased, where the requester would have seen them: "erased on
    /// D" in their place. Nothing of their content remains to show.
    pub erased: Vec<crate::family::ErasedItem>,
    /// What was disclosed (own records excluded): per subject, per category, the basis.
    pub disclosed: BTreeMap<MemberId, BTreeMap<InformationCategory, Basis>>,
    /// Whether any basis, consent or legal, covers anything at all for this requester.
    pub any_basis: bool,
    /// Every (subject, category) a basis covers for this requester now, items or not.
    pub covered: BTreeSet<(MemberId, InformationCategory)>,
    /// Consents meant for this requester and purpose that grant nothing now, and why: for
    /// example a child turned 12 or 16 and others must consent now.
    pub notices: Vec<DenialReason>,
}

impl DossierView {
    /// A legal basis was used: the disclosure waits for review.
    pub fn needs_review(&self) -> bool {
        self.disclosed.values().flat_map(|c| c.values()).any(Basis::needs_review)
    }

    /// The requester may see nothing at all: no basis, and nothing of its own.
    pub fn is_refusal(&self) -> bool {
        !self.any_basis && self.timeline.is_empty()
    }
}

/// Precomputed decisions for every (subject, category) of a family, for one requester:
/// the rules run once per pair, not once per item.
pub struct Grants {
    /// Per subject, indexed by the category's place in [`InformationCategory::ALL`].
    granted: HashMap<MemberId, [Option<Basis>; InformationCategory::ALL.len()]>,
    any: bool,
}

impl Grants {
    pub fn compute(family: &FamilyState, requester: &Actor, purpose: Purpose, at: DateTime<Utc>) -> Self {
        let mut granted = HashMap::with_capacity(family.members.len());
        let mut any = false;
        for subject in family.members.keys() {
            let row = InformationCategory::ALL.map(|category| {
                let query = AccessQuery { requester, purpose, subject, category, at };
                match decide(family, query) {
                    Decision::Granted(basis) => {
                        any = true;
                        Some(basis)
                    }
                    Decision::Denied(_) => None,
                }
            });
            granted.insert(subject.clone(), row);
        }
        Self { granted, any }
    }

    pub fn get(&self, subject: &str, category: InformationCategory) -> Option<&Basis> {
        self.granted.get(subject).and_then(|row| row[category as usize].as_ref())
    }

    pub fn is_empty(&self) -> bool {
        !self.any
    }

    /// Every (subject, category) with a basis.
    pub fn covered(&self) -> BTreeSet<(MemberId, InformationCategory)> {
        self.granted
            .iter()
            .flat_map(|(s, row)| {
                InformationCategory::ALL.into_iter().filter(|c| row[*c as usize].is_some()).map(|c| (s.clone(), c))
            })
            .collect()
    }
}

/// Consents addressed to this requester and purpose that are not in force, explained.
fn notices(family: &FamilyState, requester: &Actor, purpose: Purpose, at: DateTime<Utc>) -> Vec<DenialReason> {
    family
        .consents
        .values()
        .filter(|c| c.grant.purpose == purpose && c.grant.recipients.iter().any(|r| r.covers(requester)))
        .filter_map(|c| {
            let status = c.status_at(family.members.get(&c.grant.subject)?, at);
            let must_consent = match &status {
                ConsentStatus::Active => return None,
                ConsentStatus::Incomplete { missing } => missing.clone(),
                ConsentStatus::AgeRuleChanged { must_consent, .. } => must_consent.clone(),
                _ => BTreeSet::new(),
            };
            Some(DenialReason {
                consent_id: Some(c.grant.consent_id.clone()),
                explanation: format!("consent {}: {}", c.grant.consent_id, status.explain()),
                must_consent,
            })
        })
        .collect()
}

/// Notes that `category` of `subject` was shown, under `basis` (the first basis per pair).
fn record_disclosure(
    disclosed: &mut BTreeMap<MemberId, BTreeMap<InformationCategory, Basis>>,
    subject: &str,
    category: InformationCategory,
    basis: Option<&Basis>,
) {
    let seen = disclosed.get(subject).is_some_and(|c| c.contains_key(&category));
    if !seen && let Some(basis) = basis {
        disclosed.entry(subject.to_owned()).or_default().insert(category, basis.clone());
    }
}

/// Decides, item by item, what one requester sees of a family at one moment.
struct Judge<'a> {
    family: &'a FamilyState,
    requester: &'a Actor,
    purpose: Purpose,
    at: DateTime<Utc>,
    grants: Grants,
    amendments: HashMap<EventId, crate::correction::Amendment>,
}

impl<'a> Judge<'a> {
    /// A judge for the items after `after`, and for the earlier items corrected after it.
    fn new(
        family: &'a FamilyState,
        requester: &'a Actor,
        purpose: Purpose,
        at: DateTime<Utc>,
        after: Option<u64>,
    ) -> Self {
        let grants = Grants::compute(family, requester, purpose, at);
        let amendments = crate::correction::amendments(family, at, after);
        Self { family, requester, purpose, at, grants, amendments }
    }

    /// The visible items among `items` (in stream order), noting in `disclosed` the basis
    /// of each pair shown.
    fn timeline<'i>(
        &self,
        items: impl Iterator<Item = &'i Arc<CaseItem>>,
        disclosed: &mut BTreeMap<MemberId, BTreeMap<InformationCategory, Basis>>,
    ) -> Vec<VisibleItem> {
        let mut timeline = Vec::new();
        for item in items {
            if item.recorded_at > self.at {
                break;
            }
            timeline.extend(self.visible(item, disclosed));
        }
        timeline
    }

    /// What `item` shows to the requester, if anything.
    fn visible(
        &self,
        item: &Arc<CaseItem>,
        disclosed: &mut BTreeMap<MemberId, BTreeMap<InformationCategory, Basis>>,
    ) -> Option<VisibleItem> {
        let Self { family, requester, purpose, at, grants, amendments } = self;
        let (requester, purpose, at) = (*requester, *purpose, *at);
        // A correction is folded into the item it corrects.
        if matches!(item.event.kind, CaseEventKind::Correction(_)) {
            return None;
        }
        let (corrected, content) = match amendments.get(&item.event_id) {
            None => (None, None),
            // Retracted (no content): shown to nobody.
            Some(amendment) => {
                let content = amendment.applied_to(&item.event)?;
                let correction = &amendment.correction;
                let corrected = Corrected {
                    correction_event_id: correction.event_id,
                    revision: correction.revision,
                    at: correction.recorded_at,
                };
                (Some(corrected), Some(content))
            }
        };
        let event = content.as_ref().unwrap_or(&item.event);
        let own = item.author.organisation_id == requester.organisation_id;
        let shown = if own {
            Shown::OwnRecord
        } else {
            // Each pair's basis; a restriction (AVG art. 18) may ask for another one or none.
            let author = item.author.organisation_id.as_str();
            let mut bases = Vec::with_capacity(event.subjects.len() * event.categories.len());
            for s in &event.subjects {
                for c in &event.categories {
                    let query = AccessQuery { requester, purpose, subject: s, category: *c, at };
                    let basis = grants.get(s, *c).and_then(|b| crate::restriction::basis_for(family, author, query, b));
                    bases.push((s, *c, basis));
                }
            }
            if bases.iter().any(|(_, _, b)| b.is_none()) {
                return None;
            }
            for (s, c, basis) in &bases {
                record_disclosure(disclosed, s, *c, basis.as_ref());
            }
            Shown::Disclosed
        };
        let show_author =
            own || event.subjects.iter().all(|s| grants.get(s, InformationCategory::Involvement).is_some());
        if !show_author {
            if is_about_involvement(&event.kind) {
                return None;
            }
            if let Some(reduced) = without_other_organisations(event, &requester.organisation_id) {
                return Some(VisibleItem { item: item.clone(), shown, show_author, corrected, content: Some(reduced) });
            }
        }
        if show_author && !own {
            for s in &event.subjects {
                record_disclosure(
                    disclosed,
                    s,
                    InformationCategory::Involvement,
                    grants.get(s, InformationCategory::Involvement),
                );
            }
        }
        Some(VisibleItem { item: item.clone(), shown, show_author, corrected, content })
    }
}

/// What changed for a requester after a family revision: the items a feed sends next.
#[derive(Debug, Clone)]
pub struct Changes {
    /// The family-stream revision these changes run up to.
    pub family_revision: Option<u64>,
    /// Items recorded after the revision, and earlier items corrected after it, as the
    /// dossier shows them now (in stream order).
    pub timeline: Vec<VisibleItem>,
    /// What these items disclose (own records excluded): per subject, per category, the basis.
    pub disclosed: BTreeMap<MemberId, BTreeMap<InformationCategory, Basis>>,
    /// Whether any basis covers anything at all for this requester.
    pub any_basis: bool,
    /// Every (subject, category) a basis covers for this requester now.
    pub covered: BTreeSet<(MemberId, InformationCategory)>,
}

/// `requester`'s view of what changed in `family` after revision `after` (everything with
/// `None`), judged at `at` exactly as [`build`] judges each item; its cost grows with the
/// changes, not with the family.
pub fn changes_after(
    family: &FamilyState,
    requester: &Actor,
    purpose: Purpose,
    at: DateTime<Utc>,
    after: Option<u64>,
) -> Changes {
    let judge = Judge::new(family, requester, purpose, at, after);
    let newer = family.items_after(after);
    // Earlier items corrected since: their amendments come from corrections after `after`.
    let mut corrected: Vec<&Arc<CaseItem>> = match after {
        None => Vec::new(),
        Some(r) => judge.amendments.keys().filter_map(|id| family.item(id)).filter(|i| i.revision <= r).collect(),
    };
    corrected.sort_by_key(|i| i.revision);
    let mut disclosed = BTreeMap::new();
    let timeline = judge.timeline(corrected.into_iter().chain(newer), &mut disclosed);
    Changes {
        family_revision: family.revision,
        timeline,
        disclosed,
        any_basis: !judge.grants.is_empty(),
        covered: judge.grants.covered(),
    }
}

/// Builds `requester`'s view of `family` for `purpose` at `at`.
pub fn build(family: &FamilyState, requester: &Actor, purpose: Purpose, at: DateTime<Utc>) -> DossierView {
    let judge = Judge::new(family, requester, purpose, at, None);
    let grants = &judge.grants;
    let mut disclosed: BTreeMap<MemberId, BTreeMap<InformationCategory, Basis>> = BTreeMap::new();
    let timeline = judge.timeline(family.items.iter(), &mut disclosed);

    let mut plans: BTreeMap<(u8, String), Arc<CaseItem>> = BTreeMap::new();
    let mut coordinator = None;
    let mut referrals = Vec::new();
    let mut members = BTreeMap::new();
    let mut roster: BTreeMap<String, BTreeSet<_>> = BTreeMap::new();
    for v in &timeline {
        if v.show_author {
            roster.entry(v.item.author.organisation_id.clone()).or_default().insert(v.item.author.role);
        }
        match &v.event().kind {
            CaseEventKind::PlanAgreed(p) => {
                let kind_order = match p.plan_kind {
                    PlanKind::Gezinsplan => 0,
                    PlanKind::Behandelplan => 1,
                    PlanKind::Veiligheidsplan => 2,
                };
                plans.insert((kind_order, p.plan_id.clone()), v.item.clone());
            }
            CaseEventKind::CoordinatorAssigned { coordinator: c, .. } => coordinator = Some(c.clone()),
            CaseEventKind::ReferralOut { .. } => referrals.push(v.item.clone()),
            CaseEventKind::MemberAdded(m) => {
                if let Some(member) = family.members.get(&m.member_id) {
                    members.insert(m.member_id.clone(), member.clone());
                }
            }
            _ => {}
        }
    }
    DossierView {
        notices: notices(family, requester, purpose, at),
        family_revision: family.revision,
        members: members.into_values().collect(),
        plans: plans.into_values().collect(),
        roster: roster.into_iter().map(|(organisation_id, roles)| RosterEntry { organisation_id, roles }).collect(),
        coordinator,
        open_referrals: referrals,
        erased: family
            .erased
            .iter()
            .filter(|e| e.recorded_at <= at)
            .filter(|e| {
                e.group.as_ref().is_some_and(|g| {
                    g.author == requester.organisation_id
                        || (!g.subjects.is_empty()
                            && !g.categories.is_empty()
                            && g.subjects.iter().all(|s| g.categories.iter().all(|c| grants.get(s, *c).is_some())))
                })
            })
            .cloned()
            .collect(),
        timeline,
        disclosed,
        any_basis: !grants.is_empty(),
        covered: grants.covered(),
    }
}

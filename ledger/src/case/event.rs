//! The typed case events of a family's life (DOMAIN.md "The life of a case").

use super::InformationCategory;
use crate::actor::{Actor, OrganisationType, ProfessionalRole};
use crate::envelope::EventId;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A family member's id, chosen by the EPD that adds the member; unique within the family.
pub type MemberId = String;

/// A case event as stored: what happened, and who recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRecord {
    pub author: Actor,
    pub event: CaseEvent,
}

/// One thing that happened in a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseEvent {
    /// When it happened in the world (not when it was recorded).
    pub occurred_at: DateTime<Utc>,
    /// The family members this event is about.
    pub subjects: BTreeSet<MemberId>,
    /// What kinds of information it carries.
    pub categories: BTreeSet<InformationCategory>,
    pub kind: CaseEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CaseEventKind {
    Registration {
        referral_route: ReferralRoute,
        reason: String,
    },
    MemberAdded(MemberAdded),
    GezagChanged {
        child: MemberId,
        gezag: Gezag,
        reason: String,
    },
    Intake {
        summary: String,
    },
    Analysis {
        summary: String,
        life_domains: Vec<String>,
    },
    PlanAgreed(PlanAgreed),
    MdoHeld {
        participants: Vec<Participant>,
        summary: String,
        next_mdo_on: Option<NaiveDate>,
    },
    CoordinatorAssigned {
        coordinator: Participant,
        handed_over_from: Option<Participant>,
    },
    ReferralOut {
        to_organisation_type: OrganisationType,
        to_organisation_id: Option<String>,
        reason: String,
        warm_handover: bool,
    },
    WaitingList {
        organisation_id: String,
        expected_start_on: Option<NaiveDate>,
    },
    InterventionStarted {
        intervention_id: String,
        description: String,
    },
    InterventionEnded {
        intervention_id: String,
        outcome: String,
    },
    Crisis {
        description: String,
        actions_taken: String,
    },
    MeasureImposed(MeasureImposed),
    MeasureEnded {
        measure_id: String,
        reason: String,
    },
    Note {
        text: String,
    },
    CaseClosed {
        reason: String,
        informed_organisation_ids: Vec<String>,
    },
    Correction(Correction),
    /// An unborn child is born: from now on a child with a birth date, and gezag as the
    /// EPD records it (the mother; the other parent where marriage, registered partnership
    /// or recognition with joint gezag gives it, BW 1:251, 1:252, 1:253b).
    Birth {
        child: MemberId,
        born_on: NaiveDate,
        gezag: Gezag,
    },
    /// WGBO 7:457, 7:465 lid 2: for a child of 12 to 15, the child's provider withholds
    /// information from one parent with gezag because giving it is incompatible with good
    /// care. That parent's report leaves the shielded lines out and says so.
    Shielding {
        child: MemberId,
        parent: MemberId,
        /// Which categories; empty: every category.
        categories: BTreeSet<InformationCategory>,
        reason: String,
    },
}

impl CaseEventKind {
    /// Whether this kind changes the family's members or gezag (see
    /// `FamilyState::apply_kind`), the facts that validating later events reads.
    pub fn changes_members(&self) -> bool {
        matches!(self, Self::MemberAdded(_) | Self::GezagChanged { .. } | Self::Birth { .. } | Self::Correction(_))
    }

    /// The event type under which this kind is stored (`case.<kind>`).
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Registration { .. } => "case.registration",
            Self::MemberAdded(_) => "case.member_added",
            Self::GezagChanged { .. } => "case.gezag_changed",
            Self::Intake { .. } => "case.intake",
            Self::Analysis { .. } => "case.analysis",
            Self::PlanAgreed(_) => "case.plan_agreed",
            Self::MdoHeld { .. } => "case.mdo_held",
            Self::CoordinatorAssigned { .. } => "case.coordinator_assigned",
            Self::ReferralOut { .. } => "case.referral_out",
            Self::WaitingList { .. } => "case.waiting_list",
            Self::InterventionStarted { .. } => "case.intervention_started",
            Self::InterventionEnded { .. } => "case.intervention_ended",
            Self::Crisis { .. } => "case.crisis",
            Self::MeasureImposed(_) => "case.measure_imposed",
            Self::MeasureEnded { .. } => "case.measure_ended",
            Self::Note { .. } => "case.note",
            Self::CaseClosed { .. } => "case.case_closed",
            Self::Correction(_) => "case.correction",
            Self::Birth { .. } => "case.birth",
            Self::Shielding { .. } => "case.shielding",
        }
    }
}

/// How the family reached care.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReferralRoute {
    Huisarts,
    Wijkteam,
    VeiligThuis,
    Police,
    Hospital,
    SelfReferral,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberAdded {
    pub member_id: MemberId,
    pub role: MemberRole,
    /// How the family refers to this member in conversation; shown only where allowed.
    pub display_name: String,
    /// Required for children: ages decide who may consent.
    pub birth_date: Option<NaiveDate>,
    /// For an unborn child: the expected date of birth.
    pub expected_birth_date: Option<NaiveDate>,
    /// For a child: who holds parental authority. Never for an unborn child: there is no
    /// gezag before birth (BW 1:245).
    pub gezag: Option<Gezag>,
    /// A contact ban or restraining order against this member (e.g. an ex-partner). It
    /// never changes who must consent.
    pub contact_restricted: bool,
    /// For an unborn child: the member who carries it. Before birth she alone consents for
    /// it: data about the pregnancy is hers.
    #[serde(default)]
    pub carried_by: Option<MemberId>,
    /// A parent with gezag but no contact with the child (no omgang): still consents.
    #[serde(default)]
    pub no_contact: bool,
}

impl MemberAdded {
    /// A parent or carer with nothing else recorded.
    pub fn adult(member_id: &str, role: MemberRole) -> Self {
        Self {
            member_id: member_id.to_owned(),
            role,
            display_name: String::new(),
            birth_date: None,
            expected_birth_date: None,
            gezag: None,
            contact_restricted: false,
            carried_by: None,
            no_contact: false,
        }
    }

    /// A child born on `born`, with gezag held by `holders`.
    pub fn child(member_id: &str, born: NaiveDate, holders: impl IntoIterator<Item = MemberId>) -> Self {
        Self {
            birth_date: Some(born),
            gezag: Some(Gezag { holders: holders.into_iter().collect(), guardian_organisation_id: None }),
            ..Self::adult(member_id, MemberRole::Child)
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MemberRole {
    Parent,
    /// A co-raising grandparent, network foster parent, step-parent…
    Carer,
    Child,
    /// From 20 weeks of pregnancy.
    UnbornChild,
}

impl MemberRole {
    pub fn is_adult_role(self) -> bool {
        matches!(self, Self::Parent | Self::Carer)
    }
}

/// Who holds parental authority over one child.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gezag {
    /// Family members (parents or carers) with gezag.
    pub holders: BTreeSet<MemberId>,
    /// Under voogdij: the organisation that holds guardianship.
    pub guardian_organisation_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    /// One family, one plan, one coordinator.
    Gezinsplan,
    Behandelplan,
    Veiligheidsplan,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanAgreed {
    pub plan_kind: PlanKind,
    /// Stable id of the plan; a later agreement with the same id replaces it.
    pub plan_id: String,
    pub summary: String,
    pub goals: Vec<String>,
    /// Veiligheidsplan: the signs that things are going wrong.
    pub warning_signs: Vec<String>,
    /// Veiligheidsplan: who does what, when.
    pub actions: Vec<SafetyAction>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetyAction {
    pub who: String,
    pub what: String,
    pub when: String,
}

/// A person taking part, by organisation and role (and by member id for family members).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Participant {
    pub organisation_id: Option<String>,
    pub professional_id: Option<String>,
    pub role: Option<ProfessionalRole>,
    pub member_id: Option<MemberId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeasureKind {
    /// Ondertoezichtstelling: supervision order.
    Ots,
    /// Guardianship.
    Voogdij,
    /// Out-of-home placement.
    Uithuisplaatsing,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasureImposed {
    pub measure_id: String,
    pub measure: MeasureKind,
    pub child: MemberId,
    /// The GI that carries out the measure.
    pub certified_institution_id: String,
    pub valid_from: NaiveDate,
    pub valid_until: Option<NaiveDate>,
}

/// Rectification (AVG art. 16): a new event that supersedes an earlier one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    pub corrects: EventId,
    pub reason: String,
    /// The corrected content; `None` retracts the earlier event.
    pub replacement: Option<Box<CaseEventKind>>,
}

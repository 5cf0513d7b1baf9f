//! Consent and legal-basis events, as stored in the family stream (so that they are ordered
//! with the member and gezag facts they depend on).

use crate::actor::{Actor, OrganisationType, ProfessionalRole};
use crate::case::{InformationCategory, MemberId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// What information may be used for. A consent names one purpose; a request states one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    /// Providing care to the family (zorgverlening).
    Care,
    /// Case or process coordination (casusregie).
    Coordination,
    /// Carrying out a child protection measure.
    ChildProtection,
    /// Assessing safety (Veilig Thuis, acute danger).
    SafetyAssessment,
}

impl Purpose {
    pub const ALL: [Purpose; 4] = [Self::Care, Self::Coordination, Self::ChildProtection, Self::SafetyAssessment];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Care => "care",
            Self::Coordination => "coordination",
            Self::ChildProtection => "child_protection",
            Self::SafetyAssessment => "safety_assessment",
        }
    }
}

/// Who may receive the information.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Recipient {
    /// One organisation, any of its professionals.
    Organisation { organisation_id: String },
    /// Any organisation of a type, optionally only professionals in one role.
    TypeAndRole { organisation_type: OrganisationType, role: Option<ProfessionalRole> },
    /// Professionals in one role at one named organisation.
    OrganisationRole { organisation_id: String, role: ProfessionalRole },
}

impl Recipient {
    pub fn covers(&self, requester: &Actor) -> bool {
        match self {
            Self::Organisation { organisation_id } => *organisation_id == requester.organisation_id,
            Self::TypeAndRole { organisation_type, role } => {
                *organisation_type == requester.organisation_type && role.is_none_or(|r| r == requester.role)
            }
            Self::OrganisationRole { organisation_id, role } => {
                *organisation_id == requester.organisation_id && *role == requester.role
            }
        }
    }

    /// The one organisation this recipient names, if it names one.
    pub fn organisation_id(&self) -> Option<&str> {
        match self {
            Self::Organisation { organisation_id } | Self::OrganisationRole { organisation_id, .. } => {
                Some(organisation_id)
            }
            Self::TypeAndRole { .. } => None,
        }
    }
}

/// How a party's agreement was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConsentMethod {
    /// A signed form, referenced by the recording EPD's document id.
    SignedForm { document_reference: String },
    /// Said aloud, recorded by the named professional.
    Verbal { recorded_by_professional_id: String },
}

/// A consent is granted (possibly not yet by every party who must agree).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentGranted {
    pub consent_id: String,
    /// Whose data.
    pub subject: MemberId,
    pub categories: BTreeSet<InformationCategory>,
    pub recipients: Vec<Recipient>,
    pub purpose: Purpose,
    pub valid_from: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
    /// The family members agreeing in this event.
    pub given_by: BTreeSet<MemberId>,
    pub method: ConsentMethod,
    /// The asking professional's stated reason: what they want and why.
    pub requested_reason: String,
}

/// The payload of a consent-ledger event in the family stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConsentEvent {
    Granted(ConsentGranted),
    /// A party who had not yet agreed adds their agreement.
    AgreementAdded {
        consent_id: String,
        given_by: MemberId,
        method: ConsentMethod,
    },
    /// A party who must agree refuses; the consent grants nothing.
    Refused {
        consent_id: String,
        refused_by: MemberId,
        reason: String,
    },
    /// Withdrawn: from now on it stops all disclosures.
    Withdrawn {
        consent_id: String,
        withdrawn_by: MemberId,
        reason: String,
    },
    LegalBasis(LegalBasis),
}

impl ConsentEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Granted(_) => "consent.granted",
            Self::AgreementAdded { .. } => "consent.agreement_added",
            Self::Refused { .. } => "consent.refused",
            Self::Withdrawn { .. } => "consent.withdrawn",
            Self::LegalBasis(_) => "consent.legal_basis",
        }
    }
}

/// The ground for sharing without consent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LegalBasisKind {
    /// A child protection measure (OTS, voogdij): the GI's right to information.
    ChildProtectionMeasure,
    /// A report or advice request to Veilig Thuis under the meldcode (BW 1:240).
    Meldcode,
    /// Acute danger: break-the-glass.
    BreakTheGlass,
}

impl LegalBasisKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChildProtectionMeasure => "child_protection_measure",
            Self::Meldcode => "meldcode",
            Self::BreakTheGlass => "break_the_glass",
        }
    }
}

/// Sharing without consent, with its justification, scope and period. Every use is
/// flagged for review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalBasis {
    pub basis_id: String,
    pub kind: LegalBasisKind,
    pub justification: String,
    /// The professional who answers for this basis.
    pub responsible: Actor,
    /// For a child protection measure: the measure it rests on.
    pub measure_id: Option<String>,
    pub subjects: BTreeSet<MemberId>,
    pub categories: BTreeSet<InformationCategory>,
    pub recipients: Vec<Recipient>,
    pub valid_from: DateTime<Utc>,
    pub valid_until: Option<DateTime<Utc>>,
}

/// A consent-ledger event as stored: what, and who recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentRecord {
    pub recorded_by: Actor,
    pub event: ConsentEvent,
}

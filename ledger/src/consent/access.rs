//! The access decision: may this requester see this category of this subject's data, for
//! this purpose, now? The answer is the basis that allows it, or the reasons it does not.
//! Default deny: only a consent or legal basis in force that covers requester, purpose,
//! subject and category grants anything.

use super::model::{LegalBasisKind, Purpose};
use super::status::ConsentStatus;
use crate::actor::Actor;
use crate::case::{InformationCategory, MemberId};
use crate::family::FamilyState;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// One question to the rules.
#[derive(Debug, Clone, Copy)]
pub struct AccessQuery<'a> {
    pub requester: &'a Actor,
    pub purpose: Purpose,
    pub subject: &'a str,
    pub category: InformationCategory,
    pub at: DateTime<Utc>,
}

/// What allows a disclosure, pinned to the event that records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Basis {
    Consent { consent_id: String, event_id: uuid::Uuid, event_hash: String },
    LegalBasis { basis_id: String, kind: LegalBasisKind, event_id: uuid::Uuid, event_hash: String },
}

impl Basis {
    /// Uses of a legal basis wait for a privacy officer's review.
    pub fn needs_review(&self) -> bool {
        matches!(self, Self::LegalBasis { .. })
    }
}

/// Why access would not be granted, in terms a professional can act on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DenialReason {
    /// The consent this reason is about, if any.
    pub consent_id: Option<String>,
    pub explanation: String,
    /// Who would have to consent now, where that is the way forward.
    pub must_consent: BTreeSet<MemberId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Granted(Basis),
    Denied(Vec<DenialReason>),
}

impl Decision {
    pub fn basis(&self) -> Option<&Basis> {
        match self {
            Self::Granted(b) => Some(b),
            Self::Denied(_) => None,
        }
    }
}

/// Decides one query against the family as it stands at `query.at`.
pub fn decide(family: &FamilyState, query: AccessQuery<'_>) -> Decision {
    let Some(subject) = family.members.get(query.subject) else {
        return Decision::Denied(vec![DenialReason {
            consent_id: None,
            explanation: format!("{} is not a member of this family", query.subject),
            must_consent: BTreeSet::new(),
        }]);
    };
    let mut reasons = Vec::new();
    for consent in family.consents.values() {
        let grant = &consent.grant;
        let applies = grant.subject == query.subject
            && grant.categories.contains(&query.category)
            && grant.purpose == query.purpose
            && grant.recipients.iter().any(|r| r.covers(query.requester));
        if !applies {
            continue;
        }
        match consent.status_at(subject, query.at) {
            ConsentStatus::Active => {
                return Decision::Granted(Basis::Consent {
                    consent_id: grant.consent_id.clone(),
                    event_id: consent.event_id,
                    event_hash: consent.event_hash.to_hex(),
                });
            }
            status => {
                let must_consent = match &status {
                    ConsentStatus::Incomplete { missing } => missing.clone(),
                    ConsentStatus::AgeRuleChanged { must_consent, .. } => must_consent.clone(),
                    _ => BTreeSet::new(),
                };
                reasons.push(DenialReason {
                    consent_id: Some(grant.consent_id.clone()),
                    explanation: format!("consent {}: {}", grant.consent_id, status.explain()),
                    must_consent,
                });
            }
        }
    }
    for basis in family.legal_bases.values() {
        let b = &basis.basis;
        let in_period = b.valid_from <= query.at && b.valid_until.is_none_or(|until| query.at < until);
        let covers = b.subjects.contains(query.subject)
            && b.categories.contains(&query.category)
            && b.recipients.iter().any(|r| r.covers(query.requester))
            && purpose_allowed(b.kind, query.purpose);
        if !covers {
            continue;
        }
        let measure_in_force = b.kind != LegalBasisKind::ChildProtectionMeasure
            || b.measure_id.as_ref().is_some_and(|m| family.measure_in_force(m, query.at));
        if in_period && measure_in_force {
            return Decision::Granted(Basis::LegalBasis {
                basis_id: b.basis_id.clone(),
                kind: b.kind,
                event_id: basis.event_id,
                event_hash: basis.event_hash.to_hex(),
            });
        }
        reasons.push(DenialReason {
            consent_id: None,
            explanation: format!(
                "legal basis {} ({}) is not in force at this time{}",
                b.basis_id,
                b.kind.as_str(),
                if measure_in_force { "" } else { ": its measure has ended" }
            ),
            must_consent: BTreeSet::new(),
        });
    }
    let authority = super::authority::who_must_consent(subject, query.at.date_naive());
    reasons.push(DenialReason {
        consent_id: None,
        explanation: format!(
            "no consent or legal basis in force covers {:?} data of {} for {} by this organisation and role; {}",
            query.category,
            query.subject,
            query.purpose.as_str(),
            authority.describe()
        ),
        must_consent: authority.must_agree,
    });
    Decision::Denied(reasons)
}

/// A legal basis serves the purpose it exists for; break-the-glass serves any.
fn purpose_allowed(kind: LegalBasisKind, purpose: Purpose) -> bool {
    match kind {
        LegalBasisKind::ChildProtectionMeasure => purpose == Purpose::ChildProtection,
        LegalBasisKind::Meldcode => purpose == Purpose::SafetyAssessment,
        LegalBasisKind::BreakTheGlass => true,
    }
}

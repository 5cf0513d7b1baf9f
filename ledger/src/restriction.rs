//! Restriction of processing (AVG art. 18): an author organisation marks what it wrote about
//! a member (some categories, or all) as restricted. From then on it is disclosed only for
//! what art. 18 lid 2 leaves:
//! - the subject's consent: a consent given *after* the restriction, which covers it;
//! - the protection of another person: the safety-assessment and child-protection purposes;
//!
//! and to its author (storage and its own record are not disclosures). Legal claims are not
//! a purpose of this service. Lifting the restriction is an event too (the subject is told
//! before, art. 18 lid 3: that is the author's to do).

use crate::actor::Actor;
use crate::case::{InformationCategory, MemberId};
use crate::consent::{AccessQuery, Basis, ConsentStatus, Purpose};
use crate::family::FamilyState;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The event type of a [`RestrictionRecord`] in a family stream.
pub const EVENT_TYPE: &str = "restriction.recorded";

/// One step: a restriction applied or lifted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RestrictionRecord {
    Applied {
        restriction_id: uuid::Uuid,
        subject: MemberId,
        /// Empty: every category.
        categories: BTreeSet<InformationCategory>,
        by: Actor,
        at: DateTime<Utc>,
    },
    Lifted {
        restriction_id: uuid::Uuid,
        by: Actor,
        at: DateTime<Utc>,
    },
}

/// A restriction as it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestrictionState {
    pub restriction_id: uuid::Uuid,
    /// The organisation whose records it covers.
    pub author: String,
    pub subject: MemberId,
    pub categories: BTreeSet<InformationCategory>,
    pub applied_at: DateTime<Utc>,
    pub lifted_at: Option<DateTime<Utc>>,
}

impl RestrictionState {
    fn in_force(&self, at: DateTime<Utc>) -> bool {
        self.applied_at <= at && self.lifted_at.is_none_or(|l| at < l)
    }

    fn covers(&self, author: &str, subject: &str, category: InformationCategory) -> bool {
        self.author == author
            && self.subject == subject
            && (self.categories.is_empty() || self.categories.contains(&category))
    }
}

/// The basis on which a (subject, category) pair of an item by `author` may be disclosed,
/// as far as restrictions go: `granted` when nothing restricts it; under a restriction, only
/// for the protective purposes, or on a consent in force given after the restriction
/// (`None` otherwise).
pub fn basis_for(family: &FamilyState, author: &str, query: AccessQuery<'_>, granted: &Basis) -> Option<Basis> {
    let restricting = family
        .restrictions
        .values()
        .filter(|r| r.in_force(query.at) && r.covers(author, query.subject, query.category));
    let Some(since) = restricting.map(|r| r.applied_at).max() else { return Some(granted.clone()) };
    if matches!(query.purpose, Purpose::SafetyAssessment | Purpose::ChildProtection) {
        return Some(granted.clone());
    }
    let subject = family.members.get(query.subject)?;
    family
        .consents
        .values()
        .filter(|c| c.given_at > since)
        .filter(|c| {
            let g = &c.grant;
            g.subject == query.subject
                && g.categories.contains(&query.category)
                && g.purpose == query.purpose
                && g.recipients.iter().any(|r| r.covers(query.requester))
        })
        .find(|c| matches!(c.status_at(subject, query.at), ConsentStatus::Active))
        .map(|c| Basis::Consent {
            consent_id: c.grant.consent_id.clone(),
            event_id: c.event_id,
            event_hash: c.event_hash.to_hex(),
        })
}

//! The state of one consent, folded from its events, and its status at a moment.

use super::authority::{ConsentRule, NOBODY_HOLDS_GEZAG, who_must_consent};
use super::model::{ConsentGranted, ConsentMethod};
use crate::case::MemberId;
use crate::chain::EventHash;
use crate::envelope::EventId;
use crate::family::Member;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// Everything recorded about one consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentState {
    pub grant: ConsentGranted,
    /// The professional (and organisation) who recorded the grant.
    pub recorded_by: crate::actor::Actor,
    /// When the grant was recorded: the day of the consent, for the age rule.
    pub given_at: DateTime<Utc>,
    /// The rule who must consent followed when it was given (`None`: the subject was not
    /// known then).
    pub given_under: Option<ConsentRule>,
    pub event_id: EventId,
    pub event_hash: EventHash,
    /// Each agreeing party, with when they agreed and how.
    pub agreements: BTreeMap<MemberId, (DateTime<Utc>, ConsentMethod)>,
    pub refusals: Vec<(MemberId, DateTime<Utc>, String)>,
    pub withdrawn: Option<(MemberId, DateTime<Utc>, String)>,
}

/// Why a consent does or does not grant access at a moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentStatus {
    Active,
    /// Waiting for these parties' agreement.
    Incomplete {
        missing: BTreeSet<MemberId>,
    },
    Refused {
        by: MemberId,
    },
    Withdrawn {
        by: MemberId,
        at: DateTime<Utc>,
    },
    NotYetValid {
        from: DateTime<Utc>,
    },
    Expired {
        at: DateTime<Utc>,
    },
    /// The subject crossed an age threshold since the consent was given; it was given under
    /// the old rule and now these parties must consent anew.
    AgeRuleChanged {
        given_under: ConsentRule,
        now: ConsentRule,
        must_consent: BTreeSet<MemberId>,
    },
}

impl ConsentStatus {
    pub fn is_active(&self) -> bool {
        matches!(self, Self::Active)
    }

    /// A short machine-readable name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Incomplete { .. } => "incomplete",
            Self::Refused { .. } => "refused",
            Self::Withdrawn { .. } => "withdrawn",
            Self::NotYetValid { .. } => "not_yet_valid",
            Self::Expired { .. } => "expired",
            Self::AgeRuleChanged { .. } => "age_rule_changed",
        }
    }

    /// A plain explanation for professionals.
    pub fn explain(&self) -> String {
        let list = |s: &BTreeSet<MemberId>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        match self {
            Self::Active => "in force".into(),
            Self::Incomplete { missing } if missing.is_empty() => format!("incomplete: {NOBODY_HOLDS_GEZAG}"),
            Self::Incomplete { missing } => format!("incomplete: still needs the agreement of {}", list(missing)),
            Self::Refused { by } => format!("refused by {by}"),
            Self::Withdrawn { by, at } => format!("withdrawn by {by} at {}", at.to_rfc3339()),
            Self::NotYetValid { from } => format!("not valid before {}", from.to_rfc3339()),
            Self::Expired { at } => format!("expired at {}", at.to_rfc3339()),
            Self::AgeRuleChanged { given_under, now, must_consent } if must_consent.is_empty() => format!(
                "given under the {} rule, but the {} rule applies now, and {NOBODY_HOLDS_GEZAG}",
                given_under.as_str(),
                now.as_str(),
            ),
            Self::AgeRuleChanged { given_under, now, must_consent } => format!(
                "given under the {} rule, but the {} rule applies now: {} must consent",
                given_under.as_str(),
                now.as_str(),
                list(must_consent)
            ),
        }
    }
}

impl ConsentState {
    /// The status at `at`, with `subject` as the family knows them then.
    pub fn status_at(&self, subject: &Member, at: DateTime<Utc>) -> ConsentStatus {
        if let Some((by, when, _)) = &self.withdrawn
            && *when <= at
        {
            return ConsentStatus::Withdrawn { by: by.clone(), at: *when };
        }
        let now = who_must_consent(subject, at.date_naive());
        if let Some((by, _, _)) = self.refusals.iter().find(|(by, when, _)| *when <= at && now.must_agree.contains(by))
        {
            return ConsentStatus::Refused { by: by.clone() };
        }
        if at < self.grant.valid_from {
            return ConsentStatus::NotYetValid { from: self.grant.valid_from };
        }
        if let Some(until) = self.grant.valid_until
            && until <= at
        {
            return ConsentStatus::Expired { at: until };
        }
        let given_under =
            self.given_under.unwrap_or_else(|| who_must_consent(subject, self.given_at.date_naive()).rule);
        if given_under != now.rule {
            return ConsentStatus::AgeRuleChanged { given_under, now: now.rule, must_consent: now.must_agree };
        }
        let missing: BTreeSet<MemberId> = now
            .must_agree
            .iter()
            .filter(|m| self.agreements.get(*m).is_none_or(|(when, _)| *when > at))
            .cloned()
            .collect();
        if missing.is_empty() && !now.must_agree.is_empty() {
            ConsentStatus::Active
        } else {
            ConsentStatus::Incomplete { missing }
        }
    }
}

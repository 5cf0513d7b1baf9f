//! Who must consent to sharing a member's data (DOMAIN.md "Who may consent"):
//!
//! | subject                | must agree                               |
//! |------------------------|------------------------------------------|
//! | a parent or carer      | that person                              |
//! | a child under 12       | every parent with gezag                  |
//! | a child of 12 to 15    | the child and every parent with gezag    |
//! | a young person 16+     | the young person alone                   |
//! | an unborn child        | the mother who carries it                |
//!
//! "Every parent with gezag" includes the guardian organisation under voogdij (BW 1:245,
//! 1:337a): a GI holding voogdij consents in the parents' place, through its gezinsvoogd,
//! as the party [`guardian_party`]; from 12 the child agrees too, from 16 alone.
//!
//! Age is counted in whole years on the given day, so the rule changes on the 12th and
//! 16th birthday.

use crate::case::{MemberId, MemberRole};
use crate::family::Member;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Which rule applies to a subject on a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentRule {
    OwnData,
    ChildUnder12,
    Child12To15,
    Young16Plus,
    UnbornChild,
}

impl ConsentRule {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OwnData => "own_data",
            Self::ChildUnder12 => "child_under_12",
            Self::Child12To15 => "child_12_to_15",
            Self::Young16Plus => "young_person_16_plus",
            Self::UnbornChild => "unborn_child",
        }
    }
}

/// The rule and the members who must all agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authority {
    pub rule: ConsentRule,
    pub must_agree: BTreeSet<MemberId>,
}

/// Why nobody can consent for a subject under the recorded facts, and which fact is missing.
pub const NOBODY_HOLDS_GEZAG: &str = "nobody can consent under the recorded facts: no member holds gezag over this child (record who does: a \
     GezagChanged event, or the guardian organisation under voogdij)";

impl Authority {
    /// "who must consent: a, b", or why nobody can: never an empty list.
    pub fn describe(&self) -> String {
        if self.must_agree.is_empty() {
            NOBODY_HOLDS_GEZAG.to_owned()
        } else {
            format!("who must consent: {}", self.must_agree.iter().cloned().collect::<Vec<_>>().join(", "))
        }
    }
}

/// Member ids never contain this; a party key with it is an organisation.
pub const GUARDIAN_PREFIX: &str = "guardian:";

/// The consent party of a guardian organisation (voogdij).
pub fn guardian_party(organisation_id: &str) -> MemberId {
    format!("{GUARDIAN_PREFIX}{organisation_id}")
}

/// The guardian organisation a party key names, if it names one.
pub fn guardian_organisation(party: &str) -> Option<&str> {
    party.strip_prefix(GUARDIAN_PREFIX)
}

/// Who must consent for `subject` on day `on`.
pub fn who_must_consent(subject: &Member, on: NaiveDate) -> Authority {
    let gezag = || {
        let Some(g) = subject.gezag.as_ref() else { return BTreeSet::new() };
        let mut parties = g.holders.clone();
        parties.extend(g.guardian_organisation_id.as_deref().map(guardian_party));
        parties
    };
    let own = || BTreeSet::from([subject.id.clone()]);
    match subject.role {
        MemberRole::Parent | MemberRole::Carer => Authority { rule: ConsentRule::OwnData, must_agree: own() },
        // No gezag before birth: data about the pregnancy is the pregnant mother's (records
        // made before this rule, without `carried_by`, keep their recorded gezag).
        MemberRole::UnbornChild => Authority {
            rule: ConsentRule::UnbornChild,
            must_agree: subject.carried_by.clone().map_or_else(gezag, |mother| BTreeSet::from([mother])),
        },
        MemberRole::Child => match age_on(subject, on) {
            Some(age) if age >= 16 => Authority { rule: ConsentRule::Young16Plus, must_agree: own() },
            Some(age) if age >= 12 => {
                let mut must = gezag();
                must.insert(subject.id.clone());
                Authority { rule: ConsentRule::Child12To15, must_agree: must }
            }
            _ => Authority { rule: ConsentRule::ChildUnder12, must_agree: gezag() },
        },
    }
}

/// Whole years of age on `on`; `None` without a birth date or before birth.
pub fn age_on(member: &Member, on: NaiveDate) -> Option<u32> {
    member.birth_date.and_then(|born| on.years_since(born))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::Gezag;

    fn child(born: NaiveDate, holders: &[&str]) -> Member {
        Member {
            id: "kind".into(),
            role: MemberRole::Child,
            display_name: String::new(),
            birth_date: Some(born),
            expected_birth_date: None,
            gezag: Some(Gezag {
                holders: holders.iter().map(|h| h.to_string()).collect(),
                guardian_organisation_id: None,
            }),
            contact_restricted: false,
            carried_by: None,
            no_contact: false,
        }
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn the_rule_changes_on_the_12th_and_16th_birthday() {
        let c = child(d(2010, 6, 15), &["ma", "pa"]);
        let names = |a: Authority| (a.rule, a.must_agree.into_iter().collect::<Vec<_>>());
        assert_eq!(
            names(who_must_consent(&c, d(2022, 6, 14))),
            (ConsentRule::ChildUnder12, vec!["ma".into(), "pa".into()])
        );
        assert_eq!(
            names(who_must_consent(&c, d(2022, 6, 15))),
            (ConsentRule::Child12To15, vec!["kind".into(), "ma".into(), "pa".into()])
        );
        assert_eq!(names(who_must_consent(&c, d(2026, 6, 14))).0, ConsentRule::Child12To15);
        assert_eq!(names(who_must_consent(&c, d(2026, 6, 15))), (ConsentRule::Young16Plus, vec!["kind".into()]));
    }

    #[test]
    fn a_leap_day_birthday_counts_from_the_first_of_march_in_common_years() {
        let c = child(d(2012, 2, 29), &["ma"]);
        assert_eq!(who_must_consent(&c, d(2024, 2, 28)).rule, ConsentRule::ChildUnder12);
        assert_eq!(who_must_consent(&c, d(2024, 2, 29)).rule, ConsentRule::Child12To15);
        assert_eq!(who_must_consent(&c, d(2028, 2, 28)).rule, ConsentRule::Child12To15);
        assert_eq!(who_must_consent(&c, d(2028, 2, 29)).rule, ConsentRule::Young16Plus);
    }
}

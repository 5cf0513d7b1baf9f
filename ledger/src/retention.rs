//! Retention clocks (Jeugdwet 7.3.8, WGBO 7:454 lid 3; NEN 7513): when each part of a family
//! record may go, and what a retention run would shred.
//!
//! - The **case record**: a period (20 years) from its last change.
//! - **Child protection records** (groups holding `child_protection`: OTS, voogdij): a period
//!   (30 years) from the 18th birthday of the youngest child they are about. A child without
//!   a known birth date keeps them.
//! - The **access log**: a period (5 years, the NEN 7513 minimum) from each line. Lines are
//!   sealed under one key per calendar year, which goes once the year's last day has passed
//!   the period: each line is kept at least the period, and at most a year longer. Lines
//!   written before the access log was sealed cannot be shredded; a run counts them.

use crate::family::FamilyState;
use crate::sealing::{KeyGroup, KeyId};
use crate::store::keys::StoredKey;
use chrono::{DateTime, Months, NaiveDate, Utc};

/// The retention periods, in years.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionPeriods {
    pub case_record_years: u32,
    pub child_protection_years_after_18: u32,
    pub access_log_years: u32,
}

impl Default for RetentionPeriods {
    fn default() -> Self {
        Self { case_record_years: 20, child_protection_years_after_18: 30, access_log_years: 5 }
    }
}

/// Which clock let a key go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetentionClock {
    CaseRecord,
    ChildProtection,
    AccessLog,
}

/// What one family's retention run shreds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    pub expired: Vec<(KeyId, RetentionClock)>,
    pub shredded_events: u64,
    /// Child protection groups kept because a child's birth date is unknown.
    pub kept_without_birth_date: usize,
    /// When the case record's clock started (its last change).
    pub case_record_last_change: Option<DateTime<Utc>>,
}

fn add_years(at: NaiveDate, years: u32) -> Option<NaiveDate> {
    at.checked_add_months(Months::new(years.saturating_mul(12)))
}

/// Plans the run for one family at `now`.
pub fn plan(state: &FamilyState, keys: &[StoredKey], periods: &RetentionPeriods, now: DateTime<Utc>) -> RetentionPlan {
    let today = now.date_naive();
    let mut plan = RetentionPlan::default();
    // The case record's last change: the latest case event outside child protection.
    let is_child_protection = |key: &Option<KeyId>| {
        key.and_then(|k| keys.iter().find(|s| s.key_id == k))
            .and_then(|s| KeyGroup::from_label(&s.label).ok())
            .is_some_and(|g| g.is_child_protection())
    };
    plan.case_record_last_change = state
        .items
        .iter()
        .filter(|i| !is_child_protection(&state.events.get(&i.event_id).and_then(|e| e.key)))
        .map(|i| i.recorded_at)
        .max();
    let case_expired = plan
        .case_record_last_change
        .and_then(|d| add_years(d.date_naive(), periods.case_record_years))
        .is_some_and(|until| today > until);
    type Groups = Vec<(KeyId, KeyGroup)>;
    let (access_log, groups): (Groups, Groups) = keys
        .iter()
        .filter(|k| !k.is_destroyed())
        .filter_map(|k| Some((k.key_id, KeyGroup::from_label(&k.label).ok()?)))
        .partition(|(_, g)| g.access_log_year().is_some());
    plan.expired.extend(
        access_log
            .iter()
            .filter(|(_, g)| g.access_log_year().is_some_and(|year| access_log_year_due(year, periods, now)))
            .map(|(k, _)| (*k, RetentionClock::AccessLog)),
    );
    // When each child protection group may go (None: kept, a birth date unknown).
    let protection_until = |group: &KeyGroup| -> Option<NaiveDate> {
        let births: Vec<Option<NaiveDate>> = group
            .subjects
            .iter()
            .filter_map(|s| state.members.get(s))
            .filter(|m| m.role == crate::case::MemberRole::Child)
            .map(|m| m.birth_date)
            .collect();
        let youngest = births.iter().copied().collect::<Option<Vec<_>>>()?.into_iter().max()?;
        add_years(youngest, 18 + periods.child_protection_years_after_18)
    };
    // A child's identity stays as long as a child protection record about them: that
    // record's own clock needs the birth date.
    let mut protected_children: std::collections::HashMap<&str, Option<NaiveDate>> = std::collections::HashMap::new();
    for (_, group) in groups.iter().filter(|(_, g)| g.is_child_protection()) {
        let until = protection_until(group);
        for s in &group.subjects {
            let entry = protected_children.entry(s.as_str()).or_insert(until);
            *entry = match (*entry, until) {
                (Some(a), Some(b)) => Some(a.max(b)),
                _ => None,
            };
        }
    }
    for (key_id, group) in &groups {
        let identity_of_protected = group.categories.contains(&crate::case::InformationCategory::Identity)
            && !group.subjects.is_empty()
            && group.subjects.iter().all(|s| protected_children.contains_key(s.as_str()));
        if group.is_child_protection() || identity_of_protected {
            let until = if group.is_child_protection() {
                protection_until(group)
            } else {
                group
                    .subjects
                    .iter()
                    .map(|s| protected_children.get(s.as_str()).copied().flatten())
                    .collect::<Option<Vec<_>>>()
                    .and_then(|u| u.into_iter().max())
            };
            match until {
                Some(until) if today > until => plan.expired.push((*key_id, RetentionClock::ChildProtection)),
                Some(_) => {}
                None => plan.kept_without_birth_date += 1,
            }
        } else if case_expired {
            plan.expired.push((*key_id, RetentionClock::CaseRecord));
        }
    }
    let expired: std::collections::HashSet<KeyId> = plan.expired.iter().map(|(k, _)| *k).collect();
    plan.shredded_events = state.events.values().filter(|e| e.key.is_some_and(|k| expired.contains(&k))).count() as u64;
    plan
}

/// Whether the access-log lines of `year` are all past their clock at `now`.
pub fn access_log_year_due(year: i32, periods: &RetentionPeriods, now: DateTime<Utc>) -> bool {
    NaiveDate::from_ymd_opt(year, 12, 31)
        .and_then(|last| add_years(last, periods.access_log_years))
        .is_some_and(|until| now.date_naive() > until)
}

/// Whether an access-log line recorded at `at` is past its clock at `now`.
pub fn access_log_line_due(at: DateTime<Utc>, periods: &RetentionPeriods, now: DateTime<Utc>) -> bool {
    add_years(at.date_naive(), periods.access_log_years).is_some_and(|until| now.date_naive() > until)
}

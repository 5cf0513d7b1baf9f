//! Erasure (AVG art. 17; Jeugdwet 7.3.9; WGBO 7:455) and the end of retention: what may be
//! shredded, what the law keeps, and the event that records it.
//!
//! An erasure destroys subject keys (see [`crate::sealing`]); the events stay, their content
//! unreadable for good. The erasure event itself names keys, counts, the legal ground and
//! who acted, never the subject or any content, so it can stay in the log forever.

use crate::actor::Actor;
use crate::case::{InformationCategory, MeasureKind, MemberId};
use crate::family::FamilyState;
use crate::sealing::{KeyGroup, KeyId, RecordKind};
use crate::store::keys::StoredKey;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The event type of an [`ErasureRecord`] in a family stream.
pub const EVENT_TYPE: &str = "erasure.recorded";

/// The law an erasure rests on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureGround {
    /// AVG art. 17: the right to erasure.
    Avg17,
    /// Jeugdwet art. 7.3.9: destruction of the youth care dossier on request.
    Jeugdwet739,
    /// WGBO art. 7:455: destruction of the medical file on request.
    Wgbo7455,
    /// The retention period ended (Jeugdwet 7.3.8, WGBO 7:454 lid 3).
    RetentionEnded,
}

/// Who asked, as a role: never a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestedBy {
    /// The subject.
    Subject,
    /// A parent or guardian with gezag, for a child.
    GezagHolder,
    /// Another legal representative (mentor, curator).
    LegalRepresentative,
    /// The retention run.
    RetentionRun,
}

/// What an erasure covered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureRecord {
    pub erasure_id: uuid::Uuid,
    pub ground: ErasureGround,
    pub requested_by: RequestedBy,
    /// The privacy officer who carried it out; `None` for a retention run.
    pub by: Option<Actor>,
    /// The categories asked for; empty: the whole record.
    pub categories: BTreeSet<InformationCategory>,
    /// The subject keys destroyed.
    pub destroyed_keys: Vec<KeyId>,
    /// How many events are shredded by it.
    pub shredded_events: u64,
    /// How many events in scope the law keeps (see [`Kept`]).
    pub kept_events: u64,
    pub at: DateTime<Utc>,
}

/// Why events in scope were kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kept {
    /// They also hold another member's data (Jeugdwet 7.3.9 lid 3, WGBO 7:455 lid 2).
    AnotherMembersData,
    /// Written before payloads were sealed: there is no key to destroy.
    StoredBeforeEncryption,
}

impl Kept {
    pub fn explanation(self) -> &'static str {
        match self {
            Self::AnotherMembersData => {
                "they also hold another family member's data, whose interest the law protects (Jeugdwet 7.3.9 lid 3, \
                 WGBO 7:455 lid 2)"
            }
            Self::StoredBeforeEncryption => "they were stored before payloads were encrypted and cannot be shredded",
        }
    }
}

/// What an erasure of one subject would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasurePlan {
    pub destroy: Vec<KeyId>,
    pub shredded_events: u64,
    pub kept: BTreeMap<Kept, u64>,
    /// The case events that go (for telling their earlier recipients).
    pub shredded_event_ids: Vec<uuid::Uuid>,
}

/// Why an erasure is refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErasureRefused {
    #[error("no member {0} in this family")]
    UnknownMember(String),
    #[error(
        "a child protection measure ({0}) is in force for this member or a child in their gezag; the certified \
         institution must keep the record while it runs (Jeugdwet 7.3.9, 7.3.11)"
    )]
    MeasureInForce(&'static str),
    #[error("nothing your organisation wrote about this member alone is in scope: {0}")]
    NothingToErase(String),
}

fn measure_name(kind: MeasureKind) -> &'static str {
    match kind {
        MeasureKind::Ots => "ots",
        MeasureKind::Voogdij => "voogdij",
        MeasureKind::Uithuisplaatsing => "uithuisplaatsing",
    }
}

/// Plans the erasure of what `author` wrote about `subject` (the categories given, or all).
///
/// # Errors
/// [`ErasureRefused`] for an unknown member, a measure in force, or nothing erasable.
pub fn plan(
    state: &FamilyState,
    keys: &[StoredKey],
    author: &str,
    subject: &MemberId,
    categories: &BTreeSet<InformationCategory>,
    at: DateTime<Utc>,
) -> Result<ErasurePlan, ErasureRefused> {
    if !state.members.contains_key(subject) {
        return Err(ErasureRefused::UnknownMember(subject.chars().take(32).collect()));
    }
    let in_their_gezag = |child: &MemberId| {
        child == subject
            || state.members.get(child).and_then(|c| c.gezag.as_ref()).is_some_and(|g| g.holders.contains(subject))
    };
    if let Some((_, m)) = state.measures.iter().find(|(id, m)| {
        matches!(m.kind, MeasureKind::Ots | MeasureKind::Voogdij)
            && state.measure_in_force(id, at)
            && in_their_gezag(&m.child)
    }) {
        return Err(ErasureRefused::MeasureInForce(measure_name(m.kind)));
    }
    // A category erasure takes case records only; consents and legal bases go with the whole.
    let in_scope = |group: &KeyGroup| {
        group.author == author
            && group.subjects.contains(subject)
            && (categories.is_empty()
                || (group.record == RecordKind::Case && !group.categories.is_disjoint(categories)))
    };
    let mut plan = ErasurePlan::default();
    let mut alone = std::collections::HashSet::new();
    let mut shared = std::collections::HashSet::new();
    for key in keys.iter().filter(|k| !k.is_destroyed()) {
        let Ok(group) = KeyGroup::from_label(&key.label) else { continue };
        if !in_scope(&group) {
            continue;
        }
        if group.subjects.len() == 1 {
            alone.insert(key.key_id);
            plan.destroy.push(key.key_id);
        } else {
            shared.insert(key.key_id);
        }
    }
    for (id, event) in &state.events {
        match event.key {
            Some(k) if alone.contains(&k) => {
                plan.shredded_events += 1;
                if event.event_type.starts_with("case.") {
                    plan.shredded_event_ids.push(*id);
                }
            }
            Some(k) if shared.contains(&k) => *plan.kept.entry(Kept::AnotherMembersData).or_default() += 1,
            _ => {}
        }
    }
    // Old plaintext items in scope have no key to destroy.
    let legacy = state
        .items
        .iter()
        .filter(|i| state.events.get(&i.event_id).is_some_and(|e| e.key.is_none()))
        .filter(|i| {
            i.author.organisation_id == author
                && i.event.subjects.contains(subject)
                && (categories.is_empty() || !i.event.categories.is_disjoint(categories))
        })
        .count() as u64;
    if legacy > 0 {
        plan.kept.insert(Kept::StoredBeforeEncryption, legacy);
    }
    if plan.destroy.is_empty() {
        let why = if plan.kept.is_empty() {
            "there are no such records".to_owned()
        } else {
            plan.kept.keys().map(|k| k.explanation()).collect::<Vec<_>>().join("; ")
        };
        return Err(ErasureRefused::NothingToErase(why));
    }
    plan.shredded_event_ids.sort();
    Ok(plan)
}

/// The notices an erasure sends (AVG art. 19): one per erased case item and organisation
/// that received it before, with ids derived from the erasure, item and recipient (a retry
/// writes each once).
pub fn notices(
    erased: &[&crate::family::CaseItem],
    erasure: &ErasureRecord,
    from: &Actor,
    access_log: &[(uuid::Uuid, crate::disclosure::AccessLogEvent)],
) -> Vec<(uuid::Uuid, crate::disclosure::Notice)> {
    use crate::disclosure::{AccessLogEvent, Notice, NoticeKind};
    let mut out = Vec::new();
    for item in erased {
        let author = item.author.organisation_id.as_str();
        let recipients: BTreeSet<&str> = access_log
            .iter()
            .filter_map(|(_, e)| match e {
                AccessLogEvent::Disclosed(d) if crate::correction::received(&[item], author, d) => {
                    Some(d.requester.organisation_id.as_str())
                }
                _ => None,
            })
            .collect();
        let cause = crate::correction::notice_id(erasure.erasure_id, &item.event_id.to_string());
        for recipient in recipients {
            let notice = Notice {
                kind: NoticeKind::Erasure,
                recipient_organisation_id: recipient.to_owned(),
                about_event_id: item.event_id,
                cause_event_id: erasure.erasure_id,
                from: from.clone(),
                at: erasure.at,
            };
            out.push((crate::correction::notice_id(cause, recipient), notice));
        }
    }
    out
}

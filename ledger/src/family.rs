//! A family as rebuilt from its stream: who the members are, who holds gezag, which events
//! exist. Append-time checks and (later) the dossier projection start from this state.

use crate::case::{CaseEventKind, CaseRecord, Gezag, MemberAdded, MemberId, MemberRole};
use crate::chain::EventHash;
use crate::codec::{self, DecodeError, FamilyEvent};
use crate::envelope::{EventId, RecordedEvent, StreamId};
use chrono::NaiveDate;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

/// Longest family id accepted.
pub const MAX_FAMILY_ID_LEN: usize = 64;

/// A family's id, chosen by the registering EPD (e.g. a UUID).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FamilyId(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("family id must be 1..={MAX_FAMILY_ID_LEN} characters of A-Z a-z 0-9 - _")]
pub struct InvalidFamilyId;

impl FamilyId {
    /// # Errors
    /// [`InvalidFamilyId`] for an empty, long or oddly spelled id.
    pub fn new(id: &str) -> Result<Self, InvalidFamilyId> {
        let ok = !id.is_empty()
            && id.len() <= MAX_FAMILY_ID_LEN
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok { Ok(Self(id.to_owned())) } else { Err(InvalidFamilyId) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stream holding this family's case events.
    pub fn stream(&self) -> StreamId {
        // The id's alphabet is a subset of the stream id's, and the length fits.
        StreamId::new(format!("family-{}", self.0)).unwrap_or_else(|_| unreachable!("family ids are valid stream ids"))
    }
}

impl fmt::Display for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A member as currently known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: MemberId,
    pub role: MemberRole,
    pub birth_date: Option<NaiveDate>,
    pub expected_birth_date: Option<NaiveDate>,
    pub gezag: Option<Gezag>,
    pub contact_restricted: bool,
}

impl From<&MemberAdded> for Member {
    fn from(m: &MemberAdded) -> Self {
        Self {
            id: m.member_id.clone(),
            role: m.role,
            birth_date: m.birth_date,
            expected_birth_date: m.expected_birth_date,
            gezag: m.gezag.clone(),
            contact_restricted: m.contact_restricted,
        }
    }
}

/// Where a stored event of this family stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRef {
    pub revision: u64,
    pub position: u64,
    pub event_type: String,
    pub hash: EventHash,
}

/// The family state after applying its stream up to `revision`.
#[derive(Debug, Clone, Default)]
pub struct FamilyState {
    /// Revision of the last applied event; `None` before the first.
    pub revision: Option<u64>,
    pub members: BTreeMap<MemberId, Member>,
    pub events: HashMap<EventId, EventRef>,
}

/// An event that does not fit the state it is applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("event at revision {found} applied to a family at revision {expected:?}")]
    OutOfOrder { expected: Option<u64>, found: u64 },
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

impl FamilyState {
    /// Applies the family stream's next event.
    ///
    /// # Errors
    /// [`ApplyError`] when the event is not the next revision or its payload cannot be read.
    pub fn apply(&mut self, event: &RecordedEvent) -> Result<(), ApplyError> {
        let expected = self.revision.map_or(0, |r| r + 1);
        if event.revision != expected {
            return Err(ApplyError::OutOfOrder { expected: self.revision, found: event.revision });
        }
        match codec::decode(event)? {
            FamilyEvent::Case(record) => self.apply_case(&record),
        }
        self.events.insert(
            event.event_id,
            EventRef {
                revision: event.revision,
                position: event.position,
                event_type: event.event_type.clone(),
                hash: event.hash,
            },
        );
        self.revision = Some(event.revision);
        Ok(())
    }

    fn apply_case(&mut self, record: &CaseRecord) {
        self.apply_kind(&record.event.kind);
    }

    /// The effect of one case event on members and gezag.
    pub(crate) fn apply_kind(&mut self, kind: &CaseEventKind) {
        match kind {
            CaseEventKind::MemberAdded(m) => {
                self.members.insert(m.member_id.clone(), Member::from(m));
            }
            CaseEventKind::GezagChanged { child, gezag, .. } => {
                if let Some(member) = self.members.get_mut(child) {
                    member.gezag = Some(gezag.clone());
                }
            }
            CaseEventKind::Correction(c) => {
                // A corrected member or gezag fact replaces the old one.
                if let Some(replacement) = &c.replacement
                    && matches!(**replacement, CaseEventKind::MemberAdded(_) | CaseEventKind::GezagChanged { .. })
                {
                    self.apply_kind(replacement);
                }
            }
            _ => {}
        }
    }
}

//! A family as rebuilt from its stream: who the members are, who holds gezag, which events
//! exist. Append-time checks and (later) the dossier projection start from this state.

use crate::actor::Actor;
use crate::case::{CaseEvent, CaseEventKind, CaseRecord, Gezag, MeasureKind, MemberAdded, MemberId, MemberRole};
use crate::chain::EventHash;
use crate::codec::{self, DecodeError, FamilyEvent};
use crate::consent::{ConsentEvent, ConsentRecord, ConsentState, LegalBasis};
use crate::envelope::{EventId, RecordedEvent, StreamId};
use crate::erasure::ErasureRecord;
use crate::sealing::{Content, KeyGroup, KeyId, Opener, SealError};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

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

    /// Family streams are named this prefix plus the family id.
    pub const STREAM_PREFIX: &str = "family-";

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The stream holding this family's case events.
    pub fn stream(&self) -> StreamId {
        // The id's alphabet is a subset of the stream id's, and the length fits.
        StreamId::new(format!("{}{}", Self::STREAM_PREFIX, self.0))
            .unwrap_or_else(|_| unreachable!("family ids are valid stream ids"))
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
    /// How the family refers to this member (for the member's own report).
    pub display_name: String,
    pub birth_date: Option<NaiveDate>,
    pub expected_birth_date: Option<NaiveDate>,
    pub gezag: Option<Gezag>,
    /// A contact ban or restraining order against this member.
    pub contact_restricted: bool,
    /// For an unborn child: who carries it.
    pub carried_by: Option<MemberId>,
    /// A parent with gezag but no contact with the child.
    pub no_contact: bool,
}

impl From<&MemberAdded> for Member {
    fn from(m: &MemberAdded) -> Self {
        Self {
            id: m.member_id.clone(),
            role: m.role,
            display_name: m.display_name.clone(),
            birth_date: m.birth_date,
            expected_birth_date: m.expected_birth_date,
            gezag: m.gezag.clone(),
            contact_restricted: m.contact_restricted,
            carried_by: m.carried_by.clone(),
            no_contact: m.no_contact,
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
    /// The subject key its payload is sealed under; `None` for an old plaintext payload.
    pub key: Option<KeyId>,
}

/// A case event whose content was erased: its key is destroyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasedItem {
    pub event_id: EventId,
    pub revision: u64,
    pub recorded_at: DateTime<Utc>,
    /// When its key was destroyed, where known.
    pub erased_at: Option<DateTime<Utc>>,
    /// Whose data it was (author, subjects, categories), where the key store still says.
    pub group: Option<KeyGroup>,
}

/// A case event as the dossier needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseItem {
    pub event_id: EventId,
    pub revision: u64,
    pub recorded_at: DateTime<Utc>,
    pub author: Actor,
    pub event: CaseEvent,
}

/// A legal basis as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegalBasisState {
    pub basis: LegalBasis,
    pub recorded_at: DateTime<Utc>,
    pub event_id: EventId,
    pub event_hash: EventHash,
}

/// A child protection measure as imposed (and perhaps ended).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeasureState {
    pub kind: MeasureKind,
    pub child: MemberId,
    pub certified_institution_id: String,
    pub valid_from: NaiveDate,
    pub valid_until: Option<NaiveDate>,
    pub ended_at: Option<DateTime<Utc>>,
}

/// The family state after applying its stream up to `revision`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FamilyState {
    /// Revision of the last applied event; `None` before the first.
    pub revision: Option<u64>,
    pub members: BTreeMap<MemberId, Member>,
    pub events: HashMap<EventId, EventRef>,
    /// Case events in stream order (shared, so snapshots are cheap to clone).
    pub items: Vec<Arc<CaseItem>>,
    /// The organisations that wrote a case item here: whether one takes part is asked per
    /// commit and per feed subscriber, so it must not scan the items.
    pub authors: std::collections::BTreeSet<String>,
    pub consents: BTreeMap<String, ConsentState>,
    pub legal_bases: BTreeMap<String, LegalBasisState>,
    pub measures: BTreeMap<String, MeasureState>,
    /// Case events whose content is shredded, in stream order.
    pub erased: Vec<ErasedItem>,
    /// Set when an erasure destroyed keys of events already applied: the state must be
    /// rebuilt from the start, so that nothing derived from them remains.
    pub needs_rebuild: bool,
    /// The keys whose payloads this state has read.
    pub read_keys: std::collections::HashSet<KeyId>,
    /// Restrictions of processing (AVG art. 18), by id.
    pub restrictions: BTreeMap<uuid::Uuid, crate::restriction::RestrictionState>,
    /// What this state holds in memory, estimated (see [`EVENT_OVERHEAD_BYTES`]): the
    /// family cache's bound counts it.
    pub approx_bytes: usize,
}

/// The memory an applied event takes beyond its payload, estimated from the memory
/// benchmark (about 1.5 KB per cached event of a ~300-byte note: maps, decoded items,
/// indexes).
pub const EVENT_OVERHEAD_BYTES: usize = 1_200;

/// An event that does not fit the state it is applied to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("event at revision {found} applied to a family at revision {expected:?}")]
    OutOfOrder { expected: Option<u64>, found: u64 },
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Sealed(#[from] SealError),
}

fn recorded_at(event: &RecordedEvent) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(event.recorded_at_micros).unwrap_or_default()
}

impl FamilyState {
    /// Applies the family stream's next event, opened through `opener`.
    ///
    /// # Errors
    /// [`ApplyError`] when the event is not the next revision or its payload cannot be read.
    pub fn apply(&mut self, event: &RecordedEvent, opener: &dyn Opener) -> Result<(), ApplyError> {
        self.check_next(event)?;
        let opened = opener.open(event)?;
        let record = match opened.content {
            Content::Plain(payload) => Some(codec::decode(event, &payload)?),
            Content::Shredded { erased_at_micros, group } => {
                // A shredded consent or legal basis grants nothing: it is simply not there.
                if event.event_type.starts_with("case.") {
                    self.erased.push(ErasedItem {
                        event_id: event.event_id,
                        revision: event.revision,
                        recorded_at: recorded_at(event),
                        erased_at: erased_at_micros.and_then(DateTime::from_timestamp_micros),
                        group,
                    });
                }
                None
            }
        };
        self.take(event, opened.key, record, opener);
        Ok(())
    }

    /// Applies an event this process has just committed, from the record it encoded into
    /// `event`'s payload: the state [`Self::apply`] would reach, without decrypting and
    /// parsing the payload again (on the append path that was about 7% of the CPU).
    ///
    /// # Errors
    /// [`ApplyError`] when the event is not the next revision or its sealed header is
    /// malformed.
    pub fn apply_written(
        &mut self,
        event: &RecordedEvent,
        record: FamilyEvent,
        opener: &dyn Opener,
    ) -> Result<(), ApplyError> {
        self.check_next(event)?;
        let key = crate::sealing::sealed_with(&event.payload)?;
        self.take(event, key, Some(record), opener);
        Ok(())
    }

    fn check_next(&self, event: &RecordedEvent) -> Result<(), ApplyError> {
        let expected = self.revision.map_or(0, |r| r + 1);
        if event.revision != expected {
            return Err(ApplyError::OutOfOrder { expected: self.revision, found: event.revision });
        }
        Ok(())
    }

    /// Takes in the next event, with its record when its content is readable.
    fn take(&mut self, event: &RecordedEvent, key: Option<KeyId>, record: Option<FamilyEvent>, opener: &dyn Opener) {
        if let Some(record) = record {
            self.read_keys.extend(key);
            let recorded_at = recorded_at(event);
            match record {
                FamilyEvent::Case(record) => self.apply_case(event, recorded_at, record),
                FamilyEvent::Consent(record) => self.apply_consent(event, recorded_at, record),
                FamilyEvent::Erasure(record) => self.apply_erasure(&record, opener),
                FamilyEvent::Restriction(record) => self.apply_restriction(record),
            }
        }
        self.events.insert(
            event.event_id,
            EventRef {
                revision: event.revision,
                position: event.position,
                event_type: event.event_type.clone(),
                hash: event.hash,
                key,
            },
        );
        self.revision = Some(event.revision);
        self.approx_bytes += event.payload.len() + EVENT_OVERHEAD_BYTES;
    }

    fn apply_restriction(&mut self, record: crate::restriction::RestrictionRecord) {
        use crate::restriction::{RestrictionRecord, RestrictionState};
        match record {
            RestrictionRecord::Applied { restriction_id, subject, categories, by, at } => {
                self.restrictions.entry(restriction_id).or_insert(RestrictionState {
                    restriction_id,
                    author: by.organisation_id,
                    subject,
                    categories,
                    applied_at: at,
                    lifted_at: None,
                });
            }
            RestrictionRecord::Lifted { restriction_id, at, .. } => {
                if let Some(r) = self.restrictions.get_mut(&restriction_id) {
                    r.lifted_at.get_or_insert(at);
                }
            }
        }
    }

    fn apply_erasure(&mut self, record: &ErasureRecord, opener: &dyn Opener) {
        opener.erased(&record.destroyed_keys, record.at.timestamp_micros());
        if record.destroyed_keys.iter().any(|k| self.read_keys.contains(k)) {
            self.needs_rebuild = true;
        }
    }

    fn apply_case(&mut self, event: &RecordedEvent, recorded_at: DateTime<Utc>, record: CaseRecord) {
        self.apply_kind(&record.event.kind);
        match &record.event.kind {
            CaseEventKind::MeasureImposed(m) => {
                self.measures.insert(
                    m.measure_id.clone(),
                    MeasureState {
                        kind: m.measure,
                        child: m.child.clone(),
                        certified_institution_id: m.certified_institution_id.clone(),
                        valid_from: m.valid_from,
                        valid_until: m.valid_until,
                        ended_at: None,
                    },
                );
            }
            CaseEventKind::MeasureEnded { measure_id, .. } => {
                if let Some(m) = self.measures.get_mut(measure_id) {
                    m.ended_at.get_or_insert(recorded_at);
                }
            }
            _ => {}
        }
        if !self.authors.contains(&record.author.organisation_id) {
            self.authors.insert(record.author.organisation_id.clone());
        }
        self.items.push(Arc::new(CaseItem {
            event_id: event.event_id,
            revision: event.revision,
            recorded_at,
            author: record.author,
            event: record.event,
        }));
    }

    fn apply_consent(&mut self, event: &RecordedEvent, recorded_at: DateTime<Utc>, record: ConsentRecord) {
        match record.event {
            ConsentEvent::Granted(grant) => {
                let agreements =
                    grant.given_by.iter().map(|m| (m.clone(), (recorded_at, grant.method.clone()))).collect();
                // The rule it was given under, as the family stood then (a birth changes the
                // member later, and must not change this).
                let given_under = self
                    .members
                    .get(&grant.subject)
                    .map(|m| crate::consent::authority::who_must_consent(m, recorded_at.date_naive()).rule);
                self.consents.insert(
                    grant.consent_id.clone(),
                    ConsentState {
                        grant,
                        recorded_by: record.recorded_by,
                        given_at: recorded_at,
                        given_under,
                        event_id: event.event_id,
                        event_hash: event.hash,
                        agreements,
                        refusals: Vec::new(),
                        withdrawn: None,
                    },
                );
            }
            ConsentEvent::AgreementAdded { consent_id, given_by, method } => {
                if let Some(c) = self.consents.get_mut(&consent_id) {
                    c.agreements.entry(given_by).or_insert((recorded_at, method));
                }
            }
            ConsentEvent::Refused { consent_id, refused_by, reason } => {
                if let Some(c) = self.consents.get_mut(&consent_id) {
                    c.refusals.push((refused_by, recorded_at, reason));
                }
            }
            ConsentEvent::Withdrawn { consent_id, withdrawn_by, reason } => {
                if let Some(c) = self.consents.get_mut(&consent_id) {
                    c.withdrawn.get_or_insert((withdrawn_by, recorded_at, reason));
                }
            }
            ConsentEvent::LegalBasis(basis) => {
                self.legal_bases.insert(
                    basis.basis_id.clone(),
                    LegalBasisState { basis, recorded_at, event_id: event.event_id, event_hash: event.hash },
                );
            }
        }
    }

    /// The case event with this id (items are in revision order, so found by its revision).
    pub fn item(&self, id: &EventId) -> Option<&Arc<CaseItem>> {
        let revision = self.events.get(id)?.revision;
        let at = self.items.binary_search_by_key(&revision, |i| i.revision).ok()?;
        self.items.get(at).filter(|i| i.event_id == *id)
    }

    /// The case items after `revision` (all of them with `None`).
    pub fn items_after(&self, revision: Option<u64>) -> &[Arc<CaseItem>] {
        let from = revision.map_or(0, |r| self.items.partition_point(|i| i.revision <= r));
        &self.items[from..]
    }

    /// Members whose own identity record was erased (they are members no more).
    pub fn erased_members(&self) -> std::collections::BTreeSet<&MemberId> {
        self.erased
            .iter()
            .filter_map(|e| e.group.as_ref())
            .filter(|g| g.subjects.len() == 1 && g.categories.contains(&crate::case::InformationCategory::Identity))
            .flat_map(|g| g.subjects.iter())
            .filter(|m| !self.members.contains_key(*m))
            .collect()
    }

    /// Whether a child protection measure is in force at `at`.
    pub fn measure_in_force(&self, measure_id: &str, at: DateTime<Utc>) -> bool {
        self.measures.get(measure_id).is_some_and(|m| {
            let day = at.date_naive();
            m.ended_at.is_none_or(|ended| at < ended)
                && m.valid_from <= day
                && m.valid_until.is_none_or(|until| day <= until)
        })
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
            CaseEventKind::Birth { child, born_on, gezag } => {
                if let Some(member) = self.members.get_mut(child) {
                    member.role = MemberRole::Child;
                    member.birth_date = Some(*born_on);
                    let mut gezag = gezag.clone();
                    if gezag.holders.is_empty() && gezag.guardian_organisation_id.is_none() {
                        // Unless the EPD records otherwise, the mother who carried the child.
                        gezag.holders.extend(member.carried_by.clone());
                    }
                    member.gezag = Some(gezag);
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

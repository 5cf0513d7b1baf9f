//! What the store hands back is not trusted: any event type and payload bytes go through
//! the readers a family replay and the verifier use (payload decoding, the sealed-payload
//! header, tree heads), which must refuse, never panic. And the canonical bytes that the
//! hash chain and the Merkle log commit to are injective: two different events never
//! share them.
#![no_main]

use arbitrary::Arbitrary;
use gezinsdossier_ledger::chain::EventHash;
use gezinsdossier_ledger::codec;
use gezinsdossier_ledger::envelope::{RecordedEvent, StreamId};
use gezinsdossier_ledger::sealing;
use gezinsdossier_ledger::treehead::SignedTreeHead;
use libfuzzer_sys::fuzz_target;

/// Every event type this build writes, so that inputs reach each reader, not just the
/// "unknown type" refusal.
const KNOWN_TYPES: &[&str] = &[
    "case.analysis", "case.birth", "case.case_closed", "case.coordinator_assigned", "case.correction",
    "case.crisis", "case.gezag_changed", "case.intake", "case.intervention_ended",
    "case.intervention_started", "case.mdo_held", "case.measure_ended", "case.measure_imposed",
    "case.member_added", "case.member_registered", "case.note", "case.plan_agreed",
    "case.referral_out", "case.registration", "case.shielding", "case.waiting_list",
    "consent.agreement_added", "consent.granted", "consent.legal_basis", "consent.refused",
    "consent.withdrawn", "erasure.recorded", "restriction.recorded", "log.tree_head",
];

#[derive(Debug, Arbitrary)]
enum EventType {
    Known(u8),
    Other(String),
}

#[derive(Debug, Arbitrary)]
struct Fields {
    stream: StreamChoice,
    revision: u64,
    position: u64,
    event_id: [u8; 16],
    event_type: EventType,
    recorded_at_micros: i64,
    payload: Vec<u8>,
    prev_hash: [u8; 32],
}

#[derive(Debug, Arbitrary)]
enum StreamChoice {
    Family(u8),
    Other(String),
}

impl Fields {
    fn event(&self) -> Option<RecordedEvent> {
        let stream = match &self.stream {
            StreamChoice::Family(n) => format!("family-f{n}"),
            StreamChoice::Other(s) => s.clone(),
        };
        let event_type = match &self.event_type {
            EventType::Known(n) => KNOWN_TYPES[usize::from(*n) % KNOWN_TYPES.len()].to_owned(),
            EventType::Other(s) => s.clone(),
        };
        Some(RecordedEvent {
            stream: StreamId::new(stream).ok()?,
            revision: self.revision,
            position: self.position,
            event_id: uuid::Uuid::from_bytes(self.event_id),
            event_type,
            recorded_at_micros: self.recorded_at_micros,
            payload: self.payload.clone(),
            prev_hash: EventHash::from_bytes(self.prev_hash),
            hash: EventHash::from_bytes([0; 32]),
        })
    }
}

fuzz_target!(|input: (Fields, Fields)| {
    let (a, b) = input;
    let Some(first) = a.event() else { return };
    let _ = codec::decode(&first, &first.payload);
    let _ = sealing::sealed_with(&first.payload);
    let _ = SignedTreeHead::from_event(&first).map(|head| head.root_hash());

    let Some(second) = b.event() else { return };
    // Position and stored hash are not part of the canonical bytes.
    let same_content = first.stream == second.stream
        && first.revision == second.revision
        && first.event_id == second.event_id
        && first.event_type == second.event_type
        && first.recorded_at_micros == second.recorded_at_micros
        && first.payload == second.payload
        && first.prev_hash == second.prev_hash;
    assert_eq!(same_content, first.canonical_bytes() == second.canonical_bytes());
});

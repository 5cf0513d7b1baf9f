//! The offline verifier over arbitrary store contents: a valid log (three families with a
//! signed tree head after every four events) is changed by arbitrary edits (a flipped byte
//! in any field, events swapped, dropped or repeated). The verifier must never panic, must
//! pass the log exactly when it is unchanged or only cut short, and must refuse every other
//! change: nothing here recomputes a hash, so every edit is tampering it has to see. The
//! same log as a flat export must pass when its canonical bytes are untouched, and may pass
//! an edit only beyond the last signed head.
#![no_main]

use arbitrary::Arbitrary;
use gezinsdossier_ledger::chain::{EventHash, hash_event};
use gezinsdossier_ledger::envelope::{CanonicalFields, RecordedEvent, StreamId};
use gezinsdossier_ledger::merkle::{CompactRange, leaf_hash};
use gezinsdossier_ledger::treehead::{self, SignedTreeHead, TreeHeadSigner};
use gezinsdossier_ledger::verify::{tree_head_events, verify_export, verify_log, write_export};
use libfuzzer_sys::fuzz_target;
use std::collections::HashMap;
use std::sync::OnceLock;

const FAMILY_EVENTS: usize = 12;

#[derive(Debug, Arbitrary)]
enum Edit {
    Payload { at: u8, byte: u16, xor: u8 },
    EventType { at: u8, to: String },
    RecordedAt { at: u8, add: i64 },
    Revision { at: u8, to: u64 },
    Position { at: u8, to: u64 },
    Stream { at: u8, to: u8 },
    EventId { at: u8, byte: u8, xor: u8 },
    PrevHash { at: u8, byte: u8, xor: u8 },
    Hash { at: u8, byte: u8, xor: u8 },
    Swap { a: u8, b: u8 },
    Remove { at: u8 },
    Repeat { at: u8 },
}

struct Fixture {
    public_key: Vec<u8>,
    events: Vec<RecordedEvent>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // A fixed key: the fuzzer's runs must be reproducible.
        let pkcs8 = include_bytes!("../fixtures/treehead.pkcs8");
        let signer = TreeHeadSigner::from_pkcs8(pkcs8).expect("fixture key");
        let mut heads: HashMap<StreamId, (u64, EventHash)> = HashMap::new();
        let mut range = CompactRange::new();
        let mut push = |stream: StreamId, event_type: &str, micros: i64, payload: Vec<u8>, events: &mut Vec<RecordedEvent>| {
            let (revision, prev_hash) = heads.get(&stream).map_or((0, EventHash::GENESIS), |(r, h)| (r + 1, *h));
            let event_id = uuid::Uuid::from_u128(events.len() as u128 + 1);
            let hash = hash_event(&CanonicalFields {
                stream: &stream,
                revision,
                event_id: &event_id,
                event_type,
                recorded_at_micros: micros,
                payload: &payload,
                prev_hash: &prev_hash,
            });
            heads.insert(stream.clone(), (revision, hash));
            let event = RecordedEvent {
                stream,
                revision,
                position: events.len() as u64,
                event_id,
                event_type: event_type.into(),
                recorded_at_micros: micros,
                payload,
                prev_hash,
                hash,
            };
            range.push(leaf_hash(&event.canonical_bytes()));
            events.push(event);
            (range.size(), range.root())
        };
        let mut log = Vec::new();
        for n in 0..FAMILY_EVENTS {
            let stream = StreamId::new(format!("family-f{}", n % 3)).expect("stream id");
            let micros = 1_790_000_000_000_000 + n as i64;
            let (size, root) = push(stream, "case.note", micros, format!("{{\"n\":{n}}}").into_bytes(), &mut log);
            if n % 4 == 3 {
                let head = signer.sign(size, &root, micros);
                let payload = serde_json::to_vec(&head).expect("head json");
                push(treehead::stream(), treehead::EVENT_TYPE, micros, payload, &mut log);
            }
        }
        Fixture { public_key: signer.public_key().to_vec(), events: log }
    })
}

fn apply(events: &mut Vec<RecordedEvent>, edit: &Edit) {
    let pick = |at: u8, len: usize| (len > 0).then(|| usize::from(at) % len);
    let len = events.len();
    match *edit {
        Edit::Payload { at, byte, xor } => {
            if let Some(e) = pick(at, len).map(|i| &mut events[i]) {
                if !e.payload.is_empty() {
                    let i = usize::from(byte) % e.payload.len();
                    e.payload[i] ^= xor;
                }
            }
        }
        Edit::EventType { at, ref to } => {
            if let Some(i) = pick(at, len) {
                events[i].event_type = to.clone();
            }
        }
        Edit::RecordedAt { at, add } => {
            if let Some(i) = pick(at, len) {
                events[i].recorded_at_micros = events[i].recorded_at_micros.wrapping_add(add);
            }
        }
        Edit::Revision { at, to } => {
            if let Some(i) = pick(at, len) {
                events[i].revision = to;
            }
        }
        Edit::Position { at, to } => {
            if let Some(i) = pick(at, len) {
                events[i].position = to;
            }
        }
        Edit::Stream { at, to } => {
            if let Some(i) = pick(at, len) {
                events[i].stream = StreamId::new(format!("family-f{}", to % 5)).expect("stream id");
            }
        }
        Edit::EventId { at, byte, xor } => {
            if let Some(i) = pick(at, len) {
                let mut bytes = *events[i].event_id.as_bytes();
                bytes[usize::from(byte) % 16] ^= xor;
                events[i].event_id = uuid::Uuid::from_bytes(bytes);
            }
        }
        Edit::PrevHash { at, byte, xor } | Edit::Hash { at, byte, xor } => {
            if let Some(i) = pick(at, len) {
                let field = if matches!(edit, Edit::Hash { .. }) { &mut events[i].hash } else { &mut events[i].prev_hash };
                let mut bytes = *field.as_bytes();
                bytes[usize::from(byte) % 32] ^= xor;
                *field = EventHash::from_bytes(bytes);
            }
        }
        Edit::Swap { a, b } => {
            if let (Some(a), Some(b)) = (pick(a, len), pick(b, len)) {
                events.swap(a, b);
            }
        }
        Edit::Remove { at } => {
            if let Some(i) = pick(at, len) {
                events.remove(i);
            }
        }
        Edit::Repeat { at } => {
            if let Some(i) = pick(at, len) {
                let copy = events[i].clone();
                events.insert(i, copy);
            }
        }
    }
}

fuzz_target!(|edits: Vec<Edit>| {
    let fixture = fixture();
    let mut events = fixture.events.clone();
    for edit in edits.iter().take(8) {
        apply(&mut events, edit);
    }
    let heads = tree_head_events(&events);
    let result = verify_log(&fixture.public_key, &heads, events.iter().cloned().map(Ok::<_, String>));
    let cut_short = fixture.events.starts_with(&events);
    match result {
        Ok(report) => {
            assert!(cut_short, "tampering passed verification: {edits:?}");
            assert_eq!(report.events, events.len() as u64);
        }
        // A prefix of a valid log is a valid log.
        Err(tampering) => assert!(!cut_short, "an untouched log (or a prefix of one) was refused: {tampering}"),
    }
    // The same log as a flat export, which holds canonical bytes only (positions are the
    // order, hashes are recomputed). An untouched log or a prefix of one must pass. An
    // edited one may pass only where no signed head reaches: there the export holds no
    // stored hash to differ from, and the last event of a stream links to nothing.
    let mut export = Vec::new();
    write_export(&heads, events.iter().cloned().map(Ok::<_, String>), &mut export).expect("export to memory");
    let result = verify_export(&fixture.public_key, || Ok::<_, std::io::Error>(export.as_slice()), None);
    let canonical = |events: &[RecordedEvent]| events.iter().map(RecordedEvent::canonical_bytes).collect::<Vec<_>>();
    let (untouched, edited) = (canonical(&fixture.events), canonical(&events));
    match result {
        Ok(_) => {
            // Every head passed its signature check, so their sizes can be trusted.
            let signed = heads.iter().filter_map(|h| SignedTreeHead::from_event(h).ok()).map(|h| h.size).max();
            let signed = usize::try_from(signed.unwrap_or(0)).unwrap_or(usize::MAX).min(edited.len());
            assert!(untouched.starts_with(&edited[..signed]), "the export passed an edit under a signed head: {edits:?}");
        }
        Err(tampering) => assert!(!untouched.starts_with(&edited), "an untouched export was refused: {tampering}"),
    }
});

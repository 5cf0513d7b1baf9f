//! How domain events become envelope payloads and back: the event type says what the
//! payload is, the payload is JSON.

use crate::case::CaseRecord;
use crate::consent::ConsentRecord;
use crate::envelope::RecordedEvent;
use crate::erasure::ErasureRecord;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Anything stored in a family stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FamilyEvent {
    Case(CaseRecord),
    Consent(ConsentRecord),
    Erasure(ErasureRecord),
    Restriction(crate::restriction::RestrictionRecord),
}

/// A stored payload that this build cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    #[error("payload of {event_type} at revision {revision} is not valid: {detail}")]
    BadPayload { event_type: String, revision: u64, detail: String },
}

/// The event type and payload under which a case record is stored.
pub fn encode_case(record: &CaseRecord) -> (String, Vec<u8>) {
    (record.event.kind.event_type().to_owned(), to_json(record))
}

/// The event type and payload under which a consent-ledger record is stored.
pub fn encode_consent(record: &ConsentRecord) -> (String, Vec<u8>) {
    (record.event.event_type().to_owned(), to_json(record))
}

/// Serialises plain data; our types (string-keyed maps, no floats) cannot fail to encode.
pub fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// Reads a family-stream event from its opened payload (see [`crate::sealing`]).
///
/// # Errors
/// [`DecodeError`] for an unknown type or an unreadable payload.
pub fn decode(event: &RecordedEvent, payload: &[u8]) -> Result<FamilyEvent, DecodeError> {
    if event.event_type.starts_with("case.") {
        return decode_as(event, payload, |r: &CaseRecord| r.event.kind.event_type()).map(FamilyEvent::Case);
    }
    if event.event_type.starts_with("consent.") {
        return decode_as(event, payload, |r: &ConsentRecord| r.event.event_type()).map(FamilyEvent::Consent);
    }
    if event.event_type == crate::erasure::EVENT_TYPE {
        return decode_as(event, payload, |_: &ErasureRecord| crate::erasure::EVENT_TYPE).map(FamilyEvent::Erasure);
    }
    if event.event_type == crate::restriction::EVENT_TYPE {
        return decode_as(event, payload, |_: &crate::restriction::RestrictionRecord| crate::restriction::EVENT_TYPE)
            .map(FamilyEvent::Restriction);
    }
    Err(DecodeError::UnknownType(event.event_type.clone()))
}

/// Parses `payload` as `T` and checks that it is the kind its event type says.
///
/// # Errors
/// [`DecodeError::BadPayload`] when it does not parse or holds another kind.
pub fn decode_as<T: DeserializeOwned>(
    event: &RecordedEvent,
    payload: &[u8],
    type_of: fn(&T) -> &'static str,
) -> Result<T, DecodeError> {
    let bad = |detail: String| DecodeError::BadPayload {
        event_type: event.event_type.clone(),
        revision: event.revision,
        detail,
    };
    let record: T = serde_json::from_slice(payload).map_err(|e| bad(e.to_string()))?;
    let holds = type_of(&record);
    if holds != event.event_type {
        return Err(bad(format!("payload holds a {holds}")));
    }
    Ok(record)
}

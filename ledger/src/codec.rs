//! How domain events become envelope payloads and back: the event type says what the
//! payload is, the payload is JSON.

use crate::case::CaseRecord;
use crate::envelope::RecordedEvent;

/// Anything stored in a family stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FamilyEvent {
    Case(CaseRecord),
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
    // Serialising plain data structs into a Vec cannot fail.
    let payload = serde_json::to_vec(record).unwrap_or_default();
    (record.event.kind.event_type().to_owned(), payload)
}

/// Reads a family-stream event.
///
/// # Errors
/// [`DecodeError`] for an unknown type or an unreadable payload.
pub fn decode(event: &RecordedEvent) -> Result<FamilyEvent, DecodeError> {
    let bad = |e: serde_json::Error| DecodeError::BadPayload {
        event_type: event.event_type.clone(),
        revision: event.revision,
        detail: e.to_string(),
    };
    if event.event_type.starts_with("case.") {
        let record: CaseRecord = serde_json::from_slice(&event.payload).map_err(bad)?;
        if record.event.kind.event_type() != event.event_type {
            return Err(DecodeError::BadPayload {
                event_type: event.event_type.clone(),
                revision: event.revision,
                detail: format!("payload holds a {}", record.event.kind.event_type()),
            });
        }
        return Ok(FamilyEvent::Case(record));
    }
    Err(DecodeError::UnknownType(event.event_type.clone()))
}

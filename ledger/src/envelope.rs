//! The event envelope: what every stored event is, and its canonical bytes.
//!
//! The canonical bytes are what the hash chain and (later) the Merkle log commit to. They
//! hold everything that identifies the event except its global position, which some engines
//! (KurrentDB, PostgreSQL) only assign at commit; the position is fixed instead by the
//! event's place in the global log.

use crate::chain::EventHash;
use std::fmt;
use uuid::Uuid;

/// Version tag of the canonical byte layout. Bump it when the layout changes.
pub const CANONICAL_FORMAT_V1: u8 = 1;

/// Longest stream name accepted, in bytes.
pub const MAX_STREAM_ID_LEN: usize = 200;

/// The name of one ordered stream of events, e.g. `family-8f3c…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId(String);

/// Why a stream name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stream id must be 1..={MAX_STREAM_ID_LEN} characters of A-Z a-z 0-9 - _ . : (got {got:?})")]
pub struct InvalidStreamId {
    pub got: String,
}

impl StreamId {
    /// # Errors
    /// [`InvalidStreamId`] when the name is empty, too long, or uses other characters.
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidStreamId> {
        let name = name.into();
        let ok = !name.is_empty()
            && name.len() <= MAX_STREAM_ID_LEN
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if ok { Ok(Self(name)) } else { Err(InvalidStreamId { got: name }) }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The client-chosen identity of an event; retrying with the same id is idempotent.
pub type EventId = Uuid;

/// What the append path needs to know about the stream before writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedRevision {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this revision.
    Exact(u64),
}

impl fmt::Display for ExpectedRevision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream => f.write_str("no stream"),
            Self::Exact(n) => write!(f, "revision {n}"),
        }
    }
}

/// An event offered for appending. The store assigns revision, position and hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposedEvent {
    pub event_id: EventId,
    pub event_type: String,
    /// Microseconds since the Unix epoch, set by the service when it accepted the request.
    pub recorded_at_micros: i64,
    pub payload: Vec<u8>,
}

impl ProposedEvent {
    /// Whether a stored event carries the same content. The recording time is left out: a
    /// retry is accepted later than the original by definition.
    pub fn same_content_as(&self, stored: &RecordedEvent) -> bool {
        self.event_id == stored.event_id && self.event_type == stored.event_type && self.payload == stored.payload
    }
}

/// An event as it stands in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub stream: StreamId,
    /// 0-based place in its stream.
    pub revision: u64,
    /// 0-based, gapless place in the global log.
    pub position: u64,
    pub event_id: EventId,
    pub event_type: String,
    pub recorded_at_micros: i64,
    pub payload: Vec<u8>,
    /// Hash of the previous event in the same stream ([`EventHash::GENESIS`] for the first).
    pub prev_hash: EventHash,
    /// Hash of this event's canonical bytes.
    pub hash: EventHash,
}

impl RecordedEvent {
    /// The canonical bytes of this event (see [`canonical_bytes`]).
    pub fn canonical_bytes(&self) -> Vec<u8> {
        canonical_bytes(&CanonicalFields {
            stream: &self.stream,
            revision: self.revision,
            event_id: &self.event_id,
            event_type: &self.event_type,
            recorded_at_micros: self.recorded_at_micros,
            payload: &self.payload,
            prev_hash: &self.prev_hash,
        })
    }
}

/// The fields that make up an event's canonical bytes.
#[derive(Debug, Clone, Copy)]
pub struct CanonicalFields<'a> {
    pub stream: &'a StreamId,
    pub revision: u64,
    pub event_id: &'a EventId,
    pub event_type: &'a str,
    pub recorded_at_micros: i64,
    pub payload: &'a [u8],
    pub prev_hash: &'a EventHash,
}

/// Serialises an event unambiguously: a version byte, then each field either fixed-width or
/// prefixed with its length (u32, big-endian). Two different events never share bytes.
pub fn canonical_bytes(f: &CanonicalFields<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        1 + 4 + f.stream.as_str().len() + 8 + 16 + 4 + f.event_type.len() + 8 + 4 + f.payload.len() + 32,
    );
    out.push(CANONICAL_FORMAT_V1);
    put_prefixed(&mut out, f.stream.as_str().as_bytes());
    out.extend_from_slice(&f.revision.to_be_bytes());
    out.extend_from_slice(f.event_id.as_bytes());
    put_prefixed(&mut out, f.event_type.as_bytes());
    out.extend_from_slice(&f.recorded_at_micros.to_be_bytes());
    put_prefixed(&mut out, f.payload);
    out.extend_from_slice(f.prev_hash.as_bytes());
    out
}

/// The fields of canonical bytes, borrowed from them ([`parse_canonical`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanonicalView<'a> {
    pub stream: &'a str,
    pub revision: u64,
    pub event_id: Uuid,
    pub event_type: &'a str,
    pub recorded_at_micros: i64,
    pub payload: &'a [u8],
    pub prev_hash: EventHash,
}

/// Reads canonical bytes back into their fields, the inverse of [`canonical_bytes`] (for
/// verifying an export of them).
///
/// # Errors
/// A sentence naming what does not fit the layout.
pub fn parse_canonical(bytes: &[u8]) -> Result<CanonicalView<'_>, String> {
    struct Cursor<'a>(&'a [u8]);
    impl<'a> Cursor<'a> {
        fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
            if self.0.len() < n {
                return Err(format!("canonical bytes end inside the {what}"));
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Ok(head)
        }
        fn fixed<const N: usize>(&mut self, what: &str) -> Result<[u8; N], String> {
            self.take(N, what)?.try_into().map_err(|_| format!("canonical bytes: bad {what}"))
        }
        fn prefixed(&mut self, what: &str) -> Result<&'a [u8], String> {
            let len = u32::from_be_bytes(self.fixed(what)?) as usize;
            self.take(len, what)
        }
        fn text(&mut self, what: &str) -> Result<&'a str, String> {
            std::str::from_utf8(self.prefixed(what)?).map_err(|_| format!("canonical bytes: the {what} is not UTF-8"))
        }
    }
    let mut c = Cursor(bytes);
    if c.fixed::<1>("format version")? != [CANONICAL_FORMAT_V1] {
        return Err("canonical bytes of an unknown format version".into());
    }
    let view = CanonicalView {
        stream: c.text("stream name")?,
        revision: u64::from_be_bytes(c.fixed("revision")?),
        event_id: Uuid::from_bytes(c.fixed("event id")?),
        event_type: c.text("event type")?,
        recorded_at_micros: i64::from_be_bytes(c.fixed("recorded-at time")?),
        payload: c.prefixed("payload")?,
        prev_hash: EventHash::from_bytes(c.fixed("previous hash")?),
    };
    if !c.0.is_empty() {
        return Err("canonical bytes go on past the previous hash".into());
    }
    Ok(view)
}

fn put_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    // Lengths above u32::MAX cannot occur: request limits cap payloads far below that.
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_bytes_parse_back_into_their_fields_and_nothing_else_does() {
        let stream = StreamId::new("family-abc").unwrap();
        let id = Uuid::new_v4();
        let prev = EventHash::from_bytes([7; 32]);
        let fields = CanonicalFields {
            stream: &stream,
            revision: 9,
            event_id: &id,
            event_type: "case.note_added",
            recorded_at_micros: -5,
            payload: b"\x00GZS...",
            prev_hash: &prev,
        };
        let bytes = canonical_bytes(&fields);
        let view = parse_canonical(&bytes).unwrap();
        assert_eq!(
            (
                view.stream,
                view.revision,
                view.event_id,
                view.event_type,
                view.recorded_at_micros,
                view.payload,
                view.prev_hash
            ),
            ("family-abc", 9, id, "case.note_added", -5, &b"\x00GZS..."[..], prev)
        );
        for cut in [0, 1, 5, bytes.len() - 1] {
            assert!(parse_canonical(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse_canonical(&[bytes.as_slice(), b"x"].concat()).unwrap_err().contains("past the previous hash"));
    }

    #[test]
    fn stream_ids_are_checked() {
        assert!(StreamId::new("family-abc_1.2:3").is_ok());
        assert!(StreamId::new("").is_err());
        assert!(StreamId::new("a b").is_err());
        assert!(StreamId::new("x".repeat(MAX_STREAM_ID_LEN + 1)).is_err());
    }

    #[test]
    fn field_boundaries_are_unambiguous() {
        let s1 = StreamId::new("ab").unwrap();
        let s2 = StreamId::new("a").unwrap();
        let id = Uuid::nil();
        let h = EventHash::GENESIS;
        let a = canonical_bytes(&CanonicalFields {
            stream: &s1,
            revision: 0,
            event_id: &id,
            event_type: "c",
            recorded_at_micros: 0,
            payload: b"",
            prev_hash: &h,
        });
        let b = canonical_bytes(&CanonicalFields {
            stream: &s2,
            revision: 0,
            event_id: &id,
            event_type: "bc",
            recorded_at_micros: 0,
            payload: b"",
            prev_hash: &h,
        });
        assert_ne!(a, b);
    }
}

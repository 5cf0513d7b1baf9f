//! Pure translation between the store model and KurrentDB's: stream names, the metadata that
//! carries the hash chain, expected revisions and errors. No I/O, so every rule here is
//! unit-tested without a server.

use crate::chain::EventHash;
use crate::envelope::{ProposedEvent, RecordedEvent, StreamId};
use crate::store::{Link, StoreError};
use bytes::Bytes;
use kurrentdb::{CurrentRevision, EventData, StreamState};
use uuid::Uuid;

/// Layout version of [`ChainMetadata`].
const METADATA_VERSION: u8 = 1;

/// The KurrentDB stream-name space one deployment owns. Our stream `family-x` is stored as
/// `{namespace}:family-x`, so one server-side prefix filter selects exactly our events on
/// `$all`, and test runs or tenants sharing a cluster never see each other's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    prefix: String,
}

impl Namespace {
    /// # Errors
    /// [`StoreError::Backend`] unless the name is 1..=64 of `a-z 0-9 _`. (`$` would make
    /// KurrentDB treat the streams as system streams.)
    pub fn new(name: &str) -> Result<Self, StoreError> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self { prefix: format!("{name}:") })
        } else {
            Err(StoreError::Backend(format!("kurrentdb namespace {name:?} must be 1 to 64 of a-z, 0-9 and _")))
        }
    }

    /// The prefix every stream of this namespace starts with, for `$all` filters.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The prefix of this namespace's key streams: outside [`Self::prefix`], so that keys
    /// never enter the log.
    pub fn key_prefix(&self) -> String {
        format!("{}-key:", self.prefix.trim_end_matches(':'))
    }

    /// The KurrentDB stream that holds `stream`.
    pub fn stream_name(&self, stream: &StreamId) -> String {
        format!("{}{}", self.prefix, stream.as_str())
    }

    /// Our stream behind a KurrentDB stream name.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] for a name outside the namespace or not a valid stream id.
    pub fn stream_id(&self, stream_name: &str) -> Result<StreamId, StoreError> {
        let inner = stream_name.strip_prefix(&self.prefix).ok_or_else(|| {
            StoreError::Corrupt(format!("stream {stream_name:?} is outside namespace {}", self.prefix))
        })?;
        StreamId::new(inner).map_err(|e| StoreError::Corrupt(format!("stream {stream_name:?}: {e}")))
    }
}

/// What KurrentDB does not hold natively: the recording time and the hash chain. Stored as
/// the event's custom metadata, in JSON so operators can read it in the KurrentDB UI.
#[derive(Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainMetadata {
    v: u8,
    recorded_at_micros: i64,
    prev_hash: String,
    hash: String,
}

/// The KurrentDB event for `event`, chained by `link`. The event id is ours, so KurrentDB's
/// own idempotency applies to a repeated append at the same expected revision.
pub fn encode_event(event: &ProposedEvent, link: &Link) -> EventData {
    EventData::binary(event.event_type.clone(), Bytes::copy_from_slice(&event.payload))
        .id(event.event_id)
        .metadata(Bytes::from(chain_metadata(event, link)))
}

/// The custom metadata bytes [`encode_event`] stores.
fn chain_metadata(event: &ProposedEvent, link: &Link) -> Vec<u8> {
    let metadata = ChainMetadata {
        v: METADATA_VERSION,
        recorded_at_micros: event.recorded_at_micros,
        prev_hash: link.prev_hash.to_hex(),
        hash: link.hash.to_hex(),
    };
    // Serialising a struct of integers and strings cannot fail.
    serde_json::to_vec(&metadata).unwrap_or_default()
}

/// The parts of a stored KurrentDB event that the store reads. (KurrentDB's own
/// `RecordedEvent` cannot be built outside its crate, so the mapping takes the parts.)
#[derive(Debug, Clone, Copy)]
pub struct StoredParts<'a> {
    pub stream_name: &'a str,
    pub id: Uuid,
    pub revision: u64,
    pub event_type: &'a str,
    pub data: &'a [u8],
    pub custom_metadata: &'a [u8],
}

impl<'a> StoredParts<'a> {
    pub fn of(event: &'a kurrentdb::RecordedEvent) -> Self {
        Self {
            stream_name: event.stream_id(),
            id: event.id,
            revision: event.revision,
            event_type: &event.event_type,
            data: &event.data,
            custom_metadata: &event.custom_metadata,
        }
    }
}

/// Our event from a stored KurrentDB event at global ordinal `position`. The stored hashes
/// are carried as they are: checking them is the verifier's job, which must see tampering.
///
/// # Errors
/// [`StoreError::Corrupt`] for a foreign stream or missing/unreadable chain metadata.
pub fn decode_event(ns: &Namespace, parts: StoredParts<'_>, position: u64) -> Result<RecordedEvent, StoreError> {
    let stream = ns.stream_id(parts.stream_name)?;
    let chain = chain_of(parts)?;
    Ok(RecordedEvent {
        stream,
        revision: parts.revision,
        position,
        event_id: parts.id,
        event_type: parts.event_type.to_string(),
        recorded_at_micros: chain.recorded_at_micros,
        payload: parts.data.to_vec(),
        prev_hash: chain.prev_hash,
        hash: chain.hash,
    })
}

/// What a stored event's metadata says of its place in the hash chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    pub recorded_at_micros: i64,
    pub prev_hash: EventHash,
    pub hash: EventHash,
}

/// Reads the chain metadata of a stored event without copying its payload.
///
/// # Errors
/// [`StoreError::Corrupt`] naming the stream, revision and what is wrong.
pub fn chain_of(parts: StoredParts<'_>) -> Result<Chain, StoreError> {
    let corrupt =
        |why: String| StoreError::Corrupt(format!("{} revision {}: {why}", parts.stream_name, parts.revision));
    let meta: ChainMetadata =
        serde_json::from_slice(parts.custom_metadata).map_err(|e| corrupt(format!("chain metadata: {e}")))?;
    if meta.v != METADATA_VERSION {
        return Err(corrupt(format!("chain metadata version {} (this build reads {METADATA_VERSION})", meta.v)));
    }
    let hash = |hex: &str, field: &str| {
        hex::decode(hex)
            .ok()
            .and_then(|b| EventHash::try_from_slice(&b).ok())
            .ok_or_else(|| corrupt(format!("{field} is not a 32-byte hex hash")))
    };
    Ok(Chain {
        recorded_at_micros: meta.recorded_at_micros,
        prev_hash: hash(&meta.prev_hash, "prev_hash")?,
        hash: hash(&meta.hash, "hash")?,
    })
}

/// The expected state an append sends: always exact. KurrentDB deduplicates event ids
/// reliably only against an expected revision, and the hash chain was computed against this
/// very head, so `Any` is never sent; the caller's own expectation is checked beforehand.
pub fn expected_state(head: Option<u64>) -> StreamState {
    head.map_or(StreamState::NoStream, StreamState::StreamRevision)
}

/// What a failed KurrentDB call means for the store.
#[derive(Debug, PartialEq, Eq)]
pub enum Failure {
    /// Another writer moved the stream since its head was read: read again and re-decide.
    Raced { current: Option<u64> },
    /// The stream does not exist (reads only): it reads as empty.
    NoStream,
    /// Anything else, as the store reports it.
    Store(StoreError),
}

/// Classifies a KurrentDB error; the message names what an operator should look at.
pub fn translate(error: kurrentdb::Error) -> Failure {
    use kurrentdb::Error as K;
    let backend = |what: String| Failure::Store(StoreError::Backend(format!("kurrentdb: {what}")));
    match error {
        K::WrongExpectedVersion { current, .. } => Failure::Raced {
            current: match current {
                CurrentRevision::Current(r) => Some(r),
                CurrentRevision::NoStream => None,
            },
        },
        K::ResourceNotFound => Failure::NoStream,
        K::AccessDenied => backend("access denied; check the user or certificate in the connection string".into()),
        K::ResourceDeleted => {
            Failure::Store(StoreError::Corrupt("kurrentdb: a stream of this namespace was deleted".into()))
        }
        K::NotLeaderException(leader) => {
            backend(format!("this node is not the leader (leader is {}:{}); retry", leader.host, leader.port))
        }
        K::DeadlineExceeded => backend("deadline exceeded".into()),
        K::ConnectionClosed | K::GrpcConnectionError(_) => backend(format!("not reachable: {error}")),
        other => backend(other.to_string()),
    }
}

/// Classifies the failure of an append that was sent: a broken connection or a deadline
/// leaves its outcome unknown (the cluster may have written it before the reply was lost).
pub fn translate_append(error: kurrentdb::Error) -> Failure {
    use kurrentdb::Error as K;
    match error {
        K::DeadlineExceeded | K::ConnectionClosed | K::GrpcConnectionError(_) => {
            Failure::Store(StoreError::OutcomeUnknown(format!(
                "kurrentdb: the append was sent, then {error}; it may have been written"
            )))
        }
        other => translate(other),
    }
}

/// Converts a KurrentDB error where a race or missing stream is not expected.
pub fn store_error(error: kurrentdb::Error) -> StoreError {
    translate(error).into_store_error()
}

impl Failure {
    /// The store error for a failure the caller has no special handling for.
    pub fn into_store_error(self) -> StoreError {
        match self {
            Failure::Store(e) => e,
            Failure::Raced { current } => {
                StoreError::Backend(format!("kurrentdb: unexpected concurrency conflict (stream at {current:?})"))
            }
            Failure::NoStream => StoreError::Backend("kurrentdb: unexpected missing stream".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::link;

    fn ns() -> Namespace {
        Namespace::new("gzd_test").unwrap()
    }

    fn proposed() -> ProposedEvent {
        ProposedEvent {
            event_id: Uuid::from_u128(7),
            event_type: "case.member_registered".into(),
            recorded_at_micros: 1_700_000_000_123_456,
            payload: vec![1, 2, 3, 255],
        }
    }

    #[test]
    fn namespaces_are_checked_and_round_trip_stream_names() {
        for bad in ["", "Gzd", "gzd-prod", "$all", "a:b", &"x".repeat(65)] {
            assert!(Namespace::new(bad).is_err(), "{bad:?} accepted");
        }
        let s = StreamId::new("family-8f3c").unwrap();
        assert_eq!(ns().stream_name(&s), "gzd_test:family-8f3c");
        assert_eq!(ns().stream_id("gzd_test:family-8f3c").unwrap(), s);
        assert!(matches!(ns().stream_id("other:family-8f3c"), Err(StoreError::Corrupt(_))));
        assert!(matches!(ns().stream_id("gzd_test:"), Err(StoreError::Corrupt(_))));
        assert!(matches!(ns().stream_id("$stats-127.0.0.1:2113"), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn an_encoded_event_decodes_to_what_the_store_recorded() {
        let s = StreamId::new("family-a").unwrap();
        let head = Some((4, EventHash::from_bytes([9; 32])));
        let event = proposed();
        let links = link(&s, head, 0, std::slice::from_ref(&event));
        let metadata = chain_metadata(&event, &links[0]);
        let parts = StoredParts {
            stream_name: "gzd_test:family-a",
            id: event.event_id,
            revision: 5,
            event_type: &event.event_type,
            data: &event.payload,
            custom_metadata: &metadata,
        };
        let decoded = decode_event(&ns(), parts, 42).unwrap();
        let expected = crate::store::AppendOutcome::written(&[Link { position: 42, ..links[0] }])
            .recorded(&s, std::slice::from_ref(&event));
        assert_eq!(decoded, expected[0]);
        assert_eq!(decoded.prev_hash, EventHash::from_bytes([9; 32]));
        assert_eq!(decoded.revision, 5);
    }

    #[test]
    fn missing_or_malformed_chain_metadata_is_corrupt_and_named() {
        let good_hash = "ab".repeat(32);
        let with = |prev: &str, hash: &str| {
            format!("{{\"v\":1,\"recorded_at_micros\":1,\"prev_hash\":\"{prev}\",\"hash\":\"{hash}\"}}").into_bytes()
        };
        let cases = [
            (Vec::new(), "chain metadata"),
            (b"{\"v\":2,\"recorded_at_micros\":1,\"prev_hash\":\"\",\"hash\":\"\"}".to_vec(), "version 2"),
            (with(&good_hash, "zz"), "hash is not"),
            (with("abcd", &good_hash), "prev_hash is not"),
        ];
        for (metadata, expected) in cases {
            let parts = StoredParts {
                stream_name: "gzd_test:family-a",
                id: Uuid::nil(),
                revision: 3,
                event_type: "t",
                data: b"",
                custom_metadata: &metadata,
            };
            match decode_event(&ns(), parts, 0) {
                Err(StoreError::Corrupt(msg)) => {
                    assert!(msg.contains(expected) && msg.contains("gzd_test:family-a revision 3"), "{msg}")
                }
                other => panic!("{expected}: got {other:?}"),
            }
        }
    }

    #[test]
    fn appends_always_send_an_exact_expected_state() {
        assert!(matches!(expected_state(None), StreamState::NoStream));
        assert!(matches!(expected_state(Some(0)), StreamState::StreamRevision(0)));
        assert!(matches!(expected_state(Some(41)), StreamState::StreamRevision(41)));
    }

    #[test]
    fn errors_translate_to_races_missing_streams_or_named_failures() {
        use kurrentdb::Error as K;
        let raced =
            K::WrongExpectedVersion { expected: StreamState::StreamRevision(3), current: CurrentRevision::Current(5) };
        assert_eq!(translate(raced), Failure::Raced { current: Some(5) });
        let raced_new =
            K::WrongExpectedVersion { expected: StreamState::StreamRevision(0), current: CurrentRevision::NoStream };
        assert_eq!(translate(raced_new), Failure::Raced { current: None });
        assert_eq!(translate(K::ResourceNotFound), Failure::NoStream);
        let message = |e| match translate(e) {
            Failure::Store(StoreError::Backend(m)) => m,
            other => panic!("got {other:?}"),
        };
        assert!(message(K::AccessDenied).contains("access denied"));
        assert!(message(K::DeadlineExceeded).contains("deadline"));
        assert!(message(K::ConnectionClosed).contains("not reachable"));
        let leader = kurrentdb::Endpoint { host: "node2".into(), port: 2113 };
        assert!(message(K::NotLeaderException(leader)).contains("leader is node2:2113"));
        assert!(matches!(translate(K::ResourceDeleted), Failure::Store(StoreError::Corrupt(_))));
        assert!(matches!(store_error(K::ResourceNotFound), StoreError::Backend(_)));
    }

    #[test]
    fn an_append_whose_connection_broke_has_an_unknown_outcome() {
        use kurrentdb::Error as K;
        for broken in [K::ConnectionClosed, K::DeadlineExceeded] {
            assert!(matches!(translate_append(broken), Failure::Store(StoreError::OutcomeUnknown(_))));
        }
        // A refusal by the cluster is still a refusal.
        assert!(matches!(translate_append(K::AccessDenied), Failure::Store(StoreError::Backend(_))));
        let raced =
            K::WrongExpectedVersion { expected: StreamState::StreamRevision(3), current: CurrentRevision::Current(5) };
        assert_eq!(translate_append(raced), Failure::Raced { current: Some(5) });
    }
}

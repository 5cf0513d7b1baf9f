//! Gapless ordinals over KurrentDB's `$all`.
//!
//! `$all` positions are offsets in KurrentDB's transaction file: ordered, but with gaps, and
//! shared with system events and other namespaces. The store contract and the Merkle leaves
//! need 0, 1, 2, … in commit order. So an event's ordinal is its rank among this namespace's
//! events in `$all`. `$all` is one append-only order that every node of a cluster agrees
//! on, so every replica derives the same ordinals without coordinating.
//!
//! The index holds each ordinal's `$all` position (to start reads at an ordinal), each
//! event id's ordinal (KurrentDB has no lookup by id; retries and id conflicts need one),
//! and each stream's head (revision and hash, which the next append chains onto). It lives
//! in memory and is rebuilt by reading `$all` at start: about 48 bytes per event plus about
//! 100 per stream.

use crate::chain::EventHash;
use crate::envelope::EventId;
use crate::store::StoreError;
use kurrentdb::{Position, StreamPosition};
use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct LogIndex {
    positions: Vec<Position>,
    ordinals: HashMap<EventId, u64>,
    /// KurrentDB stream name to its last event's revision and hash.
    heads: HashMap<String, (u64, EventHash)>,
}

/// What the index keeps of one event of the namespace, in `$all` order.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub event_id: EventId,
    pub position: Position,
    pub stream_name: &'a str,
    pub revision: u64,
    pub hash: EventHash,
}

/// `$all` order: by commit position, then prepare position.
fn key(p: Position) -> (u64, u64) {
    (p.commit, p.prepare)
}

/// Whether `position` lies after `start`, the exclusive start of a read.
///
/// KurrentDB's inclusive or exclusive treatment of a start position differs between reads
/// and subscriptions; reading from the previous event and dropping what is not after it is
/// right under either.
pub fn is_after(start: &StreamPosition<Position>, position: Position) -> bool {
    match start {
        StreamPosition::Start => true,
        StreamPosition::End => false,
        StreamPosition::Position(s) => key(position) > key(*s),
    }
}

impl LogIndex {
    /// Events indexed so far; also the next ordinal.
    pub fn len(&self) -> u64 {
        self.positions.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.positions.is_empty()
    }

    /// Records the next event of the namespace in `$all` and returns its ordinal.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the position is not after the last indexed one, or the
    /// revision does not follow its stream's head.
    pub fn push(&mut self, entry: Entry<'_>) -> Result<u64, StoreError> {
        let Entry { event_id, position, stream_name, revision, hash } = entry;
        if let Some(last) = self.positions.last()
            && key(position) <= key(*last)
        {
            return Err(StoreError::Corrupt(format!("$all went backwards: {position} after {last}")));
        }
        let expected_revision = self.heads.get(stream_name).map_or(0, |h| h.0 + 1);
        if revision != expected_revision {
            return Err(StoreError::Corrupt(format!(
                "{stream_name}: $all holds revision {revision} where revision {expected_revision} is next"
            )));
        }
        let ordinal = self.len();
        self.positions.push(position);
        match self.heads.get_mut(stream_name) {
            Some(head) => *head = (revision, hash),
            None => {
                self.heads.insert(stream_name.to_owned(), (revision, hash));
            }
        }
        // Two replicas racing the same new id into two different streams can both succeed
        // (KurrentDB checks ids per stream only). The first occurrence is the one retries
        // resolve to; the second stays in the log, visible to audit.
        if let Some(first) = self.ordinals.get(&event_id) {
            tracing::warn!(%event_id, first, ordinal, "event id stored twice in the kurrentdb log");
        } else {
            self.ordinals.insert(event_id, ordinal);
        }
        Ok(ordinal)
    }

    /// The revision and hash of a stream's last indexed event.
    pub fn head(&self, stream_name: &str) -> Option<(u64, EventHash)> {
        self.heads.get(stream_name).copied()
    }

    /// The ordinal of the first stored event with this id.
    pub fn ordinal_of(&self, event_id: &EventId) -> Option<u64> {
        self.ordinals.get(event_id).copied()
    }

    /// The ordinal of the event stored at `position` in `$all`, or else of the first event
    /// with `event_id` (for reads that do not carry `$all` positions).
    pub fn locate(&self, event_id: &EventId, position: Position) -> Option<u64> {
        self.positions
            .binary_search_by_key(&key(position), |p| key(*p))
            .ok()
            .map(|i| i as u64)
            .or_else(|| self.ordinal_of(event_id))
    }

    /// The exclusive start from which a filtered `$all` read yields ordinal `ordinal` first:
    /// after the previous event, or the start of `$all`. `None` past the indexed end.
    pub fn start_before(&self, ordinal: u64) -> Option<StreamPosition<Position>> {
        match ordinal {
            0 => Some(StreamPosition::Start),
            n if n <= self.len() => Some(StreamPosition::Position(self.positions[(n - 1) as usize])),
            _ => None,
        }
    }

    /// Checks that a read found `ordinal` at `position`, where the index knows that ordinal
    /// (a read may run ahead of the index; only catching up extends it).
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the read disagrees with the index.
    pub fn check(&self, ordinal: u64, position: Position) -> Result<(), StoreError> {
        match self.positions.get(ordinal as usize) {
            Some(known) if key(*known) != key(position) => {
                Err(StoreError::Corrupt(format!("ordinal {ordinal} was at {known}, a read found it at {position}")))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn at(commit: u64, prepare: u64) -> Position {
        Position { commit, prepare }
    }

    fn entry(id: u128, position: Position, stream_name: &str, revision: u64) -> Entry<'_> {
        Entry {
            event_id: Uuid::from_u128(id),
            position,
            stream_name,
            revision,
            hash: EventHash::from_bytes([id as u8; 32]),
        }
    }

    #[test]
    fn ordinals_are_gapless_ranks_over_sparse_all_positions() {
        let mut index = LogIndex::default();
        // Byte offsets with gaps, and two events of one append sharing a commit position.
        let entries = [
            entry(1, at(100, 100), "gzd:family-a", 0),
            entry(2, at(4_096, 4_000), "gzd:family-b", 0),
            entry(3, at(4_096, 4_050), "gzd:family-b", 1),
            entry(4, at(90_000, 90_000), "gzd:family-a", 1),
        ];
        for (i, e) in entries.into_iter().enumerate() {
            assert_eq!(index.push(e).unwrap(), i as u64);
        }
        assert_eq!(index.len(), 4);
        assert_eq!(index.ordinal_of(&Uuid::from_u128(3)), Some(2));
        assert_eq!(index.ordinal_of(&Uuid::from_u128(99)), None);
        assert_eq!(index.locate(&Uuid::from_u128(1), at(4_096, 4_050)), Some(2), "by position first");
        assert_eq!(index.locate(&Uuid::from_u128(4), at(0, 0)), Some(3), "by id when the read has no position");
        assert_eq!(index.locate(&Uuid::from_u128(99), at(1, 1)), None);
        assert!(matches!(index.start_before(0), Some(StreamPosition::Start)));
        assert!(matches!(index.start_before(3), Some(StreamPosition::Position(p)) if p == at(4_096, 4_050)));
        assert!(matches!(index.start_before(4), Some(StreamPosition::Position(p)) if p == at(90_000, 90_000)));
        assert!(index.start_before(5).is_none());
    }

    #[test]
    fn each_stream_head_is_its_last_indexed_event() {
        let mut index = LogIndex::default();
        assert_eq!(index.head("gzd:family-a"), None);
        index.push(entry(1, at(10, 10), "gzd:family-a", 0)).unwrap();
        index.push(entry(2, at(20, 20), "gzd:family-b", 0)).unwrap();
        index.push(entry(3, at(30, 30), "gzd:family-a", 1)).unwrap();
        assert_eq!(index.head("gzd:family-a"), Some((1, EventHash::from_bytes([3; 32]))));
        assert_eq!(index.head("gzd:family-b"), Some((0, EventHash::from_bytes([2; 32]))));
    }

    #[test]
    fn a_position_that_goes_backwards_or_a_revision_gap_is_refused() {
        let mut index = LogIndex::default();
        index.push(entry(1, at(500, 500), "gzd:s", 0)).unwrap();
        for p in [at(500, 500), at(499, 600), at(500, 400)] {
            assert!(matches!(index.push(entry(2, p, "gzd:s", 1)), Err(StoreError::Corrupt(_))), "{p} accepted");
        }
        for (stream, revision) in [("gzd:s", 2), ("gzd:s", 0), ("gzd:t", 1)] {
            let err = index.push(entry(2, at(600, 600), stream, revision)).unwrap_err();
            assert!(matches!(&err, StoreError::Corrupt(m) if m.contains(stream)), "{err}");
        }
        assert_eq!(index.len(), 1);
        assert_eq!(index.head("gzd:s"), Some((0, EventHash::from_bytes([1; 32]))));
    }

    #[test]
    fn a_repeated_id_keeps_its_first_ordinal_and_still_takes_a_place() {
        let mut index = LogIndex::default();
        index.push(entry(5, at(10, 10), "gzd:s", 0)).unwrap();
        assert_eq!(index.push(entry(5, at(20, 20), "gzd:t", 0)).unwrap(), 1);
        assert_eq!(index.ordinal_of(&Uuid::from_u128(5)), Some(0));
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn reads_start_after_the_previous_event_whatever_the_server_includes() {
        let start = StreamPosition::Position(at(4_096, 4_000));
        assert!(!is_after(&start, at(4_096, 4_000)), "the start itself is dropped");
        assert!(!is_after(&start, at(100, 100)));
        assert!(is_after(&start, at(4_096, 4_050)));
        assert!(is_after(&start, at(5_000, 10)));
        assert!(is_after(&StreamPosition::Start, at(0, 0)));
    }

    #[test]
    fn reads_are_checked_against_the_index_where_it_knows_the_ordinal() {
        let mut index = LogIndex::default();
        index.push(entry(1, at(10, 10), "gzd:s", 0)).unwrap();
        index.check(0, at(10, 10)).unwrap();
        assert!(matches!(index.check(0, at(11, 11)), Err(StoreError::Corrupt(_))));
        index.check(1, at(20, 20)).unwrap();
        assert_eq!(index.len(), 1, "a read does not extend the index");
    }
}

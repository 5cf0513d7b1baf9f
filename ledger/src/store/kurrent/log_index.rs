//! Gapless ordinals over KurrentDB's `$all`.
//!
//! `$all` positions are offsets in KurrentDB's transaction file: ordered, but with gaps, and
//! shared with system events and other namespaces. The store contract and the Merkle leaves
//! need 0, 1, 2, … in commit order. So an event's ordinal is its rank among this namespace's
//! events in `$all`. `$all` is one append-only order that every node of a cluster agrees
//! on, so every replica derives the same ordinals without coordinating.
//!
//! The index holds each ordinal's `$all` position (to start reads at an ordinal) and each
//! event id's ordinal (KurrentDB has no lookup by id; retries and id conflicts need one).
//! It lives in memory and is rebuilt by reading `$all` at start: about 48 bytes per event.

use crate::envelope::EventId;
use crate::store::StoreError;
use kurrentdb::{Position, StreamPosition};
use std::collections::HashMap;

#[derive(Debug, Default)]
pub struct LogIndex {
    positions: Vec<Position>,
    ordinals: HashMap<EventId, u64>,
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
    /// [`StoreError::Corrupt`] when `position` is not after the last indexed one.
    pub fn push(&mut self, event_id: EventId, position: Position) -> Result<u64, StoreError> {
        if let Some(last) = self.positions.last()
            && key(position) <= key(*last)
        {
            return Err(StoreError::Corrupt(format!("$all went backwards: {position} after {last}")));
        }
        let ordinal = self.len();
        self.positions.push(position);
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

    /// Checks that a read placed the event with `event_id` at `position` as `ordinal`, where
    /// the index already knows that ordinal, and extends the index where it does not.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] when the read disagrees with the index.
    pub fn observe(&mut self, ordinal: u64, event_id: EventId, position: Position) -> Result<(), StoreError> {
        match ordinal.cmp(&self.len()) {
            std::cmp::Ordering::Less => {
                let known = self.positions[ordinal as usize];
                if key(known) == key(position) {
                    Ok(())
                } else {
                    Err(StoreError::Corrupt(format!("ordinal {ordinal} was at {known}, a read found it at {position}")))
                }
            }
            std::cmp::Ordering::Equal => self.push(event_id, position).map(drop),
            std::cmp::Ordering::Greater => Ok(()),
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

    #[test]
    fn ordinals_are_gapless_ranks_over_sparse_all_positions() {
        let mut index = LogIndex::default();
        let ids: Vec<_> = (0..4).map(|i| Uuid::from_u128(i + 1)).collect();
        // Byte offsets with gaps, and two events of one append sharing a commit position.
        let positions = [at(100, 100), at(4_096, 4_000), at(4_096, 4_050), at(90_000, 90_000)];
        for (i, (id, p)) in ids.iter().zip(positions).enumerate() {
            assert_eq!(index.push(*id, p).unwrap(), i as u64);
        }
        assert_eq!(index.len(), 4);
        assert_eq!(index.ordinal_of(&ids[2]), Some(2));
        assert_eq!(index.ordinal_of(&Uuid::from_u128(99)), None);
        assert_eq!(index.locate(&ids[0], at(4_096, 4_050)), Some(2), "by position first");
        assert_eq!(index.locate(&ids[3], at(0, 0)), Some(3), "by id when the read has no position");
        assert_eq!(index.locate(&Uuid::from_u128(99), at(1, 1)), None);
        assert!(matches!(index.start_before(0), Some(StreamPosition::Start)));
        assert!(matches!(index.start_before(3), Some(StreamPosition::Position(p)) if p == at(4_096, 4_050)));
        assert!(matches!(index.start_before(4), Some(StreamPosition::Position(p)) if p == at(90_000, 90_000)));
        assert!(index.start_before(5).is_none());
    }

    #[test]
    fn a_position_that_goes_backwards_is_refused() {
        let mut index = LogIndex::default();
        index.push(Uuid::from_u128(1), at(500, 500)).unwrap();
        for p in [at(500, 500), at(499, 600), at(500, 400)] {
            assert!(matches!(index.push(Uuid::from_u128(2), p), Err(StoreError::Corrupt(_))), "{p} accepted");
        }
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn a_repeated_id_keeps_its_first_ordinal_and_still_takes_a_place() {
        let mut index = LogIndex::default();
        let id = Uuid::from_u128(5);
        index.push(id, at(10, 10)).unwrap();
        assert_eq!(index.push(id, at(20, 20)).unwrap(), 1);
        assert_eq!(index.ordinal_of(&id), Some(0));
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
    fn reads_are_checked_against_and_extend_the_index() {
        let mut index = LogIndex::default();
        index.push(Uuid::from_u128(1), at(10, 10)).unwrap();
        index.observe(0, Uuid::from_u128(1), at(10, 10)).unwrap();
        assert!(matches!(index.observe(0, Uuid::from_u128(1), at(11, 11)), Err(StoreError::Corrupt(_))));
        index.observe(1, Uuid::from_u128(2), at(20, 20)).unwrap();
        assert_eq!(index.ordinal_of(&Uuid::from_u128(2)), Some(1));
        // A read beyond the end (e.g. after a gap in what this replica has seen) is left alone.
        index.observe(5, Uuid::from_u128(9), at(90, 90)).unwrap();
        assert_eq!(index.len(), 2);
    }
}

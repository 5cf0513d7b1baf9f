//! The offline verifier: given every event in global order and the tree-head public key,
//! check everything a dishonest operator could have changed, and name the first place where
//! it breaks. It trusts nothing but the key.
//!
//! - positions are gapless from 0 (a deleted or inserted event shows);
//! - each stream's hash chain holds (a changed byte, a dropped or reordered event shows);
//! - the Merkle root of every signed size equals the signed root (a reordering across
//!   streams, which chains alone cannot see, shows here);
//! - every tree head is signed by the key, and sizes and times only grow;
//! - against a checkpoint pinned by an earlier audit: the log still reaches its size (a
//!   copy cut back to an older head shows) and has its root there (a forked log shows).

use crate::chain::{ChainBreak, ChainVerifier};
use crate::checkpoint::Checkpoint;
use crate::envelope::{RecordedEvent, StreamId};
use crate::merkle::{CompactRange, leaf_hash};
use crate::treehead::{self, SignedTreeHead};
use std::collections::{BTreeMap, HashMap};

/// What was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub events: u64,
    pub streams: usize,
    pub tree_heads: usize,
    /// Hex root of the whole log.
    pub root: String,
    /// The newest head's signed checkpoint note, for the auditor to pin for next time.
    pub latest_checkpoint: Option<String>,
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Tampering {
    #[error(
        "global position {expected} is missing: found position {found} next (event deleted, inserted or reordered)"
    )]
    PositionGap { expected: u64, found: u64 },
    #[error("at global position {position}: {source}")]
    Chain { position: u64, source: ChainBreak },
    #[error("tree head {index} (size {size}) does not match the log: signed root {signed}, log root {actual}")]
    RootMismatch { index: usize, size: u64, signed: String, actual: String },
    #[error("tree head {index} (size {size}) is not signed by the given key")]
    BadSignature { index: usize, size: u64 },
    #[error("tree head {index} is malformed: {problem}")]
    MalformedHead { index: usize, problem: String },
    #[error("tree head {index} (size {size}) goes back in size or time from the one before")]
    NotMonotonic { index: usize, size: u64 },
    #[error("tree head {index} signs size {size}, beyond the {events} events in the log")]
    HeadBeyondLog { index: usize, size: u64, events: u64 },
    #[error(
        "the log holds {events} events, fewer than the {pinned} the pinned checkpoint commits to: it was rolled back"
    )]
    RolledBack { pinned: u64, events: u64 },
    #[error("at size {size} the log's root is {actual}, not the pinned checkpoint's {pinned}: the log forked")]
    Forked { size: u64, pinned: String, actual: String },
    #[error("the event source failed: {0}")]
    Source(String),
}

/// Verifies a log. `tree_heads` are the events of the tree-head stream (read first, so each
/// signed size is known before the main pass reaches it); `events` the whole log in global
/// order.
///
/// # Errors
/// The first [`Tampering`] found.
pub fn verify_log<E>(
    public_key: &[u8],
    tree_heads: &[RecordedEvent],
    events: impl IntoIterator<Item = Result<RecordedEvent, E>>,
) -> Result<VerifyReport, Tampering>
where
    E: std::fmt::Display,
{
    verify_log_against(public_key, tree_heads, events, None)
}

/// [`verify_log`], and also against `pinned`, a checkpoint an auditor kept from an earlier
/// verification (already opened with the log's key, see [`crate::checkpoint::open`]).
///
/// # Errors
/// The first [`Tampering`] found; [`Tampering::RolledBack`] or [`Tampering::Forked`] when
/// the log does not extend the pinned checkpoint.
pub fn verify_log_against<E>(
    public_key: &[u8],
    tree_heads: &[RecordedEvent],
    events: impl IntoIterator<Item = Result<RecordedEvent, E>>,
    pinned: Option<&Checkpoint>,
) -> Result<VerifyReport, Tampering>
where
    E: std::fmt::Display,
{
    let mut heads: BTreeMap<u64, Vec<(usize, SignedTreeHead)>> = BTreeMap::new();
    let mut previous: Option<(u64, i64)> = None;
    for (index, event) in tree_heads.iter().enumerate() {
        let head = SignedTreeHead::from_event(event)
            .map_err(|e| Tampering::MalformedHead { index, problem: e.to_string() })?;
        head.verify(public_key).map_err(|_| Tampering::BadSignature { index, size: head.size })?;
        if previous.is_some_and(|(size, time)| head.size < size || head.timestamp_micros < time) {
            return Err(Tampering::NotMonotonic { index, size: head.size });
        }
        previous = Some((head.size, head.timestamp_micros));
        heads.entry(head.size).or_default().push((index, head));
    }

    let latest_checkpoint = heads.values().flatten().filter_map(|(_, h)| h.checkpoint.clone()).next_back();
    let mut chains: HashMap<StreamId, ChainVerifier> = HashMap::new();
    let mut range = CompactRange::new();
    let check_heads_at = |range: &CompactRange| -> Result<(), Tampering> {
        if let Some(pinned) = pinned.filter(|p| p.size == range.size()) {
            let actual = range.root();
            if actual != pinned.root {
                return Err(Tampering::Forked {
                    size: pinned.size,
                    pinned: pinned.root.to_hex(),
                    actual: actual.to_hex(),
                });
            }
        }
        for (index, head) in heads.get(&range.size()).into_iter().flatten() {
            let actual = range.root().to_hex();
            if actual != head.root {
                return Err(Tampering::RootMismatch {
                    index: *index,
                    size: head.size,
                    signed: head.root.clone(),
                    actual,
                });
            }
        }
        Ok(())
    };
    check_heads_at(&range)?;
    for event in events {
        let event = event.map_err(|e| Tampering::Source(e.to_string()))?;
        if event.position != range.size() {
            return Err(Tampering::PositionGap { expected: range.size(), found: event.position });
        }
        let canonical = event.canonical_bytes();
        let chain = match chains.get_mut(&event.stream) {
            Some(chain) => chain,
            None => chains.entry(event.stream.clone()).or_default(),
        };
        chain
            .push_canonical(&event, &canonical)
            .map_err(|source| Tampering::Chain { position: event.position, source })?;
        range.push(leaf_hash(&canonical));
        check_heads_at(&range)?;
    }
    if let Some((&size, list)) = heads.range(range.size() + 1..).next() {
        return Err(Tampering::HeadBeyondLog { index: list[0].0, size, events: range.size() });
    }
    if let Some(pinned) = pinned.filter(|p| p.size > range.size()) {
        return Err(Tampering::RolledBack { pinned: pinned.size, events: range.size() });
    }
    Ok(VerifyReport {
        events: range.size(),
        streams: chains.len(),
        tree_heads: tree_heads.len(),
        root: range.root().to_hex(),
        latest_checkpoint,
    })
}

/// The tree-head events among `events`.
pub fn tree_head_events(events: &[RecordedEvent]) -> Vec<RecordedEvent> {
    let stream = treehead::stream();
    events.iter().filter(|e| e.stream == stream).cloned().collect()
}

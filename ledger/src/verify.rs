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

use crate::chain::{ChainBreak, ChainVerifier, hash_canonical};
use crate::checkpoint::Checkpoint;
use crate::envelope::{RecordedEvent, parse_canonical};
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
    let mut checker = Checker::new(public_key, tree_heads, pinned)?;
    for event in events {
        let event = event.map_err(|e| Tampering::Source(e.to_string()))?;
        checker.at(event.position)?;
        let canonical = event.canonical_bytes();
        checker
            .chain(event.stream.as_str())
            .push_canonical(&event, &canonical)
            .map_err(|source| Tampering::Chain { position: event.position, source })?;
        checker.push_leaf(&canonical)?;
    }
    checker.finish()
}

/// An export of the log for [`verify_export`]: each event's canonical bytes, in global
/// order, each preceded by its length (u32, big-endian). Nothing else: the hashes are
/// recomputed from the bytes, and positions are the order.
pub fn write_export<E: std::fmt::Display>(
    events: impl IntoIterator<Item = Result<RecordedEvent, E>>,
    out: &mut impl std::io::Write,
) -> Result<u64, String> {
    let mut n = 0;
    for event in events {
        let bytes = event.map_err(|e| e.to_string())?.canonical_bytes();
        let len = u32::try_from(bytes.len()).map_err(|_| "an event over 4 GiB".to_owned())?;
        out.write_all(&len.to_be_bytes()).and_then(|()| out.write_all(&bytes)).map_err(|e| e.to_string())?;
        n += 1;
    }
    Ok(n)
}

/// Reads an export record by record into a reused buffer.
struct ExportReader<R> {
    input: R,
    buf: Vec<u8>,
}

impl<R: std::io::Read> ExportReader<R> {
    /// The next record's bytes, `None` at a clean end.
    fn next_record(&mut self) -> Result<Option<&[u8]>, Tampering> {
        let mut len = [0u8; 4];
        match self.input.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(Tampering::Source(e.to_string())),
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_EXPORT_RECORD {
            return Err(Tampering::Source(format!("a record of {len} bytes in the export")));
        }
        self.buf.resize(len, 0);
        self.input
            .read_exact(&mut self.buf)
            .map_err(|e| Tampering::Source(format!("the export ends inside a record: {e}")))?;
        Ok(Some(&self.buf))
    }
}

/// Largest record an export may hold (requests are far smaller).
const MAX_EXPORT_RECORD: usize = 64 << 20;

/// Verifies an export (see [`write_export`]) read twice from `open`: once for the tree
/// heads, then every check of [`verify_log_against`], computing each event's hash once.
///
/// # Errors
/// The first [`Tampering`] found.
pub fn verify_export<R: std::io::Read>(
    public_key: &[u8],
    open: impl Fn() -> std::io::Result<R>,
    pinned: Option<&Checkpoint>,
) -> Result<VerifyReport, Tampering> {
    let source = |e: std::io::Error| Tampering::Source(e.to_string());
    let heads_stream = treehead::stream();
    let mut heads = Vec::new();
    let mut reader = ExportReader { input: open().map_err(source)?, buf: Vec::new() };
    let mut position = 0;
    while let Some(bytes) = reader.next_record()? {
        let view = parse_canonical(bytes).map_err(|e| Tampering::Source(format!("at position {position}: {e}")))?;
        if view.stream == heads_stream.as_str() {
            heads.push(RecordedEvent {
                stream: heads_stream.clone(),
                revision: view.revision,
                position,
                event_id: view.event_id,
                event_type: view.event_type.to_owned(),
                recorded_at_micros: view.recorded_at_micros,
                payload: view.payload.to_vec(),
                prev_hash: view.prev_hash,
                hash: hash_canonical(bytes),
            });
        }
        position += 1;
    }
    let mut checker = Checker::new(public_key, &heads, pinned)?;
    let mut reader = ExportReader { input: open().map_err(source)?, buf: Vec::new() };
    let mut position = 0;
    while let Some(bytes) = reader.next_record()? {
        let view = parse_canonical(bytes).map_err(|e| Tampering::Source(format!("at position {position}: {e}")))?;
        checker
            .chain(view.stream)
            .push_computed(view.stream, view.revision, &view.prev_hash, hash_canonical(bytes))
            .map_err(|source| Tampering::Chain { position, source })?;
        checker.push_leaf(bytes)?;
        position += 1;
    }
    checker.finish()
}

/// The checks of one pass over a log, whatever it is read from.
struct Checker<'p> {
    heads: BTreeMap<u64, Vec<(usize, SignedTreeHead)>>,
    head_count: usize,
    chains: HashMap<String, ChainVerifier>,
    range: CompactRange,
    pinned: Option<&'p Checkpoint>,
}

impl<'p> Checker<'p> {
    /// Checks every tree head's signature and order, and the empty tree against them.
    fn new(public_key: &[u8], tree_heads: &[RecordedEvent], pinned: Option<&'p Checkpoint>) -> Result<Self, Tampering> {
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
        let checker =
            Self { heads, head_count: tree_heads.len(), chains: HashMap::new(), range: CompactRange::new(), pinned };
        checker.check_heads_at()?;
        Ok(checker)
    }

    /// The next event must be at `position`.
    fn at(&self, position: u64) -> Result<(), Tampering> {
        if position != self.range.size() {
            return Err(Tampering::PositionGap { expected: self.range.size(), found: position });
        }
        Ok(())
    }

    fn chain(&mut self, stream: &str) -> &mut ChainVerifier {
        // Look up before inserting: a stream's name is copied once, not per event.
        if !self.chains.contains_key(stream) {
            self.chains.insert(stream.to_owned(), ChainVerifier::default());
        }
        self.chains.get_mut(stream).unwrap_or_else(|| unreachable!("inserted above"))
    }

    fn push_leaf(&mut self, canonical: &[u8]) -> Result<(), Tampering> {
        self.range.push(leaf_hash(canonical));
        self.check_heads_at()
    }

    /// The signed heads and the pinned checkpoint at the current size.
    fn check_heads_at(&self) -> Result<(), Tampering> {
        if let Some(pinned) = self.pinned.filter(|p| p.size == self.range.size()) {
            let actual = self.range.root();
            if actual != pinned.root {
                return Err(Tampering::Forked {
                    size: pinned.size,
                    pinned: pinned.root.to_hex(),
                    actual: actual.to_hex(),
                });
            }
        }
        for (index, head) in self.heads.get(&self.range.size()).into_iter().flatten() {
            let actual = self.range.root().to_hex();
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
    }

    fn finish(self) -> Result<VerifyReport, Tampering> {
        let size = self.range.size();
        if let Some((&head_size, list)) = self.heads.range(size + 1..).next() {
            return Err(Tampering::HeadBeyondLog { index: list[0].0, size: head_size, events: size });
        }
        if let Some(pinned) = self.pinned.filter(|p| p.size > size) {
            return Err(Tampering::RolledBack { pinned: pinned.size, events: size });
        }
        Ok(VerifyReport {
            events: size,
            streams: self.chains.len(),
            tree_heads: self.head_count,
            root: self.range.root().to_hex(),
            latest_checkpoint: self.heads.values().flatten().filter_map(|(_, h)| h.checkpoint.clone()).next_back(),
        })
    }
}

/// The tree-head events among `events`.
pub fn tree_head_events(events: &[RecordedEvent]) -> Vec<RecordedEvent> {
    let stream = treehead::stream();
    events.iter().filter(|e| e.stream == stream).cloned().collect()
}

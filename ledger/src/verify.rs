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
use crate::merkle::{CompactRange, TreeHash};
use crate::treehead::{self, SignedTreeHead};
use crate::twin_sha256::chain_and_leaf;
use std::collections::{BTreeMap, HashMap};

/// What was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    pub events: u64,
    pub streams: usize,
    pub tree_heads: usize,
    /// Events after the newest signed head: checked for their chains and positions, but no
    /// signature covers them yet, so a change to the last of a stream would not show.
    pub unsigned: u64,
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
    #[error(
        "the export's list of tree heads differs from the tree-head events in its log{}",
        position.map(|p| format!(" at position {p}")).unwrap_or_default()
    )]
    HeadListDiffers { position: Option<u64> },
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
        let (hash, leaf) = chain_and_leaf(&event.canonical_bytes());
        checker
            .chain(event.stream.as_str())
            .push_hashed(&event, hash)
            .map_err(|source| Tampering::Chain { position: event.position, source })?;
        checker.push_leaf(leaf)?;
    }
    checker.finish()
}

/// First bytes of an export in the current format. An export without them is the first
/// format: records only, read twice to find the tree heads.
const EXPORT_MAGIC: &[u8; 8] = b"GZDEXP2\n";

/// An export of the log for [`verify_export`], in one pass of the reader:
/// - the 8 bytes `GZDEXP2\n`;
/// - the number of tree-head events (u32, big-endian), then each one's canonical bytes,
///   so every signed size is known before the events reach it;
/// - every event's canonical bytes in global order, tree heads included.
///
/// Each record is preceded by its length (u32, big-endian). Nothing else: hashes are
/// recomputed from the bytes, and positions are the order. `tree_heads` are the events of
/// the tree-head stream, as for [`verify_log`].
///
/// # Errors
/// A failing source or writer, as text.
pub fn write_export<E: std::fmt::Display>(
    tree_heads: &[RecordedEvent],
    events: impl IntoIterator<Item = Result<RecordedEvent, E>>,
    out: &mut impl std::io::Write,
) -> Result<u64, String> {
    let mut put = |bytes: &[u8]| {
        let len = u32::try_from(bytes.len()).map_err(|_| "an event over 4 GiB".to_owned())?;
        out.write_all(&len.to_be_bytes()).and_then(|()| out.write_all(bytes)).map_err(|e| e.to_string())
    };
    let heads = u32::try_from(tree_heads.len()).map_err(|_| "over 4 billion tree heads".to_owned())?;
    put(EXPORT_MAGIC)?;
    put(&heads.to_be_bytes())?;
    for head in tree_heads {
        put(&head.canonical_bytes())?;
    }
    let mut n = 0;
    for event in events {
        put(&event.map_err(|e| e.to_string())?.canonical_bytes())?;
        n += 1;
    }
    Ok(n)
}

/// Reads an export record by record, handing out each record where it lies in a large
/// buffer: the export is read once and copied no further.
struct ExportReader<R> {
    input: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl<R: std::io::Read> ExportReader<R> {
    fn new(input: R) -> Self {
        Self::with_buffer(input, 1 << 20)
    }

    fn with_buffer(input: R, bytes: usize) -> Self {
        Self { input, buf: vec![0; bytes], start: 0, end: 0 }
    }

    /// Whether `n` bytes are at hand, reading more as needed; `false` at the end of input.
    fn fill(&mut self, n: usize) -> Result<bool, Tampering> {
        while self.end - self.start < n {
            if self.buf.len() - self.start < n {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                if self.buf.len() < n {
                    self.buf.resize(n, 0);
                }
            }
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(false),
                Ok(read) => self.end += read,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Tampering::Source(e.to_string())),
            }
        }
        Ok(true)
    }

    /// The next record's bytes, `None` at a clean end.
    fn next_record(&mut self) -> Result<Option<&[u8]>, Tampering> {
        if !self.fill(4)? {
            return match self.end - self.start {
                0 => Ok(None),
                _ => Err(Tampering::Source("the export ends inside a record's length".into())),
            };
        }
        let len = u32::from_be_bytes(self.buf[self.start..self.start + 4].try_into().unwrap_or_default()) as usize;
        if len > MAX_EXPORT_RECORD {
            return Err(Tampering::Source(format!("a record of {len} bytes in the export")));
        }
        if !self.fill(4 + len)? {
            return Err(Tampering::Source("the export ends inside a record".into()));
        }
        let record = self.start + 4..self.start + 4 + len;
        self.start = record.end;
        Ok(Some(&self.buf[record]))
    }
}

/// Largest record an export may hold (requests are far smaller).
const MAX_EXPORT_RECORD: usize = 64 << 20;

/// A tree-head event from its canonical bytes at `position` (`None` for another stream's).
fn head_event(bytes: &[u8], position: u64) -> Result<Option<RecordedEvent>, Tampering> {
    let view = parse_canonical(bytes).map_err(|e| Tampering::Source(format!("at position {position}: {e}")))?;
    let stream = treehead::stream();
    Ok((view.stream == stream.as_str()).then(|| RecordedEvent {
        stream,
        revision: view.revision,
        position,
        event_id: view.event_id,
        event_type: view.event_type.to_owned(),
        recorded_at_micros: view.recorded_at_micros,
        payload: view.payload.to_vec(),
        prev_hash: view.prev_hash,
        hash: hash_canonical(bytes),
    }))
}

/// Verifies an export (see [`write_export`]): every check of [`verify_log_against`],
/// computing each event's hash once. The current format is read once from `open`; the first
/// format (no header) twice, first for its tree heads.
///
/// # Errors
/// The first [`Tampering`] found; [`Tampering::HeadListDiffers`] when the header's tree
/// heads are not those in the log.
pub fn verify_export<R: std::io::Read>(
    public_key: &[u8],
    open: impl Fn() -> std::io::Result<R>,
    pinned: Option<&Checkpoint>,
) -> Result<VerifyReport, Tampering> {
    let source = |e: std::io::Error| Tampering::Source(e.to_string());
    let mut reader = ExportReader::new(open().map_err(source)?);
    let mut heads = Vec::new();
    let listed = reader.fill(EXPORT_MAGIC.len() + 4)?
        && reader.buf[reader.start + 4..reader.start + 4 + EXPORT_MAGIC.len()] == *EXPORT_MAGIC;
    if listed {
        reader.next_record()?;
        let count = reader.next_record()?.and_then(|b| <[u8; 4]>::try_from(b).ok()).map(u32::from_be_bytes);
        let count = count.ok_or_else(|| Tampering::Source("the export's header has no tree-head count".into()))?;
        for index in 0..count {
            let bytes =
                reader.next_record()?.ok_or_else(|| Tampering::Source("the export ends in its header".into()))?;
            let head = head_event(bytes, u64::from(index))?.ok_or(Tampering::HeadListDiffers { position: None })?;
            heads.push(head);
        }
    } else {
        let mut position = 0;
        while let Some(bytes) = reader.next_record()? {
            heads.extend(head_event(bytes, position)?);
            position += 1;
        }
        reader = ExportReader::new(open().map_err(source)?);
    }
    let mut checker = Checker::new(public_key, &heads, pinned)?;
    let heads_stream = treehead::stream();
    let mut next_head = heads.iter();
    let mut position = 0;
    while let Some(bytes) = reader.next_record()? {
        let view = parse_canonical(bytes).map_err(|e| Tampering::Source(format!("at position {position}: {e}")))?;
        let (hash, leaf) = chain_and_leaf(bytes);
        if view.stream == heads_stream.as_str() && next_head.next().is_none_or(|head| head.hash != hash) {
            return Err(Tampering::HeadListDiffers { position: Some(position) });
        }
        checker
            .chain(view.stream)
            .push_computed(view.stream, view.revision, &view.prev_hash, hash)
            .map_err(|source| Tampering::Chain { position, source })?;
        checker.push_leaf(leaf)?;
        position += 1;
    }
    if next_head.next().is_some() {
        return Err(Tampering::HeadListDiffers { position: None });
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

    fn push_leaf(&mut self, leaf: TreeHash) -> Result<(), Tampering> {
        self.range.push(leaf);
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
        let signed = self.heads.keys().next_back().copied().unwrap_or(0);
        Ok(VerifyReport {
            events: size,
            unsigned: size - signed,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out at most 5 bytes per read, so records straddle every refill.
    struct Trickle<'a>(&'a [u8]);

    impl std::io::Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = out.len().min(5).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn the_export_reader_hands_back_records_that_straddle_and_outgrow_its_buffer() {
        let records: Vec<Vec<u8>> =
            [0usize, 3, 16, 40, 1, 17].iter().map(|&n| (0..n).map(|i| i as u8).collect()).collect();
        let mut bytes = Vec::new();
        for r in &records {
            bytes.extend_from_slice(&(r.len() as u32).to_be_bytes());
            bytes.extend_from_slice(r);
        }
        let mut reader = ExportReader::with_buffer(Trickle(&bytes), 16);
        for r in &records {
            assert_eq!(reader.next_record().unwrap(), Some(r.as_slice()));
        }
        assert_eq!(reader.next_record().unwrap(), None);
        // Cut inside a length, then inside a record.
        for (cut, problem) in [(bytes.len() - 19, "record's length"), (bytes.len() - 1, "inside a record")] {
            let mut reader = ExportReader::with_buffer(Trickle(&bytes[..cut]), 16);
            let outcome = loop {
                match reader.next_record() {
                    Ok(Some(_)) => {}
                    other => break other.map(|_| ()),
                }
            };
            assert!(matches!(&outcome, Err(Tampering::Source(m)) if m.contains(problem)), "{outcome:?}");
        }
    }
}

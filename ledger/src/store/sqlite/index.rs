//! The embedded store's lookups by stream and by event id, kept off the append path.
//!
//! Why: a B-tree index on a random key (a v4 event id, or one family among thousands) makes
//! every append dirty a page of its own, so each 500-byte event cost 6–9 KiB of WAL
//! (BENCHMARKS.md). Here an append writes only its row, in position order. Its lookup
//! entries wait in memory, in the *tail*, and are written sorted, as one *run*, once the tail
//! holds [`SqliteOptions::run_events`](super::SqliteOptions::run_events) events: packed
//! into blocks and appended in key order, so each page is written once.
//! - The runs tile the log from position 0, so the tail is always every event past the last
//!   run. At open it is read back from the events themselves: nothing is lost in a crash.
//! - Runs are never merged: 10 M events at the default 65,536 per run make 153 runs. So
//!   that a lookup does not cost more as they accumulate, Bloom filters say which runs to
//!   seek in (0.1% false positives; each filter's SipHash key is random, so ids and names
//!   cannot be chosen to defeat it):
//!   - one filter of event ids per [`RUNS_PER_ID_GROUP`] runs: a new id, checked at every
//!     append, costs a filter check per group (20 at 10 M events), and a seek only in a group
//!     that may hold it. The writer alone checks ids, and keeps these filters;
//!   - one filter of stream names per run, shared with the readers: a stream read or head
//!     lookup seeks only in runs that may hold the stream, newest first, and stops at the
//!     run that holds the revision it starts from.
//! - Only the writer thread adds to the tail or writes runs. Readers take what they need
//!   from the tail *before* they read the runs, so an event that moves from the tail into
//!   a run in between is seen twice (and kept once), never missed.

use super::{sql, to_i64, to_u64};
use crate::envelope::{EventId, StreamId};
use crate::store::StoreError;
use bloomfilter::Bloom;
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// The tables of the index (schema version 2). Entries are packed into blocks, so that a
/// run of 65,536 events writes about a thousand rows, not twice as many as it has events.
/// Plain rowid tables: a block of up to 4 KiB stays on its page there, where a
/// `WITHOUT ROWID` row over about 1 KiB would spill to overflow pages.
pub(super) const SCHEMA: &str = "
CREATE TABLE index_runs (
    run            INTEGER PRIMARY KEY,
    first_position INTEGER NOT NULL,
    end_position   INTEGER NOT NULL,
    id_filter      BLOB    NOT NULL
);
CREATE TABLE stream_blocks (
    run            INTEGER NOT NULL,
    stream         TEXT    NOT NULL,
    first_revision INTEGER NOT NULL,
    positions      BLOB    NOT NULL,
    PRIMARY KEY (run, stream, first_revision)
);
CREATE TABLE id_blocks (
    run      INTEGER NOT NULL,
    first_id BLOB    NOT NULL,
    entries  BLOB    NOT NULL,
    PRIMARY KEY (run, first_id)
);";

/// Positions per stream block: the positions of consecutive revisions, 8 bytes each
/// (little-endian). Within one run a stream's revisions have no gaps.
const STREAM_BLOCK: usize = 256;
/// Entries per id block: sorted pairs of a 16-byte id and an 8-byte position.
const ID_BLOCK: usize = 128;
const ID_ENTRY: usize = 24;

/// False-positive rate of the id and stream filters: 1.8 bytes per entry.
const FILTER_FP_RATE: f64 = 0.001;

/// Runs whose event ids share one filter. A group's filter is written when its last run is;
/// until then the writer keeps it in memory, and builds it again from the group's id blocks
/// at open (at most this many runs less one: about 460,000 ids, which bounds what this adds
/// to a restart). The run a version-1 file is migrated into is
/// a group of its own, however large.
const RUNS_PER_ID_GROUP: i64 = 8;

/// Tables added to schema version 2 after it shipped. Older builds ignore them; runs they
/// write have no stream filter (and are always consulted), and their complete id groups
/// get a filter at the next open.
const ADDED_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS index_run_streams (
    run           INTEGER PRIMARY KEY,
    stream_filter BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS index_id_groups (
    first_run INTEGER PRIMARY KEY,
    end_run   INTEGER NOT NULL,
    id_filter BLOB    NOT NULL
);";

/// Where one committed event can be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub revision: u64,
    pub position: u64,
}

/// One append's events, as the tail takes them in.
pub(super) struct CommittedAppend {
    pub stream: StreamId,
    pub ids: Vec<EventId>,
    pub entries: Vec<Entry>,
}

/// Lookup entries of the events past the last run.
#[derive(Default)]
pub(super) struct Tail {
    /// Per stream, in revision order.
    streams: HashMap<StreamId, Vec<Entry>>,
    ids: HashMap<EventId, u64>,
}

impl Tail {
    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Each run's filter of the streams it holds (`None`: written by a build without them, so
/// it may hold any), oldest first.
#[derive(Default)]
pub(super) struct RunStreams {
    runs: Vec<(i64, Option<Bloom<str>>)>,
}

/// What the writer shares with the readers: the tail, and which streams each run holds.
/// Only the writer changes either.
#[derive(Clone, Default)]
pub(super) struct Shared {
    tail: Arc<RwLock<Tail>>,
    streams: Arc<RwLock<RunStreams>>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// A reader's view of one stream in the tail: its entries from `from` on, taken before
    /// the runs are read (see the module doc).
    pub(super) fn tail_of_stream(&self, stream: &StreamId, from: u64) -> Vec<Entry> {
        read(&self.tail).streams.get(stream).map_or_else(Vec::new, |entries| {
            let start = entries.partition_point(|e| e.revision < from);
            entries[start..].to_vec()
        })
    }

    /// The runs that may hold `stream`, newest first. Taken after the tail: a run is
    /// listed before its entries leave the tail.
    pub(super) fn runs_of(&self, stream: &StreamId) -> Vec<i64> {
        read(&self.streams)
            .runs
            .iter()
            .rev()
            .filter(|(_, filter)| filter.as_ref().is_none_or(|f| f.check(stream.as_str())))
            .map(|(run, _)| *run)
            .collect()
    }
}

/// Up to `limit` entries of a stream held in runs, from revision `from` on, in order.
/// `runs` are the runs that may hold the stream, newest first: the newest of them that
/// holds a revision at or before `from` is the oldest that can hold anything to return.
pub(super) fn stream_in_runs(
    conn: &Connection,
    runs: &[i64],
    stream: &StreamId,
    from: u64,
    limit: usize,
) -> Result<Vec<Entry>, StoreError> {
    let mut first_in_run = conn
        .prepare_cached("SELECT MIN(first_revision) FROM stream_blocks WHERE run = ?1 AND stream = ?2")
        .map_err(sql)?;
    let mut holding = Vec::new();
    for &run in runs {
        let first: Option<i64> = first_in_run.query_row(params![run, stream.as_str()], |r| r.get(0)).map_err(sql)?;
        let Some(first) = first else { continue };
        holding.push(run);
        if to_u64(first)? <= from {
            break;
        }
    }
    // A block that holds `from` starts less than a block's length before it (the index
    // seeks there). Of those, only blocks that end past `from` are taken: a block that ends
    // before it holds nothing to return, and must not use up the limit. Each block taken
    // then holds at least one entry, so `limit` blocks are enough.
    let mut blocks = conn
        .prepare_cached(
            "SELECT first_revision, positions FROM stream_blocks \
             WHERE run = ?1 AND stream = ?2 AND first_revision > ?3 \
             AND first_revision + length(positions) / 8 > ?4 \
             ORDER BY first_revision LIMIT ?5",
        )
        .map_err(sql)?;
    let from_db = to_i64(from)?;
    let earliest = from_db - STREAM_BLOCK as i64;
    let most = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut entries = Vec::new();
    for &run in holding.iter().rev() {
        let rows = blocks
            .query_map(params![run, stream.as_str(), earliest, from_db, most], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })
            .map_err(sql)?;
        for row in rows {
            let (first, positions) = row.map_err(sql)?;
            let block = decode_stream_block(to_u64(first)?, &positions)?;
            entries.extend(block.filter(|e| e.revision >= from));
            if entries.len() >= limit {
                entries.truncate(limit);
                return Ok(entries);
            }
        }
    }
    Ok(entries)
}

fn decode_stream_block(first: u64, positions: &[u8]) -> Result<impl Iterator<Item = Entry> + '_, StoreError> {
    if !positions.len().is_multiple_of(8) {
        return Err(StoreError::Corrupt(format!("stream block of {} bytes", positions.len())));
    }
    Ok(positions
        .chunks_exact(8)
        .zip(first..)
        .map(|(p, revision)| Entry { revision, position: u64::from_le_bytes(p.try_into().unwrap_or_default()) }))
}

/// The last entry of a stream: the tail first, then the runs that may hold it, from newest
/// to oldest.
pub(super) fn head(conn: &Connection, shared: &Shared, stream: &StreamId) -> Result<Option<Entry>, StoreError> {
    if let Some(last) = read(&shared.tail).streams.get(stream).and_then(|e| e.last()) {
        return Ok(Some(*last));
    }
    let runs = shared.runs_of(stream);
    let mut last = conn
        .prepare_cached(
            "SELECT first_revision, positions FROM stream_blocks WHERE run = ?1 AND stream = ?2 \
             ORDER BY first_revision DESC LIMIT 1",
        )
        .map_err(sql)?;
    for run in runs {
        let found = last
            .query_row(params![run, stream.as_str()], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
            .optional()
            .map_err(sql)?;
        if let Some((first, positions)) = found {
            return Ok(decode_stream_block(to_u64(first)?, &positions)?.last());
        }
    }
    Ok(None)
}

/// Writes one run's stream entries, sorted by stream and revision, as blocks.
fn put_stream_blocks<'a>(
    conn: &Connection,
    run: i64,
    sorted: impl IntoIterator<Item = (&'a str, Entry)>,
) -> Result<(), StoreError> {
    let mut put = conn
        .prepare_cached("INSERT INTO stream_blocks (run, stream, first_revision, positions) VALUES (?1, ?2, ?3, ?4)")
        .map_err(sql)?;
    let mut block: Option<(&str, u64, Vec<u8>)> = None;
    let mut flush =
        |b: &(&str, u64, Vec<u8>)| put.execute(params![run, b.0, to_i64(b.1)?, b.2]).map(|_| ()).map_err(sql);
    for (stream, entry) in sorted {
        let continues = block.as_ref().is_some_and(|(s, first, positions)| {
            *s == stream && positions.len() < STREAM_BLOCK * 8 && first + (positions.len() / 8) as u64 == entry.revision
        });
        if !continues {
            if let Some(b) = block.take() {
                flush(&b)?;
            }
            block = Some((stream, entry.revision, Vec::with_capacity(64)));
        }
        if let Some((_, _, positions)) = block.as_mut() {
            positions.extend_from_slice(&entry.position.to_le_bytes());
        }
    }
    if let Some(b) = block {
        flush(&b)?;
    }
    Ok(())
}

/// Writes one run's ids, sorted, as blocks, and returns their filter; `group` takes them in
/// too.
fn put_id_blocks(
    conn: &Connection,
    run: i64,
    count: usize,
    sorted: impl IntoIterator<Item = Result<(EventId, u64), StoreError>>,
    mut group: Option<&mut Bloom<[u8; 16]>>,
) -> Result<Bloom<[u8; 16]>, StoreError> {
    let mut filter = new_filter(count)?;
    let mut put =
        conn.prepare_cached("INSERT INTO id_blocks (run, first_id, entries) VALUES (?1, ?2, ?3)").map_err(sql)?;
    let mut block = Vec::with_capacity(ID_BLOCK * ID_ENTRY);
    let mut flush = |block: &mut Vec<u8>| -> Result<(), StoreError> {
        if !block.is_empty() {
            put.execute(params![run, &block[..16], &block[..]]).map_err(sql)?;
            block.clear();
        }
        Ok(())
    };
    for item in sorted {
        let (id, position) = item?;
        filter.set(id.as_bytes());
        if let Some(group) = group.as_deref_mut() {
            group.set(id.as_bytes());
        }
        block.extend_from_slice(id.as_bytes());
        block.extend_from_slice(&position.to_le_bytes());
        if block.len() == ID_BLOCK * ID_ENTRY {
            flush(&mut block)?;
        }
    }
    flush(&mut block)?;
    Ok(filter)
}

/// An empty filter for `count` entries, with a random key.
fn new_filter<T: ?Sized>(count: usize) -> Result<Bloom<T>, StoreError> {
    Bloom::new_for_fp_rate_with_seed(count.max(1), FILTER_FP_RATE, &random_seed()?)
        .map_err(|e| StoreError::Backend(format!("index filter: {e}")))
}

/// The position of `id` in one run's id blocks, if it is there.
fn id_in_run(conn: &Connection, run: i64, id: &EventId) -> Result<Option<u64>, StoreError> {
    let entries: Option<Vec<u8>> = conn
        .prepare_cached(
            "SELECT entries FROM id_blocks WHERE run = ?1 AND first_id <= ?2 ORDER BY first_id DESC LIMIT 1",
        )
        .map_err(sql)?
        .query_row(params![run, id.as_bytes().as_slice()], |r| r.get(0))
        .optional()
        .map_err(sql)?;
    let Some(entries) = entries else { return Ok(None) };
    if !entries.len().is_multiple_of(ID_ENTRY) {
        return Err(StoreError::Corrupt(format!("id block of {} bytes", entries.len())));
    }
    let pairs: Vec<&[u8]> = entries.chunks_exact(ID_ENTRY).collect();
    Ok(pairs
        .binary_search_by(|pair| pair[..16].cmp(id.as_bytes().as_slice()))
        .ok()
        .map(|i| u64::from_le_bytes(pairs[i][16..].try_into().unwrap_or_default())))
}

/// The event ids of runs `first_run..end_run`, as one filter.
struct IdGroup {
    first_run: i64,
    end_run: i64,
    filter: Bloom<[u8; 16]>,
}

impl IdGroup {
    /// The group of [`RUNS_PER_ID_GROUP`] runs that starts at `first_run`, built from the id
    /// blocks of its runs before `next_run`, with room for the rest at `run_events` each.
    fn read(conn: &Connection, first_run: i64, next_run: i64, run_events: usize) -> Result<Self, StoreError> {
        let held: i64 = conn
            .query_row(
                "SELECT COALESCE(SUM(end_position - first_position), 0) FROM index_runs WHERE run >= ?1 AND run < ?2",
                params![first_run, next_run],
                |r| r.get(0),
            )
            .map_err(sql)?;
        let to_come = usize::try_from(first_run + RUNS_PER_ID_GROUP - next_run).unwrap_or(0);
        // A run takes in whole batches, so it may pass `run_events` a little.
        let room = usize::try_from(held).unwrap_or(0) + to_come * (run_events + run_events / 4);
        let mut group = Self { first_run, end_run: first_run + RUNS_PER_ID_GROUP, filter: new_filter(room)? };
        let mut stmt = conn.prepare("SELECT entries FROM id_blocks WHERE run >= ?1 AND run < ?2").map_err(sql)?;
        let rows = stmt.query_map(params![first_run, next_run], |r| r.get::<_, Vec<u8>>(0)).map_err(sql)?;
        for row in rows {
            let entries = row.map_err(sql)?;
            for pair in entries.chunks_exact(ID_ENTRY) {
                let id: [u8; 16] = pair[..16].try_into().unwrap_or_default();
                group.filter.set(&id);
            }
        }
        Ok(group)
    }

    fn put(&self, conn: &Connection) -> Result<(), StoreError> {
        conn.execute(
            "INSERT INTO index_id_groups (first_run, end_run, id_filter) VALUES (?1, ?2, ?3)",
            params![self.first_run, self.end_run, self.filter.as_slice()],
        )
        .map(drop)
        .map_err(sql)
    }
}

/// The writer's side of the index: the tail it fills, the filters of the runs, and the run
/// it writes when the tail is full.
pub(super) struct IndexWriter {
    shared: Shared,
    /// Groups whose runs are all written, oldest first.
    id_groups: Vec<IdGroup>,
    /// The group the next run goes into.
    open_group: IdGroup,
    next_run: i64,
    /// The first position the tail covers.
    tail_from: u64,
    run_events: usize,
}

impl IndexWriter {
    /// Loads the runs' filters and rebuilds the tail from the events past the last run.
    pub(super) fn open(conn: &Connection, run_events: usize) -> Result<(Self, Shared), StoreError> {
        let run_events = run_events.max(1);
        conn.execute_batch(ADDED_SCHEMA).map_err(sql)?;
        let (next_run, tail_from) = conn
            .query_row("SELECT COALESCE(MAX(run) + 1, 0), COALESCE(MAX(end_position), 0) FROM index_runs", [], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .map_err(sql)?;
        let tail_from = to_u64(tail_from)?;
        let streams = load_run_streams(conn)?;
        let id_groups = load_id_groups(conn, next_run, run_events)?;
        let open_first = id_groups.last().map_or(0, |g| g.end_run);
        let open_group = IdGroup::read(conn, open_first, next_run, run_events)?;

        let mut tail = Tail::default();
        let mut stmt = conn
            .prepare("SELECT stream, revision, event_id, position FROM events WHERE position >= ?1 ORDER BY position")
            .map_err(sql)?;
        let rows = stmt
            .query_map([to_i64(tail_from)?], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?, r.get::<_, i64>(3)?))
            })
            .map_err(sql)?;
        for row in rows {
            let (stream, revision, id, position) = row.map_err(sql)?;
            let stream = StreamId::new(stream).map_err(|e| StoreError::Corrupt(format!("stored stream: {e}")))?;
            let id = EventId::from_slice(&id).map_err(|e| StoreError::Corrupt(format!("stored event id: {e}")))?;
            let entry = Entry { revision: to_u64(revision)?, position: to_u64(position)? };
            tail.ids.insert(id, entry.position);
            tail.streams.entry(stream).or_default().push(entry);
        }
        let shared = Shared { tail: Arc::new(RwLock::new(tail)), streams: Arc::new(RwLock::new(streams)) };
        let writer = Self { shared: shared.clone(), id_groups, open_group, next_run, tail_from, run_events };
        Ok((writer, shared))
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.shared
    }

    /// The position of a committed event with this id, if there is one.
    pub(super) fn position_of(&self, conn: &Connection, id: &EventId) -> Result<Option<u64>, StoreError> {
        if let Some(position) = read(&self.shared.tail).ids.get(id) {
            return Ok(Some(*position));
        }
        // The open group holds no run until its first is written.
        let open = Some(&self.open_group).filter(|g| g.first_run < self.next_run);
        let groups = open.into_iter().chain(self.id_groups.iter().rev());
        for group in groups.filter(|g| g.filter.check(id.as_bytes())) {
            for run in (group.first_run..group.end_run.min(self.next_run)).rev() {
                if let Some(position) = id_in_run(conn, run, id)? {
                    return Ok(Some(position));
                }
            }
        }
        Ok(None)
    }

    /// Takes in appends that have just committed, in position order.
    pub(super) fn committed(&mut self, appends: Vec<CommittedAppend>) {
        let mut tail = write(&self.shared.tail);
        for append in appends {
            tail.ids.extend(append.ids.iter().zip(&append.entries).map(|(id, e)| (*id, e.position)));
            match tail.streams.get_mut(&append.stream) {
                Some(entries) => entries.extend(append.entries),
                None => {
                    tail.streams.insert(append.stream, append.entries);
                }
            }
        }
    }

    /// Whether the tail holds enough for a run.
    pub(super) fn run_due(&self) -> bool {
        read(&self.shared.tail).len() >= self.run_events
    }

    /// Writes the tail as one run in its own transaction, then empties it. On failure the
    /// tail stays as it was, and the next call tries again.
    pub(super) fn write_run(&mut self, conn: &Connection, end_position: u64) -> Result<(), StoreError> {
        let run = self.next_run;
        let closes_group = run + 1 == self.open_group.end_run;
        // Made first, so that nothing can fail between the commit and the change of group.
        let next_group = closes_group.then(|| IdGroup::read(conn, run + 1, run + 1, self.run_events)).transpose()?;
        let txn = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
        let (id_filter, stream_filter) = {
            let tail = read(&self.shared.tail);
            if tail.ids.is_empty() {
                return Ok(());
            }
            let mut streams: Vec<(&StreamId, &Vec<Entry>)> = tail.streams.iter().collect();
            streams.sort_unstable_by_key(|(s, _)| s.as_str());
            put_stream_blocks(
                &txn,
                run,
                streams.iter().flat_map(|(s, entries)| entries.iter().map(|e| (s.as_str(), *e))),
            )?;
            let mut stream_filter: Bloom<str> = new_filter(streams.len())?;
            for (stream, _) in &streams {
                stream_filter.set(stream.as_str());
            }
            let mut ids: Vec<(EventId, u64)> = tail.ids.iter().map(|(id, p)| (*id, *p)).collect();
            ids.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            // A failed write leaves its ids set in the group's filter: a few more seeks, no
            // wrong answer.
            let id_filter =
                put_id_blocks(&txn, run, ids.len(), ids.into_iter().map(Ok), Some(&mut self.open_group.filter))?;
            (id_filter, stream_filter)
        };
        // The run's own id filter is read by builds before id groups, not by this one.
        txn.execute(
            "INSERT INTO index_runs (run, first_position, end_position, id_filter) VALUES (?1, ?2, ?3, ?4)",
            params![run, to_i64(self.tail_from)?, to_i64(end_position)?, id_filter.as_slice()],
        )
        .map_err(sql)?;
        txn.execute(
            "INSERT INTO index_run_streams (run, stream_filter) VALUES (?1, ?2)",
            params![run, stream_filter.as_slice()],
        )
        .map_err(sql)?;
        if closes_group {
            self.open_group.put(&txn)?;
        }
        txn.commit().map_err(sql)?;
        // Listed before the tail lets go of its entries: see `Shared::runs_of`.
        write(&self.shared.streams).runs.push((run, Some(stream_filter)));
        *write(&self.shared.tail) = Tail::default();
        self.next_run = run + 1;
        self.tail_from = end_position;
        if let Some(next) = next_group {
            self.id_groups.push(std::mem::replace(&mut self.open_group, next));
        }
        metrics::gauge!("gezinsdossier_sqlite_index_runs").set(self.next_run as f64);
        Ok(())
    }
}

/// Every run's stream filter, oldest first; `None` for a run written without one.
fn load_run_streams(conn: &Connection) -> Result<RunStreams, StoreError> {
    let mut stmt = conn
        .prepare(
            "SELECT r.run, s.stream_filter FROM index_runs r LEFT JOIN index_run_streams s ON s.run = r.run \
             ORDER BY r.run",
        )
        .map_err(sql)?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<Vec<u8>>>(1)?))).map_err(sql)?;
    let mut streams = RunStreams::default();
    for row in rows {
        let (run, bytes) = row.map_err(sql)?;
        let filter = bytes
            .map(Bloom::from_bytes)
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("index run {run}: stream filter: {e}")))?;
        streams.runs.push((run, filter));
    }
    Ok(streams)
}

/// The filters of every id group whose runs are all written, oldest first. A group without
/// one (its runs written by an older build) gets it now, built from its id blocks.
fn load_id_groups(conn: &Connection, next_run: i64, run_events: usize) -> Result<Vec<IdGroup>, StoreError> {
    let mut groups = Vec::new();
    {
        let mut stmt = conn
            .prepare("SELECT first_run, end_run, id_filter FROM index_id_groups ORDER BY first_run")
            .map_err(sql)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?)))
            .map_err(sql)?;
        for row in rows {
            let (first_run, end_run, bytes) = row.map_err(sql)?;
            let covered = groups.last().map_or(0, |g: &IdGroup| g.end_run);
            if first_run != covered || end_run <= first_run || end_run > next_run {
                return Err(StoreError::Corrupt(format!(
                    "id group of runs {first_run}..{end_run} after run {covered}"
                )));
            }
            let filter = Bloom::from_bytes(bytes)
                .map_err(|e| StoreError::Corrupt(format!("id group at run {first_run}: {e}")))?;
            groups.push(IdGroup { first_run, end_run, filter });
        }
    }
    loop {
        let first_run = groups.last().map_or(0, |g| g.end_run);
        if first_run + RUNS_PER_ID_GROUP > next_run {
            return Ok(groups);
        }
        tracing::info!(first_run, "building the id filter of a group of index runs");
        let group = IdGroup::read(conn, first_run, first_run + RUNS_PER_ID_GROUP, run_events)?;
        group.put(conn)?;
        groups.push(group);
    }
}

/// Turns a version-1 file (an `events` table with its two unique indexes) into version 2:
/// the events without those indexes, and everything in them as run 0. Runs inside the
/// caller's transaction.
pub(super) fn migrate_from_v1(conn: &Connection, events_schema: &str) -> Result<(), StoreError> {
    conn.execute_batch(&format!(
        "DROP TABLE IF EXISTS index_run_streams; DROP TABLE IF EXISTS index_id_groups;
         ALTER TABLE events RENAME TO events_v1; {events_schema} {SCHEMA}
         INSERT INTO events SELECT * FROM events_v1 ORDER BY position;"
    ))
    .map_err(sql)?;
    // The old unique indexes give both orders without a sort.
    let (count, end): (i64, i64) = conn
        .query_row("SELECT COUNT(*), COALESCE(MAX(position) + 1, 0) FROM events", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql)?;
    if count > 0 {
        let mut stmt =
            conn.prepare("SELECT stream, revision, position FROM events_v1 ORDER BY stream, revision").map_err(sql)?;
        let rows: Vec<(String, Entry)> = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?)))
            .map_err(sql)?
            .map(|row| {
                let (stream, revision, position) = row.map_err(sql)?;
                Ok((stream, Entry { revision: to_u64(revision)?, position: to_u64(position)? }))
            })
            .collect::<Result<_, StoreError>>()?;
        put_stream_blocks(conn, 0, rows.iter().map(|(s, e)| (s.as_str(), *e)))?;
        let mut stmt = conn.prepare("SELECT event_id, position FROM events_v1 ORDER BY event_id").map_err(sql)?;
        let ids = stmt.query_map([], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?))).map_err(sql)?.map(|row| {
            let (id, position) = row.map_err(sql)?;
            let id = EventId::from_slice(&id).map_err(|e| StoreError::Corrupt(format!("stored event id: {e}")))?;
            Ok((id, to_u64(position)?))
        });
        let filter = put_id_blocks(conn, 0, usize::try_from(count).unwrap_or(usize::MAX), ids, None)?;
        conn.execute(
            "INSERT INTO index_runs (run, first_position, end_position, id_filter) VALUES (0, 0, ?1, ?2)",
            params![end, filter.as_slice()],
        )
        .map_err(sql)?;
        // However many ids it holds, the run is a group of its own: the open group, rebuilt
        // at every open, starts after it.
        conn.execute_batch(ADDED_SCHEMA).map_err(sql)?;
        IdGroup { first_run: 0, end_run: 1, filter }.put(conn)?;
    }
    conn.execute_batch("DROP TABLE events_v1;").map_err(sql)
}

fn random_seed() -> Result<[u8; 32], StoreError> {
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| StoreError::Backend("no randomness for an id filter".into()))?;
    Ok(seed)
}

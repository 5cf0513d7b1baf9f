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
//! - Each run keeps a Bloom filter of its event ids, so that a new id costs a seek only in
//!   a run that may hold it (0.1% false positives; the filter's SipHash key is random per
//!   run, so ids cannot be chosen to defeat it).
//! - Runs are never merged. An id lookup seeks once per run whose filter may hold the id;
//!   a stream read or head lookup seeks in every run: 10 M events at the default 65,536 per
//!   run make 153 runs.
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

/// False-positive rate of each run's id filter: 1.8 bytes per event.
const FILTER_FP_RATE: f64 = 0.001;

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

/// The tail, shared by the writer (which alone changes it) and the readers.
pub(super) type SharedTail = Arc<RwLock<Tail>>;

fn read(tail: &SharedTail) -> std::sync::RwLockReadGuard<'_, Tail> {
    tail.read().unwrap_or_else(|e| e.into_inner())
}

fn write(tail: &SharedTail) -> std::sync::RwLockWriteGuard<'_, Tail> {
    tail.write().unwrap_or_else(|e| e.into_inner())
}

/// A reader's view of one stream in the tail: its entries from `from` on, taken before the
/// runs are read (see the module doc).
pub(super) fn tail_of_stream(tail: &SharedTail, stream: &StreamId, from: u64) -> Vec<Entry> {
    read(tail).streams.get(stream).map_or_else(Vec::new, |entries| {
        let start = entries.partition_point(|e| e.revision < from);
        entries[start..].to_vec()
    })
}

/// Up to `limit` entries of a stream held in runs, from revision `from` on, in order.
pub(super) fn stream_in_runs(
    conn: &Connection,
    stream: &StreamId,
    from: u64,
    limit: usize,
) -> Result<Vec<Entry>, StoreError> {
    // A block that holds `from` starts less than a block's length before it (the index
    // seeks there). Of those, only blocks that end past `from` are taken: a block that ends
    // before it holds nothing to return, and must not use up the limit. Each block taken
    // then holds at least one entry, so `limit` blocks are enough.
    let mut stmt = conn
        .prepare_cached(
            "SELECT first_revision, positions FROM stream_blocks \
             WHERE run IN (SELECT run FROM index_runs) AND stream = ?1 AND first_revision > ?2 \
             AND first_revision + length(positions) / 8 > ?3 \
             ORDER BY run, first_revision LIMIT ?4",
        )
        .map_err(sql)?;
    let from_db = to_i64(from)?;
    let earliest = from_db - STREAM_BLOCK as i64;
    let blocks = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = stmt
        .query_map(params![stream.as_str(), earliest, from_db, blocks], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .map_err(sql)?;
    let mut entries = Vec::new();
    for row in rows {
        let (first, positions) = row.map_err(sql)?;
        let block = decode_stream_block(to_u64(first)?, &positions)?;
        entries.extend(block.filter(|e| e.revision >= from));
        if entries.len() >= limit {
            break;
        }
    }
    entries.truncate(limit);
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

/// The last entry of a stream: the tail first, then the runs from newest to oldest.
pub(super) fn head(conn: &Connection, tail: &SharedTail, stream: &StreamId) -> Result<Option<Entry>, StoreError> {
    if let Some(last) = read(tail).streams.get(stream).and_then(|e| e.last()) {
        return Ok(Some(*last));
    }
    let mut runs = conn.prepare_cached("SELECT run FROM index_runs ORDER BY run DESC").map_err(sql)?;
    let runs = runs.query_map([], |r| r.get::<_, i64>(0)).map_err(sql)?.collect::<Result<Vec<_>, _>>().map_err(sql)?;
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

/// Writes one run's ids, sorted, as blocks, and returns their filter.
fn put_id_blocks(
    conn: &Connection,
    run: i64,
    count: usize,
    sorted: impl IntoIterator<Item = Result<(EventId, u64), StoreError>>,
) -> Result<Bloom<[u8; 16]>, StoreError> {
    let mut filter = Bloom::new_for_fp_rate_with_seed(count.max(1), FILTER_FP_RATE, &random_seed()?)
        .map_err(|e| StoreError::Backend(format!("id filter: {e}")))?;
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
        block.extend_from_slice(id.as_bytes());
        block.extend_from_slice(&position.to_le_bytes());
        if block.len() == ID_BLOCK * ID_ENTRY {
            flush(&mut block)?;
        }
    }
    flush(&mut block)?;
    Ok(filter)
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

/// One run's id filter, as the writer keeps it.
struct RunFilter {
    run: i64,
    filter: Bloom<[u8; 16]>,
}

/// The writer's side of the index: the tail it fills, the id filters of the runs, and the
/// run it writes when the tail is full.
pub(super) struct IndexWriter {
    tail: SharedTail,
    filters: Vec<RunFilter>,
    /// The first position the tail covers.
    tail_from: u64,
    run_events: usize,
}

impl IndexWriter {
    /// Loads the runs' filters and rebuilds the tail from the events past the last run.
    pub(super) fn open(conn: &Connection, run_events: usize) -> Result<(Self, SharedTail), StoreError> {
        let mut filters = Vec::new();
        let mut tail_from = 0u64;
        {
            let mut stmt =
                conn.prepare("SELECT run, end_position, id_filter FROM index_runs ORDER BY run").map_err(sql)?;
            let rows = stmt
                .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, Vec<u8>>(2)?)))
                .map_err(sql)?;
            for row in rows {
                let (run, end, bytes) = row.map_err(sql)?;
                let filter = Bloom::from_bytes(bytes)
                    .map_err(|e| StoreError::Corrupt(format!("index run {run}: id filter: {e}")))?;
                filters.push(RunFilter { run, filter });
                tail_from = to_u64(end)?;
            }
        }
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
        let tail = Arc::new(RwLock::new(tail));
        Ok((Self { tail: tail.clone(), filters, tail_from, run_events: run_events.max(1) }, tail))
    }

    pub(super) fn tail(&self) -> &SharedTail {
        &self.tail
    }

    /// The position of a committed event with this id, if there is one.
    pub(super) fn position_of(&self, conn: &Connection, id: &EventId) -> Result<Option<u64>, StoreError> {
        if let Some(position) = read(&self.tail).ids.get(id) {
            return Ok(Some(*position));
        }
        for run in self.filters.iter().rev().filter(|r| r.filter.check(id.as_bytes())) {
            if let Some(position) = id_in_run(conn, run.run, id)? {
                return Ok(Some(position));
            }
        }
        Ok(None)
    }

    /// Takes in appends that have just committed, in position order.
    pub(super) fn committed(&mut self, appends: Vec<CommittedAppend>) {
        let mut tail = write(&self.tail);
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
        read(&self.tail).len() >= self.run_events
    }

    /// Writes the tail as one run in its own transaction, then empties it. On failure the
    /// tail stays as it was, and the next call tries again.
    pub(super) fn write_run(&mut self, conn: &Connection, end_position: u64) -> Result<(), StoreError> {
        let run = self.filters.last().map_or(0, |r| r.run + 1);
        let txn = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
        let filter = {
            let tail = read(&self.tail);
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
            let mut ids: Vec<(EventId, u64)> = tail.ids.iter().map(|(id, p)| (*id, *p)).collect();
            ids.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            put_id_blocks(&txn, run, ids.len(), ids.into_iter().map(Ok))?
        };
        txn.execute(
            "INSERT INTO index_runs (run, first_position, end_position, id_filter) VALUES (?1, ?2, ?3, ?4)",
            params![run, to_i64(self.tail_from)?, to_i64(end_position)?, filter.as_slice()],
        )
        .map_err(sql)?;
        txn.commit().map_err(sql)?;
        *write(&self.tail) = Tail::default();
        self.filters.push(RunFilter { run, filter });
        self.tail_from = end_position;
        metrics::gauge!("gezinsdossier_sqlite_index_runs").set(self.filters.len() as f64);
        Ok(())
    }
}

/// Turns a version-1 file (an `events` table with its two unique indexes) into version 2:
/// the events without those indexes, and everything in them as run 0. Runs inside the
/// caller's transaction.
pub(super) fn migrate_from_v1(conn: &Connection, events_schema: &str) -> Result<(), StoreError> {
    conn.execute_batch(&format!(
        "ALTER TABLE events RENAME TO events_v1; {events_schema} {SCHEMA}
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
        let filter = put_id_blocks(conn, 0, usize::try_from(count).unwrap_or(usize::MAX), ids)?;
        conn.execute(
            "INSERT INTO index_runs (run, first_position, end_position, id_filter) VALUES (0, 0, ?1, ?2)",
            params![end, filter.as_slice()],
        )
        .map_err(sql)?;
    }
    conn.execute_batch("DROP TABLE events_v1;").map_err(sql)
}

fn random_seed() -> Result<[u8; 32], StoreError> {
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| StoreError::Backend("no randomness for an id filter".into()))?;
    Ok(seed)
}

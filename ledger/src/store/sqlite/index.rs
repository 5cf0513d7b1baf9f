//! The embedded store's lookups by stream and by event id, kept off the append path.
//!
//! Why: a B-tree index on a random key (a v4 event id, or one family among thousands) makes
//! every append dirty a page of its own, so each 500-byte event cost 6–9 KiB of WAL
//! (BENCHMARKS.md). Here an append writes only its row, in position order. Its lookup
//! entries wait in memory, in the *tail*, and are written sorted, as one *run*, once the tail
//! holds [`SqliteOptions::run_events`](super::SqliteOptions::run_events) events: appended at
//! the right edge of two `WITHOUT ROWID` tables, each page written once.
//! - The runs tile the log from position 0, so the tail is always every event past the last
//!   run. At open it is read back from the events themselves: nothing is lost in a crash.
//! - Each run keeps a Bloom filter of its event ids, so that a new id costs a seek only in
//!   a run that may hold it (0.1% false positives; the filter's SipHash key is random per
//!   run, so ids cannot be chosen to defeat it).
//! - Runs are never merged. A lookup therefore seeks once per run that may hold its key:
//!   10 M events at the default 65,536 per run make 153 runs.
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

/// The tables of the index (schema version 2).
pub(super) const SCHEMA: &str = "
CREATE TABLE index_runs (
    run            INTEGER PRIMARY KEY,
    first_position INTEGER NOT NULL,
    end_position   INTEGER NOT NULL,
    id_filter      BLOB    NOT NULL
);
CREATE TABLE stream_runs (
    run      INTEGER NOT NULL,
    stream   TEXT    NOT NULL,
    revision INTEGER NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (run, stream, revision)
) WITHOUT ROWID;
CREATE TABLE id_runs (
    run      INTEGER NOT NULL,
    event_id BLOB    NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (run, event_id)
) WITHOUT ROWID;";

/// False-positive rate of each run's id filter: 1.8 bytes per event.
const FILTER_FP_RATE: f64 = 0.001;

/// Where one committed event can be found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Entry {
    pub revision: u64,
    pub position: u64,
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

/// The last entry of a stream: the tail first, then the runs from newest to oldest.
pub(super) fn head(conn: &Connection, tail: &SharedTail, stream: &StreamId) -> Result<Option<Entry>, StoreError> {
    if let Some(last) = read(tail).streams.get(stream).and_then(|e| e.last()) {
        return Ok(Some(*last));
    }
    let mut runs = conn.prepare_cached("SELECT run FROM index_runs ORDER BY run DESC").map_err(sql)?;
    let runs = runs.query_map([], |r| r.get::<_, i64>(0)).map_err(sql)?.collect::<Result<Vec<_>, _>>().map_err(sql)?;
    let mut last = conn
        .prepare_cached(
            "SELECT revision, position FROM stream_runs WHERE run = ?1 AND stream = ?2 ORDER BY revision DESC LIMIT 1",
        )
        .map_err(sql)?;
    for run in runs {
        let found = last
            .query_row(params![run, stream.as_str()], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))
            .optional()
            .map_err(sql)?;
        if let Some((revision, position)) = found {
            return Ok(Some(Entry { revision: to_u64(revision)?, position: to_u64(position)? }));
        }
    }
    Ok(None)
}

/// SQL for the positions of one stream's events held in runs, from a revision on, in
/// revision order: `?1` stream, `?2` first revision, `?3` limit. Select columns of the
/// events row aliased `e` before it.
pub(super) const STREAM_IN_RUNS: &str = "FROM stream_runs s JOIN events e ON e.position = s.position \
     WHERE s.run IN (SELECT run FROM index_runs) AND s.stream = ?1 AND s.revision >= ?2 \
     ORDER BY s.revision LIMIT ?3";

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
        let mut stmt =
            conn.prepare_cached("SELECT position FROM id_runs WHERE run = ?1 AND event_id = ?2").map_err(sql)?;
        for run in self.filters.iter().rev().filter(|r| r.filter.check(id.as_bytes())) {
            let found = stmt
                .query_row(params![run.run, id.as_bytes().as_slice()], |r| r.get::<_, i64>(0))
                .optional()
                .map_err(sql)?;
            if let Some(position) = found {
                return Ok(Some(to_u64(position)?));
            }
        }
        Ok(None)
    }

    /// Takes in events that have just committed, in position order.
    pub(super) fn committed(&mut self, events: impl IntoIterator<Item = (StreamId, EventId, Entry)>) {
        let mut tail = write(&self.tail);
        for (stream, id, entry) in events {
            tail.ids.insert(id, entry.position);
            tail.streams.entry(stream).or_default().push(entry);
        }
    }

    /// Whether the tail holds enough for a run.
    pub(super) fn run_due(&self) -> bool {
        read(&self.tail).len() >= self.run_events
    }

    /// Writes the tail as one run in its own transaction, then empties it. On failure the
    /// tail stays as it was, and the next call tries again.
    pub(super) fn write_run(&mut self, conn: &Connection, end_position: u64) -> Result<(), StoreError> {
        let (mut streams, mut ids) = {
            let tail = read(&self.tail);
            let streams: Vec<(StreamId, Entry)> =
                tail.streams.iter().flat_map(|(s, entries)| entries.iter().map(move |e| (s.clone(), *e))).collect();
            let ids: Vec<(EventId, u64)> = tail.ids.iter().map(|(id, p)| (*id, *p)).collect();
            (streams, ids)
        };
        if ids.is_empty() {
            return Ok(());
        }
        streams.sort_unstable_by(|a, b| (a.0.as_str(), a.1.revision).cmp(&(b.0.as_str(), b.1.revision)));
        ids.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let mut filter = Bloom::new_for_fp_rate_with_seed(ids.len(), FILTER_FP_RATE, &random_seed()?)
            .map_err(|e| StoreError::Backend(format!("id filter: {e}")))?;
        for (id, _) in &ids {
            filter.set(id.as_bytes());
        }
        let run = self.filters.last().map_or(0, |r| r.run + 1);
        let txn = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
        {
            let mut put = txn
                .prepare_cached("INSERT INTO stream_runs (run, stream, revision, position) VALUES (?1, ?2, ?3, ?4)")
                .map_err(sql)?;
            for (stream, e) in &streams {
                put.execute(params![run, stream.as_str(), to_i64(e.revision)?, to_i64(e.position)?]).map_err(sql)?;
            }
            let mut put =
                txn.prepare_cached("INSERT INTO id_runs (run, event_id, position) VALUES (?1, ?2, ?3)").map_err(sql)?;
            for (id, position) in &ids {
                put.execute(params![run, id.as_bytes().as_slice(), to_i64(*position)?]).map_err(sql)?;
            }
            txn.execute(
                "INSERT INTO index_runs (run, first_position, end_position, id_filter) VALUES (?1, ?2, ?3, ?4)",
                params![run, to_i64(self.tail_from)?, to_i64(end_position)?, filter.as_slice()],
            )
            .map_err(sql)?;
        }
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
         INSERT INTO events SELECT * FROM events_v1 ORDER BY position;
         DROP TABLE events_v1;"
    ))
    .map_err(sql)?;
    let (count, end): (i64, i64) = conn
        .query_row("SELECT COUNT(*), COALESCE(MAX(position) + 1, 0) FROM events", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(sql)?;
    if count == 0 {
        return Ok(());
    }
    conn.execute_batch(
        "INSERT INTO stream_runs SELECT 0, stream, revision, position FROM events ORDER BY stream, revision;
         INSERT INTO id_runs SELECT 0, event_id, position FROM events ORDER BY event_id;",
    )
    .map_err(sql)?;
    let mut filter =
        Bloom::new_for_fp_rate_with_seed(usize::try_from(count).unwrap_or(usize::MAX), FILTER_FP_RATE, &random_seed()?)
            .map_err(|e| StoreError::Backend(format!("id filter: {e}")))?;
    {
        let mut stmt = conn.prepare("SELECT event_id FROM id_runs WHERE run = 0").map_err(sql)?;
        let ids = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).map_err(sql)?;
        for id in ids {
            let id = EventId::from_slice(&id.map_err(sql)?)
                .map_err(|e| StoreError::Corrupt(format!("stored event id: {e}")))?;
            filter.set(id.as_bytes());
        }
    }
    conn.execute(
        "INSERT INTO index_runs (run, first_position, end_position, id_filter) VALUES (0, 0, ?1, ?2)",
        params![end, filter.as_slice()],
    )
    .map_err(sql)?;
    Ok(())
}

fn random_seed() -> Result<[u8; 32], StoreError> {
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| StoreError::Backend("no randomness for an id filter".into()))?;
    Ok(seed)
}

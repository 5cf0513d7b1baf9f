//! The embedded store: one SQLite file in a data directory.
//!
//! - WAL journal with `synchronous=FULL`: a commit returns only after the WAL is synced, so
//!   an acknowledged append survives a crash or power loss.
//! - One writer thread owns the only writing connection. It drains every queued append into
//!   one transaction (group commit), syncs once, then acknowledges each caller. Throughput
//!   comes from batching, never from weaker durability.
//! - Positions are assigned by that single writer, so the global log is gapless and in commit
//!   order.
//! - Readers use their own connections; WAL lets them run beside the writer.
//! - Events are stored in position order with no index of their own; lookups by stream and
//!   by event id are kept in sorted runs written in bulk (see [`index`]).
//! - The file records its schema version (`PRAGMA user_version`) and an application id, both
//!   checked at open; a lock file keeps a second process from opening the same directory.

mod index;

use super::group_commit::{self, AppendRequest, WriterMsg};
use super::{AppendOutcome, EventStore, StoreError, earlier_append, link, revision_matches, subscription};
use crate::chain::EventHash;
use crate::envelope::{EventId, ExpectedRevision, ProposedEvent, RecordedEvent, StreamId};
use async_trait::async_trait;
use futures::stream::BoxStream;
use index::{CommittedAppend, Entry, IndexWriter};
use rusqlite::{Connection, OpenFlags, params};
use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::sync::{broadcast, mpsc, watch};

/// Layout version of the tables below. Bump with a migration when they change.
/// Version 1 had unique indexes on the events table; version 2 keeps them in runs.
pub const SCHEMA_VERSION: i64 = 2;
/// `PRAGMA application_id` of a gezinsdossier store: "GZD1".
const APPLICATION_ID: i64 = 0x475A_4431;
const DB_FILE: &str = "events.sqlite3";
const LOCK_FILE: &str = "events.lock";

/// The events in position order. Uniqueness of (stream, revision) and of event ids is the
/// writer's to keep, through [`index`]: a unique index here would cost a random page per event.
const EVENTS_SCHEMA: &str = "
CREATE TABLE events (
    position    INTEGER PRIMARY KEY,
    stream      TEXT    NOT NULL,
    revision    INTEGER NOT NULL,
    event_id    BLOB    NOT NULL,
    event_type  TEXT    NOT NULL,
    recorded_at INTEGER NOT NULL,
    payload     BLOB    NOT NULL,
    prev_hash   BLOB    NOT NULL,
    hash        BLOB    NOT NULL
);";

const COLUMNS: &str = "position, stream, revision, event_id, event_type, recorded_at, payload, prev_hash, hash";

/// Tuning for the embedded store.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// Most appends committed in one transaction.
    pub max_batch: usize,
    /// Appends that may wait for the writer before callers are slowed down.
    pub queue_depth: usize,
    /// The WAL's bound in bytes. Readers that never pause (feeds, dossier reads under load)
    /// keep passive checkpoints from ever resetting the WAL, so once it passes half of
    /// this, a checkpoint waits for them and the WAL starts again from its beginning,
    /// overwritten in place; a reset truncates the file to this size.
    pub wal_limit_bytes: u64,
    /// Events whose lookup entries are held in memory before they are written as one run
    /// (see [`index`]): more means fewer runs to search, and a longer pause to write each.
    pub run_events: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self { max_batch: 4096, queue_depth: 16_384, wal_limit_bytes: 64 << 20, run_events: 65_536 }
    }
}

/// The embedded SQLite event store. Cheap to clone; all clones share one writer.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    writer: mpsc::Sender<WriterMsg>,
    readers: ReaderPool,
    /// Lookup entries not yet in a run, and which runs hold which streams, kept by the writer.
    index: index::Shared,
    head: watch::Receiver<u64>,
    /// What the writer hands over as it commits, for subscribers in this process.
    tap: broadcast::Sender<subscription::Committed>,
    /// The OS lock that keeps other processes out; released by [`SqliteStore::shutdown`].
    lock: Mutex<Option<File>>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `dir`.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the directory or file cannot be opened or is locked by
    /// another process; [`StoreError::Corrupt`] when the file is not a gezinsdossier store or
    /// has another schema version.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        Self::open_with(dir, SqliteOptions::default())
    }

    /// [`SqliteStore::open`] with explicit tuning.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub fn open_with(dir: &Path, options: SqliteOptions) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| backend(format!("create data dir {}: {e}", dir.display())))?;
        let lock = File::create(dir.join(LOCK_FILE)).map_err(|e| backend(format!("create lock file: {e}")))?;
        lock.try_lock().map_err(|_| backend(format!("data dir {} is in use by another process", dir.display())))?;
        let path = dir.join(DB_FILE);
        let conn = Connection::open(&path).map_err(sql)?;
        stable_plans(&conn)?;
        // Checkpoints run on their own thread (see `checkpointer`), never in a commit.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA busy_timeout=5000; \
             PRAGMA cache_size=-16384; PRAGMA wal_autocheckpoint=0;",
        )
        .map_err(sql)?;
        conn.pragma_update(None, "journal_size_limit", i64::try_from(options.wal_limit_bytes).unwrap_or(i64::MAX))
            .map_err(sql)?;
        ensure_schema(&conn)?;
        let next_position: i64 =
            conn.query_row("SELECT COALESCE(MAX(position) + 1, 0) FROM events", [], |r| r.get(0)).map_err(sql)?;
        let next_position = to_u64(next_position)?;
        let (index, shared_index) = IndexWriter::open(&conn, options.run_events)?;

        let (head_tx, head_rx) = watch::channel(next_position);
        let (tap, _) = broadcast::channel(subscription::TAPPED_BATCHES);
        // Past half the bound, the WAL is restarted.
        let restart_after_frames = options.wal_limit_bytes / 2 / frame_bytes(&conn)?;
        let checkpoints = checkpointer(&path, head_rx.clone(), restart_after_frames)?;
        let (tx, rx) = mpsc::channel(options.queue_depth.max(1));
        // Passing that point wakes the checkpointer at once rather than at its next round.
        conn.wal_hook(Some(note_wal_frames));
        let writer = Writer {
            conn,
            heads: HashMap::new(),
            index,
            next_position,
            head: head_tx,
            tap: tap.clone(),
            checkpoints,
            wake_checkpointer_after: restart_after_frames,
        };
        let max_batch = options.max_batch.max(1);
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || writer.run(rx, max_batch))
            .map_err(|e| backend(format!("start writer thread: {e}")))?;

        Ok(Self {
            inner: Arc::new(Inner {
                writer: tx,
                readers: ReaderPool::new(path),
                index: shared_index,
                head: head_rx,
                tap,
                lock: Mutex::new(Some(lock)),
            }),
        })
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || inner.readers.with(f))
            .await
            .map_err(|e| backend(format!("reader task failed: {e}")))?
    }
}

#[async_trait]
impl EventStore for SqliteStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        group_commit::submit(&self.inner.writer, stream, expected, events).await
    }

    async fn read_stream(&self, stream: &StreamId, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        // The tail before the runs: see the `index` module.
        let in_tail = self.inner.index.tail_of_stream(stream, from);
        let runs = self.inner.index.runs_of(stream);
        let stream = stream.clone();
        self.read(move |c| {
            let mut entries = index::stream_in_runs(c, &runs, &stream, from, limit)?;
            let next = entries.last().map_or(from, |e| e.revision + 1);
            let room = limit.saturating_sub(entries.len());
            entries.extend(in_tail.into_iter().filter(|e| e.revision >= next).take(room));
            events_at(c, entries.iter().map(|e| e.position))
        })
        .await
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read(move |c| {
            query_events(
                c,
                &format!("SELECT {COLUMNS} FROM events WHERE position >= ?1 ORDER BY position LIMIT ?2"),
                params![to_i64(from)?, to_i64(limit as u64)?],
            )
        })
        .await
    }

    async fn stream_revision(&self, stream: &StreamId) -> Result<Option<u64>, StoreError> {
        let (stream, shared) = (stream.clone(), self.inner.index.clone());
        self.read(move |c| Ok(index::head(c, &shared, &stream)?.map(|e| e.revision))).await
    }

    fn subscribe_all(&self, from: u64) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
        subscription::follow(self, self.inner.head.clone(), Some(self.inner.tap.subscribe()), from)
    }

    async fn probe_writes(&self) -> Result<(), StoreError> {
        group_commit::probe(&self.inner.writer).await
    }

    async fn shutdown(&self) {
        group_commit::stop(&self.inner.writer).await;
        self.inner.lock.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

/// The last event of a stream, as the writer needs it.
#[derive(Debug, Clone, Copy)]
struct Head {
    revision: u64,
    hash: EventHash,
}

/// Stream heads the writer keeps. Past this many it forgets them all, and reads each again
/// at its stream's next append (a few seeks), so that its memory follows the streams in use
/// rather than every stream ever written.
const HEADS_KEPT: usize = 16_384;

struct Writer {
    conn: Connection,
    /// Committed stream heads (`None`: the stream has no events). Only this thread writes,
    /// so the cache cannot go stale. Bounded by [`HEADS_KEPT`].
    heads: HashMap<StreamId, Option<Head>>,
    /// Lookups by stream and event id, and the runs they are written to.
    index: IndexWriter,
    next_position: u64,
    head: watch::Sender<u64>,
    tap: broadcast::Sender<subscription::Committed>,
    /// Wakes the checkpointer; dropped with the writer, which stops it.
    checkpoints: std::sync::mpsc::Sender<()>,
    /// WAL frames past which the checkpointer is woken at once.
    wake_checkpointer_after: u64,
}

thread_local! {
    /// Frames in the WAL after the writer thread's last commit (SQLite's WAL hook).
    static WAL_FRAMES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn note_wal_frames(_: &rusqlite::hooks::Wal, frames: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_FRAMES.set(u64::try_from(frames).unwrap_or(0));
    Ok(())
}

impl Writer {
    fn run(mut self, mut rx: mpsc::Receiver<WriterMsg>, max_batch: usize) {
        let mut batch = Vec::with_capacity(max_batch);
        let mut probes = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            let shutdown = group_commit::drain(first, &mut rx, max_batch, &mut batch, &mut probes);
            if !batch.is_empty() {
                let observation = group_commit::CommitObservation::start("sqlite", &batch);
                self.commit_batch(&mut batch);
                observation.committed();
                if WAL_FRAMES.get() > self.wake_checkpointer_after {
                    let _ = self.checkpoints.send(());
                }
            }
            if !probes.is_empty() {
                let result = self.probe();
                for reply in probes.drain(..) {
                    let _ = reply.send(result.clone());
                }
            }
            if let Some(ack) = shutdown {
                tracing::info!(next_position = self.next_position, "sqlite writer stopped");
                let _ = ack.send(());
                return;
            }
        }
    }

    /// A write transaction that touches no row: rewriting the header's schema version (to
    /// the same value) makes SQLite write and sync a page, so a full disk or a read-only
    /// file fails here as a commit would.
    fn probe(&self) -> Result<(), StoreError> {
        self.conn.execute_batch(&format!("BEGIN IMMEDIATE; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")).map_err(
            |e| {
                let _ = self.conn.execute_batch("ROLLBACK");
                sql(e)
            },
        )
    }

    /// Applies every request in one transaction, syncs once, then answers each caller.
    fn commit_batch(&mut self, batch: &mut Vec<AppendRequest>) {
        let started_at = self.next_position;
        let mut staged = Staged::default();
        let mut next_position = self.next_position;
        let results: Result<Vec<_>, StoreError> = (|| {
            // IMMEDIATE: the write lock is taken at BEGIN, under the busy timeout. A deferred
            // transaction that must upgrade while the checkpointer holds that lock (a RESTART
            // checkpoint) fails at once instead of waiting.
            let txn = rusqlite::Transaction::new_unchecked(&self.conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(sql)?;
            let mut results = Vec::with_capacity(batch.len());
            for req in batch.iter() {
                let mut ctx = Batch {
                    conn: &txn,
                    index: &self.index,
                    committed: &mut self.heads,
                    staged: &mut staged,
                    next_position: &mut next_position,
                };
                results.push(ctx.apply_append(req));
            }
            txn.commit().map_err(sql)?;
            Ok(results)
        })();
        match results {
            Ok(results) => {
                self.heads.extend(staged.heads);
                if self.heads.len() > HEADS_KEPT {
                    self.heads = HashMap::new();
                }
                self.index.committed(staged.appends);
                self.next_position = next_position;
                group_commit::answer_committed(batch, results, &self.tap);
                if next_position != started_at {
                    group_commit::advance_head(&self.head, next_position);
                }
                if self.index.run_due() {
                    // The appends are answered already; the run only delays the next batch.
                    if let Err(e) = self.index.write_run(&self.conn, self.next_position) {
                        tracing::warn!(error = %e, "writing an index run failed; will retry");
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, appends = batch.len(), "group commit failed; nothing was written");
                for req in batch.drain(..) {
                    let _ = req.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// What a batch has written so far, visible only inside its transaction.
#[derive(Default)]
struct Staged {
    heads: HashMap<StreamId, Option<Head>>,
    ids: HashMap<EventId, u64>,
    /// Every append written, in position order.
    appends: Vec<CommittedAppend>,
}

/// One request's view of the open batch transaction.
struct Batch<'a> {
    conn: &'a Connection,
    index: &'a IndexWriter,
    committed: &'a mut HashMap<StreamId, Option<Head>>,
    staged: &'a mut Staged,
    next_position: &'a mut u64,
}

impl Batch<'_> {
    /// Appends one request. On error, this request leaves no rows behind: single-event
    /// appends fail atomically as one statement, longer ones roll back to a savepoint.
    fn apply_append(&mut self, req: &AppendRequest) -> Result<AppendOutcome, StoreError> {
        let current = match self.staged.heads.get(&req.stream).or_else(|| self.committed.get(&req.stream)) {
            Some(head) => *head,
            None => {
                // Not written in this batch, so the store holds the committed head.
                let head = self.load_head(&req.stream)?;
                self.committed.insert(req.stream.clone(), head);
                head
            }
        };
        if !revision_matches(req.expected, current.map(|h| h.revision)) {
            if let Some(outcome) = self.existing_retry(req)? {
                return Ok(outcome);
            }
            return Err(StoreError::WrongExpectedRevision {
                stream: req.stream.clone(),
                expected: req.expected,
                actual: current.map(|h| h.revision),
            });
        }
        for event in &req.events {
            if self.position_of(&event.event_id)?.is_some() {
                return self.existing_retry(req)?.ok_or(StoreError::EventIdConflict { event_id: event.event_id });
            }
        }

        let multi = req.events.len() > 1;
        if multi {
            self.conn.execute_batch("SAVEPOINT append").map_err(sql)?;
        }
        match insert_events(self.conn, req, current, *self.next_position) {
            Ok((head, outcome)) => {
                if multi {
                    self.conn.execute_batch("RELEASE append").map_err(sql)?;
                }
                *self.next_position += req.events.len() as u64;
                self.staged.heads.insert(req.stream.clone(), Some(head));
                let first_revision = outcome.stream_revision + 1 - req.events.len() as u64;
                let ids: Vec<EventId> = req.events.iter().map(|e| e.event_id).collect();
                let entries: Vec<Entry> = (first_revision..)
                    .zip(&outcome.positions)
                    .map(|(revision, &position)| Entry { revision, position })
                    .collect();
                self.staged.ids.extend(ids.iter().copied().zip(outcome.positions.iter().copied()));
                self.staged.appends.push(CommittedAppend { stream: req.stream.clone(), ids, entries });
                Ok(outcome)
            }
            Err(e) => {
                if multi {
                    self.conn.execute_batch("ROLLBACK TO append; RELEASE append").map_err(sql)?;
                }
                Err(e)
            }
        }
    }

    /// Where an event with this id is, written in this batch or committed before it.
    fn position_of(&self, id: &EventId) -> Result<Option<u64>, StoreError> {
        match self.staged.ids.get(id) {
            Some(position) => Ok(Some(*position)),
            None => self.index.position_of(self.conn, id),
        }
    }

    /// If the request's first event id is already stored, judges it as a retry.
    fn existing_retry(&self, req: &AppendRequest) -> Result<Option<AppendOutcome>, StoreError> {
        let mut stored = Vec::with_capacity(req.events.len());
        for event in &req.events {
            stored.push(match self.position_of(&event.event_id)? {
                Some(position) => events_at(self.conn, std::iter::once(position))?.pop(),
                None => None,
            });
        }
        earlier_append(&req.stream, &req.events, &stored).transpose()
    }

    fn load_head(&self, stream: &StreamId) -> Result<Option<Head>, StoreError> {
        let Some(entry) = index::head(self.conn, self.index.shared(), stream)? else {
            return Ok(None);
        };
        let hash: Vec<u8> = self
            .conn
            .prepare_cached("SELECT hash FROM events WHERE position = ?1")
            .map_err(sql)?
            .query_row([to_i64(entry.position)?], |r| r.get(0))
            .map_err(sql)?;
        let hash = EventHash::try_from_slice(&hash)
            .map_err(|len| StoreError::Corrupt(format!("stream {stream}: stored hash has {len} bytes")))?;
        Ok(Some(Head { revision: entry.revision, hash }))
    }
}

fn insert_events(
    conn: &Connection,
    req: &AppendRequest,
    current: Option<Head>,
    first_position: u64,
) -> Result<(Head, AppendOutcome), StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO events (position, stream, revision, event_id, event_type, recorded_at, payload, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )
        .map_err(sql)?;
    let links = link(&req.stream, current.map(|h| (h.revision, h.hash)), first_position, &req.events);
    for (event, l) in req.events.iter().zip(&links) {
        stmt.execute(params![
            to_i64(l.position)?,
            req.stream.as_str(),
            to_i64(l.revision)?,
            event.event_id.as_bytes().as_slice(),
            event.event_type,
            event.recorded_at_micros,
            event.payload,
            l.prev_hash.as_bytes().as_slice(),
            l.hash.as_bytes().as_slice(),
        ])
        .map_err(sql)?;
    }
    let outcome = AppendOutcome::written(&links);
    Ok((Head { revision: outcome.stream_revision, hash: outcome.last_hash() }, outcome))
}

/// The bytes of one WAL frame: a page and its 24-byte header.
fn frame_bytes(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0)).map_err(sql)?.max(0) as u64 + 24)
}

/// The WAL file beside a database file.
fn wal_path(db: &Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    name.into()
}

/// How long a RESTART checkpoint waits for readers before it gives up for this round.
const RESTART_PATIENCE: std::time::Duration = std::time::Duration::from_millis(100);

/// How often the checkpointer looks for new commits to copy into the database file.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_millis(200);

/// Copies the WAL into the database file from a connection of its own, so that checkpoint
/// I/O never sits inside a commit. PASSIVE checkpoints do not block the writer or readers;
/// past `restart_after_frames` a RESTART checkpoint waits for both, so that the WAL is
/// reused from its start (see [`SqliteOptions::wal_limit_bytes`]). Stops when the returned
/// sender is dropped.
fn checkpointer(
    path: &Path,
    mut head: watch::Receiver<u64>,
    restart_after_frames: u64,
) -> Result<std::sync::mpsc::Sender<()>, StoreError> {
    let wal = wal_path(path);
    let conn = Connection::open(path).map_err(sql)?;
    // A RESTART checkpoint holds new commits back while it waits for readers: it gives up
    // soon (and tries again next round), so that a long reader can never make a commit
    // wait out the writer's own busy timeout.
    conn.pragma_update(None, "busy_timeout", RESTART_PATIENCE.as_millis() as i64).map_err(sql)?;
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            let mut last = *head.borrow_and_update();
            loop {
                match stop_rx.recv_timeout(CHECKPOINT_INTERVAL) {
                    // Woken by the writer: the WAL is past half its bound.
                    Ok(()) => while stop_rx.try_recv().is_ok() {},
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                }
                let now = *head.borrow_and_update();
                if now == last {
                    continue;
                }
                // The frames in use since the WAL last started again, not the file's size,
                // which a restart leaves as it was.
                let frames = match conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1)) {
                    Ok(frames) => frames,
                    Err(e) => {
                        tracing::warn!(error = %e, "wal checkpoint failed; will retry");
                        continue;
                    }
                };
                if frames.max(0) as u64 > restart_after_frames {
                    // Busy (a reader held on past the timeout) is no failure: the next round retries.
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(())) {
                        tracing::debug!(error = %e, frames, "wal restart deferred");
                    }
                }
                metrics::gauge!("gezinsdossier_sqlite_wal_bytes")
                    .set(std::fs::metadata(&wal).map_or(0, |m| m.len()) as f64);
                last = now;
            }
        })
        .map_err(|e| backend(format!("start checkpoint thread: {e}")))?;
    Ok(stop_tx)
}

fn ensure_schema(conn: &Connection) -> Result<(), StoreError> {
    let app_id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(sql)?;
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(sql)?;
    let tables: i64 =
        conn.query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'", [], |r| r.get(0)).map_err(sql)?;
    if app_id == 0 && version == 0 && tables == 0 {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {EVENTS_SCHEMA} {} PRAGMA application_id = {APPLICATION_ID}; \
             PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;",
            index::SCHEMA
        ))
        .map_err(sql)?;
        return Ok(());
    }
    if app_id != APPLICATION_ID {
        return Err(StoreError::Corrupt(format!("not a gezinsdossier store (application_id {app_id:#x})")));
    }
    if version == 1 {
        tracing::info!("migrating the store from schema version 1 to 2 (indexes into runs)");
        let txn = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate).map_err(sql)?;
        index::migrate_from_v1(&txn, EVENTS_SCHEMA)?;
        txn.pragma_update(None, "user_version", SCHEMA_VERSION).map_err(sql)?;
        return txn.commit().map_err(sql);
    }
    if version != SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "store schema version {version}, this build reads version {SCHEMA_VERSION}"
        )));
    }
    Ok(())
}

/// Read connections, reused across calls.
struct ReaderPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl ReaderPool {
    fn new(path: PathBuf) -> Self {
        Self { path, idle: Mutex::new(Vec::new()) }
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => {
                let c = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )
                .map_err(sql)?;
                c.execute_batch("PRAGMA query_only=ON; PRAGMA busy_timeout=5000;").map_err(sql)?;
                stable_plans(&c)?;
                c
            }
        };
        let result = f(&conn);
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        result
    }
}

/// Plans that do not depend on bound values. Without this, the bundled SQLite (built with
/// STAT4) re-prepares a statement with `LIMIT ?` at every run: measured as 6% of the
/// server's CPU under the change feed's load.
fn stable_plans(conn: &Connection) -> Result<(), StoreError> {
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true).map_err(sql)?;
    Ok(())
}

fn query_events(
    conn: &Connection,
    sql_text: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(sql_text).map_err(sql)?;
    let rows = stmt.query_map(params, row_to_event).map_err(sql)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(sql)
}

/// The events at these positions, in the order given.
fn events_at(conn: &Connection, positions: impl Iterator<Item = u64>) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut at = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM events WHERE position = ?1")).map_err(sql)?;
    positions.map(|p| at.query_row([to_i64(p)?], row_to_event).map_err(sql)).collect()
}

fn row_to_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<RecordedEvent> {
    let bad =
        |i: usize, what: String| rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Blob, what.into());
    let u64_at = |i: usize| -> rusqlite::Result<u64> {
        let v: i64 = row.get(i)?;
        u64::try_from(v).map_err(|_| bad(i, format!("negative value {v}")))
    };
    let hash_at = |i: usize| -> rusqlite::Result<EventHash> {
        let v: Vec<u8> = row.get(i)?;
        EventHash::try_from_slice(&v).map_err(|len| bad(i, format!("hash of {len} bytes")))
    };
    let stream: String = row.get(1)?;
    let id: Vec<u8> = row.get(3)?;
    Ok(RecordedEvent {
        position: u64_at(0)?,
        stream: StreamId::new(stream).map_err(|e| bad(1, e.to_string()))?,
        revision: u64_at(2)?,
        event_id: uuid::Uuid::from_slice(&id).map_err(|e| bad(3, e.to_string()))?,
        event_type: row.get(4)?,
        recorded_at_micros: row.get(5)?,
        payload: row.get(6)?,
        prev_hash: hash_at(7)?,
        hash: hash_at(8)?,
    })
}

fn sql(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::FromSqlConversionFailure(..) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Backend(format!("sqlite: {other}")),
    }
}

fn backend(msg: String) -> StoreError {
    StoreError::Backend(msg)
}

fn to_i64(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::InvalidAppend(format!("{n} is beyond the store's range")))
}

fn to_u64(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative position or revision {n}")))
}

/// A read-only view of a store file, for the offline verifier: it takes no lock and writes
/// nothing, so it can read a copy of a data directory (or a live one) without trusting or
/// disturbing the server.
pub struct LogFile {
    conn: Connection,
    /// Whether the file keeps its lookups in runs (schema version 2 on).
    has_runs: bool,
}

/// Events read per page while streaming the whole log.
const LOG_PAGE: i64 = 10_000;

impl LogFile {
    /// # Errors
    /// [`StoreError::Backend`] when the file cannot be opened; [`StoreError::Corrupt`] when it
    /// is not a gezinsdossier store of this schema version.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(DB_FILE);
        if !path.exists() {
            return Err(backend(format!("no store file at {}", path.display())));
        }
        let conn =
            Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .map_err(sql)?;
        stable_plans(&conn)?;
        let app_id: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).map_err(sql)?;
        if app_id != APPLICATION_ID {
            return Err(StoreError::Corrupt(format!("not a gezinsdossier store (application_id {app_id:#x})")));
        }
        let has_runs = conn
            .query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'index_runs'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(sql)?
            > 0;
        Ok(Self { conn, has_runs })
    }

    /// Every event of one stream, in revision order.
    ///
    /// # Errors
    /// A read failure.
    pub fn stream(&self, stream: &StreamId) -> Result<Vec<RecordedEvent>, StoreError> {
        if !self.has_runs {
            // A version-1 file: its events table has an index on the stream.
            let sql_text = format!("SELECT {COLUMNS} FROM events WHERE stream = ?1 ORDER BY revision");
            return query_events(&self.conn, &sql_text, params![stream.as_str()]);
        }
        let mut runs = self.conn.prepare("SELECT run FROM index_runs ORDER BY run DESC").map_err(sql)?;
        let runs = runs.query_map([], |r| r.get(0)).map_err(sql)?.collect::<Result<Vec<i64>, _>>().map_err(sql)?;
        let in_runs = index::stream_in_runs(&self.conn, &runs, stream, 0, usize::MAX)?;
        let mut events = events_at(&self.conn, in_runs.iter().map(|e| e.position))?;
        // Past the last run nothing is indexed: those events are read in order.
        events.extend(query_events(
            &self.conn,
            &format!(
                "SELECT {COLUMNS} FROM events WHERE position >= \
                 (SELECT COALESCE(MAX(end_position), 0) FROM index_runs) AND stream = ?1 ORDER BY position"
            ),
            params![stream.as_str()],
        )?);
        Ok(events)
    }

    /// The whole log in position order, read page by page.
    pub fn events(&self) -> impl Iterator<Item = Result<RecordedEvent, StoreError>> + '_ {
        let mut next: i64 = 0;
        let mut page = std::collections::VecDeque::new();
        let mut done = false;
        std::iter::from_fn(move || {
            if page.is_empty() && !done {
                let sql_text = format!("SELECT {COLUMNS} FROM events WHERE position >= ?1 ORDER BY position LIMIT ?2");
                match query_events(&self.conn, &sql_text, params![next, LOG_PAGE]) {
                    Ok(rows) => {
                        done = (rows.len() as i64) < LOG_PAGE;
                        if let Some(last) = rows.last() {
                            next = i64::try_from(last.position).unwrap_or(i64::MAX).saturating_add(1);
                        }
                        page.extend(rows);
                    }
                    Err(e) => {
                        done = true;
                        return Some(Err(e));
                    }
                }
            }
            page.pop_front().map(Ok)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    /// A read of the log with `LIMIT ?` is planned once, not again at every run.
    #[test]
    fn a_read_with_a_bound_limit_is_not_prepared_again_at_each_run() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(dir.path()).expect("open");
        let sql_text = format!("SELECT {COLUMNS} FROM events WHERE position >= ?1 ORDER BY position LIMIT ?2");
        let reprepared = store
            .inner
            .readers
            .with(|c| {
                for (from, limit) in [(0, 10), (5, 512), (7, 1)] {
                    query_events(c, &sql_text, params![from, limit])?;
                }
                Ok(c.prepare_cached(&sql_text).map_err(sql)?.get_status(StatementStatus::RePrepare))
            })
            .expect("read");
        assert_eq!(reprepared, 0);
    }
}

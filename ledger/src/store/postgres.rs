//! The PostgreSQL store, for several stateless replicas over one shared database.
//!
//! **Gapless, commit-ordered log.** Positions come from a single-row `log_head` table that
//! every appending transaction locks (`SELECT … FOR UPDATE`) and advances before it
//! commits. The lock is held until commit, so no transaction can take position p+1 before
//! the one holding p has committed or rolled back (a rollback undoes its advance too). A
//! reader following `position > n` therefore never sees a later event before an earlier
//! one: the "late commit skipped by the follower" bug of sequence-based logs cannot occur.
//!
//! **Group commit.** Each replica runs one writer task that drains its queued appends into
//! one transaction, so one `log_head` lock and one WAL flush serve many appends. Commits use
//! `synchronous_commit = on`: acknowledged means flushed.
//!
//! **Migrations** are versioned and run at open under a transaction-scoped advisory lock,
//! so replicas starting together apply each migration once.
//!
//! **Live subscriptions** learn of this replica's commits at once and of other replicas'
//! commits by polling `log_head` (a cheap single-row read).

use super::group_commit::{self, AppendRequest, WriterMsg};
use super::{AppendOutcome, EventStore, StoreError, earlier_append, link, revision_matches, subscription};
use crate::chain::EventHash;
use crate::envelope::{EventId, ExpectedRevision, ProposedEvent, RecordedEvent, StreamId};
use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures::stream::BoxStream;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_postgres::Row;

/// Every migration, in order; the index + 1 is the schema version it brings.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE log_head (
    id            BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    next_position BIGINT  NOT NULL
);
INSERT INTO log_head (id, next_position) VALUES (TRUE, 0);
CREATE TABLE events (
    position    BIGINT PRIMARY KEY,
    stream      TEXT   NOT NULL,
    revision    BIGINT NOT NULL,
    event_id    UUID   NOT NULL UNIQUE,
    event_type  TEXT   NOT NULL,
    recorded_at BIGINT NOT NULL,
    payload     BYTEA  NOT NULL,
    prev_hash   BYTEA  NOT NULL,
    hash        BYTEA  NOT NULL,
    UNIQUE (stream, revision)
);",
    super::keys::postgres::MIGRATION,
];

/// Key of the advisory lock that serialises migrations across replicas.
const MIGRATION_LOCK: i64 = 0x475A_4431_4D49_4752;
const COLUMNS: &str = "position, stream, revision, event_id, event_type, recorded_at, payload, prev_hash, hash";
/// How often other replicas' commits are looked for.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How to reach the database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresOptions {
    /// e.g. `postgres://gezinsdossier@db.example:5432/gezinsdossier`.
    pub url: String,
    /// Connections for reads (the writer has its own).
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// Schema holding the tables; created if missing. Default `public`.
    #[serde(default)]
    pub schema: Option<String>,
    /// A PEM CA file: connect with TLS and verify the server against it.
    #[serde(default)]
    pub tls_ca_file: Option<PathBuf>,
    /// A file holding the password (a mounted secret, e.g. `/run/secrets/…`), so that it
    /// stays out of the URL and the environment. One trailing newline is ignored.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Most appends per transaction.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
}

fn default_pool_size() -> usize {
    8
}

fn default_max_batch() -> usize {
    1024
}

impl PostgresOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: default_pool_size(),
            schema: None,
            tls_ca_file: None,
            password_file: None,
            max_batch: default_max_batch(),
        }
    }
}

/// The PostgreSQL event store. Cheap to clone.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    writer: mpsc::Sender<WriterMsg>,
    head: watch::Receiver<u64>,
    /// What the writer hands over as it commits, for subscribers in this process.
    tap: broadcast::Sender<subscription::Committed>,
}

impl PostgresStore {
    /// Connects, runs pending migrations, and starts the writer and the head poller.
    ///
    /// # Errors
    /// [`StoreError::Backend`] when the database cannot be reached or migrated;
    /// [`StoreError::Corrupt`] when it holds a newer schema than this build knows.
    pub async fn open(options: PostgresOptions) -> Result<Self, StoreError> {
        if let Some(schema) = &options.schema
            && !schema.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            return Err(StoreError::Backend(format!("schema name {schema:?} must be letters, digits and _")));
        }
        let mut config: tokio_postgres::Config =
            options.url.parse().map_err(|e| StoreError::Backend(format!("postgres url: {e}")))?;
        if let Some(schema) = &options.schema {
            config.options(format!("-c search_path={schema}"));
        }
        if let Some(file) = &options.password_file {
            config.password(read_password(file)?);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let target = describe_target(&config);
        let pool = build_pool(config, &options)?;
        let mut writer_conn =
            pool.get().await.map_err(|e| StoreError::Backend(format!("connect to {target}: {}", chain(&e))))?;
        writer_conn.batch_execute("SET synchronous_commit = on").await.map_err(pg)?;
        migrate(&mut writer_conn, options.schema.as_deref()).await?;
        let next = read_head(&writer_conn).await?;

        let (head_tx, head_rx) = watch::channel(next);
        let (tx, rx) = mpsc::channel(16_384);
        let head_tx = Arc::new(head_tx);
        let (tap, _) = broadcast::channel(subscription::TAPPED_BATCHES);
        let writer = Writer::new(pool.clone(), writer_conn, head_tx.clone(), tap.clone());
        tokio::spawn(writer.run(rx, options.max_batch.max(1)));
        tokio::spawn(poll_head(pool.clone(), head_tx));
        Ok(Self { inner: Arc::new(Inner { pool, writer: tx, head: head_rx, tap }) })
    }

    /// The subject keys, over this store's pool.
    pub fn key_store(&self) -> super::keys::postgres::PostgresKeyStore {
        super::keys::postgres::PostgresKeyStore::new(self.inner.pool.clone())
    }

    async fn query_events(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let client = self.inner.pool.get().await.map_err(pool_err)?;
        let stmt = client.prepare_cached(sql).await.map_err(pg)?;
        client.query(&stmt, params).await.map_err(pg)?.iter().map(row_to_event).collect()
    }
}

fn read_password(file: &Path) -> Result<Vec<u8>, StoreError> {
    let mut password = std::fs::read(file)
        .map_err(|e| StoreError::Backend(format!("postgres password_file {}: {e}", file.display())))?;
    for ending in [b"\n".as_slice(), b"\r"] {
        if password.ends_with(ending) {
            password.pop();
        }
    }
    Ok(password)
}

fn build_pool(config: tokio_postgres::Config, options: &PostgresOptions) -> Result<Pool, StoreError> {
    let manager_config = ManagerConfig { recycling_method: RecyclingMethod::Fast };
    let manager = match &options.tls_ca_file {
        None => Manager::from_config(config, tokio_postgres::NoTls, manager_config),
        Some(ca) => {
            let pem = std::fs::read(ca).map_err(|e| StoreError::Backend(format!("read {}: {e}", ca.display())))?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| StoreError::Backend(format!("CA file: {e}")))?;
                roots.add(cert).map_err(|e| StoreError::Backend(format!("CA file: {e}")))?;
            }
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| StoreError::Backend(format!("tls: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Manager::from_config(config, tokio_postgres_rustls::MakeRustlsConnect::new(tls), manager_config)
        }
    };
    // One extra connection: the writer keeps its own (replacing it when it breaks). Timeouts
    // so that an unreachable database fails a request instead of hanging it.
    Pool::builder(manager)
        .max_size(options.pool_size.max(1) + 1)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(CONNECT_TIMEOUT))
        .create_timeout(Some(CONNECT_TIMEOUT))
        .recycle_timeout(Some(CONNECT_TIMEOUT))
        .build()
        .map_err(|e| StoreError::Backend(format!("postgres pool: {e}")))
}

async fn migrate(client: &mut deadpool_postgres::Object, schema: Option<&str>) -> Result<(), StoreError> {
    let txn = client.transaction().await.map_err(pg)?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg)?;
    if let Some(schema) = schema {
        txn.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {schema}")).await.map_err(pg)?;
    }
    txn.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .map_err(pg)?;
    let current: i32 =
        txn.query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[]).await.map_err(pg)?.get(0);
    let known = MIGRATIONS.len() as i32;
    if current > known {
        return Err(StoreError::Corrupt(format!("database schema version {current}, this build knows up to {known}")));
    }
    for (i, migration) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        txn.batch_execute(migration).await.map_err(pg)?;
        txn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&(i as i32 + 1)]).await.map_err(pg)?;
        tracing::info!(version = i + 1, "postgres migration applied");
    }
    txn.commit().await.map_err(pg)
}

async fn read_head(client: &impl GenericClient) -> Result<u64, StoreError> {
    let next: i64 = client.query_one("SELECT next_position FROM log_head", &[]).await.map_err(pg)?.get(0);
    to_u64(next)
}

/// Publishes other replicas' commits to local subscribers. Ends when the store is dropped.
async fn poll_head(pool: Pool, head: Arc<watch::Sender<u64>>) {
    loop {
        tokio::select! {
            () = head.closed() => return,
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
        let Ok(client) = pool.get().await else { continue };
        if let Ok(next) = read_head(&client).await {
            group_commit::advance_head(&head, next);
        }
    }
}

/// The writer task: one connection of its own, replaced when it breaks (a failover, a
/// restart of PostgreSQL, a terminated backend, a network drop). While no connection can be
/// had, batches fail at once (nothing was written) and reconnects back off up to
/// [`MAX_RECONNECT_BACKOFF`], so writes resume within that bound of the database coming back.
struct Writer {
    pool: Pool,
    conn: Option<deadpool_postgres::Object>,
    head: Arc<watch::Sender<u64>>,
    tap: broadcast::Sender<subscription::Committed>,
    backoff: Duration,
    next_attempt: tokio::time::Instant,
}

/// The longest wait between reconnect attempts.
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_millis(500);
const FIRST_RECONNECT_BACKOFF: Duration = Duration::from_millis(25);
/// How long a connection attempt, or a wait for a pooled connection, may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Writer {
    fn new(
        pool: Pool,
        conn: deadpool_postgres::Object,
        head: Arc<watch::Sender<u64>>,
        tap: broadcast::Sender<subscription::Committed>,
    ) -> Self {
        let next_attempt = tokio::time::Instant::now();
        Self { pool, conn: Some(conn), head, tap, backoff: FIRST_RECONNECT_BACKOFF, next_attempt }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<WriterMsg>, max_batch: usize) {
        let mut batch = Vec::with_capacity(max_batch);
        let mut probes = Vec::new();
        while let Some(first) = rx.recv().await {
            let shutdown = group_commit::drain(first, &mut rx, max_batch, &mut batch, &mut probes);
            if !batch.is_empty() {
                let observation = group_commit::CommitObservation::start("postgres", &batch);
                self.commit(&mut batch).await;
                observation.committed();
            }
            if !probes.is_empty() {
                let result = self.probe().await;
                for reply in probes.drain(..) {
                    let _ = reply.send(result.clone());
                }
            }
            if let Some(ack) = shutdown {
                let _ = ack.send(());
                return;
            }
        }
    }

    async fn commit(&mut self, batch: &mut Vec<AppendRequest>) {
        let result = match self.connection().await {
            Ok(conn) => commit_batch(conn, batch).await,
            Err(e) => Err(e),
        };
        match result {
            Ok((results, next_position)) => {
                group_commit::answer_committed(batch, results, &self.tap);
                group_commit::advance_head(&self.head, next_position);
            }
            Err(e) => {
                self.discard_connection();
                if matches!(e, StoreError::OutcomeUnknown(_)) {
                    tracing::error!(error = %e, appends = batch.len(), "postgres group commit outcome unknown");
                } else {
                    tracing::error!(error = %e, appends = batch.len(), "postgres group commit failed; nothing was written");
                }
                for req in batch.drain(..) {
                    let _ = req.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// A write transaction on the writer's connection: it takes the `log_head` row lock (which
    /// writes the row's lock mark) and commits, so it proves the path every append takes.
    async fn probe(&mut self) -> Result<(), StoreError> {
        let result = async {
            let conn = self.connection().await?;
            let txn = conn.transaction().await.map_err(pg)?;
            txn.query_one("SELECT next_position FROM log_head FOR UPDATE", &[]).await.map_err(pg)?;
            txn.commit().await.map_err(pg)
        }
        .await;
        if result.is_err() {
            self.discard_connection();
        }
        result
    }

    /// The writer's connection, reconnecting (with backoff) when it has none.
    async fn connection(&mut self) -> Result<&mut deadpool_postgres::Object, StoreError> {
        if self.conn.is_none() {
            let now = tokio::time::Instant::now();
            if now < self.next_attempt {
                return Err(StoreError::Backend("postgres: the writer lost its connection and is reconnecting".into()));
            }
            match self.reconnect().await {
                Ok(conn) => {
                    tracing::info!("postgres writer reconnected");
                    self.backoff = FIRST_RECONNECT_BACKOFF;
                    self.conn = Some(conn);
                }
                Err(e) => {
                    self.next_attempt = now + self.backoff;
                    self.backoff = (self.backoff * 2).min(MAX_RECONNECT_BACKOFF);
                    tracing::warn!(error = %e, retry_in_ms = self.backoff.as_millis() as u64, "postgres writer cannot reconnect");
                    return Err(e);
                }
            }
        }
        self.conn.as_mut().ok_or_else(|| StoreError::Backend("postgres: writer has no connection".into()))
    }

    async fn reconnect(&self) -> Result<deadpool_postgres::Object, StoreError> {
        let conn = self.pool.get().await.map_err(pool_err)?;
        conn.batch_execute("SET synchronous_commit = on").await.map_err(pg)?;
        Ok(conn)
    }

    /// Drops the connection after a failed transaction, so that the next batch reconnects.
    /// Refusals of single appends never get here (savepoints turn them into results), so a
    /// failure is the connection's or the server's: reconnecting costs one round trip and
    /// never keeps a broken connection that does not know it is broken yet.
    fn discard_connection(&mut self) {
        if let Some(conn) = self.conn.take() {
            if conn.is_closed() {
                tracing::warn!("postgres writer connection lost; reconnecting");
            }
            // Out of the pool for good: it must not be recycled.
            drop(deadpool_postgres::Object::take(conn));
        }
    }
}

const READ_HEADS: &str = "SELECT s.stream, h.revision, h.hash FROM unnest($1::text[]) AS s(stream) \
     CROSS JOIN LATERAL (SELECT revision, hash FROM events WHERE events.stream = s.stream \
     ORDER BY revision DESC LIMIT 1) h";

/// One batch in a fixed number of round trips, however many appends it holds: lock the log
/// head, read every stream head and every already stored id of the batch at once (both
/// queries pipelined), judge each append in memory, insert all new events with one
/// statement, move the head, commit. The `log_head` row lock keeps every other writer (on
/// any replica) out from the first read to the commit, so what was read stays true.
async fn commit_batch(
    conn: &mut deadpool_postgres::Object,
    batch: &[AppendRequest],
) -> Result<(Vec<Result<AppendOutcome, StoreError>>, u64), StoreError> {
    let txn = conn.transaction().await.map_err(pg)?;
    // Prepared once per connection: an unprepared query costs a round trip more. The two
    // reads below stay unprepared: PostgreSQL's generic plan for them halved the rate at 64
    // clients (4,800 against 9,600 events/s, BENCHMARKS.md).
    let stored_sql = format!("SELECT {COLUMNS} FROM events WHERE event_id = ANY($1)");
    let (lock_head, insert, move_head) = futures::try_join!(
        txn.prepare_cached("SELECT next_position FROM log_head FOR UPDATE"),
        txn.prepare_cached(
            "INSERT INTO events (position, stream, revision, event_id, event_type, recorded_at, payload, prev_hash, hash) \
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::uuid[], $5::text[], $6::bigint[], \
             $7::bytea[], $8::bytea[], $9::bytea[])",
        ),
        txn.prepare_cached("UPDATE log_head SET next_position = $1"),
    )
    .map_err(pg)?;
    let mut next: u64 = to_u64(txn.query_one(&lock_head, &[]).await.map_err(pg)?.get(0))?;
    let mut streams: Vec<&str> = batch.iter().map(|r| r.stream.as_str()).collect();
    streams.sort_unstable();
    streams.dedup();
    let ids: Vec<EventId> = batch.iter().flat_map(|r| r.events.iter().map(|e| e.event_id)).collect();
    let (streams_param, ids_param): (
        [&(dyn tokio_postgres::types::ToSql + Sync); 1],
        [&(dyn tokio_postgres::types::ToSql + Sync); 1],
    ) = ([&streams], [&ids]);
    let (head_rows, stored_rows) =
        futures::try_join!(txn.query(READ_HEADS, &streams_param), txn.query(&stored_sql, &ids_param)).map_err(pg)?;
    let mut heads: HashMap<String, (u64, EventHash)> = HashMap::with_capacity(head_rows.len());
    for row in &head_rows {
        heads.insert(row.get(0), (to_u64(row.get(1))?, hash_of(row, 2)?));
    }
    // Stored events by id; the batch's own events join them as they are judged, so a later
    // append in the batch that repeats an id is a retry of the earlier one.
    let mut known: HashMap<EventId, RecordedEvent> = HashMap::with_capacity(stored_rows.len());
    for row in &stored_rows {
        let event = row_to_event(row)?;
        known.insert(event.event_id, event);
    }
    let mut rows = NewRows::default();
    let mut results = Vec::with_capacity(batch.len());
    for req in batch {
        let head = heads.get(req.stream.as_str()).copied();
        let stored: Vec<Option<RecordedEvent>> = req.events.iter().map(|e| known.get(&e.event_id).cloned()).collect();
        let retry = || earlier_append(&req.stream, &req.events, &stored);
        if !revision_matches(req.expected, head.map(|h| h.0)) {
            results.push(retry().unwrap_or_else(|| {
                Err(StoreError::WrongExpectedRevision {
                    stream: req.stream.clone(),
                    expected: req.expected,
                    actual: head.map(|h| h.0),
                })
            }));
            continue;
        }
        if let Some(reused) = req.events.iter().zip(&stored).find_map(|(e, s)| s.as_ref().map(|_| e.event_id)) {
            results.push(retry().unwrap_or(Err(StoreError::EventIdConflict { event_id: reused })));
            continue;
        }
        let links = link(&req.stream, head, next, &req.events);
        for (event, l) in req.events.iter().zip(&links) {
            let recorded = RecordedEvent {
                stream: req.stream.clone(),
                revision: l.revision,
                position: l.position,
                event_id: event.event_id,
                event_type: event.event_type.clone(),
                recorded_at_micros: event.recorded_at_micros,
                payload: event.payload.clone(),
                prev_hash: l.prev_hash,
                hash: l.hash,
            };
            rows.push(&recorded)?;
            known.insert(event.event_id, recorded);
        }
        let outcome = AppendOutcome::written(&links);
        heads.insert(req.stream.as_str().to_owned(), (outcome.stream_revision, outcome.last_hash()));
        next += req.events.len() as u64;
        results.push(Ok(outcome));
    }
    if !rows.position.is_empty() {
        txn.execute(
            &insert,
            &[
                &rows.position,
                &rows.stream,
                &rows.revision,
                &rows.event_id,
                &rows.event_type,
                &rows.recorded_at,
                &rows.payload,
                &rows.prev_hash,
                &rows.hash,
            ],
        )
        .await
        .map_err(pg)?;
        txn.execute(&move_head, &[&to_i64(next)?]).await.map_err(pg)?;
    }
    txn.commit().await.map_err(commit_error)?;
    Ok((results, next))
}

/// The columns of the events one batch inserts, as the arrays `unnest` takes.
#[derive(Default)]
struct NewRows {
    position: Vec<i64>,
    stream: Vec<String>,
    revision: Vec<i64>,
    event_id: Vec<EventId>,
    event_type: Vec<String>,
    recorded_at: Vec<i64>,
    payload: Vec<Vec<u8>>,
    prev_hash: Vec<Vec<u8>>,
    hash: Vec<Vec<u8>>,
}

impl NewRows {
    fn push(&mut self, e: &RecordedEvent) -> Result<(), StoreError> {
        self.position.push(to_i64(e.position)?);
        self.stream.push(e.stream.as_str().to_owned());
        self.revision.push(to_i64(e.revision)?);
        self.event_id.push(e.event_id);
        self.event_type.push(e.event_type.clone());
        self.recorded_at.push(e.recorded_at_micros);
        self.payload.push(e.payload.clone());
        self.prev_hash.push(e.prev_hash.as_bytes().to_vec());
        self.hash.push(e.hash.as_bytes().to_vec());
        Ok(())
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        group_commit::submit(&self.inner.writer, stream, expected, events).await
    }

    async fn read_stream(&self, stream: &StreamId, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.query_events(
            &format!("SELECT {COLUMNS} FROM events WHERE stream = $1 AND revision >= $2 ORDER BY revision LIMIT $3"),
            &[&stream.as_str(), &to_i64(from)?, &to_i64(limit as u64)?],
        )
        .await
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        self.query_events(
            &format!("SELECT {COLUMNS} FROM events WHERE position >= $1 ORDER BY position LIMIT $2"),
            &[&to_i64(from)?, &to_i64(limit as u64)?],
        )
        .await
    }

    async fn stream_revision(&self, stream: &StreamId) -> Result<Option<u64>, StoreError> {
        let client = self.inner.pool.get().await.map_err(pool_err)?;
        let row = client
            .query_opt("SELECT MAX(revision) FROM events WHERE stream = $1", &[&stream.as_str()])
            .await
            .map_err(pg)?;
        row.and_then(|r| r.get::<_, Option<i64>>(0)).map(to_u64).transpose()
    }

    fn subscribe_all(&self, from: u64) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
        subscription::follow(self, self.inner.head.clone(), Some(self.inner.tap.subscribe()), from)
    }

    async fn probe_writes(&self) -> Result<(), StoreError> {
        group_commit::probe(&self.inner.writer).await
    }

    async fn shutdown(&self) {
        group_commit::stop(&self.inner.writer).await;
    }
}

fn row_to_event(row: &Row) -> Result<RecordedEvent, StoreError> {
    let stream: String = row.try_get(1).map_err(pg)?;
    Ok(RecordedEvent {
        position: to_u64(row.try_get(0).map_err(pg)?)?,
        stream: StreamId::new(stream).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        revision: to_u64(row.try_get(2).map_err(pg)?)?,
        event_id: row.try_get(3).map_err(pg)?,
        event_type: row.try_get(4).map_err(pg)?,
        recorded_at_micros: row.try_get(5).map_err(pg)?,
        payload: row.try_get(6).map_err(pg)?,
        prev_hash: hash_of(row, 7)?,
        hash: hash_of(row, 8)?,
    })
}

fn hash_of(row: &Row, i: usize) -> Result<EventHash, StoreError> {
    let bytes: Vec<u8> = row.try_get(i).map_err(pg)?;
    EventHash::try_from_slice(&bytes).map_err(|len| StoreError::Corrupt(format!("stored hash has {len} bytes")))
}

fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(format!("postgres: {}", chain(&e)))
}

/// A failed COMMIT: an ERROR from PostgreSQL means it rolled back. Anything else leaves
/// the outcome unknown: the connection broke once COMMIT was sent, or the backend was
/// terminated (FATAL) around the commit, when it may already have committed locally.
fn commit_error(e: tokio_postgres::Error) -> StoreError {
    if e.as_db_error().is_some_and(|db| db.severity() == "ERROR") {
        return pg(e);
    }
    StoreError::OutcomeUnknown(format!(
        "postgres: the connection failed after COMMIT was sent ({}); the append may have been written",
        chain(&e)
    ))
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Backend(format!("postgres pool: {}", chain(&e)))
}

/// An error with its causes, `outer: inner: os error`: tokio-postgres puts the host's
/// refusal or the OS error in `source()`, which `Display` alone drops.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `host:port, host:port` of a connection config, for error messages (never the password).
fn describe_target(config: &tokio_postgres::Config) -> String {
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    if hosts.is_empty() { "postgres (default host)".into() } else { format!("postgres at {}", hosts.join(", ")) }
}

fn to_i64(n: u64) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| StoreError::InvalidAppend(format!("{n} is beyond the store's range")))
}

fn to_u64(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Corrupt(format!("negative position or revision {n}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_file_loses_one_line_ending_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("password");
        std::fs::write(&file, "s3cret \n").unwrap();
        assert_eq!(read_password(&file).unwrap(), b"s3cret ");
        std::fs::write(&file, "s3cret\r\n").unwrap();
        assert_eq!(read_password(&file).unwrap(), b"s3cret");
        let missing = read_password(&dir.path().join("absent")).unwrap_err().to_string();
        assert!(missing.contains("password_file") && missing.contains("absent"), "{missing}");
    }
}

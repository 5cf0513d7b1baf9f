//! The KurrentDB store, for deployments that already run a KurrentDB cluster.
//!
//! **Mapping.** Our stream `s` is the KurrentDB stream `{namespace}:s`; revisions are
//! KurrentDB's stream revisions; event ids are ours. The recording time and the hash chain
//! travel in each event's custom metadata ([`mapping`]).
//!
//! **Global log.** `$all` positions are sparse byte offsets, so positions here are gapless
//! ordinals: an event's rank among the namespace's events in `$all` ([`log_index`]). Reads,
//! the index and subscriptions all use one server-side stream-prefix filter.
//!
//! **Appends** take the stream's head from the caught-up index, compute the chain against it
//! and append with that exact revision. The caller's own expected revision is checked against the head first, so
//! `Any` keeps its meaning, but KurrentDB only ever sees an exact one: its id deduplication
//! is guaranteed only then, and a head that moved would break the chain. A lost race is
//! re-read and re-decided.
//!
//! **Retries** by event id: KurrentDB has no lookup by id and deduplicates only at the same
//! expected revision, while a client may retry long after the stream moved on. The log
//! index maps ids to ordinals, so a retry is recognised wherever the original landed.
//!
//! **Reads go to the leader** (`requires_leader`): a consent withdrawn through one replica
//! must stop disclosures on another at its very next read.
//!
//! **Not run against a live server in this repository's CI**: no KurrentDB runs there. The
//! contract suite runs it whenever `KURRENTDB_URL` is set.

pub mod log_index;
pub mod mapping;

use self::log_index::{Entry, LogIndex, is_after};
use self::mapping::{
    Failure, Namespace, StoredParts, chain_of, decode_event, encode_event, expected_state, store_error, translate,
    translate_append,
};
use super::{
    AppendOutcome, EventStore, Link, StoreError, check_batch, link, resolve_retry, revision_matches, subscription,
};
use crate::envelope::{ExpectedRevision, ProposedEvent, RecordedEvent, StreamId};
use async_trait::async_trait;
use futures::stream::BoxStream;
use kurrentdb::{
    AppendToStreamOptions, Client, ClientSettings, EventData, Position, ReadAllOptions, ReadEvent, ReadStreamOptions,
    RetryOptions, StreamPosition, SubscribeToAllOptions, SubscriptionFilter,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, MutexGuard, RwLock, mpsc};

/// Events per `$all` page while indexing or reading.
const PAGE: usize = 512;
/// Lost races one append tolerates before it gives up (only `Any` appends race repeatedly).
const MAX_RACES: u32 = 200;
/// Appends to one stream from this process take turns on one of these locks, so they do
/// not race each other through the server; only other replicas' appends can still race.
const APPEND_LOCK_STRIPES: usize = 64;

/// How to reach the cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KurrentOptions {
    /// A KurrentDB connection string, e.g.
    /// `kurrentdb://node1:2113,node2:2113,node3:2113?tls=true&tlsCAFile=/certs/ca.crt`
    /// or `kurrentdb+discover://cluster.example:2113`. Credentials or a user certificate go
    /// here too (`userCertFile`, `userKeyFile`).
    pub url: String,
    /// Stream-name prefix this deployment owns (see [`mapping::Namespace`]). Default `gzd`.
    #[serde(default = "default_namespace")]
    pub namespace: String,
}

fn default_namespace() -> String {
    "gzd".into()
}

impl KurrentOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self { url: url.into(), namespace: default_namespace() }
    }
}

/// The KurrentDB event store. Cheap to clone.
#[derive(Clone)]
pub struct KurrentStore {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    ns: Namespace,
    index: Mutex<Synced>,
    /// `true` once shut down. Appends hold a read guard, so shutdown waits for them.
    closed: RwLock<bool>,
    /// Striped by stream name; see [`APPEND_LOCK_STRIPES`].
    append_locks: Vec<Mutex<()>>,
}

struct Synced {
    index: LogIndex,
    /// When the last completed catch-up began reading `$all`.
    caught_up_from: Option<Instant>,
}

impl KurrentStore {
    /// Connects and indexes the namespace's log.
    ///
    /// # Errors
    /// [`StoreError::Backend`] for a bad connection string or namespace, or an unreachable
    /// cluster; [`StoreError::Corrupt`] when stored events lack chain metadata.
    pub async fn open(options: KurrentOptions) -> Result<Self, StoreError> {
        let ns = Namespace::new(&options.namespace)?;
        let settings: ClientSettings =
            options.url.parse().map_err(|e| StoreError::Backend(format!("kurrentdb connection string: {e}")))?;
        let client = Client::new(settings).map_err(|e| StoreError::Backend(format!("kurrentdb client: {e}")))?;
        let store = Self {
            inner: Arc::new(Inner {
                client,
                ns,
                index: Mutex::new(Synced { index: LogIndex::default(), caught_up_from: None }),
                closed: RwLock::new(false),
                append_locks: (0..APPEND_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            }),
        };
        let events = store.catch_up().await?.index.len();
        tracing::info!(events, namespace = %options.namespace, "kurrentdb log indexed");
        Ok(store)
    }

    /// The subject keys, one stream per key beside this namespace.
    pub fn key_store(&self) -> crate::store::keys::kurrent::KurrentKeyStore {
        crate::store::keys::kurrent::KurrentKeyStore::new(self.inner.client.clone(), self.inner.ns.key_prefix())
    }

    fn append_lock(&self, stream_name: &str) -> &Mutex<()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        // A fixed hasher: the stripe only has to be the same for the same name in one process.
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(stream_name);
        &self.inner.append_locks[(hash % APPEND_LOCK_STRIPES as u64) as usize]
    }

    fn filter(&self) -> SubscriptionFilter {
        SubscriptionFilter::on_stream_name().add_prefix(self.inner.ns.prefix())
    }

    /// Indexes every event committed before this call. Concurrent callers share one pass:
    /// a pass that began after a caller asked already covers what that caller needs.
    async fn catch_up(&self) -> Result<MutexGuard<'_, Synced>, StoreError> {
        let asked = Instant::now();
        let mut synced = self.inner.index.lock().await;
        if synced.caught_up_from.is_some_and(|from| from >= asked) {
            return Ok(synced);
        }
        let began = Instant::now();
        loop {
            let start = synced.index.start_before(synced.index.len()).unwrap_or(StreamPosition::Start);
            let page = self.read_all_page(&start, PAGE).await?;
            for event in &page {
                let parts = StoredParts::of(event);
                let hash = chain_of(parts)?.hash;
                let (event_id, position, revision) = (event.id, event.position, event.revision);
                synced.index.push(Entry { event_id, position, stream_name: parts.stream_name, revision, hash })?;
            }
            if page.len() < PAGE {
                break;
            }
        }
        synced.caught_up_from = Some(began);
        Ok(synced)
    }

    /// Up to `limit` of the namespace's events after `start`, in `$all` order.
    async fn read_all_page(
        &self,
        start: &StreamPosition<Position>,
        limit: usize,
    ) -> Result<Vec<kurrentdb::RecordedEvent>, StoreError> {
        // One more than asked: the server may or may not include `start` itself.
        let options = ReadAllOptions::default()
            .position(*start)
            .forwards()
            .filter(self.filter())
            .max_count(limit + 1)
            .requires_leader(true);
        let mut read = self.inner.client.read_all(&options).await.map_err(store_error)?;
        let mut out = Vec::with_capacity(limit);
        while let Some(item) = read.next_read_event().await.map_err(store_error)? {
            if let ReadEvent::Event(resolved) = item
                && let Some(event) = resolved.event
                && is_after(start, event.position)
            {
                out.push(event);
            }
        }
        out.truncate(limit);
        Ok(out)
    }

    /// Up to `limit` events of a KurrentDB stream from `from`; a missing stream reads empty.
    async fn read_stream_raw(
        &self,
        name: &str,
        from: StreamPosition<u64>,
        limit: usize,
    ) -> Result<Vec<kurrentdb::RecordedEvent>, StoreError> {
        let options = ReadStreamOptions::default().position(from).max_count(limit).requires_leader(true);
        let options = if matches!(from, StreamPosition::End) { options.backwards() } else { options.forwards() };
        let collect = async {
            let mut read = self.inner.client.read_stream(name, &options).await?;
            let mut out = Vec::with_capacity(limit.min(PAGE));
            while let Some(item) = read.next_read_event().await? {
                if let ReadEvent::Event(resolved) = item
                    && let Some(event) = resolved.event
                {
                    out.push(event);
                }
            }
            Ok::<_, kurrentdb::Error>(out)
        };
        match collect.await {
            Ok(events) => Ok(events),
            Err(e) => match translate(e) {
                Failure::NoStream => Ok(Vec::new()),
                other => Err(other.into_store_error()),
            },
        }
    }

    /// Our events for KurrentDB events, each at its ordinal.
    async fn with_ordinals(&self, events: &[kurrentdb::RecordedEvent]) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut synced = self.inner.index.lock().await;
        if events.iter().any(|e| synced.index.locate(&e.id, e.position).is_none()) {
            drop(synced);
            synced = self.catch_up().await?;
        }
        events
            .iter()
            .map(|e| {
                let ordinal = synced.index.locate(&e.id, e.position).ok_or_else(|| {
                    StoreError::Corrupt(format!("event {} of {} is not in the namespace's $all", e.id, e.stream_id()))
                })?;
                decode_event(&self.inner.ns, StoredParts::of(e), ordinal)
            })
            .collect()
    }

    /// The outcome for a batch whose first id the log already holds at `ordinal`.
    async fn replayed(
        &self,
        stream: &StreamId,
        events: &[ProposedEvent],
        ordinal: u64,
    ) -> Result<AppendOutcome, StoreError> {
        let original = self
            .read_all(ordinal, 1)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Corrupt(format!("indexed ordinal {ordinal} cannot be read")))?;
        let stored = if original.stream == *stream {
            self.read_stream(stream, original.revision, events.len()).await?
        } else {
            vec![original]
        };
        resolve_retry(stream, events, &padded(stored, events.len()))
    }

    /// What an acknowledged append stored. Normally it is exactly `links`, which the index
    /// shows once caught up: the stream's head is our last hash, which chains the whole
    /// batch. Otherwise (a concurrent identical append won at the same revision and
    /// KurrentDB acknowledged ours as its duplicate, or the stream has moved on already) the
    /// stored events are read back and are the outcome.
    async fn confirmed(
        &self,
        stream: &StreamId,
        events: &[ProposedEvent],
        links: &[Link],
    ) -> Result<AppendOutcome, StoreError> {
        let name = self.inner.ns.stream_name(stream);
        let last = links.last().map(|l| (l.revision, l.hash));
        {
            let synced = self.catch_up().await?;
            if synced.index.head(&name) == last {
                let placed: Option<Vec<Link>> = links
                    .iter()
                    .zip(events)
                    .map(|(l, e)| synced.index.ordinal_of(&e.event_id).map(|position| Link { position, ..*l }))
                    .collect();
                if let Some(placed) = placed {
                    return Ok(AppendOutcome::written(&placed));
                }
            }
        }
        let first = links.first().map_or(0, |l| l.revision);
        let raw = self.read_stream_raw(&name, StreamPosition::Position(first), events.len()).await?;
        let stored = self.with_ordinals(&raw).await?;
        let ours = stored.len() == links.len()
            && stored.iter().zip(links).all(|(s, l)| s.hash == l.hash && s.revision == l.revision);
        if ours {
            let placed: Vec<Link> =
                links.iter().zip(&stored).map(|(l, s)| Link { position: s.position, ..*l }).collect();
            Ok(AppendOutcome::written(&placed))
        } else {
            resolve_retry(stream, events, &padded(stored, events.len()))
        }
    }

    /// Feeds `tx` with every event from ordinal `from`, through a catch-up subscription on
    /// `$all` filtered to the namespace.
    async fn follow(&self, from: u64, tx: &mpsc::Sender<Result<RecordedEvent, StoreError>>) -> Result<(), StoreError> {
        let (start, mut next) = {
            let synced = self.catch_up().await?;
            let first = from.min(synced.index.len());
            (synced.index.start_before(first).unwrap_or(StreamPosition::Start), first)
        };
        let options = SubscribeToAllOptions::default()
            .position(start)
            .filter(self.filter())
            .retry_options(RetryOptions::default().retry_forever())
            .requires_leader(true);
        let mut subscription = self.inner.client.subscribe_to_all(&options).await;
        loop {
            let resolved = tokio::select! {
                event = subscription.next() => event.map_err(store_error)?,
                () = tx.closed() => return Ok(()),
            };
            let Some(event) = resolved.event else { continue };
            if !is_after(&start, event.position) {
                continue;
            }
            let ordinal = next;
            next += 1;
            if ordinal < from {
                continue;
            }
            let recorded = decode_event(&self.inner.ns, StoredParts::of(&event), ordinal)?;
            if tx.send(Ok(recorded)).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// `stored` as [`resolve_retry`] takes it: one slot per proposed event.
fn padded(stored: Vec<RecordedEvent>, len: usize) -> Vec<Option<RecordedEvent>> {
    let mut slots: Vec<_> = stored.into_iter().take(len).map(Some).collect();
    slots.resize(len, None);
    slots
}

#[async_trait]
impl EventStore for KurrentStore {
    async fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedRevision,
        events: Vec<ProposedEvent>,
    ) -> Result<AppendOutcome, StoreError> {
        check_batch(&events)?;
        let closed = self.inner.closed.read().await;
        if *closed {
            return Err(StoreError::Closed);
        }
        let name = self.inner.ns.stream_name(stream);
        let _turn = self.append_lock(&name).lock().await;
        for race in 0..MAX_RACES {
            // Once caught up, the index knows every stored id and the stream's head.
            let head = {
                let synced = self.catch_up().await?;
                if let Some(ordinal) = synced.index.ordinal_of(&events[0].event_id) {
                    drop(synced);
                    return self.replayed(stream, &events, ordinal).await;
                }
                if let Some(reused) = events.iter().find(|e| synced.index.ordinal_of(&e.event_id).is_some()) {
                    return Err(StoreError::EventIdConflict { event_id: reused.event_id });
                }
                synced.index.head(&name)
            };
            let actual = head.map(|h| h.0);
            if !revision_matches(expected, actual) {
                return Err(StoreError::WrongExpectedRevision { stream: stream.clone(), expected, actual });
            }
            let links = link(stream, head, 0, &events);
            let data: Vec<EventData> = events.iter().zip(&links).map(|(e, l)| encode_event(e, l)).collect();
            let options = AppendToStreamOptions::default().stream_state(expected_state(actual)).requires_leader(true);
            match self.inner.client.append_to_stream(name.as_str(), &options, data).await {
                Ok(_) => return self.confirmed(stream, &events, &links).await,
                Err(e) => match translate_append(e) {
                    Failure::Raced { .. } => {
                        tracing::debug!(race, "kurrentdb append lost a race; re-reading the head");
                        tokio::time::sleep(Duration::from_millis(u64::from(race % 8))).await;
                    }
                    other => return Err(other.into_store_error()),
                },
            }
        }
        Err(StoreError::Backend(format!("stream {stream} kept changing during {MAX_RACES} attempts; try again")))
    }

    async fn read_stream(&self, stream: &StreamId, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let name = self.inner.ns.stream_name(stream);
        let raw = self.read_stream_raw(&name, StreamPosition::Position(from), limit).await?;
        self.with_ordinals(&raw).await
    }

    async fn read_all(&self, from: u64, limit: usize) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let known = self.inner.index.lock().await.index.start_before(from);
        let start = match known {
            Some(start) => start,
            None => match self.catch_up().await?.index.start_before(from) {
                Some(start) => start,
                None => return Ok(Vec::new()),
            },
        };
        let page = self.read_all_page(&start, limit).await?;
        let synced = self.inner.index.lock().await;
        page.iter()
            .zip(from..)
            .map(|(event, ordinal)| {
                synced.index.check(ordinal, event.position)?;
                decode_event(&self.inner.ns, StoredParts::of(event), ordinal)
            })
            .collect()
    }

    async fn stream_revision(&self, stream: &StreamId) -> Result<Option<u64>, StoreError> {
        let last = self.read_stream_raw(&self.inner.ns.stream_name(stream), StreamPosition::End, 1).await?;
        Ok(last.first().map(|e| e.revision))
    }

    fn subscribe_all(&self, from: u64) -> BoxStream<'static, Result<RecordedEvent, StoreError>> {
        let store = self.clone();
        Box::pin(subscription::async_stream_like(move |tx| async move {
            if let Err(e) = store.follow(from, &tx).await {
                let _ = tx.send(Err(e)).await;
            }
        }))
    }

    async fn shutdown(&self) {
        *self.inner.closed.write().await = true;
    }
}

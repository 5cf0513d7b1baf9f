//! `FeedService`: a family's changes, or every family's, streamed to an EPD. What each
//! message holds and the disclosure it is are decided in `gezinsdossier_ledger::families`
//! (the feed use case); this file wakes on commits, keeps the subscriber's positions,
//! splits large batches, and encodes the resume token.

use crate::consent_service::family_id;
use crate::error::ServiceError;
use crate::feed_router::FeedRouter;
use crate::identity::interceptor::requester;
use futures::{FutureExt, StreamExt};
use gezinsdossier_ledger::authorisation::Caller;
use gezinsdossier_ledger::consent::Purpose;
use gezinsdossier_ledger::disclosure::{AccessLogEvent, Notice, NoticeKind};
use gezinsdossier_ledger::envelope::{EventId, RecordedEvent};
use gezinsdossier_ledger::families::{
    Families, FamilyError, FeedAsk, FeedBatch, FeedPosition, FeedScope, family_of, notice_for,
};
use gezinsdossier_ledger::family::FamilyId;
use gezinsdossier_ledger::proof_index::LogIndex;
use gezinsdossier_ledger::store::StoreError;
use gezinsdossier_ledger::store::fanout::Fanout;
use gezinsdossier_proto::convert::FieldError;
use gezinsdossier_proto::convert::consent::purpose;
use gezinsdossier_proto::convert::views::{dossier_item, notice_message};
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::feed_service_server::FeedService;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Messages buffered per subscriber: a slow reader holds the sender back (memory stays
/// bounded), it does not make the server queue without end. One more slot is kept for the
/// status that ends the stream.
const BUFFER: usize = 16;
/// Longest resume token accepted, in characters.
const MAX_TOKEN_LEN: usize = 16 * 1024;
/// A batch whose items encode to more than this is sent in parts (gRPC clients refuse
/// messages over 4 MiB by default).
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// Families whose position a subscriber to every family keeps; forgetting one costs a
/// re-read of that family's stream and at most repeats, never a loss.
const MAX_FOLLOWED_FAMILIES: usize = 4096;
/// Most log events a subscriber to every family takes in one round.
const MAX_EVENTS_PER_ROUND: usize = 512;
/// A subscriber's family batches of one round in flight at once: enough that their
/// disclosures share commits. A round with all of them at once (`join_all`) allocated a fresh
/// ~3 KB future per family: 17% of the feed's CPU went to the allocator and page faults.
const FAMILIES_IN_FLIGHT: usize = 16;
/// A subscriber to every family that was sent nothing for this long, while the log moved,
/// is sent a fresh token.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

pub struct FeedApi {
    /// Where every subscriber's work runs (see [`FeedRuntime`]).
    runtime: FeedRuntime,
    families: Arc<Families>,
    /// One live read of the log for every subscriber of this process.
    log: Arc<Fanout>,
    /// Routes that read to the subscribers to every family it may concern.
    router: Arc<FeedRouter>,
    index: LogIndex,
    draining: watch::Receiver<bool>,
    slow_after: Duration,
}

impl FeedApi {
    /// `index` tells where the log's head is (a subscription starts there); `draining` ends
    /// every stream when a shutdown begins; a subscriber whose buffer stays full for
    /// `slow_after` is told it fell behind.
    ///
    /// # Errors
    /// The feed's threads could not be started.
    pub fn new(
        families: Arc<Families>,
        index: LogIndex,
        draining: watch::Receiver<bool>,
        slow_after: Duration,
    ) -> std::io::Result<Self> {
        let log = Arc::new(Fanout::new(families.store().clone()));
        let router = Arc::new(FeedRouter::new(families.clone(), log.clone(), index.clone()));
        Ok(Self { runtime: FeedRuntime::new()?, families, log, router, index, draining, slow_after })
    }
}

/// The threads that subscribers' work runs on: the log's shared read, the router, and every
/// follower. Apart from the request handlers, so that the operating system shares the CPU
/// between the two: on one runtime, closed-loop appenders kept the feed's tasks waiting in
/// the same queue (p50 delivery ~800 ms in the feed benchmark's 10 s runs, ~60 ms apart; see
/// BENCHMARKS.md).
struct FeedRuntime {
    handle: tokio::runtime::Handle,
    /// Taken when dropped.
    runtime: Option<tokio::runtime::Runtime>,
}

impl FeedRuntime {
    fn new() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            // Its blocking threads run store reads: more than a few only add memory (each
            // keeps an allocator heap of its own). Uncapped, the feed bench grew 93 of them,
            // and RSS after 60 s was 1,035 MiB against 710 MiB with the cap.
            .max_blocking_threads(4 * threads)
            .thread_name("gezinsdossier-feed")
            .enable_all()
            .build()?;
        Ok(Self { handle: runtime.handle().clone(), runtime: Some(runtime) })
    }
}

impl Drop for FeedRuntime {
    fn drop(&mut self) {
        // Dropped from async code when the server stops: a runtime may not block there, and
        // by then every follower has ended its stream (draining).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// What a resume token holds. Opaque to clients; not secret (it carries no data), and a
/// token presented by another organisation is refused.
#[derive(Debug, Serialize, Deserialize)]
struct ResumeToken {
    v: u8,
    organisation: String,
    /// Empty for a subscription to every family.
    family: String,
    /// Where a one-family subscriber stands.
    #[serde(default)]
    position: FeedPosition,
    /// For every family: the global log position to go on from (all before it handled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    next_position: Option<u64>,
}

impl ResumeToken {
    fn encode(&self) -> String {
        hex::encode(serde_json::to_vec(self).unwrap_or_default())
    }

    fn decode(raw: &str) -> Result<Self, FieldError> {
        let bad = || FieldError::new("resume_token", "not a token from this service");
        if raw.len() > MAX_TOKEN_LEN {
            return Err(FieldError::new("resume_token", format!("at most {MAX_TOKEN_LEN} characters")));
        }
        let bytes = hex::decode(raw).map_err(|_| bad())?;
        let token: Self = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        let every = token.family.is_empty();
        if token.v == 1 && every == token.next_position.is_some() { Ok(token) } else { Err(bad()) }
    }
}

type FeedStream = Pin<Box<dyn Stream<Item = Result<pb::FeedMessage, Status>> + Send>>;

#[tonic::async_trait]
impl FeedService for FeedApi {
    type SubscribeStream = FeedStream;

    #[tracing::instrument(name = "Subscribe", skip_all)]
    async fn subscribe(&self, request: Request<pb::SubscribeRequest>) -> Result<Response<FeedStream>, Status> {
        let caller = requester(&request)?.caller();
        let r = request.into_inner();
        let family = if r.family_id.is_empty() { None } else { Some(family_id(&r.family_id)?) };
        let purpose = purpose(r.purpose, "purpose").map_err(ServiceError::from)?;
        let token = if r.resume_token.is_empty() {
            None
        } else {
            Some(ResumeToken::decode(&r.resume_token).map_err(ServiceError::from)?)
        };
        if token.as_ref().is_some_and(|t| t.family != family.as_ref().map_or("", FamilyId::as_str)) {
            let why = if family.is_some() { "issued for another family" } else { "issued for one family" };
            return Err(ServiceError::from(FieldError::new("resume_token", why)).into());
        }
        let token_organisation = token.as_ref().map(|t| t.organisation.as_str());
        let scope = family.as_ref().map_or(FeedScope::EveryFamily, FeedScope::Family);
        self.families.authorise_feed(&caller, scope, token_organisation).await.map_err(ServiceError::from)?;
        let (tx, rx) = mpsc::channel(BUFFER + 1);
        let sender = Sender { tx, slow_after: self.slow_after, organisation: caller.organisation().to_owned() };
        let follower = Follower {
            families: self.families.clone(),
            caller,
            purpose,
            draining: self.draining.clone(),
            sender,
            _counted: SubscriberGauge::new(),
        };
        let runtime = &self.runtime.handle;
        match family {
            Some(family) => {
                let position = token.map(|t| t.position).unwrap_or_default();
                // Subscribe before the first batch, so that no commit falls between the two.
                let wake = {
                    let _on_feed_runtime = runtime.enter();
                    self.log.follow(self.index.size())
                };
                // The first batch before the stream opens: a refusal is the call's answer.
                let first = follower.one_batch(&family, &position, true).await.map_err(ServiceError::from)?;
                runtime.spawn(follower.follow_one(family, position, first, wake));
            }
            None => {
                let from = token.and_then(|t| t.next_position).unwrap_or_else(|| self.index.size());
                let wake = {
                    let _on_feed_runtime = runtime.enter();
                    self.every_family_wake(&follower.caller, from)
                };
                runtime.spawn(follower.follow_every(from, wake));
            }
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

impl FeedApi {
    /// What wakes a subscriber to every family from `from`: the log itself up to where the
    /// router takes over, then only what the router sends it.
    fn every_family_wake(&self, caller: &Caller, from: u64) -> Wake {
        let (routed_from, routed) = self.router.register(caller.clone());
        let catch_up = if from < routed_from {
            let before_routing = move |e: &Result<Arc<RecordedEvent>, StoreError>| {
                std::future::ready(e.as_ref().is_err() || e.as_ref().is_ok_and(|e| e.position < routed_from))
            };
            self.log.follow(from).take_while(before_routing).boxed()
        } else {
            futures::stream::empty().boxed()
        };
        let not_before_from = move |e: &Result<Arc<RecordedEvent>, StoreError>| {
            std::future::ready(e.as_ref().is_err() || e.as_ref().is_ok_and(|e| e.position >= from))
        };
        // The router drops a subscriber whose queue is full: the stream ends, and it resumes.
        let live = ReceiverStream::new(routed)
            .filter(not_before_from)
            .chain(futures::stream::once(std::future::ready(Err(StoreError::Closed))));
        catch_up.chain(live).boxed()
    }
}

/// One subscriber's task.
struct Follower {
    families: Arc<Families>,
    caller: Caller,
    purpose: Purpose,
    draining: watch::Receiver<bool>,
    sender: Sender,
    _counted: SubscriberGauge,
}

/// Counts a subscriber in `gezinsdossier_feed_subscribers` while its task lives.
struct SubscriberGauge;

impl SubscriberGauge {
    fn new() -> Self {
        metrics::gauge!("gezinsdossier_feed_subscribers").increment(1.0);
        Self
    }
}

impl Drop for SubscriberGauge {
    fn drop(&mut self) {
        metrics::gauge!("gezinsdossier_feed_subscribers").decrement(1.0);
    }
}

type Wake = futures::stream::BoxStream<'static, Result<Arc<RecordedEvent>, StoreError>>;

/// A one-family batch with the notices that came with it.
struct OneBatch {
    batch: FeedBatch,
    notices: Vec<(EventId, Notice)>,
}

/// What woke a follower.
enum Woken {
    Event(Arc<RecordedEvent>),
    /// The stream ended; the status has been sent.
    Ended,
}

impl Follower {
    async fn one_batch(
        &self,
        family: &FamilyId,
        position: &FeedPosition,
        first: bool,
    ) -> Result<OneBatch, FamilyError> {
        let ask = FeedAsk { family, purpose: self.purpose, position, refuse_without_basis: first, woken_at: None };
        let batch = self.families.feed_batch(&self.caller, ask).await?;
        let (notices, read_to) = self.families.feed_notices(&self.caller, family, position.access_log_revision).await?;
        let batch = FeedBatch { position: FeedPosition { access_log_revision: read_to, ..batch.position }, ..batch };
        Ok(OneBatch { batch, notices })
    }

    async fn follow_one(self, family: FamilyId, mut position: FeedPosition, first: OneBatch, mut wake: Wake) {
        let stream = family.stream();
        let access_log = gezinsdossier_ledger::disclosure::stream(&family);
        let mut next = Ok(first);
        let mut is_first = true;
        loop {
            match next {
                Ok(OneBatch { batch, notices }) => {
                    let before = self.sender.one_family_token(&family, &position);
                    position = batch.position.clone();
                    let after = self.sender.one_family_token(&family, &position);
                    if is_first || !batch.items.is_empty() || batch.access_ended || !notices.is_empty() {
                        let message = Delivery { family: &family, batch: &batch, notices: &notices };
                        if !self.sender.deliver_batch(message, &before, &after).await {
                            return;
                        }
                    }
                    is_first = false;
                }
                Err(e) => return self.sender.fail(e).await,
            }
            // Wait for a commit to this family (case and consent events share its stream),
            // or a notice for someone in it (not every access-log entry: the feed's own
            // disclosures would wake it).
            loop {
                match self.woken(&mut wake).await {
                    Woken::Event(e) if e.stream == stream => break,
                    Woken::Event(e) if e.stream == access_log && e.event_type == AccessLogEvent::NOTIFIED => break,
                    Woken::Event(_) => {}
                    Woken::Ended => return,
                }
            }
            next = self.one_batch(&family, &position, false).await;
        }
    }

    /// Follows every family from global position `from`: each family event is judged for
    /// this subscriber at delivery, each notice for it is passed on; families where it
    /// may see nothing produce no message and no disclosure.
    async fn follow_every(self, from: u64, mut wake: Wake) {
        let mut positions: HashMap<FamilyId, FeedPosition> = HashMap::new();
        let mut last_sent: Option<Instant> = None;
        // The first message tells the subscriber its token before anything happens.
        if !self.sender.deliver(token_only(self.sender.every_family_token(from))).await {
            return;
        }
        loop {
            // Everything already waiting is taken together: one batch (and one disclosure)
            // per family, the families' batches built and committed concurrently, so that a
            // subscriber behind the log catches up instead of waiting out one commit per
            // event.
            let mut events = match self.woken(&mut wake).await {
                Woken::Event(e) => vec![e],
                Woken::Ended => return,
            };
            while events.len() < MAX_EVENTS_PER_ROUND {
                match wake.next().now_or_never() {
                    Some(Some(Ok(e))) => events.push(e),
                    Some(Some(Err(e))) => return self.sender.fail(FamilyError::from(e)).await,
                    _ => break,
                }
            }
            let (Some(first), Some(last)) = (events.first(), events.last()) else { continue };
            let before = self.sender.every_family_token(first.position);
            let after = self.sender.every_family_token(last.position + 1);
            let messages = match self.round(&mut positions, &events).await {
                Ok(m) => m,
                Err(e) => return self.sender.fail(e).await,
            };
            // How far behind the log this subscriber runs: commit to delivery.
            let behind_micros = chrono::Utc::now().timestamp_micros().saturating_sub(last.recorded_at_micros);
            metrics::histogram!("gezinsdossier_feed_lag_seconds").record(behind_micros.max(0) as f64 / 1e6);
            let count = messages.len();
            for (i, (family, batch, notices)) in messages.into_iter().enumerate() {
                let token = if i + 1 == count { &after } else { &before };
                let delivery = Delivery { family: &family, batch: &batch, notices: &notices };
                if !self.sender.deliver_batch(delivery, &before, token).await {
                    return;
                }
                last_sent = Some(Instant::now());
            }
            if count == 0 && last_sent.is_none_or(|t| t.elapsed() >= CHECKPOINT_EVERY) {
                if !self.sender.deliver(token_only(after)).await {
                    return;
                }
                last_sent = Some(Instant::now());
            }
        }
    }

    /// What `events` bring this subscriber to every family, in the order of the families'
    /// first events: one batch per family that concerns it and changed for it, and the
    /// notices addressed to it. Keeps `positions` up to date (bounded).
    async fn round(
        &self,
        positions: &mut HashMap<FamilyId, FeedPosition>,
        events: &[Arc<RecordedEvent>],
    ) -> Result<Vec<(FamilyId, FeedBatch, Vec<(EventId, Notice)>)>, FamilyError> {
        // Per family, in order of first appearance: its first event's revision here and its
        // last (`at` finds a family's entry without a scan per event).
        let mut woken: Vec<(FamilyId, u64, u64)> = Vec::new();
        let mut at: HashMap<FamilyId, usize> = HashMap::new();
        let mut notices = Vec::new();
        self.families.load_notice_keys(events.iter().map(|e| &**e)).await?;
        for event in events {
            if let Some(family) = family_of(event) {
                match at.get(&family) {
                    Some(&i) => woken[i].2 = event.revision,
                    None => {
                        at.insert(family.clone(), woken.len());
                        woken.push((family, event.revision, event.revision));
                    }
                }
            } else if let Some(notice) = notice_for(&self.caller, event, &**self.families.keys()) {
                notices.push(notice);
            }
        }
        // By index: a closure taking `&(FamilyId, ..)` makes the spawned future's type
        // higher-ranked, which the compiler cannot prove `Send`.
        let (woken_ref, positions_ref) = (&woken, &*positions);
        let batches: Vec<_> = futures::stream::iter(0..woken.len())
            .map(|i| {
                let (family, first, last) = &woken_ref[i];
                let known = positions_ref.get(family).cloned();
                async move { self.family_batch(known, family, *first, *last).await }
            })
            .buffered(FAMILIES_IN_FLIGHT)
            .collect()
            .await;
        let mut out = Vec::new();
        for ((family, _, _), batch) in woken.into_iter().zip(batches) {
            let Some((position, batch)) = batch? else { continue };
            if positions.len() >= MAX_FOLLOWED_FAMILIES
                && !positions.contains_key(&family)
                && let Some(forget) = positions.keys().next().cloned()
            {
                positions.remove(&forget);
            }
            positions.insert(family.clone(), position);
            if let Some(batch) = batch {
                out.push((family, batch, Vec::new()));
            }
        }
        for (family, id, notice) in notices {
            out.push((family, FeedBatch::empty(), vec![(id, notice)]));
        }
        Ok(out)
    }

    /// One family's batch for a subscriber to every family, woken by its revisions
    /// `first..=last`: `None` when the family does not concern it; otherwise its new position,
    /// and the batch when something changed for it.
    async fn family_batch(
        &self,
        known: Option<FeedPosition>,
        family: &FamilyId,
        first: u64,
        last: u64,
    ) -> Result<Option<(FeedPosition, Option<FeedBatch>)>, FamilyError> {
        // The cache answers without waiting when it can; otherwise wait for the family.
        let concerns = match self.families.feed_audience(family, last, std::iter::once(&self.caller)).as_deref() {
            Some([concerns]) => *concerns,
            _ => self.families.feed_concerns(&self.caller, family, last).await?,
        };
        if !concerns {
            return Ok(None);
        }
        let position = match known {
            Some(p) => p,
            None => self.families.feed_position_before(&self.caller, family, self.purpose, first).await?,
        };
        if position.revision.is_some_and(|r| r >= last) {
            // An earlier batch already covered these events.
            return Ok(Some((position, None)));
        }
        let ask = FeedAsk {
            family,
            purpose: self.purpose,
            position: &position,
            refuse_without_basis: false,
            woken_at: Some(last),
        };
        let batch = self.families.feed_batch(&self.caller, ask).await?;
        let changed = !batch.items.is_empty() || batch.access_ended;
        Ok(Some((batch.position.clone(), changed.then_some(batch))))
    }

    /// The next event of the log, or the end of the stream (with its status sent) when the
    /// server drains, the store fails or the subscriber leaves.
    async fn woken(&self, wake: &mut Wake) -> Woken {
        let mut draining = self.draining.clone();
        tokio::select! {
            next = wake.next() => match next {
                Some(Ok(event)) => Woken::Event(event),
                None | Some(Err(StoreError::Closed)) => {
                    self.sender.end("this subscription's read of the log ended").await;
                    Woken::Ended
                }
                Some(Err(e)) => {
                    self.sender.fail(FamilyError::from(e)).await;
                    Woken::Ended
                }
            },
            _ = draining.changed() => {
                self.sender.end("the server is stopping").await;
                Woken::Ended
            }
            () = self.sender.tx.closed() => Woken::Ended,
        }
    }
}

/// Items grouped into messages of at most [`MAX_MESSAGE_BYTES`] (an item larger than that
/// goes alone); always at least one group, so that an empty batch is still one message.
fn in_parts(items: impl Iterator<Item = pb::DossierItem>) -> Vec<Vec<pb::DossierItem>> {
    let mut parts: Vec<Vec<pb::DossierItem>> = Vec::new();
    let mut current = Vec::new();
    let mut size = 0;
    for item in items {
        let len = item.encoded_len();
        if size + len > MAX_MESSAGE_BYTES && !current.is_empty() {
            parts.push(std::mem::take(&mut current));
            size = 0;
        }
        size += len;
        current.push(item);
    }
    parts.push(current);
    parts
}

fn token_only(resume_token: String) -> pb::FeedMessage {
    pb::FeedMessage { resume_token, ..Default::default() }
}

/// The items the notices of `kind` are about.
fn about(notices: &[(EventId, Notice)], kind: NoticeKind) -> Vec<String> {
    notices.iter().filter(|(_, n)| n.kind == kind).map(|(_, n)| n.about_event_id.to_string()).collect()
}

/// One batch for one family, to be sent.
struct Delivery<'a> {
    family: &'a FamilyId,
    batch: &'a FeedBatch,
    notices: &'a [(EventId, Notice)],
}

/// The subscriber's end of the stream.
struct Sender {
    tx: mpsc::Sender<Result<pb::FeedMessage, Status>>,
    slow_after: Duration,
    organisation: String,
}

impl Sender {
    fn one_family_token(&self, family: &FamilyId, position: &FeedPosition) -> String {
        let token = ResumeToken {
            v: 1,
            organisation: self.organisation.clone(),
            family: family.as_str().to_owned(),
            position: position.clone(),
            next_position: None,
        };
        token.encode()
    }

    fn every_family_token(&self, next_position: u64) -> String {
        let token = ResumeToken {
            v: 1,
            organisation: self.organisation.clone(),
            family: String::new(),
            position: FeedPosition::default(),
            next_position: Some(next_position),
        };
        token.encode()
    }

    /// Sends one batch, in parts when its items are too large for one message. Every part
    /// but the last carries `before` (resuming from it repeats the batch: at least once).
    async fn deliver_batch(&self, d: Delivery<'_>, before: &str, after: &str) -> bool {
        let parts = in_parts(d.batch.items.iter().map(dossier_item));
        let count = parts.len();
        for (i, items) in parts.into_iter().enumerate() {
            let last = i + 1 == count;
            let message = pb::FeedMessage {
                items,
                access_ended: last && d.batch.access_ended,
                disclosure_event_id: d.batch.logged.as_ref().map(|l| l.event_id.to_string()).unwrap_or_default(),
                resume_token: if last { after } else { before }.to_owned(),
                family_id: d.family.as_str().to_owned(),
                notices: if last {
                    d.notices.iter().map(|(id, n)| notice_message(d.family.as_str(), *id, n, None)).collect()
                } else {
                    Vec::new()
                },
                retracted_event_ids: if last { about(d.notices, NoticeKind::Retraction) } else { Vec::new() },
                erased_event_ids: if last { about(d.notices, NoticeKind::Erasure) } else { Vec::new() },
                more_follows: !last,
            };
            if !self.deliver(message).await {
                return false;
            }
        }
        true
    }

    /// Sends `message` once the subscriber has room, keeping the last slot for a status.
    /// A subscriber that leaves its buffer full too long is told it fell behind (it resumes
    /// from its last token without loss). Returns whether the stream goes on.
    async fn deliver(&self, message: pb::FeedMessage) -> bool {
        // The channel cannot wait for two free slots, so this polls; it runs only while a
        // subscriber's buffer is full.
        let waited = tokio::time::timeout(self.slow_after, async {
            while self.tx.capacity() <= 1 {
                if self.tx.is_closed() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        if waited.is_err() {
            let status = Status::resource_exhausted(format!(
                "this subscriber fell behind (buffer full for {} ms): subscribe again with your last resume token",
                self.slow_after.as_millis()
            ));
            let _ = self.tx.try_send(Err(status));
            return false;
        }
        self.tx.send(Ok(message)).await.is_ok()
    }

    async fn end(&self, why: &str) {
        let status = Status::unavailable(format!("{why}: subscribe again with your last resume token"));
        let _ = self.tx.send(Err(status)).await;
    }

    async fn fail(&self, e: FamilyError) {
        let _ = self.tx.send(Err(ServiceError::from(e).into())).await;
    }
}

//! A KurrentDB stand-in for tests: the `Streams` gRPC service over an in-memory log, so the
//! store contract suite can drive the official `kurrentdb` client over a real socket where
//! no KurrentDB server can run.
//!
//! It models what the gezinsdossier store relies on, as KurrentDB documents it:
//! - appends with an expected revision (`any`, `no_stream`, `stream_exists`, exact), and
//!   id-based idempotency for a repeated append at the same expected revision;
//! - `$all` positions that are sparse offsets shared with other streams: events of one
//!   append share a commit position and have their own prepare positions, and foreign
//!   streams (a system stream, another namespace) are interleaved;
//! - stream reads forwards and backwards, `StreamNotFound` for a missing stream;
//! - `$all` reads from a position (inclusive) with a stream-prefix filter and a count;
//! - catch-up subscriptions to `$all` from a position (exclusive), filtered, then live.
//!
//! It is not KurrentDB: no clustering, persistence, authentication, deletes, regex filters
//! or stream subscriptions, and its reading of the protocol is ours. Passing against it
//! shows the store speaks the client's protocol consistently; it does not replace a run
//! against a real server.

#[allow(clippy::all, clippy::pedantic)]
pub mod proto {
    pub mod event_store {
        pub mod client {
            tonic::include_proto!("event_store.client");
            pub mod streams {
                tonic::include_proto!("event_store.client.streams");
            }
        }
    }
    pub mod google {
        pub mod rpc {
            tonic::include_proto!("google.rpc");
        }
    }
}

use proto::event_store::client::streams::{
    AppendReq, AppendResp, BatchAppendReq, BatchAppendResp, DeleteReq, DeleteResp, ReadReq, ReadResp, TombstoneReq,
    TombstoneResp, append_req, append_resp, read_req, read_resp, streams_server,
};
use proto::event_store::client::{Empty, StreamIdentifier, Uuid as ProtoUuid};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

mod severed;

/// Every this many appends, a foreign event lands in `$all` first.
const FOREIGN_EVERY: usize = 5;

/// A running fake; stops when dropped.
pub struct FakeKurrentDb {
    addr: SocketAddr,
    /// Bumped to sever every connection accepted before.
    generation: Arc<AtomicU64>,
    _stop: oneshot::Sender<()>,
}

impl FakeKurrentDb {
    /// Starts a fake on a free loopback port.
    ///
    /// # Panics
    /// When no loopback port can be bound (a broken test machine).
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let (stop, stopped) = oneshot::channel::<()>();
        let service = streams_server::StreamsServer::new(Fake::new());
        let generation = Arc::new(AtomicU64::new(0));
        let severable = generation.clone();
        tokio::spawn(async move {
            // Nagle plus delayed ACKs would add ~40 ms to each small request.
            let incoming =
                tokio_stream::StreamExt::map(tokio_stream::wrappers::TcpListenerStream::new(listener), move |s| {
                    s.map(|s| {
                        let _ = s.set_nodelay(true);
                        severed::Severable::new(s, severable.clone())
                    })
                });
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                })
                .await;
        });
        Self { addr, generation, _stop: stop }
    }

    /// Breaks every open connection, as a node restart or a network drop would: each fails
    /// its next read or write. New connections are accepted as before.
    pub fn drop_connections(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// A connection string for the official client.
    pub fn url(&self) -> String {
        format!("kurrentdb://{}?tls=false", self.addr)
    }
}

#[derive(Clone)]
struct Record {
    stream: Vec<u8>,
    revision: u64,
    id: Option<ProtoUuid>,
    metadata: HashMap<String, String>,
    custom_metadata: Vec<u8>,
    data: Vec<u8>,
    commit: u64,
    prepare: u64,
}

impl Record {
    fn key(&self) -> (u64, u64) {
        (self.commit, self.prepare)
    }

    fn to_read_resp(&self) -> ReadResp {
        use read_resp::read_event::{Position, RecordedEvent};
        let event = RecordedEvent {
            id: self.id.clone(),
            stream_identifier: Some(StreamIdentifier { stream_name: self.stream.clone() }),
            stream_revision: self.revision,
            prepare_position: self.prepare,
            commit_position: self.commit,
            metadata: self.metadata.clone(),
            custom_metadata: self.custom_metadata.clone(),
            data: self.data.clone(),
        };
        ReadResp {
            content: Some(read_resp::Content::Event(read_resp::ReadEvent {
                event: Some(event),
                link: None,
                position: Some(Position::CommitPosition(self.commit)),
            })),
        }
    }
}

#[derive(Default)]
struct Log {
    records: Vec<Record>,
    /// Record indexes of each stream, in revision order.
    streams: HashMap<Vec<u8>, Vec<usize>>,
    next_offset: u64,
    appends: usize,
}

/// What an append asked the stream to be at.
#[derive(Clone, Copy, Debug)]
enum Expected {
    Any,
    NoStream,
    Exists,
    Exact(u64),
}

struct Proposed {
    id: Option<ProtoUuid>,
    metadata: HashMap<String, String>,
    custom_metadata: Vec<u8>,
    data: Vec<u8>,
}

impl Log {
    fn current(&self, stream: &[u8]) -> Option<u64> {
        self.streams.get(stream).and_then(|s| s.len().checked_sub(1)).map(|r| r as u64)
    }

    fn stream_records(&self, stream: &[u8]) -> Vec<&Record> {
        self.streams.get(stream).map(|ix| ix.iter().map(|&i| &self.records[i]).collect()).unwrap_or_default()
    }

    /// Writes one append as a transaction: prepares in order, then the shared commit.
    fn write(&mut self, stream: &[u8], events: Vec<Proposed>) -> (u64, u64, u64) {
        let first_revision = self.current(stream).map_or(0, |r| r + 1);
        let mut prepares = Vec::with_capacity(events.len());
        for e in &events {
            prepares.push(self.next_offset);
            self.next_offset += 97 + (e.data.len() + e.custom_metadata.len()) as u64;
        }
        let commit = self.next_offset;
        self.next_offset += 53;
        for (i, (e, prepare)) in events.into_iter().zip(prepares).enumerate() {
            let mut metadata = e.metadata;
            metadata.insert("created".into(), "638000000000000000".into());
            self.records.push(Record {
                stream: stream.to_vec(),
                revision: first_revision + i as u64,
                id: e.id,
                metadata,
                custom_metadata: e.custom_metadata,
                data: e.data,
                commit,
                prepare,
            });
            self.streams.entry(stream.to_vec()).or_default().push(self.records.len() - 1);
        }
        let last = self.current(stream).unwrap_or(0);
        (last, commit, self.records.last().map_or(0, |r| r.prepare))
    }

    fn foreign(&mut self) {
        let stream: &[u8] =
            if self.appends.is_multiple_of(2) { b"$stats-127.0.0.1:2113" } else { b"elsewhere:family-a" };
        let proposed = Proposed {
            id: Some(ProtoUuid {
                value: Some(proto::event_store::client::uuid::Value::String(uuid::Uuid::new_v4().to_string())),
            }),
            metadata: HashMap::from([
                ("type".into(), "noise".into()),
                ("content-type".into(), "application/json".into()),
            ]),
            custom_metadata: Vec::new(),
            data: b"{}".to_vec(),
        };
        self.write(stream, vec![proposed]);
    }
}

struct Fake {
    log: Arc<Mutex<Log>>,
    /// Bumped after every write, for live subscriptions.
    written: watch::Sender<usize>,
}

impl Fake {
    fn new() -> Self {
        let mut log = Log { next_offset: 1_024, ..Log::default() };
        log.foreign();
        log.appends += 1;
        log.foreign();
        Self { log: Arc::new(Mutex::new(log)), written: watch::channel(0).0 }
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        lock(&self.log)
    }
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn append_success(current: u64, commit: u64, prepare: u64) -> AppendResp {
    use append_resp::success::{CurrentRevisionOption, PositionOption};
    AppendResp {
        result: Some(append_resp::Result::Success(append_resp::Success {
            current_revision_option: Some(CurrentRevisionOption::CurrentRevision(current)),
            position_option: Some(PositionOption::Position(append_resp::Position {
                commit_position: commit,
                prepare_position: prepare,
            })),
        })),
    }
}

fn wrong_expected_version(expected: Expected, current: Option<u64>) -> AppendResp {
    use append_resp::wrong_expected_version::{CurrentRevisionOption, ExpectedRevisionOption};
    AppendResp {
        result: Some(append_resp::Result::WrongExpectedVersion(append_resp::WrongExpectedVersion {
            current_revision_option: Some(match current {
                Some(r) => CurrentRevisionOption::CurrentRevision(r),
                None => CurrentRevisionOption::CurrentNoStream(Empty {}),
            }),
            expected_revision_option: Some(match expected {
                Expected::Exact(r) => ExpectedRevisionOption::ExpectedRevision(r),
                Expected::NoStream => ExpectedRevisionOption::ExpectedNoStream(Empty {}),
                Expected::Any => ExpectedRevisionOption::ExpectedAny(Empty {}),
                Expected::Exists => ExpectedRevisionOption::ExpectedStreamExists(Empty {}),
            }),
            ..Default::default()
        })),
    }
}

type ReadStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<ReadResp, Status>> + Send>>;
type BatchStream = Pin<Box<dyn tokio_stream::Stream<Item = Result<BatchAppendResp, Status>> + Send>>;

#[tonic::async_trait]
impl streams_server::Streams for Fake {
    type ReadStream = ReadStream;
    type BatchAppendStream = BatchStream;

    async fn append(&self, request: Request<Streaming<AppendReq>>) -> Result<Response<AppendResp>, Status> {
        let mut incoming = request.into_inner();
        let Some(AppendReq { content: Some(append_req::Content::Options(options)) }) = incoming.message().await? else {
            return Err(Status::invalid_argument("the first append message must carry the options"));
        };
        let stream = options.stream_identifier.map(|s| s.stream_name).unwrap_or_default();
        use append_req::options::ExpectedStreamRevision as E;
        let expected = match options.expected_stream_revision {
            Some(E::Revision(r)) => Expected::Exact(r),
            Some(E::NoStream(_)) => Expected::NoStream,
            Some(E::StreamExists(_)) => Expected::Exists,
            Some(E::Any(_)) | None => Expected::Any,
        };
        let mut events = Vec::new();
        while let Some(message) = incoming.message().await? {
            match message.content {
                Some(append_req::Content::ProposedMessage(m)) => events.push(Proposed {
                    id: m.id,
                    metadata: m.metadata,
                    custom_metadata: m.custom_metadata,
                    data: m.data,
                }),
                _ => return Err(Status::invalid_argument("only proposed messages may follow the options")),
            }
        }
        let response = {
            let mut log = self.lock();
            log.appends += 1;
            if log.appends.is_multiple_of(FOREIGN_EVERY) {
                log.foreign();
            }
            let current = log.current(&stream);
            // KurrentDB's idempotency: the same ids right after the expected revision.
            let after = match expected {
                Expected::Exact(r) => Some(r + 1),
                Expected::NoStream => Some(0),
                Expected::Any => {
                    let first = events.first().and_then(|e| e.id.clone());
                    log.stream_records(&stream).iter().find(|r| r.id == first).map(|r| r.revision)
                }
                Expected::Exists => None,
            };
            let stored =
                after.map(|from| log.stream_records(&stream).into_iter().skip(from as usize).collect::<Vec<_>>());
            let replay = stored.filter(|s| {
                s.len() >= events.len() && !events.is_empty() && s.iter().zip(&events).all(|(r, e)| r.id == e.id)
            });
            if let Some(stored) = replay {
                let last = stored[events.len() - 1];
                append_success(last.revision, last.commit, last.prepare)
            } else {
                let ok = match expected {
                    Expected::Any => true,
                    Expected::NoStream => current.is_none(),
                    Expected::Exists => current.is_some(),
                    Expected::Exact(r) => current == Some(r),
                };
                if !ok {
                    wrong_expected_version(expected, current)
                } else if events.is_empty() {
                    append_success(current.unwrap_or(0), 0, 0)
                } else {
                    let (last, commit, prepare) = log.write(&stream, events);
                    append_success(last, commit, prepare)
                }
            }
        };
        self.written.send_modify(|n| *n += 1);
        Ok(Response::new(response))
    }

    async fn read(&self, request: Request<ReadReq>) -> Result<Response<Self::ReadStream>, Status> {
        let options = request.into_inner().options.ok_or_else(|| Status::invalid_argument("read options missing"))?;
        let backwards = options.read_direction == read_req::options::ReadDirection::Backwards as i32;
        let prefixes = match options.filter_option {
            Some(read_req::options::FilterOption::Filter(filter)) => match filter.filter {
                Some(read_req::options::filter_options::Filter::StreamIdentifier(e)) if e.regex.is_empty() => {
                    Some(e.prefix)
                }
                _ => return Err(Status::unimplemented("the fake filters by stream-name prefix only")),
            },
            _ => None,
        };
        let matches =
            move |r: &Record| prefixes.as_ref().is_none_or(|p| p.iter().any(|p| r.stream.starts_with(p.as_bytes())));
        let (tx, rx) = mpsc::channel(64);
        let log = self.log.clone();
        match (options.stream_option, options.count_option) {
            (Some(read_req::options::StreamOption::Stream(s)), Some(read_req::options::CountOption::Count(count))) => {
                use read_req::options::stream_options::RevisionOption as R;
                let name = s.stream_identifier.map(|s| s.stream_name).unwrap_or_default();
                let responses = {
                    let log = lock(&log);
                    let records = log.stream_records(&name);
                    if records.is_empty() {
                        vec![ReadResp {
                            content: Some(read_resp::Content::StreamNotFound(read_resp::StreamNotFound {
                                stream_identifier: Some(StreamIdentifier { stream_name: name.clone() }),
                            })),
                        }]
                    } else {
                        let last = records.len() as u64 - 1;
                        let picked: Vec<&Record> = match (s.revision_option, backwards) {
                            (Some(R::Revision(r)), false) => records.into_iter().skip(r as usize).collect(),
                            (Some(R::Start(_)) | None, false) => records,
                            (Some(R::Revision(r)), true) => {
                                records.into_iter().take(r.min(last) as usize + 1).rev().collect()
                            }
                            (Some(R::End(_)), _) | (Some(R::Start(_)) | None, true) => {
                                records.into_iter().rev().collect()
                            }
                        };
                        picked.into_iter().take(count as usize).map(Record::to_read_resp).collect()
                    }
                };
                tokio::spawn(async move { send_all(&tx, responses).await });
            }
            (Some(read_req::options::StreamOption::All(a)), count) => {
                use read_req::options::all_options::AllOption as A;
                let position = match a.all_option {
                    Some(A::Position(p)) => Some((p.commit_position, p.prepare_position)),
                    Some(A::End(_)) => Some((u64::MAX, u64::MAX)),
                    Some(A::Start(_)) | None => None,
                };
                match count {
                    Some(read_req::options::CountOption::Count(count)) => {
                        let responses: Vec<ReadResp> = {
                            let log = lock(&log);
                            // Inclusive of `position` in either direction.
                            let in_range = |r: &&Record| {
                                position.is_none_or(|p| if backwards { r.key() <= p } else { r.key() >= p })
                            };
                            let ordered: Box<dyn Iterator<Item = &Record>> = if backwards {
                                Box::new(log.records.iter().rev())
                            } else {
                                Box::new(log.records.iter())
                            };
                            ordered
                                .filter(in_range)
                                .filter(|r| matches(r))
                                .take(count as usize)
                                .map(Record::to_read_resp)
                                .collect()
                        };
                        tokio::spawn(async move { send_all(&tx, responses).await });
                    }
                    Some(read_req::options::CountOption::Subscription(_)) => {
                        let written = self.written.subscribe();
                        tokio::spawn(subscribe_all(log, written, position, matches, tx));
                    }
                    None => return Err(Status::invalid_argument("read without count or subscription")),
                }
            }
            _ => return Err(Status::unimplemented("the fake reads streams by count and $all only")),
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delete(&self, _: Request<DeleteReq>) -> Result<Response<DeleteResp>, Status> {
        Err(Status::unimplemented("the fake does not delete"))
    }

    async fn tombstone(&self, _: Request<TombstoneReq>) -> Result<Response<TombstoneResp>, Status> {
        Err(Status::unimplemented("the fake does not tombstone"))
    }

    async fn batch_append(
        &self,
        _: Request<Streaming<BatchAppendReq>>,
    ) -> Result<Response<Self::BatchAppendStream>, Status> {
        Err(Status::unimplemented("the fake has no batch append"))
    }
}

/// Sends `responses` in order; `false` once the reader has gone.
async fn send_all(tx: &mpsc::Sender<Result<ReadResp, Status>>, responses: Vec<ReadResp>) -> bool {
    for r in responses {
        if tx.send(Ok(r)).await.is_err() {
            return false;
        }
    }
    true
}

/// Confirms, sends every matching event after `position` (exclusive), then follows writes.
async fn subscribe_all(
    log: Arc<Mutex<Log>>,
    mut written: watch::Receiver<usize>,
    position: Option<(u64, u64)>,
    matches: impl Fn(&Record) -> bool,
    tx: mpsc::Sender<Result<ReadResp, Status>>,
) {
    let confirmation = read_resp::Content::Confirmation(read_resp::SubscriptionConfirmation {
        subscription_id: uuid::Uuid::new_v4().to_string(),
    });
    if !send_all(&tx, vec![ReadResp { content: Some(confirmation) }]).await {
        return;
    }
    let mut next = {
        let log = lock(&log);
        position.map_or(0, |p| log.records.iter().take_while(|r| r.key() <= p).count())
    };
    loop {
        written.borrow_and_update();
        let batch: Vec<ReadResp> = {
            let log = lock(&log);
            let batch = log.records[next..].iter().filter(|r| matches(r)).map(Record::to_read_resp).collect();
            next = log.records.len();
            batch
        };
        if !send_all(&tx, batch).await {
            return;
        }
        tokio::select! {
            changed = written.changed() => if changed.is_err() { return },
            () = tx.closed() => return,
        }
    }
}

//! `FeedService`: one family's changes, streamed to an EPD. What each message holds and the
//! disclosure it is are decided in `gezinsdossier_ledger::families` (the feed use case);
//! this file wakes on commits, keeps the subscriber's position, and encodes the resume
//! token.

use crate::consent_service::family_id;
use crate::error::ServiceError;
use crate::identity::interceptor::requester;
use futures::StreamExt;
use gezinsdossier_ledger::authorisation::Caller;
use gezinsdossier_ledger::consent::Purpose;
use gezinsdossier_ledger::disclosure::AccessLogEvent;
use gezinsdossier_ledger::families::{Families, FeedBatch, FeedPosition};
use gezinsdossier_ledger::family::FamilyId;
use gezinsdossier_ledger::publisher::LogIndex;
use gezinsdossier_proto::convert::FieldError;
use gezinsdossier_proto::convert::consent::purpose;
use gezinsdossier_proto::convert::views::{dossier_item, notice_message};
use gezinsdossier_proto::v1 as pb;
use gezinsdossier_proto::v1::feed_service_server::FeedService;
use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
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

pub struct FeedApi {
    families: Arc<Families>,
    index: LogIndex,
    draining: watch::Receiver<bool>,
    slow_after: Duration,
}

impl FeedApi {
    /// `index` tells where the log's head is (a subscription starts there); `draining` ends
    /// every stream when a shutdown begins; a subscriber whose buffer stays full for
    /// `slow_after` is told it fell behind.
    pub fn new(
        families: Arc<Families>,
        index: LogIndex,
        draining: watch::Receiver<bool>,
        slow_after: Duration,
    ) -> Self {
        Self { families, index, draining, slow_after }
    }
}

/// What a resume token holds. Opaque to clients; not secret (it carries no data), and a
/// token presented by another organisation is refused.
#[derive(Debug, Serialize, Deserialize)]
struct ResumeToken {
    v: u8,
    organisation: String,
    family: String,
    position: FeedPosition,
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
        if token.v == 1 { Ok(token) } else { Err(bad()) }
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
        let family = family_id(&r.family_id)?;
        let purpose = purpose(r.purpose, "purpose").map_err(ServiceError::from)?;
        let token = if r.resume_token.is_empty() {
            None
        } else {
            Some(ResumeToken::decode(&r.resume_token).map_err(ServiceError::from)?)
        };
        if token.as_ref().is_some_and(|t| t.family != family.as_str()) {
            return Err(ServiceError::from(FieldError::new("resume_token", "issued for another family")).into());
        }
        let token_organisation = token.as_ref().map(|t| t.organisation.as_str());
        self.families.authorise_feed(&caller, &family, token_organisation).await.map_err(ServiceError::from)?;
        let position = token.map(|t| t.position).unwrap_or_default();
        // Subscribe before the first batch, so that no commit falls between the two.
        let wake = self.families.store().subscribe_all(self.index.size());
        // The first batch before the stream opens: a refusal is the call's answer.
        let first = self.families.feed_batch(&caller, &family, purpose, &position).await.map_err(ServiceError::from)?;
        let (tx, rx) = mpsc::channel(BUFFER + 1);
        let feed = Follower {
            families: self.families.clone(),
            caller,
            family,
            purpose,
            draining: self.draining.clone(),
            slow_after: self.slow_after,
            tx,
        };
        tokio::spawn(feed.run(first, wake));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// One subscriber's task.
struct Follower {
    families: Arc<Families>,
    caller: Caller,
    family: FamilyId,
    purpose: Purpose,
    draining: watch::Receiver<bool>,
    slow_after: Duration,
    tx: mpsc::Sender<Result<pb::FeedMessage, Status>>,
}

type Wake = futures::stream::BoxStream<
    'static,
    Result<gezinsdossier_ledger::envelope::RecordedEvent, gezinsdossier_ledger::store::StoreError>,
>;

impl Follower {
    async fn run(mut self, first: FeedBatch, mut wake: Wake) {
        let stream = self.family.stream();
        let access_log = gezinsdossier_ledger::disclosure::stream(&self.family);
        let mut position: FeedPosition;
        let mut next = Ok(first);
        let mut is_first = true;
        loop {
            match next {
                Ok(batch) => {
                    position = batch.position.clone();
                    if is_first || !batch.items.is_empty() || batch.access_ended || !batch.notices.is_empty() {
                        let token = ResumeToken {
                            v: 1,
                            organisation: self.caller.organisation().to_owned(),
                            family: self.family.as_str().to_owned(),
                            position: position.clone(),
                        };
                        let message = pb::FeedMessage {
                            items: batch.items.iter().map(dossier_item).collect(),
                            access_ended: batch.access_ended,
                            disclosure_event_id: batch.logged.map(|l| l.event_id.to_string()).unwrap_or_default(),
                            resume_token: token.encode(),
                            family_id: self.family.as_str().to_owned(),
                            notices: batch
                                .notices
                                .iter()
                                .map(|(id, n)| notice_message(self.family.as_str(), *id, n, None))
                                .collect(),
                        };
                        if !self.deliver(message).await {
                            return;
                        }
                    }
                    is_first = false;
                }
                Err(e) => {
                    let _ = self.tx.send(Err(ServiceError::from(e).into())).await;
                    return;
                }
            }
            // Wait for a commit to this family (case and consent events share its stream).
            loop {
                tokio::select! {
                    next = wake.next() => match next {
                        Some(Ok(event)) if event.stream == stream => break,
                        // A notice for someone in this family (not every access-log entry:
                        // the feed's own disclosures would wake it).
                        Some(Ok(event)) if event.stream == access_log && event.event_type == AccessLogEvent::NOTIFIED => break,
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            let _ = self.tx.send(Err(ServiceError::from(gezinsdossier_ledger::families::FamilyError::from(e)).into())).await;
                            return;
                        }
                        None => return self.end("the store is shutting down").await,
                    },
                    _ = self.draining.changed() => return self.end("the server is stopping").await,
                    () = self.tx.closed() => return,
                }
            }
            next = self.families.feed_batch(&self.caller, &self.family, self.purpose, &position).await;
        }
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
}

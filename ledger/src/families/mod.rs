//! The use cases over family streams, one file each. A newcomer looking for "where does X
//! happen" starts here:
//! - [`append`]: checked, optimistic appends of case events (and the write path shared with
//!   consent events);
//! - [`consent`]: recording consent-ledger events, listing consents, dry-run access checks;
//! - [`dossier`]: building a requester's gezinsdossier and committing the disclosure before
//!   it is returned; a privacy officer's investigation;
//! - [`audit`]: the privacy office's access-log queries and reviews;
//! - [`report`]: the who-saw-what report for a member, through a portal;
//! - [`erasure`]: erasing an organisation's records about a member (crypto-shredding);
//! - [`event_bytes`]: one event's canonical bytes, to whom they belong;
//! - [`feed`]: the change feed, each delivered batch a disclosure committed first;
//! - [`notices`]: telling earlier recipients of corrections (AVG art. 19), listing and
//!   acknowledging notices;
//! - [`restriction`]: restricting an organisation's records about a member (AVG art. 18);
//! - [`retention`]: the retention run (shreds what its clocks let go, records it);
//! - [`cache`]: the cached family states;
//! - [`report_index`]: each family's report lines per member, kept as its access log grows.
//!
//! Every use case asks [`crate::authorisation::authorise`] first, and every refusal is
//! committed to the access log before the caller hears of it.

mod append;
mod audit;
mod cache;
mod consent;
mod dossier;
mod erasure;
mod event_bytes;
mod feed;
mod notices;
mod report;
mod report_index;
mod restriction;
mod retention;

pub use append::CaseAppend;
pub use cache::DEFAULT_BOUND_BYTES as DEFAULT_CACHE_BOUND_BYTES;
pub use consent::ConsentListing;
pub use dossier::DossierRequest;
pub use erasure::{ErasureOutcome, ErasureRequest};
pub use feed::{FeedAsk, FeedBatch, FeedPosition, FeedScope, family_of, notice_for, notice_in};
pub use notices::{FamilyNotice, NoticeScope};
pub use report::{MemberReport, ReportRequest};
pub use report_index::DEFAULT_BOUND_BYTES as DEFAULT_REPORT_INDEX_BOUND_BYTES;
pub use restriction::{Restricted, RestrictionStep};
pub use retention::RetentionOutcome;

use crate::authorisation::{Caller, Grant, Refused};
use crate::case::validate::ValidationError;
use crate::clock::Clock;
use crate::consent::DenialReason;
use crate::consent::validate::ConsentRuleError;
use crate::disclosure::{self, AccessLogEvent, FunctionRefusal};
use crate::envelope::{EventId, ExpectedRevision, ProposedEvent, RecordedEvent, StreamId};
use crate::family::{ApplyError, FamilyId, FamilyState};
use crate::sealing::KeyGroup;
use crate::sealing::Keyring;
use crate::store::{EventStore, StoreError};
use cache::FamilyCache;
use std::collections::HashMap;
use std::sync::Arc;
use uuid::Uuid;

/// Events read per page when catching a family up.
const CATCH_UP_PAGE: usize = 1_000;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FamilyError {
    #[error(transparent)]
    Validation(#[from] ValidationError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("family stream cannot be read: {0}")]
    Unreadable(#[from] ApplyError),
    #[error(transparent)]
    Consent(#[from] ConsentRuleError),
    #[error("no such family")]
    UnknownFamily,
    #[error("no disclosure {0} in this family's access log")]
    UnknownDisclosure(uuid::Uuid),
    #[error("no notice {0} in this family's access log")]
    UnknownNotice(uuid::Uuid),
    #[error("disclosure cannot be reviewed: {0}")]
    NotReviewable(String),
    #[error(transparent)]
    Report(#[from] crate::report::ReportDenied),
    /// Refused by the consent engine, and the refusal is recorded.
    #[error("access denied: {}", .0.iter().map(|r| r.explanation.as_str()).collect::<Vec<_>>().join("; "))]
    Denied(Vec<DenialReason>),
    /// A request names a member the family does not have.
    #[error("{field}: no member {:?} in this family", member.chars().take(32).collect::<String>())]
    UnknownMember { field: &'static str, member: String },
    /// A restriction step that does not fit the family.
    #[error("{0}")]
    RestrictionRefused(String),
    /// An erasure the law does not allow, and the refusal is recorded.
    #[error("erasure refused: {0}")]
    ErasureRefused(crate::erasure::ErasureRefused),
    /// Refused by the authorisation policy, and the refusal is recorded.
    #[error("{0}")]
    NotAuthorised(Refused),
}

/// Where an access-log event was committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Logged {
    pub event_id: EventId,
    pub position: u64,
}

/// What a call aimed at, for the record of its refusal.
struct Target<'a> {
    family: Option<&'a FamilyId>,
    family_exists: bool,
    /// More of the request, in words (never data).
    detail: String,
}

impl<'a> Target<'a> {
    fn family(family: &'a FamilyId, exists: bool) -> Self {
        Self { family: Some(family), family_exists: exists, detail: String::new() }
    }

    fn with(mut self, detail: impl Into<String>) -> Self {
        self.detail = detail.into();
        self
    }

    fn describe(&self) -> String {
        let family = self.family.map(|f| format!("family {f}"));
        [family, Some(self.detail.clone()).filter(|d| !d.is_empty())]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Family streams over one event store.
pub struct Families {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    cache: FamilyCache,
    report_index: report_index::ReportIndex,
    keys: Arc<Keyring>,
    /// How long a privacy officer has to review a use of a legal basis.
    review_within: chrono::Duration,
}

impl Families {
    pub fn new(store: Arc<dyn EventStore>, clock: Arc<dyn Clock>, keys: Arc<Keyring>) -> Self {
        Self {
            store,
            clock,
            cache: FamilyCache::default(),
            report_index: report_index::ReportIndex::with_bound(report_index::DEFAULT_BOUND_BYTES),
            keys,
            review_within: disclosure::DEFAULT_REVIEW_WITHIN,
        }
    }

    /// The subject keys payloads are sealed under.
    pub fn keys(&self) -> &Arc<Keyring> {
        &self.keys
    }

    /// Bounds the family cache at about `bytes` (estimated); see [`cache`].
    pub fn with_cache_bound(mut self, bytes: usize) -> Self {
        self.cache = FamilyCache::with_bound(bytes);
        self
    }

    /// Families in the cache, and their estimated bytes.
    pub fn cache_size(&self) -> (usize, usize) {
        self.cache.size()
    }

    /// Bounds the report index at about `bytes` (estimated); see [`report_index`].
    pub fn with_report_index_bound(mut self, bytes: usize) -> Self {
        self.report_index = report_index::ReportIndex::with_bound(bytes);
        self
    }

    /// Families in the report index, and their estimated bytes.
    pub fn report_index_size(&self) -> (usize, usize) {
        self.report_index.size()
    }

    /// Sets the review deadline of disclosures under a legal basis (break-the-glass
    /// included); reviews not recorded by then are overdue in the review queue.
    pub fn with_review_deadline(mut self, within: chrono::Duration) -> Self {
        self.review_within = within;
        self
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The time as the use cases see it.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Runs `f` on the family state after catching up with the store.
    ///
    /// # Errors
    /// [`FamilyError::UnknownFamily`] or a store failure.
    pub async fn with_fresh_state<T>(
        &self,
        family: &FamilyId,
        f: impl FnOnce(&FamilyState) -> T,
    ) -> Result<T, FamilyError> {
        self.with_state_or_empty(family, |state| state.revision.map(|_| f(state)))
            .await?
            .ok_or(FamilyError::UnknownFamily)
    }

    /// Runs `f` on the family as it stands, or on an empty family when there is none: to the
    /// policy an unknown id and a family the caller takes no part in look alike.
    async fn with_state_or_empty<T>(
        &self,
        family: &FamilyId,
        f: impl FnOnce(&FamilyState) -> T,
    ) -> Result<T, FamilyError> {
        self.with_state_woken(family, None, f).await
    }

    /// As [`Self::with_state_or_empty`], but the store is not read again when the cache
    /// already holds revision `woken_at`: a follower woken by events in log order knows that
    /// a cache holding the waking event holds everything before it (a withdrawal on another
    /// replica included).
    async fn with_state_woken<T>(
        &self,
        family: &FamilyId,
        woken_at: Option<u64>,
        f: impl FnOnce(&FamilyState) -> T,
    ) -> Result<T, FamilyError> {
        let slot = self.cache.loaded(&*self.store, &self.keys, family).await?;
        let mut slot = slot.lock().await;
        if woken_at.is_none_or(|r| slot.state.revision.is_none_or(|cached| cached < r)) {
            cache::catch_up(&*self.store, &self.keys, family, &mut slot.state).await?;
        }
        Ok(f(&slot.state))
    }

    /// Turns the policy's answer into a result; a refusal is committed first, to the
    /// family's access log when the family exists, otherwise to the cross-family one.
    async fn enforce(
        &self,
        caller: &Caller,
        target: Target<'_>,
        decision: Result<Grant, Refused>,
    ) -> Result<Grant, FamilyError> {
        let refused = match decision {
            Ok(grant) => return Ok(grant),
            Err(refused) => refused,
        };
        let stream = match target.family {
            Some(family) if target.family_exists => disclosure::stream(family),
            _ => disclosure::cross_family_refusal_stream(),
        };
        let record = FunctionRefusal {
            caller: caller.actor.clone(),
            function: refused.function,
            at: self.clock.now(),
            target: target.describe(),
            reasons: refused.reasons.clone(),
        };
        tracing::info!(
            organisation_id = %caller.actor.organisation_id,
            function = refused.function.as_str(),
            "function refused by the authorisation policy"
        );
        self.commit_to(&stream, AccessLogEvent::FunctionRefused(record)).await?;
        Err(FamilyError::NotAuthorised(refused))
    }

    /// Commits one access-log event to the family's access log; nothing may be shown unless
    /// this succeeds.
    async fn commit_access_log_event(&self, family: &FamilyId, event: AccessLogEvent) -> Result<Logged, FamilyError> {
        self.commit_to(&disclosure::stream(family), event).await
    }

    /// Commits access-log events with the given ids, together (nothing when empty).
    async fn commit_many(
        &self,
        stream: &StreamId,
        events: Vec<(EventId, AccessLogEvent)>,
        at: chrono::DateTime<chrono::Utc>,
    ) -> Result<(), FamilyError> {
        if events.is_empty() {
            return Ok(());
        }
        let mut proposed = Vec::with_capacity(events.len());
        for (event_id, event) in &events {
            proposed.push(self.sealed_line(stream, *event_id, event, at.timestamp_micros()).await?);
        }
        self.store.append(stream, ExpectedRevision::Any, proposed).await?;
        events.iter().for_each(|(_, event)| event.count_committed());
        Ok(())
    }

    async fn commit_to(&self, stream: &StreamId, event: AccessLogEvent) -> Result<Logged, FamilyError> {
        let event_id = Uuid::new_v4();
        let proposed = self.sealed_line(stream, event_id, &event, self.clock.now().timestamp_micros()).await?;
        let outcome = self.store.append(stream, ExpectedRevision::Any, vec![proposed]).await?;
        event.count_committed();
        Ok(Logged { event_id, position: outcome.positions.first().copied().unwrap_or_default() })
    }

    /// An access-log line for `stream`, sealed under its year's key.
    async fn sealed_line(
        &self,
        stream: &StreamId,
        event_id: EventId,
        event: &AccessLogEvent,
        recorded_at_micros: i64,
    ) -> Result<ProposedEvent, FamilyError> {
        let plain = ProposedEvent {
            event_id,
            event_type: event.event_type().to_owned(),
            recorded_at_micros,
            payload: crate::codec::to_json(event),
        };
        let lines: Vec<Vec<u8>> = disclosure::lines(event).iter().map(disclosure::ReportLineFacts::bytes).collect();
        let payload = self
            .keys
            .seal_with_lines(disclosure::key_owner(stream), &disclosure::line_group(recorded_at_micros), &plain, &lines)
            .await
            .map_err(ApplyError::from)?;
        Ok(ProposedEvent { payload, ..plain })
    }

    /// Seals one plaintext event under `group`'s key among `owner`'s (a family's id, or a
    /// cross-family log's name).
    async fn seal(&self, owner: &str, group: &KeyGroup, event: &ProposedEvent) -> Result<ProposedEvent, FamilyError> {
        let payload = self
            .keys
            .seal(owner, group, &event.event_id, &event.event_type, &event.payload, event.recorded_at_micros)
            .await
            .map_err(ApplyError::from)?;
        Ok(ProposedEvent { payload, ..event.clone() })
    }

    /// Every family's access log, from one pass over the global log (cross-family queries).
    async fn all_access_logs(&self) -> Result<HashMap<String, Vec<RecordedEvent>>, FamilyError> {
        let mut logs: HashMap<String, Vec<RecordedEvent>> = HashMap::new();
        let mut from = 0;
        loop {
            let page = self.store.read_all(from, CATCH_UP_PAGE).await?;
            let Some(last) = page.last() else { break };
            from = last.position + 1;
            let page: Vec<RecordedEvent> =
                page.into_iter().filter(|e| e.stream.as_str().starts_with(disclosure::STREAM_PREFIX)).collect();
            self.keys.prefetch(&page).await.map_err(ApplyError::from)?;
            for event in page {
                if let Some(family) = event.stream.as_str().strip_prefix(disclosure::STREAM_PREFIX) {
                    logs.entry(family.to_owned()).or_default().push(event);
                }
            }
        }
        Ok(logs)
    }

    async fn access_log(&self, family: &FamilyId) -> Result<Vec<RecordedEvent>, FamilyError> {
        self.access_log_from(family, 0).await
    }

    /// The family's access log from revision `from` on.
    async fn access_log_from(&self, family: &FamilyId, from: u64) -> Result<Vec<RecordedEvent>, FamilyError> {
        let stream = disclosure::stream(family);
        let mut events = Vec::new();
        loop {
            let page = self.store.read_stream(&stream, from + events.len() as u64, CATCH_UP_PAGE).await?;
            self.keys.prefetch(&page).await.map_err(ApplyError::from)?;
            let done = page.len() < CATCH_UP_PAGE;
            events.extend(page);
            if done {
                return Ok(events);
            }
        }
    }
}

//! The change feed: what an organisation may see of a family, delivered as it changes.
//! Each delivery is built like the dossier, at the moment of delivery, and is a disclosure
//! committed before it is sent; one disclosure serves a whole batch.
//!
//! A subscriber follows one family or every family. Either way, each family's part is a
//! [`FeedPosition`]; a subscriber to every family learns where it stood in a family from the
//! first event of that family it is woken by ([`Families::feed_position_before`]).

use super::{Families, FamilyError, Logged, Target, cache};
use crate::authorisation::{Action, Caller, authorise, takes_part};
use crate::case::InformationCategory;
use crate::consent::Purpose;
use crate::disclosure::{self, AccessLogEvent, Notice};
use crate::dossier::{self, Shown, VisibleItem};
use crate::envelope::{EventId, RecordedEvent};
use crate::family::{FamilyId, FamilyState};
use crate::sealing::Opener;
use std::collections::{BTreeMap, BTreeSet};

/// Where a subscriber stands: the family revision it has been sent everything up to, and
/// what it could see then (to tell it when access ends).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FeedPosition {
    pub revision: Option<u64>,
    pub visible: BTreeSet<(String, InformationCategory)>,
    /// The family access log's revision up to which notices were looked for.
    #[serde(default)]
    pub access_log_revision: Option<u64>,
}

/// One delivery.
#[derive(Debug, Clone)]
pub struct FeedBatch {
    /// New or corrected items since the position, as the dossier shows them now.
    pub items: Vec<VisibleItem>,
    /// The batch's disclosure; `None` when it holds only the subscriber's own records.
    pub logged: Option<Logged>,
    /// A consent or basis that covered something ended (never says what).
    pub access_ended: bool,
    pub position: FeedPosition,
}

impl FeedBatch {
    /// A batch with no items (one that carries only notices).
    pub fn empty() -> Self {
        Self { items: Vec::new(), logged: None, access_ended: false, position: FeedPosition::default() }
    }
}

/// How a batch is asked for.
#[derive(Debug, Clone, Copy)]
pub struct FeedAsk<'a> {
    pub family: &'a FamilyId,
    pub purpose: Purpose,
    pub position: &'a FeedPosition,
    /// A start (no revision yet) where the subscriber has no basis at all and nothing of
    /// its own is refused, as the dossier is; a subscriber to every family is never refused
    /// a family, it is sent nothing of it.
    pub refuse_without_basis: bool,
    /// The family revision the subscriber was woken by, when it is known that nothing
    /// later matters yet: a cache at least this far is not read from the store again.
    pub woken_at: Option<u64>,
}

/// What a feed follows.
#[derive(Debug, Clone, Copy)]
pub enum FeedScope<'a> {
    Family(&'a FamilyId),
    /// Every family in which the subscriber has a basis, now or later.
    EveryFamily,
}

/// The family a log event belongs to, if it is a family's case or consent event.
pub fn family_of(event: &RecordedEvent) -> Option<FamilyId> {
    event.stream.as_str().strip_prefix(FamilyId::STREAM_PREFIX).and_then(|id| FamilyId::new(id).ok())
}

/// The notice `event` is, if it is one, with its family.
pub fn notice_in(event: &RecordedEvent, opener: &dyn Opener) -> Option<(FamilyId, EventId, Notice)> {
    if event.event_type != AccessLogEvent::NOTIFIED {
        return None;
    }
    let family = event.stream.as_str().strip_prefix(disclosure::STREAM_PREFIX).and_then(|id| FamilyId::new(id).ok())?;
    match disclosure::open_line(event, opener) {
        Some(AccessLogEvent::Notified(n)) => Some((family, event.event_id, n)),
        _ => None,
    }
}

/// The notice `event` is, when it is one addressed to `caller`'s organisation, with its
/// family.
pub fn notice_for(caller: &Caller, event: &RecordedEvent, opener: &dyn Opener) -> Option<(FamilyId, EventId, Notice)> {
    notice_in(event, opener).filter(|(_, _, n)| n.recipient_organisation_id == caller.organisation())
}

impl Families {
    /// Loads the keys of the notices among `events`, so that [`notice_in`] can open them
    /// with [`Families::keys`].
    ///
    /// # Errors
    /// A key store failure.
    pub async fn load_notice_keys<'a>(
        &self,
        events: impl IntoIterator<Item = &'a RecordedEvent>,
    ) -> Result<(), FamilyError> {
        let notices: Vec<RecordedEvent> =
            events.into_iter().filter(|e| e.event_type == AccessLogEvent::NOTIFIED).cloned().collect();
        self.keys.prefetch(&notices).await.map_err(crate::family::ApplyError::from)?;
        Ok(())
    }

    /// Checks that `caller` may follow `scope`, with a resume token issued to
    /// `token_organisation` if any. A refusal is recorded.
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded), or [`FamilyError::UnknownFamily`].
    pub async fn authorise_feed(
        &self,
        caller: &Caller,
        scope: FeedScope<'_>,
        token_organisation: Option<&str>,
    ) -> Result<(), FamilyError> {
        let decision = authorise(caller, &Action::SubscribeFeed { token_organisation });
        let FeedScope::Family(family) = scope else {
            let target = Target { family: None, family_exists: false, detail: "change feed of every family".into() };
            return self.enforce(caller, target, decision).await.map(|_| ());
        };
        let exists = self.with_state_or_empty(family, |s| s.revision.is_some()).await?;
        self.enforce(caller, Target::family(family, exists).with("change feed"), decision).await?;
        if exists { Ok(()) } else { Err(FamilyError::UnknownFamily) }
    }

    /// Where a subscriber that has not been sent `family`'s events from `revision` on stood
    /// before them: what it could see with the family as it was then (judged now), so that
    /// the next batch can tell it when access ended.
    ///
    /// # Errors
    /// A store failure.
    pub async fn feed_position_before(
        &self,
        caller: &Caller,
        family: &FamilyId,
        purpose: Purpose,
        revision: u64,
    ) -> Result<FeedPosition, FamilyError> {
        if revision == 0 {
            return Ok(FeedPosition::default());
        }
        let mut state = FamilyState::default();
        cache::catch_up_before(&*self.store, &self.keys, family, &mut state, Some(revision)).await?;
        let covered = dossier::Grants::compute(&state, &caller.actor, purpose, self.clock.now()).covered();
        Ok(FeedPosition { revision: state.revision, visible: covered, access_log_revision: None })
    }

    /// What changed for `caller` since `position`: items recorded or corrected after it,
    /// filtered exactly like the dossier at this moment. The disclosure is committed first.
    ///
    /// # Errors
    /// A recorded refusal, or a store failure, in which case nothing may be delivered.
    pub async fn feed_batch(&self, caller: &Caller, ask: FeedAsk<'_>) -> Result<FeedBatch, FamilyError> {
        let FeedAsk { family, purpose, position, refuse_without_basis, woken_at } = ask;
        let at = self.clock.now();
        let first = refuse_without_basis && position.revision.is_none();
        let (view, refused) = self
            .with_state_woken(family, woken_at, |state| {
                let view = dossier::changes_after(state, &caller.actor, purpose, at, position.revision);
                // As for the dossier: with no basis at all and nothing of its own, the
                // subscriber is refused at the start, and the refusal recorded.
                let refused = first && !view.any_basis && view.timeline.is_empty();
                let refused = refused.then(|| dossier::build(state, &caller.actor, purpose, at));
                (view, refused)
            })
            .await?;
        if let Some(refused) = refused {
            return Err(self.refuse_view(family, &caller.actor, purpose, &refused, at).await);
        }
        // What a basis covers, shown or not: access ended when a pair leaves this set (an
        // erased or retracted item is no end of access; its notice says what happened).
        let visible = view.covered.clone();
        let items = view.timeline;
        let access_ended = position.revision.is_some() && !position.visible.is_subset(&visible);
        let mut shown: BTreeMap<_, BTreeMap<_, _>> = BTreeMap::new();
        for v in items.iter().filter(|v| v.shown == Shown::Disclosed) {
            let event = v.event();
            for s in &event.subjects {
                for c in &event.categories {
                    if let Some(basis) = view.disclosed.get(s).and_then(|cats| cats.get(c)) {
                        shown.entry(s.clone()).or_insert_with(BTreeMap::new).insert(*c, basis.clone());
                    }
                }
            }
        }
        let logged = if shown.is_empty() {
            None
        } else {
            let mut disclosure = self.disclosure_of(&caller.actor, purpose, at, view.family_revision, shown, &items);
            disclosure.via_feed = true;
            Some(self.commit_access_log_event(family, AccessLogEvent::Disclosed(disclosure)).await?)
        };
        let position = FeedPosition { revision: view.family_revision, visible, ..position.clone() };
        Ok(FeedBatch { items, logged, access_ended, position })
    }

    /// For routing one commit to the subscribers it may concern: for each caller, whether
    /// it takes part in `family` as the cache knows it at `revision`; `None` when the cache
    /// cannot say without waiting (send it to everyone, who each check for themselves).
    pub fn feed_audience<'a>(
        &self,
        family: &FamilyId,
        revision: u64,
        callers: impl Iterator<Item = &'a Caller>,
    ) -> Option<Vec<bool>> {
        self.cache.try_current(family, revision, |state| callers.map(|c| takes_part(state, c)).collect())
    }

    /// Whether `caller` takes any part in `family` (as the policy defines it). A subscriber
    /// to every family skips the families where it does not: nothing of them can be
    /// visible to it, and nothing it saw can have been there.
    ///
    /// # Errors
    /// A store failure.
    pub async fn feed_concerns(&self, caller: &Caller, family: &FamilyId, woken_at: u64) -> Result<bool, FamilyError> {
        self.with_state_woken(family, Some(woken_at), |state| takes_part(state, caller)).await
    }

    /// Notices addressed to `caller`'s organisation in `family` after the access-log
    /// revision `after` (all, with `None`), and the revision read up to.
    ///
    /// # Errors
    /// A store failure.
    pub async fn feed_notices(
        &self,
        caller: &Caller,
        family: &FamilyId,
        after: Option<u64>,
    ) -> Result<(Vec<(EventId, Notice)>, Option<u64>), FamilyError> {
        let log = self.access_log_from(family, after.map_or(0, |r| r + 1)).await?;
        let read_to = log.last().map(|e| e.revision).or(after);
        Ok((log.iter().filter_map(|e| notice_for(caller, e, &*self.keys)).map(|(_, id, n)| (id, n)).collect(), read_to))
    }
}

//! The change feed: what an organisation may see of a family, delivered as it changes.
//! Each delivery is built like the dossier, at the moment of delivery, and is a disclosure
//! committed before it is sent; one disclosure serves a whole batch.

use super::{Families, FamilyError, Logged, Target, cache};
use crate::authorisation::{Action, Caller, authorise};
use crate::case::InformationCategory;
use crate::consent::Purpose;
use crate::disclosure::{AccessLogEvent, Notice};
use crate::dossier::{self, Shown, VisibleItem};
use crate::family::FamilyId;
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
    /// Notices addressed to the subscriber's organisation since the position (corrections,
    /// retractions, break-the-glass), with their access-log event ids.
    pub notices: Vec<(crate::envelope::EventId, Notice)>,
    pub position: FeedPosition,
}

impl Families {
    /// Checks that `caller` may follow `family`, with a resume token issued to
    /// `token_organisation` if any. A refusal is recorded.
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded), or [`FamilyError::UnknownFamily`].
    pub async fn authorise_feed(
        &self,
        caller: &Caller,
        family: &FamilyId,
        token_organisation: Option<&str>,
    ) -> Result<(), FamilyError> {
        let exists = self.with_state_or_empty(family, |s| s.revision.is_some()).await?;
        let decision = authorise(caller, &Action::SubscribeFeed { token_organisation });
        self.enforce(caller, Target::family(family, exists).with("change feed"), decision).await?;
        if exists { Ok(()) } else { Err(FamilyError::UnknownFamily) }
    }

    /// What changed for `caller` since `position`: items recorded or corrected after it,
    /// filtered exactly like the dossier at this moment. The disclosure is committed first.
    ///
    /// # Errors
    /// A store failure, in which case nothing may be delivered.
    pub async fn feed_batch(
        &self,
        caller: &Caller,
        family: &FamilyId,
        purpose: Purpose,
        position: &FeedPosition,
    ) -> Result<FeedBatch, FamilyError> {
        let at = self.clock.now();
        let view = {
            let slot = self.cache.loaded(&*self.store, family).await?;
            let mut slot = slot.lock().await;
            cache::catch_up(&*self.store, family, &mut slot.state).await?;
            dossier::build(&slot.state, &caller.actor, purpose, at)
        };
        // As for the dossier: with no basis at all and nothing of its own, the subscriber is
        // refused at the start, and the refusal recorded.
        if position.revision.is_none() && view.is_refusal() {
            return Err(self.refuse_view(family, &caller.actor, purpose, &view, at).await);
        }
        let after = |revision: u64| position.revision.is_none_or(|r| revision > r);
        let items: Vec<VisibleItem> = view
            .timeline
            .into_iter()
            .filter(|v| after(v.item.revision) || v.corrected.as_ref().is_some_and(|c| after(c.revision)))
            .collect();
        let visible: BTreeSet<(String, InformationCategory)> =
            view.disclosed.iter().flat_map(|(s, cats)| cats.keys().map(move |c| (s.clone(), *c))).collect();
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
        let from = position.access_log_revision.map_or(0, |r| r + 1);
        let log = self.access_log_from(family, from).await?;
        let access_log_revision = log.last().map(|e| e.revision).or(position.access_log_revision);
        let notices = log
            .iter()
            .filter_map(|e| match serde_json::from_slice(&e.payload) {
                Ok(AccessLogEvent::Notified(n)) if n.recipient_organisation_id == caller.organisation() => {
                    Some((e.event_id, n))
                }
                _ => None,
            })
            .collect();
        let position = FeedPosition { revision: view.family_revision, visible, access_log_revision };
        Ok(FeedBatch { items, logged, access_ended, notices, position })
    }
}

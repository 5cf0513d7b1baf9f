//! Notices (AVG art. 19): telling every earlier recipient of a corrected or retracted event,
//! and letting organisations list and acknowledge what they were told. A notice is an event
//! in the family's access log; its acknowledgement is another.

use super::{Families, FamilyError, Logged, Target};
use crate::authorisation::{Action, Caller, authorise};
use crate::case::CaseEventKind;
use crate::correction::{self, NoticeState};
use crate::disclosure::{self, AccessLogEvent, NoticeAcknowledgement};
use crate::envelope::{EventId, RecordedEvent};
use crate::family::{FamilyId, FamilyState};
use crate::sealing::Opener;
use crate::store::StoreError;

/// Whose notices to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeScope {
    /// Addressed to the caller's organisation.
    Received,
    /// Caused by the caller's organisation's corrections (to see which are still open).
    Sent,
}

/// A notice with the family it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyNotice {
    pub family: String,
    pub state: NoticeState,
}

impl Families {
    /// Writes the notices that the corrections among `events` owe earlier recipients, once:
    /// notices already in the log (a retried append) are not written again.
    ///
    /// # Errors
    /// A store failure. The corrections themselves are stored by then, so the error says the
    /// outcome is unknown: a retry with the same event ids writes what is missing.
    pub(super) async fn notify_earlier_recipients(
        &self,
        family: &FamilyId,
        state: &FamilyState,
        corrections: &[EventId],
    ) -> Result<(), FamilyError> {
        let log = self.access_log(family).await?;
        let known: std::collections::HashSet<EventId> = log.iter().map(|e| e.event_id).collect();
        let decoded = decode(&log, &*self.keys);
        let mut notices = Vec::new();
        let mut at = self.clock.now();
        for correction in corrections.iter().filter_map(|id| state.item(id)) {
            let CaseEventKind::Correction(c) = &correction.event.kind else { continue };
            let Some(original) = state.item(&c.corrects) else { continue };
            at = correction.recorded_at;
            for (id, notice) in correction::notices_for(state, original, correction, &decoded) {
                if !known.contains(&id) {
                    notices.push((id, AccessLogEvent::Notified(notice)));
                }
            }
        }
        let count = notices.len();
        // A retry must propose the same bytes: the time is the correction's, not now.
        match self.commit_many(&disclosure::stream(family), notices, at).await {
            Ok(()) | Err(FamilyError::Store(StoreError::EventIdConflict { .. })) => {
                if count > 0 {
                    tracing::info!(family_id = %family, notices = count, "earlier recipients notified of corrections");
                }
                Ok(())
            }
            Err(e) => Err(FamilyError::Store(StoreError::OutcomeUnknown(format!(
                "the correction is stored, but telling its earlier recipients failed ({e}); retry the append with the \
                 same event ids"
            )))),
        }
    }

    /// The caller's organisation's notices in `family` (or in every family), oldest first;
    /// acknowledged ones only when asked for.
    ///
    /// # Errors
    /// [`FamilyError::NotAuthorised`] (recorded), or a store failure.
    pub async fn list_notices(
        &self,
        caller: &Caller,
        family: Option<&FamilyId>,
        scope: NoticeScope,
        include_acknowledged: bool,
    ) -> Result<Vec<FamilyNotice>, FamilyError> {
        let target = match family {
            Some(f) => Target::family(f, self.with_state_or_empty(f, |s| s.revision.is_some()).await?),
            None => Target { family: None, family_exists: false, detail: "all families".into() },
        };
        self.enforce(caller, target, authorise(caller, &Action::ListNotices)).await?;
        let logs = match family {
            Some(f) => [(f.as_str().to_owned(), self.access_log(f).await?)].into_iter().collect(),
            None => self.all_access_logs().await?,
        };
        let org = caller.organisation();
        let mut out: Vec<FamilyNotice> = logs
            .into_iter()
            .flat_map(|(family, log)| {
                correction::notice_states(&decode(&log, &*self.keys))
                    .into_iter()
                    .map(move |state| FamilyNotice { family: family.clone(), state })
            })
            .filter(|n| match scope {
                NoticeScope::Received => n.state.notice.recipient_organisation_id == org,
                NoticeScope::Sent => n.state.notice.from.organisation_id == org,
            })
            .filter(|n| include_acknowledged || n.state.acknowledged.is_none())
            .collect();
        out.sort_by(|a, b| (a.state.notice.at, &a.family).cmp(&(b.state.notice.at, &b.family)));
        Ok(out)
    }

    /// Acknowledges a notice addressed to the caller's organisation. Acknowledging twice
    /// returns the first acknowledgement.
    ///
    /// # Errors
    /// [`FamilyError::UnknownNotice`], [`FamilyError::NotAuthorised`] (recorded) for a
    /// notice addressed to another organisation, or a store failure.
    pub async fn acknowledge_notice(
        &self,
        caller: &Caller,
        family: &FamilyId,
        notice_id: EventId,
    ) -> Result<Option<Logged>, FamilyError> {
        let log = self.access_log(family).await?;
        let states = correction::notice_states(&decode(&log, &*self.keys));
        let exists = self.with_state_or_empty(family, |s| s.revision.is_some()).await?;
        let target = Target::family(family, exists).with(format!("notice {notice_id}"));
        // Notice ids are derived from a random event id: naming an unknown one reveals nothing.
        let state =
            states.into_iter().find(|s| s.notice_id == notice_id).ok_or(FamilyError::UnknownNotice(notice_id))?;
        let decision =
            authorise(caller, &Action::AcknowledgeNotice { recipient: &state.notice.recipient_organisation_id });
        self.enforce(caller, target, decision).await?;
        if state.acknowledged.is_some() {
            return Ok(None);
        }
        let ack = NoticeAcknowledgement { notice_id, by: caller.actor.clone(), at: self.clock.now() };
        self.commit_access_log_event(family, AccessLogEvent::NoticeAcknowledged(ack)).await.map(Some)
    }
}

/// Access-log events decoded, with their event ids; an entry that does not decode (an
/// unknown kind) is left out.
pub(super) fn decode(log: &[RecordedEvent], opener: &dyn Opener) -> Vec<(EventId, AccessLogEvent)> {
    log.iter().filter_map(|e| Some((e.event_id, crate::disclosure::open_line(e, opener)?))).collect()
}

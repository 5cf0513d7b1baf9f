//! The write path of family streams: append case events after checking them against the
//! family as it stands.
//!
//! Each family's state is cached and kept current by applying what this process appends.
//! Another replica may have appended meanwhile, so the cache is used optimistically: the
//! append goes to the store with the exact revision the checks ran against, and a conflict
//! means "catch up and check again", never "write anyway".

use crate::actor::Actor;
use crate::case::validate::{ValidationError, validate_batch};
use crate::case::{CaseEvent, CaseRecord};
use crate::clock::Clock;
use crate::codec::encode_case;
use crate::envelope::{EventId, ExpectedRevision, ProposedEvent};
use crate::family::{ApplyError, FamilyId, FamilyState};
use crate::store::{AppendOutcome, EventStore, StoreError, revision_matches};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How often an append re-checks after losing a race to another writer.
const MAX_ATTEMPTS: usize = 4;
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
}

/// Case events to append to one family, by one author.
#[derive(Debug, Clone)]
pub struct CaseAppend {
    pub family: FamilyId,
    pub expected: ExpectedRevision,
    pub author: Actor,
    pub events: Vec<(EventId, CaseEvent)>,
}

#[derive(Default)]
struct Slot {
    state: FamilyState,
    loaded: bool,
}

/// Family streams over one event store.
pub struct Families {
    store: Arc<dyn EventStore>,
    clock: Arc<dyn Clock>,
    slots: Mutex<HashMap<FamilyId, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl Families {
    pub fn new(store: Arc<dyn EventStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock, slots: Mutex::new(HashMap::new()) }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Checks and appends case events, all or nothing. A retry of an earlier append (same
    /// event ids and content) returns the original outcome.
    ///
    /// # Errors
    /// [`FamilyError::Validation`] for an event that breaks a rule,
    /// [`StoreError::WrongExpectedRevision`] (with the actual revision) when `expected` does
    /// not hold, [`StoreError::EventIdConflict`] for a reused id, or a store failure.
    pub async fn append_case_events(&self, request: CaseAppend) -> Result<AppendOutcome, FamilyError> {
        let stream = request.family.stream();
        let slot = self.slot(&request.family);
        let mut slot = slot.lock().await;
        if !slot.loaded {
            self.catch_up(&request.family, &mut slot.state).await?;
            slot.loaded = true;
        }
        let recorded_at_micros = self.clock.now().timestamp_micros();
        let proposed: Vec<ProposedEvent> = request
            .events
            .iter()
            .map(|(id, event)| {
                let (event_type, payload) =
                    encode_case(&CaseRecord { author: request.author.clone(), event: event.clone() });
                ProposedEvent { event_id: *id, event_type, recorded_at_micros, payload }
            })
            .collect();
        let first_id = proposed.first().map(|e| e.event_id);

        for attempt in 0..MAX_ATTEMPTS {
            let fresh = attempt > 0;
            // A retry of stored events goes straight to the store, which compares content.
            let is_retry = first_id.is_some_and(|id| slot.state.events.contains_key(&id));
            if !is_retry {
                let checked = if revision_matches(request.expected, slot.state.revision) {
                    validate_batch(&slot.state, &request.events).map_err(FamilyError::from)
                } else {
                    Err(FamilyError::Store(StoreError::WrongExpectedRevision {
                        stream: stream.clone(),
                        expected: request.expected,
                        actual: slot.state.revision,
                    }))
                };
                if let Err(e) = checked {
                    if fresh {
                        return Err(e);
                    }
                    // The cache may be behind another replica: judge against the latest.
                    self.catch_up(&request.family, &mut slot.state).await?;
                    continue;
                }
            }
            let expected = slot.state.revision.map_or(ExpectedRevision::NoStream, ExpectedRevision::Exact);
            match self.store.append(&stream, expected, proposed.clone()).await {
                Ok(outcome) => {
                    if !outcome.deduplicated {
                        for event in outcome.recorded(&stream, &proposed) {
                            slot.state.apply(&event)?;
                        }
                    }
                    return Ok(outcome);
                }
                Err(StoreError::WrongExpectedRevision { .. }) => {
                    self.catch_up(&request.family, &mut slot.state).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
        tracing::warn!(family_id = %request.family, attempts = MAX_ATTEMPTS, "append lost every race");
        Err(StoreError::WrongExpectedRevision { stream, expected: request.expected, actual: slot.state.revision }
            .into())
    }

    fn slot(&self, family: &FamilyId) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(family.clone()).or_default().clone()
    }

    async fn catch_up(&self, family: &FamilyId, state: &mut FamilyState) -> Result<(), FamilyError> {
        let stream = family.stream();
        loop {
            let from = state.revision.map_or(0, |r| r + 1);
            let page = self.store.read_stream(&stream, from, CATCH_UP_PAGE).await?;
            for event in &page {
                state.apply(event)?;
            }
            if page.len() < CATCH_UP_PAGE {
                return Ok(());
            }
        }
    }
}

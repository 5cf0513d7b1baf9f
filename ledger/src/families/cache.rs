//! The family cache: each family's state, kept current by applying what this process
//! appends and by catching up with the store before every decision.
//!
//! Another replica may have appended meanwhile, so the cache is used optimistically: writes
//! go to the store with the exact revision their checks ran against, and a conflict means
//! "catch up and check again", never "write anyway".

use super::append::WaitingAppend;
use super::{CATCH_UP_PAGE, FamilyError};
use crate::family::{FamilyId, FamilyState};
use crate::sealing::Keyring;
use crate::store::EventStore;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// One family's cached state.
#[derive(Default)]
pub(super) struct Slot {
    pub(super) state: FamilyState,
    loaded: bool,
}

/// One family: its cached state behind its lock, and the appends waiting for whoever holds
/// that lock next to commit them together.
#[derive(Default)]
pub(super) struct Entry {
    slot: tokio::sync::Mutex<Slot>,
    waiting: Mutex<VecDeque<WaitingAppend>>,
}

impl Entry {
    pub(super) async fn lock(&self) -> tokio::sync::MutexGuard<'_, Slot> {
        self.slot.lock().await
    }

    /// Queues an append for the family's next group commit.
    pub(super) fn wait(&self, append: WaitingAppend) {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner()).push_back(append);
        metrics::gauge!("gezinsdossier_family_appends_waiting").increment(1.0);
    }

    /// Every append queued so far, in arrival order.
    pub(super) fn take_waiting(&self) -> VecDeque<WaitingAppend> {
        let taken = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(|e| e.into_inner()));
        metrics::gauge!("gezinsdossier_family_appends_waiting").decrement(taken.len() as f64);
        taken
    }
}

/// Cached family states, one lock per family.
#[derive(Default)]
pub(super) struct FamilyCache {
    slots: Mutex<HashMap<FamilyId, Arc<Entry>>>,
}

impl FamilyCache {
    /// The family's slot, read from the store on first use.
    pub(super) async fn loaded(
        &self,
        store: &dyn EventStore,
        keys: &Keyring,
        family: &FamilyId,
    ) -> Result<Arc<Entry>, FamilyError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let slot = slots.entry(family.clone()).or_default().clone();
            metrics::gauge!("gezinsdossier_family_cache_families").set(slots.len() as f64);
            slot
        };
        {
            let mut guard = slot.lock().await;
            if !guard.loaded {
                catch_up(store, keys, family, &mut guard.state).await?;
                guard.loaded = true;
            }
        }
        Ok(slot)
    }
}

impl FamilyCache {
    /// Runs `f` on the family's cached state if that holds `revision` and nobody holds its
    /// lock now; `None` otherwise (never waits, never reads the store).
    pub(super) fn try_current<T>(
        &self,
        family: &FamilyId,
        revision: u64,
        f: impl FnOnce(&FamilyState) -> T,
    ) -> Option<T> {
        let slot = self.slots.lock().unwrap_or_else(|e| e.into_inner()).get(family)?.clone();
        let slot = slot.slot.try_lock().ok()?;
        (slot.loaded && slot.state.revision.is_some_and(|r| r >= revision)).then(|| f(&slot.state))
    }
}

/// Applies the family's events that `state` has not seen yet.
pub(super) async fn catch_up(
    store: &dyn EventStore,
    keys: &Keyring,
    family: &FamilyId,
    state: &mut FamilyState,
) -> Result<(), FamilyError> {
    replay(store, keys, family, state, Replay::default()).await
}

/// Applies the family's events that `state` has not seen yet, up to revision `before`
/// (exclusive; all with `None`).
pub(super) async fn catch_up_before(
    store: &dyn EventStore,
    keys: &Keyring,
    family: &FamilyId,
    state: &mut FamilyState,
    before: Option<u64>,
) -> Result<(), FamilyError> {
    replay(store, keys, family, state, Replay { before, ..Replay::default() }).await
}

/// Where a replay stops.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Replay {
    /// Before this revision.
    pub(super) before: Option<u64>,
    /// Before the first event recorded after this time (microseconds).
    pub(super) recorded_until: Option<i64>,
}

/// Applies the family's events from where `state` stands. An erasure of keys the state
/// already used makes it start again from the first event, so that nothing read from the
/// shredded payloads survives in it.
pub(super) async fn replay(
    store: &dyn EventStore,
    keys: &Keyring,
    family: &FamilyId,
    state: &mut FamilyState,
    stop: Replay,
) -> Result<(), FamilyError> {
    let stream = family.stream();
    loop {
        let from = state.revision.map_or(0, |r| r + 1);
        let limit = stop.before.map_or(CATCH_UP_PAGE, |b| CATCH_UP_PAGE.min(b.saturating_sub(from) as usize));
        if limit == 0 {
            return Ok(());
        }
        let page = store.read_stream(&stream, from, limit).await?;
        keys.prefetch(&page).await.map_err(crate::family::ApplyError::from)?;
        for event in &page {
            if stop.recorded_until.is_some_and(|until| event.recorded_at_micros > until) {
                return Ok(());
            }
            state.apply(event, keys)?;
            if state.needs_rebuild {
                tracing::info!(family_id = %family, "keys of this family were destroyed: rebuilding its state");
                *state = FamilyState::default();
                break;
            }
        }
        if state.revision.is_some() && page.len() < limit {
            return Ok(());
        }
        if state.revision.is_none() && page.is_empty() {
            return Ok(());
        }
    }
}

/// Starts the state again from the first event when an erasure asked for it.
pub(super) async fn rebuild_if_needed(
    store: &dyn EventStore,
    keys: &Keyring,
    family: &FamilyId,
    state: &mut FamilyState,
) -> Result<(), FamilyError> {
    if state.needs_rebuild {
        *state = FamilyState::default();
        catch_up(store, keys, family, state).await?;
    }
    Ok(())
}

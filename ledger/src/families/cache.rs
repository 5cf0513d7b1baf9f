//! The family cache: each family's state, kept current by applying what this process
//! appends and by catching up with the store before every decision.
//!
//! The cache has a bound in bytes (estimated, see `FamilyState::approx_bytes`): as a use
//! begins past it, the families used least recently that nobody is using are dropped, and
//! read from the store again on their next use. The uses in progress may take it past the
//! bound by what they add.
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
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The family cache's default bound.
pub const DEFAULT_BOUND_BYTES: usize = 256 << 20;

/// One family's cached state.
#[derive(Default)]
pub(super) struct Slot {
    pub(super) state: FamilyState,
}

/// One family: its cached state behind its lock, and the appends waiting for whoever holds
/// that lock next to commit them together.
pub(super) struct Entry {
    /// Shared so that a held lock can move into a task of its own (a group commit).
    slot: Arc<tokio::sync::Mutex<Slot>>,
    waiting: Mutex<VecDeque<WaitingAppend>>,
    /// Whether the state has been read from the store once; from then on a use need not
    /// take the lock just to find that out.
    loaded: AtomicBool,
    /// The state's size when last seen, as counted in `total`.
    bytes: AtomicUsize,
    /// The cache's estimated bytes, which this entry's size is part of.
    total: Arc<AtomicUsize>,
    /// The cache's use counter at this family's last use (least recently used goes first).
    last_used: AtomicU64,
}

/// A family's state under its lock; letting go counts what the use added to the cache.
pub(super) struct SlotGuard {
    entry: Arc<Entry>,
    guard: tokio::sync::OwnedMutexGuard<Slot>,
}

impl std::ops::Deref for SlotGuard {
    type Target = Slot;
    fn deref(&self) -> &Slot {
        &self.guard
    }
}

impl std::ops::DerefMut for SlotGuard {
    fn deref_mut(&mut self) -> &mut Slot {
        &mut self.guard
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.entry.account(self.guard.state.approx_bytes);
    }
}

impl Entry {
    fn new(total: Arc<AtomicUsize>) -> Self {
        Self {
            slot: Arc::default(),
            waiting: Mutex::default(),
            loaded: AtomicBool::new(false),
            bytes: AtomicUsize::new(0),
            total,
            last_used: AtomicU64::new(0),
        }
    }

    pub(super) async fn lock(self: &Arc<Self>) -> SlotGuard {
        SlotGuard { entry: Arc::clone(self), guard: Arc::clone(&self.slot).lock_owned().await }
    }

    /// Counts this family at `bytes` in the cache's total from now on.
    fn account(&self, bytes: usize) {
        let before = self.bytes.swap(bytes, Ordering::Relaxed);
        if bytes >= before {
            self.total.fetch_add(bytes - before, Ordering::Relaxed);
        } else {
            self.total.fetch_sub(before - bytes, Ordering::Relaxed);
        }
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
pub(super) struct FamilyCache {
    slots: Mutex<HashMap<FamilyId, Arc<Entry>>>,
    bound_bytes: usize,
    /// The sum of the entries' `bytes`.
    total_bytes: Arc<AtomicUsize>,
    uses: AtomicU64,
}

impl Default for FamilyCache {
    fn default() -> Self {
        Self::with_bound(DEFAULT_BOUND_BYTES)
    }
}

impl FamilyCache {
    pub(super) fn with_bound(bound_bytes: usize) -> Self {
        Self { slots: Mutex::default(), bound_bytes, total_bytes: Arc::default(), uses: AtomicU64::new(0) }
    }

    /// Families held, and their estimated bytes.
    pub(super) fn size(&self) -> (usize, usize) {
        (self.slots.lock().unwrap_or_else(|e| e.into_inner()).len(), self.total_bytes.load(Ordering::Relaxed))
    }

    /// Past the bound, drops the least recently used families that nobody holds (no
    /// reader, no appender waiting: only the map has them) until a tenth below it.
    fn evict_past_bound(&self) {
        if self.total_bytes.load(Ordering::Relaxed) <= self.bound_bytes {
            return;
        }
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let mut idle: Vec<(u64, FamilyId)> = slots
            .iter()
            .filter(|(_, entry)| Arc::strong_count(entry) == 1)
            // Each use counted its entry's bytes as it let go (`SlotGuard`).
            .map(|(family, entry)| (entry.last_used.load(Ordering::Relaxed), family.clone()))
            .collect();
        idle.sort_unstable_by_key(|(used, _)| *used);
        let target = self.bound_bytes - self.bound_bytes / 10;
        let mut evicted = 0u64;
        for (_, family) in idle {
            if self.total_bytes.load(Ordering::Relaxed) <= target {
                break;
            }
            if let Some(entry) = slots.remove(&family) {
                entry.account(0);
                evicted += 1;
            }
        }
        metrics::counter!("gezinsdossier_family_cache_evictions_total").increment(evicted);
        metrics::gauge!("gezinsdossier_family_cache_families").set(slots.len() as f64);
        metrics::gauge!("gezinsdossier_family_cache_bytes").set(self.total_bytes.load(Ordering::Relaxed) as f64);
    }

    /// The family's slot, read from the store on first use.
    pub(super) async fn loaded(
        &self,
        store: &dyn EventStore,
        keys: &Keyring,
        family: &FamilyId,
    ) -> Result<Arc<Entry>, FamilyError> {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let slot =
                slots.entry(family.clone()).or_insert_with(|| Arc::new(Entry::new(self.total_bytes.clone()))).clone();
            metrics::gauge!("gezinsdossier_family_cache_families").set(slots.len() as f64);
            slot
        };
        slot.last_used.store(self.uses.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        if !slot.loaded.load(Ordering::Acquire) {
            let mut guard = slot.lock().await;
            if !slot.loaded.load(Ordering::Acquire) {
                catch_up(store, keys, family, &mut guard.state).await?;
                slot.loaded.store(true, Ordering::Release);
            }
        }
        // What earlier uses added is counted (each use counts itself as it lets go).
        self.evict_past_bound();
        metrics::gauge!("gezinsdossier_family_cache_bytes").set(self.total_bytes.load(Ordering::Relaxed) as f64);
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
        let entry = self.slots.lock().unwrap_or_else(|e| e.into_inner()).get(family)?.clone();
        let slot = entry.slot.try_lock().ok()?;
        (entry.loaded.load(Ordering::Acquire) && slot.state.revision.is_some_and(|r| r >= revision))
            .then(|| f(&slot.state))
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

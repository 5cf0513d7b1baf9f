//! The report index: each family's who-saw-what lines per member ([`ReportLines`]), kept in
//! memory and extended with the access log's new events before each report. A report then
//! reads what was logged since the last one, not the family's whole log, and lists its
//! member's lines without opening them again.
//!
//! - The lines come from the store's log (another replica's disclosures included), read
//!   from where the index stopped.
//! - The index has a bound in estimated bytes: past it, the families whose reports were
//!   asked for least recently (and that no report is using) are dropped, and read whole
//!   again at their next report.
//! - A key forgotten here (erasure, retention) empties the index: the lines sealed under
//!   it no longer open, so they must no longer show.

use super::{Families, FamilyError};
use crate::family::FamilyId;
use crate::report::ReportLines;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::OwnedMutexGuard;

/// The index's default bound.
pub const DEFAULT_BOUND_BYTES: usize = 64 << 20;

/// What a family costs held with no lines: many families with few lines count against the
/// bound too.
const PER_FAMILY_BYTES: usize = 256;

struct Held {
    lines: Arc<tokio::sync::Mutex<ReportLines>>,
    /// The lines' size when last counted in `ReportIndex::total_bytes`.
    bytes: AtomicUsize,
    last_used: AtomicU64,
}

pub(super) struct ReportIndex {
    families: Mutex<HashMap<FamilyId, Arc<Held>>>,
    bound_bytes: usize,
    total_bytes: AtomicUsize,
    uses: AtomicU64,
    /// The keyring's count of forgotten keys when the held lines were read.
    keys_forgotten: AtomicU64,
}

impl ReportIndex {
    pub(super) fn with_bound(bound_bytes: usize) -> Self {
        Self {
            families: Mutex::default(),
            bound_bytes,
            total_bytes: AtomicUsize::new(0),
            uses: AtomicU64::new(0),
            keys_forgotten: AtomicU64::new(0),
        }
    }

    fn families(&self) -> std::sync::MutexGuard<'_, HashMap<FamilyId, Arc<Held>>> {
        self.families.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Families held, and their estimated bytes.
    pub(super) fn size(&self) -> (usize, usize) {
        (self.families().len(), self.total_bytes.load(Ordering::Relaxed))
    }

    /// The family's entry, after dropping everything when keys were forgotten since the
    /// lines were read.
    fn held(&self, family: &FamilyId, keys_forgotten: u64) -> Arc<Held> {
        let mut families = self.families();
        if self.keys_forgotten.swap(keys_forgotten, Ordering::Relaxed) != keys_forgotten {
            families.clear();
            self.total_bytes.store(0, Ordering::Relaxed);
        }
        let held = families
            .entry(family.clone())
            .or_insert_with(|| {
                Arc::new(Held { lines: Arc::default(), bytes: AtomicUsize::new(0), last_used: AtomicU64::new(0) })
            })
            .clone();
        held.last_used.store(self.uses.fetch_add(1, Ordering::Relaxed), Ordering::Relaxed);
        held
    }

    /// Counts the family's entry at `bytes`, unless it was dropped meanwhile (keys were
    /// forgotten, or it was evicted): a dropped entry no longer counts toward the bound.
    fn recount(&self, family: &FamilyId, held: &Arc<Held>, bytes: usize) {
        let families = self.families();
        if families.get(family).is_some_and(|current| Arc::ptr_eq(current, held)) {
            self.count(held, bytes);
        }
    }

    fn count(&self, held: &Held, bytes: usize) {
        let before = held.bytes.swap(bytes, Ordering::Relaxed);
        if bytes >= before {
            self.total_bytes.fetch_add(bytes - before, Ordering::Relaxed);
        } else {
            self.total_bytes.fetch_sub(before - bytes, Ordering::Relaxed);
        }
    }

    /// Past the bound, drops the least recently used families no report is using, until a
    /// tenth below it.
    fn evict_past_bound(&self) {
        if self.total_bytes.load(Ordering::Relaxed) <= self.bound_bytes {
            return;
        }
        let mut families = self.families();
        let mut idle: Vec<(u64, FamilyId)> = families
            .iter()
            .filter(|(_, held)| Arc::strong_count(&held.lines) == 1)
            .map(|(family, held)| (held.last_used.load(Ordering::Relaxed), family.clone()))
            .collect();
        idle.sort_unstable_by_key(|(used, _)| *used);
        let target = self.bound_bytes - self.bound_bytes / 10;
        for (_, family) in idle {
            if self.total_bytes.load(Ordering::Relaxed) <= target {
                break;
            }
            if let Some(held) = families.remove(&family) {
                self.count(&held, 0);
                metrics::counter!("gezinsdossier_report_index_evictions_total").increment(1);
            }
        }
    }
}

impl Families {
    /// The family's report lines, extended with what its access log gained since they were
    /// last read; held under the family's index lock until the guard goes.
    pub(super) async fn report_lines(&self, family: &FamilyId) -> Result<OwnedMutexGuard<ReportLines>, FamilyError> {
        let index = &self.report_index;
        let held = index.held(family, self.keys.forgotten());
        let mut lines = held.lines.clone().lock_owned().await;
        let new = self.access_log_from(family, lines.next_revision).await?;
        lines.add(&new, &*self.keys);
        index.recount(family, &held, PER_FAMILY_BYTES + family.as_str().len() + lines.approx_bytes);
        index.evict_past_bound();
        metrics::gauge!("gezinsdossier_report_index_bytes").set(index.total_bytes.load(Ordering::Relaxed) as f64);
        Ok(lines)
    }
}

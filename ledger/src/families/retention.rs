//! The retention run: per family, shred what its clocks let go, and record it as an
//! erasure event (ground: retention ended).

use super::{Families, FamilyError, cache};
use crate::erasure::{ErasureGround, ErasureRecord, RequestedBy};
use crate::family::FamilyId;
use crate::retention::{self, RetentionPeriods};
use std::collections::BTreeSet;

/// One family's part of a retention run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionOutcome {
    pub family: FamilyId,
    pub plan: retention::RetentionPlan,
    /// Access-log lines past their clock (not sealed yet: reported, not shredded).
    pub access_log_lines_due: usize,
    /// The erasure event, unless a dry run or nothing expired.
    pub erasure_id: Option<uuid::Uuid>,
}

impl Families {
    /// Runs retention over every family at the clock's now; `dry_run` only lists.
    ///
    /// # Errors
    /// A store or key store failure (families done before it stay done).
    pub async fn run_retention(
        &self,
        periods: &RetentionPeriods,
        dry_run: bool,
    ) -> Result<Vec<RetentionOutcome>, FamilyError> {
        let now = self.clock.now();
        let mut families = BTreeSet::new();
        let mut from = 0;
        loop {
            let page = self.store.read_all(from, super::CATCH_UP_PAGE).await?;
            let Some(last) = page.last() else { break };
            from = last.position + 1;
            families.extend(page.iter().filter_map(super::feed::family_of));
        }
        let mut out = Vec::new();
        for family in families {
            let keys = self.keys.key_store().of_family(family.as_str()).await?;
            let slot = self.cache.loaded(&*self.store, &self.keys, &family).await?;
            let mut slot = slot.lock().await;
            cache::catch_up(&*self.store, &self.keys, &family, &mut slot.state).await?;
            let plan = retention::plan(&slot.state, &keys, periods, now);
            let access_log_lines_due = self
                .access_log(&family)
                .await?
                .iter()
                .filter_map(|e| chrono::DateTime::from_timestamp_micros(e.recorded_at_micros))
                .filter(|at| retention::access_log_line_due(*at, periods, now))
                .count();
            let mut erasure_id = None;
            if !dry_run && !plan.expired.is_empty() {
                let record = ErasureRecord {
                    erasure_id: uuid::Uuid::new_v4(),
                    ground: ErasureGround::RetentionEnded,
                    requested_by: RequestedBy::RetentionRun,
                    by: None,
                    categories: BTreeSet::new(),
                    destroyed_keys: plan.expired.iter().map(|(k, _)| *k).collect(),
                    shredded_events: plan.shredded_events,
                    kept_events: 0,
                    at: now,
                };
                self.record_erasure(&family, &mut slot.state, &record).await?;
                tracing::info!(family_id = %family, keys = record.destroyed_keys.len(), shredded = record.shredded_events, "retention: expired records shredded");
                erasure_id = Some(record.erasure_id);
            }
            if !plan.expired.is_empty() || access_log_lines_due > 0 {
                out.push(RetentionOutcome { family, plan, access_log_lines_due, erasure_id });
            }
        }
        Ok(out)
    }
}

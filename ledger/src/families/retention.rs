//! The retention run: per family, shred what its clocks let go (case record, child
//! protection records, and the access log by calendar year), and record it as an erasure
//! event (ground: retention ended). The cross-family logs follow the access log's clock
//! too, their erasure recorded in their own stream.

use super::{Families, FamilyError, cache};
use crate::disclosure;
use crate::envelope::{ExpectedRevision, ProposedEvent, RecordedEvent, StreamId};
use crate::erasure::{self, ErasureGround, ErasureRecord, RequestedBy};
use crate::family::ApplyError;
use crate::retention::{self, RetentionClock, RetentionPeriods, RetentionPlan};
use crate::sealing::{KeyId, sealed_with};
use chrono::{DateTime, Utc};
use std::collections::{BTreeSet, HashSet};

/// One family's (or cross-family log's) part of a retention run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// The family's id, or the cross-family log's stream name.
    pub owner: String,
    pub plan: RetentionPlan,
    /// Access-log lines under the year keys this run destroys (or would, in a dry run).
    pub access_log_lines_shredded: usize,
    /// Access-log lines past their clock that were written before the log was sealed:
    /// they cannot be shredded, and are kept.
    pub access_log_lines_kept_unsealed: usize,
    /// The erasure event, unless a dry run or nothing expired.
    pub erasure_id: Option<uuid::Uuid>,
}

impl RetentionOutcome {
    fn due(&self) -> bool {
        !self.plan.expired.is_empty() || self.access_log_lines_kept_unsealed > 0
    }
}

/// What a log's lines come to under `plan`: (sealed under an expired key, unsealed past
/// their own clock).
fn access_log_lines(
    log: &[RecordedEvent],
    plan: &RetentionPlan,
    periods: &RetentionPeriods,
    now: DateTime<Utc>,
) -> (usize, usize) {
    let expired: HashSet<KeyId> =
        plan.expired.iter().filter(|(_, c)| *c == RetentionClock::AccessLog).map(|(k, _)| *k).collect();
    let (mut shredded, mut kept) = (0, 0);
    for line in log {
        match sealed_with(&line.payload) {
            Ok(Some(key)) if expired.contains(&key) => shredded += 1,
            Ok(None)
                if DateTime::from_timestamp_micros(line.recorded_at_micros)
                    .is_some_and(|at| retention::access_log_line_due(at, periods, now)) =>
            {
                kept += 1;
            }
            _ => {}
        }
    }
    (shredded, kept)
}

fn retention_record(plan: &RetentionPlan, now: DateTime<Utc>) -> ErasureRecord {
    ErasureRecord {
        erasure_id: uuid::Uuid::new_v4(),
        ground: ErasureGround::RetentionEnded,
        requested_by: RequestedBy::RetentionRun,
        by: None,
        categories: BTreeSet::new(),
        destroyed_keys: plan.expired.iter().map(|(k, _)| *k).collect(),
        shredded_events: plan.shredded_events,
        kept_events: 0,
        at: now,
    }
}

impl Families {
    /// Runs retention over every family, and the cross-family logs, at the clock's now;
    /// `dry_run` only lists.
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
            let (shredded, kept) = access_log_lines(&self.access_log(&family).await?, &plan, periods, now);
            let mut erasure_id = None;
            if !dry_run && !plan.expired.is_empty() {
                let record = retention_record(&plan, now);
                self.record_erasure(&family, &mut slot.state, &record).await?;
                tracing::info!(family_id = %family, keys = record.destroyed_keys.len(), shredded = record.shredded_events, access_log_lines = shredded, "retention: expired records shredded");
                erasure_id = Some(record.erasure_id);
            }
            let outcome = RetentionOutcome {
                owner: family.as_str().to_owned(),
                plan,
                access_log_lines_shredded: shredded,
                access_log_lines_kept_unsealed: kept,
                erasure_id,
            };
            if outcome.due() {
                out.push(outcome);
            }
        }
        for stream in [disclosure::cross_family_audit_stream(), disclosure::cross_family_refusal_stream()] {
            let outcome = self.cross_family_retention(&stream, periods, now, dry_run).await?;
            if outcome.due() {
                out.push(outcome);
            }
        }
        Ok(out)
    }

    /// The access log's clock over a cross-family log: its year keys go, and the erasure
    /// is recorded in the log itself (no family stream holds it).
    async fn cross_family_retention(
        &self,
        stream: &StreamId,
        periods: &RetentionPeriods,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<RetentionOutcome, FamilyError> {
        let owner = disclosure::key_owner(stream).to_owned();
        let keys = self.keys.key_store().of_family(&owner).await?;
        let plan = retention::plan(&Default::default(), &keys, periods, now);
        let mut log = Vec::new();
        loop {
            let page = self.store.read_stream(stream, log.len() as u64, super::CATCH_UP_PAGE).await?;
            let done = page.len() < super::CATCH_UP_PAGE;
            log.extend(page);
            if done {
                break;
            }
        }
        let (shredded, kept) = access_log_lines(&log, &plan, periods, now);
        let mut erasure_id = None;
        if !dry_run && !plan.expired.is_empty() {
            let record = retention_record(&plan, now);
            let event = ProposedEvent {
                event_id: record.erasure_id,
                event_type: erasure::EVENT_TYPE.to_owned(),
                recorded_at_micros: now.timestamp_micros(),
                payload: crate::codec::to_json(&record),
            };
            self.store.append(stream, ExpectedRevision::Any, vec![event]).await?;
            self.keys.destroy(&record.destroyed_keys, now.timestamp_micros()).await.map_err(ApplyError::from)?;
            erasure_id = Some(record.erasure_id);
        }
        Ok(RetentionOutcome {
            owner,
            plan,
            access_log_lines_shredded: shredded,
            access_log_lines_kept_unsealed: kept,
            erasure_id,
        })
    }
}

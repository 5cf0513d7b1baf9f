//! What gRPC health says, and why. Health is the truth about this replica, for balancers and
//! probes:
//! - `""` (the whole server) and every service that writes (case, consent, dossier, audit,
//!   report: each records what it did) are NOT_SERVING while commits fail, and SERVING again
//!   once a commit or a write probe succeeds;
//! - the log service is NOT_SERVING while its proof index loads after start, and while signed
//!   tree heads fall behind the log by more than a bound (events, or time);
//! - everything is NOT_SERVING from the first moment of a graceful shutdown.

use gezinsdossier_ledger::publisher::PublisherStatus;
use gezinsdossier_ledger::store::EventStore;
use gezinsdossier_ledger::store::commit_watch::{CommitState, CommitWatch};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// How often health is re-evaluated, and commits probed while they fail.
const EVERY: Duration = Duration::from_millis(200);

/// How far signed tree heads may fall behind the log before the log service says so.
#[derive(Debug, Clone, Copy)]
pub struct LagBound {
    pub events: u64,
    pub time: Duration,
}

/// The state health reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The server, and every service that writes.
    pub writes: bool,
    /// The log service: proofs can be served and heads keep up.
    pub log: bool,
}

/// Decides the verdict from what the store and the publisher say.
pub fn verdict(
    commits: &CommitState,
    publisher: &PublisherStatus,
    draining: bool,
    bound: LagBound,
    now: Instant,
) -> Verdict {
    if draining {
        return Verdict { writes: false, log: false };
    }
    let waited_too_long = |since: Option<Instant>| since.is_some_and(|t| now.duration_since(t) > bound.time);
    let heads_keep_up = publisher.uncovered <= bound.events
        && !waited_too_long(publisher.uncovered_since)
        && !waited_too_long(publisher.stopped_since);
    Verdict { writes: matches!(commits, CommitState::Working), log: publisher.caught_up && heads_keep_up }
}

/// Keeps the health service's statuses equal to the [`verdict`].
pub struct Readiness {
    pub reporter: HealthReporter,
    pub store: Arc<CommitWatch>,
    pub publisher: watch::Receiver<PublisherStatus>,
    pub draining: watch::Receiver<bool>,
    pub bound: LagBound,
    /// The services that write, by gRPC name.
    pub writing_services: Vec<&'static str>,
    pub log_service: &'static str,
}

impl Readiness {
    /// Runs until aborted.
    pub async fn run(mut self) {
        let mut commits = self.store.state();
        let mut shown: Option<Verdict> = None;
        loop {
            let state = commits.borrow_and_update().clone();
            let draining = *self.draining.borrow_and_update();
            let now = verdict(&state, &self.publisher.borrow(), draining, self.bound, Instant::now());
            if shown != Some(now) {
                self.show(now, shown, &state, draining).await;
                shown = Some(now);
            }
            if matches!(state, CommitState::Failing { .. }) && !draining {
                // Nothing else may be appending (a balancer drained us): learn of recovery.
                let _ = self.store.probe_writes().await;
            }
            tokio::select! {
                () = tokio::time::sleep(EVERY) => {}
                _ = commits.changed() => {}
                _ = self.draining.changed() => {}
            }
        }
    }

    async fn show(&self, now: Verdict, before: Option<Verdict>, commits: &CommitState, draining: bool) {
        let status = |ok: bool| if ok { ServingStatus::Serving } else { ServingStatus::NotServing };
        self.reporter.set_service_status("", status(now.writes)).await;
        for name in &self.writing_services {
            self.reporter.set_service_status(name, status(now.writes)).await;
        }
        self.reporter.set_service_status(self.log_service, status(now.log)).await;
        if before.is_none() && now.writes && now.log {
            return;
        }
        let publisher = self.publisher.borrow().clone();
        if now.writes && now.log {
            tracing::info!("health: SERVING");
        } else {
            let commits_error = match commits {
                CommitState::Failing { error, .. } => error.as_str(),
                CommitState::Working => "",
            };
            tracing::warn!(
                writes = now.writes,
                log = now.log,
                draining,
                commits_error,
                index_loaded = publisher.caught_up,
                uncovered_events = publisher.uncovered,
                publisher_restarts = publisher.restarts,
                "health: NOT_SERVING"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: LagBound = LagBound { events: 100, time: Duration::from_secs(10) };

    fn publisher() -> PublisherStatus {
        PublisherStatus { caught_up: true, ..PublisherStatus::default() }
    }

    #[test]
    fn failing_commits_take_the_writing_services_out_but_not_the_proofs() {
        let now = Instant::now();
        let failing = CommitState::Failing { since: now, error: "postgres: connection refused".into() };
        assert_eq!(verdict(&failing, &publisher(), false, BOUND, now), Verdict { writes: false, log: true });
        assert_eq!(
            verdict(&CommitState::Working, &publisher(), false, BOUND, now),
            Verdict { writes: true, log: true }
        );
    }

    #[test]
    fn the_log_waits_for_its_index_and_for_heads_that_keep_up() {
        let now = Instant::now();
        let working = CommitState::Working;
        let loading = PublisherStatus { caught_up: false, ..publisher() };
        assert!(!verdict(&working, &loading, false, BOUND, now).log);
        let behind_in_events = PublisherStatus { uncovered: 101, ..publisher() };
        assert!(!verdict(&working, &behind_in_events, false, BOUND, now).log);
        let waiting = PublisherStatus { uncovered: 1, uncovered_since: Some(now), ..publisher() };
        assert!(verdict(&working, &waiting, false, BOUND, now).log);
        assert!(!verdict(&working, &waiting, false, BOUND, now + Duration::from_secs(11)).log);
        let stopped = PublisherStatus { stopped_since: Some(now), ..publisher() };
        assert!(verdict(&working, &stopped, false, BOUND, now + Duration::from_secs(1)).log);
        assert!(!verdict(&working, &stopped, false, BOUND, now + Duration::from_secs(11)).log);
    }

    #[test]
    fn draining_says_not_serving_everywhere() {
        let now = Instant::now();
        assert_eq!(
            verdict(&CommitState::Working, &publisher(), true, BOUND, now),
            Verdict { writes: false, log: false }
        );
    }
}

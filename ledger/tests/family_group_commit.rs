//! Many appenders on one family, committed in shared batches: every acknowledgement must
//! match the final stream exactly (revision, position, hash, chain), every refusal must
//! have written nothing, expected revisions are judged where each append lands, and
//! retries by event id return their original outcome.

use chrono::{DateTime, Utc};
use gezinsdossier_ledger::actor::{Actor, OrganisationType, ProfessionalRole};
use gezinsdossier_ledger::case::*;
use gezinsdossier_ledger::clock::ManualClock;
use gezinsdossier_ledger::envelope::{EventId, ExpectedRevision, RecordedEvent};
use gezinsdossier_ledger::families::{CaseAppend, Families, FamilyError};
use gezinsdossier_ledger::family::FamilyId;
use gezinsdossier_ledger::sealing::Keyring;
use gezinsdossier_ledger::store::faulty::{Fault, FaultyStore};
use gezinsdossier_ledger::store::sqlite::SqliteStore;
use gezinsdossier_ledger::store::{AppendOutcome, EventStore, StoreError};
use std::collections::HashMap;
use std::sync::Arc;

fn now() -> DateTime<Utc> {
    DateTime::from_timestamp(1_790_000_000, 0).unwrap()
}

fn author(org: &str) -> Actor {
    Actor {
        organisation_id: org.into(),
        organisation_type: OrganisationType::Jeugdhulpaanbieder,
        professional_id: "p".into(),
        role: ProfessionalRole::Casusregisseur,
    }
}

fn event(subject: &str, kind: CaseEventKind) -> (EventId, CaseEvent) {
    let category = match kind {
        CaseEventKind::MemberAdded(_) => InformationCategory::Identity,
        _ => InformationCategory::TreatmentNotes,
    };
    let event =
        CaseEvent { occurred_at: now(), subjects: [subject.to_owned()].into(), categories: [category].into(), kind };
    (uuid::Uuid::new_v4(), event)
}

fn note(subject: &str, i: usize) -> (EventId, CaseEvent) {
    event(subject, CaseEventKind::Note { text: format!("note {i}") })
}

fn families_over(store: Arc<dyn EventStore>, keys: Arc<Keyring>) -> Arc<Families> {
    Arc::new(Families::new(store, Arc::new(ManualClock::new(now())), keys))
}

async fn registered(families: &Arc<Families>, family: &FamilyId) {
    let first = event("ma", CaseEventKind::MemberAdded(MemberAdded::adult("ma", MemberRole::Parent)));
    let append = CaseAppend {
        family: family.clone(),
        expected: ExpectedRevision::NoStream,
        author: author("youth").into(),
        events: vec![first],
    };
    families.append_case_events(append).await.unwrap();
}

/// A registered family over a SQLite store that injects faults (and the store's directory).
async fn hot_family_over_faulty_store() -> (tempfile::TempDir, Arc<FaultyStore<SqliteStore>>, Arc<Families>, FamilyId) {
    let dir = tempfile::tempdir().unwrap();
    let faulty = Arc::new(FaultyStore::new(SqliteStore::open(dir.path()).unwrap()));
    let families = families_over(faulty.clone(), Arc::new(Keyring::ephemeral().unwrap()));
    let family = FamilyId::new("hot").unwrap();
    registered(&families, &family).await;
    (dir, faulty, families, family)
}

/// Appends note `i` to `family` in a task of its own, expecting any revision.
fn spawn_note(
    families: &Arc<Families>,
    family: &FamilyId,
    i: usize,
) -> tokio::task::JoinHandle<Result<AppendOutcome, FamilyError>> {
    let families = families.clone();
    let request = CaseAppend {
        family: family.clone(),
        expected: ExpectedRevision::Any,
        author: author("youth").into(),
        events: vec![note("ma", i)],
    };
    tokio::spawn(async move { families.append_case_events(request).await })
}

/// What one appender asked and heard.
struct Acked {
    request: CaseAppend,
    outcome: Result<AppendOutcome, FamilyError>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_appenders_on_one_family_get_exactly_what_the_stream_holds() {
    let dir = tempfile::tempdir().unwrap();
    // Each commit takes a little longer, so that appends arriving meanwhile have to wait.
    let store = Arc::new(FaultyStore::new(SqliteStore::open(dir.path()).unwrap()));
    store.fail_appends("family-", Fault::Slow(std::time::Duration::from_millis(2)));
    let keys = Arc::new(Keyring::ephemeral().unwrap());
    let families = families_over(store.clone(), keys.clone());
    let family = FamilyId::new("hot").unwrap();
    registered(&families, &family).await;
    let before = store.appends_met();

    const APPENDERS: usize = 48;
    const ROUNDS: usize = 12;
    let mut tasks = Vec::new();
    for a in 0..APPENDERS {
        let families = families.clone();
        let family = family.clone();
        tasks.push(tokio::spawn(async move {
            let mut heard = Vec::new();
            let mut seen: Option<u64> = Some(0);
            for round in 0..ROUNDS {
                let i = a * ROUNDS + round;
                let (expected, events) = match i % 6 {
                    // Stale or current: whoever lands first wins, the others are refused.
                    0 | 1 => (seen.map_or(ExpectedRevision::Any, ExpectedRevision::Exact), vec![note("ma", i)]),
                    // A new member ends a batch: appends after it wait for the next one.
                    2 => {
                        let id = format!("kid{i}");
                        let kid = MemberAdded::child(&id, now().date_naive(), ["ma".to_owned()]);
                        (ExpectedRevision::Any, vec![event(&id, CaseEventKind::MemberAdded(kid)), note(&id, i)])
                    }
                    // Names nobody in the family: refused, nothing written.
                    3 => (ExpectedRevision::Any, vec![note("nobody", i)]),
                    _ => (ExpectedRevision::Any, vec![note("ma", i), note("ma", i + 100_000)]),
                };
                let request = CaseAppend {
                    family: family.clone(),
                    expected,
                    author: author(&format!("org{}", a % 3)).into(),
                    events,
                };
                let outcome = families.append_case_events(request.clone()).await;
                if let Ok(o) = &outcome {
                    seen = Some(o.stream_revision);
                }
                heard.push(Acked { request, outcome });
            }
            heard
        }));
    }
    let mut heard = Vec::new();
    for t in tasks {
        heard.extend(t.await.unwrap());
    }

    let stream = store.read_stream(&family.stream(), 0, 100_000).await.unwrap();
    let stored: HashMap<EventId, &RecordedEvent> = stream.iter().map(|e| (e.event_id, e)).collect();
    for (r, e) in stream.iter().enumerate() {
        assert_eq!(e.revision, r as u64, "revisions are gapless");
        if r > 0 {
            assert_eq!(e.prev_hash, stream[r - 1].hash, "the chain holds at revision {r}");
            assert!(e.position > stream[r - 1].position, "positions follow revisions");
        }
    }

    let mut acknowledged_events = 1; // the registration
    let (mut refused_by_revision, mut refused_by_validation) = (0, 0);
    for Acked { request, outcome } in &heard {
        match outcome {
            Ok(o) => {
                assert!(!o.deduplicated);
                let first = o.stream_revision + 1 - request.events.len() as u64;
                if let ExpectedRevision::Exact(r) = request.expected {
                    assert_eq!(first, r + 1, "an exact expected revision holds where the append lands");
                }
                for (i, (id, _)) in request.events.iter().enumerate() {
                    let e = stored.get(id).expect("an acknowledged event is stored");
                    assert_eq!(e.revision, first + i as u64);
                    assert_eq!(e.position, o.positions[i]);
                    assert_eq!(e.hash, o.hashes[i]);
                }
                assert_eq!(stored[&request.events[0].0].prev_hash, o.prev_hash);
                acknowledged_events += request.events.len();
            }
            Err(e) => {
                for (id, _) in &request.events {
                    assert!(!stored.contains_key(id), "a refused append wrote nothing ({e})");
                }
                match e {
                    FamilyError::Store(StoreError::WrongExpectedRevision { .. }) => refused_by_revision += 1,
                    FamilyError::Validation(_) => refused_by_validation += 1,
                    other => panic!("unexpected refusal: {other}"),
                }
            }
        }
    }
    assert_eq!(stream.len(), acknowledged_events, "nothing is stored that nobody was told of");
    assert_eq!(
        refused_by_validation,
        heard.iter().filter(|h| h.request.events[0].1.subjects.contains("nobody")).count()
    );
    assert!(refused_by_revision > 0, "some exact expected revisions were stale");

    let requests = heard.iter().filter(|h| h.outcome.is_ok()).count();
    let commits = store.appends_met() - before;
    assert!(commits < requests / 2, "{commits} commits for {requests} acknowledged appends: appends were not batched");

    // A retry of an acknowledged append, now from a cold cache, returns its original outcome.
    let again = families_over(store.clone(), keys);
    let Acked { request, outcome } = heard.iter().find(|h| h.outcome.is_ok() && h.request.events.len() == 2).unwrap();
    let retried = again.append_case_events(request.clone()).await.unwrap();
    let original = outcome.as_ref().unwrap();
    assert!(retried.deduplicated);
    assert_eq!(
        (retried.stream_revision, &retried.positions, &retried.hashes),
        (original.stream_revision, &original.positions, &original.hashes)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_failure_under_a_batch_answers_every_appender_and_writes_nothing() {
    let (_dir, faulty, families, family) = hot_family_over_faulty_store().await;

    faulty.fail_appends("family-", Fault::BeforeWrite);
    let tasks: Vec<_> = (0..32).map(|i| spawn_note(&families, &family, i)).collect();
    for t in tasks {
        let outcome = t.await.unwrap();
        assert!(
            matches!(outcome, Err(FamilyError::Store(StoreError::Backend(_)))),
            "every appender hears of the failure: {outcome:?}"
        );
    }
    faulty.clear();
    let stream = faulty.read_stream(&family.stream(), 0, 1_000).await.unwrap();
    assert_eq!(stream.len(), 1, "only the registration is stored");

    // The family's cache is intact: the next append lands right after the registration.
    let request = CaseAppend {
        family: family.clone(),
        expected: ExpectedRevision::Exact(0),
        author: author("youth").into(),
        events: vec![note("ma", 99)],
    };
    assert_eq!(families.append_case_events(request).await.unwrap().stream_revision, 1);
}

/// Polls until `done`, for at most ten seconds.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..1_000 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("waited ten seconds for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_caller_that_goes_away_mid_commit_leaves_the_appends_it_gathered_answered() {
    let (_dir, faulty, families, family) = hot_family_over_faulty_store().await;
    let spawn_append = |i: usize| spawn_note(&families, &family, i);

    // A slow commit holds the family's lock while the leader-to-be and two others queue.
    faulty.fail_appends("family-", Fault::Slow(std::time::Duration::from_millis(600)));
    let holding = spawn_append(0);
    until("the first commit to reach the store", || faulty.appends_met() == 1).await;
    let leader = spawn_append(1);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let others = [spawn_append(2), spawn_append(3)];
    // The leader takes the lock next and commits all three together; its caller goes away
    // while that commit is at the store.
    until("the gathered commit to reach the store", || faulty.appends_met() == 2).await;
    leader.abort();

    assert_eq!(holding.await.unwrap().unwrap().stream_revision, 1);
    let mut revisions = Vec::new();
    for other in others {
        let outcome = other.await.unwrap();
        assert!(outcome.is_ok(), "an append the leader gathered is answered: {outcome:?}");
        revisions.extend(outcome.map(|o| o.stream_revision));
    }
    // They queued behind the leader (revision 2), in either order.
    revisions.sort_unstable();
    assert_eq!(revisions, [3, 4]);
    assert!(leader.await.unwrap_err().is_cancelled());
    assert_eq!(faulty.appends_met(), 2, "the three went to the store in one commit");
    faulty.clear();
    let stream = faulty.read_stream(&family.stream(), 0, 1_000).await.unwrap();
    assert_eq!(stream.len(), 5, "the registration, the first append and the three gathered: {}", stream.len());
}
